//! Static checks of policy texts: every word a policy compares or answers with must be one
//! the service knows.
//!
//! The words come from two places: data classes, fields, access levels, reveal options,
//! scopes, statuses, actions and resources from [`crate::vocabulary`]; roles and topics from
//! the policy's own `role(NAME, LABEL)` and `topic(NAME)` facts, across all files of the set.
//!
//! Each string literal gets a *kind* from where it sits. The rules the host asks about have
//! fixed signatures (`field_access(Agent, Ticket, subject, level, reveal)`, …), and the
//! attributes `role`, `topic`, `status` and `queues` have kinds. Kinds then flow into helper
//! rules by fixpoint inference: when a body calls `helper(a0, a1, …)` and `ai` has a kind (an
//! attribute, or a variable of known kind), `helper`'s parameter `i` has it too, in every
//! definition; this repeats until nothing changes. A parameter given two different kinds is
//! left unchecked, so the checker never raises a false alarm on a word it cannot place.
//! Literals are then checked in heads, in calls, and on either side of `=`, `==`, `!=` and
//! `in`; attributes read from an `Agent` or a `Ticket` must exist.
//!
//! Polar's parser keeps the positions of terms private, so problems are located by scanning
//! the text of the rule for the n-th occurrence of the literal, in source order.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use polar_core::parser::{parse_lines, Line};
use polar_core::rules::{Parameter, Rule};
use polar_core::sources::{Source, SourceInfo};
use polar_core::terms::{Call, Operator, Pattern, Term, Value};

use crate::vocabulary::{
    Access, AuditScope, DataClass, Field, Permission, Resource, RevealOption, TicketScope,
    TicketStatus, AGENT_ATTRIBUTES, TICKET_ATTRIBUTES,
};

/// A problem found in a policy file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file, as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong, and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Every problem in `sources` (display name, text), which are the files of one policy set.
///
/// A file Polar cannot parse yields no problems here: loading it fails, and
/// [`explain_polar_error`] explains that failure.
pub fn lint(sources: &[(String, String)]) -> Vec<Problem> {
    let mut files = Vec::with_capacity(sources.len());
    for (name, text) in sources {
        let source = Source {
            filename: Some(name.clone()),
            src: text.clone(),
        };
        let Ok(lines) = parse_lines(source) else {
            return Vec::new();
        };
        files.push(PolicyFile::new(name, text, lines));
    }
    let mut checker = Checker::declared(&files);
    checker.infer(&files);
    files
        .iter()
        .flat_map(|file| {
            file.rules
                .iter()
                .flat_map(|(rule, region)| checker.check(file, rule, region.clone()))
        })
        .collect()
}

/// Polar's load error, pointed at the rule an admin has to fix.
///
/// A missing `;` makes Polar stop at the first token of the *next* statement; this names the
/// statement that is unfinished instead. Other messages are returned unchanged.
pub fn explain_polar_error(message: &str, sources: &[(String, String)]) -> String {
    unfinished_rule(message, sources).unwrap_or_else(|| message.to_owned())
}

/// A policy evaluation error, in words an admin understands: an attribute the host's `Agent`
/// or `Ticket` lacks is named with the ones it has. Other messages are returned unchanged.
pub fn explain_runtime_error(message: &str) -> String {
    unknown_attribute(message).unwrap_or_else(|| message.to_owned())
}

/// The classes the host registers, with the attributes a policy may read.
const CLASSES: [(&str, Kind, &[&str]); 2] = [
    ("Agent", Kind::Agent, &AGENT_ATTRIBUTES),
    ("Ticket", Kind::Ticket, &TICKET_ATTRIBUTES),
];

/// What a term holds, as far as the checker can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A data class or a field's schema name.
    Subject,
    /// An access level.
    Level,
    /// A reveal option.
    Reveal,
    /// A role the policy declares.
    Role,
    /// A topic the policy declares.
    Topic,
    /// A list of topics (`agent.queues`).
    Topics,
    /// A channel the policy declares.
    Channel,
    /// A ticket status.
    Status,
    /// A ticket scope.
    TicketScope,
    /// An audit scope.
    AuditScope,
    /// An action of `allow`.
    Action,
    /// A named resource of `allow`.
    Resource,
    /// The asking agent.
    Agent,
    /// A ticket.
    Ticket,
}

impl Kind {
    /// How a message names one word of this kind, and several.
    fn nouns(self) -> (&'static str, &'static str) {
        match self {
            Kind::Subject => ("data class or field", "data classes and fields"),
            Kind::Level => ("access level", "access levels"),
            Kind::Reveal => ("reveal option", "reveal options"),
            Kind::Role => ("role", "roles"),
            Kind::Topic | Kind::Topics => ("topic", "topics"),
            Kind::Channel => ("channel", "channels"),
            Kind::Status => ("ticket status", "ticket statuses"),
            Kind::TicketScope => ("ticket scope", "ticket scopes"),
            Kind::AuditScope => ("audit scope", "audit scopes"),
            Kind::Action => ("action", "actions"),
            Kind::Resource => ("resource", "resources"),
            Kind::Agent => ("agent", "agents"),
            Kind::Ticket => ("ticket", "tickets"),
        }
    }

