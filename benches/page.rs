//! The share of a 50-ticket page's server time spent on cryptography, and the cost of
//! putting the page in the specification's shape.
//!
//! Seeds 1 000 customers and 10 000 tickets (2 messages each) into a fresh SQLite database
//! with `needtoknow seed`, starts the real service in-process, and then:
//! 1. requests, as the supervisor, the first 50 tickets with every protected field of their
//!    customers (W2 of issue 7) over HTTP, 200 times, and takes the median latency;
//! 2. opens exactly the ciphertexts that page decrypts (names, contact, the city and country
//!    of masked addresses, every chat-history message), 200 times, and takes the median;
//! 3. times the walk that puts the page in the specification's shape (keys in selection
//!    order, failed fields null: `api/shape.rs`) on the page as served and with every
//!    object's keys reversed, 200 times each (on copies made beforehand), and takes the
//!    medians.
//!
//! Run with `cargo bench --bench page`. It prints what it measured; BENCHMARKS.md records it.

use std::time::{Duration, Instant};

use entity::{customer, message, ticket};
use needtoknow::config::{DatabaseSettings, Settings};
use needtoknow::startup::Application;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

const PAGE: &str = "{ tickets(first: 50) { edges { node { id subject customer {
    accountStatus { value } plan { value } customerSince { value } region { value }
    fullName { value } email { value } phone { value } postalAddress { value }
    dateOfBirth { value } identityDocuments { access value { fileName } }
    paymentMethods { value { brand last4 billingAddress } } invoices { value { number } }
    otherTickets { value { subject } } chatHistory { value { body } } } } } } }";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let seeded = std::process::Command::new(env!("CARGO_BIN_EXE_needtoknow"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env("NEEDTOKNOW_DATA_DIR", dir.path())
        .env("NEEDTOKNOW_LOG", "warn")
        .args([
            "seed",
            "--customers",
            "1000",
            "--tickets",
            "10000",
            "--messages-per-ticket",
            "2",
        ])
        .status()
        .expect("seed runs");
    assert!(seeded.success());

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut settings = Settings::for_data_dir(
            dir.path(),
            DatabaseSettings::Sqlite { path: dir.path().join("needtoknow.sqlite") },
        );
        settings.demo = true;
        settings.policy_watch = None;
        let app = Application::build(settings.clone()).await.expect("service starts");
        let address = format!("http://127.0.0.1:{}/graphql", app.port());
        let token = app.demo_tokens()["supervisor"].clone();
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::new();
        let body = serde_json::json!({ "query": PAGE });

        let mut page = Vec::new();
        let mut served = String::new();
        for i in 0..220 {
            let started = Instant::now();
            served = client
                .post(&address)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("request")
                .text()
                .await
                .expect("body");
            let elapsed = started.elapsed();
            let response: serde_json::Value = serde_json::from_str(&served).expect("JSON");
            assert!(response.get("errors").is_none(), "{response}");
            assert_eq!(response["data"]["tickets"]["edges"].as_array().map(Vec::len), Some(50));
            if i >= 20 {
                page.push(elapsed);
            }
        }

        // The same page's ciphertexts, opened directly.
        let db = needtoknow::db::connect(&settings).await.expect("db");
        let (keys, key_file) = needtoknow::crypto::keys::load_master_keys(&settings).expect("keys");
        let vault = needtoknow::crypto::vault::Vault::new(keys, key_file);
        vault.check_master(&db).await.expect("vault");
        let tickets = ticket::Entity::find().order_by_asc(ticket::Column::Id).limit(50).all(&db).await.expect("tickets");
        let customer_ids: Vec<i32> = tickets.iter().map(|t| t.customer_id).collect();
        let customers = customer::Entity::find().filter(customer::Column::Id.is_in(customer_ids.clone())).all(&db).await.expect("customers");
        let openers = vault.openers(&db, &customer_ids).await.expect("data keys");
        let mut messages = Vec::new();
        for t in &tickets {
            let others: Vec<i32> = ticket::Entity::find()
                .filter(ticket::Column::CustomerId.eq(t.customer_id))
                .filter(ticket::Column::Id.ne(t.id))
                .all(&db)
                .await
                .expect("other tickets")
                .iter()
                .map(|o| o.id)
                .collect();
            let rows = message::Entity::find().filter(message::Column::TicketId.is_in(others)).all(&db).await.expect("messages");
            messages.extend(rows.into_iter().map(|m| (t.customer_id, m)));
        }
        let by_id: std::collections::HashMap<i32, &customer::Model> = customers.iter().map(|c| (c.id, c)).collect();
        let mut opens = 0usize;
        let mut crypto = Vec::new();
        for _ in 0..200 {
            opens = 0;
            let started = Instant::now();
            for t in &tickets {
                let c = by_id[&t.customer_id];
                let opener = &openers[&t.customer_id];
                for (column, sealed) in [("full_name", &c.full_name), ("email", &c.email), ("phone", &c.phone), ("city", &c.city), ("country", &c.country)] {
                    std::hint::black_box(opener.bytes("customers", column, c.id, sealed).expect("opens"));
                    opens += 1;
                }
            }
            for (customer_id, m) in &messages {
                std::hint::black_box(openers[customer_id].bytes("messages", "body", m.id, &m.body).expect("opens"));
                opens += 1;
            }
            crypto.push(started.elapsed());
        }
        // Putting the page in the specification's shape (api/shape.rs): on the page as
        // served (keys already in selection order: the usual case) and with every object's
        // keys reversed (the most work the walk can have).
        let shapes = needtoknow::api::shape::Shapes::from_sdl(&needtoknow::api::sdl()).expect("shapes");
        let document = async_graphql::parser::parse_query(PAGE).expect("the page parses");
        let (_, operation) = document.operations.iter().next().expect("one operation");
        let response: async_graphql::Value = serde_json::from_str(&served).expect("the page");
        let async_graphql::Value::Object(mut response) = response else { panic!("an object") };
        let data = response.shift_remove("data").expect("data");
        fn reversed(value: async_graphql::Value) -> async_graphql::Value {
            match value {
                async_graphql::Value::Object(map) => async_graphql::Value::Object(
                    map.into_iter().rev().map(|(k, v)| (k, reversed(v))).collect(),
                ),
                async_graphql::Value::List(items) => {
                    async_graphql::Value::List(items.into_iter().map(reversed).collect())
                }
                other => other,
            }
        }
        let shuffled = reversed(data.clone());
        let variables = async_graphql::Variables::default();
        // The copies are made before the clock starts and dropped after it stops.
        let time = |input: &async_graphql::Value| {
            let copies: Vec<async_graphql::Value> = (0..200).map(|_| input.clone()).collect();
            median(copies.into_iter().map(|value| {
                let started = Instant::now();
                let done = shapes.complete(value, &document, &operation.node, &variables);
                let elapsed = started.elapsed();
                drop(std::hint::black_box(done));
                elapsed
            }).collect())
        };
        let in_order = time(&data);
        let worst = time(&shuffled);
        assert_eq!(
            serde_json::to_string(&shapes.complete(shuffled, &document, &operation.node, &variables)).unwrap(),
            serde_json::to_string(&data).unwrap(),
            "the walk restores the served order"
        );

        let page = median(page);
        let crypto = median(crypto);
        println!("response shape (api/shape.rs) of that page: median {:.3} ms as served, {:.3} ms with every object's keys reversed", in_order.as_secs_f64() * 1000.0, worst.as_secs_f64() * 1000.0);
        println!("page of 50 tickets, every protected field, as supervisor (HTTP, sequential): median {:.2} ms over 200 requests", page.as_secs_f64() * 1000.0);
        println!("cryptography of that page ({opens} field openings): median {:.3} ms", crypto.as_secs_f64() * 1000.0);
        println!("share of the page's server time spent on cryptography: {:.1} %", 100.0 * crypto.as_secs_f64() / page.as_secs_f64());
    });
}
