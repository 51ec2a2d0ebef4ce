//! The HTTP transport: `/graphql`, `/healthz`, `/readyz`, `/metrics`.
//!
//! The GraphQL endpoint reads the body itself so that every rejection (size, content type,
//! malformed JSON, batches, missing credentials) is a GraphQL-shaped JSON error with a
//! stable code and the right HTTP status.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use async_graphql::parser::types::OperationType;
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::agents::cache::{Cached, Invalidations, TokenCache};
use crate::agents::{self, Agent, AuthFailure, Credential};
use crate::allowlist::{self, AllowList};
use crate::api::AppSchema;
use crate::audit::loader::ViewAuditor;
use crate::audit::AuditLog;
use crate::config::{Mode, Settings};
use crate::crypto::vault::Vault;
use crate::error::ApiError;
use crate::loaders::Loaders;
use crate::policy::Policy;
use crate::request::RequestContext;
use crate::reveal::store::GrantStore;
use crate::reveal::RequestGrants;
use crate::telemetry::RequestId;

/// What every request handler shares.
pub struct AppState {
    /// The database, for reads.
    pub db: DatabaseConnection,
    /// Where writes go ([`crate::db`]: one writer).
    pub writer: crate::writer::Writer,
    /// Erasures and purges recorded outside the database.
    pub ledger: crate::ledger::Ledger,
    /// The running policy.
    pub policy: Policy,
    /// The audit trail.
    pub audit: AuditLog,
    /// Where reveal grants live.
    pub grants: GrantStore,
    /// Customers' data keys, behind the master keys.
    pub vault: Arc<Vault>,
    /// Rate limits, on the grant store's backend.
    pub limiter: crate::ratelimit::RateLimiter,
    /// The GraphQL schema.
    pub schema: AppSchema,
    /// The same schema, validating in fast mode: for documents that passed `schema`'s
    /// full validation before (`documents.rs`).
    pub fast_schema: AppSchema,
    /// The schema's input types, for checking every request's variables.
    pub inputs: Arc<crate::api::inputs::InputTypes>,
    /// The settings the service started with.
    pub settings: Arc<Settings>,
    /// Work counters and latency histograms for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// SSO token verification, when configured.
    pub sso: Option<Arc<crate::agents::sso::SsoVerifier>>,
    /// The operation allow-list, when configured.
    pub allow_list: Option<Arc<crate::allowlist::AllowList>>,
    /// Credentials authenticated in the last second.
    pub tokens: TokenCache,
    /// Parsed documents, by their text.
    pub documents: crate::documents::Documents,
    /// How a change to an agent reaches every instance's token cache.
    pub invalidations: Invalidations,
    /// The schema's types, for putting responses in the specification's shape.
    pub shapes: Arc<crate::api::shape::Shapes>,
}

/// A JSON error response in GraphQL's shape. Nothing may keep it (`no-store`): an error
/// can say which token was refused or which limit was hit.
fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    response.json(json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    }))
}

/// The GraphQL-over-HTTP response media type, for clients that list it in `Accept`.
pub const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// Whether the client accepts `application/graphql-response+json` (listed in `Accept`
/// with a non-zero quality). Otherwise it gets `application/json`, the legacy type.
fn wants_graphql_response(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let essence = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            essence.eq_ignore_ascii_case(GRAPHQL_RESPONSE) && !refused
        })
}

/// Middleware of `/graphql`: a client that accepts `application/graphql-response+json`
/// gets every JSON answer with that media type.
pub async fn negotiate_media_type(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let wants = wants_graphql_response(req.request());
    let mut response = next.call(req).await?;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if wants && is_json {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/graphql-response+json; charset=utf-8"),
        );
    }
    Ok(response)
}

/// A GraphQL request error (the document does not parse, fails validation or a limit, or
/// its variables do not fit): nothing ran, so there is no `data`. The status follows the
/// GraphQL-over-HTTP specification: 400 for clients that accept
/// `application/graphql-response+json`, 200 for legacy `application/json` clients.
fn request_error(req: &HttpRequest, errors: serde_json::Value) -> HttpResponse {
    let status = if wants_graphql_response(req) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "errors": errors }))
}

fn request_id(req: &HttpRequest) -> RequestId {
    req.extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_default()
}

