//! Property-based fuzzing of the whole request path: query text (random and built from the
//! schema's own words), variables (hostile strings, deep nesting), operation names,
//! headers (credentials, content types), methods and raw bodies, sent over HTTP to the real
//! service with the demo data.
//!
//! Property: no request makes the service fail. Every answer is below HTTP 500, every
//! HTTP 200 is GraphQL-shaped JSON, no error is `INTERNAL`, and the service still answers
//! afterwards. A failing input is shrunk by proptest and printed with the seed.
//!
//! Runs for `NEEDTOKNOW_FUZZ_SECS` seconds (default 30; `scripts/test` and CI use the
//! default), half against SQLite and half against PostgreSQL. `NEEDTOKNOW_FUZZ_SEED` (64
//! hex digits) replays a run.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::Value;

/// Names the generator builds documents from: root fields, nested fields, arguments.
const FIELDS: &[&str] = &[
    "me",
    "ticket",
    "tickets",
    "ticketsByContact",
    "myGrants",
    "pendingRevealRequests",
    "auditEvents",
    "customerAccessReport",
    "exportCustomerData",
    "__typename",
    "__schema",
    "__type",
    "types",
    "name",
    "fields",
    "edges",
    "node",
    "pageInfo",
    "hasNextPage",
    "id",
    "subject",
    "status",
    "topic",
    "customer",
    "email",
    "phone",
    "fullName",
    "value",
    "access",
    "revealOption",
    "grantExpiresAt",
    "postalAddress",
    "dateOfBirth",
    "paymentMethods",
    "brand",
    "last4",
    "invoices",
    "number",
    "chatHistory",
    "body",
    "otherTickets",
    "identityDocuments",
    "fileName",
    "handle",
    "role",
    "accessSummary",
    "sentence",
    "messages",
    "assignee",
    "requestReveal",
    "approveReveal",
    "denyReveal",
    "revokeReveal",
    "setTicketStatus",
    "verifyCustomerIdentity",
    "eraseCustomer",
    "recordConsent",
    "withdrawConsent",
    "grants",
    "field",
    "expiresAt",
    "request",
    "dateOfBirth",
    "postalCode",
    "cardLast4",
    "seq",
    "action",
    "reason",
];

const ARGUMENTS: &[&str] = &[
    "id",
    "first",
    "after",
    "ticketId",
    "fields",
    "reason",
    "email",
    "phone",
    "topic",
    "status",
    "customerId",
    "requestId",
    "grantId",
    "note",
    "kind",
    "noticeVersion",
    "answers",
    "filter",
    "if",
    "name",
];

/// Strings that break naive SQL, Polar, JSON or log handling.
const HOSTILE: &[&str] = &[
    "' OR '1'='1",
    "1; DROP TABLE tickets; --",
    "\") or true; allow(_, _, _) if (\"",
    "field_access(_, _, _, \"PLAIN\", \"NONE\")",
    "\u{202E}evil\u{202C}",
    "nul \u{0} byte",
    "\u{1b}[31m",
    "%_\\",
    "99999999999999999999",
    "-1",
    "1",
    "4",
    "email",
    "contact",
    "the customer asked for it",
    "robin.sample@example.com",
    "+1 555 0100 2233",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELDS).prop_map(str::to_owned),
        1 => "[a-zA-Z_][a-zA-Z0-9_]{0,12}",
    ]
}

fn string_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(HOSTILE).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// A GraphQL input value as written in a document.
fn literal() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        string_literal().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        Just("true".to_owned()),
        Just("null".to_owned()),
        prop::sample::select(&["RESOLVED", "OPEN", "CLOSED", "VIEWED", "PLAIN"][..])
            .prop_map(str::to_owned),
        prop::sample::select(&["$v", "$id", "$undefined"][..]).prop_map(str::to_owned),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((prop::sample::select(ARGUMENTS), inner), 0..4).prop_map(|v| {
                let pairs: Vec<String> = v.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", pairs.join(", "))
            }),
        ]
    })
}

fn arguments() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(ARGUMENTS), literal()), 0..4).prop_map(|v| {
        if v.is_empty() {
            String::new()
        } else {
            let pairs: Vec<String> = v.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("({})", pairs.join(", "))
        }
    })
}

