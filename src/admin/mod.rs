//! Agent administration for an admin UI: list agents and service accounts, create them,
//! change their role, team and queues, disable them, issue tokens. Every call is asked of
//! the policy (`allow(agent, "manage", "agents")`; shipped: the `admin` role), checked
//! against the loaded policy's vocabulary, and audited with its change in one transaction
//! (`agents`' functions do both; the CLI calls them too).

use entity::agent;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::agents::{self, Agent, AgentChange, AgentError, NewAgent, Updated};
use crate::audit::{Action, Actor};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::Claim;
use crate::policy::PolicySet;
use crate::reveal::store::GrantStore;
use crate::vocabulary::Permission;
use crate::writer::Writer;

/// An agent created, with its first token: shown once, to the first delivery only.
#[derive(Clone, Debug)]
pub struct Created {
    /// The new agent.
    pub agent: Agent,
    /// Its first token; `None` when the answer replays an earlier delivery (the token was
    /// shown to that one and is stored only as a hash).
    pub token: Option<String>,
}

/// An agent disabled, and how many of its reveal grants were revoked.
#[derive(Clone, Debug)]
pub struct Disabled {
    /// The agent as stored now.
    pub agent: Agent,
    /// Reveal grants revoked.
    pub revoked_grants: usize,
}

/// One admin's agent administration within one request.
pub struct AgentAdmin<'a> {
    /// Reads.
    pub db: &'a DatabaseConnection,
    /// Where writes go.
    pub writer: &'a Writer,
    /// The request's policy snapshot (the permission, and the vocabulary checked).
    pub policy: &'a PolicySet,
    /// Where reveal grants live (a disabled agent's are revoked).
    pub grants: &'a GrantStore,
    /// Tells every instance's token cache that an agent changed.
    pub invalidations: &'a crate::agents::cache::Invalidations,
    /// The calling agent.
    pub agent: &'a Agent,
    /// The caller as the actor of audit events.
    pub actor: Actor,
    /// The request's idempotency claim, if it sent a key.
    pub claim: Option<&'a Claim>,
}

impl From<AgentError> for ApiError {
    fn from(error: AgentError) -> Self {
        match error {
            AgentError::Invalid(message) => ApiError::BadUserInput(message),
            AgentError::UnknownHandle(handle) => {
                ApiError::BadUserInput(format!("no agent with handle {handle:?}"))
            }
            AgentError::Database(e) => ApiError::internal(e, "changing an agent"),
        }
    }
}

