//! `needtoknow policy diff OLD NEW`: the exact impact of a policy edit.
//!
//! What a policy can decide is a finite space: every role (of either policy) × topic (of
//! either) × relation (assignee, queue, team, none) × status × field, plus each role's
//! ticket and audit scopes, every permission the host asks about, and every reveal
//! lifetime. Both policies answer every cell; each cell whose answer changed is listed as
//! **widening** (more access, an easier reveal, a longer grant, a new scope or permission)
//! or **narrowing**, grouped into rows a reviewer can read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::cases::Relation;
use super::{AgentFacts, Decision, PolicyError, PolicySet};
use crate::vocabulary::{DataClass, Field, Permission, Resource, RevealOption, TicketStatus};

/// Which way a changed cell moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// More access than before.
    Widens,
    /// Less access than before.
    Narrows,
}

/// One changed cell (or a group of cells that changed alike).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Widens or narrows.
    pub direction: Direction,
    /// The role.
    pub role: String,
    /// The relation, or `-` for per-role cells.
    pub relation: String,
    /// What changed: a field or class, `allow ACTION`, `ticket_scope`, ….
    pub subject: String,
    /// The topics (`any` when every topic), or `-`.
    pub topics: String,
    /// The statuses (`any` when every status), or `-`.
    pub statuses: String,
    /// The old answer.
    pub old: String,
    /// The new answer.
    pub new: String,
}

/// The impact of an edit.
#[derive(Clone, Debug, Default)]
pub struct Diff {
    /// Every change, widening first, as grouped rows.
    pub changes: Vec<Change>,
    /// How many single cells widen.
    pub widening_cells: usize,
    /// How many single cells narrow.
    pub narrowing_cells: usize,
    /// The cells compared.
    pub cells: usize,
}

impl Diff {
    /// Whether any cell widens.
    pub fn widens(&self) -> bool {
        self.widening_cells > 0
    }
}

/// One cell's coordinates within a (role, relation) pair.
type Cell = (String, TicketStatus, String, String, String);

/// Changed cells before grouping: (direction, role, relation) → cells
/// (topic, status, subject, old, new).
type Raw = BTreeMap<(Direction, String, String), Vec<Cell>>;

/// Compares every cell of the decision space between `old` and `new`.
pub fn diff(old: &PolicySet, new: &PolicySet) -> Result<Diff, PolicyError> {
    let roles: BTreeSet<String> = old
        .vocabulary()
        .roles
        .iter()
        .chain(&new.vocabulary().roles)
        .map(|r| r.name.clone())
        .collect();
    let topics: BTreeSet<String> = old
        .vocabulary()
        .topics
        .iter()
        .chain(&new.vocabulary().topics)
        .cloned()
        .collect();
    let mut diff = Diff::default();
    let mut raw: Raw = BTreeMap::new();
    let mut note = |diff: &mut Diff, direction, role: &str, relation: &str, cell: Cell| {
        match direction {
            Direction::Widens => diff.widening_cells += 1,
            Direction::Narrows => diff.narrowing_cells += 1,
        }
        raw.entry((direction, role.to_owned(), relation.to_owned()))
            .or_default()
            .push(cell);
    };

    for role in &roles {
        // Per role: scopes and permissions on named resources.
        let agent = AgentFacts {
            role: role.clone(),
            team: "team".into(),
            queues: topics.iter().cloned().collect(),
        };
        let per_role: [(String, BTreeSet<String>, BTreeSet<String>); 2] = [
            (
                "ticket_scope".into(),
                words(old.ticket_scopes_strict(&agent)?),
                words(new.ticket_scopes_strict(&agent)?),
            ),
            (
                "audit_scope".into(),
                words(old.audit_scopes_strict(&agent)?),
                words(new.audit_scopes_strict(&agent)?),
            ),
        ];
        for (subject, before, after) in per_role {
            diff.cells += 1;
            for added in after.difference(&before) {
                note(
                    &mut diff,
                    Direction::Widens,
                    role,
                    "-",
                    dash_cell(&subject, "-", added),
                );
            }
            for removed in before.difference(&after) {
                note(
                    &mut diff,
                    Direction::Narrows,
                    role,
                    "-",
                    dash_cell(&subject, removed, "-"),
                );
            }
        }
        for permission in Permission::ALL {
            let Resource::Named(resource) = permission.resource() else {
                continue;
            };
            diff.cells += 1;
            let before = old.authorize_strict(&agent, permission, None)?;
            let after = new.authorize_strict(&agent, permission, None)?;
            if before != after {
                let subject = format!("allow {} {resource}", permission.action());
                let direction = if after {
                    Direction::Widens
                } else {
                    Direction::Narrows
                };
                note(
                    &mut diff,
                    direction,
                    role,
                    "-",
                    dash_cell(&subject, yes(before), yes(after)),
                );
            }
        }

        // Per ticket: fields, reveal lifetimes and permissions on the ticket.
        for relation in Relation::ALL {
            for topic in &topics {
                for status in TicketStatus::ALL {
                    let (agent, ticket) = relation.facts(role, topic, status.as_str());
                    let before = old.decide_strict(&agent, &ticket)?;
                    let after = new.decide_strict(&agent, &ticket)?;
                    let cell = |subject: String, old: String, new: String| {
                        (topic.clone(), status, subject, old, new)
                    };
                    for field in Field::ALL {
                        diff.cells += 1;
                        let (b, a) = (before.field(field), after.field(field));
                        if let Some(direction) = compare(b, a) {
                            let c = cell(field.graphql_name().into(), describe(b), describe(a));
                            note(&mut diff, direction, role, &relation.to_string(), c);
                        }
                    }
                    for class in DataClass::ALL {
                        // A lifetime matters only where the new policy offers a reveal.
                        let offered = |d: &super::Decisions| {
                            class
                                .fields()
                                .any(|f| d.field(f).reveal != RevealOption::None)
                        };
                        if !offered(&before) || !offered(&after) {
                            continue;
                        }
                        diff.cells += 1;
                        let b = old.reveal_seconds(&agent, &ticket, class).unwrap_or(900);
                        let a = new.reveal_seconds(&agent, &ticket, class).unwrap_or(900);
                        if a != b {
                            let direction = if a > b {
                                Direction::Widens
                            } else {
                                Direction::Narrows
                            };
                            let c = cell(
                                format!("reveal lifetime of {class}"),
                                format!("{b} s"),
                                format!("{a} s"),
                            );
                            note(&mut diff, direction, role, &relation.to_string(), c);
                        }
                    }
                    for permission in Permission::ALL {
                        if permission.resource() != Resource::Ticket {
                            continue;
                        }
                        diff.cells += 1;
                        let b = old.authorize_strict(&agent, permission, Some(&ticket))?;
                        let a = new.authorize_strict(&agent, permission, Some(&ticket))?;
                        if a != b {
                            let direction = if a {
                                Direction::Widens
                            } else {
                                Direction::Narrows
                            };
                            let c = cell(
                                format!("allow {}", permission.action()),
                                yes(b).into(),
                                yes(a).into(),
                            );
                            note(&mut diff, direction, role, &relation.to_string(), c);
                        }
                    }
                }
            }
        }
    }
    diff.changes = group(raw, &topics);
    Ok(diff)
}

