//! Table-driven policy test cases (`policies/tests/*.cases`), the start-up and reload
//! sweep, and the facts of hypothetical agents that `policy test` and `policy explain` use.
//!
//! A case line has seven whitespace-separated columns; each of the first five may list
//! several values separated by commas, and the line expands to every combination:
//!
//! ```text
//! # role       relation  topic                       status  class or field  level   reveal
//! frontline    assignee  account_access,technical    open    email           MASKED  WITH_REASON
//! ```
//!
//! Relations: `assignee` (the ticket is assigned to the agent), `queue` (unassigned, its topic
//! in the agent's queues), `team` (assigned to someone else in the agent's team), `none`
//! (none of these: another team's ticket).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use std::collections::HashMap;

use super::{AgentFacts, Decision, Decisions, PolicyError, PolicySet, Subject, TicketFacts};
use crate::vocabulary::{AuditScope, Permission, Resource, TicketScope, TicketStatus};

/// How a hypothetical agent relates to a hypothetical ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Relation {
    /// The ticket is assigned to the agent.
    Assignee,
    /// The ticket is unassigned and its topic is in the agent's queues.
    Queue,
    /// The ticket is assigned to someone else in the agent's team.
    Team,
    /// None of these: assigned to someone of another team, not in the agent's queues.
    #[value(name = "none")]
    Unrelated,
}

impl Relation {
    /// Every relation.
    pub const ALL: [Relation; 4] = [
        Relation::Assignee,
        Relation::Queue,
        Relation::Team,
        Relation::Unrelated,
    ];

    /// The facts the policy reads for an agent of `role` and a ticket of `topic` and
    /// `status` in this relation. The agent's queues hold the topic except for `team`.
    pub fn facts(self, role: &str, topic: &str, status: &str) -> (AgentFacts, TicketFacts) {
        let agent = AgentFacts {
            role: role.to_owned(),
            team: "team".to_owned(),
            queues: match self {
                Relation::Team | Relation::Unrelated => Vec::new(),
                _ => vec![topic.to_owned()],
            },
        };
        let ticket = TicketFacts {
            topic: topic.to_owned(),
            status: status.to_owned(),
            assigned_to_me: self == Relation::Assignee,
            unassigned: self == Relation::Queue,
            in_my_team: self != Relation::Unrelated,
        };
        (agent, ticket)
    }
}

impl Relation {
    /// Whether a ticket in this relation is visible under `scopes`.
    pub fn visible_under(self, scopes: &[TicketScope]) -> bool {
        match self {
            Relation::Assignee => scopes.contains(&TicketScope::Assigned),
            Relation::Queue => scopes.contains(&TicketScope::Queue),
            Relation::Team => scopes.contains(&TicketScope::Team),
            Relation::Unrelated => false,
        }
    }
}

impl FromStr for Relation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "assignee" => Ok(Relation::Assignee),
            "queue" => Ok(Relation::Queue),
            "team" => Ok(Relation::Team),
            "none" => Ok(Relation::Unrelated),
            other => Err(format!(
                "unknown relation {other:?} (use assignee, queue, team or none)"
            )),
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Relation::Assignee => "assignee",
            Relation::Queue => "queue",
            Relation::Team => "team",
            Relation::Unrelated => "none",
        })
    }
}

/// One expanded test case, with where it was written.
#[derive(Clone, Debug)]
pub struct Case {
    /// `file:line` of the case.
    pub location: String,
    /// The agent's role.
    pub role: String,
    /// The relation to the ticket.
    pub relation: Relation,
    /// The ticket's topic.
    pub topic: String,
    /// The ticket's status.
    pub status: String,
    /// What is asked, as written in the subject column.
    pub written: String,
    /// What is asked.
    pub question: Question,
    /// The expected answer.
    pub expected: Answer,
}

/// What a case asks about the agent and the ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Question {
    /// The level and reveal option of a class or field (a field is checked against its
    /// field-level answer if a rule names it, else its class's). Subject column: the name.
    Access(Subject),
    /// Whether the agent may open the ticket at all (`ticket_scope`). Subject: `sees`.
    Sees,
    /// Whether `allow` grants a permission (on the ticket, or on its named resource).
    /// Subject: `allow:ACTION` or `allow:ACTION:RESOURCE`.
    Allow(Permission),
    /// Whether `audit_scope` gives the agent this scope. Subject: `audit:SCOPE`.
    Audit(AuditScope),
}

/// The expected (or actual) answer of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Level and reveal option (columns `LEVEL REVEAL`).
    Decision(Decision),
    /// Yes or no (columns `yes -` or `no -`).
    Yes(bool),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Decision(decision) => f.write_str(&describe(*decision)),
            Answer::Yes(true) => f.write_str("yes"),
            Answer::Yes(false) => f.write_str("no"),
        }
    }
}

