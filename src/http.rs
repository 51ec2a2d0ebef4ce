//! The HTTP transport: `/graphql`, `/healthz`, `/readyz`.
//!
//! The GraphQL endpoint reads the body itself so that every rejection (size, content type,
//! malformed JSON, batches, missing credentials) is a GraphQL-shaped JSON error with a
//! stable code and the right HTTP status.

use std::time::Duration;

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use async_graphql::http::GraphiQLSource;
use futures_util::StreamExt;
use serde_json::json;

use crate::agents::{self, AuthFailure};
use crate::audit::loader::ViewAuditor;
use crate::config::Mode;
use crate::graphql::RequestContext;
use crate::loaders::Loaders;
use crate::reveal::RequestGrants;
use crate::startup::AppState;
use crate::telemetry::RequestId;

/// A JSON error response in GraphQL's shape.
fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    response.json(json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    }))
}

fn request_id(req: &HttpRequest) -> RequestId {
    req.extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_default()
}

/// `POST /graphql`.
pub async fn graphql(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let limit = state.settings.max_body_bytes;
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BAD_USER_INPUT",
            &format!("request body larger than {limit} bytes"),
        )
    };
    if req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|len| len > limit)
    {
        return too_large();
    }
    let is_json = req
        .mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.essence_str() == "application/json");
    if !is_json {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "send the GraphQL request as JSON with `Content-Type: application/json`",
        );
    }

    // Authenticate before reading the body, so anonymous callers cost as little as possible.
    let token = match agents::parse_bearer(
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    ) {
        Ok(token) => token.to_owned(),
        Err(failure) => return unauthenticated(failure),
    };
    let agent = match agents::authenticate(&state.db, &token).await {
        Ok(Ok(agent)) => agent,
        Ok(Err(failure)) => return unauthenticated(failure),
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "authentication failed");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "INTERNAL",
                "internal error",
            );
        }
    };

    let per_token = crate::ratelimit::Rate {
        max: state.settings.requests_per_minute,
        window: Duration::from_secs(60),
    };
    let token_key = format!("token:{}", &agents::hash_token(&token)[..16]);
    if let crate::ratelimit::Verdict::Limited { retry_after_secs } =
        state.limiter.hit(&token_key, per_token).await
    {
        let mut response = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            &format!("too many requests: retry after {retry_after_secs} s"),
        );
        if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }

    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                "the request body could not be read",
            );
        };
        if body.len() + chunk.len() > limit {
            return too_large();
        }
        body.extend_from_slice(&chunk);
    }
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                "the request body is not valid JSON",
            )
        }
    };
    if value.is_array() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "batched requests are not supported: send one operation per request",
        );
    }
    let request: async_graphql::Request = match serde_json::from_value(value) {
        Ok(request) => request,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                "the body must be a JSON object with a string `query` and optional `variables` and `operationName`",
            )
        }
    };

    let request_id = request_id(&req);
    let auditor = ViewAuditor {
        log: state.audit.clone(),
        actor_agent_id: agent.id,
        actor_role: agent.role.clone(),
        request_id: request_id.0.clone(),
    };
    let grants = RequestGrants::new(
        state.grants.clone(),
        state.audit.clone(),
        agent.id,
        &agent.role,
        &request_id.0,
    );
    if let Err(problem) = crate::limits::check(&request.query, &state.settings.limits) {
        return error_response(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", &problem);
    }
    let context = RequestContext {
        agent,
        request_id,
        policy: state.policy.current(),
        db: state.db.clone(),
        loaders: Loaders::new(&state.db, auditor, state.vault.clone()),
        audit: state.audit.clone(),
        grant_store: state.grants.clone(),
        grants,
        vault: state.vault.clone(),
        settings: state.settings.clone(),
        limiter: state.limiter.clone(),
    };
    let response = state.schema.execute(request.data(context)).await;
    let response = mark_errors(response);
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .json(response)
}

/// Gives every error without a code one: parse and validation errors are the client's.
fn mark_errors(mut response: async_graphql::Response) -> async_graphql::Response {
    for error in &mut response.errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|ext| ext.get("code").is_some());
        if !has_code {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "BAD_USER_INPUT");
        }
    }
    response
}

fn unauthenticated(failure: AuthFailure) -> HttpResponse {
    tracing::info!(reason = ?failure, "request not authenticated");
    error_response(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "authentication required: send a valid API token as `Authorization: Bearer <token>`",
    )
}

/// `GET /graphql`: GraphiQL in dev mode; nothing in production.
pub async fn graphiql(state: web::Data<AppState>) -> HttpResponse {
    if state.settings.mode != Mode::Dev {
        return error_response(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "GraphiQL is only served in dev mode; POST queries to /graphql",
        );
    }
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .body(GraphiQLSource::build().endpoint("/graphql").finish())
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and a policy is loaded (HTTP 503 otherwise). A grant
/// store that does not answer makes the status `degraded` (reveals fail closed) and a
/// refused policy reload is reported with file and line; neither makes the service unready,
/// since it keeps serving safely.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (database, grant_store) = tokio::join!(
        crate::db::ping(&state.db, Duration::from_secs(2)),
        state.grants.ping()
    );
    let policy = state.policy.current();
    let reload = state.policy.status();
    let body = json!({
        "status": match (database, grant_store.is_ok()) {
            (false, _) => "unavailable",
            (true, false) => "degraded",
            (true, true) => "ready",
        },
        "checks": {
            "database": if database { "up" } else { "down" },
            "grantStore": {
                "kind": state.grants.describe(),
                "status": if grant_store.is_ok() { "up" } else { "down" },
            },
            "policy": {
                "status": if reload.last_error.is_some() { "reload_refused" } else { "loaded" },
                "files": policy.files().len(),
                "loadedAt": reload.loaded_at,
                "reloads": reload.reloads,
                "lastReloadError": reload.last_error,
            },
        }
    });
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(body)
}

/// Query of `GET /public/consent-notices`.
#[derive(serde::Deserialize)]
pub struct NoticeQuery {
    topic: String,
    channel: String,
}

/// `GET /public/consent-notices?topic=…&channel=…`: the current notices for the chat
/// widget, without an agent token (they hold no personal data).
pub async fn consent_notices(
    state: web::Data<AppState>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let words = [&query.topic, &query.channel];
    if words.iter().any(|w| !crate::policy::is_word(w)) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "`topic` and `channel` are lower-case words",
        );
    }
    let policy = state.policy.current();
    let notices = policy.notices().current(&query.topic, &query.channel);
    HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=60"))
        .json(json!({ "notices": notices }))
}

/// Unknown paths: a JSON 404.
pub async fn not_found() -> HttpResponse {
    error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
}
