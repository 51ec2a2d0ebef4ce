//! Data-subject rights: the privacy officer exports everything held on a customer and
//! erases a customer for good; the audit trail stays verifiable.

use serde_json::{json, Value};

use crate::helpers::{assert_no_errors, error_code};
use crate::on_both_databases;

const EXPORT: &str = "query($c: ID!) { exportCustomerData(customerId: $c) }";
const ERASE: &str = "mutation($c: ID!) { eraseCustomer(customerId: $c) { customerId erasedAt } }";

on_both_databases! {
    /// Export returns every decrypted value and the access report, and is audited; erasure
    /// destroys the key and the rows, answers the same when repeated, and leaves the chain
    /// intact.
    async fn the_privacy_officer_exports_and_erases_a_customer(app) {
        let officer = app.create_agent("privacy", "admin").await;
        let ticket = app.ticket_id("Charged twice in March").await;
        let data = app.data_as("billing", "query($id: ID!) { ticket(id: $id) { customer { id fullName { value } } } }", json!({ "id": ticket })).await;
        let robin = data["ticket"]["customer"]["id"].as_str().unwrap().to_owned();
        let call = |query: &'static str, token: String, c: String| {
            let app = &app;
            async move { app.post_graphql(Some(&token), &json!({ "query": query, "variables": { "c": c } })).await.1 }
        };

        let export = call(EXPORT, officer.clone(), robin.clone()).await;
        assert_no_errors(&export);
        let document = &export["data"]["exportCustomerData"];
        assert_eq!(document["customer"]["email"], "robin.sample@example.com");
        assert_eq!(document["customer"]["postalAddress"]["street"], "12 Harbour Lane");
        assert_eq!(document["customer"]["dateOfBirth"], "1984-07-19");
        assert_eq!(document["paymentMethods"][0]["billingAddress"]["city"], "Springfield");
        assert_eq!(document["invoices"].as_array().unwrap().len(), 2);
        assert_eq!(document["tickets"].as_array().unwrap().len(), 4);
        let attachment = document["tickets"][3]["attachments"][0]["contentBase64"].as_str().unwrap();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(attachment).unwrap();
        assert!(bytes.windows(20).any(|w| w == b"PASSPORT-SENTINEL-C1"));
        let report = document["accessReport"].as_array().unwrap();
        let viewed = report.iter().find(|e| e["action"] == "viewed").unwrap();
        assert_eq!(viewed["purpose"], "billing");
        assert!(report.iter().any(|e| e["action"] == "customer_created"));

        let supervisor = app.token("supervisor").to_owned();
        assert_eq!(error_code(&call(EXPORT, supervisor.clone(), robin.clone()).await), "FORBIDDEN");
        assert_eq!(error_code(&call(ERASE, supervisor, robin.clone()).await), "FORBIDDEN");
        assert_eq!(error_code(&call(EXPORT, officer.clone(), "99999".into()).await), "NOT_FOUND");
        assert_eq!(error_code(&call(ERASE, officer.clone(), "99999".into()).await), "NOT_FOUND");

        let erased = call(ERASE, officer.clone(), robin.clone()).await;
        assert_no_errors(&erased);
        let again = call(ERASE, officer.clone(), robin.clone()).await;
        assert_no_errors(&again);
        assert_eq!(again["data"]["eraseCustomer"]["customerId"], json!(robin));
        let first_at: chrono::DateTime<chrono::Utc> = erased["data"]["eraseCustomer"]["erasedAt"].as_str().unwrap().parse().unwrap();
        let again_at: chrono::DateTime<chrono::Utc> = again["data"]["eraseCustomer"]["erasedAt"].as_str().unwrap().parse().unwrap();
        assert!((again_at - first_at).num_seconds().abs() <= 1, "the same answer: {first_at} {again_at}");

        let subjects = app.visible_ticket_subjects("supervisor").await;
        assert_eq!(subjects, ["Where is my parcel?", "Refund not received"]);
        assert_eq!(error_code(&call(EXPORT, officer.clone(), robin.clone()).await), "NOT_FOUND");
        let (_, body) = app.query_as("billing", "query($id: ID!) { ticket(id: $id) { subject } }", json!({ "id": ticket })).await;
        assert_eq!(error_code(&body), "NOT_FOUND");

        use sea_orm::EntityTrait;
        let db = needtoknow::db::connect(&app.settings).await.unwrap();
        let id = crate::common::db_id(&robin);
        assert!(entity::data_key::Entity::find_by_id(id).one(&db).await.unwrap().is_none(), "the key is destroyed");
        assert!(entity::customer::Entity::find_by_id(id).one(&db).await.unwrap().is_none());
        assert_eq!(entity::message::Entity::find().all(&db).await.unwrap().len(), 2, "only Kim's messages remain");
        assert!(entity::attachment::Entity::find().all(&db).await.unwrap().is_empty());
        assert!(matches!(needtoknow::audit::verify(&db).await.unwrap(), needtoknow::audit::Verdict::Intact { .. }));
        let events = app.data_as("auditor", "query($c: ID!) { auditEvents(first: 50, filter: { customerId: $c }) { edges { node { action } } } }", json!({ "c": robin })).await;
        let actions: Vec<&Value> = events["auditEvents"]["edges"].as_array().unwrap().iter().map(|e| &e["node"]["action"]).collect();
        assert_eq!(actions[0], "CUSTOMER_ERASED");
        assert!(actions.contains(&&json!("CUSTOMER_EXPORTED")));
    }
}
