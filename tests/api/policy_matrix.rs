//! The shipped policy's default matrix (README, "Policies"), pinned over HTTP as each demo agent on
//! each demo ticket they may see, including that hidden values are absent from the body.

use serde_json::{json, Value};

use crate::helpers::assert_no_errors;
use crate::on_both_databases;

/// Every protected field of `Customer` with its data class.
const FIELDS: [(&str, &str); 14] = [
    ("accountStatus", "account"),
    ("plan", "account"),
    ("customerSince", "account"),
    ("region", "account"),
    ("fullName", "name"),
    ("email", "contact"),
    ("phone", "contact"),
    ("postalAddress", "address"),
    ("dateOfBirth", "identity"),
    ("identityDocuments", "identity"),
    ("paymentMethods", "billing"),
    ("invoices", "billing"),
    ("otherTickets", "ticket_history"),
    ("chatHistory", "chat_history"),
];

const P: &str = "PLAIN";
const M: &str = "MASKED";
const H: &str = "HIDDEN";
const NONE: &str = "NONE";
const WR: &str = "WITH_REASON";
const WA: &str = "WITH_APPROVAL";

/// (class, access, reveal) for the classes other than `account` and `ticket_history`,
/// which are PLAIN for whoever may see the ticket.
type Row = [(&'static str, &'static str, &'static str); 6];

const FRONTLINE_GENERAL: Row = [
    ("name", P, NONE),
    ("contact", M, WR),
    ("address", H, NONE),
    ("identity", H, NONE),
    ("billing", H, NONE),
    ("chat_history", H, NONE),
];
const FRONTLINE_SHIPPING: Row = [
    ("name", P, NONE),
    ("contact", M, WR),
    ("address", P, NONE),
    ("identity", H, NONE),
    ("billing", H, NONE),
    ("chat_history", H, NONE),
];
const BILLING_ON_BILLING: Row = [
    ("name", P, NONE),
    ("contact", M, WR),
    ("address", M, WR),
    ("identity", H, NONE),
    ("billing", P, NONE),
    ("chat_history", H, NONE),
];
const IDENTITY_ON_IDENTITY: Row = [
    ("name", P, NONE),
    ("contact", P, NONE),
    ("address", P, NONE),
    ("identity", P, NONE),
    ("billing", H, NONE),
    ("chat_history", H, NONE),
];
const SUPERVISOR: Row = [
    ("name", P, NONE),
    ("contact", M, WR),
    ("address", M, WR),
    ("identity", H, WA),
    ("billing", M, WA),
    ("chat_history", M, WA),
];
const NON_ASSIGNEE: Row = [
    ("name", H, NONE),
    ("contact", H, NONE),
    ("address", H, NONE),
    ("identity", H, NONE),
    ("billing", H, NONE),
    ("chat_history", H, NONE),
];

fn customer_query() -> String {
    let fields: Vec<String> = FIELDS
        .iter()
        .map(|(f, _)| format!("{f} {{ access reveal dataClass handOff {{ role }} }}"))
        .collect();
    format!(
        "query($id: ID!) {{ ticket(id: $id) {{ customer {{ {} }} }} }}",
        fields.join(" ")
    )
}

fn expected(row: &Row, class: &str) -> (&'static str, &'static str) {
    if class == "account" || class == "ticket_history" {
        return (P, NONE);
    }
    row.iter()
        .find(|(c, _, _)| *c == class)
        .map(|(_, a, r)| (*a, *r))
        .expect("class in row")
}

async fn check(app: &crate::helpers::TestApp, handle: &str, subject: &str, row: &Row) {
    let id = app.ticket_id(subject).await;
    let (_, body) = app
        .query_as(handle, &customer_query(), json!({ "id": id }))
        .await;
    assert_no_errors(&body);
    let customer = &body["data"]["ticket"]["customer"];
    for (field, class) in FIELDS {
        let (access, reveal) = expected(row, class);
        let got = &customer[field];
        assert_eq!(
            (
                got["access"].as_str(),
                got["reveal"].as_str(),
                got["dataClass"].as_str()
            ),
            (
                Some(access),
                Some(reveal),
                Some(class.to_uppercase().as_str())
            ),
            "{handle} on {subject:?}: {field}"
        );
    }
}

on_both_databases! {
    /// Every demo agent on every ticket they may see gets exactly the default matrix.
    async fn every_agent_on_every_visible_ticket_gets_the_default_matrix(app) {
        let cases: [(&str, &str, &Row); 11] = [
            ("frontline", "Cannot reset my password", &FRONTLINE_GENERAL),
            ("frontline", "Where is my parcel?", &FRONTLINE_SHIPPING),
            ("frontline2", "App crashes on upload", &FRONTLINE_GENERAL),
            ("billing", "Charged twice in March", &BILLING_ON_BILLING),
            ("billing", "Refund not received", &NON_ASSIGNEE),
            ("identity", "Verify my identity", &IDENTITY_ON_IDENTITY),
            ("supervisor", "Cannot reset my password", &SUPERVISOR),
            ("supervisor", "Charged twice in March", &SUPERVISOR),
            ("supervisor", "App crashes on upload", &SUPERVISOR),
            ("supervisor", "Verify my identity", &SUPERVISOR),
            ("supervisor", "Refund not received", &SUPERVISOR),
        ];
        for (handle, subject, row) in cases {
            check(&app, handle, subject, row).await;
        }
    }
}

fn full_customer_query() -> &'static str {
    "query($id: ID!) { ticket(id: $id) { customer {
        fullName { value } email { value } phone { value } postalAddress { value }
        dateOfBirth { value }
        identityDocuments { value { fileName sizeBytes contentBase64 } }
        paymentMethods { value { brand last4 expMonth expYear billingAddress } }
        invoices { value { number status amountCents currency } }
        otherTickets { value { subject topic status } }
        chatHistory { value { body } } } } }"
}

