//! `needtoknow policy check|test|explain`: the admin's tools for a policy directory before
//! (and after) it goes live. Each returns the text to print; errors name file and line.

use std::fmt::Write;
use std::path::Path;

use super::cases::{self, describe, Relation};
use super::{Access, PolicySet, Subject, TicketScope};
use crate::vocabulary::TicketStatus;

/// Loads and validates `dir` completely (syntax, vocabulary, every rule's answers); returns
/// a one-line summary or the problem.
pub fn check(dir: &Path) -> Result<String, String> {
    let set = PolicySet::load_dir(dir).map_err(|e| e.to_string())?;
    let ungranted = cases::sweep(&set).map_err(|e| e.to_string())?;
    let cases = cases::load_cases(dir, &set).map_err(|e| e.to_string())?;
    let vocabulary = set.vocabulary();
    let mut out = format!(
        "ok: {} policy file(s), {} roles, {} topics, {} channels, {} test case(s) readable",
        set.files().len(),
        vocabulary.roles.len(),
        vocabulary.topics.len(),
        vocabulary.channels.len(),
        cases.len()
    );
    if vocabulary.channels.is_empty() {
        out.push_str(
            "\nwarning: no channel(name) facts: no ticket can be opened (openTicket refuses every channel)",
        );
    }
    for permission in ungranted {
        let _ = write!(
            out,
            "\nwarning: no rule grants `{}`: nobody may do it (deny by default)",
            permission.describe()
        );
    }
    Ok(out)
}

/// Compares the policies in `old` and `new` over the whole decision space; returns the
/// Markdown report and whether anything widens.
pub fn diff(old: &Path, new: &Path) -> Result<(String, bool), String> {
    let load = |dir: &Path| -> Result<PolicySet, String> {
        let set = PolicySet::load_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        cases::sweep(&set).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(set)
    };
    let (before, after) = (load(old)?, load(new)?);
    let diff = super::diff::diff(&before, &after).map_err(|e| e.to_string())?;
    let report = super::diff::markdown(
        &diff,
        &old.display().to_string(),
        &before,
        &new.display().to_string(),
        &after,
    );
    Ok((report, diff.widens()))
}

/// Runs every case of `dir/tests`; returns the report and whether all passed. With
/// `coverage`, the report also lists the rules no case exercised.
pub fn test(dir: &Path, coverage: bool) -> Result<(String, bool), String> {
    let set = PolicySet::load_dir(dir).map_err(|e| e.to_string())?;
    let cases = cases::load_cases(dir, &set).map_err(|e| e.to_string())?;
    if cases.is_empty() {
        return Err(format!(
            "no test cases in {}: add *.cases files",
            dir.join("tests").display()
        ));
    }
    let failures = cases::run_cases(&set, &cases);
    let mut report = String::new();
    for failure in &failures {
        let _ = writeln!(report, "FAIL {failure}");
    }
    let _ = writeln!(
        report,
        "{} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    if coverage {
        let instrumented = super::coverage::instrument(dir).map_err(|e| e.to_string())?;
        cases::run_cases(&instrumented.set, &cases);
        report.push_str(&super::coverage::report(&instrumented));
    }
    Ok((report, failures.is_empty()))
}

/// What `policy explain` is asked about.
#[derive(Clone, Debug)]
pub struct Question {
    /// The agent's role.
    pub role: String,
    /// The ticket's topic.
    pub topic: String,
    /// The agent's relation to the ticket.
    pub relation: Relation,
    /// The ticket's status.
    pub status: String,
    /// A class or field name.
    pub subject: String,
}

