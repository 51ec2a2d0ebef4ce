//! The `me` query and the `Agent` type.

use async_graphql::{Context, Object, SimpleObject, ID};

use crate::agents::Agent;
use crate::request::RequestContext;

/// An agent, as the agent UI shows it.
#[derive(SimpleObject)]
#[graphql(name = "Agent")]
pub struct AgentObject {
    /// Opaque id.
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
}

impl From<&Agent> for AgentObject {
    fn from(agent: &Agent) -> Self {
        AgentObject {
            id: ID(agent.id.to_string()),
            handle: agent.handle.clone(),
            display_name: agent.display_name.clone(),
            role: agent.role.clone(),
            team: agent.team.clone(),
            queues: agent.queues.clone(),
        }
    }
}

/// Queries about the calling agent.
#[derive(Default)]
pub struct AgentQuery;

#[Object]
impl AgentQuery {
    /// The calling agent.
    async fn me(&self, ctx: &Context<'_>) -> AgentObject {
        AgentObject::from(&RequestContext::get(ctx).agent)
    }
}
