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
//! in the agent's queues), `team` (assigned to someone else in the agent's team). Cases
//! describe tickets the agent may see.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::{AgentFacts, DataClass, Decision, PolicyError, PolicySet, TicketFacts};
use crate::disclosure::Field;

/// How a hypothetical agent relates to a hypothetical ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Relation {
    /// The ticket is assigned to the agent.
    Assignee,
    /// The ticket is unassigned and its topic is in the agent's queues.
    Queue,
    /// The ticket is assigned to someone else in the agent's team.
    Team,
}

impl Relation {
    /// Every relation.
    pub const ALL: [Relation; 3] = [Relation::Assignee, Relation::Queue, Relation::Team];

    /// The facts the policy reads for an agent of `role` and a ticket of `topic` and
    /// `status` in this relation. The agent's queues hold the topic except for `team`.
    pub fn facts(self, role: &str, topic: &str, status: &str) -> (AgentFacts, TicketFacts) {
        let agent = AgentFacts {
            role: role.to_owned(),
            team: "team".to_owned(),
            queues: match self {
                Relation::Team => Vec::new(),
                _ => vec![topic.to_owned()],
            },
        };
        let ticket = TicketFacts {
            topic: topic.to_owned(),
            status: status.to_owned(),
            assigned_to_me: self == Relation::Assignee,
            unassigned: self == Relation::Queue,
            in_my_team: true,
        };
        (agent, ticket)
    }
}

impl FromStr for Relation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "assignee" => Ok(Relation::Assignee),
            "queue" => Ok(Relation::Queue),
            "team" => Ok(Relation::Team),
            other => Err(format!(
                "unknown relation {other:?} (use assignee, queue or team)"
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
        })
    }
}

/// The statuses a ticket can have; policies may read them.
pub const STATUSES: [&str; 4] = ["open", "pending", "resolved", "closed"];

/// A data class named directly, or through one of its fields.
pub fn parse_subject(word: &str) -> Option<(DataClass, Option<Field>)> {
    if let Some(class) = DataClass::ALL.into_iter().find(|c| c.as_str() == word) {
        return Some((class, None));
    }
    Field::ALL
        .into_iter()
        .find(|f| f.graphql_name() == word)
        .map(|f| (f.class(), Some(f)))
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
    /// The class (or field) as written.
    pub subject: String,
    /// The class asked about.
    pub class: DataClass,
    /// The expected answer.
    pub expected: Decision,
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
        if !STATUSES.contains(&status) {
            return Err(format!("unknown status {status:?}"));
        }
    }
    let relations = list(relations)
        .into_iter()
        .map(Relation::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    let subjects = list(subjects)
        .into_iter()
        .map(|s| {
            parse_subject(s)
                .map(|(class, _)| (s, class))
                .ok_or_else(|| format!("unknown class or field {s:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let expected = Decision {
        access: level
            .parse()
            .map_err(|_| format!("unknown level {level:?}"))?,
        reveal: reveal
            .parse()
            .map_err(|_| format!("unknown reveal option {reveal:?}"))?,
    };
    for role in list(roles) {
        for &relation in &relations {
            for topic in list(topics) {
                for status in list(statuses) {
                    for &(subject, class) in &subjects {
                        out.push(Case {
                            location: location.to_owned(),
                            role: role.to_owned(),
                            relation,
                            topic: topic.to_owned(),
                            status: status.to_owned(),
                            subject: subject.to_owned(),
                            class,
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
    pub got: Result<Decision, String>,
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.case;
        write!(
            f,
            "{}: {} {} {} {} {}: expected {}, got ",
            c.location,
            c.role,
            c.relation,
            c.topic,
            c.status,
            c.subject,
            describe(c.expected)
        )?;
        match &self.got {
            Ok(decision) => f.write_str(&describe(*decision)),
            Err(error) => write!(f, "an error: {error}"),
        }
    }
}

/// `LEVEL REVEAL`, as written in case files.
pub fn describe(decision: Decision) -> String {
    format!("{} {}", decision.access_word(), decision.reveal_word())
}

/// Runs `cases` against `set` (bypassing its cache) and returns the failures.
pub fn run_cases(set: &PolicySet, cases: &[Case]) -> Vec<CaseFailure> {
    cases
        .iter()
        .filter_map(|case| {
            let (agent, ticket) = case.relation.facts(&case.role, &case.topic, &case.status);
            let got = set
                .evaluate_strict(&agent, &ticket, case.class)
                .map_err(|e| e.to_string());
            (got.as_ref().ok() != Some(&case.expected)).then(|| CaseFailure {
                case: case.clone(),
                got,
            })
        })
        .collect()
}

/// Evaluates every role × topic × relation × class (status `open`) and the ticket scopes of
/// every role, so a rule yielding an unknown word or reading an unknown attribute is found
/// at load time, not by the first request that reaches it.
pub fn sweep(set: &PolicySet) -> Result<(), PolicyError> {
    let vocabulary = set.vocabulary();
    for role in &vocabulary.roles {
        for topic in &vocabulary.topics {
            for relation in Relation::ALL {
                let (agent, ticket) = relation.facts(&role.name, topic, "open");
                if relation == Relation::Assignee {
                    set.ticket_scopes_strict(&agent)?;
                }
                for class in DataClass::ALL {
                    set.evaluate_strict(&agent, &ticket, class).map_err(|e| {
                        PolicyError::Invalid(format!(
                            "field_access for role {} on {topic} ({relation}), class {class}: {e}",
                            role.name
                        ))
                    })?;
                }
            }
        }
    }
    Ok(())
}
