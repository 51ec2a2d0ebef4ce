//! Agents and their API tokens: creation, disabling, token issue and authentication.

pub mod cache;
pub mod sso;

use anyhow::Context;
use base64::Engine;
use chrono::Utc;
use entity::{agent, api_token};
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};

use crate::policy::{is_word, AgentFacts, PolicySet, TicketFacts, Vocabulary};
use crate::writer::Writer;

/// Every API token starts with this, so leaked tokens are easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "ntk_";

/// An agent as the service works with it: queues parsed, facts for the policy at hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// Database id.
    pub id: i32,
    /// Unique handle.
    pub handle: String,
    /// Display name.
    pub display_name: String,
    /// Role, a word of the policy vocabulary.
    pub role: String,
    /// Team.
    pub team: String,
    /// Topics whose unassigned tickets the agent picks up.
    pub queues: Vec<String>,
    /// Whether the agent may sign in.
    pub active: bool,
    /// A service account (a channel integration): never signed in by SSO.
    pub service: bool,
}

impl Agent {
    /// What the policy may read about this agent.
    pub fn facts(&self) -> AgentFacts {
        AgentFacts {
            role: self.role.clone(),
            team: self.team.clone(),
            queues: self.queues.clone(),
        }
    }

    /// What the policy may read about `ticket` when this agent asks.
    pub fn ticket_facts(&self, ticket: &entity::ticket::Model) -> TicketFacts {
        TicketFacts::of(ticket, self.id, &self.team)
    }

    /// Whether `policy` grants this agent `permission` on `ticket`
    /// (`allow(agent, action, ticket)`).
    pub fn may(
        &self,
        policy: &PolicySet,
        permission: crate::vocabulary::Permission,
        ticket: &entity::ticket::Model,
    ) -> bool {
        policy.authorize(&self.facts(), permission, Some(&self.ticket_facts(ticket)))
    }
}

impl TryFrom<agent::Model> for Agent {
    type Error = anyhow::Error;
    fn try_from(row: agent::Model) -> anyhow::Result<Agent> {
        let queues: Vec<String> =
            serde_json::from_str(&row.queues).context("agents.queues is not a JSON array")?;
        Ok(Agent {
            id: row.id,
            handle: row.handle,
            display_name: row.display_name,
            role: row.role,
            team: row.team,
            queues,
            active: row.active,
            service: row.kind == "service",
        })
    }
}

/// A request to create an agent, checked against the policy vocabulary.
#[derive(Clone, Debug)]
pub struct NewAgent {
    /// Unique handle.
    pub handle: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: String,
    /// Team.
    pub team: String,
    /// Queues.
    pub queues: Vec<String>,
    /// A service account (a channel integration) rather than a person.
    pub service: bool,
}

/// Why an agent command was refused; each message is fit for the admin who ran it.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// No agent has this handle.
    #[error("no agent with handle {0:?}")]
    UnknownHandle(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

/// Whether `handle` has the shape of an agent handle.
pub fn is_handle(handle: &str) -> bool {
    !handle.is_empty()
        && handle.len() <= 64
        && handle.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && handle
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

impl NewAgent {
    /// Checks the handle's shape and that role and queues are words of the policy.
    pub fn validate(&self, vocabulary: &Vocabulary) -> Result<(), AgentError> {
        if !is_handle(&self.handle) {
            return Err(AgentError::Invalid(format!(
                "handle {:?}: use 1-64 lower-case letters, digits, '.', '_' or '-'",
                self.handle
            )));
        }
        if !vocabulary.has_role(&self.role) {
            let known: Vec<&str> = vocabulary.roles.iter().map(|r| r.name.as_str()).collect();
            return Err(AgentError::Invalid(format!(
                "role {:?} is not defined by the policy (known: {}); add a role(...) fact first",
                self.role,
                known.join(", ")
            )));
        }
        if !is_word(&self.team) {
            return Err(AgentError::Invalid(format!(
                "team {:?}: use lower-case letters, digits and underscores",
                self.team
            )));
        }
        if let Some(queue) = self.queues.iter().find(|q| !vocabulary.has_topic(q)) {
            return Err(AgentError::Invalid(format!(
                "queue {queue:?} is not a topic of the policy (known: {})",
                vocabulary.topics.join(", ")
            )));
        }
        let name = self.display_name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AgentError::Invalid(
                "display name: 1-100 characters, no control characters".into(),
            ));
        }
        Ok(())
    }
}

impl From<sea_orm::DbErr> for AgentError {
    fn from(error: sea_orm::DbErr) -> Self {
        AgentError::Database(error.into())
    }
}

