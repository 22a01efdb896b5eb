//! Why a user command was refused. Each variant carries what the caller needs
//! to explain the refusal.

use chrono::NaiveDate;
use serde_json::Value;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use super::code::CodePurpose;
use super::status::UserStatus;
use crate::values::{Email, Phone, ValueError};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UserError {
    #[error("no user is registered on this stream")]
    NotRegistered,
    #[error("user {user_id} is already registered")]
    AlreadyRegistered { user_id: Uuid },
    /// The stream is a tombstone: the person's data is gone and the account
    /// can neither act nor be registered again under the same id.
    #[error("user {user_id} has been erased")]
    Erased { user_id: Uuid },
    #[error("email {email} is already taken")]
    EmailTaken { email: Email },
    /// The placeholder domain of erased people's emails.
    #[error("emails at erased.invalid are reserved")]
    EmailReserved,
    #[error("phone {phone} is already taken")]
    PhoneTaken { phone: Phone },
    /// A decision that has to claim or release a phone number was not given
    /// that number's claim stream: a fault of the caller, reported rather
    /// than skipped, because a skipped claim leaves the number unguarded and
    /// a skipped release leaves it locked for good.
    #[error("the claim stream of the phone number was not loaded")]
    PhoneClaimMissing,
    #[error("email is already {email}")]
    EmailUnchanged { email: Email },
    #[error("email {email} is already verified")]
    EmailAlreadyVerified { email: Email },
    #[error("user {user_id} has no phone number to verify")]
    NoPhone { user_id: Uuid },
    #[error("phone {phone} is already verified")]
    PhoneAlreadyVerified { phone: Phone },
    #[error("date of birth {date_of_birth} is in the future")]
    DateOfBirthInFuture { date_of_birth: NaiveDate },
    #[error("preferences must be a JSON object, got {value}")]
    PreferencesNotAnObject { value: Value },
    #[error("settings must be a JSON object, got {value}")]
    SettingsNotAnObject { value: Value },
    #[error("preferences.notifications must be an object of booleans, got {value}")]
    InvalidNotificationPreferences { value: Value },
    #[error("user {user_id} is suspended")]
    Suspended { user_id: Uuid },
    #[error("user {user_id} is inactive")]
    Inactive { user_id: Uuid },
    #[error("a user cannot go from {from} to {to}")]
    InvalidStatusTransition { from: UserStatus, to: UserStatus },
    #[error("address {address_id} already exists")]
    AddressAlreadyExists { address_id: Uuid },
    #[error("address {address_id} not found")]
    AddressNotFound { address_id: Uuid },
    /// No code of this purpose is live: none was requested, or the last one
    /// was used, or replaced by an email change.
    #[error("no {purpose} code is pending")]
    NoPendingCode { purpose: CodePurpose },
    #[error("the {purpose} code does not match")]
    WrongCode { purpose: CodePurpose },
    #[error("the {purpose} code expired at {expired_at}")]
    CodeExpired {
        purpose: CodePurpose,
        expired_at: DateTime<Utc>,
    },
    #[error(transparent)]
    InvalidValue(#[from] ValueError),
}