async fn customer_as(
    app: &crate::helpers::TestApp,
    handle: &str,
    subject: &str,
) -> (Value, String) {
    let id = app.ticket_id(subject).await;
    let (_, body) = app
        .query_as(handle, full_customer_query(), json!({ "id": id }))
        .await;
    assert_no_errors(&body);
    let text = body.to_string();
    (body["data"]["ticket"]["customer"].clone(), text)
}

on_both_databases! {
    /// Masks are exactly the documented ones (README, "Masks"), and hidden values appear nowhere in the body.
    async fn masks_match_the_product_and_hidden_values_are_absent(app) {
        let (c, text) = customer_as(&app, "frontline", "Cannot reset my password").await;
        assert_eq!(c["fullName"]["value"], "Robin Sample");
        assert_eq!(c["email"]["value"], "r***@example.com");
        assert_eq!(c["phone"]["value"], "+* *** **** **33");
        for hidden in ["postalAddress", "dateOfBirth", "identityDocuments", "paymentMethods", "invoices", "chatHistory"] {
            assert_eq!(c[hidden]["value"], Value::Null, "{hidden}");
        }
        for secret in ["Harbour", "99501", "1984", "PASSPORT", "passport", "INV-10", "Visa", "0100", "robin.sample"] {
            assert!(!text.contains(secret), "{secret} leaked to frontline: {text}");
        }

        let (c, _) = customer_as(&app, "billing", "Charged twice in March").await;
        assert_eq!(c["postalAddress"]["value"], "Springfield, US");
        assert_eq!(
            c["paymentMethods"]["value"],
            json!([{ "brand": "Visa", "last4": "4242", "expMonth": 8, "expYear": 2029,
                     "billingAddress": "12 Harbour Lane, Springfield 99501, US" }])
        );
        assert_eq!(c["invoices"]["value"][1], json!({ "number": "INV-1002", "status": "refunded", "amountCents": 4200, "currency": "USD" }));

        let (c, _) = customer_as(&app, "identity", "Verify my identity").await;
        assert_eq!(c["dateOfBirth"]["value"], "1984-07-19");
        assert_eq!(c["postalAddress"]["value"], "12 Harbour Lane, Springfield 99501, US");
        assert_eq!(c["identityDocuments"]["value"][0]["fileName"], "passport-scan.png");

        let (c, text) = customer_as(&app, "supervisor", "Cannot reset my password").await;
        assert_eq!(c["paymentMethods"]["value"], json!([{ "brand": "Visa", "last4": "4242", "expMonth": null, "expYear": null, "billingAddress": null }]));
        assert_eq!(c["invoices"]["value"][0], json!({ "number": "INV-1001", "status": "paid", "amountCents": null, "currency": null }));
        let bodies: Vec<&str> = c["chatHistory"]["value"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
        assert!(bodies.contains(&"Call me at [phone] or write to [email]."), "{bodies:?}");
        assert!(bodies.contains(&"You charged my card [card ••••4242] twice."), "{bodies:?}");
        for secret in ["1984", "PASSPORT", "passport-scan", "555 0100", "robin.sample@"] {
            assert!(!text.contains(secret), "{secret} leaked to supervisor: {text}");
        }

        let (c, text) = customer_as(&app, "billing", "Refund not received").await;
        assert_eq!(c["fullName"]["value"], Value::Null);
        assert_eq!(c["otherTickets"]["value"], json!([{ "subject": "Where is my parcel?", "topic": "shipping", "status": "OPEN" }]));
        for secret in ["Kim", "Placeholder", "kim.placeholder", "7946", "Mill Road", "Cambridge", "1990", "5454", "INV-2001"] {
            assert!(!text.contains(secret), "{secret} leaked to a non-assignee: {text}");
        }
    }
}

on_both_databases! {
    /// A hidden class names the roles that would see it on the ticket's topic.
    async fn hidden_classes_name_who_could_help(app) {
        let id = app.ticket_id("Charged twice in March").await;
        let (_, body) = app
            .query_as("supervisor", "query($id: ID!) { ticket(id: $id) { customer {
                dateOfBirth { access handOff { role label } } } } }", json!({ "id": id }))
            .await;
        assert_eq!(body["data"]["ticket"]["customer"]["dateOfBirth"]["handOff"], json!([]),
            "nobody sees identity data on a billing ticket");
        let id = app.ticket_id("Verify my identity").await;
        let (_, body) = app
            .query_as("supervisor", "query($id: ID!) { ticket(id: $id) { customer {
                dateOfBirth { access handOff { role label } } } } }", json!({ "id": id }))
            .await;
        assert_eq!(
            body["data"]["ticket"]["customer"]["dateOfBirth"]["handOff"],
            json!([{ "role": "identity", "label": "an identity specialist" }])
        );
    }
}