impl AgentAdmin<'_> {
    fn require(&self) -> ApiResult<()> {
        if self
            .policy
            .authorize(&self.agent.facts(), Permission::ManageAgents, None)
        {
            Ok(())
        } else {
            Err(ApiError::Forbidden("you may not manage agents".into()))
        }
    }

    /// Up to `limit` agents (service accounts included) with ids between `after` and
    /// `before`, by id from the lowest (or from the highest, reading backward).
    pub async fn list(
        &self,
        after: Option<i32>,
        before: Option<i32>,
        backward: bool,
        limit: u64,
    ) -> ApiResult<Vec<Agent>> {
        self.require()?;
        let mut query = agent::Entity::find();
        if let Some(after) = after {
            query = query.filter(agent::Column::Id.gt(after));
        }
        if let Some(before) = before {
            query = query.filter(agent::Column::Id.lt(before));
        }
        let order = if backward {
            sea_orm::Order::Desc
        } else {
            sea_orm::Order::Asc
        };
        query
            .order_by(agent::Column::Id, order)
            .limit(limit)
            .all(self.db)
            .await?
            .into_iter()
            .map(Agent::try_from)
            .collect::<anyhow::Result<Vec<Agent>>>()
            .map_err(|e| ApiError::internal(e, "reading agents"))
    }

    async fn by_id(&self, id: i32) -> ApiResult<Agent> {
        let row = agent::Entity::find_by_id(id)
            .one(self.writer.connection())
            .await?
            .ok_or(ApiError::NotFound)?;
        Agent::try_from(row).map_err(|e| ApiError::internal(e, "reading an agent"))
    }

    /// Creates an agent or service account and its first token (`agent_created`). A
    /// retried delivery answers the same agent, without the token.
    pub async fn create(&self, new: NewAgent) -> ApiResult<Created> {
        self.require()?;
        let step = crate::idempotency::step(self.claim);
        if let Some(id) = step.recorded::<i32>()? {
            return Ok(Created {
                agent: self.by_id(id).await?,
                token: None,
            });
        }
        let (agent, token) =
            agents::create(self.writer, self.policy.vocabulary(), &self.actor, new).await?;
        self.record(&step, &agent.id).await?;
        Ok(Created {
            agent,
            token: Some(token),
        })
    }

    /// Records a result under the request's key once the write committed. (The agent
    /// functions own their transactions, shared with the CLI; a crash between the two
    /// leaves the key unrecorded, and the retry then finds the handle taken:
    /// `BAD_USER_INPUT`, never a second agent.)
    async fn record<T: serde::Serialize + Sync>(
        &self,
        step: &crate::idempotency::Step<'_>,
        value: &T,
    ) -> ApiResult<()> {
        self.writer
            .transaction(|txn| async move {
                step.record_in(&txn, value).await?;
                Ok::<_, ApiError>(((), txn))
            })
            .await
    }

    /// Changes an agent's role, team or queues (`agent_updated`). Nothing to change
    /// writes nothing.
    pub async fn update(&self, handle: &str, change: AgentChange) -> ApiResult<Updated> {
        self.require()?;
        let updated = agents::update(
            self.writer,
            self.policy.vocabulary(),
            &self.actor,
            handle,
            change,
        )
        .await?;
        // Cached credentials carry the old role, team and queues.
        self.invalidations.agent_changed().await;
        Ok(updated)
    }

    /// Disables an agent: its tokens are revoked with it (`agent_disabled`), then its
    /// reveal grants (`reveal_revoked` each). If the grant store does not answer, the agent
    /// stays disabled and the answer is `REVEAL_UNAVAILABLE`: send it again to revoke the
    /// grants (their tokens no longer work meanwhile).
    pub async fn disable(&self, handle: &str) -> ApiResult<Disabled> {
        self.require()?;
        if handle == self.agent.handle {
            return Err(ApiError::BadUserInput(
                "you cannot disable yourself; ask another admin".into(),
            ));
        }
        let agent = agents::disable(self.writer, &self.actor, handle).await?;
        // Its tokens are revoked: no instance may keep authenticating them from memory.
        self.invalidations.agent_changed().await;
        let revoked = self.grants.remove_for_agent(agent.id).await.map_err(|error| {
            tracing::warn!(%error, "an agent was disabled, but its grants could not be revoked");
            ApiError::RevealUnavailable
        })?;
        let events: Vec<_> = revoked
            .iter()
            .map(|g| {
                self.actor.event(
                    Action::RevealRevoked,
                    Some(g.customer_id),
                    Some(g.ticket_id),
                    vec![g.field.to_string()],
                    Some("agent disabled".into()),
                )
            })
            .collect();
        let events = &events;
        self.writer
            .transaction(|txn| async move {
                crate::audit::append_in(&txn, events)
                    .await
                    .map_err(|e| ApiError::internal(e, "auditing revocations"))?;
                Ok::<_, ApiError>(((), txn))
            })
            .await?;
        Ok(Disabled {
            agent,
            revoked_grants: revoked.len(),
        })
    }

    /// Issues a new token for an active agent (`agent_token_issued`); the token is shown
    /// once. A retried delivery under the same key gets `CONFLICT`: the token went to the
    /// first one, and showing it again is impossible (only its hash is stored).
    pub async fn issue_token(&self, handle: &str) -> ApiResult<(Agent, String)> {
        self.require()?;
        let step = crate::idempotency::step(self.claim);
        if step.recorded::<i32>()?.is_some() {
            return Err(ApiError::Conflict {
                message: "this key already issued a token, shown once to that delivery; issue another with a new key".into(),
                retry_after_secs: None,
            });
        }
        let token = agents::issue_token(self.writer, &self.actor, handle).await?;
        let row = agent::Entity::find()
            .filter(agent::Column::Handle.eq(handle))
            .one(self.writer.connection())
            .await?
            .ok_or(ApiError::NotFound)?;
        self.record(&step, &row.id).await?;
        let agent = Agent::try_from(row).map_err(|e| ApiError::internal(e, "reading an agent"))?;
        Ok((agent, token))
    }
}
