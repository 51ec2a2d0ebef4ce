//! Oso (Polar) policies: loading, checking, and the cached decisions every protected field
//! and every ticket list relies on.
//!
//! The policy in `policies/*.polar` is the single source of truth for access. This module is
//! mechanism only: it hands the policy what it may read about the agent and the ticket
//! ([`AgentFacts`], [`TicketFacts`]) and turns the answers into [`Decision`]s and
//! [`TicketScope`]s. Rust code never decides access by a role or topic name.
//!
//! Decisions are cached per policy set on everything the policy can read, so a page of 50
//! tickets costs hash look-ups, not Polar evaluations. Reloading builds a new [`PolicySet`]
//! (with an empty cache) and swaps it in atomically.

pub mod admin;
pub mod cases;
pub mod coverage;
pub mod diff;
pub mod lint;
pub mod model;
pub mod reload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use oso::{Oso, PolarClass, PolarValue};

pub use crate::vocabulary::is_word;
pub use model::{
    Access, AuditScope, DataClass, Decided, Decision, Decisions, Field, HandOff, RevealOption,
    Subject, TicketScope, UnknownWord,
};

/// What the policy may read about the agent asking (`Agent` in Polar).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PolarClass)]
#[polar(class_name = "Agent")]
pub struct AgentFacts {
    /// The agent's role, a word of the policy's role vocabulary.
    #[polar(attribute)]
    pub role: String,
    /// The agent's team.
    #[polar(attribute)]
    pub team: String,
    /// The topics whose unassigned tickets the agent may pick up.
    #[polar(attribute)]
    pub queues: Vec<String>,
}

/// What the policy may read about a ticket, as seen by one agent (`Ticket` in Polar).
///
/// Relations are precomputed booleans because Polar does not compare `Option` attributes
/// with plain values: `ticket.assignee = agent.id` is false even when both are 7.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PolarClass)]
#[polar(class_name = "Ticket")]
pub struct TicketFacts {
    /// The ticket's topic.
    #[polar(attribute)]
    pub topic: String,
    /// `open`, `pending`, `resolved` or `closed`.
    #[polar(attribute)]
    pub status: String,
    /// The asking agent is the assignee.
    #[polar(attribute)]
    pub assigned_to_me: bool,
    /// Nobody is assigned.
    #[polar(attribute)]
    pub unassigned: bool,
    /// The ticket belongs to the asking agent's team.
    #[polar(attribute)]
    pub in_my_team: bool,
}

impl TicketFacts {
    /// What the policy may read about `row` when the agent `agent_id` of `team` asks.
    pub fn of(row: &entity::ticket::Model, agent_id: i32, team: &str) -> TicketFacts {
        TicketFacts {
            topic: row.topic.clone(),
            status: row.status.clone(),
            assigned_to_me: row.assignee_id == Some(agent_id),
            unassigned: row.assignee_id.is_none(),
            in_my_team: row.team == team,
        }
    }
}

/// A role of the policy's vocabulary and how a hand-off names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleInfo {
    /// The role as agents carry it, e.g. `billing`.
    pub name: String,
    /// How a sentence names someone with the role, e.g. `a billing specialist`.
    pub label: String,
}

/// The words a policy set defines: roles and topics are data, extended by editing policies.
#[derive(Clone, Debug, Default)]
pub struct Vocabulary {
    /// The roles, in policy order.
    pub roles: Vec<RoleInfo>,
    /// The topics, in policy order.
    pub topics: Vec<String>,
    /// The channels tickets arrive through (`channel(name)` facts), in policy order; none
    /// when the policy declares none, and then no ticket can be opened.
    pub channels: Vec<String>,
}

impl Vocabulary {
    /// Whether `role` is a role of the policy.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.name == role)
    }

    /// Whether `topic` is a topic of the policy.
    pub fn has_topic(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t == topic)
    }

    /// Whether `channel` is a channel of the policy.
    pub fn has_channel(&self, channel: &str) -> bool {
        self.channels.iter().any(|c| c == channel)
    }
}

/// Why a policy set could not be loaded. The message names file and line where Polar does.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy directory could not be read.
    #[error("cannot read policies in {dir}: {source}")]
    Read {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The directory has no `.polar` file.
    #[error("no .polar files in {0}")]
    Empty(PathBuf),
    /// Polar rejected the files.
    #[error("{0}")]
    Polar(String),
    /// The policy loaded but answers with words the host does not know.
    #[error("{0}")]
    Invalid(String),
}

/// A (topic, class or field) pair whose hand-off roles are cached.
type HandOffKey = (String, Subject);