/// What [`run`] attaches to the answer of a request it executed, for `/metrics`. An answer
/// without it was refused before execution.
#[derive(Clone, Copy)]
struct Executed(crate::metrics::Operation, crate::metrics::Outcome);

/// Times one `/graphql` request, from its headers read to its answer built, and records
/// it by operation type and outcome ([`Executed`], or refused).
async fn timed(
    state: &AppState,
    answer: impl std::future::Future<Output = HttpResponse>,
) -> HttpResponse {
    use crate::metrics::{Operation, Outcome};
    let started = std::time::Instant::now();
    let response = answer.await;
    let Executed(operation, outcome) = response
        .extensions()
        .get::<Executed>()
        .copied()
        .unwrap_or(Executed(Operation::None, Outcome::Error));
    state
        .metrics
        .observe_request(operation, outcome, started.elapsed());
    response
}

/// `POST /graphql`: any operation, sent as `application/json` (so a browser cannot send
/// one cross-origin without a CORS preflight).
pub async fn graphql(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    timed(&state, post(&req, payload, &state)).await
}

/// [`graphql`]'s work: checks and reads the body, authenticates, executes.
async fn post(req: &HttpRequest, mut payload: web::Payload, state: &AppState) -> HttpResponse {
    let multipart = req
        .mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.essence_str() == "multipart/form-data");
    // A multipart request (the GraphQL multipart request spec, for uploads) may carry one
    // document on top of the usual body. It is no CSRF risk: a browser sends the bearer
    // token only when a script sets the Authorization header, which needs CORS.
    let limit = state.settings.max_body_bytes
        + if multipart {
            state.settings.max_document_bytes + 16 * 1024
        } else {
            0
        };
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
    if !is_json && !multipart {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "send the GraphQL request as JSON with `Content-Type: application/json` (or, to upload a document, as `multipart/form-data`)",
        );
    }

    // Authenticate before reading the body, so anonymous callers cost as little as possible.
    let agent = match authenticate(req, state).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };

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
    if multipart {
        return execute_multipart(req, state, agent, body.freeze()).await;
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
    execute(req, state, agent, value, Method::Post).await
}

/// The URL parameters of `GET /graphql`; `variables` and `extensions` are JSON text.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    variables: Option<String>,
    operation_name: Option<String>,
    extensions: Option<String>,
}

/// `GET /graphql`: with `query` (or a persisted operation's hash in `extensions`) runs a
/// query, never a mutation; without, serves GraphiQL in dev mode.
pub async fn graphql_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = web::Query::<GetParams>::from_query(req.query_string());
    if let Ok(params) = &params {
        if params.query.is_none() && params.extensions.is_none() {
            return graphiql(&state);
        }
    }
    timed(&state, get(&req, params, &state)).await
}

/// [`graphql_get`]'s work for a GraphQL request: reads the URL's parameters,
/// authenticates, executes.
async fn get(
    req: &HttpRequest,
    params: Result<web::Query<GetParams>, actix_web::error::QueryPayloadError>,
    state: &AppState,
) -> HttpResponse {
    let Ok(params) = params else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "the URL parameters are `query`, `variables`, `operationName` and `extensions`",
        );
    };
    let limit = state.settings.max_body_bytes.min(MAX_GET_PARAMETERS);
    if req.query_string().len() > limit {
        return error_response(
            StatusCode::URI_TOO_LONG,
            "BAD_USER_INPUT",
            &format!("the URL's parameters are longer than {limit} bytes; POST the request"),
        );
    }
    let agent = match authenticate(req, state).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    let mut value = json!({});
    for (key, text, json) in [
        ("query", &params.query, false),
        ("operationName", &params.operation_name, false),
        ("variables", &params.variables, true),
        ("extensions", &params.extensions, true),
    ] {
        let Some(text) = text else { continue };
        let field = if json {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(parsed @ serde_json::Value::Object(_)) => parsed,
                _ => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        "BAD_USER_INPUT",
                        &format!("the `{key}` URL parameter must be a JSON object"),
                    )
                }
            }
        } else {
            serde_json::Value::String(text.clone())
        };
        value[key] = field;
    }
    execute(req, state, agent, value, Method::Get).await
}