fn words<W: std::fmt::Display>(scopes: Vec<W>) -> BTreeSet<String> {
    scopes.into_iter().map(|s| s.to_string()).collect()
}

fn yes(allowed: bool) -> &'static str {
    if allowed {
        "allowed"
    } else {
        "denied"
    }
}

/// A per-role cell: no topic, status or relation. The status slot is unused.
fn dash_cell(subject: &str, old: &str, new: &str) -> Cell {
    (
        "-".into(),
        TicketStatus::Open,
        subject.into(),
        old.into(),
        new.into(),
    )
}

fn describe(decision: Decision) -> String {
    super::cases::describe(decision)
}

/// Which way a field's answer moved: the level first; at the same level, the reveal option.
pub fn compare(old: Decision, new: Decision) -> Option<Direction> {
    use std::cmp::Ordering;
    match new.access.cmp(&old.access) {
        Ordering::Greater => Some(Direction::Widens),
        Ordering::Less => Some(Direction::Narrows),
        Ordering::Equal => match new.reveal.rank().cmp(&old.reveal.rank()) {
            Ordering::Greater => Some(Direction::Widens),
            Ordering::Less => Some(Direction::Narrows),
            Ordering::Equal => None,
        },
    }
}

/// Groups changed cells into rows: fields that make up a whole class become the class,
/// statuses and topics that changed alike are listed together (`any` when all of them).
fn group(raw: Raw, topics: &BTreeSet<String>) -> Vec<Change> {
    let mut rows = Vec::new();
    for ((direction, role, relation), cells) in raw {
        if relation == "-" {
            for (_, _, subject, old, new) in cells {
                rows.push(Change {
                    direction,
                    role: role.clone(),
                    relation: relation.clone(),
                    subject,
                    topics: "-".into(),
                    statuses: "-".into(),
                    old,
                    new,
                });
            }
            continue;
        }
        // 1. (topic, status, old, new) → subjects, whole classes folded.
        let mut by_cell: BTreeMap<(String, TicketStatus, String, String), Vec<String>> =
            BTreeMap::new();
        for (topic, status, subject, old, new) in cells {
            by_cell
                .entry((topic, status, old, new))
                .or_default()
                .push(subject);
        }
        // 2. (topic, subject, old, new) → statuses.
        let mut by_topic: BTreeMap<(String, String, String, String), Vec<TicketStatus>> =
            BTreeMap::new();
        for ((topic, status, old, new), subjects) in by_cell {
            for subject in fold_classes(&subjects) {
                by_topic
                    .entry((topic.clone(), subject, old.clone(), new.clone()))
                    .or_default()
                    .push(status);
            }
        }
        // 3. (subject, old, new, statuses) → topics.
        let mut by_statuses: BTreeMap<(String, String, String, String), Vec<String>> =
            BTreeMap::new();
        for ((topic, subject, old, new), statuses) in by_topic {
            let statuses = if statuses.len() == TicketStatus::ALL.len() {
                "any".to_owned()
            } else {
                statuses
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            by_statuses
                .entry((subject, old, new, statuses))
                .or_default()
                .push(topic);
        }
        for ((subject, old, new, statuses), changed_topics) in by_statuses {
            let topics = if changed_topics.len() == topics.len() {
                "any".to_owned()
            } else {
                changed_topics.join(", ")
            };
            rows.push(Change {
                direction,
                role: role.clone(),
                relation: relation.clone(),
                subject,
                topics,
                statuses,
                old,
                new,
            });
        }
    }
    rows.sort();
    rows
}

/// Field names that together make up a whole class become `class (all fields)`.
fn fold_classes(subjects: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut folded: BTreeSet<&str> = BTreeSet::new();
    for class in DataClass::ALL {
        let fields: Vec<&str> = class.fields().map(Field::graphql_name).collect();
        if fields.len() > 1 && fields.iter().all(|f| subjects.iter().any(|s| s == f)) {
            out.push(format!("{class} (all fields)"));
            folded.extend(fields);
        }
    }
    out.extend(
        subjects
            .iter()
            .filter(|s| !folded.contains(s.as_str()))
            .cloned(),
    );
    out
}

/// The diff as Markdown for a pull-request review.
pub fn markdown(
    diff: &Diff,
    old_name: &str,
    old: &PolicySet,
    new_name: &str,
    new: &PolicySet,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Policy diff: `{old_name}` ({}) → `{new_name}` ({})\n",
        old.version(),
        new.version()
    );
    let _ = writeln!(
        out,
        "{} of {} cells change: **{} widen**, {} narrow.",
        diff.widening_cells + diff.narrowing_cells,
        diff.cells,
        diff.widening_cells,
        diff.narrowing_cells
    );
    vocabulary_changes(&mut out, old, new);
    for (direction, title) in [
        (Direction::Widens, "Widens (more access)"),
        (Direction::Narrows, "Narrows (less access)"),
    ] {
        let rows: Vec<&Change> = diff
            .changes
            .iter()
            .filter(|c| c.direction == direction)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n### {title}\n");
        let _ = writeln!(
            out,
            "| role | relation | topics | statuses | what | old | new |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for c in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                c.role, c.relation, c.topics, c.statuses, c.subject, c.old, c.new
            );
        }
    }
    out
}