    /// The kind of an attribute, whatever it is read from.
    fn of_attribute(name: &str) -> Option<Kind> {
        match name {
            "role" => Some(Kind::Role),
            "topic" => Some(Kind::Topic),
            "status" => Some(Kind::Status),
            "queues" => Some(Kind::Topics),
            _ => None,
        }
    }

    /// The kind of the elements of a list of this kind.
    fn element(self) -> Option<Kind> {
        (self == Kind::Topics).then_some(Kind::Topic)
    }
}

/// The kinds of the parameters of the rules the host asks about; `None` for other rules.
fn signature(name: &str, arity: usize) -> Option<&'static [Option<Kind>]> {
    use Kind::*;
    Some(match (name, arity) {
        ("field_access", 5) => &[
            Some(Agent),
            Some(Ticket),
            Some(Subject),
            Some(Level),
            Some(Reveal),
        ],
        ("reveal_seconds", 4) => &[Some(Agent), Some(Ticket), Some(Subject), None],
        ("ticket_scope", 2) => &[Some(Agent), Some(TicketScope)],
        ("audit_scope", 2) => &[Some(Agent), Some(AuditScope)],
        ("allow", 3) => &[Some(Agent), Some(Action), Some(Resource)],
        ("role", 2) => &[Some(Role), None],
        ("topic", 1) => &[Some(Topic)],
        ("channel", 1) => &[Some(Channel)],
        _ => return None,
    })
}

/// What inference knows of one parameter of a helper rule, or of one variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Nothing yet.
    Open,
    /// One kind.
    Is(Kind),
    /// Two different kinds: left unchecked.
    Mixed,
}

impl Slot {
    /// Adds a kind seen for this slot; whether the slot changed.
    fn add(&mut self, kind: Kind) -> bool {
        let next = match *self {
            Slot::Open => Slot::Is(kind),
            Slot::Is(known) if known != kind => Slot::Mixed,
            Slot::Is(_) | Slot::Mixed => return false,
        };
        *self = next;
        true
    }

    /// The kind, if there is exactly one.
    fn kind(self) -> Option<Kind> {
        match self {
            Slot::Is(kind) => Some(kind),
            Slot::Open | Slot::Mixed => None,
        }
    }
}

/// The kinds of a rule's variables.
type Env = HashMap<String, Slot>;

/// A token the checker locates problems by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Lit {
    /// A string literal, unescaped.
    Str(String),
    /// An attribute or method name after a `.`.
    Attr(String),
}

/// One parsed policy file.
struct PolicyFile<'s> {
    /// Display name.
    name: &'s str,
    /// Text.
    text: &'s str,
    /// String literals and attribute names, with their byte offsets, in source order.
    lits: Vec<(usize, Lit)>,
    /// Each rule, with the span of text from its head to the next rule.
    rules: Vec<(Rule, Range<usize>)>,
}

impl<'s> PolicyFile<'s> {
    /// Indexes a parsed file.
    fn new(name: &'s str, text: &'s str, lines: Vec<Line>) -> Self {
        let rules: Vec<Rule> = lines
            .into_iter()
            .filter_map(|line| match line {
                Line::Rule(rule) => Some(rule),
                _ => None,
            })
            .collect();
        let starts: Vec<usize> = rules
            .iter()
            .map(|rule| match &rule.source_info {
                SourceInfo::Parser(context) => context.left,
                _ => 0,
            })
            .collect();
        let ends = starts.iter().skip(1).copied().chain([text.len()]);
        let regions = starts.iter().zip(ends).map(|(&start, end)| start..end);
        PolicyFile {
            name,
            text,
            lits: scan(text).lits,
            rules: rules.into_iter().zip(regions).collect(),
        }
    }
}

/// The vocabulary of a policy set and what inference learned about its helper rules.
struct Checker {
    /// Roles the policy declares.
    roles: Vec<String>,
    /// Topics the policy declares.
    topics: Vec<String>,
    /// Channels the policy declares.
    channels: Vec<String>,
    /// Parameter kinds of helper rules, by name and arity.
    helpers: HashMap<(String, usize), Vec<Slot>>,
}

impl Checker {
    /// The roles and topics the files declare, with nothing inferred yet.
    fn declared(files: &[PolicyFile]) -> Self {
        let mut checker = Checker {
            roles: Vec::new(),
            topics: Vec::new(),
            channels: Vec::new(),
            helpers: HashMap::new(),
        };
        for (rule, _) in files.iter().flat_map(|file| &file.rules) {
            let list = match (rule.name.0.as_str(), rule.params.len()) {
                ("role", 2) => &mut checker.roles,
                ("topic", 1) => &mut checker.topics,
                ("channel", 1) => &mut checker.channels,
                _ => continue,
            };
            if let Some(Value::String(word)) = rule.params.first().map(|p| p.parameter.value()) {
                list.push(word.clone());
            }
        }
        checker
    }