/// A selection set built from the schema's words, with aliases, arguments and directives.
fn selection() -> impl Strategy<Value = String> {
    let leaf = word();
    leaf.prop_recursive(7, 48, 5, |inner| {
        (
            prop::option::of("[a-z]{1,3}"),
            word(),
            arguments(),
            prop::option::of(prop::sample::select(
                &[
                    "@include(if: true)",
                    "@skip(if: false)",
                    "@include(if: $v)",
                    "@deprecated",
                ][..],
            )),
            prop::collection::vec(inner, 1..5),
            prop::option::of(prop::sample::select(
                &["Ticket", "Customer", "Query", "Nope"][..],
            )),
        )
            .prop_map(|(alias, name, args, directive, children, fragment)| {
                let alias = alias.map(|a| format!("{a}: ")).unwrap_or_default();
                let directive = directive.unwrap_or_default();
                let children = children.join(" ");
                match fragment {
                    Some(on) => format!("... on {on} {{ {children} }}"),
                    None => format!("{alias}{name}{args} {directive} {{ {children} }}"),
                }
            })
    })
}

/// A document built from the schema's words in one of several operation shapes.
fn built_document() -> impl Strategy<Value = String> {
    (
        prop::sample::select(
            &[
                "{SEL}",
                "query {SEL}",
                "query Q($v: String, $id: ID!) {SEL}",
                "mutation M($v: String) {SEL}",
                "subscription {SEL}",
                "fragment F on Ticket {SEL} query {SEL}",
                "query A {SEL} query B {SEL}",
            ][..],
        ),
        prop::collection::vec(selection(), 1..4),
    )
        .prop_map(|(shape, sets)| {
            let mut out = shape.to_owned();
            for set in sets {
                if let Some(at) = out.find("{SEL}") {
                    out.replace_range(at..at + 5, &format!("{{ {set} }}"));
                }
            }
            out.replace("{SEL}", "{ me { handle } }")
        })
}

/// Valid operations of the schema, to reach past validation into every resolver; the
/// variables `$id` and `$v` get hostile values.
const VALID: &[&str] = &[
    "query($id: ID!) { ticket(id: $id) { id subject status assignee { handle } messages { body } customer { fullName { value access } email { value access revealOption grantExpiresAt } phone { value } postalAddress { value } dateOfBirth { value } identityDocuments { access value { fileName } } paymentMethods { value { brand last4 } } invoices { value { number } } otherTickets { value { subject } } chatHistory { value { body } } } accessSummary { sentence } } }",
    "query($v: String) { tickets(first: 5, topic: $v) { edges { node { id customer { email { value } } } } pageInfo { hasNextPage } } }",
    "query($v: String) { tickets(first: 3, after: $v) { edges { cursor node { id } } } }",
    "query($v: String) { ticketsByContact(email: $v) { edges { node { id subject } } } }",
    "query($v: String) { ticketsByContact(phone: $v) { edges { node { id subject } } } }",
    "mutation($id: ID!, $v: String!) { requestReveal(ticketId: $id, fields: [\"email\", \"contact\"], reason: $v) { grants { field expiresAt } request { id status } } }",
    "mutation($id: ID!, $v: String!) { requestReveal(ticketId: $id, fields: [$v], reason: \"the customer asked for it\") { grants { field } } }",
    "mutation($id: ID!, $v: String) { approveReveal(requestId: $id, note: $v) { id status } }",
    "mutation($id: ID!, $v: String!) { denyReveal(requestId: $id, note: $v) { id status } }",
    "mutation($id: ID!) { revokeReveal(grantId: $id) { id } }",
    "mutation($id: ID!) { setTicketStatus(ticketId: $id, status: PENDING) { status } }",
    "mutation($id: ID!, $v: String!) { recordConsent(ticketId: $id, kind: $v, noticeVersion: $v) { kind } }",
    "mutation($id: ID!, $v: String!) { withdrawConsent(ticketId: $id, kind: $v) }",
    "mutation($id: ID!, $v: String) { verifyCustomerIdentity(ticketId: $id, answers: { dateOfBirth: $v, postalCode: $v, cardLast4: $v }) { dateOfBirth postalCode cardLast4 } }",
    "query($v: String) { auditEvents(first: 5, filter: { actor: $v }) { edges { node { seq action reason } } } }",
    "query($id: ID) { auditEvents(first: 5, filter: { ticketId: $id }) { edges { node { seq fields } } } }",
    "query($id: ID!) { customerAccessReport(customerId: $id) { customerId entries { action } } }",
    "query($id: ID!) { exportCustomerData(customerId: $id) }",
    "query { me { handle role queues } myGrants { edges { node { id field expiresAt } } } pendingRevealRequests { edges { node { id reason fields } } } }",
];

