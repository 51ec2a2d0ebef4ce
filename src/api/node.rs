//! Relay object identification: the `Node` interface and `node(id:)` / `nodes(ids:)`.
//!
//! Refetching goes through the same checks as the object's usual path: a ticket through
//! ticket visibility, a customer through the ticket its id is bound to (so a customer id
//! from another ticket's context refetches nothing more than that ticket shows), an agent
//! only as the caller themselves. Anything else, or an id of another kind, is `NOT_FOUND`
//! exactly like an id that does not exist.

use async_graphql::{Context, Interface, Object, ID};

use super::agents::AgentObject;
use super::customers::Customer;
use super::tickets::Ticket;
use crate::error::{ApiError, ApiResult};
use crate::ids::{parse_global, TicketId};
use crate::request::RequestContext;

/// An object that `node(id:)` can refetch by its global id.
// One value per id asked for, alive for one request: boxing the ticket would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Global id, unique across types."))]
pub enum Node {
    /// A ticket.
    Ticket(Ticket),
    /// A customer as seen through one ticket.
    Customer(Customer),
    /// The calling agent.
    Agent(AgentObject),
}

/// `node` and `nodes`.
#[derive(Default)]
pub struct NodeQuery;

/// How many ids one `nodes` call takes.
const MAX_NODES: usize = 100;

#[Object]
impl NodeQuery {
    /// The object with this global id: a `Ticket`, a `Customer` (refetched through the
    /// ticket its id is bound to) or the calling `Agent`. `null` with `NOT_FOUND` for an id
    /// the caller may not see, of another kind, or that does not exist.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Node>> {
        find(RequestContext::get(ctx), &id).await.map(Some)
    }

    /// The objects with these global ids, in the same order (at most 100); each one the
    /// caller may not see is `null`, with a `NOT_FOUND` error at its index.
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> ApiResult<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(ApiError::BadUserInput(format!(
                "`ids` holds {} ids; the limit is {MAX_NODES}",
                ids.len()
            )));
        }
        let request = RequestContext::get(ctx);
        let key = ctx.item.node.response_key().node.to_string();
        let mut found = Vec::with_capacity(ids.len());
        for (index, id) in ids.iter().enumerate() {
            match find(request, id).await {
                Ok(node) => found.push(Some(node)),
                Err(error) => {
                    // Through the error's own conversion: its code, and the log for an
                    // internal one.
                    let error: async_graphql::Error = error.into();
                    let mut server = error.into_server_error(ctx.item.pos);
                    server.path = vec![
                        async_graphql::PathSegment::Field(key.clone()),
                        async_graphql::PathSegment::Index(index),
                    ];
                    ctx.add_error(server);
                    found.push(None);
                }
            }
        }
        Ok(found)
    }
}

/// The node behind `id`, through the checks of its usual path.
async fn find(request: &RequestContext, id: &ID) -> ApiResult<Node> {
    let Some((kind, key)) = parse_global(id) else {
        return Err(ApiError::NotFound);
    };
    let number = |part: Option<&str>| -> ApiResult<i32> {
        part.and_then(|p| p.parse().ok()).ok_or(ApiError::NotFound)
    };
    match kind.as_str() {
        "Ticket" => Ok(Node::Ticket(
            Ticket::visible(request, TicketId::from(number(Some(&key))?)).await?,
        )),
        "Customer" => {
            let mut parts = key.split(':');
            let ticket = TicketId::from(number(parts.next())?);
            let customer = number(parts.next())?;
            let ticket = Ticket::visible(request, ticket).await?;
            if ticket.customer_id() != customer {
                return Err(ApiError::NotFound);
            }
            Ok(Node::Customer(ticket.customer_view(request).await?))
        }
        "Agent" if number(Some(&key))? == request.agent.id => {
            Ok(Node::Agent(AgentObject::from(&request.agent)))
        }
        _ => Err(ApiError::NotFound),
    }
}
