//! SSO tokens: JWTs from the identity provider, checked end to end over HTTP. Keys are made
//! fresh for each run (RSA by the `openssl` command, P-256 and Ed25519 by ring).

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use needtoknow::agents::sso::{JwksSource, SsoSettings};
use needtoknow::config::{Secret, Settings};
use ring::signature::KeyPair;
use serde_json::{json, Value};

use crate::helpers::{assert_no_errors, error_code, spawn_app_with, Backend, TestApp};

const ISSUER: &str = "https://idp.example.com/";
const AUDIENCE: &str = "needtoknow-agents";
const SECRET: &str = "the shared hs256 secret, 32 bytes or more";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key and the public JWK that verifies it.
struct TestKey {
    algorithm: Algorithm,
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl TestKey {
    fn rsa(dir: &Path, kid: &str) -> TestKey {
        let pem = dir.join(format!("{kid}.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pem)
            .output()
            .expect("the openssl command runs (scripts/test installs it)");
        assert!(made.status.success(), "openssl genpkey failed");
        let modulus = std::process::Command::new("openssl")
            .args(["rsa", "-noout", "-modulus", "-in"])
            .arg(&pem)
            .output()
            .expect("openssl rsa runs");
        let modulus = String::from_utf8(modulus.stdout).unwrap();
        let n = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
        TestKey {
            algorithm: Algorithm::RS256,
            kid: kid.into(),
            encoding: EncodingKey::from_rsa_pem(&std::fs::read(&pem).unwrap()).unwrap(),
            jwk: json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                         "n": b64(&n), "e": "AQAB" }),
        }
    }

    fn p256(kid: &str) -> TestKey {
        use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING as P256};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&P256, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&P256, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        TestKey {
            algorithm: Algorithm::ES256,
            kid: kid.into(),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({ "kty": "EC", "crv": "P-256", "kid": kid,
                         "x": b64(&point[1..33]), "y": b64(&point[33..]) }),
        }
    }