/// Explains the decision for one hypothetical agent, ticket and field: the answer, the
/// inputs the policy read, every matching rule's answer, and who could help if hidden.
pub fn explain(dir: &Path, q: &Question) -> Result<String, String> {
    let set = PolicySet::load_dir(dir).map_err(|e| e.to_string())?;
    let vocabulary = set.vocabulary();
    if !vocabulary.has_role(&q.role) {
        return Err(format!("unknown role {:?}", q.role));
    }
    if !vocabulary.has_topic(&q.topic) {
        return Err(format!("unknown topic {:?}", q.topic));
    }
    if q.status.parse::<TicketStatus>().is_err() {
        return Err(format!("unknown status {:?}", q.status));
    }
    let subject = Subject::parse(&q.subject)
        .ok_or_else(|| format!("unknown class or field {:?}", q.subject))?;
    let class = subject.class();
    let (agent, ticket) = q.relation.facts(&q.role, &q.topic, &q.status);
    let matches = set
        .matches(&agent, &ticket, class.as_str())
        .map_err(|e| e.to_string())?;
    let decisions = set
        .decide_strict(&agent, &ticket)
        .map_err(|e| e.to_string())?;
    let decision = decisions.subject(subject);
    let field_rule = match subject {
        Subject::Field(field) => decisions.field_rule(field),
        Subject::Class(_) => None,
    };
    let scopes = set
        .ticket_scopes_strict(&agent)
        .map_err(|e| e.to_string())?;
    // No scope opens another team's ticket to anyone.
    let needed = match q.relation {
        Relation::Assignee => Some(TicketScope::Assigned),
        Relation::Queue => Some(TicketScope::Queue),
        Relation::Team => Some(TicketScope::Team),
        Relation::Unrelated => None,
    };

    let mut out = String::new();
    let described = match subject {
        Subject::Field(field) => format!("field {field} (class {class})"),
        Subject::Class(_) => format!("class {class}"),
    };
    let _ = writeln!(out, "decision: {}", describe(decision));
    let _ = writeln!(
        out,
        "for:      {} as {} on a {} ticket ({}), {described}",
        q.role, q.relation, q.topic, q.status
    );
    let _ = writeln!(out, "inputs:");
    let _ = writeln!(
        out,
        "  Agent  role={:?} team={:?} queues={:?}",
        agent.role, agent.team, agent.queues
    );
    let _ = writeln!(
        out,
        "  Ticket topic={:?} status={:?} assigned_to_me={} unassigned={} in_my_team={}",
        ticket.topic, ticket.status, ticket.assigned_to_me, ticket.unassigned, ticket.in_my_team
    );
    if matches.is_empty() {
        let _ = writeln!(
            out,
            "rules:    no field_access rule matches class {class}: deny by default"
        );
    } else {
        let answers: Vec<String> = matches.iter().map(|d| describe(*d)).collect();
        let _ = writeln!(
            out,
            "rules:    {} field_access answer(s) for class {class}: {}{}",
            matches.len(),
            answers.join("; "),
            if matches.len() > 1 {
                " (the most permissive wins)"
            } else {
                ""
            }
        );
    }
    if let Subject::Field(field) = subject {
        let _ = match field_rule {
            Some(answer) => writeln!(
                out,
                "field:    a field-level rule names {field}: {} (it replaces the class's answer)",
                describe(answer)
            ),
            None => writeln!(
                out,
                "field:    no field-level rule names {field}: the class's answer applies"
            ),
        };
    }
    match needed {
        Some(needed) if !scopes.contains(&needed) => {
            let _ = writeln!(
                out,
                "note:     ticket_scope does not give {} the scope {needed}: such an agent cannot open this ticket at all",
                q.role
            );
        }
        Some(_) => {}
        None => {
            let _ = writeln!(
                out,
                "note:     no scope opens another team's ticket: such an agent cannot open this ticket at all"
            );
        }
    }
    if decision.access == Access::Hidden {
        let helpers: Vec<String> = set
            .hand_off_roles(&q.topic, subject, &q.role)
            .into_iter()
            .map(|r| format!("{} ({})", r.name, r.label))
            .collect();
        let _ = writeln!(
            out,
            "hand-off: {}",
            if helpers.is_empty() {
                "no role sees it on this topic".to_owned()
            } else {
                helpers.join(", ")
            }
        );
    }
    Ok(out)
}