    /// Infers the kinds of helper parameters from their calls, until a fixpoint.
    fn infer(&mut self, files: &[PolicyFile]) {
        loop {
            let mut found = Vec::new();
            for (rule, _) in files.iter().flat_map(|file| &file.rules) {
                let env = self.env(rule);
                let mut calls = Vec::new();
                calls_in(&rule.body, &mut calls);
                for call in calls {
                    let arity = call.args.len();
                    if signature(&call.name.0, arity).is_some() {
                        continue;
                    }
                    for (i, arg) in call.args.iter().enumerate() {
                        if let Some(kind) = kind_of(arg, &env) {
                            found.push((call.name.0.clone(), arity, i, kind));
                        }
                    }
                }
            }
            let mut changed = false;
            for (name, arity, i, kind) in found {
                let slots = self
                    .helpers
                    .entry((name, arity))
                    .or_insert_with(|| vec![Slot::Open; arity]);
                if let Some(slot) = slots.get_mut(i) {
                    changed |= slot.add(kind);
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// The kind of parameter `i` of rule `name/arity`: fixed for the rules the host asks
    /// about, inferred for helpers.
    fn param_kind(&self, name: &str, arity: usize, i: usize) -> Option<Kind> {
        match signature(name, arity) {
            Some(kinds) => kinds.get(i).copied().flatten(),
            None => self
                .helpers
                .get(&(name.to_owned(), arity))
                .and_then(|slots| slots.get(i))
                .and_then(|slot| slot.kind()),
        }
    }

    /// The kinds of a rule's variables: head parameters (an `Agent`/`Ticket` specializer
    /// first, else the parameter's kind), then variables the body binds to kinded terms.
    fn env(&self, rule: &Rule) -> Env {
        let mut env = Env::new();
        let arity = rule.params.len();
        for (i, param) in rule.params.iter().enumerate() {
            if let Value::Variable(var) = param.parameter.value() {
                let kind = param
                    .specializer
                    .as_ref()
                    .and_then(class_kind)
                    .or_else(|| self.param_kind(&rule.name.0, arity, i));
                if let Some(kind) = kind {
                    env.entry(var.0.clone()).or_insert(Slot::Open).add(kind);
                }
            }
        }
        while bind_locals(&rule.body, &mut env) {}
        env
    }

    /// The words of a kind; `None` for kinds that are not words.
    fn words(&self, kind: Kind) -> Option<Vec<&str>> {
        fn all<T: Copy>(items: &[T], word: fn(T) -> &'static str) -> Vec<&'static str> {
            items.iter().map(|&item| word(item)).collect()
        }
        Some(match kind {
            Kind::Subject => {
                let mut words = all(&DataClass::ALL, DataClass::as_str);
                words.extend(all(&Field::ALL, Field::graphql_name));
                words
            }
            Kind::Level => all(&Access::ALL, Access::as_str),
            Kind::Reveal => all(&RevealOption::ALL, RevealOption::as_str),
            Kind::Status => all(&TicketStatus::ALL, TicketStatus::as_str),
            Kind::TicketScope => all(&TicketScope::ALL, TicketScope::as_str),
            Kind::AuditScope => all(&AuditScope::ALL, AuditScope::as_str),
            Kind::Role => self.roles.iter().map(String::as_str).collect(),
            Kind::Topic => self.topics.iter().map(String::as_str).collect(),
            Kind::Channel => self.channels.iter().map(String::as_str).collect(),
            Kind::Action => asked(|_| true, |p| p.action()),
            Kind::Resource => asked(|_| true, |p| named(p.resource()).unwrap_or_default()),
            Kind::Topics | Kind::Agent | Kind::Ticket => return None,
        })
    }

    /// Why `word` cannot sit where a word of `kind` is expected, if it cannot.
    fn unknown(&self, word: &str, kind: Kind) -> Option<String> {
        let known = self.words(kind)?;
        let (noun, plural) = kind.nouns();
        (!known.contains(&word))
            .then(|| format!("unknown {noun} {word:?}{}", hint(word, &known, plural)))
    }

    /// The problems of one rule.
    fn check(&self, file: &PolicyFile, rule: &Rule, region: Range<usize>) -> Vec<Problem> {
        let mut check = RuleCheck {
            checker: self,
            file,
            region,
            env: self.env(rule),
            seen: HashMap::new(),
            problems: Vec::new(),
        };
        check.head(rule);
        check.visit(&rule.body, None);
        check.problems
    }
}

/// The check of one rule, walking its terms in source order.
struct RuleCheck<'c, 'f> {
    /// Vocabulary and inferred kinds.
    checker: &'c Checker,
    /// The rule's file.
    file: &'f PolicyFile<'f>,
    /// The rule's text.
    region: Range<usize>,
    /// The rule's variables.
    env: Env,
    /// How often each token has been walked past, to find the next one in the text.
    seen: HashMap<Lit, usize>,
    /// What is wrong so far.
    problems: Vec<Problem>,
}

impl RuleCheck<'_, '_> {
    /// Checks the head's parameters against their kinds; `allow` checks its grant as a pair.
    fn head(&mut self, rule: &Rule) {
        let (name, arity) = (rule.name.0.as_str(), rule.params.len());
        if let ("allow", [agent, action, resource]) = (name, rule.params.as_slice()) {
            self.visit(&agent.parameter, Some(Kind::Agent));
            self.grant(action, resource);
            return;
        }
        for (i, param) in rule.params.iter().enumerate() {
            self.visit(&param.parameter, self.checker.param_kind(name, arity, i));
        }
    }

    /// Checks `allow(_, action, resource)`: a literal action with a literal or `Ticket`
    /// resource must be a permission the host asks about.
    fn grant(&mut self, action: &Parameter, resource: &Parameter) {
        let Value::String(word) = action.parameter.value() else {
            self.visit(&action.parameter, Some(Kind::Action));
            self.visit(&resource.parameter, Some(Kind::Resource));
            return;
        };
        let lit = Lit::Str(word.clone());
        let nth = self.count(&lit);
        let message = match resource.parameter.value() {
            Value::String(name) => {
                self.count(&Lit::Str(name.clone()));
                grant_problem(word, Some(name))
            }
            _ if kind_of(&resource.parameter, &self.env) == Some(Kind::Ticket) => {
                grant_problem(word, None)
            }
            _ => {
                self.visit(&resource.parameter, Some(Kind::Resource));
                self.checker.unknown(word, Kind::Action)
            }
        };
        if let Some(message) = message {
            self.report(&lit, nth, message);
        }
    }

    /// Walks `term`, checking string literals against `expect`.
    fn visit(&mut self, term: &Term, expect: Option<Kind>) {
        match term.value() {
            Value::String(word) => {
                let lit = Lit::Str(word.clone());
                let nth = self.count(&lit);
                if let Some(message) = expect.and_then(|kind| self.checker.unknown(word, kind)) {
                    self.report(&lit, nth, message);
                }
            }
            Value::List(items) => {
                for item in items {
                    self.visit(item, expect.and_then(Kind::element));
                }
            }
            Value::Call(call) => {
                let arity = call.args.len();
                for (i, arg) in call.args.iter().enumerate() {
                    self.visit(arg, self.checker.param_kind(&call.name.0, arity, i));
                }
            }
            Value::Expression(op) => match (op.operator, op.args.as_slice()) {
                (Operator::Dot, [base, attr]) => {
                    self.visit(base, None);
                    self.attribute(base, attr);
                }
                (Operator::Unify | Operator::Eq | Operator::Neq, [left, right]) => {
                    let (left_kind, right_kind) =
                        (kind_of(left, &self.env), kind_of(right, &self.env));
                    self.visit(left, right_kind);
                    self.visit(right, left_kind);
                }
                (Operator::In, [item, list]) => {
                    let (item_kind, list_kind) =
                        (kind_of(item, &self.env), kind_of(list, &self.env));
                    self.visit(item, list_kind.and_then(Kind::element));
                    match list.value() {
                        Value::List(items) => items.iter().for_each(|i| self.visit(i, item_kind)),
                        _ => self.visit(list, None),
                    }
                }
                _ => op.args.iter().for_each(|arg| self.visit(arg, None)),
            },
            Value::Dictionary(dict) | Value::Pattern(Pattern::Dictionary(dict)) => {
                dict.fields.values().for_each(|v| self.visit(v, None));
            }
            Value::Pattern(Pattern::Instance(instance)) => {
                instance
                    .fields
                    .fields
                    .values()
                    .for_each(|v| self.visit(v, None));
            }
            _ => {}
        }
    }

    /// Checks that `base.attr` reads an attribute `base`'s class has.
    fn attribute(&mut self, base: &Term, attr: &Term) {
        let (name, args) = match attr.value() {
            Value::String(name) => (name, &[][..]),
            Value::Call(call) => (&call.name.0, call.args.as_slice()),
            _ => return self.visit(attr, None),
        };
        let lit = Lit::Attr(name.clone());
        let nth = self.count(&lit);
        let base_kind = kind_of(base, &self.env);
        if let Some((class, _, known)) = CLASSES.iter().find(|c| Some(c.1) == base_kind) {
            if !known.contains(&name.as_str()) {
                self.report(&lit, nth, attribute_problem(class, known, name));
            }
        }
        args.iter().for_each(|arg| self.visit(arg, None));
    }

    /// Counts `lit` as walked past; which occurrence in the rule it is.
    fn count(&mut self, lit: &Lit) -> usize {
        let seen = self.seen.entry(lit.clone()).or_insert(0);
        *seen += 1;
        *seen - 1
    }

    /// Records a problem at the `nth` occurrence of `lit` in the rule (at the rule's first
    /// line if the text does not show it).
    fn report(&mut self, lit: &Lit, nth: usize, message: String) {
        let offset = self
            .file
            .lits
            .iter()
            .filter(|(at, found)| self.region.contains(at) && found == lit)
            .nth(nth)
            .map_or(self.region.start, |(at, _)| *at);
        self.problems.push(Problem {
            file: self.file.name.to_owned(),
            line: line_at(self.file.text, offset),
            message,
        });
    }
}

/// The kind of a term: a variable of known kind or an attribute of known kind.
fn kind_of(term: &Term, env: &Env) -> Option<Kind> {
    match term.value() {
        Value::Variable(var) => env.get(&var.0).and_then(|slot| slot.kind()),
        Value::Expression(op) => match (op.operator, op.args.as_slice()) {
            (Operator::Dot, [_, attr]) => match attr.value() {
                Value::String(name) => Kind::of_attribute(name),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// `Agent` or `Ticket`, from a specializer or a `matches` pattern.
fn class_kind(pattern: &Term) -> Option<Kind> {
    match pattern.value() {
        Value::Pattern(Pattern::Instance(instance)) => CLASSES
            .iter()
            .find(|(class, _, _)| instance.tag.0 == *class)
            .map(|(_, kind, _)| *kind),
        _ => None,
    }
}

/// Gives kinds to variables the body binds (`x = agent.role`, `x in agent.queues`,
/// `x matches Ticket`); whether anything changed.
fn bind_locals(term: &Term, env: &mut Env) -> bool {
    let Value::Expression(op) = term.value() else {
        return false;
    };
    let mut bound = Vec::new();
    match (op.operator, op.args.as_slice()) {
        (Operator::Unify | Operator::Eq | Operator::Assign, [left, right]) => {
            bound.push((left, kind_of(right, env)));
            bound.push((right, kind_of(left, env)));
        }
        (Operator::In, [item, list]) => {
            bound.push((item, kind_of(list, env).and_then(Kind::element)));
        }
        (Operator::Isa, [item, class]) => bound.push((item, class_kind(class))),
        _ => {}
    }
    let mut changed = false;
    for (term, kind) in bound {
        if let (Value::Variable(var), Some(kind)) = (term.value(), kind) {
            changed |= env.entry(var.0.clone()).or_insert(Slot::Open).add(kind);
        }
    }
    for arg in &op.args {
        changed |= bind_locals(arg, env);
    }
    changed
}

/// The rule calls in a body (not method calls, which follow a `.`).
fn calls_in<'t>(term: &'t Term, calls: &mut Vec<&'t Call>) {
    match term.value() {
        Value::Call(call) => {
            calls.push(call);
            call.args.iter().for_each(|arg| calls_in(arg, calls));
        }
        Value::Expression(op) => match (op.operator, op.args.as_slice()) {
            (Operator::Dot, [base, _]) => calls_in(base, calls),
            _ => op.args.iter().for_each(|arg| calls_in(arg, calls)),
        },
        _ => {}
    }
}

/// The resource name of a named resource.
fn named(resource: Resource) -> Option<&'static str> {
    match resource {
        Resource::Named(name) => Some(name),
        Resource::Ticket => None,
    }
}

/// `word` of each permission the host asks about that `keep` accepts, each once.
fn asked(
    keep: impl Fn(Permission) -> bool,
    word: impl Fn(Permission) -> &'static str,
) -> Vec<&'static str> {
    let mut words = Vec::new();
    for permission in Permission::ALL.into_iter().filter(|&p| keep(p)) {
        let word = word(permission);
        if !word.is_empty() && !words.contains(&word) {
            words.push(word);
        }
    }
    words
}

/// Why `allow` may not grant `action` on `resource` (a named resource, or a ticket when
/// `None`), if it may not.
fn grant_problem(action: &str, resource: Option<&str>) -> Option<String> {
    let on = |p: Permission| match (p.resource(), resource) {
        (Resource::Ticket, None) => true,
        (Resource::Named(name), Some(wanted)) => name == wanted,
        _ => false,
    };
    let actions = asked(on, Permission::action);
    if actions.contains(&action) {
        return None;
    }
    let (target, hint) = match resource {
        None => (
            "a ticket".to_owned(),
            hint(action, &actions, "actions on a ticket"),
        ),
        Some(name) if !actions.is_empty() => {
            let plural = format!("actions on {name:?}");
            (format!("{name:?}"), hint(action, &actions, &plural))
        }
        Some(name) => {
            let resources = asked(|_| true, |p| named(p.resource()).unwrap_or_default());
            (format!("{name:?}"), hint(name, &resources, "resources"))
        }
    };
    Some(format!(
        "allow grants {action:?} on {target}, which the service never asks about{hint}"
    ))
}

/// `CLASS has no attribute 'NAME' (known: …)`, with a did-you-mean when one is close.
fn attribute_problem(class: &str, known: &[&str], name: &str) -> String {
    let guess = closest(name, known)
        .map(|word| format!("; did you mean '{word}'?"))
        .unwrap_or_default();
    format!(
        "{class} has no attribute '{name}' (known: {}){guess}",
        known.join(", ")
    )
}

/// ` (did you mean "W"?)` for the closest known word, else ` (known PLURAL: …)` when there
/// are at most ten, else nothing.
fn hint(word: &str, known: &[&str], plural: &str) -> String {
    match closest(word, known) {
        Some(guess) => format!(" (did you mean {guess:?}?)"),
        None if !known.is_empty() && known.len() <= 10 => {
            format!(" (known {plural}: {})", known.join(", "))
        }
        None => String::new(),
    }
}

/// The known word closest to `word`, if it is close: at most two edits (fewer than the
/// word's length), or 80% similar, ignoring case.
fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let word = word.to_lowercase();
    known
        .iter()
        .map(|&candidate| {
            let lower = candidate.to_lowercase();
            let edits = strsim::damerau_levenshtein(&word, &lower);
            let similar = strsim::normalized_damerau_levenshtein(&word, &lower);
            (edits, similar, candidate)
        })
        .min_by_key(|&(edits, _, _)| edits)
        .filter(|&(edits, similar, _)| {
            (edits <= 2 && edits < word.chars().count()) || similar >= 0.8
        })
        .map(|(_, _, candidate)| candidate)
}

/// The 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

/// What a scan of a policy text finds outside comments.
struct Scan {
    /// String literals and attribute names, with their byte offsets.
    lits: Vec<(usize, Lit)>,
    /// Statements: where each starts, and where its `;` is (`None` for an unfinished one).
    statements: Vec<(usize, Option<usize>)>,
}

/// Scans a policy text for literals and statements, skipping `#` comments.
fn scan(text: &str) -> Scan {
    let mut lits = Vec::new();
    let mut statements = Vec::new();
    let mut open = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == '#' {
            while chars.next_if(|&(_, c)| c != '\n').is_some() {}
            continue;
        }
        let start = *open.get_or_insert(at);
        match c {
            ';' => {
                statements.push((start, Some(at)));
                open = None;
            }
            '"' => {
                let mut word = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some((_, 'n')) => word.push('\n'),
                            Some((_, 't')) => word.push('\t'),
                            Some((_, 'r')) => word.push('\r'),
                            Some((_, '0')) => word.push('\0'),
                            Some((_, escaped)) => word.push(escaped),
                            None => {}
                        },
                        c => word.push(c),
                    }
                }
                lits.push((at, Lit::Str(word)));
            }
            '.' => {
                while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
                if chars
                    .peek()
                    .is_some_and(|&(_, c)| c.is_alphabetic() || c == '_')
                {
                    let mut name = String::new();
                    while let Some((_, c)) =
                        chars.next_if(|&(_, c)| c.is_alphanumeric() || c == '_')
                    {
                        name.push(c);
                    }
                    lits.push((at, Lit::Attr(name)));
                }
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        statements.push((start, None));
    }
    Scan { lits, statements }
}

/// Where Polar says an error is: `REASON at line N, column M[ of file F]`.
struct Location<'m> {
    /// The message before the position.
    reason: &'m str,
    /// 1-based line.
    line: usize,
    /// 1-based column.
    column: usize,
    /// The file, when Polar names one.
    file: Option<&'m str>,
}

/// The position in the first line of a Polar message.
fn location(message: &str) -> Option<Location<'_>> {
    let first = message.lines().next()?;
    let (reason, rest) = first.rsplit_once(" at line ")?;
    let (line, rest) = rest.split_once(", column ")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (column, rest) = rest.split_at(digits);
    let file = rest
        .strip_prefix(" of file ")
        .map(|file| file.strip_suffix(':').unwrap_or(file));
    Some(Location {
        reason,
        line: line.parse().ok()?,
        column: column.parse().ok()?,
        file,
    })
}

/// The source Polar names (by display name or path suffix), or the only one.
fn source_named<'s>(
    file: Option<&str>,
    sources: &'s [(String, String)],
) -> Option<&'s (String, String)> {
    match file {
        Some(file) => sources.iter().find(|(name, _)| name == file).or_else(|| {
            sources
                .iter()
                .find(|(name, _)| name.ends_with(file) || file.ends_with(name.as_str()))
        }),
        None => match sources {
            [only] => Some(only),
            _ => None,
        },
    }
}

