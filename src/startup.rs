//! One start-up path shared by `main` and the tests: [`Application::build`] connects,
//! migrates, loads the policy, seeds the demo if asked and binds the port;
//! [`Application::run_until_stopped`] serves until SIGTERM or Ctrl-C.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context;

use crate::api::{build_fast_schema_with, build_schema_with};
use crate::audit::AuditLog;
use crate::config::{Mode, Settings};
use crate::crypto::vault::Vault;
use crate::policy::Policy;
use crate::{db, demo, http, telemetry};

pub use crate::http::AppState;

/// Audits every policy reload that took effect (old → new version, and what triggered it)
/// and warns when active agents hold roles or queues the new policy no longer defines.
/// An audit failure is logged: the reload itself has happened and cannot be undone.
fn spawn_reload_auditor(
    mut reloads: tokio::sync::mpsc::UnboundedReceiver<(
        crate::policy::reload::Trigger,
        crate::policy::Reloaded,
    )>,
    db: sea_orm::DatabaseConnection,
    audit: AuditLog,
    policy: Policy,
) {
    tokio::spawn(async move {
        while let Some((trigger, reloaded)) = reloads.recv().await {
            let actor = crate::audit::Actor {
                agent_id: None,
                role: "system".into(),
                request_id: "policy-reload".into(),
                policy_version: Some(reloaded.to.clone()),
                idempotency_key: None,
            };
            let event = actor.event(
                crate::audit::Action::PolicyReloaded,
                None,
                None,
                Vec::new(),
                Some(format!(
                    "{}: {} -> {}",
                    trigger.as_str(),
                    reloaded.from,
                    reloaded.to
                )),
            );
            if let Err(error) = audit.append(&[event]).await {
                tracing::error!(
                    error = format!("{error:#}"),
                    "the policy reload could not be audited"
                );
            }
            crate::agents::warn_about_vocabulary_gaps(&db, policy.current().vocabulary()).await;
        }
    });
}

pub use crate::reveal::store::grant_store;

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    demo_tokens: BTreeMap<String, String>,
}

