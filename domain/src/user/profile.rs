//! The user's own value types: the password hash, names, gender, the
//! suspension reason, and the shape of the profile's JSON preferences
//! (which carry the notification opt-outs the notification side reads).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::values::{bounded_text, ValueError};

/// Why a raw password hash was refused. It never echoes the input, because
/// error messages end up in logs and a hash is still credential material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid password hash ({length} characters): must be an argon2id PHC string \
     starting with \"$argon2id$\", without whitespace, of at most {max} characters",
    max = PasswordHash::MAX_LEN
)]
pub struct PasswordHashError {
    pub length: usize,
}

/// An argon2id hash in PHC string form (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
/// Hashing and verifying happen outside the domain; the domain only refuses
/// anything that is not an argon2id hash, so a plain password or a weaker
/// algorithm's hash cannot be stored by mistake.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PasswordHash(String);

impl PasswordHash {
    pub const PREFIX: &'static str = "$argon2id$";
    /// The seed's `users.password_hash VARCHAR(255)`.
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, PasswordHashError> {
        let valid = raw.len() > Self::PREFIX.len()
            && raw.len() <= Self::MAX_LEN
            && raw.starts_with(Self::PREFIX)
            && !raw.chars().any(char::is_whitespace);
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(PasswordHashError {
                length: raw.chars().count(),
            })
        }
    }

    /// The PHC string, for the verifier and the read model's column. Named
    /// so that a call site reads as a deliberate disclosure.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

// Debug is hand-written so that events and states, which derive Debug, never
// print the hash into logs or test failure output.
impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(\"$argon2id$***\")")
    }
}

impl TryFrom<String> for PasswordHash {
    type Error = PasswordHashError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PasswordHash> for String {
    fn from(value: PasswordHash) -> String {
        value.0
    }
}

/// A first or last name: trimmed, 1 to 100 characters (`VARCHAR(100)`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PersonName(String);

impl PersonName {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        Self::parse_field("name", raw)
    }

    /// As `parse`, naming the input field in the error (`first_name`, ...).
    pub fn parse_field(field: &'static str, raw: &str) -> Result<Self, ValueError> {
        bounded_text(field, raw, Self::MAX_LEN).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PersonName {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PersonName> for String {
    fn from(value: PersonName) -> String {
        value.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The seed's `users.gender` CHECK values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
    Other,
}

/// Why an account was suspended: trimmed, 1 to 500 characters, so that an
/// operator always leaves a reason the user can be told.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SuspensionReason(String);

impl SuspensionReason {
    pub const MAX_LEN: usize = 500;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        bounded_text("reason", raw, Self::MAX_LEN).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SuspensionReason {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SuspensionReason> for String {
    fn from(value: SuspensionReason) -> String {
        value.0
    }
}

impl fmt::Display for SuspensionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key under `preferences` that holds per-channel notification consent.
pub const NOTIFICATIONS_KEY: &str = "notifications";

/// Whether `preferences` opts out of `channel` ("email", "push", "sms", ...):
/// only an explicit `{"notifications": {channel: false}}` does. A channel the
/// user never mentioned stays on, because the seed's default preferences are
/// `{}` and transactional messages must reach users who never opened settings.
pub fn notification_channel_opted_out(preferences: &Value, channel: &str) -> bool {
    preferences
        .get(NOTIFICATIONS_KEY)
        .and_then(|channels| channels.get(channel))
        .and_then(Value::as_bool)
        == Some(false)
}

/// The shape `notification_channel_opted_out` relies on: `notifications`, when
/// present, is an object of booleans. Returns the offending `notifications`
/// value otherwise.
pub(crate) fn check_notification_preferences(preferences: &Value) -> Result<(), Value> {
    match preferences.get(NOTIFICATIONS_KEY) {
        None => Ok(()),
        Some(Value::Object(channels)) if channels.values().all(Value::is_boolean) => Ok(()),
        Some(other) => Err(other.clone()),
    }
}
