//! Verification without revelation: match / no match per item, never a value; allowed for
//! the assignee, rate-limited, audited.

use serde_json::json;

use crate::helpers::{error_code, spawn_app_with, Backend};

const VERIFY: &str = "mutation($t: ID!, $a: IdentityAnswers!) {
    verifyCustomerIdentity(ticketId: $t, answers: $a) { dateOfBirth postalCode cardLast4 } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_checks_answer_match_or_no_match_only() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.identity_checks_per_hour = 3).await;
    let ticket = app.ticket_id("Cannot reset my password").await;
    let result = app
        .data_as("frontline", VERIFY, json!({ "t": ticket, "a": { "dateOfBirth": "1984-07-19", "postalCode": " 99501 ", "cardLast4": "1111" } }))
        .await;
    assert_eq!(
        result["verifyCustomerIdentity"],
        json!({ "dateOfBirth": "MATCH", "postalCode": "MATCH", "cardLast4": "NO_MATCH" })
    );
    let result = app
        .data_as(
            "frontline",
            VERIFY,
            json!({ "t": ticket, "a": { "cardLast4": "4242" } }),
        )
        .await;
    assert_eq!(
        result["verifyCustomerIdentity"],
        json!({ "dateOfBirth": "NOT_GIVEN", "postalCode": "NOT_GIVEN", "cardLast4": "MATCH" })
    );

    let other = app.ticket_id("Charged twice in March").await;
    let (_, body) = app
        .query_as(
            "frontline",
            VERIFY,
            json!({ "t": other, "a": { "cardLast4": "4242" } }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let unassigned = app.ticket_id("Refund not received").await;
    let (_, body) = app
        .query_as(
            "billing",
            VERIFY,
            json!({ "t": unassigned, "a": { "cardLast4": "5454" } }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        "FORBIDDEN",
        "a queue agent must take the ticket first"
    );

    app.data_as(
        "frontline",
        VERIFY,
        json!({ "t": ticket, "a": { "postalCode": "00000" } }),
    )
    .await;
    let (_, body) = app
        .query_as(
            "frontline",
            VERIFY,
            json!({ "t": ticket, "a": { "postalCode": "99501" } }),
        )
        .await;
    assert_eq!(error_code(&body), "RATE_LIMITED");

    let events = app
        .data_as("auditor", "{ auditEvents(filter: { action: IDENTITY_CHECKED }) { edges { node { fields reason } } } }", json!({}))
        .await;
    let events = events["auditEvents"]["edges"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    let text = serde_json::to_string(&events).unwrap();
    assert!(text.contains("cardLast4: no match"), "{text}");
    for value in ["1984", "99501", "1111", "4242", "00000"] {
        assert!(!text.contains(value), "{value} in the audit trail");
    }
}