impl crate::writer::Transient for AgentError {
    fn is_transient(&self) -> bool {
        matches!(self, AgentError::Database(e) if e.is_transient())
    }
}

/// Appends `actor`'s `action` about an agent (the reason names it by id, never by
/// handle) inside the change's transaction.
async fn audit_in(
    txn: &sea_orm::DatabaseTransaction,
    actor: &crate::audit::Actor,
    action: crate::audit::Action,
    fields: Vec<String>,
    reason: String,
) -> Result<(), AgentError> {
    let event = actor.event(action, None, None, fields, Some(reason));
    crate::audit::append_in(txn, &[event])
        .await
        .map_err(|e| AgentError::Database(e.context("auditing an agent change")))
}

/// Creates an agent (or service account) and its first token, returning both; audited
/// (`agent_created`, naming the role and team, never the token) in the same transaction.
/// The token is not stored, only its hash.
pub async fn create(
    writer: &Writer,
    vocabulary: &Vocabulary,
    actor: &crate::audit::Actor,
    new: NewAgent,
) -> Result<(Agent, String), AgentError> {
    new.validate(vocabulary)?;
    let new = &new;
    writer
        .transaction(|txn| async move {
            let existing = agent::Entity::find()
                .filter(agent::Column::Handle.eq(&new.handle))
                .one(&txn)
                .await?;
            if existing.is_some() {
                return Err(AgentError::Invalid(format!(
                    "an agent with handle {:?} already exists",
                    new.handle
                )));
            }
            let row = agent::ActiveModel {
                handle: Set(new.handle.clone()),
                display_name: Set(new.display_name.trim().to_owned()),
                role: Set(new.role.clone()),
                team: Set(new.team.clone()),
                queues: Set(serde_json::to_string(&new.queues).context("encoding queues")?),
                active: Set(true),
                created_at: Set(Utc::now()),
                kind: Set(if new.service { "service" } else { "agent" }.into()),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
            let token = insert_token(&txn, row.id).await?;
            let kind = if new.service { "service account, " } else { "" };
            let reason = format!(
                "agent {}: {kind}role {}, team {}",
                row.id, row.role, row.team
            );
            audit_in(
                &txn,
                actor,
                crate::audit::Action::AgentCreated,
                Vec::new(),
                reason,
            )
            .await?;
            let agent = Agent::try_from(row)?;
            Ok(((agent, token), txn))
        })
        .await
}

/// Issues a new token for an active agent; audited (`agent_token_issued`, never the
/// token).
pub async fn issue_token(
    writer: &Writer,
    actor: &crate::audit::Actor,
    handle: &str,
) -> Result<String, AgentError> {
    let row = find_by_handle(writer.connection(), handle).await?;
    if !row.active {
        return Err(AgentError::Invalid(format!(
            "agent {handle:?} is disabled; create a new agent instead"
        )));
    }
    let row = &row;
    writer
        .transaction(|txn| async move {
            let token = insert_token(&txn, row.id).await?;
            let reason = format!("agent {}", row.id);
            audit_in(
                &txn,
                actor,
                crate::audit::Action::AgentTokenIssued,
                Vec::new(),
                reason,
            )
            .await?;
            Ok((token, txn))
        })
        .await
}

/// Disables an agent and revokes all of its tokens in one transaction, audited
/// (`agent_disabled`). Disabling twice is harmless (and audited once). The caller revokes
/// the agent's reveal grants, which live outside the database.
pub async fn disable(
    writer: &Writer,
    actor: &crate::audit::Actor,
    handle: &str,
) -> Result<Agent, AgentError> {
    let row = find_by_handle(writer.connection(), handle).await?;
    let row = &row;
    writer
        .transaction(|txn| async move {
            let was_active = row.active;
            let mut active: agent::ActiveModel = row.clone().into();
            active.active = Set(false);
            let row = active.update(&txn).await?;
            revoke_tokens(&txn, row.id).await?;
            if was_active {
                let reason = format!("agent {}", row.id);
                audit_in(
                    &txn,
                    actor,
                    crate::audit::Action::AgentDisabled,
                    Vec::new(),
                    reason,
                )
                .await?;
            }
            Ok((Agent::try_from(row)?, txn))
        })
        .await
}

/// A change to an agent's facts; `None` and empty lists leave a fact as it is.
#[derive(Clone, Debug, Default)]
pub struct AgentChange {
    /// The new role.
    pub role: Option<String>,
    /// The new team.
    pub team: Option<String>,
    /// Topics to add to the queues.
    pub add_queues: Vec<String>,
    /// Topics to remove from the queues.
    pub remove_queues: Vec<String>,
}

/// An agent after [`update`], and what changed, in words (roles, teams and topics only).
#[derive(Clone, Debug)]
pub struct Updated {
    /// The agent as stored now.
    pub agent: Agent,
    /// Each change, e.g. `role frontline -> billing`, `queues +billing`.
    pub changes: Vec<String>,
}

/// Changes an agent's role, team or queues. The role and added queues must be words of the
/// policy; a queue may be removed even when the policy no longer defines it. The change
/// and its audit event (`agent_updated`, by `actor`, naming the agent by id) are written
/// in one transaction. The agent's next request authenticates with the new facts.
pub async fn update(
    writer: &Writer,
    vocabulary: &Vocabulary,
    actor: &crate::audit::Actor,
    handle: &str,
    change: AgentChange,
) -> Result<Updated, AgentError> {
    let row = find_by_handle(writer.connection(), handle).await?;
    let before = Agent::try_from(row.clone())?;
    let mut after = before.clone();
    let mut changes = Vec::new();
    let mut fields = Vec::new();
    if let Some(role) = change.role.filter(|r| *r != before.role) {
        if !vocabulary.has_role(&role) {
            let known: Vec<&str> = vocabulary.roles.iter().map(|r| r.name.as_str()).collect();
            return Err(AgentError::Invalid(format!(
                "role {role:?} is not defined by the policy (known: {})",
                known.join(", ")
            )));
        }
        changes.push(format!("role {} -> {role}", before.role));
        fields.push("role".to_owned());
        after.role = role;
    }
    if let Some(team) = change.team.filter(|t| *t != before.team) {
        if !is_word(&team) {
            return Err(AgentError::Invalid(format!(
                "team {team:?}: use lower-case letters, digits and underscores"
            )));
        }
        changes.push(format!("team {} -> {team}", before.team));
        fields.push("team".to_owned());
        after.team = team;
    }
    let mut queue_changes = Vec::new();
    for topic in &change.add_queues {
        if !vocabulary.has_topic(topic) {
            return Err(AgentError::Invalid(format!(
                "queue {topic:?} is not a topic of the policy (known: {})",
                vocabulary.topics.join(", ")
            )));
        }
        if !after.queues.contains(topic) {
            after.queues.push(topic.clone());
            queue_changes.push(format!("+{topic}"));
        }
    }
    for topic in &change.remove_queues {
        if let Some(at) = after.queues.iter().position(|q| q == topic) {
            after.queues.remove(at);
            queue_changes.push(format!("-{topic}"));
        } else {
            return Err(AgentError::Invalid(format!(
                "agent {handle:?} has no queue {topic:?} (queues: {})",
                before.queues.join(", ")
            )));
        }
    }
    if !queue_changes.is_empty() {
        changes.push(format!("queues {}", queue_changes.join(" ")));
        fields.push("queues".to_owned());
    }
    if changes.is_empty() {
        return Ok(Updated {
            agent: before,
            changes,
        });
    }
    let mut active: agent::ActiveModel = row.into();
    active.role = Set(after.role.clone());
    active.team = Set(after.team.clone());
    active.queues = Set(serde_json::to_string(&after.queues).context("encoding queues")?);
    let reason = format!("agent {}: {}", before.id, changes.join("; "));
    let (active, fields, reason) = (&active, &fields, &reason);
    writer
        .transaction(|txn| async move {
            active.clone().update(&txn).await?;
            let action = crate::audit::Action::AgentUpdated;
            audit_in(&txn, actor, action, fields.clone(), reason.clone()).await?;
            Ok::<_, AgentError>(((), txn))
        })
        .await?;
    Ok(Updated {
        agent: after,
        changes,
    })
}

/// Revokes every live token of an agent.
pub async fn revoke_tokens(
    db: &impl sea_orm::ConnectionTrait,
    agent_id: i32,
) -> anyhow::Result<()> {
    api_token::Entity::update_many()
        .col_expr(
            api_token::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(api_token::Column::AgentId.eq(agent_id))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(db)
        .await
        .context("revoking tokens")?;
    Ok(())
}

async fn find_by_handle(
    db: &impl sea_orm::ConnectionTrait,
    handle: &str,
) -> Result<agent::Model, AgentError> {
    agent::Entity::find()
        .filter(agent::Column::Handle.eq(handle))
        .one(db)
        .await
        .context("looking up the agent")?
        .ok_or_else(|| AgentError::UnknownHandle(handle.to_owned()))
}

async fn insert_token(db: &impl sea_orm::ConnectionTrait, agent_id: i32) -> anyhow::Result<String> {
    let token = generate_token();
    api_token::ActiveModel {
        agent_id: Set(agent_id),
        token_hash: Set(hash_token(&token)),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .context("inserting the token")?;
    Ok(token)
}

/// A new token: the prefix and 32 random bytes, base64url without padding.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a token. A fast hash is enough: tokens carry 256 random bits.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Why a request was not authenticated: logged, never sent to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer ntk_…` of the right length and alphabet.
    Malformed,
    /// No such token.
    Unknown,
    /// The token was revoked.
    Revoked,
    /// The agent is disabled.
    Inactive,
    /// A JWT was sent but SSO is not configured.
    SsoDisabled,
    /// The JWT does not parse (or is too long).
    SsoMalformed,
    /// The JWT's algorithm is `none`, one we do not accept, or one without a configured key.
    SsoAlgorithm,
    /// No configured key has the JWT's key id and algorithm.
    SsoUnknownKey,
    /// The signature does not verify.
    SsoSignature,
    /// `exp` has passed.
    SsoExpired,
    /// `nbf` has not come yet.
    SsoNotYetValid,
    /// `iss` is not the configured issuer.
    SsoIssuer,
    /// `aud` does not include the configured audience.
    SsoAudience,
    /// `exp`, `iss` or `aud` is missing.
    SsoMissingClaim,
    /// The handle claim is missing or not a string.
    SsoNoHandle,
    /// No agent has the handle the token names.
    SsoUnknownAgent,
}

/// What a bearer value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// An API token (`ntk_…`).
    ApiToken(&'a str),
    /// A JWT from the identity provider.
    Sso(&'a str),
}

/// The value of a `Bearer` `Authorization` header.
fn bearer_value(header: Option<&str>) -> Result<&str, AuthFailure> {
    let header = header.ok_or(AuthFailure::Missing)?;
    let (scheme, token) = header.split_once(' ').ok_or(AuthFailure::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::Malformed);
    }
    Ok(token.trim())
}

/// Whether `token` has an API token's shape: the prefix and 43 base64url characters.
fn is_api_token(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|body| {
        body.len() == 43
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Parses an `Authorization` header value into an API token or a JWT.
pub fn parse_credential(header: Option<&str>) -> Result<Credential<'_>, AuthFailure> {
    let token = bearer_value(header)?;
    if is_api_token(token) {
        Ok(Credential::ApiToken(token))
    } else if !token.starts_with(TOKEN_PREFIX) && sso::looks_like_jwt(token) {
        Ok(Credential::Sso(token))
    } else {
        Err(AuthFailure::Malformed)
    }
}

/// Parses an `Authorization` header value into an API token of the expected shape.
pub fn parse_bearer(header: Option<&str>) -> Result<&str, AuthFailure> {
    let token = bearer_value(header)?;
    if is_api_token(token) {
        Ok(token)
    } else {
        Err(AuthFailure::Malformed)
    }
}

/// Active agents whose facts name words the loaded policy does not define: such an agent
/// gets nothing (an unknown role), or nothing from that queue (an unknown topic). Lists
/// roles and topics, never handles.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VocabularyGaps {
    /// Active agents whose role the policy does not define.
    pub agents_with_unknown_role: usize,
    /// Those roles.
    pub unknown_roles: Vec<String>,
    /// Active agents with a queue naming a topic the policy does not define.
    pub agents_with_unknown_queue: usize,
    /// Those topics.
    pub unknown_topics: Vec<String>,
}

impl VocabularyGaps {
    /// Whether every active agent's role and queues are defined.
    pub fn is_empty(&self) -> bool {
        self.agents_with_unknown_role == 0 && self.agents_with_unknown_queue == 0
    }
}

/// Finds the active agents whose role or queues the policy's vocabulary lacks.
pub async fn vocabulary_gaps(
    db: &DatabaseConnection,
    vocabulary: &Vocabulary,
) -> anyhow::Result<VocabularyGaps> {
    use std::collections::BTreeSet;
    let rows = agent::Entity::find()
        .filter(agent::Column::Active.eq(true))
        .all(db)
        .await
        .context("listing agents")?;
    let mut gaps = VocabularyGaps::default();
    let (mut roles, mut topics) = (BTreeSet::new(), BTreeSet::new());
    for row in rows {
        let agent = Agent::try_from(row)?;
        if !vocabulary.has_role(&agent.role) {
            gaps.agents_with_unknown_role += 1;
            roles.insert(agent.role.clone());
        }
        let unknown: Vec<&String> = agent
            .queues
            .iter()
            .filter(|q| !vocabulary.has_topic(q))
            .collect();
        if !unknown.is_empty() {
            gaps.agents_with_unknown_queue += 1;
            topics.extend(unknown.into_iter().cloned());
        }
    }
    gaps.unknown_roles = roles.into_iter().collect();
    gaps.unknown_topics = topics.into_iter().collect();
    Ok(gaps)
}

/// Finds the gaps (see [`vocabulary_gaps`]) and logs a warning for every kind (roles and
/// topics, never handles); run at start-up and after every policy reload.
pub async fn warn_about_vocabulary_gaps(db: &DatabaseConnection, vocabulary: &Vocabulary) {
    let gaps = match vocabulary_gaps(db, vocabulary).await {
        Ok(gaps) => gaps,
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "cannot list agents");
            return;
        }
    };
    if gaps.agents_with_unknown_role > 0 {
        tracing::warn!(
            agents = gaps.agents_with_unknown_role,
            roles = ?gaps.unknown_roles,
            "active agents have a role the policy does not define: they see nothing until the role returns or they are updated"
        );
    }
    if gaps.agents_with_unknown_queue > 0 {
        tracing::warn!(
            agents = gaps.agents_with_unknown_queue,
            topics = ?gaps.unknown_topics,
            "active agents have queues naming topics the policy does not define: those queues give nothing"
        );
    }
}