/// The longest URL parameters of a GET. The HTTP layer itself refuses a URL of 64 KiB or
/// more (the `http` crate's bound on a URI) with a bare 400 before any handler runs, so the
/// service's own 414, with its message and request id, must come well before that.
const MAX_GET_PARAMETERS: usize = 32 * 1024;

/// How the request came.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

/// Authenticates the caller (API token or SSO token) and counts the request against the
/// caller's rate: per API token, or per agent for SSO tokens (an identity provider can
/// issue many).
async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Agent, HttpResponse> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let credential = agents::parse_credential(header).map_err(unauthenticated)?;
    let (agent, rate_key) = match identify(credential, state).await {
        Ok(Ok(cached)) => (cached.agent, cached.rate_key),
        Ok(Err(failure)) => return Err(unauthenticated(failure)),
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "authentication failed");
            return Err(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "INTERNAL",
                "internal error",
            ));
        }
    };

    let per_caller = crate::ratelimit::Rate {
        max: state.settings.requests_per_minute,
        window: Duration::from_secs(60),
    };
    if let crate::ratelimit::Verdict::Limited { retry_after_secs } =
        state.limiter.hit(&rate_key, per_caller).await
    {
        let mut response = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            &format!("too many requests: retry after {retry_after_secs} s"),
        );
        if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Err(response);
    }
    Ok(agent)
}

/// The agent behind a credential: from the token cache when it was looked up less than a
/// second ago (`agents::cache`), otherwise from the database.
async fn identify(
    credential: Credential<'_>,
    state: &AppState,
) -> anyhow::Result<Result<Cached, AuthFailure>> {
    /// What the database is asked when memory has no answer.
    enum LookUp {
        Hash(String),
        Handle(String),
    }
    let (key, look_up) = match credential {
        Credential::ApiToken(token) => {
            let hash = agents::hash_token(token);
            (format!("token:{hash}"), LookUp::Hash(hash))
        }
        Credential::Sso(jwt) => match &state.sso {
            None => return Ok(Err(AuthFailure::SsoDisabled)),
            Some(verifier) => match verifier.verify(jwt).await {
                Err(failure) => return Ok(Err(failure)),
                Ok(verified) => (
                    format!("sso:{}", verified.handle),
                    LookUp::Handle(verified.handle),
                ),
            },
        },
    };
    if let Some(cached) = state.tokens.get(key.as_str()) {
        return Ok(Ok(cached));
    }
    let ticket = state.tokens.ticket();
    let found = match look_up {
        // Rate-limited per API token, or per agent for SSO tokens (an identity provider
        // can issue many).
        LookUp::Hash(hash) => agents::authenticate_hash(&state.db, &hash)
            .await?
            .map(|agent| Cached {
                agent,
                rate_key: format!("token:{}", &hash[..16]),
            }),
        LookUp::Handle(handle) => {
            agents::authenticate_handle(&state.db, &handle)
                .await?
                .map(|agent| Cached {
                    rate_key: format!("agent:{}", agent.id),
                    agent,
                })
        }
    };
    if let Ok(cached) = &found {
        state.tokens.keep(key, cached.clone(), ticket);
    }
    Ok(found)
}

/// A refusal: status, code and message.
type Refusal = (StatusCode, &'static str, &'static str);

/// Resolves persisted operations and applies the allow-list: afterwards `query` holds the
/// document to run.
fn resolve_operation(
    value: &mut serde_json::Value,
    allow_list: Option<&AllowList>,
) -> Result<(), Refusal> {
    const BAD: StatusCode = StatusCode::BAD_REQUEST;
    const NOT_ALLOWED: Refusal = (
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        "this operation is not on the operation allow-list",
    );
    let Some(object) = value.as_object_mut() else {
        return Err((BAD, "BAD_USER_INPUT", SHAPE));
    };
    let hash = object
        .get("extensions")
        .and_then(|e| e.get("persistedQuery"))
        .and_then(|p| p.get("sha256Hash"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    let query = match object.get("query") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(query)) => Some(query.clone()),
        Some(_) => return Err((BAD, "BAD_USER_INPUT", SHAPE)),
    };
    if let (Some(query), Some(hash)) = (&query, &hash) {
        if !hash.eq_ignore_ascii_case(&allowlist::hash(query)) {
            return Err((
                BAD,
                "BAD_USER_INPUT",
                "`extensions.persistedQuery.sha256Hash` is not the SHA-256 of `query`",
            ));
        }
    }
    match (allow_list, query, hash) {
        (_, None, None) => Err((BAD, "BAD_USER_INPUT", SHAPE)),
        (None, None, Some(_)) => Err((
            BAD,
            "BAD_USER_INPUT",
            "persisted operations need the operation allow-list; send the document as `query`",
        )),
        (None, Some(_), _) => Ok(()),
        (Some(list), None, Some(hash)) => {
            let document = list.document(&hash).ok_or(NOT_ALLOWED)?;
            object.insert("query".into(), document.into());
            Ok(())
        }
        (Some(list), Some(query), _) => match list.document(&allowlist::hash(&query)) {
            Some(_) => Ok(()),
            None => Err(NOT_ALLOWED),
        },
    }
}

