//! The personal-data catalogue of the whole write model, keyed by aggregate
//! type as the event store records it: which top-level fields of an event's
//! body identify a person, and what each reads as once that person's key is
//! destroyed, and whose key seals them. Each aggregate owns its own list;
//! this module only routes to it, so that an event type name can never be
//! looked up in the wrong aggregate's list. The user's events and the
//! order's address snapshots are catalogued; a cart holds no personal data
//! yet (its shipping address waits for a key per cart owner).

use cqrs_es::Aggregate;
use serde_json::Value;
use uuid::Uuid;

use crate::order::{self, Order};
use crate::user::{self, User};

/// The personal fields of `event_type` in `aggregate_type`'s events; `&[]`
/// for an aggregate without a catalogue.
pub fn personal_fields(aggregate_type: &str, event_type: &str) -> &'static [&'static str] {
    match aggregate_type {
        User::TYPE => user::personal_fields(event_type),
        Order::TYPE => order::personal::personal_fields(event_type),
        _ => &[],
    }
}

/// Whose key seals the personal fields of an event with `body` on
/// `stream_id`: the person a user stream is named by, or the user who
/// placed an order. `None` when there is nobody to seal them for.
pub fn personal_subject(aggregate_type: &str, stream_id: &str, body: &Value) -> Option<Uuid> {
    match aggregate_type {
        Order::TYPE => body
            .get("user_id")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok()),
        _ => Uuid::parse_str(stream_id).ok(),
    }
}

/// What `field` of `event_type` in `aggregate_type`'s events reads as once
/// `subject` is erased; `null` for an aggregate without a catalogue.
pub fn erased_value(aggregate_type: &str, event_type: &str, field: &str, subject: Uuid) -> Value {
    match aggregate_type {
        User::TYPE => user::erased_value(event_type, field, subject),
        Order::TYPE => order::personal::erased_value(event_type, field),
        _ => Value::Null,
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
        assert_eq!(personal_fields("cart", "CartOpened"), &[] as &[&str]);
        assert_eq!(
            erased_value("order", "UserRegistered", "email", Uuid::nil()),
            Value::Null
        );
    }

    #[test]
    fn an_orders_addresses_are_sealed_for_the_user_who_placed_it() {
        assert_eq!(
            personal_fields("order", "OrderPlaced"),
            &["billing_address", "shipping_address"]
        );
        let user = Uuid::from_u128(7);
        let body = serde_json::json!({ "order_id": Uuid::from_u128(9), "user_id": user });
        assert_eq!(
            personal_subject("order", &Uuid::from_u128(9).to_string(), &body),
            Some(user)
        );
        assert_eq!(
            personal_subject("user", &user.to_string(), &serde_json::json!({})),
            Some(user)
        );
        let erased = erased_value("order", "OrderPlaced", "shipping_address", user);
        let address: crate::values::PostalAddress = serde_json::from_value(erased).unwrap();
        assert_eq!(address.first_name, "Erased");
    }
}
