//! SSO tokens: JWTs from the company's identity provider, as an alternative to API tokens.
//!
//! A token is accepted when its header names an algorithm we accept (RS256, ES256 or EdDSA
//! with a key from the configured JWKS, HS256 with the configured secret — never `none`,
//! never a family the key does not belong to), its signature verifies, `iss` and `aud` are
//! the configured ones, `exp` has not passed and `nbf` (when present) has, and the
//! configured claim names an agent that exists and is active (checked by the caller). Every
//! refusal has a reason for the log; the client only ever hears `UNAUTHENTICATED`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::AuthFailure;

/// Longest token accepted, in bytes; real ID/access tokens are far shorter.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

pub use crate::config::{JwksSource, SsoSettings};

const MIN_UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(30);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One usable public key.
struct PublicKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies SSO tokens. Cheap to share behind an `Arc`.
pub struct SsoVerifier {
    settings: SsoSettings,
    keys: ArcSwap<Vec<PublicKey>>,
    hmac: Option<DecodingKey>,
    last_fetch: Mutex<Option<Instant>>,
    client: reqwest::Client,
}

/// What a verified token says: the agent's handle.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// The handle claim's value.
    pub handle: String,
}

impl SsoVerifier {
    /// Builds the verifier and loads the keys. A JWKS file that cannot be read or holds no
    /// usable key stops start-up; a JWKS URL that does not answer is logged and retried, so
    /// the service starts while the identity provider is down (SSO tokens fail meanwhile).
    pub async fn new(settings: SsoSettings) -> anyhow::Result<Arc<SsoVerifier>> {
        let hmac = match &settings.hs256_secret {
            Some(secret) if secret.expose().len() < 32 => {
                anyhow::bail!("NEEDTOKNOW_SSO_HS256_SECRET must be at least 32 bytes")
            }
            Some(secret) => Some(DecodingKey::from_secret(secret.expose().as_bytes())),
            None => None,
        };
        if hmac.is_none() && settings.jwks.is_none() {
            anyhow::bail!(
                "SSO needs keys: set NEEDTOKNOW_SSO_JWKS_FILE, NEEDTOKNOW_SSO_JWKS_URL or NEEDTOKNOW_SSO_HS256_SECRET"
            );
        }
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .context("building the JWKS HTTP client")?;
        let verifier = Arc::new(SsoVerifier {
            settings,
            keys: ArcSwap::from_pointee(Vec::new()),
            hmac,
            last_fetch: Mutex::new(None),
            client,
        });
        match &verifier.settings.jwks {
            Some(JwksSource::File(path)) => {
                let count = verifier
                    .refresh()
                    .await
                    .with_context(|| format!("cannot load the SSO JWKS file {}", path.display()))?;
                tracing::info!(keys = count, "SSO keys loaded from file");
            }
            Some(JwksSource::Url(_)) => match verifier.refresh().await {
                Ok(count) => tracing::info!(keys = count, "SSO keys fetched"),
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "SSO keys not fetched; SSO tokens fail until they are"
                ),
            },
            None => {}
        }
        Ok(verifier)
    }

    /// Re-reads the JWKS every refresh interval, keeping the old keys when that fails.
    pub fn spawn_refresh(self: &Arc<Self>) {
        if self.settings.jwks.is_none() {
            return;
        }
        let verifier = Arc::downgrade(self);
        let every = self.settings.jwks_refresh;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(verifier) = verifier.upgrade() else {
                    return;
                };
                if let Err(error) = verifier.refresh().await {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "SSO keys not refreshed; keeping the previous ones"
                    );
                }
            }
        });
    }

    /// How many public keys are loaded (for `/readyz`).
    pub fn key_count(&self) -> usize {
        self.keys.load().len() + usize::from(self.hmac.is_some())
    }

    /// Loads the JWKS and swaps it in; returns the number of usable keys.
    async fn refresh(&self) -> anyhow::Result<usize> {
        *self.last_fetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let text = match &self.settings.jwks {
            None => return Ok(0),
            Some(JwksSource::File(path)) => tokio::fs::read_to_string(path)
                .await
                .context("reading the file")?,
            Some(JwksSource::Url(url)) => self
                .client
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .context("fetching the JWKS URL")?
                .text()
                .await
                .context("reading the JWKS response")?,
        };
        let keys = parse_jwks(&text)?;
        let count = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(count)
    }

    /// Whether an unknown key id may trigger a fetch now.
    fn may_refetch(&self) -> bool {
        matches!(self.settings.jwks, Some(JwksSource::Url(_)))
            && self
                .last_fetch
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_none_or(|at| at.elapsed() >= MIN_UNKNOWN_KID_REFETCH)
    }

    /// Checks a token and returns the handle it names.
    pub async fn verify(&self, token: &str) -> Result<Verified, AuthFailure> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthFailure::SsoMalformed);
        }
        let (algorithm, kid) = read_header(token)?;
        let claims = if algorithm == Algorithm::HS256 {
            let key = self.hmac.as_ref().ok_or(AuthFailure::SsoAlgorithm)?;
            self.decode(token, algorithm, key)?
        } else {
            match self.decode_with_public_keys(token, algorithm, kid.as_deref()) {
                Err(AuthFailure::SsoUnknownKey) if self.may_refetch() => {
                    if let Err(error) = self.refresh().await {
                        tracing::warn!(error = format!("{error:#}"), "SSO keys not refreshed");
                    }
                    self.decode_with_public_keys(token, algorithm, kid.as_deref())?
                }
                other => other?,
            }
        };
        match claims.get(&self.settings.handle_claim) {
            Some(serde_json::Value::String(handle)) if !handle.is_empty() => Ok(Verified {
                handle: handle.clone(),
            }),
            _ => Err(AuthFailure::SsoNoHandle),
        }
    }

    fn decode_with_public_keys(
        &self,
        token: &str,
        algorithm: Algorithm,
        kid: Option<&str>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, AuthFailure> {
        let keys = self.keys.load();
        let mut candidates = keys
            .iter()
            .filter(|k| k.algorithm == algorithm)
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .peekable();
        if candidates.peek().is_none() {
            return Err(AuthFailure::SsoUnknownKey);
        }
        let mut failure = AuthFailure::SsoSignature;
        for candidate in candidates {
            match self.decode(token, algorithm, &candidate.key) {
                Ok(claims) => return Ok(claims),
                Err(AuthFailure::SsoSignature) => {}
                // Past the signature, every key gives the same answer.
                Err(other) => {
                    failure = other;
                    break;
                }
            }
        }
        Err(failure)
    }

    fn decode(
        &self,
        token: &str,
        algorithm: Algorithm,
        key: &DecodingKey,
    ) -> Result<serde_json::Map<String, serde_json::Value>, AuthFailure> {
        use jsonwebtoken::errors::ErrorKind;
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway.as_secs();
        jsonwebtoken::decode(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::InvalidSignature | ErrorKind::Crypto(_) => AuthFailure::SsoSignature,
                ErrorKind::ExpiredSignature => AuthFailure::SsoExpired,
                ErrorKind::ImmatureSignature => AuthFailure::SsoNotYetValid,
                ErrorKind::InvalidIssuer => AuthFailure::SsoIssuer,
                ErrorKind::InvalidAudience => AuthFailure::SsoAudience,
                ErrorKind::MissingRequiredClaim(_) => AuthFailure::SsoMissingClaim,
                ErrorKind::InvalidAlgorithm => AuthFailure::SsoAlgorithm,
                _ => AuthFailure::SsoMalformed,
            })
    }
}

