//! Ticket visibility (the default policy: assigned, unassigned in a queue, supervisors' team,
//! auditors none), `NOT_FOUND` for foreign tickets, filters and pagination.

use serde_json::json;

use crate::helpers::{assert_no_errors, error_code};
use crate::on_both_databases;

on_both_databases! {
    /// Each demo agent's list holds exactly the tickets the default policy says they may see.
    async fn each_agent_lists_exactly_the_tickets_they_may_see(app) {
        let expect = [
            ("frontline", vec!["Cannot reset my password", "Where is my parcel?"]),
            ("frontline2", vec!["App crashes on upload"]),
            ("billing", vec!["Charged twice in March", "Refund not received"]),
            ("identity", vec!["Verify my identity"]),
            (
                "supervisor",
                vec![
                    "Cannot reset my password",
                    "Charged twice in March",
                    "App crashes on upload",
                    "Verify my identity",
                    "Where is my parcel?",
                    "Refund not received",
                ],
            ),
            ("auditor", vec![]),
        ];
        for (handle, subjects) in expect {
            assert_eq!(app.visible_ticket_subjects(handle).await, subjects, "as {handle}");
        }
    }
}

on_both_databases! {
    /// A ticket the agent may not see answers exactly like one that does not exist, also
    /// when the customer's other tickets are asked for (they are read with the ticket).
    async fn a_foreign_ticket_is_indistinguishable_from_a_missing_one(app) {
        let foreign = app.ticket_id("Charged twice in March").await;
        for query in [
            "query($id: ID!) { ticket(id: $id) { subject customer { fullName { value } } } }",
            "query($id: ID!) { ticket(id: $id) { subject customer { otherTickets { value { subject } } } } }",
        ] {
            let (status_foreign, foreign_body) = app.query_as("frontline", query, json!({ "id": foreign })).await;
            let (status_missing, missing_body) = app.query_as("frontline", query, json!({ "id": "99999" })).await;
            assert_eq!(status_foreign, status_missing);
            assert_eq!(error_code(&foreign_body), "NOT_FOUND");
            assert_eq!(foreign_body["errors"][0]["message"], missing_body["errors"][0]["message"]);
            assert_eq!(foreign_body["data"], missing_body["data"]);
            let text = foreign_body.to_string();
            assert!(!text.contains("Charged twice") && !text.contains("Robin"), "{text}");

            let (_, auditor) = app.query_as("auditor", query, json!({ "id": foreign })).await;
            assert_eq!(error_code(&auditor), "NOT_FOUND");
        }
    }
}

on_both_databases! {
    /// A page shows each ticket's assignee (read with the page) as the ticket itself does,
    /// and null for an unassigned one.
    async fn a_page_names_the_assignees_its_tickets_name(app) {
        let (_, body) = app
            .query_as(
                "supervisor",
                "{ tickets(first: 50) { edges { node { id subject assignee { handle displayName } } } } }",
                json!({}),
            )
            .await;
        assert_no_errors(&body);
        let edges = body["data"]["tickets"]["edges"].as_array().unwrap().clone();
        let by_subject = |subject: &str| {
            edges
                .iter()
                .find(|e| e["node"]["subject"] == subject)
                .map(|e| e["node"]["assignee"].clone())
                .unwrap()
        };
        assert_eq!(by_subject("Charged twice in March")["handle"], "billing");
        assert_eq!(by_subject("Refund not received"), serde_json::Value::Null);
        for edge in &edges {
            let (_, one) = app
                .query_as(
                    "supervisor",
                    "query($id: ID!) { ticket(id: $id) { assignee { handle displayName } } }",
                    json!({ "id": edge["node"]["id"] }),
                )
                .await;
            assert_eq!(one["data"]["ticket"]["assignee"], edge["node"]["assignee"]);
        }
    }
}

on_both_databases! {
    /// An agent opens their own ticket and reads its messages and customer.
    async fn an_assignee_reads_their_ticket_with_messages(app) {
        let id = app.ticket_id("Charged twice in March").await;
        let (_, body) = app
            .query_as(
                "billing",
                "query($id: ID!) { ticket(id: $id) { subject topic status assignedToMe
                   assignee { handle } messages { authorKind body }
                   customer { fullName { value access } } } }",
                json!({ "id": id }),
            )
            .await;
        assert_no_errors(&body);
        let ticket = &body["data"]["ticket"];
        assert_eq!(ticket["topic"], "billing");
        assert_eq!(ticket["status"], "OPEN");
        assert_eq!(ticket["assignedToMe"], true);
        assert_eq!(ticket["assignee"]["handle"], "billing");
        assert_eq!(
            ticket["messages"],
            json!([{ "authorKind": "customer", "body": "You charged my card [card ••••4242] twice." }]),
            "card numbers are redacted before storage"
        );
        assert_eq!(ticket["customer"]["fullName"], json!({ "value": "Robin Sample", "access": "PLAIN" }));
    }
}

