//! The `needtoknow` binary: schema export, agent administration, configuration errors.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{binary, stderr, stdout};

fn needtoknow(data_dir: &Path, args: &[&str]) -> Output {
    binary()
        .env("NEEDTOKNOW_DATA_DIR", data_dir)
        .args(args)
        .output()
        .expect("the binary runs")
}

/// `schema.graphql` is the checked-in output of `needtoknow schema`; regenerate it with
/// `cargo run -- schema > schema.graphql` when this fails.
#[test]
fn schema_graphql_is_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let output = needtoknow(dir.path(), &["schema"]);
    assert!(output.status.success());
    let checked_in =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql"))
            .expect("schema.graphql exists");
    assert!(
        stdout(&output) == checked_in,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
}

/// An admin creates an agent, gets its token once, and can disable it again.
#[test]
fn agent_create_prints_a_token_once_and_disable_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let output = needtoknow(
        dir.path(),
        &[
            "agent", "create", "--handle", "casey", "--role", "billing", "--team", "support",
            "--queue", "billing",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let token = stdout(&output).trim().to_owned();
    assert!(token.starts_with("ntk_") && token.len() == 47, "{token}");
    let database = std::fs::read(dir.path().join("needtoknow.sqlite")).unwrap();
    assert!(
        !database.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is stored only as a hash"
    );

    let again = needtoknow(
        dir.path(),
        &[
            "agent", "create", "--handle", "casey", "--role", "billing", "--team", "support",
        ],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("already exists"));

    let disabled = needtoknow(dir.path(), &["agent", "disable", "casey"]);
    assert!(disabled.status.success(), "{}", stderr(&disabled));
    assert!(stdout(&disabled).contains("revoked"));
    let unknown = needtoknow(dir.path(), &["agent", "disable", "nobody"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("no agent with handle"));
}

/// Roles and queues must be words the policy defines; the error lists the known ones.
#[test]
fn agent_create_refuses_roles_and_queues_the_policy_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let output = needtoknow(
        dir.path(),
        &[
            "agent", "create", "--handle", "x", "--role", "janitor", "--team", "support",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("role \"janitor\" is not defined by the policy"),
        "{}",
        stderr(&output)
    );
    let output = needtoknow(
        dir.path(),
        &[
            "agent",
            "create",
            "--handle",
            "x",
            "--role",
            "billing",
            "--team",
            "support",
            "--queue",
            "gardening",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("queue \"gardening\""));
}

/// Invalid configuration stops start-up with one line naming the setting.
#[test]
fn invalid_configuration_stops_with_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary()
        .env("NEEDTOKNOW_DATA_DIR", dir.path())
        .env("NEEDTOKNOW_LISTEN", "not-an-address")
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--listen"), "{err}");

    let output = binary()
        .env("NEEDTOKNOW_DATA_DIR", dir.path())
        .env("DATABASE_URL", "mysql://root:secret@localhost/db")
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("DATABASE_URL") && !err.contains("secret"),
        "{err}"
    );
}

/// Incomplete SSO settings stop start-up naming what is missing, without the secret.
#[test]
fn incomplete_sso_settings_stop_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let run = |envs: &[(&str, &str)]| {
        let mut command = binary();
        command
            .env("NEEDTOKNOW_DATA_DIR", dir.path())
            .args(["serve"]);
        for (key, value) in envs {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let secret = "a-secret-of-more-than-32-bytes-for-hs256";
    for (envs, named) in [
        (
            vec![("NEEDTOKNOW_SSO_ISSUER", "https://idp.example")],
            "NEEDTOKNOW_SSO_AUDIENCE",
        ),
        (
            vec![
                ("NEEDTOKNOW_SSO_AUDIENCE", "app"),
                ("NEEDTOKNOW_SSO_HS256_SECRET", secret),
            ],
            "NEEDTOKNOW_SSO_ISSUER",
        ),
        (
            vec![
                ("NEEDTOKNOW_SSO_ISSUER", "https://idp.example"),
                ("NEEDTOKNOW_SSO_AUDIENCE", "app"),
            ],
            "NEEDTOKNOW_SSO_JWKS_FILE",
        ),
        (
            vec![
                ("NEEDTOKNOW_SSO_ISSUER", "https://idp.example"),
                ("NEEDTOKNOW_SSO_AUDIENCE", "app"),
                ("NEEDTOKNOW_SSO_HS256_SECRET", "short"),
            ],
            "at least 32 bytes",
        ),
    ] {
        let output = run(&envs);
        assert_eq!(output.status.code(), Some(2), "{envs:?}");
        let err = stderr(&output);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(named) && !err.contains(secret), "{err}");
    }
}

/// `operations manifest` registers each file's operation by the SHA-256 of its text, and
/// refuses files that do not hold exactly one operation.
#[test]
fn operations_manifest_hashes_each_operation() {
    let dir = tempfile::tempdir().unwrap();
    let me = "query Me { me { handle } }\n";
    std::fs::write(dir.path().join("me.graphql"), me).unwrap();
    let path = dir.path().join("me.graphql");
    let output = needtoknow(
        dir.path(),
        &["operations", "manifest", path.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(manifest["format"], "apollo-persisted-query-manifest");
    assert_eq!(
        manifest["operations"][0]["id"],
        needtoknow::allowlist::hash(me)
    );
    assert_eq!(manifest["operations"][0]["name"], "Me");
    assert_eq!(manifest["operations"][0]["body"], me);

    std::fs::write(
        dir.path().join("two.graphql"),
        "query A { me { id } } query B { me { id } }",
    )
    .unwrap();
    let two = dir.path().join("two.graphql");
    let output = needtoknow(
        dir.path(),
        &["operations", "manifest", two.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("more than one operation"),
        "{}",
        stderr(&output)
    );
}

/// A database that is down at start: clear message, non-zero exit, no password shown.
#[test]
fn serve_exits_non_zero_when_the_database_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary()
        .env("NEEDTOKNOW_DATA_DIR", dir.path())
        .env(
            "DATABASE_URL",
            "postgres://postgres:hunter2@127.0.0.1:1/none",
        )
        .env(
            "NEEDTOKNOW_MASTER_KEY",
            needtoknow::crypto::keys::generate_key(),
        )
        .env("NEEDTOKNOW_DATABASE_TIMEOUT_SECS", "1")
        .env("NEEDTOKNOW_LOG", "warn")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("cannot connect to the postgresql"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// Every subcommand explains itself.
#[test]
fn help_describes_each_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let output = needtoknow(dir.path(), &["--help"]);
    let help = stdout(&output);
    for command in ["serve", "migrate", "schema", "agent"] {
        assert!(help.contains(command), "{help}");
    }
    let output = needtoknow(dir.path(), &["agent", "create", "--help"]);
    assert!(stdout(&output).contains("--queue"));
}

/// `serve` logs JSON lines with request ids and no token or personal data, and stops
/// cleanly on SIGTERM.
#[test]
fn serve_logs_json_without_secrets_and_stops_on_sigterm() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    let dir = tempfile::tempdir().unwrap();
    let mut served = common::serve(
        binary()
            .env("NEEDTOKNOW_DATA_DIR", dir.path())
            .env("NEEDTOKNOW_LOG", "info")
            .args([
                "serve",
                "--demo",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "1",
            ]),
    );
    let tokens: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(dir.path().join("demo-tokens.json")).unwrap())
            .unwrap();
    let body =
        r#"{"query":"{ ticket(id: \"1\") { customer { fullName { value } email { value } } } }"}"#;
    let mut stream = TcpStream::connect(&served.address).unwrap();
    write!(
        stream,
        "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        tokens["frontline"],
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.contains("Robin Sample"), "{response}");
    let request_id = response
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("request id header")
        .trim()
        .to_owned();

    let status = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (exit, log) = served.wait();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
    let log = log.join("\n");
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every log line is JSON");
    }
    assert!(log.contains(&request_id), "the request id is in the log");
    for secret in ["Robin", "robin.sample", tokens["frontline"].as_str()] {
        assert!(!log.contains(secret), "{secret} must not be logged");
    }
}

fn policies_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn copy_policies(to: &Path) {
    std::fs::create_dir_all(to.join("tests")).unwrap();
    std::fs::copy(policies_dir().join("main.polar"), to.join("main.polar")).unwrap();
    std::fs::copy(
        policies_dir().join("tests/default.cases"),
        to.join("tests/default.cases"),
    )
    .unwrap();
}

/// `policy check` accepts the shipped policy and names file and line of a broken one.
#[test]
fn policy_check_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let ok = needtoknow(dir.path(), &["policy", "check"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).starts_with("ok: 1 policy file(s), 7 roles, 6 topics, 4 channels"));

    let broken = dir.path().join("broken");
    copy_policies(&broken);
    let main = broken.join("main.polar");
    let text = std::fs::read_to_string(&main).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    // The findings of issue 11, each with its line and a did-you-mean, and a missing `;`
    // pointed at the rule that is unfinished (Polar itself names the next line).
    let unfinished = line_of("supervisor_access(\"name\", \"PLAIN\", \"NONE\");");
    let frontline_shipping = line_of("assignee_access(\"frontline\", \"shipping\", \"address\"");
    let supervisor_identity = line_of("supervisor_access(\"identity\"");
    let frontline_topics = line_of("frontline_topic(topic) if");
    let team_rule = line_of("ticket.in_my_team and");
    let cases: Vec<(&str, &str, String)> = vec![
        (
            "supervisor_access(\"name\", \"PLAIN\", \"NONE\");",
            "supervisor_access(\"name\", \"PLAIN\", \"NONE\")",
            format!("main.polar:{unfinished}: this rule is not finished: a ';' is probably missing at its end"),
        ),
        (
            "assignee_access(\"frontline\", \"shipping\", \"address\"",
            "assignee_access(\"frontline\", \"shipping\", \"adress\"",
            format!("main.polar:{frontline_shipping}: unknown data class or field \"adress\" (did you mean \"address\"?)"),
        ),
        (
            "supervisor_access(\"identity\"",
            "supervisor_access(\"identiy\"",
            format!("main.polar:{supervisor_identity}: unknown data class or field \"identiy\" (did you mean \"identity\"?)"),
        ),
        (
            "assignee_access(\"billing\", \"billing\", \"name\"",
            "assignee_access(\"biling\", \"billing\", \"name\"",
            "unknown role \"biling\" (did you mean \"billing\"?)".to_owned(),
        ),
        (
            "\"technical\", \"shipping\"]",
            "\"technical\", \"privacy_requst\"]",
            format!("main.polar:{frontline_topics}: unknown topic \"privacy_requst\" (did you mean \"privacy_request\"?)"),
        ),
        (
            "supervisor_access(\"name\", \"PLAIN\", \"NONE\");",
            "supervisor_access(\"name\", \"SHOWN\", \"NONE\");",
            "unknown access level \"SHOWN\"".to_owned(),
        ),
        (
            "ticket.in_my_team and",
            "ticket.topik and",
            format!("main.polar:{team_rule}: Ticket has no attribute 'topik' (known: topic, status, assigned_to_me, unassigned, in_my_team)"),
        ),
    ];
    for (from, to, expected) in cases {
        assert!(text.contains(from), "{from}");
        std::fs::write(&main, text.replacen(from, to, 1)).unwrap();
        let output = needtoknow(dir.path(), &["policy", "check", broken.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1), "{to}");
        assert!(
            stderr(&output).contains(&expected),
            "{to}: {}",
            stderr(&output)
        );
    }
    // A permission the service asks about that no rule grants is a warning, not an error.
    std::fs::write(
        &main,
        text.lines()
            .filter(|l| !l.starts_with("allow(agent: Agent, \"erase\""))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let output = needtoknow(dir.path(), &["policy", "check", broken.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("warning: no rule grants `erase customer_data`: nobody may do it"),
        "{}",
        stdout(&output)
    );
    std::fs::write(&main, format!("{text}\nextra(x: Customer) if x.id = 1;\n")).unwrap();
    let output = needtoknow(dir.path(), &["policy", "check", broken.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let line = text.lines().count() + 2;
    assert!(
        stderr(&output).contains(&format!("main.polar:{line}: unknown class Customer")),
        "{}",
        stderr(&output)
    );
}

/// `policy test` runs the cases, printing expected vs got, and refuses unknown words with
/// file and line.
#[test]
fn policy_test_runs_the_cases_and_prints_expected_vs_got() {
    let dir = tempfile::tempdir().unwrap();
    let ok = needtoknow(dir.path(), &["policy", "test"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok).trim(), "1534 passed, 0 failed");

    let edited = dir.path().join("edited");
    copy_policies(&edited);
    let cases = edited.join("tests/default.cases");
    let text = std::fs::read_to_string(&cases).unwrap();
    std::fs::write(
        &cases,
        format!("{text}frontline assignee shipping open address MASKED NONE\n"),
    )
    .unwrap();
    let output = needtoknow(dir.path(), &["policy", "test", edited.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains(&format!(
            "default.cases:{}: frontline assignee shipping open address: expected MASKED NONE, got PLAIN NONE",
            text.lines().count() + 1
        )),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).contains("1176 passed, 1 failed"));

    std::fs::write(
        &cases,
        format!("{text}frontline assignee shipping open emial PLAIN NONE\n"),
    )
    .unwrap();
    let output = needtoknow(dir.path(), &["policy", "test", edited.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!(
            "default.cases:{}: unknown class or field \"emial\"",
            text.lines().count() + 1
        )),
        "{}",
        stderr(&output)
    );
}

/// `policy explain` prints the decision, the inputs and who could help.
#[test]
fn policy_explain_prints_the_decision_and_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let output = needtoknow(
        dir.path(),
        &[
            "policy",
            "explain",
            "--role",
            "frontline",
            "--topic",
            "technical",
            "--assignee",
            "--field",
            "email",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("decision: MASKED WITH_REASON\n"), "{text}");
    assert!(text.contains("field email (class contact)"), "{text}");
    assert!(
        text.contains("Ticket topic=\"technical\" status=\"open\" assigned_to_me=true"),
        "{text}"
    );

    let output = needtoknow(
        dir.path(),
        &[
            "policy",
            "explain",
            "--role",
            "frontline",
            "--topic",
            "billing",
            "--field",
            "paymentMethods",
        ],
    );
    let text = stdout(&output);
    assert!(text.starts_with("decision: HIDDEN NONE\n"), "{text}");
    assert!(text.contains("deny by default"), "{text}");
    assert!(
        text.contains("hand-off: billing (a billing specialist), supervisor (a supervisor)"),
        "{text}"
    );

    let output = needtoknow(
        dir.path(),
        &[
            "policy", "explain", "--role", "pilot", "--topic", "billing", "--field", "email",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unknown role \"pilot\""));
}

/// SIGHUP reloads the policy even with the file watch off.
#[test]
fn sighup_reloads_the_policy() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_policies(&policies);
    let mut served = common::serve(
        binary()
            .env("NEEDTOKNOW_DATA_DIR", dir.path())
            .env("NEEDTOKNOW_POLICY_DIR", &policies)
            .env("NEEDTOKNOW_POLICY_WATCH_MS", "0")
            .env(
                "NEEDTOKNOW_MASTER_KEY",
                needtoknow::crypto::keys::generate_key(),
            )
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"]),
    );
    let address = served.address.clone();
    let reloads = || -> serde_json::Value {
        let mut stream = TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap();
        serde_json::from_str::<serde_json::Value>(body).unwrap()["checks"]["policy"]["reloads"]
            .clone()
    };
    assert_eq!(reloads(), 0);
    let main = policies.join("main.polar");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, text.replace("\"a supervisor\"", "\"a team lead\"")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(reloads(), 0, "the watch is off");
    let hup = Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut seen = serde_json::Value::Null;
    // Up to 30 s: a reload checks the whole policy, slow on a loaded machine (5 s was not
    // always enough with two test runs at once).
    for _ in 0..300 {
        seen = reloads();
        if seen == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(seen, 1);
    Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(served.wait().0.success());
}

/// A policy that does not check out stops start-up, naming file and line.
#[test]
fn serve_refuses_to_start_with_a_broken_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_policies(&policies);
    let main = policies.join("main.polar");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        text.replace("topic(\"billing\");", "topic(\"billing\")"),
    )
    .unwrap();
    let output = binary()
        .env("NEEDTOKNOW_DATA_DIR", dir.path())
        .env("NEEDTOKNOW_POLICY_DIR", &policies)
        .env("NEEDTOKNOW_LOG", "warn")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("cannot load policies") && err.contains("main.polar"),
        "{err}"
    );
    assert!(err.contains("line"), "{err}");
}

/// In production a missing master key stops start-up before anything is written; a wrong
/// one is refused on a database sealed with another key, which stays readable with its own.
#[test]
fn serve_refuses_a_missing_or_wrong_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |key: &str| {
        let mut command = binary();
        command
            .env("NEEDTOKNOW_DATA_DIR", dir.path())
            .env("NEEDTOKNOW_MASTER_KEY", key)
            .args(["serve", "--listen", "127.0.0.1:0"]);
        command
    };
    let output = binary()
        .env_remove("DATABASE_URL")
        .env("NEEDTOKNOW_DATA_DIR", dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no master key"),
        "{}",
        stderr(&output)
    );
    assert!(
        !dir.path().join("needtoknow.sqlite").exists(),
        "nothing was written"
    );

    let right = needtoknow::crypto::keys::generate_key();
    // Signalled only once it answers: actix installs its signal handlers when the server
    // first runs, a moment after the "listening" line, and a SIGTERM before that (a slow,
    // loaded machine) kills the process rather than stopping it.
    let mut first = common::serve(&mut serve(&right));
    let answers = || {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(&first.address) else {
            return false;
        };
        let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.starts_with("HTTP/1.1 200")
    };
    for _ in 0..200 {
        if answers() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status()
        .unwrap();
    let (status, log) = first.wait();
    assert!(status.success(), "{status:?}: {log:?}");

    let wrong = needtoknow::crypto::keys::generate_key();
    let output = binary()
        .env_remove("DATABASE_URL")
        .env("NEEDTOKNOW_DATA_DIR", dir.path())
        .env("NEEDTOKNOW_MASTER_KEY", &wrong)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("the master key does not match this database"),
        "{err}"
    );
    assert!(!err.contains(&wrong[..12]), "the key is never printed");
}