/// One loaded, checked policy set with its decision caches.
pub struct PolicySet {
    oso: Oso,
    vocabulary: Vocabulary,
    files: Vec<PathBuf>,
    version: String,
    /// Fields whose schema name appears as a string in the policy: only these can have
    /// field-level rules, so only these are asked about one by one.
    named_fields: Vec<Field>,
    /// By agent, then by ticket: found without copying either's facts into a key, once
    /// for every ticket a page shows.
    decisions: RwLock<HashMap<AgentFacts, HashMap<TicketFacts, Arc<Decided>>>>,
    scopes: RwLock<HashMap<AgentFacts, Arc<[TicketScope]>>>,
    audit_scopes: RwLock<HashMap<AgentFacts, Arc<[AuditScope]>>>,
    hand_offs: RwLock<HashMap<HandOffKey, Arc<[RoleInfo]>>>,
    notices: crate::consent::Notices,
}

/// A subject no class or field has: rules that also answer for it answer for anything
/// (catch-alls), so they are not field-level rules.
const ANY_SUBJECT: &str = "*";

/// Upper bound on the entries of each cache (and on one agent's cached decisions); a cache
/// is cleared when it is reached. Keys are (role, team, queues) and (topic, status,
/// relation), so real deployments stay far below it.
const CACHE_LIMIT: usize = 100_000;

impl PolicySet {
    /// Loads every `*.polar` file of `dir` (sorted by name) and checks the vocabulary.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyError> {
        let files = polar_files(dir)?;
        let mut sources = Vec::with_capacity(files.len());
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|source| PolicyError::Read {
                dir: file.clone(),
                source,
            })?;
            sources.push((file.display().to_string(), text));
        }
        PolicySet::build(dir, files, &sources, true, |_| Ok(()))
    }

    /// Builds a policy set from `files` (loaded by Oso), whose texts are `sources`
    /// (display name and text, in load order); `dir` holds `notices.json`. With `lint`,
    /// the texts are checked first; `setup` registers anything more before loading.
    fn build(
        dir: &Path,
        files: Vec<PathBuf>,
        sources: &[(String, String)],
        lint: bool,
        setup: impl FnOnce(&mut Oso) -> Result<(), PolicyError>,
    ) -> Result<PolicySet, PolicyError> {
        if lint {
            for (name, text) in sources {
                check_specializers(name, text)?;
            }
            let problems = lint::lint(sources);
            if !problems.is_empty() {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                return Err(PolicyError::Invalid(lines.join("\n")));
            }
        }
        let mut oso = new_oso()?;
        setup(&mut oso)?;
        oso.load_files(files.clone())
            .map_err(|e| PolicyError::Polar(lint::explain_polar_error(&e.to_string(), sources)))?;
        let vocabulary = read_vocabulary(&oso)?;
        let notices = crate::consent::Notices::load(dir).map_err(PolicyError::Invalid)?;
        let named_fields = Field::ALL
            .into_iter()
            .filter(|f| {
                let quoted = format!("\"{}\"", f.graphql_name());
                sources.iter().any(|(_, text)| text.contains(&quoted))
            })
            .collect();
        Ok(PolicySet {
            oso,
            vocabulary,
            notices,
            files,
            version: version_of(sources),
            named_fields,
            decisions: RwLock::default(),
            scopes: RwLock::default(),
            audit_scopes: RwLock::default(),
            hand_offs: RwLock::default(),
        })
    }
}

/// The `*.polar` files of `dir`, sorted by name.
fn polar_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| PolicyError::Read {
                dir: dir.to_owned(),
                source,
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "polar") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(PolicyError::Empty(dir.to_owned()));
        }
        Ok(files)
    }
}