/// Whether a bearer value has a JWT's shape: three base64url parts.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The header's algorithm and key id, read by hand so that `none` and algorithms we do not
/// take are told apart from garbage in the log.
fn read_header(token: &str) -> Result<(Algorithm, Option<String>), AuthFailure> {
    let encoded = token.split('.').next().ok_or(AuthFailure::SsoMalformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| AuthFailure::SsoMalformed)?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| AuthFailure::SsoMalformed)?;
    let algorithm = match header.get("alg").and_then(serde_json::Value::as_str) {
        Some("RS256") => Algorithm::RS256,
        Some("ES256") => Algorithm::ES256,
        Some("EdDSA") => Algorithm::EdDSA,
        Some("HS256") => Algorithm::HS256,
        Some(_) => return Err(AuthFailure::SsoAlgorithm),
        None => return Err(AuthFailure::SsoMalformed),
    };
    let kid = header
        .get("kid")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    Ok((algorithm, kid))
}

/// The usable signing keys of a JWKS document: RSA (RS256), P-256 (ES256) and Ed25519
/// (EdDSA) keys meant for signatures. Others (encryption keys, symmetric keys, other curves
/// and algorithms) are skipped; a document with none usable is an error.
fn parse_jwks(text: &str) -> anyhow::Result<Vec<PublicKey>> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_str(text).context("not a JWKS document (a JSON object with `keys`)")?;
    let mut keys = Vec::new();
    let mut skipped = 0usize;
    for value in document.keys {
        match serde_json::from_value::<Jwk>(value)
            .ok()
            .and_then(|jwk| usable_key(&jwk))
        {
            Some(key) => keys.push(key),
            None => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::info!(skipped, "SSO keys of other kinds skipped");
    }
    anyhow::ensure!(
        !keys.is_empty(),
        "the JWKS holds no RS256, ES256 (P-256) or EdDSA (Ed25519) signing key"
    );
    Ok(keys)
}

