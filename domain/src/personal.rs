//! The personal-data catalogue of the whole write model, keyed by aggregate
//! type as the event store records it: which top-level fields of an event's
//! body identify a person, and what each reads as once that person's key is
//! destroyed. Each aggregate owns its own list; this module only routes to
//! it, so that an event type name can never be looked up in the wrong
//! aggregate's list. Only the user aggregate is catalogued: the address
//! snapshots of carts and orders are not (yet) treated as personal here.

use cqrs_es::Aggregate;
use serde_json::Value;
use uuid::Uuid;

use crate::user::{self, User};

/// The personal fields of `event_type` in `aggregate_type`'s events; `&[]`
/// for an aggregate without a catalogue.
pub fn personal_fields(aggregate_type: &str, event_type: &str) -> &'static [&'static str] {
    if aggregate_type == User::TYPE {
        user::personal_fields(event_type)
    } else {
        &[]
    }
}

/// What `field` of `event_type` in `aggregate_type`'s events reads as once
/// `subject` is erased; `null` for an aggregate without a catalogue.
pub fn erased_value(aggregate_type: &str, event_type: &str, field: &str, subject: Uuid) -> Value {
    if aggregate_type == User::TYPE {
        user::erased_value(event_type, field, subject)
    } else {
        Value::Null
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_events_are_routed_to_the_user_catalogue() {
        assert_eq!(User::TYPE, "user");
        assert_eq!(
            personal_fields("user", "UserEmailVerified"),
            user::personal_fields("UserEmailVerified")
        );
        let subject = Uuid::from_u128(7);
        assert_eq!(
            erased_value("user", "UserEmailVerified", "email", subject),
            user::erased_value("UserEmailVerified", "email", subject)
        );
    }

    #[test]
    fn other_aggregates_have_no_personal_fields_yet() {
        assert_eq!(personal_fields("order", "UserRegistered"), &[] as &[&str]);
        assert_eq!(
            erased_value("order", "UserRegistered", "email", Uuid::nil()),
            Value::Null
        );
    }
}
