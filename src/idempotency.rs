//! `Idempotency-Key`: a retried mutation finds what the first delivery wrote instead of
//! writing it again, across instances and across a crash.
//!
//! The transport claims `(agent, key)` in the database with a fingerprint of the request
//! (operation name, document, variables) before executing it ([`claim`]). Each write of
//! the request is a [`Step`]: a service asks the step first and, when an earlier delivery
//! recorded its result, returns that result without writing; otherwise it writes and
//! records its result **in the same transaction** as its writes ([`Step::record_in`]). So
//! the record and the writes commit together: after a crash between the commit and the
//! answer, a retry finds the result, and before the commit, the retry writes it once.
//!
//! The answer to a retry is rendered again from the recorded results, through the
//! disclosure gate like any answer: no response body (which may hold personal data) is
//! ever stored.

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Duration, Utc};
use entity::idempotency_key;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::writer::Writer;

/// The header's value, checked: 1 to 255 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// Parses the header's value.
    pub fn parse(value: &[u8]) -> ApiResult<Key> {
        let valid =
            (1..=255).contains(&value.len()) && value.iter().all(|b| (0x20..0x7f).contains(b));
        match std::str::from_utf8(value) {
            Ok(text) if valid => Ok(Key(text.to_owned())),
            _ => Err(ApiError::BadUserInput(
                "`Idempotency-Key` must be 1 to 255 printable ASCII characters".into(),
            )),
        }
    }
}

/// The fingerprint of a request: the same key with another request is a conflict.
pub fn fingerprint(
    operation_name: Option<&str>,
    query: &str,
    variables: &serde_json::Value,
) -> String {
    let mut hash = Sha256::new();
    hash.update(operation_name.unwrap_or_default().as_bytes());
    hash.update([0]);
    hash.update(query.as_bytes());
    hash.update([0]);
    hash.update(variables.to_string().as_bytes());
    hex::encode(hash.finalize())
}

/// A claimed key, held by one request.
#[derive(Debug)]
pub struct Claim {
    id: i32,
    key: String,
    /// Results an earlier delivery recorded, by step.
    recorded: Vec<serde_json::Value>,
    next: AtomicUsize,
}

/// How long claims live.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    /// How long a key and its recorded results are kept.
    pub ttl: std::time::Duration,
    /// After how long a claim still `running` belongs to a request that died with its
    /// instance, so that a retry takes it over.
    pub abandon: std::time::Duration,
}