fn vocabulary_changes(out: &mut String, old: &PolicySet, new: &PolicySet) {
    let names = |set: &PolicySet| -> BTreeSet<String> {
        set.vocabulary()
            .roles
            .iter()
            .map(|r| r.name.clone())
            .collect()
    };
    let topics =
        |set: &PolicySet| -> BTreeSet<String> { set.vocabulary().topics.iter().cloned().collect() };
    let (old_roles, new_roles) = (names(old), names(new));
    let (old_topics, new_topics) = (topics(old), topics(new));
    let mut lines = Vec::new();
    for role in new_roles.difference(&old_roles) {
        lines.push(format!("- new role `{role}`"));
    }
    for role in old_roles.difference(&new_roles) {
        lines.push(format!(
            "- role `{role}` removed: its agents get nothing until they are updated"
        ));
    }
    for topic in new_topics.difference(&old_topics) {
        lines.push(format!("- new topic `{topic}`"));
    }
    for topic in old_topics.difference(&new_topics) {
        lines.push(format!(
            "- topic `{topic}` removed: queues naming it give nothing"
        ));
    }
    if !lines.is_empty() {
        let _ = writeln!(out, "\nVocabulary:\n\n{}", lines.join("\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::Access;

    #[test]
    fn more_access_or_an_easier_reveal_widens() {
        let d = |access, reveal| Decision { access, reveal };
        let hidden = d(Access::Hidden, RevealOption::None);
        let masked = d(Access::Masked, RevealOption::WithReason);
        assert_eq!(compare(hidden, masked), Some(Direction::Widens));
        assert_eq!(compare(masked, hidden), Some(Direction::Narrows));
        assert_eq!(
            compare(hidden, d(Access::Hidden, RevealOption::WithApproval)),
            Some(Direction::Widens)
        );
        assert_eq!(compare(masked, masked), None);
    }

    #[test]
    fn a_whole_class_is_named_once() {
        let subjects = vec![
            "email".to_owned(),
            "phone".to_owned(),
            "fullName".to_owned(),
        ];
        assert_eq!(
            fold_classes(&subjects),
            ["contact (all fields)", "fullName"]
        );
    }
}