/// Parses a subject column word.
fn parse_question(word: &str) -> Result<Question, String> {
    if word == "sees" {
        return Ok(Question::Sees);
    }
    if let Some(scope) = word.strip_prefix("audit:") {
        return scope
            .parse()
            .map(Question::Audit)
            .map_err(|_| format!("unknown audit scope {scope:?} (use own, team or all)"));
    }
    if let Some(rest) = word.strip_prefix("allow:") {
        let (action, resource) = match rest.split_once(':') {
            Some((action, resource)) => (action, Some(resource)),
            None => (rest, None),
        };
        return Permission::ALL
            .into_iter()
            .find(|p| {
                p.action() == action
                    && match (p.resource(), resource) {
                        (Resource::Ticket, None) => true,
                        (Resource::Named(named), Some(resource)) => named == resource,
                        _ => false,
                    }
            })
            .map(Question::Allow)
            .ok_or_else(|| {
                let known: Vec<String> = Permission::ALL
                    .iter()
                    .map(|p| match p.resource() {
                        Resource::Ticket => format!("allow:{}", p.action()),
                        Resource::Named(r) => format!("allow:{}:{r}", p.action()),
                    })
                    .collect();
                format!(
                    "{word:?} is not a permission the service asks about (known: {})",
                    known.join(", ")
                )
            });
    }
    Subject::parse(word)
        .map(Question::Access)
        .ok_or_else(|| format!("unknown class or field {word:?}"))
}

/// Reads every `*.cases` file of `dir/tests` (none is fine) and expands the lines, checking
/// every word against the policy's vocabulary.
pub fn load_cases(dir: &Path, set: &PolicySet) -> Result<Vec<Case>, PolicyError> {
    let tests = dir.join("tests");
    if !tests.is_dir() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&tests)
        .map_err(|source| PolicyError::Read {
            dir: tests.clone(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cases"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| PolicyError::Read {
            dir: file.clone(),
            source,
        })?;
        for (index, line) in text.lines().enumerate() {
            let location = format!("{}:{}", file.display(), index + 1);
            parse_line(line, &location, set, &mut cases)
                .map_err(|problem| PolicyError::Invalid(format!("{location}: {problem}")))?;
        }
    }
    Ok(cases)
}

fn list(column: &str) -> Vec<&str> {
    column.split(',').map(str::trim).collect()
}