/// Claims `key` for `agent_id`'s request with `fingerprint`.
///
/// `CONFLICT` when the key was used for another request, or while another delivery of this
/// one is still running (with a retry hint). A claim whose request died (running for longer
/// than `lifetimes.abandon`) is taken over, with whatever its writes recorded.
pub async fn claim(
    writer: &Writer,
    agent_id: i32,
    key: &Key,
    fingerprint: &str,
    lifetimes: Lifetimes,
) -> ApiResult<Claim> {
    let now = Utc::now();
    let ttl = Duration::from_std(lifetimes.ttl).unwrap_or(Duration::hours(24));
    let abandon = Duration::from_std(lifetimes.abandon).unwrap_or(Duration::minutes(1));
    let row = writer
        .transaction(|txn| async move {
            // Expired keys of this agent go (so the table does not grow without bound).
            idempotency_key::Entity::delete_many()
                .filter(idempotency_key::Column::AgentId.eq(agent_id))
                .filter(idempotency_key::Column::ExpiresAt.lt(now))
                .exec(&txn)
                .await?;
            let found = idempotency_key::Entity::find()
                .filter(idempotency_key::Column::AgentId.eq(agent_id))
                .filter(idempotency_key::Column::IdemKey.eq(key.0.as_str()))
                .one(&txn)
                .await?;
            let row = match found {
                None => {
                    let inserted = idempotency_key::ActiveModel {
                        agent_id: Set(agent_id),
                        idem_key: Set(key.0.clone()),
                        fingerprint: Set(fingerprint.to_owned()),
                        state: Set("running".into()),
                        results: Set("[]".into()),
                        started_at: Set(now),
                        expires_at: Set(now + ttl),
                        ..Default::default()
                    }
                    .insert(&txn)
                    .await;
                    match inserted {
                        Ok(row) => row,
                        // Another delivery inserted it first (PostgreSQL's unique index;
                        // SQLite's single writer never gets here).
                        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
                            return Err(still_running());
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(row) if row.fingerprint != fingerprint => {
                    return Err(ApiError::Conflict {
                        message: "this Idempotency-Key was already used for a different request; use a new key for a new request".into(),
                        retry_after_secs: None,
                    })
                }
                Some(row) if row.state == "running" && now - row.started_at <= abandon => {
                    return Err(still_running())
                }
                Some(row) => {
                    let mut active: idempotency_key::ActiveModel = row.into();
                    active.state = Set("running".into());
                    active.started_at = Set(now);
                    active.update(&txn).await?
                }
            };
            Ok::<_, ApiError>((row, txn))
        })
        .await?;
    let recorded = serde_json::from_str(&row.results)
        .map_err(|e| ApiError::internal(e, "reading an idempotency key"))?;
    Ok(Claim {
        id: row.id,
        key: key.0.clone(),
        recorded,
        next: AtomicUsize::new(0),
    })
}

fn still_running() -> ApiError {
    ApiError::Conflict {
        message: "a request with this Idempotency-Key is still running; retry shortly".into(),
        retry_after_secs: Some(1),
    }
}

impl Claim {
    /// The key as the client sent it (audit events record it).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether an earlier delivery recorded anything: the answer is a replay.
    pub fn is_replay(&self) -> bool {
        !self.recorded.is_empty()
    }

    /// Ends the request's hold: `done` when any write recorded a result, so a retry
    /// replays it; released when none did, so a retry runs as if new.
    pub async fn finish(&self, writer: &Writer) -> ApiResult<()> {
        let id = self.id;
        writer
            .transaction(|txn| async move {
                let Some(row) = idempotency_key::Entity::find_by_id(id).one(&txn).await? else {
                    return Ok(((), txn));
                };
                let results: Vec<serde_json::Value> =
                    serde_json::from_str(&row.results).unwrap_or_default();
                if results.iter().all(serde_json::Value::is_null) {
                    idempotency_key::Entity::delete_by_id(id).exec(&txn).await?;
                } else {
                    let mut active: idempotency_key::ActiveModel = row.into();
                    active.state = Set("done".into());
                    active.update(&txn).await?;
                }
                Ok::<_, ApiError>(((), txn))
            })
            .await
    }
}

/// One write of a request. Without an idempotency key it is inert: nothing is recorded
/// and nothing replayed, so a write takes the same path either way.
#[derive(Debug)]
pub struct Step<'a> {
    /// The claim and this write's place among the request's writes.
    at: Option<(&'a Claim, usize)>,
}

/// The request's next write step (inert when the request sent no key).
pub fn step(claim: Option<&Claim>) -> Step<'_> {
    Step {
        at: claim.map(|claim| (claim, claim.next.fetch_add(1, Ordering::SeqCst))),
    }
}

impl Step<'_> {
    /// What an earlier delivery's write at this step recorded, if anything.
    pub fn recorded<T: DeserializeOwned>(&self) -> ApiResult<Option<T>> {
        let Some((claim, index)) = self.at else {
            return Ok(None);
        };
        claim
            .recorded
            .get(index)
            .filter(|value| !value.is_null())
            .map(|value| {
                serde_json::from_value(value.clone())
                    .map_err(|e| ApiError::internal(e, "reading an idempotent result"))
            })
            .transpose()
    }

    /// Records this step's result inside the write's own transaction (nothing without a
    /// key).
    pub async fn record_in<T: Serialize>(
        &self,
        txn: &DatabaseTransaction,
        result: &T,
    ) -> ApiResult<()> {
        let value = serde_json::to_value(result)
            .map_err(|e| ApiError::internal(e, "recording an idempotent result"))?;
        self.set_in(txn, value).await
    }

    /// Forgets this step's result inside a transaction that undoes its write, so a retry
    /// runs it again.
    pub async fn forget_in(&self, txn: &DatabaseTransaction) -> ApiResult<()> {
        self.set_in(txn, serde_json::Value::Null).await
    }

    async fn set_in(&self, txn: &DatabaseTransaction, value: serde_json::Value) -> ApiResult<()> {
        let Some((claim, index)) = self.at else {
            return Ok(());
        };
        let row = idempotency_key::Entity::find_by_id(claim.id)
            .one(txn)
            .await?
            .ok_or_else(|| {
                ApiError::internal(
                    anyhow::anyhow!("the claim is gone"),
                    "recording an idempotent result",
                )
            })?;
        let mut results: Vec<serde_json::Value> = serde_json::from_str(&row.results)
            .map_err(|e| ApiError::internal(e, "reading an idempotency key"))?;
        if results.len() <= index {
            results.resize(index + 1, serde_json::Value::Null);
        }
        results[index] = value;
        let mut active: idempotency_key::ActiveModel = row.into();
        active.results = Set(serde_json::Value::Array(results).to_string());
        active.update(txn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_printable_characters() {
        assert!(Key::parse(b"delivery-42").is_ok());
        assert!(Key::parse(&[b'a'; 255]).is_ok());
        for bad in [
            &b""[..],
            &[b'a'; 256],
            b"tab\there",
            "é".as_bytes(),
            b"nul\0",
        ] {
            assert!(Key::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_fingerprint_covers_operation_document_and_variables() {
        let base = fingerprint(
            Some("A"),
            "mutation A { x }",
            &serde_json::json!({ "v": 1 }),
        );
        assert_eq!(
            base,
            fingerprint(
                Some("A"),
                "mutation A { x }",
                &serde_json::json!({ "v": 1 })
            )
        );
        assert_ne!(
            base,
            fingerprint(
                Some("B"),
                "mutation A { x }",
                &serde_json::json!({ "v": 1 })
            )
        );
        assert_ne!(
            base,
            fingerprint(
                Some("A"),
                "mutation A { y }",
                &serde_json::json!({ "v": 1 })
            )
        );
        assert_ne!(
            base,
            fingerprint(
                Some("A"),
                "mutation A { x }",
                &serde_json::json!({ "v": 2 })
            )
        );
    }
}