const SHAPE: &str =
    "the body must be a JSON object with a string `query` and optional `variables` and `operationName`";

/// Runs a GraphQL multipart request (an upload): one operation, at most one file of at
/// most `max_document_bytes`, the operation checked against the allow-list like any other.
async fn execute_multipart(
    req: &HttpRequest,
    state: &AppState,
    agent: Agent,
    body: web::Bytes,
) -> HttpResponse {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let max = state.settings.max_document_bytes;
    let options = async_graphql::http::MultipartOptions::default()
        .max_file_size(max)
        .max_num_files(1);
    let request = match async_graphql::http::receive_body(content_type, &body[..], options).await
    {
        Ok(request) => request,
        Err(async_graphql::ParseRequestError::PayloadTooLarge) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BAD_USER_INPUT",
                &format!("`file` is larger than {max} bytes"),
            )
        }
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                "the body is not a GraphQL multipart request (fields `operations`, `map` and at most one file)",
            )
        }
    };
    let mut probe = json!({ "query": request.query, "operationName": request.operation_name });
    if let Err((status, code, message)) = resolve_operation(&mut probe, state.allow_list.as_deref())
    {
        return error_response(status, code, message);
    }
    run(req, state, agent, request, Method::Post).await
}

/// Runs one GraphQL request for an authenticated agent.
async fn execute(
    req: &HttpRequest,
    state: &AppState,
    agent: Agent,
    mut value: serde_json::Value,
    method: Method,
) -> HttpResponse {
    if let Err((status, code, message)) = resolve_operation(&mut value, state.allow_list.as_deref())
    {
        return error_response(status, code, message);
    }
    let request: async_graphql::Request = match serde_json::from_value(value) {
        Ok(request) => request,
        Err(_) => return error_response(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", SHAPE),
    };
    run(req, state, agent, request, method).await
}

/// Runs a parsed request: the method and limits checked, the idempotency key claimed, the
/// request's context built.
async fn run(
    req: &HttpRequest,
    state: &AppState,
    agent: Agent,
    request: async_graphql::Request,
    method: Method,
) -> HttpResponse {
    let mut request = request;
    let refused = |problem: &str| {
        request_error(
            req,
            json!([{ "message": problem, "extensions": { "code": "BAD_USER_INPUT" } }]),
        )
    };
    let parsed = match state.documents.parse(&request.query) {
        Ok(parsed) => parsed,
        Err(problem) => return refused(&problem),
    };
    let operation = parsed
        .as_ref()
        .and_then(|p| p.operation_type(request.operation_name.as_deref()));
    if method == Method::Get && operation.is_some_and(|ty| ty != OperationType::Query) {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_USER_INPUT",
            "mutations are only accepted over POST with `Content-Type: application/json`",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return response;
    }
    if let Some(parsed) = &parsed {
        if let Some(problem) = &parsed.refused {
            return refused(problem);
        }
        if let Some(operation) = parsed.operation(request.operation_name.as_deref()) {
            if let Err(problem) = state.inputs.check(operation, &request.variables) {
                return refused(&problem);
            }
        }
        request.set_parsed_query(parsed.document.clone());
        if !parsed.merges_objects {
            request = request.data(crate::api::flat::RawValues);
        }
    }
    request = request.data(crate::api::flat::Plans::default());

    let claim = match claim_idempotency_key(req, state, &agent, &request, operation).await {
        Ok(claim) => claim.map(Arc::new),
        Err(error) => return api_error_response(error),
    };
    let request_id = request_id(req);
    let policy = state.policy.current();
    let actor = crate::request::actor(&agent, &request_id, &policy);
    let auditor = ViewAuditor {
        log: state.audit.clone(),
        actor: actor.clone(),
    };
    let grants = RequestGrants::new(state.grants.clone(), state.audit.clone(), agent.id, actor);
    // A queue naming a topic the policy no longer declares gives nothing: the ticket
    // lists are built from these queues in SQL.
    let mut agent = agent;
    agent
        .queues
        .retain(|topic| policy.vocabulary().has_topic(topic));
    let context = RequestContext {
        agent_facts: agent.facts(),
        agent,
        request_id,
        policy,
        db: state.db.clone(),
        writer: state.writer.clone(),
        ledger: state.ledger.clone(),
        idempotency: claim.clone(),
        loaders: Loaders::new(&state.db, auditor, state.vault.clone()),
        audit: state.audit.clone(),
        grant_store: state.grants.clone(),
        grants,
        vault: state.vault.clone(),
        settings: state.settings.clone(),
        limiter: state.limiter.clone(),
        invalidations: state.invalidations.clone(),
    };
    state.metrics.count_request();
    let operation_name = request.operation_name.clone();
    let variables = request.variables.clone();
    // A null variable may be refused where it is used, which only the full validation
    // sees (`api::inputs`); such requests are validated in full again.
    let validated = parsed.as_ref().is_some_and(|p| p.validated())
        && !variables
            .values()
            .any(|value| matches!(value, async_graphql::Value::Null));
    let schema = if validated {
        &state.fast_schema
    } else {
        &state.schema
    };
    let response = tokio::task::unconstrained(schema.execute(request.data(context))).await;
    let mut response = mark_errors(response, &state.settings.limits);
    // Errors raised before execution carry no path; field errors always do.
    let executed = response.errors.iter().any(|e| !e.path.is_empty())
        || response.errors.is_empty()
        || response.data != async_graphql::Value::Null;
    if !executed {
        return request_error(
            req,
            serde_json::to_value(&response.errors).unwrap_or_default(),
        );
    }
    if let (Some(parsed), false) = (&parsed, validated) {
        parsed.mark_validated();
    }
    let picked = parsed
        .as_ref()
        .and_then(|p| Some((p, p.operation(operation_name.as_deref())?)));
    if let Some((parsed, operation)) = picked {
        response.data = state.shapes.complete(
            std::mem::take(&mut response.data),
            &parsed.document,
            operation,
            &variables,
        );
    }
    let executed = Executed(
        match operation {
            Some(OperationType::Query) => crate::metrics::Operation::Query,
            Some(OperationType::Mutation) => crate::metrics::Operation::Mutation,
            Some(OperationType::Subscription) => crate::metrics::Operation::Subscription,
            None => crate::metrics::Operation::None,
        },
        if response.errors.is_empty() {
            crate::metrics::Outcome::Ok
        } else {
            crate::metrics::Outcome::Error
        },
    );
    let mut http = HttpResponse::Ok();
    if let Some(claim) = &claim {
        if let Err(error) = claim.finish(&state.writer).await {
            // The writes are recorded; the claim stays `running` and a retry takes it over
            // after its bound, then replays them.
            let _: async_graphql::Error = error.into();
        }
        if claim.is_replay() {
            http.insert_header((IDEMPOTENT_REPLAYED, "true"));
        }
    }
    let mut http = http
        .content_type(ContentType::json())
        // Responses hold personal data: no cache may keep them.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(crate::api::flat::write_response(&response));
    http.extensions_mut().insert(executed);
    http
}

/// The header a retried mutation's answer carries when it replays an earlier delivery.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Claims the request's `Idempotency-Key`, for a mutation that sends one (queries write
/// nothing, so the header is ignored on them).
async fn claim_idempotency_key(
    req: &HttpRequest,
    state: &AppState,
    agent: &Agent,
    request: &async_graphql::Request,
    operation: Option<OperationType>,
) -> Result<Option<crate::idempotency::Claim>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = crate::idempotency::Key::parse(value.as_bytes())?;
    if operation != Some(OperationType::Mutation) {
        return Ok(None);
    }
    let variables = serde_json::to_value(&request.variables).unwrap_or_default();
    let fingerprint = crate::idempotency::fingerprint(
        request.operation_name.as_deref(),
        &request.query,
        &variables,
    );
    crate::idempotency::claim(
        &state.writer,
        agent.id,
        &key,
        &fingerprint,
        crate::idempotency::Lifetimes {
            ttl: state.settings.idempotency_ttl,
            abandon: state.settings.idempotency_abandon,
        },
    )
    .await
    .map(Some)
}

