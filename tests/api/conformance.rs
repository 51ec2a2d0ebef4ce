//! What frontend teams' tools expect of a GraphQL server, found trying them as a new user
//! would: GraphQL over HTTP (media types and status codes), the response shape the spec
//! gives (keys in selection order, failed fields null), standard introspection in demo
//! mode, and the small promises of the README (no-store on 401, 414 for long URLs).

use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, Backend, TestApp};
use crate::on_both_databases;

/// Posts `body` as `handle` with `accept`; returns status, content type and the raw text.
async fn post_accepting(
    app: &TestApp,
    handle: &str,
    accept: &str,
    body: &Value,
) -> (u16, String, String) {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(app.token(handle))
        .header("accept", accept)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// A client that accepts `application/graphql-response+json` gets it, and a request error
/// (parse, validation, a limit, variables) is HTTP 400 without `data`; a legacy
/// `application/json` client gets 200 with the same errors and no `data`. An executed
/// request is 200 either way.
#[tokio::test]
async fn request_errors_follow_graphql_over_http() {
    let app = spawn_app(Backend::Sqlite).await;
    let failures = [
        json!({ "query": "{ me { handle " }),
        json!({ "query": "{ me { nonsense } }" }),
        json!({ "query": "query($n: Int!) { tickets(first: $n) { edges { cursor } } }", "variables": { "n": "many" } }),
        json!({ "query": "{ a { b { c { d { e { f { g { h { i { j { k { l { m } } } } } } } } } } } } }" }),
    ];
    for body in &failures {
        let (status, content_type, text) =
            post_accepting(&app, "frontline", GRAPHQL_RESPONSE, body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(content_type.starts_with(GRAPHQL_RESPONSE), "{content_type}");
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert!(
            parsed.get("data").is_none(),
            "no data on a request error: {text}"
        );
        assert_eq!(error_code(&parsed), "BAD_USER_INPUT");

        let (status, content_type, text) =
            post_accepting(&app, "frontline", "application/json", body).await;
        assert_eq!(status, 200, "{body}: {text}");
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        assert!(serde_json::from_str::<Value>(&text)
            .unwrap()
            .get("data")
            .is_none());
    }
    let ok = json!({ "query": "{ me { handle } }" });
    for accept in [GRAPHQL_RESPONSE, "application/json", "*/*"] {
        let (status, _, text) = post_accepting(&app, "frontline", accept, &ok).await;
        assert_eq!(status, 200, "{accept}: {text}");
    }
}

/// A document is validated against the schema in full once; later requests of it skip the
/// rules that read only the document, but never the check of their own variables: a wrong
/// variable gets the same request error before and after the document was seen valid, and
/// a document that never passed is refused every time.
#[tokio::test]
async fn a_document_seen_valid_still_answers_wrong_variables_the_same_way() {
    let app = spawn_app(Backend::Sqlite).await;
    let query =
        "query($n: Int!, $s: TicketStatus) { tickets(first: $n, status: $s) { edges { cursor } } }";
    let send = |variables: Value| {
        let body = json!({ "query": query, "variables": variables });
        let app = &app;
        async move { post_accepting(app, "frontline", GRAPHQL_RESPONSE, &body).await }
    };
    let wrong = [
        json!({ "n": "many" }),
        json!({}),
        json!({ "n": 2, "s": "ESCALATED" }),
        json!({ "n": 2_147_483_648u64 }),
    ];
    let mut before = Vec::new();
    for variables in &wrong {
        let (status, _, text) = send(variables.clone()).await;
        assert_eq!(status, 400, "{variables}: {text}");
        before.push(text);
    }
    for _ in 0..3 {
        let (status, _, text) = send(json!({ "n": 2, "s": "OPEN" })).await;
        assert_eq!(status, 200, "{text}");
        assert!(!text.contains("\"errors\""), "{text}");
    }
    for (variables, earlier) in wrong.iter().zip(&before) {
        let (status, _, text) = send(variables.clone()).await;
        assert_eq!(status, 400, "{variables}: {text}");
        let message =
            |t: &str| serde_json::from_str::<Value>(t).unwrap()["errors"][0]["message"].clone();
        assert_eq!(message(&text), message(earlier), "{variables}");
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error_code(&parsed), "BAD_USER_INPUT");
        assert!(parsed.get("data").is_none());
    }
    for _ in 0..2 {
        let (status, _, text) = post_accepting(
            &app,
            "frontline",
            GRAPHQL_RESPONSE,
            &json!({ "query": "{ me { handle nonsense } }" }),
        )
        .await;
        assert_eq!(status, 400, "{text}");
    }
}

/// A null variable that is valid for its declared type but not where it is used (here a
/// nullable `$q` for `queues: [String!]! = []`) is refused before anything runs, the same
/// way before and after its document was seen valid.
#[tokio::test]
async fn a_null_variable_refused_where_it_is_used_is_refused_every_time() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.create_agent("admin1", "admin").await;
    let query = "mutation($h: String!, $q: [String!]) { createAgent(input: { handle: $h, role: \"frontline\", team: \"support\", queues: $q }) { agent { handle } } }";
    let send = |variables: Value| {
        let body = json!({ "query": query, "variables": variables });
        let app = &app;
        let admin = admin.clone();
        async move {
            let response = app
                .client
                .post(format!("{}/graphql", app.address))
                .bearer_auth(admin)
                .header("accept", GRAPHQL_RESPONSE)
                .json(&body)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (first, text) = send(json!({ "h": "agent-a", "q": null })).await;
    assert_eq!(first, 400, "{text}");
    let (status, text) = send(json!({ "h": "agent-b", "q": ["billing"] })).await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("\"errors\""), "{text}");
    let (again, text) = send(json!({ "h": "agent-c", "q": null })).await;
    assert_eq!(again, 400, "after the document was seen valid: {text}");
}

/// The depth refusal names the limit, like every other limit.
#[tokio::test]
async fn the_depth_refusal_names_the_limit() {
    let app = spawn_app(Backend::Sqlite).await;
    let deep = "{ a { b { c { d { e { f { g { h { i { j { k { l { m } } } } } } } } } } } } }";
    let (_, body) = app.query_as("frontline", deep, json!({})).await;
    assert_eq!(
        body["errors"][0]["message"],
        "the query is nested 13 levels deep; the limit is 12"
    );
}

/// The standard introspection query's type references (seven `ofType` levels under
/// `__schema { types { fields { type } } }`) pass in demo mode, though they are deeper than
/// the data depth limit.
#[tokio::test]
async fn standard_introspection_passes_the_depth_limit_in_demo_mode() {
    let app = spawn_app(Backend::Sqlite).await;
    let type_ref = format!(
        "{}kind name{}",
        "kind name ofType { ".repeat(7),
        " }".repeat(7)
    );
    let query = format!(
        "{{ __schema {{ types {{ name fields(includeDeprecated: true) {{ name args {{ type {{ {type_ref} }} }} type {{ {type_ref} }} }} }} }} }}"
    );
    let (status, body) = app.query_as("frontline", &query, json!({})).await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
    assert!(body["data"]["__schema"]["types"].as_array().unwrap().len() > 50);
}

on_both_databases! {
    /// Two identical requests give identical bytes, with keys in the order of the selection
    /// (aliases and fragments included), whatever order the fields finished in.
    async fn responses_follow_the_selection_order_byte_for_byte(app) {
        let query = "query Page { tickets(first: 50) { pageInfo { hasNextPage } edges { node { \
            customer { ...C fullName { value access } } zz: subject id assignee { handle } } cursor } } } \
            fragment C on Customer { email { reveal value access } id chatHistory { value { body ticketId } access } }";
        let body = json!({ "query": query });
        let (_, _, first) = post_accepting(&app, "supervisor", "application/json", &body).await;
        let (_, _, second) = post_accepting(&app, "supervisor", "application/json", &body).await;
        assert_eq!(first, second, "identical requests, identical bytes");
        let expected_order = [
            r#"{"data":{"tickets":{"pageInfo":{"hasNextPage":"#,
            r#""edges":[{"node":{"customer":{"email":{"reveal":"#,
            r#""value":"#,
            r#""access":"#,
            r#""id":"#,
            r#""chatHistory":{"value":"#,
            r#""fullName":{"value":"#,
            r#""zz":"#,
            r#""assignee":{"handle":"#,
            r#""cursor":"#,
        ];
        let mut at = 0;
        for part in expected_order {
            let found = first[at..].find(part).unwrap_or_else(|| panic!("{part} after {at} in {first}"));
            at += found + part.len();
        }
    }
}

on_both_databases! {
    /// Protected values and the items of their lists are served in one pass (no future per
    /// field), so that pass must answer everything a selection may say: aliases, named and
    /// inline fragments, a field selected twice with different sub-selections (in one
    /// object, and across fragments of its parent), `__typename`, `@skip`, with keys in
    /// selection order.
    async fn protected_values_answer_aliases_fragments_and_repeated_fields(app) {
        let ticket = app.ticket_id("Cannot reset my password").await;
        let query = "query($id: ID!) { ticket(id: $id) { customer { \
            chatHistory { __typename access value { ...M said: body __typename } value { createdAt } \
              ... on ProtectedChatHistory { reveal } } \
            invoices { value { number ... { status } } access @skip(if: true) } \
            fullName { shown: value handOff { role } } ...N } } } \
            fragment M on ChatMessage { ticketId body } fragment N on Customer { fullName { access } }";
        let body = json!({ "query": query, "variables": { "id": ticket } });
        let (status, _, text) = post_accepting(&app, "supervisor", "application/json", &body).await;
        assert_eq!(status, 200, "{text}");
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert!(parsed.get("errors").is_none(), "{text}");
        let customer = &parsed["data"]["ticket"]["customer"];
        let chat = &customer["chatHistory"];
        assert_eq!(chat["__typename"], "ProtectedChatHistory");
        assert_ne!(chat["access"], "HIDDEN", "the supervisor sees robin's chat history");
        assert!(chat["reveal"].is_string());
        let messages = chat["value"].as_array().unwrap();
        assert!(!messages.is_empty(), "robin wrote on other tickets: {text}");
        for message in messages {
            let keys: Vec<&str> = message.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys.len(), 5, "{message}");
            assert_eq!(message["__typename"], "ChatMessage");
            assert_eq!(message["said"], message["body"]);
            assert!(message["ticketId"].as_str().unwrap().len() > 1);
            assert!(message["createdAt"].as_str().unwrap().contains('T'));
        }
        for invoice in customer["invoices"]["value"].as_array().unwrap() {
            assert_eq!(invoice.as_object().unwrap().len(), 2, "{invoice}");
            assert!(invoice["status"].is_string());
        }
        assert!(customer["invoices"].get("access").is_none(), "skipped");
        assert!(customer["fullName"]["shown"].is_string());
        assert_eq!(customer["fullName"]["handOff"], json!([]));
        let expected_order = [
            r#"{"chatHistory":{"__typename":"ProtectedChatHistory","access":"#,
            r#""value":[{"ticketId":"#,
            r#""body":"#,
            r#""said":"#,
            r#""__typename":"ChatMessage","createdAt":"#,
            r#""reveal":"#,
            r#""invoices":{"value":"#,
            r#""fullName":{"shown":"#,
            r#""handOff":[],"access":"#,
        ];
        let mut at = 0;
        for part in expected_order {
            let found = text[at..].find(part).unwrap_or_else(|| panic!("{part} after {at} in {text}"));
            at += found + part.len();
        }
    }
}