/// `seed` writes the requested rows, encrypted, and can run again on the same database.
#[test]
fn seed_generates_encrypted_benchmark_data() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let output = needtoknow(
            dir.path(),
            &[
                "seed",
                "--customers",
                "20",
                "--tickets",
                "120",
                "--messages-per-ticket",
                "1",
            ],
        );
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stdout(&output).contains("seeded 20 customers and 120 tickets"));
    }
    let database = std::fs::read(dir.path().join("needtoknow.sqlite")).unwrap();
    assert!(
        !database.windows(11).any(|w| w == b"example.net"),
        "seeded emails are stored encrypted"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use sea_orm::{EntityTrait, PaginatorTrait};
        let settings = needtoknow::config::Settings::for_data_dir(
            dir.path(),
            needtoknow::config::DatabaseSettings::Sqlite {
                path: dir.path().join("needtoknow.sqlite"),
            },
        );
        let db = needtoknow::db::connect(&settings).await.unwrap();
        assert_eq!(
            entity::ticket::Entity::find().count(&db).await.unwrap(),
            240
        );
        assert_eq!(
            entity::message::Entity::find().count(&db).await.unwrap(),
            240
        );
        assert_eq!(
            entity::customer::Entity::find().count(&db).await.unwrap(),
            40
        );
    });
}