    fn ed25519(kid: &str) -> TestKey {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        TestKey {
            algorithm: Algorithm::EdDSA,
            kid: kid.into(),
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid,
                         "x": b64(pair.public_key().as_ref()) }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims_for(handle: &str) -> Value {
    json!({ "iss": ISSUER, "aud": [AUDIENCE, "another-app"], "sub": "00u1x2y3",
            "preferred_username": handle, "iat": now(), "exp": now() + 600 })
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn sso(jwks: Option<JwksSource>, secret: Option<&str>) -> SsoSettings {
    SsoSettings {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        handle_claim: "preferred_username".into(),
        jwks,
        hs256_secret: secret.map(|s| Secret::new(s.to_owned())),
        leeway: Duration::from_secs(30),
        jwks_refresh: Duration::from_secs(600),
    }
}

/// Writes the keys' JWKS into the app's data directory and turns SSO on.
fn with_jwks_file(settings: &mut Settings, keys: &[&TestKey]) {
    let path = settings.data_dir.join("jwks.json");
    let jwks: Vec<&Value> = keys.iter().map(|k| &k.jwk).collect();
    std::fs::write(&path, json!({ "keys": jwks }).to_string()).unwrap();
    settings.sso = Some(sso(Some(JwksSource::File(path)), Some(SECRET)));
}

async fn me(app: &TestApp, token: &str) -> (u16, Value) {
    app.post_graphql(Some(token), &json!({ "query": "{ me { handle role } }" }))
        .await
}

async fn every_algorithm_and_every_failure(backend: Backend) {
    let keys_dir = tempfile::tempdir().unwrap();
    let rsa = TestKey::rsa(keys_dir.path(), "rsa-1");
    let ec = TestKey::p256("ec-1");
    let ed = TestKey::ed25519("ed-1");
    let app = spawn_app_with(backend, |s| with_jwks_file(s, &[&rsa, &ec, &ed])).await;

    // Each accepted algorithm signs in as the agent the handle claim names.
    let claims = claims_for("frontline");
    for token in [
        rsa.sign(&claims),
        ec.sign(&claims),
        ed.sign(&claims),
        hs256(&claims, SECRET),
    ] {
        let (status, body) = me(&app, &token).await;
        assert_eq!(status, 200, "{body}");
        assert_no_errors(&body);
        assert_eq!(body["data"]["me"]["handle"], "frontline");
    }

    // An API token still works beside SSO.
    let (status, _) = app
        .query_as("frontline", "{ me { handle } }", json!({}))
        .await;
    assert_eq!(status, 200);

    let with = |patch: Value| {
        let mut claims = claims_for("frontline");
        for (key, value) in patch.as_object().unwrap() {
            claims[key] = value.clone();
        }
        ec.sign(&claims)
    };
    let stranger = TestKey::p256("ec-1");
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims_for("frontline").to_string().as_bytes())
    );
    let rsa_public_as_secret = hs256(&claims_for("frontline"), rsa.jwk["n"].as_str().unwrap());
    app.create_agent("leaver", "frontline").await;
    let db = needtoknow::db::connect(&app.settings).await.unwrap();
    needtoknow::agents::disable(
        &needtoknow::writer::Writer::new(db.clone()),
        &needtoknow::audit::Actor::system("test", "test"),
        "leaver",
    )
    .await
    .unwrap();

    let refused = [
        ("wrong signature", stranger.sign(&claims_for("frontline"))),
        ("alg none", unsigned),
        ("HS256 keyed with a public key", rsa_public_as_secret),
        ("expired", with(json!({ "exp": now() - 300 }))),
        ("not yet valid", with(json!({ "nbf": now() + 300 }))),
        ("wrong audience", with(json!({ "aud": "another-app" }))),
        (
            "wrong issuer",
            with(json!({ "iss": "https://evil.example.com/" })),
        ),
        ("unknown agent", ec.sign(&claims_for("nobody"))),
        ("disabled agent", ec.sign(&claims_for("leaver"))),
        (
            "a service account (API tokens only)",
            ec.sign(&claims_for("chat-gateway")),
        ),
        (
            "unknown key id",
            TestKey::p256("ec-9").sign(&claims_for("frontline")),
        ),
        (
            "truncated",
            ec.sign(&claims_for("frontline"))[..60].to_owned() + ".x.y",
        ),
    ];
    let mut messages = Vec::new();
    for (case, token) in refused {
        let (status, body) = me(&app, &token).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{case}");
        assert!(body.get("data").is_none(), "{case}");
        messages.push(body["errors"][0]["message"].clone());
    }
    messages.dedup();
    assert_eq!(
        messages.len(),
        1,
        "reasons are logged, never told: {messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_tokens_sign_in_and_every_bad_token_is_refused_on_sqlite() {
    every_algorithm_and_every_failure(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_tokens_sign_in_and_every_bad_token_is_refused_on_postgres() {
    every_algorithm_and_every_failure(Backend::Postgres).await;
}

/// Without SSO configured, a well-formed JWT is just another bad credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_are_refused_when_sso_is_off() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let (status, body) = me(&app, &hs256(&claims_for("frontline"), SECRET)).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
}

/// Keys can come from the identity provider's JWKS URL; `/readyz` shows SSO is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_fetched_from_a_jwks_url() {
    let ed = TestKey::ed25519("url-1");
    let jwks = json!({ "keys": [ed.jwk.clone()] }).to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let server = actix_web::HttpServer::new(move || {
        let jwks = jwks.clone();
        actix_web::App::new().route(
            "/.well-known/jwks.json",
            actix_web::web::get().to(move || {
                let jwks = jwks.clone();
                async move {
                    actix_web::HttpResponse::Ok()
                        .content_type("application/json")
                        .body(jwks)
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);

    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.sso = Some(sso(Some(JwksSource::Url(url)), None));
    })
    .await;
    let (status, body) = me(&app, &ed.sign(&claims_for("supervisor"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["me"]["handle"], "supervisor");
    // No HS256 secret is configured, so HS256 tokens are refused.
    let (status, _) = me(&app, &hs256(&claims_for("supervisor"), SECRET)).await;
    assert_eq!(status, 401);

    let ready = app.readiness().await;
    assert_eq!(
        ready["checks"]["sso"],
        json!({ "status": "ready", "keys": 1 })
    );
}

/// A JWKS file with no usable key stops start-up with the reason.
#[tokio::test]
async fn a_jwks_file_without_usable_keys_stops_start_up() {
    let (mut settings, dir, _) = crate::helpers::fresh_settings(Backend::Sqlite).await;
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
    settings.sso = Some(sso(Some(JwksSource::File(path)), None));
    let error = match needtoknow::startup::Application::build(settings).await {
        Ok(_) => panic!("start-up must fail"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("JWKS"), "{error}");
}
