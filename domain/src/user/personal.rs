//! Which fields of the user events identify a person, and what each reads as
//! once that person is erased. Infrastructure encrypts these fields under a
//! key of the person's own and destroys the key on erasure (crypto-shredding:
//! the log stays append-only, its copies and backups included); the domain
//! owns the list, because only it knows its events' shapes, and the
//! placeholders, because only it knows what its value types accept.
//!
//! Field names are those of an event's body: the object under the variant
//! name in the serialized event (`{"UserRegistered": {"email": ...}}`).

use serde_json::{json, Value};
use uuid::Uuid;

/// The fields of `event_type`'s body that identify a person and are stored
/// encrypted; `&[]` for an event without any (status, role and erasure
/// events, address removal, a type this module does not know).
pub fn personal_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "UserRegistered" => &[
            "email",
            "password_hash",
            "first_name",
            "last_name",
            "phone",
            "date_of_birth",
            "gender",
        ],
        "UserProfileUpdated" => &[
            "first_name",
            "last_name",
            "phone",
            "date_of_birth",
            "gender",
            "avatar_url",
            "bio",
        ],
        "UserEmailChanged" => &["previous_email", "email"],
        "UserEmailVerified" => &["email"],
        // A live code is a credential: only its digest stays in the clear.
        "UserEmailVerificationRequested" | "UserPasswordResetRequested" => &["email", "code"],
        "UserPasswordReset" => &["password_hash"],
        "UserPhoneVerified" => &["phone"],
        // A hash is not a name, but it is the person's credential, and an
        // offline guess against it yields their password.
        "UserPasswordChanged" => &["password_hash"],
        "UserLoggedIn" => &["ip_address", "user_agent"],
        "UserAddressAdded" | "UserAddressUpdated" => &["address"],
        _ => &[],
    }
}

/// What `field` of `event_type` reads as once the person `user_id` is
/// erased: a value its type still accepts, so that the event decodes and
/// the stream replays. `null` where the field is optional (and for anything
/// not listed by `personal_fields`); otherwise a placeholder that the
/// value's parser accepts and that no real person can have.
pub fn erased_value(event_type: &str, field: &str, user_id: Uuid) -> Value {
    match (event_type, field) {
        (
            "UserRegistered"
            | "UserEmailVerified"
            | "UserEmailVerificationRequested"
            | "UserPasswordResetRequested",
            "email",
        )
        | ("UserEmailChanged", "email" | "previous_email") => json!(erased_email(user_id)),
        ("UserRegistered" | "UserProfileUpdated", "first_name" | "last_name") => {
            json!(ERASED_TEXT)
        }
        ("UserEmailVerificationRequested" | "UserPasswordResetRequested", "code") => {
            json!(ERASED_CODE)
        }
        ("UserRegistered" | "UserPasswordChanged" | "UserPasswordReset", "password_hash") => {
            json!(ERASED_PASSWORD_HASH)
        }
        ("UserPhoneVerified", "phone") => json!(erased_phone(user_id)),
        ("UserAddressAdded" | "UserAddressUpdated", "address") => erased_address(),
        _ => Value::Null,
    }
}

const ERASED_TEXT: &str = "Erased";

/// A code `OneTimeCode::parse` accepts; its digest is not the one kept, so
/// it proves nothing.
const ERASED_CODE: &str = "00000000";

/// Accepted by `PasswordHash::parse` (an argon2id prefix, no whitespace) but
/// not a PHC string any verifier can parse, so it matches no password.
const ERASED_PASSWORD_HASH: &str = "$argon2id$erased";

/// One per person, because the `users` read model keeps emails unique; under
/// `.invalid` (RFC 2606), so that nothing is ever delivered to it.
/// The domain of erased people's placeholder emails, which nobody may take:
/// a live account holding one would collide with that person's erasure.
pub const ERASED_EMAIL_DOMAIN: &str = "erased.invalid";

/// Whether `email` is in the domain kept for erased people.
pub fn is_erased_placeholder(email: &crate::values::Email) -> bool {
    email
        .as_str()
        .rsplit_once('@')
        .is_some_and(|(_, domain)| domain == ERASED_EMAIL_DOMAIN)
}

fn erased_email(user_id: Uuid) -> String {
    format!("erased-{user_id}@{ERASED_EMAIL_DOMAIN}")
}

/// `+0` and 14 digits of the id: no country calling code starts with 0, so
/// the placeholder is nobody's number; two people share it with a chance of
/// 1 in 10^14, which the read model's unique phones can live with.
fn erased_phone(user_id: Uuid) -> String {
    format!("+0{:014}", user_id.as_u128() % 100_000_000_000_000)
}

/// The whole address is personal (a street locates a person even without
/// the name), so every text is replaced; the country keeps the platform's
/// default.
pub(crate) fn erased_address() -> Value {
    json!({
        "type": "other",
        "first_name": ERASED_TEXT,
        "last_name": ERASED_TEXT,
        "company": null,
        "street_address_1": ERASED_TEXT,
        "street_address_2": null,
        "city": ERASED_TEXT,
        "state_province": ERASED_TEXT,
        "postal_code": "00000",
        "country": "TH",
        "phone": null,
    })
}
