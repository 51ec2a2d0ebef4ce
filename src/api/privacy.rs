//! The privacy officer's GraphQL operations (the workflow is `crate::privacy`): export everything held on a customer, and
//! erase a customer for good (crypto-shredding: the data key is destroyed, the rows
//! deleted, the audit trail kept with pseudonymous ids).

use async_graphql::{Context, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::ids::CustomerId;
use crate::request::RequestContext;
use crate::vocabulary::Permission;

fn require(request: &RequestContext, permission: Permission) -> ApiResult<()> {
    if request.allowed(permission) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "your role may not {} customer data",
            permission.action()
        )))
    }
}

/// What `eraseCustomer` did (the same answer every time for the same customer).
#[derive(SimpleObject)]
pub struct Erasure {
    /// The erased customer's (now pseudonymous) id.
    pub customer_id: ID,
    /// When the erasure happened.
    pub erased_at: DateTime<Utc>,
}

/// Privacy-officer queries.
#[derive(Default)]
pub struct PrivacyQuery;

#[Object]
impl PrivacyQuery {
    /// Everything held on a customer, decrypted, plus the access report (dates, purposes,
    /// roles of every recorded access), as one JSON document. Recorded in the audit trail
    /// before it is returned. For roles the policy allows (`allow(agent, "export",
    /// "customer_data")`).
    async fn export_customer_data(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
    ) -> ApiResult<Json<Value>> {
        let request = RequestContext::get(ctx);
        require(request, Permission::ExportCustomerData)?;
        let id = CustomerId::parse(&customer_id, "customerId")?;
        let document = request.privacy().export(id).await?;
        Ok(Json(document))
    }
}

/// Privacy-officer mutations.
#[derive(Default)]
pub struct PrivacyMutation;

#[Object]
impl PrivacyMutation {
    /// Erases a customer for good: destroys their data key (so any copy of their
    /// ciphertext, in backups too, stays unreadable), deletes their rows, revokes grants on
    /// their tickets, and records the erasure. The audit trail stays verifiable, naming the
    /// customer only by their former id. Erasing again answers the same; an unknown
    /// customer is `NOT_FOUND`. For roles the policy allows (`allow(agent, "erase",
    /// "customer_data")`).
    async fn erase_customer(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
    ) -> ApiResult<Option<Erasure>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            require(request, Permission::EraseCustomerData)?;
            let id = CustomerId::parse(&customer_id, "customerId")?;
            let erased_at = request.privacy().erase(id).await?;
            Ok(Erasure {
                customer_id,
                erased_at,
            })
        })
        .await
    }
}