/// A whole query text: valid, built from the schema, mutated, or arbitrary.
fn document() -> impl Strategy<Value = String> {
    let built = built_document().boxed();
    let mutated = (
        built.clone(),
        any::<prop::sample::Index>(),
        any::<char>(),
        any::<bool>(),
    )
        .prop_map(|(doc, at, c, insert)| {
            let mut chars: Vec<char> = doc.chars().collect();
            if chars.is_empty() {
                return doc;
            }
            let at = at.index(chars.len());
            if insert {
                chars.insert(at, c);
            } else {
                chars.remove(at);
            }
            chars.into_iter().collect()
        });
    prop_oneof![
        10 => prop::sample::select(VALID).prop_map(str::to_owned),
        4 => built,
        2 => mutated,
        1 => any::<String>(),
        1 => (1usize..400).prop_map(|n| format!("{}{}", "{ me ".repeat(n), "}".repeat(n))),
    ]
}

/// Variables: JSON of any shape, hostile strings, and deep nesting.
fn variables() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        string_literal().prop_map(Value::String),
    ];
    let tree = leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(ARGUMENTS), inner, 0..6).prop_map(
                |m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
        ]
    });
    let id = prop_oneof![
        (1u32..20).prop_map(|n| Value::String(n.to_string())),
        string_literal().prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
    ];
    prop_oneof![
        8 => (id, string_literal()).prop_map(|(id, v)| serde_json::json!({ "id": id, "v": v })),
        4 => prop::collection::btree_map(prop::sample::select(&["v", "id", "t", "s"][..]), tree.clone(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        1 => tree,
        1 => (1usize..3000).prop_map(|depth| {
            let text = format!("{{\"v\": {}1{}}}", "[".repeat(depth), "]".repeat(depth));
            serde_json::from_str(&text).unwrap_or(Value::Null)
        }),
    ]
}

#[derive(Clone, Debug)]
enum Credential {
    Demo(usize),
    Raw(String),
    JwtLike(String, String, String),
    None,
}

#[derive(Clone, Debug)]
enum Body {
    Json,
    Array,
    Raw(Vec<u8>),
}

#[derive(Clone, Debug)]
struct Input {
    get: bool,
    query: String,
    variables: Value,
    operation_name: Option<String>,
    credential: Credential,
    content_type: Option<String>,
    body: Body,
}

fn input() -> impl Strategy<Value = Input> {
    let credential = prop_oneof![
        20 => (0usize..6).prop_map(Credential::Demo),
        1 => any::<String>().prop_map(Credential::Raw),
        1 => ("[A-Za-z0-9_-]{0,40}", "[A-Za-z0-9_-]{0,80}", "[A-Za-z0-9_-]{0,40}")
            .prop_map(|(a, b, c)| Credential::JwtLike(a, b, c)),
        1 => Just(Credential::None),
    ];
    let content_type = prop_oneof![
        20 => Just(Some("application/json".to_owned())),
        2 => Just(Some("application/json; charset=utf-8".to_owned())),
        1 => Just(Some("text/plain".to_owned())),
        1 => Just(Some("application/x-www-form-urlencoded".to_owned())),
        1 => Just(None),
    ];
    let body = prop_oneof![
        20 => Just(Body::Json),
        1 => Just(Body::Array),
        1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(Body::Raw),
    ];
    (
        prop::bool::weighted(0.2),
        document(),
        variables(),
        prop::option::of(prop_oneof!["[A-Z][a-z]{0,5}", any::<String>()]),
        credential,
        content_type,
        body,
    )
        .prop_map(
            |(get, query, variables, operation_name, credential, content_type, body)| Input {
                get,
                query,
                variables,
                operation_name,
                credential,
                content_type,
                body,
            },
        )
}

mod common;

#[path = "api/helpers.rs"]
#[allow(dead_code, unused_macros)]
mod helpers;

use helpers::{spawn_app_with, Backend, TestApp};

/// The service under test and how it answered: HTTP status and first error code, or `data`.
struct Target {
    app: TestApp,
    tokens: Vec<String>,
    outcomes: Mutex<BTreeMap<String, u64>>,
}

const CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "RATE_LIMITED",
    "REVEAL_UNAVAILABLE",
];

