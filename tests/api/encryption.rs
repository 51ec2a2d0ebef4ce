//! Encryption at rest: no demo plaintext in the raw SQLite file or a PostgreSQL dump, a
//! ciphertext moved to another row fails alone, and key rotation keeps everything readable.

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::on_both_databases;

/// Every personal value of the demo dataset.
const PLAINTEXTS: [&str; 16] = [
    "Robin Sample",
    "Kim Placeholder",
    "robin.sample@example.com",
    "kim.placeholder@example.org",
    "+1 555 0100 2233",
    "+44 20 7946 0958",
    "Harbour Lane",
    "Mill Road",
    "1984-07-19",
    "1990-02-03",
    "The reset email never arrives",
    "You charged my card",
    "Call me at",
    "Tracking stopped two days ago",
    "Still waiting for INV-2001 refund",
    "PASSPORT-SENTINEL-C1",
];

fn stored_bytes(app: &TestApp) -> Vec<u8> {
    match &app.settings.database {
        needtoknow::config::DatabaseSettings::Sqlite { path } => {
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let file = format!("{}{suffix}", path.display());
                bytes.extend(std::fs::read(&file).unwrap_or_default());
            }
            bytes
        }
        needtoknow::config::DatabaseSettings::Postgres { url } => {
            let output = std::process::Command::new("pg_dump")
                .args(["--data-only", url.expose()])
                .output()
                .expect("pg_dump is installed with postgresql-client");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            output.stdout
        }
    }
}

on_both_databases! {
    /// After seeding the demo, none of its personal values appear in the stored database,
    /// neither as text nor hex-encoded.
    async fn no_demo_plaintext_is_stored(app) {
        // Make sure the data is really there and readable through the API.
        let id = app.ticket_id("Verify my identity").await;
        let data = app
            .data_as("identity", "query($id: ID!) { ticket(id: $id) { customer { email { value } identityDocuments { value { contentBase64 } } } } }", json!({ "id": id }))
            .await;
        assert_eq!(data["ticket"]["customer"]["email"]["value"], "robin.sample@example.com");
        let stored = stored_bytes(&app);
        let text = String::from_utf8_lossy(&stored).to_lowercase();
        for plain in PLAINTEXTS {
            let hex = hex::encode(plain.as_bytes());
            assert!(!stored.windows(plain.len()).any(|w| w == plain.as_bytes()), "{plain} is stored in clear");
            assert!(!text.contains(&hex), "{plain} is stored hex-encoded");
        }
    }
}

async fn execute(app: &TestApp, sql: &str) {
    let db = needtoknow::db::connect(&app.settings).await.unwrap();
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .unwrap();
}

on_both_databases! {
    /// Robin's email ciphertext copied into Kim's row does not decrypt there: that one
    /// field fails with INTERNAL, and the rest of the response is served.
    async fn a_ciphertext_moved_to_another_row_fails_alone(app) {
        let parcel = app.ticket_id("Where is my parcel?").await;
        let password = app.ticket_id("Cannot reset my password").await;
        let kim = app.data_as("supervisor", "query($id: ID!) { ticket(id: $id) { customer { id } } }", json!({ "id": parcel })).await;
        let robin = app.data_as("supervisor", "query($id: ID!) { ticket(id: $id) { customer { id } } }", json!({ "id": password })).await;
        let id = |data: &serde_json::Value| crate::common::db_id(data["ticket"]["customer"]["id"].as_str().unwrap());
        let (kim, robin) = (id(&kim), id(&robin));
        execute(&app, &format!(
            "UPDATE customers SET email = (SELECT email FROM customers WHERE id = {robin}) WHERE id = {kim}"
        )).await;
        let (_, body) = app
            .query_as("supervisor", "query($id: ID!) { ticket(id: $id) { subject customer { fullName { value } email { value } phone { value } } } }", json!({ "id": parcel }))
            .await;
        let errors = body["errors"].as_array().expect("an error for the moved field");
        assert_eq!(errors.len(), 1, "{body:#}");
        assert_eq!(errors[0]["extensions"]["code"], "INTERNAL");
        assert_eq!(errors[0]["path"], json!(["ticket", "customer", "email"]));
        let customer = &body["data"]["ticket"]["customer"];
        assert_eq!(customer["email"], Value::Null);
        assert_eq!(customer["fullName"]["value"], "Kim Placeholder");
        assert_eq!(customer["phone"]["value"], "+** ** **** **58");
        assert_eq!(body["data"]["ticket"]["subject"], "Where is my parcel?");
        assert!(!body.to_string().contains("robin"), "{body}");
    }
}

/// `keys rotate` adds a master key version and re-wraps every data key while the service
/// runs; everything stays readable, there and after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_keeps_all_data_readable() {
    let (settings, dir, pg) = crate::helpers::fresh_settings(crate::helpers::Backend::Sqlite).await;
    let app =
        crate::helpers::spawn_with(settings.clone(), tempfile::tempdir().unwrap(), pg.clone())
            .await;
    let query = "{ tickets(first: 10) { edges { node { subject customer { fullName { value } email { value } paymentMethods { value { billingAddress } } chatHistory { value { body } } } } } } }";
    let before = app.data_as("supervisor", query, json!({})).await;

    let stdout = crate::helpers::run_cli(
        &[("NEEDTOKNOW_DATA_DIR", &settings.data_dir)],
        &["keys", "rotate"],
    );
    assert!(
        stdout.contains("added master key version 2")
            && stdout.contains("re-wrapped 2 data key(s)"),
        "{stdout}"
    );

    assert_eq!(
        app.data_as("supervisor", query, json!({})).await,
        before,
        "the running service reads on"
    );
    let db = needtoknow::db::connect(&settings).await.unwrap();
    let versions = db
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT DISTINCT master_version FROM data_keys".to_owned(),
        ))
        .await
        .unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].try_get_by_index::<i32>(0).unwrap(), 2);

    let restarted = crate::helpers::spawn_with(settings, dir, pg).await;
    let after = restarted.data_as("supervisor", query, json!({})).await;
    assert_eq!(after, before);
}
