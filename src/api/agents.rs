//! The `me` query, the `Agent` type, and agent administration for an admin UI
//! (`agents`, `createAgent`, `updateAgent`, `disableAgent`, `issueAgentToken`).

use super::pages::{Page, Window};
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};

use crate::agents::{Agent, AgentChange, NewAgent};
use crate::error::ApiResult;
use crate::request::RequestContext;

/// A person working tickets, or a channel integration's service account.
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    /// A person (may sign in by SSO).
    Agent,
    /// A channel integration (API tokens only).
    Service,
}

/// An agent, as the agent UI shows it.
#[derive(SimpleObject)]
#[graphql(name = "Agent")]
pub struct AgentObject {
    /// Global id (`node(id:)` refetches the calling agent by it).
    #[graphql(owned)]
    pub id: ID,
    /// Unique handle.
    pub handle: String,
    /// Name to display.
    pub display_name: String,
    /// Role (a word of the policy vocabulary).
    pub role: String,
    /// Team.
    pub team: String,
    /// Topics whose unassigned tickets this agent picks up.
    pub queues: Vec<String>,
    /// Whether the agent may sign in (false once disabled).
    pub active: bool,
    /// A person or a service account.
    pub kind: AgentKind,
}

impl From<&Agent> for AgentObject {
    fn from(agent: &Agent) -> Self {
        AgentObject {
            id: super::gid("Agent", agent.id),
            handle: agent.handle.clone(),
            display_name: agent.display_name.clone(),
            role: agent.role.clone(),
            team: agent.team.clone(),
            queues: agent.queues.clone(),
            active: agent.active,
            kind: if agent.service {
                AgentKind::Service
            } else {
                AgentKind::Agent
            },
        }
    }
}

/// Queries about agents.
#[derive(Default)]
pub struct AgentQuery;

/// The largest page of `agents`.
const MAX_AGENTS_PAGE: i32 = 100;

/// The kind of `agents`' cursors (`agent:<id>`, base64url, as before).
const CURSOR: &str = "agent";

#[Object]
impl AgentQuery {
    /// The calling agent.
    async fn me(&self, ctx: &Context<'_>) -> AgentObject {
        AgentObject::from(&RequestContext::get(ctx).agent)
    }

    /// Every agent and service account, disabled ones included, by id (`allow(agent,
    /// "manage", "agents")`; shipped: admins). `first` is 1-100 (default 50).
    async fn agents(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1-100 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(desc = "Page size reading backward, 1-100.")] last: Option<i32>,
        #[graphql(desc = "Cursor of the first edge of the next page.")] before: Option<String>,
    ) -> ApiResult<Page<AgentObject>> {
        let window = Window::parse(CURSOR, first, after, last, before, 50, MAX_AGENTS_PAGE)?;
        let (after, before) = window.numbers("agents")?;
        let agents = RequestContext::get(ctx)
            .admin()
            .list(after, before, window.backward(), window.limit())
            .await?;
        let rows = agents
            .iter()
            .map(|a| (a.id.to_string(), AgentObject::from(a)))
            .collect();
        Ok(window.page(CURSOR, rows))
    }
}

/// A new agent or service account. Role and queues must be words of the loaded policy.
#[derive(InputObject)]
pub struct CreateAgentInput {
    /// Unique handle: 1-64 lower-case letters, digits, `.`, `_` or `-`.
    pub handle: String,
    /// Name to display (default: the handle).
    pub display_name: Option<String>,
    /// A role of the policy (`role(...)` facts).
    pub role: String,
    /// Team.
    pub team: String,
    /// Topics whose unassigned tickets the agent picks up.
    #[graphql(default)]
    pub queues: Vec<String>,
    /// A service account for a channel integration (never signed in by SSO).
    #[graphql(default)]
    pub service: bool,
}

/// A change to an agent; fields left out stay as they are.
#[derive(InputObject)]
pub struct UpdateAgentInput {
    /// The new role.
    pub role: Option<String>,
    /// The new team.
    pub team: Option<String>,
    /// Topics to add to the queues.
    #[graphql(default)]
    pub add_queues: Vec<String>,
    /// Topics to remove from the queues.
    #[graphql(default)]
    pub remove_queues: Vec<String>,
}

