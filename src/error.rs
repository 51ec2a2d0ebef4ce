//! The one error type clients see. Each variant is a stable `extensions.code`; unexpected
//! failures are logged with their cause (inside the request's span, so with its request id)
//! and answered with a generic message.

use std::sync::Arc;

use async_graphql::ErrorExtensions;

/// An error as the client sees it.
///
/// It deliberately does not implement `Display`: async-graphql converts any `Display` type
/// into an error without a code, and this type must only ever convert through its own
/// `From` impl below, which sets `extensions.code` and logs internal causes.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// No valid credentials.
    Unauthenticated,
    /// Authenticated, but the action is not allowed. The message never names hidden data.
    Forbidden(String),
    /// The thing does not exist or the agent may not see it; the two are indistinguishable.
    NotFound,
    /// The input is malformed; the message says how.
    BadUserInput(String),
    /// Too many requests; retry after the given number of seconds.
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// Reveals cannot be granted right now (the grant store is unavailable).
    RevealUnavailable,
    /// The request conflicts with another use of its `Idempotency-Key`: a different
    /// request, or the same one still running (then with a retry hint).
    Conflict {
        /// What happened and what to do.
        message: String,
        /// Seconds after which a retry may succeed, when waiting helps.
        retry_after_secs: Option<u64>,
    },
    /// The database is busy (write contention that outlasted the retries) or momentarily
    /// unreachable; nothing was changed and the same request may be sent again after the
    /// given number of seconds. The cause is logged at WARN, never sent.
    Unavailable {
        /// Seconds after which a retry is likely to succeed.
        retry_after_secs: u64,
        /// What was being done, for the log.
        cause: Arc<anyhow::Error>,
    },
    /// Anything unexpected; the cause is logged, never sent.
    Internal(Arc<anyhow::Error>),
}

impl ApiError {
    /// The stable code in `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound => "NOT_FOUND",
            ApiError::BadUserInput(_) => "BAD_USER_INPUT",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::RevealUnavailable => "REVEAL_UNAVAILABLE",
            ApiError::Unavailable { .. } => "UNAVAILABLE",
            ApiError::Conflict { .. } => "CONFLICT",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// The message the client reads: what to do, never why it failed inside.
    pub fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated => {
                "authentication required: send a valid API token as `Authorization: Bearer <token>`"
                    .into()
            }
            ApiError::Forbidden(message)
            | ApiError::BadUserInput(message)
            | ApiError::Conflict { message, .. } => message.clone(),
            ApiError::NotFound => "not found".into(),
            ApiError::RateLimited { retry_after_secs } => {
                format!("rate limited: retry after {retry_after_secs} s")
            }
            ApiError::RevealUnavailable => "reveal unavailable: try again shortly".into(),
            ApiError::Unavailable {
                retry_after_secs, ..
            } => format!(
                "the service is busy and changed nothing: send the same request again after {retry_after_secs} s"
            ),
            ApiError::Internal(_) => "internal error".into(),
        }
    }

    /// Wraps an unexpected failure, with context saying what was being done. Database
    /// contention or a momentarily unreachable database anywhere in its chain of causes
    /// ([`crate::writer::is_transient`]) becomes [`ApiError::Unavailable`] instead: a busy
    /// database is the client's cue to retry, not a fault.
    pub fn internal(error: impl Into<anyhow::Error>, context: &'static str) -> ApiError {
        use crate::writer::Transient;
        let error = error.into().context(context);
        if error.is_transient() {
            ApiError::Unavailable {
                retry_after_secs: 1,
                cause: Arc::new(error),
            }
        } else {
            ApiError::Internal(Arc::new(error))
        }
    }
}

impl crate::writer::Transient for ApiError {
    fn is_transient(&self) -> bool {
        matches!(self, ApiError::Unavailable { .. })
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        ApiError::internal(error, "database")
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        match &error {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
            }
            ApiError::Unavailable { cause, .. } => {
                tracing::warn!(
                    error = format!("{cause:#}"),
                    "database busy; answered UNAVAILABLE"
                );
            }
            _ => {}
        }
        async_graphql::Error::new(error.message()).extend_with(|_, ext| {
            ext.set("code", error.code());
            if let ApiError::RateLimited { retry_after_secs }
            | ApiError::Unavailable {
                retry_after_secs, ..
            } = error
            {
                ext.set("retryAfterSeconds", retry_after_secs);
            }
            if let ApiError::Conflict {
                retry_after_secs: Some(retry_after_secs),
                ..
            } = error
            {
                ext.set("retryAfterSeconds", retry_after_secs);
            }
        })
    }
}

/// The result type of resolvers and services.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_never_carry_their_cause_to_the_client() {
        let err: async_graphql::Error =
            ApiError::internal(anyhow::anyhow!("disk full at /secret"), "saving").into();
        assert_eq!(err.message, "internal error");
        let ext = serde_json::to_string(&err.extensions).unwrap();
        assert!(ext.contains("INTERNAL"));
        assert!(!ext.contains("secret"));
    }

    #[test]
    fn contention_is_unavailable_with_a_retry_hint_and_no_cause() {
        let busy = sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout);
        let err = ApiError::internal(anyhow::Error::from(busy).context("at /secret"), "saving");
        assert_eq!(err.code(), "UNAVAILABLE");
        let err: async_graphql::Error = err.into();
        let ext = serde_json::to_string(&err.extensions).unwrap();
        assert!(ext.contains("\"retryAfterSeconds\":1"), "{ext}");
        assert!(!ext.contains("secret") && !err.message.contains("secret"));
    }
}