fn usable_key(jwk: &Jwk) -> Option<PublicKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
            if p.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        (AlgorithmParameters::OctetKeyPair(p), None | Some(KeyAlgorithm::EdDSA))
            if p.curve == EllipticCurve::Ed25519 =>
        {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    Some(PublicKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::signature::KeyPair;
    use serde_json::json;

    const SECRET: &str = "an hs256 secret of at least 32 bytes";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims() -> serde_json::Value {
        json!({ "iss": "https://idp.example", "aud": "needtoknow", "exp": now() + 300,
                "preferred_username": "frontline" })
    }

    fn settings(jwks: Option<JwksSource>) -> SsoSettings {
        SsoSettings {
            issuer: "https://idp.example".into(),
            audience: "needtoknow".into(),
            handle_claim: "preferred_username".into(),
            jwks,
            hs256_secret: Some(Secret::new(SECRET.into())),
            leeway: Duration::from_secs(30),
            jwks_refresh: Duration::from_secs(600),
        }
    }

    fn hs256(claims: &serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An Ed25519 key pair: its PKCS#8 document and its JWK.
    fn ed25519(kid: &str) -> (Vec<u8>, serde_json::Value) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
                          "x": b64(pair.public_key().as_ref()) });
        (pkcs8.as_ref().to_vec(), jwk)
    }

    fn eddsa(pkcs8: &[u8], kid: &str, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(pkcs8)).unwrap()
    }

    async fn verifier_with_jwks(
        keys: &[serde_json::Value],
    ) -> (Arc<SsoVerifier>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, json!({ "keys": keys }).to_string()).unwrap();
        let verifier = SsoVerifier::new(settings(Some(JwksSource::File(path))))
            .await
            .unwrap();
        (verifier, dir)
    }

    #[tokio::test]
    async fn a_valid_hs256_token_names_its_handle() {
        let verifier = SsoVerifier::new(settings(None)).await.unwrap();
        let verified = verifier.verify(&hs256(&claims(), SECRET)).await.unwrap();
        assert_eq!(verified.handle, "frontline");
    }

    #[tokio::test]
    async fn each_way_a_token_is_wrong_has_its_own_logged_reason() {
        let verifier = SsoVerifier::new(settings(None)).await.unwrap();
        let with = |patch: serde_json::Value| {
            let mut c = claims();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = v.clone();
                }
            }
            hs256(&c, SECRET)
        };
        let unsigned = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(claims().to_string().as_bytes())
        );
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let cases = [
            (
                hs256(&claims(), "another secret of at least 32 bytes"),
                AuthFailure::SsoSignature,
            ),
            (unsigned, AuthFailure::SsoAlgorithm),
            (hs512, AuthFailure::SsoAlgorithm),
            (with(json!({ "exp": now() - 120 })), AuthFailure::SsoExpired),
            (
                with(json!({ "nbf": now() + 120 })),
                AuthFailure::SsoNotYetValid,
            ),
            (
                with(json!({ "aud": "another-app" })),
                AuthFailure::SsoAudience,
            ),
            (
                with(json!({ "iss": "https://evil.example" })),
                AuthFailure::SsoIssuer,
            ),
            (with(json!({ "exp": null })), AuthFailure::SsoMissingClaim),
            (with(json!({ "aud": null })), AuthFailure::SsoMissingClaim),
            (
                with(json!({ "preferred_username": null })),
                AuthFailure::SsoNoHandle,
            ),
            (
                with(json!({ "preferred_username": 42 })),
                AuthFailure::SsoNoHandle,
            ),
            ("a.b.c".into(), AuthFailure::SsoMalformed),
            ("x".repeat(MAX_TOKEN_BYTES + 1), AuthFailure::SsoMalformed),
        ];
        for (token, reason) in cases {
            assert_eq!(verifier.verify(&token).await, Err(reason), "{reason:?}");
        }
        // Within the leeway, a just-expired token still passes (clock skew).
        assert!(verifier
            .verify(&with(json!({ "exp": now() - 5 })))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn public_keys_verify_only_their_own_algorithm_and_key_id() {
        let (pkcs8, jwk) = ed25519("k1");
        let (other, _) = ed25519("k1");
        let (verifier, _dir) = verifier_with_jwks(std::slice::from_ref(&jwk)).await;
        assert_eq!(verifier.key_count(), 2, "one JWKS key and the HS256 secret");
        let ok = verifier.verify(&eddsa(&pkcs8, "k1", &claims())).await;
        assert_eq!(ok.unwrap().handle, "frontline");
        assert_eq!(
            verifier.verify(&eddsa(&other, "k1", &claims())).await,
            Err(AuthFailure::SsoSignature)
        );
        assert_eq!(
            verifier.verify(&eddsa(&pkcs8, "k2", &claims())).await,
            Err(AuthFailure::SsoUnknownKey)
        );
        // Algorithm confusion: an HS256 token "signed" with the public key is refused.
        let x = jwk["x"].as_str().unwrap();
        let confused = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(x.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verifier.verify(&confused).await,
            Err(AuthFailure::SsoSignature)
        );
    }

    #[tokio::test]
    async fn without_a_secret_hs256_tokens_are_refused_outright() {
        let (_, jwk) = ed25519("k1");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, json!({ "keys": [jwk] }).to_string()).unwrap();
        let mut settings = settings(Some(JwksSource::File(path)));
        settings.hs256_secret = None;
        let verifier = SsoVerifier::new(settings).await.unwrap();
        assert_eq!(
            verifier.verify(&hs256(&claims(), SECRET)).await,
            Err(AuthFailure::SsoAlgorithm)
        );
    }

    #[test]
    fn jwks_keep_signing_keys_of_accepted_kinds_only() {
        let (_, ed) = ed25519("ed");
        let mut encryption = ed.clone();
        encryption["use"] = json!("enc");
        let symmetric = json!({ "kty": "oct", "k": "c2VjcmV0" });
        let unknown = json!({ "kty": "XYZ" });
        let text = json!({ "keys": [ed, encryption, symmetric, unknown] }).to_string();
        assert_eq!(parse_jwks(&text).unwrap().len(), 1);
        let none = json!({ "keys": [symmetric_only()] }).to_string();
        assert!(parse_jwks(&none).is_err());
        assert!(parse_jwks("not json").is_err());
    }

    fn symmetric_only() -> serde_json::Value {
        json!({ "kty": "oct", "k": "c2VjcmV0" })
    }

    #[test]
    fn only_three_part_base64url_values_look_like_jwts() {
        assert!(looks_like_jwt("aGVhZA.Ym9keQ.c2ln"));
        assert!(looks_like_jwt("aGVhZA.Ym9keQ."));
        assert!(!looks_like_jwt("aGVhZA.Ym9keQ"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a b.c.d"));
    }
}
