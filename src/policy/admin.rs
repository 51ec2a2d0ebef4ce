//! `needtoknow policy check|test|explain`: the admin's tools for a policy directory before
//! (and after) it goes live. Each returns the text to print; errors name file and line.

use std::fmt::Write;
use std::path::Path;

use super::cases::{self, describe, parse_subject, Relation};
use super::{Access, PolicySet, TicketScope};

/// Loads and validates `dir` completely (syntax, vocabulary, every rule's answers); returns
/// a one-line summary or the problem.
pub fn check(dir: &Path) -> Result<String, String> {
    let set = PolicySet::load_dir(dir).map_err(|e| e.to_string())?;
    cases::sweep(&set).map_err(|e| e.to_string())?;
    let cases = cases::load_cases(dir, &set).map_err(|e| e.to_string())?;
    let vocabulary = set.vocabulary();
    Ok(format!(
        "ok: {} policy file(s), {} roles, {} topics, {} test case(s) readable",
        set.files().len(),
        vocabulary.roles.len(),
        vocabulary.topics.len(),
        cases.len()
    ))
}

/// Runs every case of `dir/tests`; returns the report and whether all passed.
pub fn test(dir: &Path) -> Result<(String, bool), String> {
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
    if !cases::STATUSES.contains(&q.status.as_str()) {
        return Err(format!("unknown status {:?}", q.status));
    }
    let (class, field) = parse_subject(&q.subject)
        .ok_or_else(|| format!("unknown class or field {:?}", q.subject))?;
    let (agent, ticket) = q.relation.facts(&q.role, &q.topic, &q.status);
    let matches = set
        .matches(&agent, &ticket, class)
        .map_err(|e| e.to_string())?;
    let decision = set
        .evaluate_strict(&agent, &ticket, class)
        .map_err(|e| e.to_string())?;
    let scopes = set
        .ticket_scopes_strict(&agent)
        .map_err(|e| e.to_string())?;
    let needed = match q.relation {
        Relation::Assignee => TicketScope::Assigned,
        Relation::Queue => TicketScope::Queue,
        Relation::Team => TicketScope::Team,
    };

    let mut out = String::new();
    let subject = match field {
        Some(field) => format!("field {} (class {class})", field.graphql_name()),
        None => format!("class {class}"),
    };
    let _ = writeln!(out, "decision: {}", describe(decision));
    let _ = writeln!(
        out,
        "for:      {} as {} on a {} ticket ({}), {subject}",
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
            "rules:    no field_access rule matches: deny by default"
        );
    } else {
        let answers: Vec<String> = matches.iter().map(|d| describe(*d)).collect();
        let _ = writeln!(
            out,
            "rules:    {} field_access answer(s): {}{}",
            matches.len(),
            answers.join("; "),
            if matches.len() > 1 {
                " (the most permissive wins)"
            } else {
                ""
            }
        );
    }
    if !scopes.contains(&needed) {
        let _ = writeln!(
            out,
            "note:     ticket_scope does not give {} the scope {needed:?}: such an agent cannot open this ticket at all",
            q.role
        );
    }
    if decision.access == Access::Hidden {
        let helpers: Vec<String> = set
            .hand_off_roles(&q.topic, class, &q.role)
            .into_iter()
            .map(|r| format!("{} ({})", r.name, r.label))
            .collect();
        let _ = writeln!(
            out,
            "hand-off: {}",
            if helpers.is_empty() {
                "no role sees this class on this topic".to_owned()
            } else {
                helpers.join(", ")
            }
        );
    }
    Ok(out)
}
