//! What can be asked of a user. The three commands that touch another stream
//! or a set-wide rule (registration, email change, profile update with its
//! phone) are standalone structs, so that the decision fns in `decision.rs`
//! can take them; the rest are struct variants. Erasure also frees claims,
//! through `decision::erase_user`.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::address::Address;
use super::code::IssuedCode;
use super::profile::{Gender, PasswordHash, PersonName, SuspensionReason};
use super::role::UserRole;
use crate::values::{BlindIndex, Email, Phone, Url};

/// Opens the user's stream, as a customer. Go through
/// `decision::register_user`: it adds the email and phone claims that this
/// stream alone cannot make.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterUser {
    pub user_id: Uuid,
    pub email: Email,
    pub password_hash: PasswordHash,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub phone: Option<Phone>,
    pub date_of_birth: Option<NaiveDate>,
    pub gender: Option<Gender>,
    pub at: DateTime<Utc>,
}

/// Replaces the whole editable profile (the `users` personal columns and the
/// `user_profiles` row). Go through `decision::update_profile` for the phone
/// claim.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateProfile {
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub phone: Option<Phone>,
    pub date_of_birth: Option<NaiveDate>,
    pub gender: Option<Gender>,
    pub avatar_url: Option<Url>,
    pub bio: Option<String>,
    /// A JSON object; see `NOTIFICATIONS_KEY` for the part notifications read.
    pub preferences: Value,
    /// A JSON object, opaque to the domain.
    pub settings: Value,
    pub at: DateTime<Utc>,
}

/// Moves the user to a new email. Go through `decision::change_email`: it
/// claims the new address and releases the old one.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEmail {
    pub email: Email,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    RegisterUser(RegisterUser),
    UpdateProfile(UpdateProfile),
    ChangeEmail(ChangeEmail),
    /// Issues a code proving the current email, replacing any earlier one.
    RequestEmailVerification {
        code: IssuedCode,
        at: DateTime<Utc>,
    },
    /// `code_hash` is the digest of the code the person typed, computed as
    /// for the issued one.
    VerifyEmail {
        code_hash: BlindIndex,
        at: DateTime<Utc>,
    },
    /// Issues a code allowing a new password without the old one. Only an
    /// active account may reset: a suspended person must not regain access
    /// this way.
    RequestPasswordReset {
        code: IssuedCode,
        at: DateTime<Utc>,
    },
    /// Sets `password_hash` when `code_hash` is the digest of the live reset
    /// code; the code is used up.
    ResetPassword {
        code_hash: BlindIndex,
        password_hash: PasswordHash,
        at: DateTime<Utc>,
    },
    VerifyPhone {
        at: DateTime<Utc>,
    },
    ChangePassword {
        password_hash: PasswordHash,
        at: DateTime<Utc>,
    },
    RecordLogin {
        at: DateTime<Utc>,
        ip_address: Option<IpAddr>,
        user_agent: Option<String>,
    },
    SuspendUser {
        reason: SuspensionReason,
        at: DateTime<Utc>,
    },
    ReactivateUser {
        at: DateTime<Utc>,
    },
    DeactivateUser {
        at: DateTime<Utc>,
    },
    AddAddress {
        address_id: Uuid,
        address: Address,
        at: DateTime<Utc>,
    },
    UpdateAddress {
        address_id: Uuid,
        address: Address,
        at: DateTime<Utc>,
    },
    RemoveAddress {
        address_id: Uuid,
        at: DateTime<Utc>,
    },
    SetDefaultAddress {
        address_id: Uuid,
        at: DateTime<Utc>,
    },
    /// Allowed in any status, so that a suspended admin can be demoted.
    ChangeRole {
        role: UserRole,
        at: DateTime<Utc>,
    },
    /// The person's right to erasure: the last command the stream accepts.
    /// Go through `decision::erase_user`, which also frees the email and
    /// phone claims.
    EraseUser {
        at: DateTime<Utc>,
    },
}
