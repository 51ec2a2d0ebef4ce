//! "What can I see?": per ticket, each data class's level, reveal option and hand-off, and
//! a sentence an agent can read aloud to the customer.

use async_graphql::SimpleObject;

use super::HandOff;
use crate::policy::{Access, DataClass, RevealOption};

/// One data class as the agent sees it on this ticket.
#[derive(Clone, Debug, SimpleObject)]
pub struct ClassAccess {
    /// The data class.
    pub data_class: DataClass,
    /// `PLAIN`, `MASKED` or `HIDDEN`.
    pub access: Access,
    /// How the agent could see more.
    pub reveal: RevealOption,
    /// When `HIDDEN`: the roles that would see this class on this topic.
    pub hand_off: Vec<HandOff>,
}

/// What the agent can and cannot see of the customer on this ticket.
#[derive(Clone, Debug, SimpleObject)]
pub struct AccessSummary {
    /// Every data class, in a fixed order.
    pub classes: Vec<ClassAccess>,
    /// A plain-language sentence built from the decisions, e.g. "I can see your name and
    /// your other tickets. I can't see your payment history; a billing specialist can help
    /// with that."
    pub sentence: String,
}

/// How a sentence to the customer names a data class.
fn phrase(class: DataClass) -> &'static str {
    match class {
        DataClass::Account => "your account details",
        DataClass::Name => "your name",
        DataClass::Contact => "your contact details",
        DataClass::Address => "your address",
        DataClass::Identity => "your identity documents",
        DataClass::Billing => "your payment history",
        DataClass::TicketHistory => "your other tickets",
        DataClass::ChatHistory => "your earlier conversations",
    }
}

/// "a", "a and b", "a, b and c".
fn join<S: AsRef<str>>(items: &[S], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [init @ .., tail] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} {last} {}", init.join(", "), tail.as_ref())
        }
    }
}

/// Builds the sentence from the per-class decisions.
pub fn sentence(classes: &[ClassAccess]) -> String {
    let of = |access: Access| -> Vec<&ClassAccess> {
        classes.iter().filter(|c| c.access == access).collect()
    };
    let mut parts = Vec::new();
    let plain: Vec<&str> = of(Access::Plain)
        .iter()
        .map(|c| phrase(c.data_class))
        .collect();
    if !plain.is_empty() {
        parts.push(format!("I can see {}.", join(&plain, "and")));
    }
    let masked = of(Access::Masked);
    if !masked.is_empty() {
        let names: Vec<&str> = masked.iter().map(|c| phrase(c.data_class)).collect();
        let more = if masked.iter().any(|c| c.reveal != RevealOption::None) {
            ", and can ask to see more if it is needed"
        } else {
            ""
        };
        parts.push(format!("I can see part of {}{more}.", join(&names, "and")));
    }
    // Hidden classes, grouped by who could help, in order of first appearance.
    let mut groups: Vec<(Vec<String>, Vec<&str>)> = Vec::new();
    for class in of(Access::Hidden) {
        let helpers: Vec<String> = class.hand_off.iter().map(|h| h.label.clone()).collect();
        match groups.iter_mut().find(|(h, _)| *h == helpers) {
            Some((_, names)) => names.push(phrase(class.data_class)),
            None => groups.push((helpers, vec![phrase(class.data_class)])),
        }
    }
    for (helpers, names) in groups {
        if helpers.is_empty() {
            parts.push(format!("I can't see {}.", join(&names, "or")));
        } else {
            parts.push(format!(
                "I can't see {}; {} can help with that.",
                join(&names, "or"),
                join(&helpers, "or")
            ));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(
        data_class: DataClass,
        access: Access,
        reveal: RevealOption,
        helpers: &[&str],
    ) -> ClassAccess {
        ClassAccess {
            data_class,
            access,
            reveal,
            hand_off: helpers
                .iter()
                .map(|l| HandOff {
                    role: "r".into(),
                    label: (*l).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn the_sentence_says_what_is_seen_and_who_can_help_with_the_rest() {
        let classes = [
            class(DataClass::Name, Access::Plain, RevealOption::None, &[]),
            class(
                DataClass::TicketHistory,
                Access::Plain,
                RevealOption::None,
                &[],
            ),
            class(
                DataClass::Contact,
                Access::Masked,
                RevealOption::WithReason,
                &[],
            ),
            class(
                DataClass::Billing,
                Access::Hidden,
                RevealOption::None,
                &["a billing specialist"],
            ),
            class(DataClass::Identity, Access::Hidden, RevealOption::None, &[]),
        ];
        assert_eq!(
            sentence(&classes),
            "I can see your name and your other tickets. I can see part of your contact \
             details, and can ask to see more if it is needed. I can't see your payment \
             history; a billing specialist can help with that. I can't see your identity \
             documents."
        );
    }

    #[test]
    fn lists_read_naturally() {
        assert_eq!(join(&["a"], "and"), "a");
        assert_eq!(join(&["a", "b"], "and"), "a and b");
        assert_eq!(join(&["a", "b", "c"], "or"), "a, b or c");
    }
}