async fn check(target: &Target, input: &Input) -> Result<(), TestCaseError> {
    let url = format!("{}/graphql", target.app.address);
    let mut request = if input.get {
        let mut params = vec![("query", input.query.clone())];
        params.push(("variables", input.variables.to_string()));
        if let Some(name) = &input.operation_name {
            params.push(("operationName", name.clone()));
        }
        target.app.client.get(&url).query(&params)
    } else {
        let mut json = serde_json::json!({ "query": input.query, "variables": input.variables });
        if let Some(name) = &input.operation_name {
            json["operationName"] = Value::String(name.clone());
        }
        let bytes = match &input.body {
            Body::Json => json.to_string().into_bytes(),
            Body::Array => Value::Array(vec![json]).to_string().into_bytes(),
            Body::Raw(bytes) => bytes.clone(),
        };
        let mut request = target.app.client.post(&url).body(bytes);
        if let Some(content_type) = &input.content_type {
            request = request.header("content-type", content_type);
        }
        request
    };
    let authorization = match &input.credential {
        Credential::Demo(i) => Some(format!("Bearer {}", target.tokens[i % target.tokens.len()])),
        Credential::Raw(raw) => Some(raw.clone()),
        Credential::JwtLike(a, b, c) => Some(format!("Bearer {a}.{b}.{c}")),
        Credential::None => None,
    };
    if let Some(value) = authorization {
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&value) {
            request = request.header("authorization", value);
        }
    }
    let response = request
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer (did the service panic?): {e}")))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if status >= 500 {
        return Err(TestCaseError::fail(format!("HTTP {status}: {text}")));
    }
    let outcome = match serde_json::from_str::<Value>(&text) {
        Ok(body) => match body["errors"][0]["extensions"]["code"].as_str() {
            Some(code) if body["data"].is_object() => format!("{status} data+{code}"),
            Some(code) => format!("{status} {code}"),
            None => format!("{status} data"),
        },
        Err(_) => format!("{status} not JSON"),
    };
    *target.outcomes.lock().unwrap().entry(outcome).or_default() += 1;
    if status == 200 {
        let body: Value = serde_json::from_str(&text)
            .map_err(|_| TestCaseError::fail(format!("HTTP 200 without JSON: {text}")))?;
        if body.get("data").is_none() && body.get("errors").is_none() {
            return Err(TestCaseError::fail(format!(
                "not a GraphQL response: {text}"
            )));
        }
        for error in body["errors"].as_array().into_iter().flatten() {
            let code = error["extensions"]["code"].as_str().unwrap_or("(none)");
            if !CODES.contains(&code) {
                return Err(TestCaseError::fail(format!("error code {code}: {text}")));
            }
        }
    }
    Ok(())
}

fn seed() -> [u8; 32] {
    if let Ok(hex) = std::env::var("NEEDTOKNOW_FUZZ_SEED") {
        let bytes = hex::decode(hex.trim()).expect("NEEDTOKNOW_FUZZ_SEED: 64 hex digits");
        return bytes
            .try_into()
            .expect("NEEDTOKNOW_FUZZ_SEED: 64 hex digits");
    }
    rand::random()
}

fn fuzz(
    runtime: &tokio::runtime::Runtime,
    target: &Target,
    seed: [u8; 32],
    budget: Duration,
) -> u64 {
    let deadline = Instant::now() + budget;
    let mut cases = 0u64;
    let mut round = 0u64;
    while Instant::now() < deadline {
        let mut round_seed = seed;
        for (byte, salt) in round_seed.iter_mut().zip(round.to_le_bytes()) {
            *byte ^= salt;
        }
        let mut config = Config::with_cases(32);
        config.failure_persistence = None;
        config.max_shrink_iters = 500;
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &round_seed);
        let mut runner = TestRunner::new_with_rng(config, rng);
        let result = runner.run(&input(), |input| runtime.block_on(check(target, &input)));
        if let Err(failure) = result {
            panic!(
                "{failure}\nreplay with NEEDTOKNOW_FUZZ_SEED={} (round {round})",
                hex::encode(seed)
            );
        }
        cases += 32;
        round += 1;
    }
    cases
}

#[test]
fn no_request_makes_the_service_fail() {
    let budget = Duration::from_secs(
        std::env::var("NEEDTOKNOW_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let seed = seed();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = runtime.block_on(spawn_app_with(backend, |settings| {
            // One client sending fast: rate limits would only hide paths.
            settings.requests_per_minute = 1_000_000;
            settings.reveals_per_hour = 1_000_000;
            settings.identity_checks_per_hour = 1_000_000;
        }));
        let target = Target {
            tokens: app.tokens.values().cloned().collect(),
            app,
            outcomes: Mutex::default(),
        };
        let cases = fuzz(&runtime, &target, seed, budget / 2);
        let alive = runtime.block_on(async {
            let url = format!("{}/healthz", target.app.address);
            target
                .app
                .client
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        assert_eq!(alive.ok(), Some(200), "the service answers after the run");
        eprintln!(
            "fuzz on {backend:?}: {cases} requests in {:?}, seed {}; answers: {:?}",
            budget / 2,
            hex::encode(seed),
            target.outcomes.lock().unwrap()
        );
    }
}
