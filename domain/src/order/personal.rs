//! The order's personal data: the billing and shipping addresses that
//! `OrderPlaced` snapshots. They are sealed under the key of the user who
//! placed the order (`personal_subject`), not of the order's stream, so
//! erasing that user erases their addresses from every order too; the
//! order itself, its lines and amounts, stays for the shop's books.

use serde_json::Value;

/// The personal fields of `event_type` in the order's events.
pub fn personal_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "OrderPlaced" => &["billing_address", "shipping_address"],
        _ => &[],
    }
}

/// What `field` of `event_type` reads as once the person is erased: the
/// same placeholder address as an erased address book's.
pub fn erased_value(event_type: &str, field: &str) -> Value {
    match (event_type, field) {
        ("OrderPlaced", "billing_address" | "shipping_address") => crate::user::erased_address(),
        _ => Value::Null,
    }
}