/// `policy diff` lists every changed cell of real edits, widening first, and exits 1 when
/// anything widens unless `--allow-widening`; a narrowing-only edit exits 0.
#[test]
fn policy_diff_lists_each_changed_cell_and_refuses_widening() {
    let dir = tempfile::tempdir().unwrap();
    let edit = |name: &str, from: &str, to: &str| {
        let edited = dir.path().join(name);
        copy_policies(&edited);
        let main = edited.join("main.polar");
        let text = std::fs::read_to_string(&main).unwrap();
        assert!(text.contains(from), "{from}");
        std::fs::write(&main, text.replacen(from, to, 1)).unwrap();
        edited
    };
    let shipped = policies_dir();
    let diff = |new: &Path, extra: &[&str]| {
        let mut args = vec![
            "policy",
            "diff",
            shipped.to_str().unwrap(),
            new.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        needtoknow(dir.path(), &args)
    };

    // Widen one field: frontline assignees on technical tickets see the date of birth's year.
    let widened = edit(
        "widened",
        "frontline_topic(topic) if",
        "field_access(_a: Agent, ticket: Ticket, \"dateOfBirth\", \"MASKED\", \"NONE\") if\n    ticket.assigned_to_me and ticket.topic = \"technical\";\nfrontline_topic(topic) if",
    );
    let output = diff(&widened, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = stdout(&output);
    assert!(
        report.contains(
            "| frontline | assignee | technical | any | dateOfBirth | HIDDEN NONE | MASKED NONE |"
        ),
        "{report}"
    );
    assert!(report.contains("**28 widen**"), "{report}");
    assert!(stderr(&output).contains("--allow-widening"));
    assert!(diff(&widened, &["--allow-widening"]).status.success());

    // Narrow one topic: frontline loses the address on shipping tickets.
    let narrowed = edit(
        "narrowed",
        "assignee_access(\"frontline\", \"shipping\", \"address\", \"PLAIN\", \"NONE\");",
        "",
    );
    let output = diff(&narrowed, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = stdout(&output);
    assert!(report.contains("### Narrows"), "{report}");
    assert!(!report.contains("### Widens"), "{report}");
    assert!(
        report.contains(
            "| frontline | assignee | shipping | any | postalAddress | PLAIN NONE | HIDDEN NONE |"
        ),
        "{report}"
    );

    // Add a role: everything it gets widens, starting with its scopes.
    let role = edit(
        "role",
        "role(\"admin\", \"an administrator\");",
        "role(\"admin\", \"an administrator\");\nrole(\"legal\", \"a legal specialist\");",
    );
    let report = stdout(&diff(&role, &[]));
    assert!(report.contains("- new role `legal`"), "{report}");
    assert!(
        report.contains("| legal | - | - | - | ticket_scope | - | assigned |"),
        "{report}"
    );

    // Add a permission: billing specialists may read access reports.
    let permission = edit(
        "permission",
        "agent.role in [\"admin\", \"auditor\"]",
        "agent.role in [\"admin\", \"auditor\", \"billing\"]",
    );
    let report = stdout(&diff(&permission, &[]));
    assert!(
        report.contains("| billing | - | - | - | allow read access_report | denied | allowed |"),
        "{report}"
    );
    assert!(report.contains("1 of "), "{report}");
}

/// `policy test --coverage` names the rules no case exercised, with file and line.
#[test]
fn policy_test_coverage_names_rules_no_case_exercised() {
    let dir = tempfile::tempdir().unwrap();
    let edited = dir.path().join("edited");
    copy_policies(&edited);
    let main = edited.join("main.polar");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        format!("{text}\nescalation_contact(\"supervisor\");\n"),
    )
    .unwrap();
    let line = text.lines().count() + 2;
    let output = needtoknow(
        dir.path(),
        &["policy", "test", "--coverage", edited.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let report = stdout(&output);
    assert!(
        report.contains(&format!(
            "NOT COVERED {}:{line}: escalation_contact(\"supervisor\")",
            main.display()
        )),
        "{report}"
    );
    assert!(report.contains("rules exercised by the cases"), "{report}");
    // The shipped cases exercise every rule but the default grant lifetime.
    let shipped = stdout(&needtoknow(dir.path(), &["policy", "test", "--coverage"]));
    assert!(shipped.contains("(1 not covered;"), "{shipped}");
    assert!(
        shipped.contains("NOT COVERED ./policies/main.polar")
            && shipped.contains("reveal_seconds("),
        "{shipped}"
    );
}

/// `agent update` changes role, team and queues, checked against the policy; a queue the
/// policy no longer defines can still be removed.
#[test]
fn agent_update_changes_facts_checked_against_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let created = needtoknow(
        dir.path(),
        &[
            "agent",
            "create",
            "--handle",
            "sam",
            "--role",
            "frontline",
            "--team",
            "support",
            "--queue",
            "shipping",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let output = needtoknow(
        dir.path(),
        &[
            "agent",
            "update",
            "sam",
            "--role",
            "billing",
            "--add-queue",
            "billing",
            "--remove-queue",
            "shipping",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "updated agent sam: role frontline -> billing; queues +billing -shipping"
    );
    for (args, expected) in [
        (
            vec!["--role", "biling"],
            "role \"biling\" is not defined by the policy",
        ),
        (
            vec!["--add-queue", "parcels"],
            "queue \"parcels\" is not a topic of the policy",
        ),
        (
            vec!["--remove-queue", "technical"],
            "has no queue \"technical\"",
        ),
        (vec!["--team", "Support Team"], "team \"Support Team\""),
    ] {
        let mut full = vec!["agent", "update", "sam"];
        full.extend(args);
        let output = needtoknow(dir.path(), &full);
        assert_eq!(output.status.code(), Some(2), "{full:?}");
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
    }
    let unknown = needtoknow(
        dir.path(),
        &["agent", "update", "nobody", "--role", "billing"],
    );
    assert!(!unknown.status.success());
    assert!(
        stdout(&needtoknow(dir.path(), &["agent", "update", "sam"])).contains("nothing changed")
    );
}

/// Text logs carry colour codes only on a terminal: written to a file or a pipe, a line is
/// plain text a log collector or `grep` can read.
#[test]
fn text_logs_written_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let mut child = binary()
        .env("NEEDTOKNOW_DATA_DIR", dir.path())
        .env("NEEDTOKNOW_LOG", "info")
        .env("NEEDTOKNOW_LOG_FORMAT", "text")
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("listening") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("listening"), "serve did not start: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text:?}"
    );
}

/// The line `needtoknow config` prints for `key`: `key = value  # origin`.
fn config_line(printed: &str, key: &str) -> String {
    printed
        .lines()
        .find(|line| line.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {printed}"))
        .to_owned()
}

/// A setting comes from its built-in default, then the config file, then the environment
/// variable, then the flag, each overriding the one before; `needtoknow config` shows the
/// value and where it came from.
#[test]
fn settings_layer_defaults_then_the_file_then_the_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("needtoknow.toml");
    std::fs::write(&file, "max_depth = 20\nlisten = \"127.0.0.1:9000\"\n").unwrap();
    let config = |env: &[(&str, &str)], args: &[&str]| {
        let output = binary()
            .env("NEEDTOKNOW_DATA_DIR", dir.path())
            .envs(env.iter().copied())
            .arg("config")
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let file_arg = file.to_str().unwrap();

    let printed = config(&[], &[]);
    let line = config_line(&printed, "max_depth");
    assert!(
        line.starts_with("max_depth = 12 ") && line.ends_with("# default"),
        "{line}"
    );

    let printed = config(&[], &["--config", file_arg]);
    let line = config_line(&printed, "max_depth");
    assert!(
        line.starts_with("max_depth = 20 ") && line.ends_with(&format!("# {file_arg}")),
        "{line}"
    );
    let line = config_line(&printed, "listen");
    assert!(line.starts_with("listen = \"127.0.0.1:9000\""), "{line}");

    // NEEDTOKNOW_CONFIG names the file as well as --config does.
    let printed = config(
        &[
            ("NEEDTOKNOW_CONFIG", file_arg),
            ("NEEDTOKNOW_MAX_DEPTH", "15"),
        ],
        &[],
    );
    let line = config_line(&printed, "max_depth");
    assert!(
        line.starts_with("max_depth = 15 ") && line.ends_with("# NEEDTOKNOW_MAX_DEPTH"),
        "{line}"
    );
    assert!(
        config_line(&printed, "listen").ends_with(&format!("# {file_arg}")),
        "{printed}"
    );

    let printed = config(
        &[
            ("NEEDTOKNOW_CONFIG", file_arg),
            ("NEEDTOKNOW_MAX_DEPTH", "15"),
        ],
        &["--max-depth", "9"],
    );
    let line = config_line(&printed, "max_depth");
    assert!(
        line.starts_with("max_depth = 9 ") && line.ends_with("# --max-depth"),
        "{line}"
    );
    let line = config_line(&printed, "data_dir");
    assert!(line.ends_with("# NEEDTOKNOW_DATA_DIR"), "{line}");
}

/// A value of the wrong type in the file stops start-up with one line naming the key and
/// the file.
#[test]
fn a_bad_value_in_the_config_file_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("needtoknow.toml");
    std::fs::write(&file, "# limits\nmax_depth = \"very deep\"\n").unwrap();
    let output = needtoknow(
        dir.path(),
        &[
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("max_depth in {}", file.display())),
        "{err}"
    );

    // A range is checked wherever the value came from.
    std::fs::write(
        &file,
        "redis_url = \"redis://127.0.0.1:6379\"\nredis_timeout_ms = 5\n",
    )
    .unwrap();
    let output = needtoknow(dir.path(), &["migrate", "--config", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "redis_timeout_ms in {}: 5 is not in 10..=10000",
            file.display()
        )),
        "{err}"
    );
}

/// A misspelt key is an error, not silently ignored.
#[test]
fn an_unknown_key_in_the_config_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("needtoknow.toml");
    std::fs::write(&file, "max_depht = 8\n").unwrap();
    let output = needtoknow(dir.path(), &["serve", "--config", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("max_depht in {}", file.display()))
            && err.contains("unknown setting (did you mean max_depth?)"),
        "{err}"
    );
}

/// A config file that is named but missing is an error naming it; none is read unless named.
#[test]
fn a_missing_config_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.toml");
    let output = binary()
        .env("NEEDTOKNOW_DATA_DIR", dir.path())
        .env("NEEDTOKNOW_CONFIG", &missing)
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

/// `needtoknow config` shows every secret as `[redacted]`, whichever layer it came from,
/// and an invalid secret's error does not show it either.
#[test]
fn secrets_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("needtoknow.toml");
    std::fs::write(
        &file,
        concat!(
            "redis_url = \"redis://:file-redis-secret@127.0.0.1:6379\"\n",
            "sso_issuer = \"https://idp.example\"\n",
            "sso_audience = \"needtoknow\"\n",
            "sso_hs256_secret = \"file-hs256-secret-of-more-than-32-bytes\"\n",
        ),
    )
    .unwrap();
    let output = binary()
        .env("NEEDTOKNOW_DATA_DIR", dir.path())
        .env("DATABASE_URL", "postgres://app:env-db-secret@127.0.0.1/app")
        .args(["config", "--config", file.to_str().unwrap()])
        .args(["--master-key", "1:ZmxhZy1tYXN0ZXItc2VjcmV0"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    for secret in [
        "file-redis-secret",
        "file-hs256-secret",
        "env-db-secret",
        "ZmxhZy1tYXN0ZXItc2VjcmV0",
    ] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    for key in [
        "redis_url",
        "sso_hs256_secret",
        "database_url",
        "master_key",
    ] {
        assert!(
            config_line(&printed, key).contains("\"[redacted]\""),
            "{printed}"
        );
    }

    std::fs::write(
        &file,
        "database_url = \"mysql://root:file-db-secret@db/x\"\n",
    )
    .unwrap();
    let output = needtoknow(dir.path(), &["migrate", "--config", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("database_url in ") && !err.contains("file-db-secret"),
        "{err}"
    );
}

/// `examples/needtoknow.toml` is a valid file for `serve`.
#[test]
fn the_example_config_file_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let output = needtoknow(
        dir.path(),
        &["config", "--config", "examples/needtoknow.toml"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        config_line(&stdout(&output), "listen").ends_with("# examples/needtoknow.toml"),
        "{}",
        stdout(&output)
    );
}

/// `serve --help` still lists each flag with its environment variable and its default,
/// and the config file.
#[test]
fn serve_help_lists_flags_with_their_variables_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let output = needtoknow(dir.path(), &["serve", "--help"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // Help is wrapped to the terminal's width; compare words, not lines.
    let help = stdout(&output)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for expected in [
        "--max-depth",
        "NEEDTOKNOW_MAX_DEPTH",
        "[default: 12]",
        "--listen",
        "[default: 127.0.0.1:8080]",
        "--config <FILE>",
        "NEEDTOKNOW_CONFIG",
        "--database-url",
        "DATABASE_URL",
    ] {
        assert!(help.contains(expected), "{expected} not in {help}");
    }
}
