//! "What can I see?": per ticket, each data class's level, reveal option and hand-off, and
//! a sentence an agent can read aloud to the customer.

use async_graphql::SimpleObject;

use super::HandOff;
use crate::policy::{Access, DataClass, Field, RevealOption};

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
    /// Whether every field of the class is decided like the class (false when a
    /// field-level rule gives one of its fields another answer; see `fields`).
    pub uniform: bool,
}

/// One protected field as the agent sees it on this ticket: its class's answer, unless a
/// field-level rule of the policy names the field.
#[derive(Clone, Debug, SimpleObject)]
pub struct FieldAccess {
    /// The field's name on `Customer`, e.g. `dateOfBirth`.
    pub field: String,
    /// The field's data class.
    pub data_class: DataClass,
    /// `PLAIN`, `MASKED` or `HIDDEN`.
    pub access: Access,
    /// How the agent could see more.
    pub reveal: RevealOption,
    /// Whether a field-level rule decided this field (rather than its class's rules).
    pub field_rule: bool,
    /// When `HIDDEN`: the roles that would see this field on this topic.
    pub hand_off: Vec<HandOff>,
}

/// What the agent can and cannot see of the customer on this ticket.
#[derive(Clone, Debug, SimpleObject)]
pub struct AccessSummary {
    /// Every data class, in a fixed order.
    pub classes: Vec<ClassAccess>,
    /// Every protected field, in schema order, with its own answer.
    pub fields: Vec<FieldAccess>,
    /// A plain-language sentence built from the decisions, e.g. "I can see your name and
    /// your other tickets. I can't see your payment history; a billing specialist can help
    /// with that."
    pub sentence: String,
}

/// One thing a sentence names: a class whose fields agree, or a field of one that doesn't.
struct Item<'a> {
    phrase: &'static str,
    access: Access,
    reveal: RevealOption,
    hand_off: &'a [HandOff],
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

/// Builds the sentence from the decisions: a class whose fields all agree is named as a
/// class, the fields of one that a field-level rule splits are named one by one.
pub fn sentence(classes: &[ClassAccess], fields: &[FieldAccess]) -> String {
    let mut items = Vec::new();
    for class in classes {
        if class.uniform {
            items.push(Item {
                phrase: class.data_class.phrase(),
                access: class.access,
                reveal: class.reveal,
                hand_off: &class.hand_off,
            });
            continue;
        }
        for field in fields.iter().filter(|f| f.data_class == class.data_class) {
            items.push(Item {
                phrase: Field::named(&field.field).map_or("", Field::phrase),
                access: field.access,
                reveal: field.reveal,
                hand_off: &field.hand_off,
            });
        }
    }
    let of =
        |access: Access| -> Vec<&Item> { items.iter().filter(|c| c.access == access).collect() };
    let mut parts = Vec::new();
    let plain: Vec<&str> = of(Access::Plain).iter().map(|c| c.phrase).collect();
    if !plain.is_empty() {
        parts.push(format!("I can see {}.", join(&plain, "and")));
    }
    let masked = of(Access::Masked);
    if !masked.is_empty() {
        let names: Vec<&str> = masked.iter().map(|c| c.phrase).collect();
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
            Some((_, names)) => names.push(class.phrase),
            None => groups.push((helpers, vec![class.phrase])),
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
            uniform: true,
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
            sentence(&classes, &[]),
            "I can see your name and your other tickets. I can see part of your contact \
             details, and can ask to see more if it is needed. I can't see your payment \
             history; a billing specialist can help with that. I can't see your identity \
             documents."
        );
    }

    #[test]
    fn a_class_split_by_a_field_rule_is_named_field_by_field() {
        let mut identity = class(DataClass::Identity, Access::Plain, RevealOption::None, &[]);
        identity.uniform = false;
        let fields = [
            FieldAccess {
                field: "dateOfBirth".into(),
                data_class: DataClass::Identity,
                access: Access::Hidden,
                reveal: RevealOption::None,
                field_rule: true,
                hand_off: Vec::new(),
            },
            FieldAccess {
                field: "identityDocuments".into(),
                data_class: DataClass::Identity,
                access: Access::Plain,
                reveal: RevealOption::None,
                field_rule: false,
                hand_off: Vec::new(),
            },
        ];
        assert_eq!(
            sentence(&[identity], &fields),
            "I can see your identity documents. I can't see your date of birth."
        );
    }

    #[test]
    fn lists_read_naturally() {
        assert_eq!(join(&["a"], "and"), "a");
        assert_eq!(join(&["a", "b"], "and"), "a and b");
        assert_eq!(join(&["a", "b", "c"], "or"), "a, b or c");
    }
}
