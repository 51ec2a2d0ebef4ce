//! Retention: a sweep as of a later date purges exactly what the configuration says, never
//! touches open tickets, is idempotent and audited.

use chrono::{Duration, Utc};
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::json;

use crate::helpers::{spawn_app_with, Backend};
use needtoknow::retention::{RetentionPolicy, SweepReport, Sweeper};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_purges_exactly_what_the_periods_say() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let db = needtoknow::db::connect(&app.settings).await.unwrap();
    let policy = RetentionPolicy::default();
    let sweeper = Sweeper {
        db: db.clone(),
        writer: needtoknow::writer::Writer::new(db.clone()),
        ledger: needtoknow::ledger::Ledger::at(app.settings.erasure_ledger_path()),
        policy: policy.clone(),
    };
    let count = |report: SweepReport| (report.attachments, report.messages);

    // Now: the resolved technical ticket's transcript is kept (Robin consented to
    // recording), the identity document sits on an open ticket.
    assert_eq!(count(sweeper.sweep(Utc::now()).await.unwrap()), (0, 0));
    assert_eq!(
        count(
            sweeper
                .sweep(Utc::now() + Duration::days(1000))
                .await
                .unwrap()
        ),
        (0, 1),
        "only the resolved ticket's transcript goes; open tickets are never touched"
    );

    // Resolving the identity ticket starts its document's 7 days.
    let identity = app.ticket_id("Verify my identity").await;
    app.data_as(
        "identity",
        "mutation($t: ID!) { setTicketStatus(ticketId: $t, status: RESOLVED) { status } }",
        json!({ "t": identity }),
    )
    .await;
    assert_eq!(
        count(sweeper.sweep(Utc::now() + Duration::days(6)).await.unwrap()),
        (0, 0)
    );
    assert_eq!(
        count(sweeper.sweep(Utc::now() + Duration::days(8)).await.unwrap()),
        (1, 0)
    );
    assert_eq!(
        count(sweeper.sweep(Utc::now() + Duration::days(8)).await.unwrap()),
        (0, 0),
        "idempotent"
    );
    assert!(entity::attachment::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .is_empty());

    // Without recording consent a transcript goes as soon as its ticket is resolved.
    db.execute_unprepared("UPDATE consents SET withdrawn_at = CURRENT_TIMESTAMP")
        .await
        .unwrap();
    let password = app.ticket_id("Cannot reset my password").await;
    app.data_as(
        "frontline",
        "mutation($t: ID!) { setTicketStatus(ticketId: $t, status: CLOSED) { status } }",
        json!({ "t": password }),
    )
    .await;
    assert_eq!(
        count(
            sweeper
                .sweep(Utc::now() + Duration::seconds(1))
                .await
                .unwrap()
        ),
        (0, 1)
    );

    let purges = app
        .data_as("auditor", "{ auditEvents(first: 50, filter: { action: PURGED }) { edges { node { fields reason actorRole } } } }", json!({}))
        .await;
    let purges = purges["auditEvents"]["edges"].as_array().unwrap();
    assert_eq!(purges.len(), 3);
    assert!(purges.iter().all(|e| e["node"]["actorRole"] == "retention"));
    assert!(matches!(
        needtoknow::audit::verify(&db).await.unwrap(),
        needtoknow::audit::Verdict::Intact { .. }
    ));

    let stdout = crate::helpers::run_cli(
        &[("NEEDTOKNOW_DATA_DIR", &app.settings.data_dir)],
        &["retention", "sweep", "--as-of", "2100-01-01T00:00:00Z"],
    );
    assert!(
        stdout.contains("purged 0 attachment(s) and 0 message(s)"),
        "{stdout}"
    );
}

/// A negative or unparsable retention period refuses to start.
#[test]
fn a_bad_retention_period_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["id_document=-7d", "id_document=soon"] {
        let output = crate::common::binary()
            .env("NEEDTOKNOW_DATA_DIR", dir.path())
            .env("NEEDTOKNOW_RETENTION", bad)
            .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(
            err.contains("NEEDTOKNOW_RETENTION") && err.trim().lines().count() == 1,
            "{err}"
        );
    }
}
