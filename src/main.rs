//! The `needtoknow` binary: parses the command line and runs one subcommand.

use std::process::ExitCode;

use anyhow::Context;

use needtoknow::cli::{
    AgentCommand, AuditCommand, Command, KeysCommand, OperationsCommand, PolicyCommand,
    RetentionCommand,
};
use needtoknow::config::Configuration;
use needtoknow::policy::admin;
use needtoknow::policy::Policy;
use needtoknow::startup::Application;
use needtoknow::{agents, api, audit, db, telemetry};

/// mimalloc instead of glibc's allocator. A request allocates and frees thousands of small
/// values (rows, strings, futures) across two HTTP workers' threads; with mimalloc 3 our
/// CPU per one-ticket request fell by 13–14 % and per frontline page by 12 % against glibc
/// 2.36 (BENCHMARKS.md, "2026-12-03, fifth stop"). On the code of 2026-12-02,
/// mimalloc and jemalloc had measured no better than glibc ("What each change bought").
/// The binary only: the library's tests keep the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let invocation = match needtoknow::cli::parse_from(std::env::args_os()) {
        Ok(invocation) => invocation,
        Err(error) => {
            use clap::error::ErrorKind;
            return match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = error.print();
                    ExitCode::SUCCESS
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = error.print();
                    ExitCode::from(2)
                }
                // One clear line naming the setting, instead of clap's usage block.
                _ => {
                    let rendered = error.to_string();
                    let line = rendered.lines().next().unwrap_or("invalid command line");
                    eprintln!("needtoknow: {}", line.trim_start_matches("error: "));
                    ExitCode::from(2)
                }
            };
        }
    };
    // Every subcommand starts from the layered settings, if only for its logs.
    let configuration = match invocation.configuration() {
        Ok(configuration) => configuration,
        Err(message) => {
            eprintln!("needtoknow: {message}");
            return ExitCode::from(2);
        }
    };
    if let Err(message) = telemetry::init(configuration.log_format(), configuration.log()) {
        eprintln!("needtoknow: {}: {message}", configuration.name("log"));
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("needtoknow: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(invocation.cli.command, configuration)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(message)) => {
            eprintln!("needtoknow: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Other(error)) => {
            eprintln!("needtoknow: {error:#}");
            ExitCode::FAILURE
        }
        Err(Failure::Rejected) => ExitCode::FAILURE,
    }
}

enum Failure {
    Config(String),
    Other(anyhow::Error),
    /// `import` refused some lines (reported on stderr and in the reject file).
    Rejected,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Other(error)
    }
}