/// An agent created.
#[derive(SimpleObject)]
pub struct CreateAgentPayload {
    /// The new agent.
    pub agent: AgentObject,
    /// Its API token, shown this once (only its hash is stored). Null when this answer
    /// replays an earlier delivery of the same `Idempotency-Key`: issue another token then.
    pub token: Option<String>,
}

/// An agent changed.
#[derive(SimpleObject)]
pub struct UpdateAgentPayload {
    /// The agent as stored now.
    pub agent: AgentObject,
    /// Each change, e.g. `role frontline -> billing`; empty when nothing changed.
    pub changes: Vec<String>,
}

/// An agent disabled.
#[derive(SimpleObject)]
pub struct DisableAgentPayload {
    /// The agent as stored now.
    pub agent: AgentObject,
    /// How many of its reveal grants were revoked.
    pub revoked_grants: i32,
}

/// A token issued.
#[derive(SimpleObject)]
pub struct IssueTokenPayload {
    /// Whose token it is.
    pub agent: AgentObject,
    /// The token, shown this once.
    pub token: String,
}

/// Agent administration.
#[derive(Default)]
pub struct AgentMutation;

#[Object]
impl AgentMutation {
    /// Creates an agent or a service account and its first token (`allow(agent, "manage",
    /// "agents")`). Audited (`AGENT_CREATED`, never the token).
    async fn create_agent(
        &self,
        ctx: &Context<'_>,
        input: CreateAgentInput,
    ) -> ApiResult<Option<CreateAgentPayload>> {
        super::nullable(async {
            let new = NewAgent {
                display_name: input.display_name.unwrap_or_else(|| input.handle.clone()),
                handle: input.handle,
                role: input.role,
                team: input.team,
                queues: input.queues,
                service: input.service,
            };
            let created = RequestContext::get(ctx).admin().create(new).await?;
            Ok(CreateAgentPayload {
                agent: AgentObject::from(&created.agent),
                token: created.token,
            })
        })
        .await
    }

    /// Changes an agent's role, team or queues, checked against the loaded policy. The
    /// agent's next request works with the new facts. Audited (`AGENT_UPDATED`).
    async fn update_agent(
        &self,
        ctx: &Context<'_>,
        handle: String,
        input: UpdateAgentInput,
    ) -> ApiResult<Option<UpdateAgentPayload>> {
        super::nullable(async {
            let change = AgentChange {
                role: input.role,
                team: input.team,
                add_queues: input.add_queues,
                remove_queues: input.remove_queues,
            };
            let updated = RequestContext::get(ctx)
                .admin()
                .update(&handle, change)
                .await?;
            Ok(UpdateAgentPayload {
                agent: AgentObject::from(&updated.agent),
                changes: updated.changes,
            })
        })
        .await
    }

    /// Disables an agent: its tokens stop working at once and its reveal grants are
    /// revoked. Admins cannot disable themselves. Audited (`AGENT_DISABLED`).
    async fn disable_agent(
        &self,
        ctx: &Context<'_>,
        handle: String,
    ) -> ApiResult<Option<DisableAgentPayload>> {
        super::nullable(async {
            let disabled = RequestContext::get(ctx).admin().disable(&handle).await?;
            Ok(DisableAgentPayload {
                agent: AgentObject::from(&disabled.agent),
                revoked_grants: i32::try_from(disabled.revoked_grants).unwrap_or(i32::MAX),
            })
        })
        .await
    }

    /// Issues a new API token for an active agent, shown this once. Audited
    /// (`AGENT_TOKEN_ISSUED`, never the token).
    async fn issue_agent_token(
        &self,
        ctx: &Context<'_>,
        handle: String,
    ) -> ApiResult<Option<IssueTokenPayload>> {
        super::nullable(async {
            let (agent, token) = RequestContext::get(ctx)
                .admin()
                .issue_token(&handle)
                .await?;
            Ok(IssueTokenPayload {
                agent: AgentObject::from(&agent),
                token,
            })
        })
        .await
    }
}