impl Application {
    /// Connects, migrates, loads policies, seeds the demo (when asked) and binds the port.
    /// Any failure here is a start-up failure with a clear message.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let policy = Policy::load(&settings.policy_dir).with_context(|| {
            format!(
                "cannot load policies from {}",
                settings.policy_dir.display()
            )
        })?;
        let allow_list = match &settings.allowed_operations {
            Some(path) => {
                let list = crate::allowlist::AllowList::load(path)?;
                tracing::info!(operations = list.len(), "operation allow-list on");
                Some(Arc::new(list))
            }
            None => None,
        };
        let sso = match &settings.sso {
            Some(sso) => {
                let verifier = crate::agents::sso::SsoVerifier::new(sso.clone()).await?;
                verifier.spawn_refresh();
                Some(verifier)
            }
            None => None,
        };
        // A missing or malformed master key stops start-up before anything is touched.
        let (master, key_file) = crate::crypto::keys::load_master_keys(&settings)?;
        let metrics = Arc::new(crate::metrics::Metrics::new()?);
        let connections = db::connect_service(&settings).await?;
        let mut db = connections.read;
        let mut writer_conn = connections.writer.connection().clone();
        for conn in [&mut db, &mut writer_conn] {
            let statements = metrics.sql_statements();
            conn.set_metric_callback(move |_| statements.inc());
        }
        let writer = db::Writer::new(writer_conn);
        db::migrate(writer.connection()).await?;
        let vault = Arc::new(Vault::new(master, key_file));
        vault.check_master(writer.connection()).await?;
        // Before anything is served: a restored backup must not bring back what was erased.
        let ledger = crate::ledger::Ledger::at(settings.erasure_ledger_path());
        crate::privacy::reapply(&db, &writer, &ledger).await?;
        let grants = grant_store(&settings)?.remembering(settings.grant_cache);
        tracing::info!(grant_store = grants.describe(), "reveal grants");
        let demo_tokens = if settings.demo {
            demo::seed(&writer, &policy.current(), &vault, &grants).await?;
            demo::tokens(&writer, &settings.data_dir).await?
        } else {
            BTreeMap::new()
        };

        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("cannot listen on {} (NEEDTOKNOW_LISTEN)", settings.listen))?;
        let port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        tracing::info!(
            address = %listener.local_addr().context("reading the bound address")?,
            database = %settings.database.describe(),
            policies = %settings.policy_dir.display(),
            mode = ?settings.mode,
            "needtoknow listening"
        );
        if settings.mode == Mode::Dev {
            tracing::info!("dev mode: GraphiQL on GET /graphql");
        }

        // One audit log for the whole service: its lock and group commit serialize every
        // append of this process (requests, the retention sweeper, policy reloads).
        let audit = AuditLog::new(writer.clone()).timed(metrics.audit_append_duration());
        let reloads = crate::policy::reload::spawn(policy.clone(), settings.policy_watch);
        spawn_reload_auditor(reloads, db.clone(), audit.clone(), policy.clone());
        crate::agents::warn_about_vocabulary_gaps(&db, policy.current().vocabulary()).await;
        let workers = settings.workers;
        if let Some(interval) = settings.retention_interval {
            crate::retention::Sweeper {
                db: db.clone(),
                writer: writer.clone(),
                ledger: ledger.clone(),
                policy: settings.retention.clone(),
            }
            .spawn(interval);
        }
        let tokens = crate::agents::cache::TokenCache::new(settings.token_cache);
        let invalidations = match (&settings.grants, grants.redis_connection()) {
            (
                crate::config::GrantStoreSettings::Redis {
                    url,
                    prefix,
                    timeout,
                },
                Some(manager),
            ) => {
                let channel = crate::agents::cache::channel(prefix);
                let client = redis::Client::open(url.expose().as_str())
                    .map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
                let mut caches: Vec<(String, Arc<dyn crate::remembered::Forget>)> =
                    vec![(channel.clone(), Arc::new(tokens.clone()))];
                caches.extend(grants.feed());
                crate::remembered::spawn_subscriber(client, caches);
                crate::agents::cache::Invalidations::Redis {
                    cache: tokens.clone(),
                    manager,
                    channel,
                    timeout: *timeout,
                }
            }
            _ => crate::agents::cache::Invalidations::Local(tokens.clone()),
        };
        let limiter = grants.rate_limiter();
        metrics.read_elsewhere(crate::metrics::Elsewhere {
            grant_store_calls: Box::new({
                let grants = grants.clone();
                move || grants.calls()
            }),
            rate_limit_calls: Box::new({
                let limiter = limiter.clone();
                move || limiter.calls()
            }),
            token_cache_hits: Box::new({
                let tokens = tokens.clone();
                move || tokens.hits()
            }),
            grant_cache_hits: Box::new({
                let grants = grants.clone();
                move || grants.cache_hits()
            }),
        })?;
        let schema = build_schema_with(&settings.limits, settings.introspection);
        let fast_schema = build_fast_schema_with(&settings.limits, settings.introspection);
        let sdl = schema.sdl();
        let shapes = crate::api::shape::Shapes::from_sdl(&sdl)
            .context("reading the schema's types")?
            .served_whole(crate::api::customers::served_whole());
        let inputs = crate::api::inputs::InputTypes::from_sdl(&sdl)
            .context("reading the schema's input types")?;
        let state = web::Data::new(AppState {
            shapes: Arc::new(shapes),
            documents: crate::documents::Documents::new(settings.limits),
            tokens,
            invalidations,
            audit,
            limiter,
            grants,
            vault,
            db,
            writer,
            ledger,
            policy,
            schema,
            fast_schema,
            inputs: Arc::new(inputs),
            settings: Arc::new(settings),
            metrics,
            sso,
            allow_list,
        });
        // GraphiQL (dev mode) posts from the service's own origin.
        let own_origins: Vec<String> = if state.settings.mode == Mode::Dev {
            vec![
                format!("http://127.0.0.1:{port}"),
                format!("http://localhost:{port}"),
            ]
        } else {
            Vec::new()
        };
        let mut server = HttpServer::new(move || {
            // Only listed agent-UI origins may call from a browser; none by default.
            let cors = state
                .settings
                .cors_origins
                .iter()
                .chain(own_origins.iter())
                .fold(actix_cors::Cors::default(), |cors, origin| {
                    cors.allowed_origin(origin)
                })
                .allowed_methods(["GET", "POST"])
                .allowed_headers(["authorization", "content-type", "idempotency-key"])
                .expose_headers([telemetry::REQUEST_ID_HEADER, http::IDEMPOTENT_REPLAYED])
                .max_age(600);
            App::new()
                .app_data(state.clone())
                .wrap(cors)
                .wrap(middleware::from_fn(telemetry::request_span))
                .service(
                    web::resource("/graphql")
                        .wrap(middleware::from_fn(http::negotiate_media_type))
                        .route(web::post().to(http::graphql))
                        .route(web::get().to(http::graphql_get)),
                )
                .route("/graphiql/{name}", web::get().to(http::graphiql_asset))
                .route("/healthz", web::get().to(http::healthz))
                .route("/readyz", web::get().to(http::readyz))
                .route("/metrics", web::get().to(http::metrics))
                .route(
                    "/public/consent-notices",
                    web::get().to(http::consent_notices),
                )
                .default_service(web::to(http::not_found))
        })
        .shutdown_timeout(10)
        .listen(listener)
        .context("starting the HTTP server")?;
        if workers > 0 {
            server = server.workers(workers);
        }
        Ok(Application {
            port,
            server: server.run(),
            demo_tokens,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The demo agents' tokens by handle (empty unless started with `--demo`).
    pub fn demo_tokens(&self) -> &BTreeMap<String, String> {
        &self.demo_tokens
    }

    /// Serves until SIGTERM or Ctrl-C, then drains in-flight requests (actix handles both
    /// signals and stops gracefully).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