on_both_databases! {
    /// Status and topic filters narrow the list within what the agent may see.
    async fn the_ticket_list_filters_by_status_and_topic(app) {
        let query = "query($status: TicketStatus, $topic: String) {
            tickets(status: $status, topic: $topic) { edges { node { subject } } } }";
        let subjects = |body: &serde_json::Value| -> Vec<String> {
            body["data"]["tickets"]["edges"].as_array().unwrap().iter()
                .map(|e| e["node"]["subject"].as_str().unwrap().to_owned()).collect()
        };
        let (_, body) = app.query_as("supervisor", query, json!({ "status": "RESOLVED" })).await;
        assert_eq!(subjects(&body), ["App crashes on upload"]);
        let (_, body) = app.query_as("supervisor", query, json!({ "topic": "billing" })).await;
        assert_eq!(subjects(&body), ["Charged twice in March", "Refund not received"]);
        let (_, body) = app.query_as("frontline", query, json!({ "topic": "billing" })).await;
        assert_eq!(subjects(&body), Vec::<String>::new(), "filters never widen visibility");
        let (_, body) = app.query_as("frontline", query, json!({ "topic": "Robert'); DROP TABLE tickets;--" })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
    }
}

on_both_databases! {
    /// Pages follow each other through opaque cursors, without gaps or repeats.
    async fn the_ticket_list_pages_with_cursors(app) {
        let query = "query($after: String) { tickets(first: 4, after: $after) {
            edges { cursor node { subject } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
        let (_, first) = app.query_as("supervisor", query, json!({})).await;
        assert_no_errors(&first);
        let page = &first["data"]["tickets"];
        assert_eq!(page["edges"].as_array().unwrap().len(), 4);
        assert_eq!(page["pageInfo"]["hasNextPage"], true);
        assert_eq!(page["pageInfo"]["hasPreviousPage"], false);
        let (_, second) = app
            .query_as("supervisor", query, json!({ "after": page["pageInfo"]["endCursor"] }))
            .await;
        let page = &second["data"]["tickets"];
        let subjects: Vec<&str> = page["edges"].as_array().unwrap().iter()
            .map(|e| e["node"]["subject"].as_str().unwrap()).collect();
        assert_eq!(subjects, ["Where is my parcel?", "Refund not received"]);
        assert_eq!(page["pageInfo"]["hasNextPage"], false);

        for bad in [json!({ "after": "bm90LWEtY3Vyc29y" }), json!({ "after": "%%%" })] {
            let (_, body) = app.query_as("supervisor", query, bad).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT");
        }
        for first in [0, 101, -1] {
            let (_, body) = app
                .query_as("supervisor", "query($n: Int) { tickets(first: $n) { edges { cursor } } }", json!({ "n": first }))
                .await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "first: {first}");
        }
    }
}

on_both_databases! {
    /// An inbound email or phone number links to the customer's tickets the agent may see,
    /// through blind indexes; formatting and case do not matter, unknown contacts find
    /// nothing, and the index column holds no plaintext.
    async fn an_inbound_contact_links_to_the_customers_visible_tickets(app) {
        let query = "query($e: String, $p: String) { ticketsByContact(email: $e, phone: $p) { edges { node { subject } } } }";
        let subjects = |body: &serde_json::Value| -> Vec<String> {
            body["ticketsByContact"]["edges"].as_array().unwrap().iter().map(|t| t["node"]["subject"].as_str().unwrap().to_owned()).collect()
        };
        let found = app.data_as("frontline", query, json!({ "e": " Robin.Sample@EXAMPLE.com" })).await;
        assert_eq!(subjects(&found), ["Cannot reset my password"]);
        let found = app.data_as("supervisor", query, json!({ "p": "+15550100-2233" })).await;
        assert_eq!(subjects(&found).len(), 4);
        let found = app.data_as("frontline", query, json!({ "e": "nobody@example.com" })).await;
        assert_eq!(subjects(&found), Vec::<String>::new());
        let (_, body) = app.query_as("frontline", query, json!({ "e": "a@b.c", "p": "123456" })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
        let (_, body) = app.query_as("auditor", query, json!({ "e": "robin.sample@example.com" })).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
}

on_both_databases! {
    /// A field added through the field table alone (`preferredLanguage`, class `account`) is
    /// plain to whoever sees the account, follows its class for everyone else, and is in
    /// the privacy officer's export.
    async fn preferred_language_is_plain_to_whoever_sees_the_account(app) {
        let id = app.ticket_id("Refund not received").await;
        // billing, through the queue: sees the account only.
        let data = app
            .data_as(
                "billing",
                "query($t: ID!) { ticket(id: $t) { customer {
                    preferredLanguage { value access dataClass } fullName { access } } } }",
                json!({ "t": id }),
            )
            .await;
        assert_eq!(
            data["ticket"]["customer"]["preferredLanguage"],
            json!({ "value": "en", "access": "PLAIN", "dataClass": "ACCOUNT" })
        );
        assert_eq!(data["ticket"]["customer"]["fullName"]["access"], "HIDDEN");
        let (_, body) = app
            .query_as("auditor", "query($t: ID!) { ticket(id: $t) { id } }", json!({ "t": id }))
            .await;
        assert_eq!(error_code(&body), "NOT_FOUND");

        let admin = app.create_agent("privacy-officer", "admin").await;
        let customer = app
            .data_as("supervisor", "query($t: ID!) { ticket(id: $t) { customer { id } } }", json!({ "t": id }))
            .await["ticket"]["customer"]["id"]
            .clone();
        let (_, body) = app
            .post_graphql(
                Some(&admin),
                &json!({ "query": "query($c: ID!) { exportCustomerData(customerId: $c) }",
                         "variables": { "c": customer } }),
            )
            .await;
        assert_no_errors(&body);
        assert_eq!(body["data"]["exportCustomerData"]["customer"]["preferredLanguage"], "en");
    }
}