/// Finds the active agent an SSO token named.
pub async fn authenticate_handle(
    db: &DatabaseConnection,
    handle: &str,
) -> Result<Result<Agent, AuthFailure>, anyhow::Error> {
    if !is_handle(handle) {
        return Ok(Err(AuthFailure::SsoUnknownAgent));
    }
    let Some(row) = agent::Entity::find()
        .filter(agent::Column::Handle.eq(handle))
        .one(db)
        .await
        .context("looking up the agent")?
    else {
        return Ok(Err(AuthFailure::SsoUnknownAgent));
    };
    if !row.active {
        return Ok(Err(AuthFailure::Inactive));
    }
    // Service accounts authenticate with their API tokens only: an identity provider
    // names people.
    if row.kind == "service" {
        return Ok(Err(AuthFailure::SsoUnknownAgent));
    }
    Ok(Ok(Agent::try_from(row)?))
}

/// Finds the active agent holding `token`: one statement when the token is good; a
/// refusal takes a second to tell an unknown token from a revoked one (for the log).
pub async fn authenticate(
    db: &DatabaseConnection,
    token: &str,
) -> Result<Result<Agent, AuthFailure>, anyhow::Error> {
    authenticate_hash(db, &hash_token(token)).await
}

/// [`authenticate`], for a caller that already holds the token's hash.
pub async fn authenticate_hash(
    db: &DatabaseConnection,
    hash: &str,
) -> Result<Result<Agent, AuthFailure>, anyhow::Error> {
    let live_tokens = sea_orm::sea_query::Query::select()
        .column(api_token::Column::AgentId)
        .from(api_token::Entity)
        .and_where(api_token::Column::TokenHash.eq(hash))
        .and_where(api_token::Column::RevokedAt.is_null())
        .to_owned();
    let row = agent::Entity::find()
        .filter(agent::Column::Id.in_subquery(live_tokens))
        .one(db)
        .await
        .context("looking up the token's agent")?;
    match row {
        Some(row) if row.active => Ok(Ok(Agent::try_from(row)?)),
        Some(_) => Ok(Err(AuthFailure::Inactive)),
        None => {
            let stored = api_token::Entity::find()
                .filter(api_token::Column::TokenHash.eq(hash))
                .one(db)
                .await
                .context("looking up the token")?;
            Ok(Err(match stored {
                Some(stored) if stored.revoked_at.is_some() => AuthFailure::Revoked,
                _ => AuthFailure::Unknown,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_as_bearer_tokens() {
        let token = generate_token();
        let header = format!("Bearer {token}");
        assert_eq!(parse_bearer(Some(&header)), Ok(token.as_str()));
    }

    #[test]
    fn malformed_headers_are_told_apart_from_missing_ones() {
        assert_eq!(parse_bearer(None), Err(AuthFailure::Missing));
        for bad in [
            "Bearer",
            "Basic abc",
            "Bearer ntk_short",
            "Bearer abc",
            "Bearer ntk_!!!",
        ] {
            assert_eq!(
                parse_bearer(Some(bad)),
                Err(AuthFailure::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn tokens_are_stored_as_hashes_not_as_themselves() {
        let token = generate_token();
        let hash = hash_token(&token);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&token[4..]));
    }
}
