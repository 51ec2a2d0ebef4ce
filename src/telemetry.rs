//! Logging set-up and the per-request span with its request id.
//!
//! Spans record method, path, status and latency; never query strings, bodies, headers or
//! tokens, which may carry personal data or secrets.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Identifies one HTTP request in logs, responses and audit events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A fresh random id.
    pub fn new() -> RequestId {
        RequestId(uuid::Uuid::new_v4().simple().to_string())
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

/// Installs the global subscriber. Dependencies that could log SQL are kept at `warn`.
pub fn init(format: LogFormat, filter: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(format!("{filter},sqlx=warn,sea_orm=warn"))
        .map_err(|e| format!("invalid log filter: {e}"))?;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // Colour only on a terminal: redirected to a file or a log collector, escape codes
    // are noise (and `NO_COLOR` turns colour off everywhere).
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.finish().with(ClientMistakes).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(ClientMistakes)
            .try_init(),
    };
    // A second init (tests spawning several apps) keeps the first subscriber.
    let _ = result;
    Ok(())
}

/// Turns actix's ERROR for a request it cannot parse (a malformed header, say) into a WARN:
/// a client's mistake is not an operator's error, and an ERROR line would page someone.
/// actix-http logs it as `stream error: request parse error: …` from its HTTP/1 dispatcher;
/// this layer disables that event and logs one WARN in its place, without the request's
/// bytes.
struct ClientMistakes;

impl ClientMistakes {
    fn is_parse_error(event: &tracing::Event<'_>) -> bool {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}").contains("request parse error");
                }
            }
        }
        let meta = event.metadata();
        if *meta.level() != tracing::Level::ERROR || !meta.target().starts_with("actix_http") {
            return false;
        }
        let mut message = Message(false);
        event.record(&mut message);
        message.0
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ClientMistakes {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        if Self::is_parse_error(event) {
            tracing::warn!("a client sent a malformed HTTP request; answered 400");
            return false;
        }
        true
    }
}

/// Middleware: gives each request an id and a span, and returns the id in a header.
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = RequestId::new();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id.0,
        method = %req.method(),
        path = %req.path(),
    );
    req.extensions_mut().insert(request_id.clone());
    let started = Instant::now();
    let mut response = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id.0) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request finished"
        );
    });
    Ok(response)
}