fn parse_line(
    line: &str,
    location: &str,
    set: &PolicySet,
    out: &mut Vec<Case>,
) -> Result<(), String> {
    let line = line.split('#').next().unwrap_or_default().trim();
    if line.is_empty() {
        return Ok(());
    }
    let columns: Vec<&str> = line.split_whitespace().collect();
    let [roles, relations, topics, statuses, subjects, level, reveal] = columns[..] else {
        return Err(format!(
            "expected 7 columns (role relation topic status class level reveal), found {}",
            columns.len()
        ));
    };
    let vocabulary = set.vocabulary();
    for role in list(roles) {
        if !vocabulary.has_role(role) {
            return Err(format!("unknown role {role:?}"));
        }
    }
    for topic in list(topics) {
        if !vocabulary.has_topic(topic) {
            return Err(format!("unknown topic {topic:?}"));
        }
    }
    for status in list(statuses) {
        if status.parse::<TicketStatus>().is_err() {
            return Err(format!("unknown status {status:?}"));
        }
    }
    let relations = list(relations)
        .into_iter()
        .map(Relation::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    let subjects = list(subjects)
        .into_iter()
        .map(|s| parse_question(s).map(|q| (s, q)))
        .collect::<Result<Vec<_>, _>>()?;
    let decision = || -> Result<Answer, String> {
        Ok(Answer::Decision(Decision {
            access: level
                .parse()
                .map_err(|_| format!("unknown level {level:?}"))?,
            reveal: reveal
                .parse()
                .map_err(|_| format!("unknown reveal option {reveal:?}"))?,
        }))
    };
    let yes = || -> Result<Answer, String> {
        match (level, reveal) {
            ("yes", "-") => Ok(Answer::Yes(true)),
            ("no", "-") => Ok(Answer::Yes(false)),
            _ => Err(format!(
                "a sees, allow: or audit: case answers `yes -` or `no -`, not `{level} {reveal}`"
            )),
        }
    };
    for role in list(roles) {
        for &relation in &relations {
            for topic in list(topics) {
                for status in list(statuses) {
                    for &(written, question) in &subjects {
                        let expected = match question {
                            Question::Access(_) => decision()?,
                            _ => yes()?,
                        };
                        out.push(Case {
                            location: location.to_owned(),
                            role: role.to_owned(),
                            relation,
                            topic: topic.to_owned(),
                            status: status.to_owned(),
                            written: written.to_owned(),
                            question,
                            expected,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// A case whose answer differed from the expectation.
#[derive(Clone, Debug)]
pub struct CaseFailure {
    /// The case.
    pub case: Case,
    /// What the policy answered, or why it could not.
    pub got: Result<Answer, String>,
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.case;
        write!(
            f,
            "{}: {} {} {} {} {}: expected {}, got ",
            c.location, c.role, c.relation, c.topic, c.status, c.written, c.expected
        )?;
        match &self.got {
            Ok(answer) => write!(f, "{answer}"),
            Err(error) => write!(f, "an error: {error}"),
        }
    }
}

/// `LEVEL REVEAL`, as written in case files.
pub fn describe(decision: Decision) -> String {
    format!("{} {}", decision.access_word(), decision.reveal_word())
}

/// Runs `cases` against `set` (bypassing its cache: each distinct set of facts is
/// evaluated once per run) and returns the failures.
pub fn run_cases(set: &PolicySet, cases: &[Case]) -> Vec<CaseFailure> {
    let mut evaluated: HashMap<(AgentFacts, TicketFacts), Result<Decisions, String>> =
        HashMap::new();
    cases
        .iter()
        .filter_map(|case| {
            let facts = case.relation.facts(&case.role, &case.topic, &case.status);
            let got = match case.question {
                Question::Access(subject) => evaluated
                    .entry(facts)
                    .or_insert_with_key(|(agent, ticket)| {
                        set.decide_strict(agent, ticket).map_err(|e| e.to_string())
                    })
                    .as_ref()
                    .map(|d| Answer::Decision(d.subject(subject)))
                    .map_err(Clone::clone),
                Question::Sees => set
                    .ticket_scopes_strict(&facts.0)
                    .map(|scopes| Answer::Yes(case.relation.visible_under(&scopes)))
                    .map_err(|e| e.to_string()),
                Question::Allow(permission) => set
                    .authorize_strict(&facts.0, permission, Some(&facts.1))
                    .map(Answer::Yes)
                    .map_err(|e| e.to_string()),
                Question::Audit(scope) => set
                    .audit_scopes_strict(&facts.0)
                    .map(|scopes| Answer::Yes(scopes.contains(&scope)))
                    .map_err(|e| e.to_string()),
            };
            (got.as_ref().ok() != Some(&case.expected)).then(|| CaseFailure {
                case: case.clone(),
                got,
            })
        })
        .collect()
}

/// Evaluates every role × topic × relation (status `open`): every class and field, every
/// permission, and the ticket and audit scopes of every role, so a rule yielding an unknown
/// word or reading an unknown attribute is found at load time, not by the first request
/// that reaches it. Returns the permissions the service asks about that no rule grants to
/// anyone (a warning, not an error: denying an action to everyone is a policy's right).
pub fn sweep(set: &PolicySet) -> Result<Vec<Permission>, PolicyError> {
    let mut granted = std::collections::BTreeSet::new();
    let vocabulary = set.vocabulary();
    let explain = |what: String| {
        move |e: PolicyError| {
            PolicyError::Invalid(format!(
                "{what}: {}",
                super::lint::explain_runtime_error(&e.to_string())
            ))
        }
    };
    for role in &vocabulary.roles {
        for topic in &vocabulary.topics {
            for relation in Relation::ALL {
                let (agent, ticket) = relation.facts(&role.name, topic, "open");
                if relation == Relation::Assignee {
                    set.ticket_scopes_strict(&agent)
                        .map_err(explain(format!("ticket_scope for role {}", role.name)))?;
                    set.audit_scopes_strict(&agent)
                        .map_err(explain(format!("audit_scope for role {}", role.name)))?;
                }
                set.decide_strict(&agent, &ticket).map_err(explain(format!(
                    "field_access for role {} on {topic} ({relation})",
                    role.name
                )))?;
                for permission in Permission::ALL {
                    let allowed = set
                        .authorize_strict(&agent, permission, Some(&ticket))
                        .map_err(explain(format!(
                            "allow for role {} on {topic} ({relation}), {}",
                            role.name,
                            permission.describe()
                        )))?;
                    if allowed {
                        granted.insert(permission);
                    }
                }
            }
        }
    }
    Ok(Permission::ALL
        .into_iter()
        .filter(|p| !granted.contains(p))
        .collect())
}