on_both_databases! {
    /// Protected values are written straight into the response when no key of the document
    /// selects an object twice, and built as trees when one does (async-graphql merges the
    /// parts of such a key): both ways answer the same bytes.
    async fn protected_values_written_in_one_pass_answer_the_bytes_of_the_tree(app) {
        let ticket = app.ticket_id("Cannot reset my password").await;
        let fields = "id customer { fullName { value access } email { ...P } \
            chatHistory { __typename access v: value { ...M said: body __typename } \
              ... on ProtectedChatHistory { reveal } } \
            invoices { value { number amountCents ... { status } } access @skip(if: true) } \
            paymentMethods { value { brand last4 } access reveal dataClass grantExpiresAt \
              handOff { role label } } dateOfBirth { value access handOff { role label } } }";
        let fragments = "fragment P on ProtectedString { value access reveal } \
            fragment M on ChatMessage { ticketId body createdAt }";
        let one_pass = format!("query($id: ID!) {{ ticket(id: $id) {{ {fields} }} }} {fragments}");
        let tree = format!(
            "query($id: ID!) {{ ticket(id: $id) {{ id }} ticket(id: $id) {{ {fields} }} }} {fragments}"
        );
        let mut answers = Vec::new();
        for query in [one_pass, tree] {
            let body = json!({ "query": query, "variables": { "id": ticket } });
            let (status, _, text) = post_accepting(&app, "supervisor", "application/json", &body).await;
            assert_eq!(status, 200, "{text}");
            assert!(!text.contains("\"errors\""), "{text}");
            answers.push(text);
        }
        assert!(answers[0].contains(r#""chatHistory":{"__typename":"ProtectedChatHistory""#), "{}", answers[0]);
        assert_eq!(answers[0], answers[1]);
    }
}

on_both_databases! {
    /// A root field that fails is `null` at its key (with its error), and the others are
    /// served: `ticket` is nullable for that reason, and so is every mutation, so that of two
    /// mutations in one document the one that succeeded still reports it.
    async fn failed_root_fields_are_null_and_the_rest_is_served(app) {
        let mine = app.ticket_id("Cannot reset my password").await;
        let billing = app.ticket_id("Charged twice in March").await;
        let (status, body) = app
            .query_as(
                "frontline",
                "query($a: ID!, $b: ID!) { a: ticket(id: $a) { subject } b: ticket(id: $b) { subject } }",
                json!({ "a": mine, "b": billing }),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["data"], json!({ "a": { "subject": "Cannot reset my password" }, "b": null }));
        assert_eq!(body["errors"][0]["path"], json!(["b"]));
        assert_eq!(error_code(&body), "NOT_FOUND");

        let parcel = app.ticket_id("Where is my parcel?").await;
        let (_, body) = app
            .query_as(
                "frontline",
                "mutation($a: ID!, $b: ID!) { a: setTicketStatus(ticketId: $a, status: PENDING) { status } b: setTicketStatus(ticketId: $b, status: PENDING) { status } }",
                json!({ "a": billing, "b": parcel }),
            )
            .await;
        assert_eq!(body["data"], json!({ "a": null, "b": { "status": "PENDING" } }));
        assert_eq!(body["errors"][0]["path"], json!(["a"]));
    }
}

/// Refusals carry `Cache-Control: no-store`, 401 included: nothing may keep an answer
/// about a credential.
#[tokio::test]
async fn unauthenticated_answers_are_not_stored() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": "{ me { handle } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.headers()["cache-control"], "no-store");
}

/// A GET whose parameters are too long for a URL gets 414 with a GraphQL error and a
/// request id, as the README says. (It got a bare 400 from the HTTP layer, which refuses
/// URLs of 64 KiB and more before the service sees them: the service's limit for GET
/// parameters is 32 KiB.)
#[tokio::test]
async fn an_overlong_get_is_414_with_a_body_and_a_request_id() {
    let app = spawn_app(Backend::Sqlite).await;
    let padding = "x".repeat(40 * 1024);
    let query = format!("{{ me {{ handle }} }} #{padding}");
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("query", query.as_str())])
        .bearer_auth(app.token("frontline"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 414);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

/// GraphiQL is served whole by the service with a policy that allows nothing else: no CDN.
#[tokio::test]
async fn graphiql_and_its_assets_come_from_the_service_itself() {
    let app = spawn_app(Backend::Sqlite).await;
    let page = app
        .client
        .get(format!("{}/graphql", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("default-src 'none'"));
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("https://") && !html.contains("//unpkg"),
        "{html}"
    );
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "init.js",
    ] {
        assert!(html.contains(&format!("/graphiql/{asset}")), "{asset}");
        let response = app
            .client
            .get(format!("{}/graphiql/{asset}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{asset}");
    }
}

on_both_databases! {
    /// Connections read both ways: `last`/`before` walk back over what `first`/`after`
    /// walked forward, with the same cursors; `first` and `last` together are refused.
    async fn connections_page_backward_as_well_as_forward(app) {
        let page = |args: String| format!(
            "{{ tickets({args}) {{ edges {{ cursor node {{ subject }} }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }}"
        );
        let subjects = |body: &Value| -> Vec<String> {
            body["tickets"]["edges"].as_array().unwrap().iter()
                .map(|e| e["node"]["subject"].as_str().unwrap().to_owned()).collect()
        };
        let all = app.data_as("supervisor", &page("first: 6".into()), json!({})).await;
        let all = subjects(&all);
        assert_eq!(all.len(), 6);

        let last = app.data_as("supervisor", &page("last: 2".into()), json!({})).await;
        assert_eq!(subjects(&last), all[4..]);
        assert_eq!(last["tickets"]["pageInfo"]["hasPreviousPage"], true);
        let cursor = last["tickets"]["pageInfo"]["startCursor"].as_str().unwrap().to_owned();
        let before = app
            .data_as("supervisor", &page(format!("last: 3, before: \"{cursor}\"")), json!({}))
            .await;
        assert_eq!(subjects(&before), all[1..4]);
        let start = before["tickets"]["pageInfo"]["startCursor"].as_str().unwrap().to_owned();
        let after = app
            .data_as("supervisor", &page(format!("first: 1, after: \"{start}\"")), json!({}))
            .await;
        assert_eq!(subjects(&after), all[2..3], "the same cursors work forward");

        let (_, body) = app.query_as("supervisor", &page("first: 1, last: 1".into()), json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
    }
}

on_both_databases! {
    /// The lists that can grow are connections too: an agent's grants, the requests to
    /// decide, the tickets found by contact.
    async fn lists_that_can_grow_are_connections(app) {
        let ticket = app.ticket_id("Cannot reset my password").await;
        for field in ["email", "phone"] {
            let (_, body) = app
                .query_as(
                    "frontline",
                    "mutation($t: ID!, $f: [String!]!) { requestReveal(ticketId: $t, fields: $f, reason: \"customer asked to confirm the contact\") { grants { id } } }",
                    json!({ "t": ticket, "f": [field] }),
                )
                .await;
            assert!(body.get("errors").is_none(), "{body}");
        }
        let query = "query($after: String) { myGrants(first: 1, after: $after) { edges { cursor node { field } } pageInfo { hasNextPage endCursor } } }";
        let first = app.data_as("frontline", query, json!({ "after": null })).await;
        assert_eq!(first["myGrants"]["pageInfo"]["hasNextPage"], true);
        let cursor = first["myGrants"]["pageInfo"]["endCursor"].clone();
        let second = app.data_as("frontline", query, json!({ "after": cursor })).await;
        assert_eq!(second["myGrants"]["pageInfo"]["hasNextPage"], false);
        let mut fields = vec![
            first["myGrants"]["edges"][0]["node"]["field"].as_str().unwrap().to_owned(),
            second["myGrants"]["edges"][0]["node"]["field"].as_str().unwrap().to_owned(),
        ];
        fields.sort();
        assert_eq!(fields, ["email", "phone"]);

        let pending = app
            .data_as("supervisor", "{ pendingRevealRequests(last: 5) { edges { node { id } } pageInfo { hasPreviousPage } } }", json!({}))
            .await;
        assert_eq!(pending["pendingRevealRequests"]["pageInfo"]["hasPreviousPage"], false);
        let found = app
            .data_as("frontline", "{ ticketsByContact(email: \"robin.sample@example.com\", first: 1) { edges { node { subject } } pageInfo { hasNextPage } } }", json!({}))
            .await;
        assert_eq!(found["ticketsByContact"]["edges"].as_array().unwrap().len(), 1);
    }
}

/// The global id of a `Type:key` (what the service emits; clients treat it as opaque).
fn global(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

on_both_databases! {
    /// Every object has a global id unique across types, so a normalized client cache
    /// (Relay, Apollo) never mixes two: a ticket, its customer, the customer's other
    /// tickets' summaries and payment methods all differ, and the same customer reached
    /// through two tickets is two objects. References to a ticket carry its id.
    async fn ids_are_global_and_never_collide(app) {
        let ticket = app.ticket_id("Charged twice in March").await;
        let query = "query($id: ID!) { ticket(id: $id) { id customer { id paymentMethods { value { id } } otherTickets { value { id ticketId } } chatHistory { value { ticketId } } } } }";
        let data = app.data_as("supervisor", query, json!({ "id": ticket })).await;
        let t = &data["ticket"];
        let mut ids = vec![t["id"].as_str().unwrap().to_owned(), t["customer"]["id"].as_str().unwrap().to_owned()];
        ids.push(t["customer"]["paymentMethods"]["value"][0]["id"].as_str().unwrap().to_owned());
        let summaries = t["customer"]["otherTickets"]["value"].as_array().unwrap();
        for summary in summaries {
            ids.push(summary["id"].as_str().unwrap().to_owned());
            ids.push(summary["ticketId"].as_str().unwrap().to_owned());
        }
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert_eq!(t["id"], json!(ticket));
        let other = summaries[0]["ticketId"].as_str().unwrap();
        let through_other = app
            .data_as("supervisor", "query($id: ID!) { ticket(id: $id) { id customer { id } } }", json!({ "id": other }))
            .await;
        assert_eq!(through_other["ticket"]["id"], json!(other), "a summary's ticketId opens the ticket");
        assert_ne!(through_other["ticket"]["customer"]["id"], t["customer"]["id"], "one customer, two tickets, two objects");
        let chat_ticket = t["customer"]["chatHistory"]["value"][0]["ticketId"].as_str().unwrap();
        assert!(summaries.iter().any(|s| s["ticketId"] == chat_ticket));
    }
}

on_both_databases! {
    /// `node(id:)` refetches through the object's usual checks: a customer id carries the
    /// ticket it was reached through, and refetching it shows no more than that ticket
    /// does; an id from a ticket the caller may not see, a forged one, or one of another
    /// kind is `NOT_FOUND`. `nodes` answers per id.
    async fn node_refetches_through_the_same_checks(app) {
        let mine = app.ticket_id("Cannot reset my password").await;
        let query = "query($id: ID!) { ticket(id: $id) { customer { id email { access value } } } }";
        let through_mine = app.data_as("frontline", query, json!({ "id": mine })).await;
        let customer = through_mine["ticket"]["customer"]["id"].as_str().unwrap().to_owned();
        let refetch = "query($id: ID!) { node(id: $id) { __typename id ... on Customer { email { access value } } ... on Ticket { subject } } }";
        let node = app.data_as("frontline", refetch, json!({ "id": customer })).await;
        assert_eq!(node["node"]["__typename"], "Customer");
        assert_eq!(node["node"]["email"], through_mine["ticket"]["customer"]["email"], "same access as through the ticket");
        assert_eq!(node["node"]["email"]["access"], "MASKED");
        let node = app.data_as("frontline", refetch, json!({ "id": mine })).await;
        assert_eq!(node["node"]["subject"], "Cannot reset my password");

        // The supervisor's view of the customer through the billing ticket: not frontline's.
        let billing = app.ticket_id("Charged twice in March").await;
        let theirs = app.data_as("supervisor", query, json!({ "id": billing })).await;
        let their_customer = theirs["ticket"]["customer"]["id"].as_str().unwrap().to_owned();
        let forged_ticket = app.ticket_id("Where is my parcel?").await;
        let forged = global(&format!("Customer:{}:1", crate::common::db_id(&forged_ticket)));
        for id in [their_customer.clone(), forged, global("Agent:999"), global("Grant:x"), "nonsense".to_owned()] {
            let (_, body) = app.query_as("frontline", refetch, json!({ "id": id })).await;
            assert_eq!(body["data"]["node"], Value::Null, "{id}: {body}");
            assert_eq!(error_code(&body), "NOT_FOUND", "{id}");
        }

        let me = app.data_as("frontline", "{ me { id } }", json!({})).await;
        let (_, body) = app
            .query_as("frontline", "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", json!({ "ids": [me["me"]["id"], their_customer, mine] }))
            .await;
        assert_eq!(body["data"]["nodes"][0]["id"], me["me"]["id"]);
        assert_eq!(body["data"]["nodes"][1], Value::Null);
        assert_eq!(body["data"]["nodes"][2]["id"], json!(mine));
        assert_eq!(body["errors"][0]["path"], json!(["nodes", 1]));
        assert_eq!(error_code(&body), "NOT_FOUND");
    }
}

on_both_databases! {
    /// The audit trail (newest first) and the agent list read backward too.
    async fn the_audit_trail_and_the_agent_list_page_backward(app) {
        let page = |args: &str| format!("{{ auditEvents({args}) {{ edges {{ cursor node {{ seq }} }} pageInfo {{ hasNextPage hasPreviousPage }} }} }}");
        let seqs = |body: &Value| -> Vec<i64> {
            body["auditEvents"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["seq"].as_i64().unwrap()).collect()
        };
        let newest = app.data_as("auditor", &page("first: 5"), json!({})).await;
        let five = seqs(&newest);
        assert!(five.windows(2).all(|w| w[0] > w[1]), "newest first: {five:?}");
        let cursor = newest["auditEvents"]["edges"][4]["cursor"].as_str().unwrap().to_owned();
        let back = app.data_as("auditor", &page(&format!("last: 2, before: \"{cursor}\"")), json!({})).await;
        assert_eq!(seqs(&back), five[2..4]);
        assert_eq!(back["auditEvents"]["pageInfo"]["hasPreviousPage"], true);

        let admin = app.create_agent("pager", "admin").await;
        let query = |q: &str| json!({ "query": q });
        let (_, all) = app.post_graphql(Some(&admin), &query("{ agents(first: 100) { edges { node { handle } } } }")).await;
        let (_, last) = app.post_graphql(Some(&admin), &query("{ agents(last: 1) { edges { node { handle } } } }")).await;
        let all = all["data"]["agents"]["edges"].as_array().unwrap().clone();
        assert_eq!(last["data"]["agents"]["edges"][0], *all.last().unwrap(), "{last}");
        assert!(all.len() > 1);
    }
}

/// Every field of `Customer`, with everything below it.
const EVERY_CUSTOMER_FIELD: &str = "__typename id ... on Node { id }
    accountStatus { ...S } plan { ...S } customerSince { ...S } region { ...S }
    preferredLanguage { ...S } fullName { ...S } email { ...S } phone { ...S }
    postalAddress { ...S } dateOfBirth { ...S }
    named: fullName { value access }
    identityDocuments { access reveal grantExpiresAt dataClass handOff { role label }
      value { id kind fileName sizeBytes contentBase64 } }
    paymentMethods { access reveal grantExpiresAt dataClass handOff { role label }
      value { id brand last4 expMonth expYear billingAddress } }
    invoices { access reveal grantExpiresAt dataClass handOff { role label }
      value { number status issuedAt amountCents currency paidAt } }
    otherTickets { access reveal grantExpiresAt dataClass handOff { role label }
      value { id ticketId subject topic status createdAt resolvedAt } }
    chatHistory { access reveal grantExpiresAt dataClass handOff { role label }
      value { ticketId authorKind body createdAt } }";

const PROTECTED_STRING: &str = "fragment S on ProtectedString { __typename value access reveal grantExpiresAt dataClass handOff { role label } }";

/// Every field of `Ticket` but `customer`, with everything below it.
const EVERY_TICKET_FIELD: &str =
    "__typename id ... on Node { id } subject topic status channel team
    createdAt resolvedAt assignedToMe assignee { handle displayName }
    messages { id authorKind body createdAt } handOffTargets { role label topic }
    accessSummary { sentence
      classes { dataClass access reveal uniform handOff { role label } }
      fields { field dataClass access reveal fieldRule handOff { role label } } }";

/// The names of the fields `schema.graphql` declares for the object type `name`, read
/// with the GraphQL parser (as `api::flat`'s unit tests read the SDL).
fn declared_fields(name: &str) -> Vec<String> {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let sdl =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    let document = async_graphql::parser::parse_schema(&sdl).expect("schema.graphql parses");
    document
        .definitions
        .into_iter()
        .find_map(|definition| match definition {
            TypeSystemDefinition::Type(ty) if ty.node.name.node.as_str() == name => {
                match ty.node.kind {
                    TypeKind::Object(object) => Some(
                        object
                            .fields
                            .into_iter()
                            .map(|f| f.node.name.node.to_string())
                            .collect(),
                    ),
                    _ => None,
                }
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("{name} is an object type of schema.graphql"))
}

on_both_databases! {
    /// A page's tickets and their customers, and `ticket(id:)`, are written in one pass;
    /// `node(id:)` resolves them field by field. For every demo agent and every ticket they
    /// see, all three give the same answer, every field of `Ticket` and `Customer`
    /// selected: once with each field selected once, and once with a field selected twice
    /// under one key (which the server answers through its merging path).
    async fn a_ticket_and_its_customer_read_the_same_on_a_page_and_alone(app) {
        for (type_name, selected, expected) in [
            ("Ticket", EVERY_TICKET_FIELD, 14),
            ("Customer", EVERY_CUSTOMER_FIELD, 16),
        ] {
            let declared = declared_fields(type_name);
            assert_eq!(declared.len(), expected, "{declared:?}");
            for field in declared.iter().filter(|f| *f != "customer") {
                let mut words = selected.split(|c: char| c.is_whitespace() || c == '{' || c == '}');
                assert!(words.any(|word| word == field), "the test selects {field}");
            }
        }
        let twice = "fullName { value } fullName { access }";
        for handle in ["frontline", "frontline2", "billing", "identity", "supervisor"] {
            for extra in ["", twice] {
                let selection = format!("{EVERY_TICKET_FIELD} customer {{ {EVERY_CUSTOMER_FIELD} {extra} }}");
                let page = format!("{{ tickets(first: 20) {{ edges {{ node {{ {selection} }} }} }} }} {PROTECTED_STRING}");
                let (status, body) = app.query_as(handle, &page, json!({})).await;
                assert_eq!(status, 200);
                assert!(body.get("errors").is_none(), "{body:#}");
                let edges = body["data"]["tickets"]["edges"].as_array().unwrap().clone();
                assert!(!edges.is_empty(), "{handle} sees tickets");
                for edge in edges {
                    let on_page = &edge["node"];
                    let alone = format!("query($id: ID!) {{ ticket(id: $id) {{ {selection} }} }} {PROTECTED_STRING}");
                    let (status, body) = app.query_as(handle, &alone, json!({ "id": on_page["id"] })).await;
                    assert_eq!(status, 200);
                    assert!(body.get("errors").is_none(), "{body:#}");
                    assert_eq!(on_page, &body["data"]["ticket"], "{handle}: {}", on_page["id"]);
                    let refetch = format!("query($id: ID!) {{ node(id: $id) {{ ... on Ticket {{ {selection} }} }} }} {PROTECTED_STRING}");
                    let (status, body) = app.query_as(handle, &refetch, json!({ "id": on_page["id"] })).await;
                    assert_eq!(status, 200);
                    assert!(body.get("errors").is_none(), "{body:#}");
                    assert_eq!(on_page, &body["data"]["node"], "{handle}: {}", on_page["id"]);
                    let customer = &on_page["customer"];
                    let refetch = format!(
                        "query($id: ID!) {{ node(id: $id) {{ ... on Customer {{ {EVERY_CUSTOMER_FIELD} {extra} }} }} }} {PROTECTED_STRING}"
                    );
                    let (status, body) = app.query_as(handle, &refetch, json!({ "id": customer["id"] })).await;
                    assert_eq!(status, 200);
                    assert!(body.get("errors").is_none(), "{body:#}");
                    assert_eq!(customer, &body["data"]["node"], "{handle}: {}", customer["id"]);
                    assert_eq!(customer["__typename"], "Customer");
                }
            }
        }
    }
}
