//! `needtoknow import`: a helpdesk export is written through the intake functions (checks,
//! redaction, encryption, audit); bad lines go to the reject file with line numbers and
//! reasons, never content; re-running, or running after a run cut short, writes nothing
//! twice.

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend, TestApp};

/// The binary's environment for the app's database and data directory.
fn env(app: &TestApp) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "NEEDTOKNOW_DATA_DIR",
            app.settings.data_dir.display().to_string(),
        ),
        ("NEEDTOKNOW_LOG", "warn".to_owned()),
    ];
    if let needtoknow::config::DatabaseSettings::Postgres { url } = &app.settings.database {
        env.push(("DATABASE_URL", url.expose().clone()));
    }
    env
}

fn import(app: &TestApp, file: &std::path::Path) -> (Option<i32>, String, String) {
    let output = crate::common::binary()
        .env_remove("DATABASE_URL")
        .envs(env(app))
        .args([
            "import",
            file.to_str().unwrap(),
            "--as",
            "chat-gateway",
            "--batch",
            "3",
        ])
        .output()
        .expect("the binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn lines() -> Vec<String> {
    let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nIMPORTED-SCAN");
    [
        json!({"type":"customer","externalId":"zd-u-1","fullName":"Alex Importer","email":"alex.importer@example.net","phone":"+44 20 7946 0000","dateOfBirth":"1970-01-02","region":"GB"}),
        json!({"type":"ticket","externalId":"zd-1","customer":"zd-u-1","channel":"email","topic":"billing","subject":"Refund","status":"resolved","createdAt":"2026-10-01T10:00:00Z","resolvedAt":"2026-10-02T10:00:00Z"}),
        json!({"type":"message","externalId":"zd-c-1","ticket":"zd-1","author":"customer","body":"My card 4242 4242 4242 4242 was charged","createdAt":"2026-10-01T10:00:00Z"}),
        json!({"type":"message","externalId":"zd-c-2","ticket":"zd-1","author":"agent","body":"Refunded.","createdAt":"2026-10-02T09:00:00Z"}),
        json!({"type":"ticket","externalId":"zd-2","customer":"zd-u-1","channel":"chat","topic":"shipping","subject":"Parcel","createdAt":"2026-11-30T10:00:00Z"}),
        json!({"type":"document","externalId":"zd-a-1","ticket":"zd-2","kind":"receipt","fileName":"r.png","contentBase64":png}),
        json!({"type":"customer","externalId":"zd-u-2","email":"alex.importer at example"}),
        json!({"type":"ticket","externalId":"zd-3","customer":"zd-u-404","channel":"email","topic":"billing","subject":"x"}),
        json!({"type":"message","externalId":"zd-c-3","ticket":"zd-404","author":"customer","body":"hi"}),
        json!({"type":"document","externalId":"zd-a-2","ticket":"zd-1","kind":"receipt","fileName":"r.exe","contentBase64":base64::engine::general_purpose::STANDARD.encode(b"MZ program")}),
    ]
    .iter()
    .map(Value::to_string)
    .chain(["{\"type\":\"potato\"}".to_owned(), "not json, alex.importer@example.net".to_owned()])
    .collect()
}

async fn run(backend: Backend) {
    let app = spawn_app(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let all = lines();
    let before = (
        app.rows("tickets").await,
        app.rows("messages").await,
        app.rows("attachments").await,
    );

    // A run cut short after the first batches, then the whole file: nothing twice.
    let partial = dir.path().join("partial.jsonl");
    std::fs::write(&partial, all[..4].join("\n")).unwrap();
    let (code, stdout, stderr) = import(&app, &partial);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, all.join("\n") + "\n").unwrap();
    let (code, stdout, stderr) = import(&app, &file);
    assert_eq!(
        code,
        Some(1),
        "rejected lines make the exit code 1: {stdout}{stderr}"
    );
    assert!(stdout.contains("12 lines: 0 customers, 1 tickets, 0 messages, 1 documents written; 4 already there; 6 rejected"), "{stdout}");
    let after = (
        app.rows("tickets").await,
        app.rows("messages").await,
        app.rows("attachments").await,
    );
    assert_eq!(after, (before.0 + 2, before.1 + 2, before.2 + 1));

    // Rejects: line numbers and reasons in line order, never the content.
    let rejects = std::fs::read_to_string(dir.path().join("export.jsonl.rejects.jsonl")).unwrap();
    let rejected: Vec<Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let numbers: Vec<i64> = rejected
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [7, 8, 9, 10, 11, 12]);
    assert!(rejected[0]["reason"].as_str().unwrap().contains("email"));
    assert!(rejected[1]["reason"].as_str().unwrap().contains("customer"));
    assert!(rejected[3]["reason"]
        .as_str()
        .unwrap()
        .contains("PDF, PNG, JPEG or HEIC"));
    assert!(
        !rejects.contains("alex.importer") && !rejects.contains("potato"),
        "{rejects}"
    );

    // Again: nothing written.
    let (code, stdout, stderr) = import(&app, &file);
    assert!(
        stdout.contains("0 customers, 0 tickets, 0 messages, 0 documents written; 6 already there"),
        "exit {code:?}: {stdout}{stderr}"
    );
    assert_eq!(
        after,
        (
            app.rows("tickets").await,
            app.rows("messages").await,
            app.rows("attachments").await
        )
    );

    // What agents see: the history as it was, card numbers redacted, not reopened.
    let data = app.data_as("supervisor", "{ tickets(first: 50) { edges { node { subject status createdAt resolvedAt messages { authorKind body } } } } }", json!({})).await;
    let refund = data["tickets"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .find(|t| t["subject"] == "Refund")
        .unwrap()
        .clone();
    assert_eq!(refund["status"], "RESOLVED");
    assert_eq!(refund["resolvedAt"], "2026-10-02T10:00:00+00:00");
    assert_eq!(
        refund["messages"],
        json!([
            { "authorKind": "customer", "body": "My card [card ••••4242] was charged" },
            { "authorKind": "agent", "body": "Refunded." },
        ])
    );
}

/// The import on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_is_imported_once_with_rejects_on_sqlite() {
    run(Backend::Sqlite).await
}

/// The import on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_is_imported_once_with_rejects_on_postgres() {
    run(Backend::Postgres).await
}