/// For a parse error at the first token of a line, or at the end of the file: the statement
/// that began on an earlier line and never reached its `;`.
fn unfinished_rule(message: &str, sources: &[(String, String)]) -> Option<String> {
    let at = location(message)?;
    let end_of_file = at.reason.starts_with("hit the end of the file");
    if !end_of_file && !at.reason.starts_with("did not expect to find the token") {
        return None;
    }
    let (name, text) = source_named(at.file, sources)?;
    let statements = scan(text).statements;
    let start = if end_of_file {
        match statements.last()? {
            (start, None) => *start,
            (_, Some(_)) => return None,
        }
    } else {
        let line = text.lines().nth(at.line.checked_sub(1)?)?;
        let before: String = line.chars().take(at.column.saturating_sub(1)).collect();
        if !before.trim().is_empty() {
            return None;
        }
        let (start, _) = statements.iter().find(|(start, end)| {
            line_at(text, *start) < at.line && end.is_none_or(|end| line_at(text, end) >= at.line)
        })?;
        *start
    };
    Some(format!(
        "{name}:{}: this rule is not finished: a ';' is probably missing at its end \
         (Polar stopped at line {}, column {}: {})",
        line_at(text, start),
        at.line,
        at.column,
        at.reason
    ))
}

/// `CLASS has no attribute 'NAME' (known: …)` for a message about an unknown attribute, with
/// its position when the message has one.
fn unknown_attribute(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let name = lower.match_indices("attribute").find_map(|(at, word)| {
        let rest = message.get(at + word.len()..)?.trim_start();
        let rest = rest.trim_start_matches(['\'', '"', '`']);
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = rest.get(..end)?;
        (!name.is_empty() && !name.eq_ignore_ascii_case("not")).then_some(name)
    })?;
    let mentioned = CLASSES
        .iter()
        .find(|(class, _, _)| lower.contains(&format!("type {}", class.to_ascii_lowercase())));
    let (class, _, known) = match mentioned {
        Some(class) => *class,
        None => {
            // No class named: the one lacking the attribute, or the one with a close one.
            let lacking: Vec<_> = CLASSES.iter().filter(|c| !c.2.contains(&name)).collect();
            let close: Vec<_> = lacking
                .iter()
                .copied()
                .filter(|c| closest(name, c.2).is_some())
                .collect();
            match (close.as_slice(), lacking.as_slice()) {
                ([class], _) | ([], [class]) => **class,
                _ => return None,
            }
        }
    };
    if known.contains(&name) {
        return None;
    }
    let position = location(message).map_or(String::new(), |at| match at.file {
        Some(file) => format!("{file}:{}: ", at.line),
        None => format!("line {}: ", at.line),
    });
    Some(format!(
        "{position}{}",
        attribute_problem(class, known, name)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy the service ships.
    const SHIPPED: &str = include_str!("../../policies/main.polar");

    /// The problems of one file named `main.polar`, as printed.
    fn problems(text: &str) -> Vec<String> {
        lint(&[("main.polar".to_owned(), text.to_owned())])
            .iter()
            .map(Problem::to_string)
            .collect()
    }

    /// The shipped policy with `from` replaced by `to` once (which must be there).
    fn shipped_with(from: &str, to: &str) -> String {
        assert!(SHIPPED.contains(from), "{from}");
        SHIPPED.replacen(from, to, 1)
    }

    /// The 1-based line of the first line of `text` containing `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .map_or(0, |i| i + 1)
    }

    #[test]
    fn the_shipped_policy_has_no_problems() {
        assert_eq!(problems(SHIPPED), Vec::<String>::new());
    }

    #[test]
    fn a_misspelled_class_in_a_helper_is_refused_with_a_suggestion() {
        let text = shipped_with(
            r#"assignee_access("frontline", "shipping", "address""#,
            r#"assignee_access("frontline", "shipping", "adress""#,
        );
        let line = line_of(&text, "\"adress\"");
        assert_eq!(
            problems(&text),
            [format!(
                r#"main.polar:{line}: unknown data class or field "adress" (did you mean "address"?)"#
            )]
        );
    }

    #[test]
    fn a_misspelled_class_in_a_field_access_head_is_refused() {
        let text = format!(
            "{SHIPPED}\nfield_access(_agent: Agent, _ticket: Ticket, \"identiy\", \"PLAIN\", \"NONE\");\n"
        );
        let line = line_of(&text, "\"identiy\"");
        assert_eq!(
            problems(&text),
            [format!(
                r#"main.polar:{line}: unknown data class or field "identiy" (did you mean "identity"?)"#
            )]
        );
    }

    #[test]
    fn a_misspelled_role_is_refused_in_a_comparison_and_in_a_helper_head() {
        let text = shipped_with(
            r#"ticket_scope(agent: Agent, "team") if agent.role = "supervisor";"#,
            r#"ticket_scope(agent: Agent, "team") if agent.role = "biling";"#,
        );
        let text = text.replacen(
            r#"assignee_access("billing", "billing", "name""#,
            r#"assignee_access("biling", "billing", "name""#,
            1,
        );
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("\"biling\""))
            .map(|(i, _)| i + 1)
            .collect();
        let message = r#"unknown role "biling" (did you mean "billing"?)"#;
        assert_eq!(
            problems(&text),
            lines
                .iter()
                .map(|line| format!("main.polar:{line}: {message}"))
                .collect::<Vec<_>>()
        );
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn a_misspelled_topic_in_a_helper_list_is_refused() {
        let text = shipped_with(
            r#"["account_access", "technical", "shipping"]"#,
            r#"["account_access", "privacy_requst", "shipping"]"#,
        );
        let line = line_of(&text, "privacy_requst");
        assert_eq!(
            problems(&text),
            [format!(
                r#"main.polar:{line}: unknown topic "privacy_requst" (did you mean "privacy_request"?)"#
            )]
        );
    }

    #[test]
    fn a_misspelled_level_and_an_unknown_status_are_refused() {
        let text = shipped_with(
            r#"supervisor_access("name", "PLAIN", "NONE");"#,
            r#"supervisor_access("name", "PLAN", "NONE");"#,
        );
        let text = format!("{text}\nallow(_agent: Agent, \"set_status\", ticket: Ticket) if ticket.status = \"reopened\";\n");
        let found = problems(&text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].ends_with(r#"unknown access level "PLAN" (did you mean "PLAIN"?)"#));
        assert!(found[1].ends_with(
            r#"unknown ticket status "reopened" (known ticket statuses: open, pending, resolved, closed)"#
        ));
    }

    #[test]
    fn an_unknown_ticket_attribute_is_named_with_the_known_ones() {
        let text = shipped_with("ticket.topic, class", "ticket.topik, class");
        let line = line_of(&text, "ticket.topik");
        assert_eq!(
            problems(&text),
            [format!(
                "main.polar:{line}: Ticket has no attribute 'topik' (known: topic, status, \
                 assigned_to_me, unassigned, in_my_team); did you mean 'topic'?"
            )]
        );
    }

    #[test]
    fn a_misspelled_action_and_an_unasked_pair_are_refused() {
        let text = shipped_with(
            r#"allow(agent: Agent, "approve_reveal", ticket: Ticket)"#,
            r#"allow(agent: Agent, "approve_revael", ticket: Ticket)"#,
        );
        let text = format!(
            "{text}\nallow(agent: Agent, \"read\", \"customer_data\") if agent.role = \"admin\";\n"
        );
        let found = problems(&text);
        let (first, last) = (
            line_of(&text, "approve_revael"),
            line_of(&text, "\"read\", \"customer_data\""),
        );
        assert_eq!(
            found,
            [
                format!(
                    r#"main.polar:{first}: allow grants "approve_revael" on a ticket, which the service never asks about (did you mean "approve_reveal"?)"#
                ),
                format!(
                    r#"main.polar:{last}: allow grants "read" on "customer_data", which the service never asks about (known actions on "customer_data": export, erase)"#
                ),
            ]
        );
    }

    #[test]
    fn a_misspelled_resource_is_refused_with_a_suggestion() {
        let text = shipped_with(
            r#"allow(agent: Agent, "read", "access_report")"#,
            r#"allow(agent: Agent, "read", "acess_report")"#,
        );
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].ends_with(
            r#"allow grants "read" on "acess_report", which the service never asks about (did you mean "access_report"?)"#
        ));
    }

    #[test]
    fn a_field_level_rule_is_accepted() {
        let text = format!(
            "{SHIPPED}\nfield_access(agent: Agent, ticket: Ticket, \"dateOfBirth\", \"HIDDEN\", \"NONE\") if\n    agent.role = \"frontline\" and ticket.assigned_to_me;\n"
        );
        assert_eq!(problems(&text), Vec::<String>::new());
    }

    #[test]
    fn comments_role_labels_and_unkinded_strings_are_never_flagged() {
        let text = format!(
            "{SHIPPED}\n# \"adress\" and agent.role = \"biling\" in a comment\nrole(\"courier\", \"a biling adress\");\nnote(\"adress\");\n"
        );
        assert_eq!(problems(&text), Vec::<String>::new());
    }

    #[test]
    fn a_parameter_given_two_kinds_is_left_unchecked() {
        let text = format!(
            "{SHIPPED}\nticket_scope(agent: Agent, \"team\") if either(agent.role);\naudit_scope(_agent: Agent, \"all\") if either(\"x\");\nfield_access(_agent: Agent, ticket: Ticket, \"name\", \"PLAIN\", \"NONE\") if either(ticket.topic);\neither(\"whatever\");\n"
        );
        assert_eq!(problems(&text), Vec::<String>::new());
    }

    #[test]
    fn two_files_share_their_vocabulary() {
        let roles = "role(\"courier\", \"a courier\");\ntopic(\"parcels\");\n".to_owned();
        let rules = "ticket_scope(agent: Agent, \"assigned\") if agent.role = \"courier\";\n\
                     ticket_scope(agent: Agent, \"queue\") if \"parcels\" in agent.queues and agent.role = \"couriers\";\n"
            .to_owned();
        let found: Vec<String> = lint(&[
            ("roles.polar".to_owned(), roles),
            ("rules.polar".to_owned(), rules),
        ])
        .iter()
        .map(Problem::to_string)
        .collect();
        assert_eq!(
            found,
            [r#"rules.polar:2: unknown role "couriers" (did you mean "courier"?)"#]
        );
    }

    /// Polar's own message for `text`, which must not parse.
    fn parse_error(text: &str) -> String {
        let source = Source {
            filename: Some("main.polar".to_owned()),
            src: text.to_owned(),
        };
        match parse_lines(source) {
            Ok(_) => panic!("parses"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_missing_semicolon_points_at_the_unfinished_rule() {
        let unfinished =
            r#"allow(agent: Agent, "export", "customer_data") if agent.role = "admin""#;
        let text = shipped_with(&format!("{unfinished};"), unfinished);
        let message = parse_error(&text);
        let (rule, next) = (
            line_of(&text, unfinished),
            line_of(&text, r#"allow(agent: Agent, "erase""#),
        );
        assert!(
            message.contains(&format!("at line {next}, column 1")),
            "{message}"
        );
        let sources = [("main.polar".to_owned(), text)];
        assert_eq!(
            explain_polar_error(&message, &sources),
            format!(
                "main.polar:{rule}: this rule is not finished: a ';' is probably missing at its \
                 end (Polar stopped at line {next}, column 1: did not expect to find the token 'allow')"
            )
        );
        assert!(lint(&sources).is_empty());
    }

    #[test]
    fn a_missing_semicolon_at_the_end_of_the_file_points_at_the_last_rule() {
        let text = "topic(\"a\");\n\nf(x) if\n    x = 1\n";
        let message = parse_error(text);
        let explained =
            explain_polar_error(&message, &[("main.polar".to_owned(), text.to_owned())]);
        assert!(
            explained.starts_with("main.polar:3: this rule is not finished"),
            "{explained}"
        );
    }

    #[test]
    fn other_polar_errors_are_returned_unchanged() {
        let text = "f(x) if x = = 1;\n";
        let message = parse_error(text);
        let sources = [("main.polar".to_owned(), text.to_owned())];
        assert_eq!(explain_polar_error(&message, &sources), message);
        assert_eq!(
            explain_polar_error("no such file", &sources),
            "no such file"
        );
    }

    #[test]
    fn runtime_attribute_errors_name_the_class_and_its_attributes() {
        let ticket = "Ticket has no attribute 'topik' (known: topic, status, assigned_to_me, \
                      unassigned, in_my_team); did you mean 'topic'?";
        assert_eq!(
            explain_runtime_error("Application error: Attribute topik not found on type Ticket."),
            ticket
        );
        assert_eq!(
            explain_runtime_error("oso::host::value::PolarValue TYPE has NO ATTRIBUTE 'topik'"),
            ticket
        );
        assert_eq!(
            explain_runtime_error(
                "Application error: attribute `rol` not found at line 4, column 9 of file main.polar:\n\t..."
            ),
            "main.polar:4: Agent has no attribute 'rol' (known: role, team, queues); did you mean 'role'?"
        );
        assert_eq!(
            explain_runtime_error("Attribute team not found on type Ticket."),
            "Ticket has no attribute 'team' (known: topic, status, assigned_to_me, unassigned, in_my_team)"
        );
        assert_eq!(explain_runtime_error("query timed out"), "query timed out");
    }
}