/// The policy's version: a digest of the policy files' names (not their directory) and
/// texts, so the same policy has the same version wherever it is loaded.
fn version_of(sources: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (name, text) in sources {
        let base = Path::new(name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        hasher.update(base.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..8])
}

impl PolicySet {
    /// The policy's version: 16 hex digits of a digest of its files, recorded in every
    /// audit event so a view can be traced to the policy that allowed it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The facts the policy may use for `agent`: `None` when the agent's role is not in the
    /// policy's vocabulary (such an agent gets nothing), and queues naming topics the
    /// policy no longer declares left out (such a queue gives nothing).
    pub fn admit(&self, agent: &AgentFacts) -> Option<AgentFacts> {
        if !self.vocabulary.has_role(&agent.role) {
            return None;
        }
        if agent.queues.iter().all(|q| self.vocabulary.has_topic(q)) {
            return Some(agent.clone());
        }
        Some(AgentFacts {
            queues: agent
                .queues
                .iter()
                .filter(|q| self.vocabulary.has_topic(q))
                .cloned()
                .collect(),
            ..agent.clone()
        })
    }

    /// The roles and topics this policy set defines.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// The consent notices published with this policy set (`notices.json`).
    pub fn notices(&self) -> &crate::consent::Notices {
        &self.notices
    }

    /// The files this set was loaded from.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The decisions for every data class and field on `ticket` for `agent`, from the
    /// cache when the same facts were seen before. An agent the policy does not know, and
    /// any policy error, fail closed (`HIDDEN`, reveal `NONE`).
    pub fn decide(&self, agent: &AgentFacts, ticket: &TicketFacts) -> Arc<Decided> {
        {
            // A poisoned lock only means another thread panicked mid-insert of a whole value.
            let cache = self.decisions.read().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.get(agent).and_then(|tickets| tickets.get(ticket)) {
                return hit.clone();
            }
        }
        let decisions = match self.decide_strict(agent, ticket) {
            Ok(decisions) => decisions,
            Err(error) => {
                tracing::error!(%error, "policy evaluation failed; the fields stay hidden");
                Decisions::DENY_ALL
            }
        };
        let decisions = Arc::new(Decided::new(decisions, &agent.role, &ticket.topic));
        let mut cache = self.decisions.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        let tickets = cache.entry(agent.clone()).or_default();
        if tickets.len() >= CACHE_LIMIT {
            tickets.clear();
        }
        tickets.insert(ticket.clone(), decisions.clone());
        decisions
    }

    /// [`PolicySet::decide`] without the cache; errors are returned.
    pub fn decide_strict(
        &self,
        agent: &AgentFacts,
        ticket: &TicketFacts,
    ) -> Result<Decisions, PolicyError> {
        let Some(agent) = self.admit(agent) else {
            return Ok(Decisions::DENY_ALL);
        };
        let mut classes = [Decision::DENY; DataClass::ALL.len()];
        for class in DataClass::ALL {
            classes[class as usize] = fold(&self.matches(&agent, ticket, class.as_str())?);
        }
        let mut fields = [None; Field::ALL.len()];
        if !self.named_fields.is_empty() {
            let anything = self.matches(&agent, ticket, ANY_SUBJECT)?;
            for &field in &self.named_fields {
                let mut answers = self.matches(&agent, ticket, field.graphql_name())?;
                // Rules that answer for any subject at all are not about this field.
                for answer in &anything {
                    if let Some(at) = answers.iter().position(|a| a == answer) {
                        answers.remove(at);
                    }
                }
                if !answers.is_empty() {
                    fields[field.index()] = Some(fold(&answers));
                }
            }
        }
        Ok(Decisions::new(classes, fields))
    }

    /// Every answer of `field_access` for one class or field name, one per matching rule,
    /// in order. The agent is taken as given (see [`PolicySet::admit`]).
    pub fn matches(
        &self,
        agent: &AgentFacts,
        ticket: &TicketFacts,
        subject: &str,
    ) -> Result<Vec<Decision>, PolicyError> {
        let query = self
            .oso
            .query_rule(
                "field_access",
                (
                    agent.clone(),
                    ticket.clone(),
                    subject,
                    PolarValue::Variable("level".into()),
                    PolarValue::Variable("reveal".into()),
                ),
            )
            .map_err(|e| PolicyError::Polar(e.to_string()))?;
        let mut decisions = Vec::new();
        for result in query {
            let result = match result {
                Ok(result) => result,
                Err(e) if undefined_rule(&e) => break,
                Err(e) => return Err(PolicyError::Polar(e.to_string())),
            };
            let level: String = result
                .get_typed("level")
                .map_err(|e| PolicyError::Invalid(format!("field_access level: {e}")))?;
            let reveal: String = result
                .get_typed("reveal")
                .map_err(|e| PolicyError::Invalid(format!("field_access reveal: {e}")))?;
            let access = level.parse().map_err(|e: UnknownWord| {
                PolicyError::Invalid(format!(
                    "{}field_access yields level {} (use PLAIN, MASKED or HIDDEN)",
                    self.locate(&e.0),
                    e.0
                ))
            })?;
            let reveal = reveal.parse().map_err(|e: UnknownWord| {
                PolicyError::Invalid(format!(
                    "{}field_access yields reveal option {} (use NONE, WITH_REASON or WITH_APPROVAL)",
                    self.locate(&e.0),
                    e.0
                ))
            })?;
            decisions.push(Decision { access, reveal });
        }
        Ok(decisions)
    }

    /// Whether the policy's `allow(agent, action, resource)` grants `permission`; `ticket`
    /// is the ticket's facts for permissions on a ticket (ignored for named resources). An
    /// agent the policy does not know, and errors, are denied.
    pub fn authorize(
        &self,
        agent: &AgentFacts,
        permission: crate::vocabulary::Permission,
        ticket: Option<&TicketFacts>,
    ) -> bool {
        match self.authorize_strict(agent, permission, ticket) {
            Ok(allowed) => allowed,
            Err(error) => {
                tracing::error!(%error, action = permission.action(), "policy evaluation of allow failed; denied");
                false
            }
        }
    }

    /// [`PolicySet::authorize`] with errors returned. A ticket permission asked without a
    /// ticket is denied.
    pub fn authorize_strict(
        &self,
        agent: &AgentFacts,
        permission: crate::vocabulary::Permission,
        ticket: Option<&TicketFacts>,
    ) -> Result<bool, PolicyError> {
        use crate::vocabulary::Resource;
        let Some(agent) = self.admit(agent) else {
            return Ok(false);
        };
        let action = permission.action().to_owned();
        let outcome = match (permission.resource(), ticket) {
            (Resource::Ticket, Some(ticket)) => self.oso.is_allowed(agent, action, ticket.clone()),
            (Resource::Ticket, None) => return Ok(false),
            (Resource::Named(name), _) => self.oso.is_allowed(agent, action, name.to_owned()),
        };
        match outcome {
            Ok(allowed) => Ok(allowed),
            Err(error) if undefined_rule(&error) => Ok(false),
            Err(error) => Err(PolicyError::Polar(error.to_string())),
        }
    }

    /// The lifetime the policy gives a grant of `class` (`reveal_seconds`); the longest
    /// answer wins, none means `None`. Errors fail closed to the shortest sane lifetime.
    pub fn reveal_seconds(
        &self,
        agent: &AgentFacts,
        ticket: &TicketFacts,
        class: DataClass,
    ) -> Option<i64> {
        let agent = self.admit(agent)?;
        let query = self.oso.query_rule(
            "reveal_seconds",
            (
                agent.clone(),
                ticket.clone(),
                class.as_str(),
                PolarValue::Variable("seconds".into()),
            ),
        );
        let mut longest: Option<i64> = None;
        for result in query.into_iter().flatten() {
            match result {
                Ok(result) => {
                    if let Ok(seconds) = result.get_typed::<i64>("seconds") {
                        longest = Some(longest.map_or(seconds, |l| l.max(seconds)));
                    }
                }
                Err(error) if undefined_rule(&error) => break,
                Err(error) => {
                    tracing::error!(%error, "policy evaluation of reveal_seconds failed");
                    return Some(60);
                }
            }
        }
        longest
    }

    /// `file:line: ` of the first place a word appears as a string in the policy files, to
    /// point an admin at the rule that yields an unknown word.
    fn locate(&self, word: &str) -> String {
        let quoted = format!("\"{word}\"");
        for file in &self.files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            if let Some(index) = text.lines().position(|l| l.contains(&quoted)) {
                return format!("{}:{}: ", file.display(), index + 1);
            }
        }
        String::new()
    }

    /// The kinds of tickets `agent` may see. An agent the policy does not know, and policy
    /// errors, fail closed (no tickets).
    pub fn ticket_scopes(&self, agent: &AgentFacts) -> Arc<[TicketScope]> {
        self.cached_scopes(&self.scopes, "ticket_scope", agent)
    }

    /// The ticket scopes of `agent` without the cache; errors are returned.
    pub fn ticket_scopes_strict(
        &self,
        agent: &AgentFacts,
    ) -> Result<Vec<TicketScope>, PolicyError> {
        self.scopes_strict("ticket_scope", agent)
    }

    /// Which audit events `agent` may read (`audit_scope`). An agent the policy does not
    /// know, and policy errors, fail closed (none: the audit trail is refused).
    pub fn audit_scopes(&self, agent: &AgentFacts) -> Arc<[AuditScope]> {
        self.cached_scopes(&self.audit_scopes, "audit_scope", agent)
    }

    /// The audit scopes of `agent` without the cache; errors are returned.
    pub fn audit_scopes_strict(&self, agent: &AgentFacts) -> Result<Vec<AuditScope>, PolicyError> {
        self.scopes_strict("audit_scope", agent)
    }

    fn cached_scopes<W>(
        &self,
        cache: &RwLock<HashMap<AgentFacts, Arc<[W]>>>,
        rule: &str,
        agent: &AgentFacts,
    ) -> Arc<[W]>
    where
        W: std::str::FromStr<Err = UnknownWord> + PartialEq + Copy + std::fmt::Debug,
    {
        if let Some(hit) = read_cache(cache, agent) {
            return hit;
        }
        let scopes: Arc<[W]> = match self.scopes_strict(rule, agent) {
            Ok(scopes) => scopes.into(),
            Err(error) => {
                tracing::error!(%error, rule, "policy evaluation of a scope failed; none given");
                Arc::from([])
            }
        };
        write_cache(cache, agent.clone(), scopes.clone());
        scopes
    }

    /// Every distinct word `rule(agent, scope)` answers, in rule order.
    fn scopes_strict<W>(&self, rule: &str, agent: &AgentFacts) -> Result<Vec<W>, PolicyError>
    where
        W: std::str::FromStr<Err = UnknownWord> + PartialEq,
    {
        let Some(agent) = self.admit(agent) else {
            return Ok(Vec::new());
        };
        let query = self
            .oso
            .query_rule(rule, (agent, PolarValue::Variable("scope".into())))
            .map_err(|e| PolicyError::Polar(e.to_string()))?;
        let mut scopes = Vec::new();
        for result in query {
            let result = match result {
                Ok(result) => result,
                Err(e) if undefined_rule(&e) => break,
                Err(e) => return Err(PolicyError::Polar(e.to_string())),
            };
            let scope: String = result
                .get_typed("scope")
                .map_err(|e| PolicyError::Invalid(format!("{rule}: {e}")))?;
            let scope: W = scope.parse().map_err(|e: UnknownWord| {
                PolicyError::Invalid(format!(
                    "{}{rule} yields unknown scope {}",
                    self.locate(&e.0),
                    e.0
                ))
            })?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Ok(scopes)
    }

    /// Where `agent` can hand `ticket` off: each other role whose assignee would see a class
    /// or field that is `HIDDEN` to `agent` here, with the topic the ticket should take (its
    /// own when the role sees it there, else the first topic, in policy order, where it
    /// does). Roles that would see nothing more are no target.
    pub fn hand_off_targets(
        &self,
        agent: &AgentFacts,
        ticket: &TicketFacts,
    ) -> Vec<(RoleInfo, String)> {
        let mine = self.decide(agent, ticket);
        let hidden: Vec<Subject> = DataClass::ALL
            .into_iter()
            .map(Subject::Class)
            .chain(Field::ALL.into_iter().map(Subject::Field))
            .filter(|s| mine.subject(*s).access == Access::Hidden)
            .collect();
        if hidden.is_empty() {
            return Vec::new();
        }
        let sees_more = |role: &str, topic: &str| {
            let facts = AgentFacts {
                role: role.to_owned(),
                team: agent.team.clone(),
                queues: vec![topic.to_owned()],
            };
            let assigned = TicketFacts {
                topic: topic.to_owned(),
                status: ticket.status.clone(),
                assigned_to_me: true,
                unassigned: false,
                in_my_team: true,
            };
            let theirs = self.decide(&facts, &assigned);
            hidden
                .iter()
                .any(|s| theirs.subject(*s).access != Access::Hidden)
        };
        self.vocabulary
            .roles
            .iter()
            .filter(|role| role.name != agent.role)
            .filter_map(|role| {
                let topic = if sees_more(&role.name, &ticket.topic) {
                    ticket.topic.clone()
                } else {
                    self.vocabulary
                        .topics
                        .iter()
                        .find(|t| sees_more(&role.name, t))?
                        .clone()
                };
                Some((role.clone(), topic))
            })
            .collect()
    }

    /// The hand-offs for `subject` served at `access` under `decided` (which this set
    /// decided): the roles of [`PolicySet::hand_off_roles`] when it is hidden, none
    /// otherwise. Worked out once per cached decision, then shared.
    pub fn hand_offs(&self, decided: &Decided, subject: Subject, access: Access) -> Arc<[HandOff]> {
        decided.hand_offs(subject, access, |topic, subject, role| {
            self.hand_off_roles(topic, subject, role)
                .into_iter()
                .map(|r| HandOff {
                    role: r.name,
                    label: r.label,
                })
                .collect()
        })
    }

    /// The roles (other than `except_role`) whose assignee on a ticket of `topic` would see
    /// `subject` (a class, or a field) at all: the hand-off hint for a hidden value.
    pub fn hand_off_roles(
        &self,
        topic: &str,
        subject: Subject,
        except_role: &str,
    ) -> Vec<RoleInfo> {
        let key = (topic.to_owned(), subject);
        let roles = match read_cache(&self.hand_offs, &key) {
            Some(hit) => hit,
            None => {
                let roles: Arc<[RoleInfo]> = self
                    .vocabulary
                    .roles
                    .iter()
                    .filter(|role| {
                        let agent = AgentFacts {
                            role: role.name.clone(),
                            team: String::new(),
                            queues: vec![topic.to_owned()],
                        };
                        let ticket = TicketFacts {
                            topic: topic.to_owned(),
                            status: "open".to_owned(),
                            assigned_to_me: true,
                            unassigned: false,
                            in_my_team: true,
                        };
                        self.decide(&agent, &ticket).subject(subject).access != Access::Hidden
                    })
                    .cloned()
                    .collect();
                write_cache(&self.hand_offs, key, roles.clone());
                roles
            }
        };
        roles
            .iter()
            .filter(|r| r.name != except_role)
            .cloned()
            .collect()
    }
}

/// The most permissive of several rules' answers; none is deny.
fn fold(answers: &[Decision]) -> Decision {
    answers
        .iter()
        .copied()
        .fold(Decision::DENY, Decision::most_permissive)
}

/// A policy without any `field_access` (or `ticket_scope`) rule denies everything: Polar
/// reports the undefined rule as an error, which here means "no rule matches".
fn undefined_rule(error: &oso::OsoError) -> bool {
    error.to_string().contains("Query for undefined rule")
}

fn read_cache<K, V>(cache: &RwLock<HashMap<K, V>>, key: &K) -> Option<V>
where
    K: std::hash::Hash + Eq,
    V: Clone,
{
    // A poisoned lock only means another thread panicked mid-insert of a complete value.
    let map = cache.read().unwrap_or_else(|p| p.into_inner());
    map.get(key).cloned()
}

fn write_cache<K, V>(cache: &RwLock<HashMap<K, V>>, key: K, value: V)
where
    K: std::hash::Hash + Eq,
{
    let mut map = cache.write().unwrap_or_else(|p| p.into_inner());
    if map.len() >= CACHE_LIMIT {
        map.clear();
    }
    map.insert(key, value);
}

/// The classes a rule may specialize on: the two the host registers and Polar's built-ins.
const KNOWN_CLASSES: [&str; 8] = [
    "Agent",
    "Ticket",
    "String",
    "Integer",
    "Float",
    "Boolean",
    "List",
    "Dictionary",
];

/// Oso only warns (on stderr) about a specializer naming an unknown class, and such a rule
/// silently never matches; this refuses the file instead, with its line.
fn check_specializers(file: &str, text: &str) -> Result<(), PolicyError> {
    for (index, line) in text.lines().enumerate() {
        let mut in_string = false;
        let mut code = String::new();
        for c in line.chars() {
            match c {
                '"' => in_string = !in_string,
                '#' if !in_string => break,
                _ if in_string => continue,
                _ => code.push(c),
            }
        }
        let mut rest = code.as_str();
        while let Some(at) = rest.find(':') {
            rest = &rest[at + 1..];
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.starts_with(|c: char| c.is_ascii_uppercase())
                && !KNOWN_CLASSES.contains(&name.as_str())
            {
                return Err(PolicyError::Invalid(format!(
                    "{file}:{}: unknown class {name} (policies can use Agent and Ticket)",
                    index + 1
                )));
            }
        }
    }
    Ok(())
}

fn new_oso() -> Result<Oso, PolicyError> {
    let mut oso = Oso::new();
    oso.register_class(AgentFacts::get_polar_class())
        .map_err(|e| PolicyError::Polar(e.to_string()))?;
    oso.register_class(TicketFacts::get_polar_class())
        .map_err(|e| PolicyError::Polar(e.to_string()))?;
    Ok(oso)
}

fn read_vocabulary(oso: &Oso) -> Result<Vocabulary, PolicyError> {
    let mut vocabulary = Vocabulary::default();
    let roles = oso
        .query_rule(
            "role",
            (
                PolarValue::Variable("name".into()),
                PolarValue::Variable("label".into()),
            ),
        )
        .map_err(|e| PolicyError::Polar(e.to_string()))?;
    for result in roles {
        let result = result.map_err(|e| PolicyError::Polar(e.to_string()))?;
        let name: String = result
            .get_typed("name")
            .map_err(|e| PolicyError::Invalid(format!("role name: {e}")))?;
        let label: String = result
            .get_typed("label")
            .map_err(|e| PolicyError::Invalid(format!("role label: {e}")))?;
        check_word("role", &name)?;
        vocabulary.roles.push(RoleInfo { name, label });
    }
    let topics = oso
        .query_rule("topic", (PolarValue::Variable("name".into()),))
        .map_err(|e| PolicyError::Polar(e.to_string()))?;
    for result in topics {
        let result = result.map_err(|e| PolicyError::Polar(e.to_string()))?;
        let name: String = result
            .get_typed("name")
            .map_err(|e| PolicyError::Invalid(format!("topic name: {e}")))?;
        check_word("topic", &name)?;
        vocabulary.topics.push(name);
    }
    // Channels are optional: a policy set written before they existed still loads, and
    // opens no ticket until it names its channels.
    match oso.query_rule("channel", (PolarValue::Variable("name".into()),)) {
        Ok(channels) => {
            for result in channels {
                let name: String = match result {
                    Ok(result) => result
                        .get_typed("name")
                        .map_err(|e| PolicyError::Invalid(format!("channel name: {e}")))?,
                    Err(e) if undefined_rule(&e) => break,
                    Err(e) => return Err(PolicyError::Polar(e.to_string())),
                };
                check_word("channel", &name)?;
                vocabulary.channels.push(name);
            }
        }
        Err(e) if undefined_rule(&e) => {}
        Err(e) => return Err(PolicyError::Polar(e.to_string())),
    }
    if vocabulary.roles.is_empty() {
        return Err(PolicyError::Invalid(
            "the policy defines no role(name, label) facts".into(),
        ));
    }
    if vocabulary.topics.is_empty() {
        return Err(PolicyError::Invalid(
            "the policy defines no topic(name) facts".into(),
        ));
    }
    Ok(vocabulary)
}

fn check_word(kind: &str, word: &str) -> Result<(), PolicyError> {
    if is_word(word) {
        Ok(())
    } else {
        Err(PolicyError::Invalid(format!(
            "{kind} {word:?} is not an identifier (lower-case letters, digits, underscores)"
        )))
    }
}

/// Loads a policy set and checks it completely: Polar accepts it, every rule answers with
/// known words for every role, topic and relation, and every case in `tests/` passes.
pub fn load_checked(dir: &Path) -> Result<PolicySet, PolicyError> {
    let set = PolicySet::load_dir(dir)?;
    for permission in cases::sweep(&set)? {
        tracing::warn!(
            permission = %permission.describe(),
            "no policy rule grants this permission: nobody may do it"
        );
    }
    let cases = cases::load_cases(dir, &set)?;
    let failures = cases::run_cases(&set, &cases);
    if let Some(first) = failures.first() {
        return Err(PolicyError::Invalid(format!(
            "{} of {} policy test cases fail; first: {first}",
            failures.len(),
            cases.len()
        )));
    }
    Ok(set)
}

/// The outcome of the latest (re)load, for `/readyz`.
#[derive(Clone, Debug)]
pub struct ReloadStatus {
    /// When the serving policy set was loaded.
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    /// How many times a new policy set replaced the previous one.
    pub reloads: u64,
    /// Why the latest reload attempt was refused, if it was (the old set keeps serving).
    pub last_error: Option<String>,
}

/// A reload that replaced the running policy: the versions before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// The version that served before.
    pub from: String,
    /// The version serving now.
    pub to: String,
}