on_both_databases! {
    /// A customer's chat history runs ticket by ticket, in the order of their other tickets,
    /// and each ticket's messages in the order they were written, even when an older
    /// ticket got a message after newer tickets' messages.
    async fn chat_history_runs_ticket_by_ticket_in_the_order_written(app) {
        let charged = app.ticket_id("Charged twice in March").await;
        let reply = "mutation($t: ID!, $b: String!) { replyToTicket(ticketId: $t, body: $b) { messageId } }";
        let (_, body) = app
            .query_as("supervisor", reply, json!({ "t": charged, "b": "Looking into the double charge now." }))
            .await;
        assert_no_errors(&body);

        // Robin's other tickets, seen from the first: "Charged twice in March" (ticket 2,
        // its message, then the reply just written), "App crashes on upload" (ticket 3),
        // "Verify my identity" (ticket 4, no message). The reply's id is the highest.
        let query = "query($id: ID!) { ticket(id: $id) { customer { chatHistory { value { body } } } } }";
        let id = app.ticket_id("Cannot reset my password").await;
        let (_, body) = app.query_as("supervisor", query, json!({ "id": id })).await;
        assert_no_errors(&body);
        let bodies: Vec<&str> = body["data"]["ticket"]["customer"]["chatHistory"]["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect();
        assert_eq!(
            bodies,
            [
                "You charged my card [card ••••4242] twice.",
                "Looking into the double charge now.",
                "Call me at [phone] or write to [email].",
            ]
        );
    }
}

/// The names of `tickets`' indexes of a customer's tickets.
async fn customer_ticket_indexes(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'tickets'"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tickets'",
    };
    db.query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "name").unwrap())
        .filter(|name| name.starts_with("idx_tickets_customer"))
        .collect()
}

/// Migration 17 carries a ticket summary's columns in the index of a customer's tickets,
/// and SQLite answers the list of a page's customers' tickets from it alone, in the
/// loader's order (no sorting); undone, migration 15's index is back, and redone, the
/// covering one again.
#[tokio::test]
async fn customers_tickets_are_listed_from_one_index_and_migration_17_can_be_undone() {
    use crate::helpers::{migrated_database, Backend};
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, Statement};

    for backend in [Backend::Sqlite, Backend::Postgres] {
        let fresh = migrated_database(backend).await;
        let db = &fresh.db;
        assert_eq!(
            customer_ticket_indexes(db).await,
            ["idx_tickets_customer_summaries"]
        );
        if db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
            let plan: Vec<String> = db
                .query_all_raw(Statement::from_string(
                    sea_orm::DatabaseBackend::Sqlite,
                    "EXPLAIN QUERY PLAN SELECT id, customer_id, topic, status, subject, \
                     created_at, resolved_at FROM tickets WHERE customer_id IN (1, 2) \
                     ORDER BY customer_id, id",
                ))
                .await
                .unwrap()
                .iter()
                .map(|row| row.try_get::<String>("", "detail").unwrap())
                .collect();
            let plan = plan.join("; ");
            assert!(
                plan.contains("COVERING INDEX idx_tickets_customer_summaries"),
                "{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }

        crate::helpers::undo_migrations_from(db, "000017").await;
        assert_eq!(
            customer_ticket_indexes(db).await,
            ["idx_tickets_customer_id_id"]
        );
        Migrator::up(db, None).await.unwrap();
        assert_eq!(
            customer_ticket_indexes(db).await,
            ["idx_tickets_customer_summaries"]
        );
    }
}