async fn run(command: Command, configuration: Configuration) -> Result<(), Failure> {
    match command {
        Command::Serve(args) => {
            let settings = configuration
                .serve_settings(args.demo)
                .map_err(Failure::Config)?;
            let demo = settings.demo;
            let data_dir = settings.data_dir.clone();
            let app = Application::build(settings).await?;
            if demo {
                println!(
                    "Demo agents and their API tokens (also in {}):",
                    data_dir.join("demo-tokens.json").display()
                );
                for (handle, token) in app.demo_tokens() {
                    println!("  {handle:<12} {token}");
                }
                println!("GraphiQL: http://127.0.0.1:{}/graphql", app.port());
            }
            app.run_until_stopped().await.context("serving")?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Config(_) => {
            // Checked as `serve` would check it, so an invalid setting fails here the same way.
            configuration
                .serve_settings(false)
                .map_err(Failure::Config)?;
            print!("{}", configuration.render().map_err(Failure::Config)?);
            Ok(())
        }
        Command::Migrate => {
            let settings = configuration.global_settings().map_err(Failure::Config)?;
            let db = db::connect(&settings).await?;
            db::migrate(&db).await?;
            println!("migrations applied to the {}", settings.database.describe());
            Ok(())
        }
        Command::Operations(OperationsCommand::Manifest { files }) => {
            let mut documents = Vec::new();
            for file in files {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                documents.push((file.display().to_string(), text));
            }
            let manifest = needtoknow::allowlist::Manifest::of_documents(&documents)
                .map_err(|problem| anyhow::anyhow!(problem))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&manifest).context("encoding the manifest")?
            );
            Ok(())
        }
        Command::Backup { dest } => {
            let settings = configuration.global_settings().map_err(Failure::Config)?;
            db::backup(&settings, &dest).await?;
            println!(
                "backed up the {} to {} (master keys and the erasure ledger are not in it: keep them separately)",
                settings.database.describe(),
                dest.display()
            );
            Ok(())
        }
        Command::Schema => {
            print!("{}", api::sdl());
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let settings = configuration.global_settings().map_err(Failure::Config)?;
            let (_, key_file) = needtoknow::crypto::keys::load_master_keys(&settings)?;
            if let Some(path) = &key_file {
                let version = needtoknow::crypto::keys::add_version(path)?;
                println!("added master key version {version} to {}", path.display());
            }
            let (keys, key_file) = needtoknow::crypto::keys::load_master_keys(&settings)?;
            let db = db::connect(&settings).await?;
            db::migrate(&db).await?;
            let vault = needtoknow::crypto::vault::Vault::new(keys, key_file);
            vault.check_master(&db).await?;
            let count = vault.rewrap_all(&db).await?;
            println!("re-wrapped {count} data key(s) under the current master key version; older versions keep decrypting until you remove them");
            Ok(())
        }
        Command::Seed {
            customers,
            tickets,
            messages_per_ticket,
        } => {
            let mut settings = configuration.global_settings().map_err(Failure::Config)?;
            // Benchmark data is development data: a missing key file is generated.
            settings.mode = needtoknow::config::Mode::Dev;
            let policy = load_policy(&settings)?;
            let (keys, key_file) = needtoknow::crypto::keys::load_master_keys(&settings)?;
            let db = db::connect(&settings).await?;
            db::migrate(&db).await?;
            let vault = needtoknow::crypto::vault::Vault::new(keys, key_file);
            vault.check_master(&db).await?;
            let started = std::time::Instant::now();
            let size = needtoknow::seed::SeedSize {
                customers,
                tickets,
                messages_per_ticket,
            };
            needtoknow::seed::seed(&db, &policy.current(), &vault, size).await?;
            let messages = messages_per_ticket.map_or("2-4".to_owned(), |n| n.to_string());
            println!(
                "seeded {customers} customers and {tickets} tickets ({messages} messages each) in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Import(args) => import(&configuration, args).await,
        Command::Retention(RetentionCommand::Sweep { as_of }) => {
            let settings = configuration.global_settings().map_err(Failure::Config)?;
            let db = db::connect(&settings).await?;
            db::migrate(&db).await?;
            let as_of = as_of.unwrap_or_else(chrono::Utc::now);
            let sweeper = needtoknow::retention::Sweeper {
                writer: db::Writer::new(db.clone()),
                db,
                ledger: needtoknow::ledger::Ledger::at(settings.erasure_ledger_path()),
                policy: settings.retention.clone(),
            };
            let report = sweeper.sweep(as_of).await?;
            println!(
                "retention sweep as of {as_of}: purged {} attachment(s) and {} message(s)",
                report.attachments, report.messages
            );
            Ok(())
        }
        Command::Audit(AuditCommand::Verify) => {
            let settings = configuration.global_settings().map_err(Failure::Config)?;
            let db = db::connect(&settings).await?;
            db::migrate(&db).await?;
            match audit::verify(&db).await? {
                audit::Verdict::Intact { events } => {
                    println!("ok: {events} audit event(s), chain intact");
                    Ok(())
                }
                audit::Verdict::Broken { seq, problem } => {
                    println!("TAMPERED: event {seq} {problem}");
                    Err(Failure::Other(anyhow::anyhow!(
                        "the audit trail is not intact from event {seq} on"
                    )))
                }
            }
        }
        Command::Policy(command) => {
            let default_dir = configuration.policy_dir().to_owned();
            match command {
                PolicyCommand::Check { dir } => {
                    let dir = dir.unwrap_or(default_dir);
                    match admin::check(&dir) {
                        Ok(summary) => println!("{summary}"),
                        Err(problem) => return Err(Failure::Other(anyhow::anyhow!(problem))),
                    }
                }
                PolicyCommand::Test { dir, coverage } => {
                    let dir = dir.unwrap_or(default_dir);
                    let (report, passed) = admin::test(&dir, coverage)
                        .map_err(|p| Failure::Other(anyhow::anyhow!(p)))?;
                    print!("{report}");
                    if !passed {
                        return Err(Failure::Other(anyhow::anyhow!("policy test cases failed")));
                    }
                }
                PolicyCommand::Diff {
                    old,
                    new,
                    allow_widening,
                } => {
                    let (report, widens) =
                        admin::diff(&old, &new).map_err(|p| Failure::Other(anyhow::anyhow!(p)))?;
                    print!("{report}");
                    if widens && !allow_widening {
                        return Err(Failure::Other(anyhow::anyhow!(
                            "the edit widens access; review the cells above and pass --allow-widening to accept"
                        )));
                    }
                }
                PolicyCommand::Explain(args) => {
                    let dir = args.dir.unwrap_or(default_dir);
                    let question = admin::Question {
                        role: args.role,
                        topic: args.topic,
                        relation: if args.assignee {
                            needtoknow::policy::cases::Relation::Assignee
                        } else {
                            args.relation
                        },
                        status: args.status,
                        subject: args.field,
                    };
                    let text = admin::explain(&dir, &question).map_err(Failure::Config)?;
                    print!("{text}");
                }
            }
            Ok(())
        }
        Command::Agent(command) => {
            let settings = configuration.global_settings().map_err(Failure::Config)?;
            let db = db::connect(&settings).await?;
            db::migrate(&db).await?;
            let writer = db::Writer::new(db.clone());
            // Every agent change from the CLI is audited as `cli`.
            let actor = audit::Actor::system("cli", "cli");
            match command {
                AgentCommand::Create(args) => {
                    let policy = load_policy(&settings)?;
                    let new = agents::NewAgent {
                        display_name: args.display_name.unwrap_or_else(|| args.handle.clone()),
                        handle: args.handle,
                        role: args.role,
                        team: args.team,
                        queues: args.queues,
                        service: args.service,
                    };
                    let (agent, token) =
                        agents::create(&writer, policy.current().vocabulary(), &actor, new)
                            .await
                            .map_err(agent_failure)?;
                    eprintln!(
                        "created {} {} (role {}, team {}); its API token, shown only once:",
                        if agent.service {
                            "service account"
                        } else {
                            "agent"
                        },
                        agent.handle,
                        agent.role,
                        agent.team
                    );
                    println!("{token}");
                }
                AgentCommand::Disable { handle } => {
                    let agent = agents::disable(&writer, &actor, &handle)
                        .await
                        .map_err(agent_failure)?;
                    println!(
                        "disabled agent {} and revoked all of its tokens",
                        agent.handle
                    );
                    agents::cache::announce(&settings.grants).await;
                    revoke_grants_of(&settings, &db, &agent).await?;
                }
                AgentCommand::Update(args) => {
                    let policy = load_policy(&settings)?;
                    let change = agents::AgentChange {
                        role: args.role,
                        team: args.team,
                        add_queues: args.add_queues,
                        remove_queues: args.remove_queues,
                    };
                    let policy = policy.current();
                    let actor = audit::Actor {
                        policy_version: Some(policy.version().to_owned()),
                        ..actor
                    };
                    let updated =
                        agents::update(&writer, policy.vocabulary(), &actor, &args.handle, change)
                            .await
                            .map_err(agent_failure)?;
                    agents::cache::announce(&settings.grants).await;
                    println!(
                        "updated agent {}: {}",
                        updated.agent.handle,
                        if updated.changes.is_empty() {
                            "nothing changed".to_owned()
                        } else {
                            updated.changes.join("; ")
                        }
                    );
                }
                AgentCommand::Token { handle } => {
                    let token = agents::issue_token(&writer, &actor, &handle)
                        .await
                        .map_err(agent_failure)?;
                    eprintln!("new API token for {handle}, shown only once:");
                    println!("{token}");
                }
            }
            Ok(())
        }
    }
}

/// Revokes a disabled agent's grants in a shared (Redis) grant store, auditing each. With
/// the in-process store the grants live inside the running service; they are unusable
/// anyway, since the agent's tokens no longer authenticate.
async fn revoke_grants_of(
    settings: &needtoknow::config::Settings,
    db: &sea_orm::DatabaseConnection,
    agent: &agents::Agent,
) -> Result<(), Failure> {
    if matches!(
        settings.grants,
        needtoknow::config::GrantStoreSettings::Memory
    ) {
        println!("(in-process grant store: the agent's grants die with its tokens)");
        return Ok(());
    }
    let store = needtoknow::startup::grant_store(settings)?;
    let revoked = store.remove_for_agent(agent.id).await.map_err(|e| {
        Failure::Other(anyhow::anyhow!(
            "tokens revoked, but {e}: run the command again"
        ))
    })?;
    let events: Vec<audit::NewEvent> = revoked
        .iter()
        .map(|g| audit::NewEvent {
            actor_agent_id: None,
            actor_role: "cli".into(),
            action: audit::Action::RevealRevoked,
            customer_id: Some(g.customer_id),
            ticket_id: Some(g.ticket_id),
            fields: vec![g.field.to_string()],
            reason: Some("agent disabled".into()),
            request_id: "cli".into(),
            policy_version: None,
            idempotency_key: None,
        })
        .collect();
    audit::AuditLog::new(db::Writer::new(db.clone()))
        .append(&events)
        .await?;
    println!("revoked {} reveal grant(s)", revoked.len());
    Ok(())
}

/// The policy the settings name, for commands that check words against it.
/// `needtoknow import`: reads the file (or stdin) line by line and writes it through the
/// intake functions as the service account `--as`.
async fn import(
    configuration: &Configuration,
    args: needtoknow::cli::ImportArgs,
) -> Result<(), Failure> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use std::io::IsTerminal;
    let settings = configuration.global_settings().map_err(Failure::Config)?;
    let policy = load_policy(&settings)?;
    let policy = policy.current();
    let (keys, key_file) = needtoknow::crypto::keys::load_master_keys(&settings)?;
    let db = db::connect(&settings).await?;
    db::migrate(&db).await?;
    let vault = needtoknow::crypto::vault::Vault::new(keys, key_file);
    vault.check_master(&db).await?;
    let writer = db::Writer::new(db.clone());
    let row = entity::agent::Entity::find()
        .filter(entity::agent::Column::Handle.eq(args.as_handle.as_str()))
        .one(&db)
        .await
        .context("looking up the import's account")?
        .filter(|row| row.active)
        .ok_or_else(|| {
            Failure::Other(anyhow::anyhow!(
                "no active agent {:?}: create one with `needtoknow agent create --service --role intake`",
                args.as_handle
            ))
        })?;
    let agent = agents::Agent::try_from(row)?;
    let actor = audit::Actor {
        agent_id: Some(agent.id),
        role: agent.role.clone(),
        request_id: "import".into(),
        policy_version: Some(policy.version().to_owned()),
        idempotency_key: None,
    };
    let intake = needtoknow::intake::Intake {
        db: &db,
        writer: &writer,
        policy: &policy,
        vault: &vault,
        agent: &agent,
        actor,
        claim: None,
        max_document_bytes: settings.max_document_bytes,
        // A batch's audit events are appended once, before it commits.
        deferred_audit: Some(std::sync::Mutex::new(Vec::new())),
    };
    let (input, total, rejects_path): (Box<dyn std::io::BufRead>, Option<u64>, std::path::PathBuf) =
        if args.file == "-" {
            (
                Box::new(std::io::BufReader::new(std::io::stdin())),
                None,
                args.rejects
                    .unwrap_or_else(|| "import-rejects.jsonl".into()),
            )
        } else {
            let file = std::fs::File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file))?;
            let total = file.metadata().ok().map(|m| m.len());
            (
                Box::new(std::io::BufReader::with_capacity(1 << 20, file)),
                total,
                args.rejects
                    .unwrap_or_else(|| format!("{}.rejects.jsonl", args.file).into()),
            )
        };
    let mut rejects = std::io::BufWriter::new(
        std::fs::File::create(&rejects_path)
            .with_context(|| format!("cannot create {}", rejects_path.display()))?,
    );
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = match total {
            Some(bytes) => indicatif::ProgressBar::new(bytes),
            None => indicatif::ProgressBar::new_spinner(),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let started = std::time::Instant::now();
    let report = intake
        .import(input, args.batch as usize, &mut rejects, |read, report| {
            if let Some(bar) = &bar {
                bar.set_position(read);
                bar.set_message(format!(
                    "{} tickets, {} messages, {} rejected",
                    report.tickets, report.messages, report.rejected
                ));
            }
        })
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    std::io::Write::flush(&mut rejects).context("writing the reject file")?;
    let report = report?;
    println!(
        "imported {} in {:.1} s",
        report,
        started.elapsed().as_secs_f64()
    );
    if report.rejected > 0 {
        eprintln!(
            "{} line(s) rejected: see {} (line numbers and reasons)",
            report.rejected,
            rejects_path.display()
        );
        return Err(Failure::Rejected);
    }
    Ok(())
}

fn load_policy(settings: &needtoknow::config::Settings) -> anyhow::Result<Policy> {
    Policy::load(&settings.policy_dir).with_context(|| {
        format!(
            "cannot load policies from {}",
            settings.policy_dir.display()
        )
    })
}

fn agent_failure(error: agents::AgentError) -> Failure {
    match error {
        agents::AgentError::Database(error) => Failure::Other(error),
        other => Failure::Config(other.to_string()),
    }
}
