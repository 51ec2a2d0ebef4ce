//! The vocabulary of decisions: data classes, access levels, reveal options, ticket scopes.
//!
//! Data classes are code (each protected field is declared with one in
//! [`crate::disclosure::fields`]); roles and topics are not: they are strings the policy
//! defines, see [`super::Vocabulary`].

use std::fmt;
use std::str::FromStr;

/// A class of customer data; every protected field belongs to exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, async_graphql::Enum)]
pub enum DataClass {
    /// Account status, plan, customer since.
    Account,
    /// Full name.
    Name,
    /// Email and phone.
    Contact,
    /// Postal address.
    Address,
    /// Date of birth and identity documents.
    Identity,
    /// Payment methods, billing address, invoices.
    Billing,
    /// The customer's other tickets.
    TicketHistory,
    /// The messages of the customer's other tickets.
    ChatHistory,
}

impl DataClass {
    /// Every data class, in the order summaries list them.
    pub const ALL: [DataClass; 8] = [
        DataClass::Account,
        DataClass::Name,
        DataClass::Contact,
        DataClass::Address,
        DataClass::Identity,
        DataClass::Billing,
        DataClass::TicketHistory,
        DataClass::ChatHistory,
    ];

    /// Whether a plaintext view of the class is audited: every class but `account` and
    /// `ticket_history`.
    pub fn audited(self) -> bool {
        !matches!(self, DataClass::Account | DataClass::TicketHistory)
    }

    /// The name policies use for the class.
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Account => "account",
            DataClass::Name => "name",
            DataClass::Contact => "contact",
            DataClass::Address => "address",
            DataClass::Identity => "identity",
            DataClass::Billing => "billing",
            DataClass::TicketHistory => "ticket_history",
            DataClass::ChatHistory => "chat_history",
        }
    }
}

impl fmt::Display for DataClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much of a protected value an agent sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, async_graphql::Enum)]
pub enum Access {
    /// Nothing: the value is absent from the whole response.
    Hidden,
    /// A reduced form (see each field's description).
    Masked,
    /// The value itself.
    Plain,
}

impl FromStr for Access {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "PLAIN" => Ok(Access::Plain),
            "MASKED" => Ok(Access::Masked),
            "HIDDEN" => Ok(Access::Hidden),
            other => Err(UnknownWord(other.to_owned())),
        }
    }
}

/// Whether, and how, an agent may get more than their access level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, async_graphql::Enum)]
pub enum RevealOption {
    /// No reveal is possible.
    None,
    /// A supervisor must approve a reveal request.
    WithApproval,
    /// The agent may reveal it themselves by giving a reason.
    WithReason,
}

impl RevealOption {
    /// Orders options by how easily they reveal: `NONE` < `WITH_APPROVAL` < `WITH_REASON`.
    fn rank(self) -> u8 {
        match self {
            RevealOption::None => 0,
            RevealOption::WithApproval => 1,
            RevealOption::WithReason => 2,
        }
    }
}

impl FromStr for RevealOption {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "NONE" => Ok(RevealOption::None),
            "WITH_REASON" => Ok(RevealOption::WithReason),
            "WITH_APPROVAL" => Ok(RevealOption::WithApproval),
            other => Err(UnknownWord(other.to_owned())),
        }
    }
}

/// A word from a policy that the host does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown word {0:?}")]
pub struct UnknownWord(pub String);

/// The policy's answer for one data class on one ticket for one agent.
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
        match self.access {
            Access::Plain => "PLAIN",
            Access::Masked => "MASKED",
            Access::Hidden => "HIDDEN",
        }
    }

    /// The reveal option as policies write it.
    pub fn reveal_word(self) -> &'static str {
        match self.reveal {
            RevealOption::None => "NONE",
            RevealOption::WithReason => "WITH_REASON",
            RevealOption::WithApproval => "WITH_APPROVAL",
        }
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

/// A kind of ticket an agent may see, as the policy's `ticket_scope` names it. The host turns
/// each into a SQL condition, so lists are filtered in the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TicketScope {
    /// Tickets assigned to the agent.
    Assigned,
    /// Unassigned tickets whose topic is in the agent's queues.
    Queue,
    /// Every ticket of the agent's team.
    Team,
}

impl FromStr for TicketScope {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "assigned" => Ok(TicketScope::Assigned),
            "queue" => Ok(TicketScope::Queue),
            "team" => Ok(TicketScope::Team),
            other => Err(UnknownWord(other.to_owned())),
        }
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