/// The running policy, shared by every request. Cloning is cheap; [`Policy::current`]
/// returns a snapshot that stays consistent for as long as a request holds it.
#[derive(Clone)]
pub struct Policy {
    current: Arc<ArcSwap<PolicySet>>,
    status: Arc<ArcSwap<ReloadStatus>>,
    dir: PathBuf,
}

impl Policy {
    /// Loads and checks the policy set in `dir`.
    pub fn load(dir: &Path) -> Result<Policy, PolicyError> {
        let set = load_checked(dir)?;
        Ok(Policy {
            current: Arc::new(ArcSwap::from_pointee(set)),
            status: Arc::new(ArcSwap::from_pointee(ReloadStatus {
                loaded_at: chrono::Utc::now(),
                reloads: 0,
                last_error: None,
            })),
            dir: dir.to_owned(),
        })
    }

    /// The policy set serving requests now.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// The outcome of the latest (re)load.
    pub fn status(&self) -> Arc<ReloadStatus> {
        self.status.load_full()
    }

    /// The directory the policy is loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the directory again beside the running set and, only if it checks out
    /// completely, swaps it in atomically. A refused reload keeps the running set and is
    /// reported by [`Policy::status`].
    pub fn reload(&self) -> Result<Reloaded, PolicyError> {
        let previous = self.status();
        match load_checked(&self.dir) {
            Ok(set) => {
                let reloaded = Reloaded {
                    from: self.current().version().to_owned(),
                    to: set.version().to_owned(),
                };
                self.current.store(Arc::new(set));
                self.status.store(Arc::new(ReloadStatus {
                    loaded_at: chrono::Utc::now(),
                    reloads: previous.reloads + 1,
                    last_error: None,
                }));
                tracing::info!(
                    dir = %self.dir.display(),
                    from = %reloaded.from,
                    to = %reloaded.to,
                    "policy reloaded"
                );
                Ok(reloaded)
            }
            Err(error) => {
                tracing::error!(%error, "policy reload refused; the previous policy keeps serving");
                self.status.store(Arc::new(ReloadStatus {
                    last_error: Some(error.to_string()),
                    ..(*previous).clone()
                }));
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::Permission;

    fn shipped() -> PolicySet {
        PolicySet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
            .expect("the shipped policy loads")
    }

    fn agent(role: &str, queues: &[&str]) -> AgentFacts {
        AgentFacts {
            role: role.into(),
            team: "support".into(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
        }
    }

    fn assigned(topic: &str) -> TicketFacts {
        TicketFacts {
            topic: topic.into(),
            status: "open".into(),
            assigned_to_me: true,
            unassigned: false,
            in_my_team: true,
        }
    }

    #[test]
    fn the_shipped_policy_defines_the_product_vocabulary() {
        let set = shipped();
        assert!(set.vocabulary().has_role("billing"));
        assert!(set.vocabulary().has_topic("identity_verification"));
        assert!(!set.vocabulary().has_role("janitor"));
    }

    #[test]
    fn a_billing_assignee_sees_billing_plain_on_a_billing_ticket() {
        let set = shipped();
        let d = set.decide(&agent("billing", &["billing"]), &assigned("billing"));
        assert_eq!(d.class(DataClass::Billing).access, Access::Plain);
        assert_eq!(
            d.class(DataClass::Contact),
            Decision {
                access: Access::Masked,
                reveal: RevealOption::WithReason
            }
        );
        assert_eq!(d.class(DataClass::ChatHistory), Decision::DENY);
    }

    #[test]
    fn hand_off_names_the_roles_that_would_see_a_hidden_class() {
        let set = shipped();
        let roles: Vec<String> = set
            .hand_off_roles("billing", Subject::Class(DataClass::Billing), "frontline")
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(roles, ["billing", "supervisor"]);
    }

    #[test]
    fn the_shipped_policy_passes_its_own_cases_and_sweep() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let started = std::time::Instant::now();
        let set = load_checked(&dir).expect("shipped policy checks out");
        let cases = cases::load_cases(&dir, &set).unwrap();
        assert!(
            cases.len() > 800,
            "the cases cover the matrix: {}",
            cases.len()
        );
        eprintln!("load_checked took {:?}", started.elapsed());
    }

    #[test]
    fn a_rule_on_an_unknown_class_is_refused_with_its_line() {
        let error = check_specializers(
            "p.polar",
            "# x: Customer\nrole(\"a\", \"b: C\");\nf(x: Customer) if x.a = 1;",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "p.polar:3: unknown class Customer (policies can use Agent and Ticket)"
        );
        assert!(check_specializers("p.polar", "f(a: Agent, t: Ticket, c: String);").is_ok());
    }

    /// The shipped policy with `extra` rules, loaded from a scratch directory.
    fn with(extra: &str) -> PolicySet {
        let dir = std::env::temp_dir().join(format!("ntk-policy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/main.polar");
        let text = std::fs::read_to_string(shipped).unwrap();
        std::fs::write(dir.join("main.polar"), format!("{text}\n{extra}\n")).unwrap();
        let set = PolicySet::load_dir(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        set.unwrap()
    }

    #[test]
    fn a_field_rule_overrides_its_class_in_either_direction() {
        let set = with(
            "field_access(agent: Agent, _t: Ticket, \"dateOfBirth\", \"HIDDEN\", \"NONE\") if agent.role = \"identity\";\n\
             field_access(agent: Agent, _t: Ticket, \"invoices\", \"MASKED\", \"NONE\") if agent.role = \"frontline\";",
        );
        let identity = set.decide(
            &agent("identity", &["identity_verification"]),
            &assigned("identity_verification"),
        );
        assert_eq!(identity.field(Field::DateOfBirth), Decision::DENY);
        assert_eq!(
            identity.field(Field::IdentityDocuments).access,
            Access::Plain
        );
        assert_eq!(identity.class(DataClass::Identity).access, Access::Plain);
        assert!(!identity.uniform(DataClass::Identity));
        let frontline = set.decide(&agent("frontline", &[]), &assigned("technical"));
        assert_eq!(frontline.field(Field::Invoices).access, Access::Masked);
        assert_eq!(frontline.field(Field::PaymentMethods), Decision::DENY);
    }

    #[test]
    fn a_catch_all_rule_is_not_a_field_rule() {
        // Answers for any subject at all, including the field's name: not about the field.
        let set = with(
            "field_access(agent: Agent, _t: Ticket, subject, \"MASKED\", \"NONE\") if agent.role = \"billing\" and subject != \"billing\";\n\
             field_access(_a: Agent, _t: Ticket, \"plan\", \"PLAIN\", \"NONE\");",
        );
        let billing = set.decide(&agent("billing", &["billing"]), &assigned("billing"));
        assert_eq!(billing.field(Field::PaymentMethods).access, Access::Plain);
        assert_eq!(billing.field_rule(Field::PaymentMethods), None);
    }

    #[test]
    fn an_agent_whose_role_or_topic_the_policy_lacks_gets_nothing() {
        let set = shipped();
        let legal = agent("legal", &["billing"]);
        assert!(set.ticket_scopes(&legal).is_empty());
        assert!(set.audit_scopes(&legal).is_empty());
        assert_eq!(
            *set.decide(&legal, &assigned("billing")).decisions(),
            Decisions::DENY_ALL
        );
        assert!(!set.authorize(&legal, Permission::SetStatus, Some(&assigned("billing"))));
        let holder = agent("frontline", &["legal_hold", "billing"]);
        assert_eq!(set.admit(&holder).unwrap().queues, ["billing"]);
    }

    #[test]
    fn the_version_is_a_digest_of_the_files() {
        let a = shipped();
        let b = shipped();
        assert_eq!(a.version(), b.version());
        assert_eq!(a.version().len(), 16);
        assert_ne!(with("topic(\"legal_hold\");").version(), a.version());
    }

    #[test]
    fn auditors_see_no_tickets() {
        assert!(shipped().ticket_scopes(&agent("auditor", &[])).is_empty());
    }
}
