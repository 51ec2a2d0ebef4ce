//! Consent notices for the chat widget (no agent token), consents recorded on a ticket, and
//! recording consent driving how long transcripts are kept.

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app_with, Backend};
use needtoknow::retention::{RetentionPolicy, Sweeper};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_are_public_and_recording_consent_keeps_transcripts() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let notices = |topic: &'static str, channel: &'static str| {
        let url = format!(
            "{}/public/consent-notices?topic={topic}&channel={channel}",
            app.address
        );
        let client = app.client.clone();
        async move {
            let response = client.get(url).send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = notices("shipping", "chat").await;
    assert_eq!(status, 200);
    assert_eq!(body["notices"].as_array().unwrap().len(), 1);
    assert_eq!(body["notices"][0]["kind"], "recording");
    assert_eq!(body["notices"][0]["version"], "2026-01");
    assert!(body["notices"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("To help you best, we'll need to access your account details."));
    let (_, body) = notices("identity_verification", "web").await;
    let kinds: Vec<&str> = body["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["identity_check"]);
    let (status, _) = notices("Robert%27%3B", "chat").await;
    assert_eq!(status, 400);

    let parcel = app.ticket_id("Where is my parcel?").await;
    let record = "mutation($t: ID!, $v: String!) { recordConsent(ticketId: $t, kind: \"recording\", noticeVersion: $v) { kind noticeVersion withdrawnAt } }";
    let (_, body) = app
        .query_as("frontline", record, json!({ "t": parcel, "v": "1999-01" }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let (_, body) = app
        .query_as("billing", record, json!({ "t": parcel, "v": "2026-01" }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let recorded = app
        .data_as("frontline", record, json!({ "t": parcel, "v": "2026-01" }))
        .await;
    assert_eq!(
        recorded["recordConsent"],
        json!({ "kind": "recording", "noticeVersion": "2026-01", "withdrawnAt": null })
    );
    // Recorded consents are audited on the ticket they were given through; refused ones
    // are not.
    let trail = app
        .data_as(
            "auditor",
            "{ auditEvents(first: 100) { edges { node { action ticketId reason } } } }",
            json!({}),
        )
        .await;
    let consents: Vec<&Value> = trail["auditEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .filter(|e| e["action"] == "CONSENT_RECORDED" && e["ticketId"] == json!(parcel))
        .collect();
    assert_eq!(consents.len(), 1, "{trail}");
    assert_eq!(consents[0]["ticketId"], json!(parcel));
    assert_eq!(consents[0]["reason"], "recording, notice 2026-01");

    // With consent, Kim's transcript outlives the resolution; withdrawn, it goes.
    app.data_as(
        "frontline",
        "mutation($t: ID!) { setTicketStatus(ticketId: $t, status: RESOLVED) { status } }",
        json!({ "t": parcel }),
    )
    .await;
    let db = needtoknow::db::connect(&app.settings).await.unwrap();
    let sweeper = Sweeper {
        db: db.clone(),
        writer: needtoknow::writer::Writer::new(db.clone()),
        ledger: needtoknow::ledger::Ledger::at(app.settings.erasure_ledger_path()),
        policy: RetentionPolicy::default(),
    };
    let later = Utc::now() + Duration::days(1);
    assert_eq!(sweeper.sweep(later).await.unwrap().messages, 0);
    let withdrawn = app
        .data_as(
            "frontline",
            "mutation($t: ID!) { withdrawConsent(ticketId: $t, kind: \"recording\") }",
            json!({ "t": parcel }),
        )
        .await;
    assert_eq!(withdrawn["withdrawConsent"], 1);
    assert_eq!(sweeper.sweep(later).await.unwrap().messages, 1);
}
