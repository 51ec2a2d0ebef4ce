//! The policy's answers: a [`Decision`] (level and reveal option) per data class and per
//! field. The words themselves live in [`crate::vocabulary`].

use std::sync::{Arc, OnceLock};

pub use crate::vocabulary::{
    Access, AuditScope, DataClass, Field, HandOff, RevealOption, Subject, TicketScope, UnknownWord,
};

/// The policy's answer for one data class (or field) on one ticket for one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What the agent sees without a grant.
    pub access: Access,
    /// How the agent could see more.
    pub reveal: RevealOption,
}

impl Decision {
    /// Deny by default: what a class no rule covers gets.
    pub const DENY: Decision = Decision {
        access: Access::Hidden,
        reveal: RevealOption::None,
    };

    /// The level as policies write it.
    pub fn access_word(self) -> &'static str {
        self.access.as_str()
    }

    /// The reveal option as policies write it.
    pub fn reveal_word(self) -> &'static str {
        self.reveal.as_str()
    }

    /// Combines two matching rules: the most permissive level wins, then the easiest reveal.
    /// A `PLAIN` value has nothing left to reveal.
    pub fn most_permissive(self, other: Decision) -> Decision {
        let best = match self.access.cmp(&other.access) {
            std::cmp::Ordering::Less => other,
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Equal if other.reveal.rank() > self.reveal.rank() => other,
            std::cmp::Ordering::Equal => self,
        };
        if best.access == Access::Plain {
            Decision {
                access: Access::Plain,
                reveal: RevealOption::None,
            }
        } else {
            best
        }
    }
}

/// The decisions for every data class and every field on one ticket for one agent.
///
/// A field's decision is its class's, unless a field-level rule names the field: then the
/// field-level answer replaces the class's for that field, in either direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decisions {
    classes: [Decision; DataClass::ALL.len()],
    fields: [Option<Decision>; Field::ALL.len()],
}

impl Decisions {
    /// Everything hidden: what an agent unknown to the policy gets.
    pub const DENY_ALL: Decisions = Decisions {
        classes: [Decision::DENY; DataClass::ALL.len()],
        fields: [None; Field::ALL.len()],
    };

    /// Class answers, and the field-level answers where a rule names the field.
    pub fn new(
        classes: [Decision; DataClass::ALL.len()],
        fields: [Option<Decision>; Field::ALL.len()],
    ) -> Decisions {
        Decisions { classes, fields }
    }

    /// The decision for a whole class (what field-level rules leave untouched).
    pub fn class(&self, class: DataClass) -> Decision {
        self.classes[class as usize]
    }

    /// The decision for one field: its field-level answer if a rule names it, else its
    /// class's.
    pub fn field(&self, field: Field) -> Decision {
        self.fields[field.index()].unwrap_or_else(|| self.class(field.class()))
    }

    /// Whether a field-level rule decides `field` (rather than its class's rules).
    pub fn field_rule(&self, field: Field) -> Option<Decision> {
        self.fields[field.index()]
    }

    /// The decision for a class or a field.
    pub fn subject(&self, subject: Subject) -> Decision {
        match subject {
            Subject::Class(class) => self.class(class),
            Subject::Field(field) => self.field(field),
        }
    }

    /// Whether every field of `class` is decided like the class itself.
    pub fn uniform(&self, class: DataClass) -> bool {
        class.fields().all(|f| self.field(f) == self.class(class))
    }
}

/// [`Decisions`] as the policy set's cache holds them for one (agent, ticket) key, with
/// the hand-offs of their hidden subjects: worked out the first time a gate asks, then
/// shared by every gate with the same facts. Every value of one key has the same role and
/// topic, so the same hand-offs.
#[derive(Debug)]
pub struct Decided {
    /// The policy's answers.
    decisions: Decisions,
    /// The agent's role, left out of its own hand-offs.
    role: String,
    /// The ticket's topic, the topic of the hand-offs.
    topic: String,
    /// Each hidden subject's hand-offs (at [`Subject::index`]), once worked out.
    hand_offs: [OnceLock<Arc<[HandOff]>>; Subject::COUNT],
    /// What a subject that is not hidden hands off to: nobody.
    nobody: Arc<[HandOff]>,
}

impl Decided {
    /// `decisions` for an agent of `role` on a ticket of `topic`.
    pub fn new(decisions: Decisions, role: &str, topic: &str) -> Decided {
        Decided {
            decisions,
            role: role.to_owned(),
            topic: topic.to_owned(),
            hand_offs: [const { OnceLock::new() }; Subject::COUNT],
            nobody: Arc::new([]),
        }
    }

    /// The decisions.
    pub fn decisions(&self) -> &Decisions {
        &self.decisions
    }

    /// The hand-offs for `subject` served at `access`: none unless it is hidden; else
    /// `work_out(topic, subject, role)` the first time, shared afterwards.
    pub fn hand_offs(
        &self,
        subject: Subject,
        access: Access,
        work_out: impl FnOnce(&str, Subject, &str) -> Vec<HandOff>,
    ) -> Arc<[HandOff]> {
        if access != Access::Hidden {
            return self.nobody.clone();
        }
        self.hand_offs[subject.index()]
            .get_or_init(|| work_out(&self.topic, subject, &self.role).into())
            .clone()
    }
}

impl std::ops::Deref for Decided {
    type Target = Decisions;

    fn deref(&self) -> &Decisions {
        &self.decisions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_permissive_level_wins_and_plain_needs_no_reveal() {
        let masked = Decision {
            access: Access::Masked,
            reveal: RevealOption::WithApproval,
        };
        let plain = Decision {
            access: Access::Plain,
            reveal: RevealOption::WithReason,
        };
        assert_eq!(
            masked.most_permissive(plain),
            Decision {
                access: Access::Plain,
                reveal: RevealOption::None
            }
        );
        assert_eq!(Decision::DENY.most_permissive(masked), masked);
    }

    #[test]
    fn with_reason_beats_with_approval_at_the_same_level() {
        let a = Decision {
            access: Access::Masked,
            reveal: RevealOption::WithApproval,
        };
        let b = Decision {
            access: Access::Masked,
            reveal: RevealOption::WithReason,
        };
        assert_eq!(a.most_permissive(b), b);
        assert_eq!(b.most_permissive(a), b);
    }
}