/// A refusal before execution, in GraphQL's error shape with the matching HTTP status.
fn api_error_response(error: ApiError) -> HttpResponse {
    let (status, retry) = match &error {
        ApiError::BadUserInput(_) => (StatusCode::BAD_REQUEST, None),
        ApiError::Conflict {
            retry_after_secs, ..
        } => (StatusCode::CONFLICT, *retry_after_secs),
        ApiError::Unavailable {
            retry_after_secs, ..
        } => (StatusCode::SERVICE_UNAVAILABLE, Some(*retry_after_secs)),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
    };
    let (code, message) = (error.code(), error.message());
    let graphql: async_graphql::Error = error.into(); // logs the cause of internal errors
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(seconds) = retry {
        response.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    response.json(json!({
        "errors": [{ "message": message, "extensions": graphql.extensions.map_or_else(
            || json!({ "code": code }),
            |ext| serde_json::to_value(ext).unwrap_or_else(|_| json!({ "code": code })),
        ) }]
    }))
}

/// Gives every error without a code one (parse and validation errors are the client's),
/// and names the limit in async-graphql's complexity refusal.
fn mark_errors(
    mut response: async_graphql::Response,
    limits: &crate::limits::QueryLimits,
) -> async_graphql::Response {
    for error in &mut response.errors {
        if error.message == "Query is too complex." {
            error.message = format!(
                "the query is too complex; the limit is {} (one per field, list fields times their `first`)",
                limits.complexity
            );
        }
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
        "authentication required: send a valid API token or SSO token as `Authorization: Bearer <token>`",
    )
}

/// GraphiQL in dev mode; nothing in production.
fn graphiql(state: &AppState) -> HttpResponse {
    if state.settings.mode != Mode::Dev {
        return error_response(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "GraphiQL is only served in dev mode; POST queries to /graphql",
        );
    }
    crate::graphiql::page()
}

/// `GET /graphiql/{name}`: GraphiQL's assets, in dev mode only (like the page).
pub async fn graphiql_asset(name: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    match crate::graphiql::asset(&name) {
        Some(response) if state.settings.mode == Mode::Dev => response,
        _ => not_found().await,
    }
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
    let gaps = if database {
        agents::vocabulary_gaps(&state.db, policy.vocabulary())
            .await
            .map_err(|error| tracing::warn!(error = format!("{error:#}"), "readyz: listing agents"))
            .ok()
    } else {
        None
    };
    let sso = match &state.sso {
        None => json!({ "status": "off" }),
        Some(verifier) => json!({
            "status": if verifier.key_count() > 0 { "ready" } else { "no_keys" },
            "keys": verifier.key_count(),
        }),
    };
    let allow_list = match &state.allow_list {
        None => json!({ "status": "off" }),
        Some(list) => json!({ "status": "on", "operations": list.len() }),
    };
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
                "version": policy.version(),
                "loadedAt": reload.loaded_at,
                "reloads": reload.reloads,
                "lastReloadError": reload.last_error,
                "agentsWithUnknownRole": gaps.as_ref().map(|g| g.agents_with_unknown_role),
                "unknownRoles": gaps.as_ref().map(|g| &g.unknown_roles),
                "agentsWithUnknownQueue": gaps.as_ref().map(|g| g.agents_with_unknown_queue),
                "unknownTopics": gaps.as_ref().map(|g| &g.unknown_topics),
            },
            "sso": sso,
            "allowList": allow_list,
        }
    });
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(body)
}

/// `GET /metrics`: work counters and latency histograms in Prometheus text format (no
/// data, no labels with ids).
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.metrics.render() {
        Ok(body) => HttpResponse::Ok()
            .content_type(prometheus::TEXT_FORMAT)
            .body(body),
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                "metrics could not be rendered"
            );
            HttpResponse::InternalServerError().finish()
        }
    }
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
