//! What happened to a user. Every event names the user and carries the
//! values the `users`, `user_profiles` and `user_addresses` projections
//! write, so that no projector re-derives a rule (verification resets,
//! default promotion, status moves). Which of their fields identify the
//! person is listed in `personal.rs`.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::address::Address;
use super::code::OneTimeCode;
use super::profile::{Gender, PasswordHash, PersonName, SuspensionReason};
use super::role::UserRole;
use super::status::UserStatus;
use crate::values::{BlindIndex, Email, Phone, Url};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    /// A new account, `active`, with nothing verified yet. The profile row
    /// starts with the seed's defaults (`preferences` and `settings` `{}`).
    UserRegistered {
        user_id: Uuid,
        email: Email,
        password_hash: PasswordHash,
        first_name: PersonName,
        last_name: PersonName,
        phone: Option<Phone>,
        date_of_birth: Option<NaiveDate>,
        gender: Option<Gender>,
        status: UserStatus,
        email_verified: bool,
        phone_verified: bool,
        at: DateTime<Utc>,
    },
    /// The full profile after the change. `phone_verified` is false whenever
    /// the phone number changed.
    UserProfileUpdated {
        user_id: Uuid,
        first_name: PersonName,
        last_name: PersonName,
        phone: Option<Phone>,
        phone_verified: bool,
        date_of_birth: Option<NaiveDate>,
        gender: Option<Gender>,
        avatar_url: Option<Url>,
        bio: Option<String>,
        preferences: Value,
        settings: Value,
        at: DateTime<Utc>,
    },
    /// `email_verified` is always false: a new address must be proven again.
    UserEmailChanged {
        user_id: Uuid,
        previous_email: Email,
        email: Email,
        email_verified: bool,
        at: DateTime<Utc>,
    },
    UserEmailVerified {
        user_id: Uuid,
        email: Email,
        at: DateTime<Utc>,
    },
    /// A code to prove `email` was issued; it replaces any earlier one.
    /// `code` (sealed, as `email` is) is what the mail worker delivers;
    /// the stream checks against `code_hash` alone.
    UserEmailVerificationRequested {
        user_id: Uuid,
        email: Email,
        code: OneTimeCode,
        code_hash: BlindIndex,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// A code to set a new password was issued, to be mailed to `email`.
    UserPasswordResetRequested {
        user_id: Uuid,
        email: Email,
        code: OneTimeCode,
        code_hash: BlindIndex,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// A new password set through a reset code, which is used up.
    UserPasswordReset {
        user_id: Uuid,
        password_hash: PasswordHash,
        at: DateTime<Utc>,
    },
    UserPhoneVerified {
        user_id: Uuid,
        phone: Phone,
        at: DateTime<Utc>,
    },
    UserPasswordChanged {
        user_id: Uuid,
        password_hash: PasswordHash,
        at: DateTime<Utc>,
    },
    /// `at` is the new `last_login_at`; the rest feeds the activity log.
    UserLoggedIn {
        user_id: Uuid,
        at: DateTime<Utc>,
        ip_address: Option<IpAddr>,
        user_agent: Option<String>,
    },
    UserSuspended {
        user_id: Uuid,
        reason: SuspensionReason,
        previous_status: UserStatus,
        status: UserStatus,
        at: DateTime<Utc>,
    },
    UserReactivated {
        user_id: Uuid,
        previous_status: UserStatus,
        status: UserStatus,
        at: DateTime<Utc>,
    },
    UserDeactivated {
        user_id: Uuid,
        previous_status: UserStatus,
        status: UserStatus,
        at: DateTime<Utc>,
    },
    UserAddressAdded {
        user_id: Uuid,
        address_id: Uuid,
        address: Address,
        is_default: bool,
        at: DateTime<Utc>,
    },
    UserAddressUpdated {
        user_id: Uuid,
        address_id: Uuid,
        address: Address,
        is_default: bool,
        at: DateTime<Utc>,
    },
    /// `new_default_address_id` is the user's default after the removal:
    /// the promoted address when the removed one was the default, the
    /// unchanged default otherwise, `None` when no address is left.
    UserAddressRemoved {
        user_id: Uuid,
        address_id: Uuid,
        was_default: bool,
        new_default_address_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
    UserDefaultAddressSet {
        user_id: Uuid,
        address_id: Uuid,
        previous_default_address_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
    UserRoleChanged {
        user_id: Uuid,
        previous_role: UserRole,
        role: UserRole,
        at: DateTime<Utc>,
    },
    /// The person asked to be forgotten. `status` is always `inactive`; the
    /// stream accepts nothing after this. The event itself holds no personal
    /// data: infrastructure destroys the person's key, which makes the
    /// personal fields of every earlier event unreadable.
    UserErased {
        user_id: Uuid,
        previous_status: UserStatus,
        status: UserStatus,
        at: DateTime<Utc>,
    },
}

impl UserEvent {
    pub fn user_id(&self) -> Uuid {
        match self {
            UserEvent::UserRegistered { user_id, .. }
            | UserEvent::UserProfileUpdated { user_id, .. }
            | UserEvent::UserEmailChanged { user_id, .. }
            | UserEvent::UserEmailVerified { user_id, .. }
            | UserEvent::UserPasswordReset { user_id, .. }
            | UserEvent::UserPasswordResetRequested { user_id, .. }
            | UserEvent::UserEmailVerificationRequested { user_id, .. }
            | UserEvent::UserPhoneVerified { user_id, .. }
            | UserEvent::UserPasswordChanged { user_id, .. }
            | UserEvent::UserLoggedIn { user_id, .. }
            | UserEvent::UserSuspended { user_id, .. }
            | UserEvent::UserReactivated { user_id, .. }
            | UserEvent::UserDeactivated { user_id, .. }
            | UserEvent::UserAddressAdded { user_id, .. }
            | UserEvent::UserAddressUpdated { user_id, .. }
            | UserEvent::UserAddressRemoved { user_id, .. }
            | UserEvent::UserDefaultAddressSet { user_id, .. }
            | UserEvent::UserRoleChanged { user_id, .. }
            | UserEvent::UserErased { user_id, .. } => *user_id,
        }
    }

    pub fn at(&self) -> DateTime<Utc> {
        match self {
            UserEvent::UserRegistered { at, .. }
            | UserEvent::UserProfileUpdated { at, .. }
            | UserEvent::UserEmailChanged { at, .. }
            | UserEvent::UserEmailVerified { at, .. }
            | UserEvent::UserPasswordReset { at, .. }
            | UserEvent::UserPasswordResetRequested { at, .. }
            | UserEvent::UserEmailVerificationRequested { at, .. }
            | UserEvent::UserPhoneVerified { at, .. }
            | UserEvent::UserPasswordChanged { at, .. }
            | UserEvent::UserLoggedIn { at, .. }
            | UserEvent::UserSuspended { at, .. }
            | UserEvent::UserReactivated { at, .. }
            | UserEvent::UserDeactivated { at, .. }
            | UserEvent::UserAddressAdded { at, .. }
            | UserEvent::UserAddressUpdated { at, .. }
            | UserEvent::UserAddressRemoved { at, .. }
            | UserEvent::UserDefaultAddressSet { at, .. }
            | UserEvent::UserRoleChanged { at, .. }
            | UserEvent::UserErased { at, .. } => *at,
        }
    }
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            UserEvent::UserRegistered { .. } => "UserRegistered",
            UserEvent::UserProfileUpdated { .. } => "UserProfileUpdated",
            UserEvent::UserEmailChanged { .. } => "UserEmailChanged",
            UserEvent::UserEmailVerified { .. } => "UserEmailVerified",
            UserEvent::UserPasswordReset { .. } => "UserPasswordReset",
            UserEvent::UserPasswordResetRequested { .. } => "UserPasswordResetRequested",
            UserEvent::UserEmailVerificationRequested { .. } => "UserEmailVerificationRequested",
            UserEvent::UserPhoneVerified { .. } => "UserPhoneVerified",
            UserEvent::UserPasswordChanged { .. } => "UserPasswordChanged",
            UserEvent::UserLoggedIn { .. } => "UserLoggedIn",
            UserEvent::UserSuspended { .. } => "UserSuspended",
            UserEvent::UserReactivated { .. } => "UserReactivated",
            UserEvent::UserDeactivated { .. } => "UserDeactivated",
            UserEvent::UserAddressAdded { .. } => "UserAddressAdded",
            UserEvent::UserAddressUpdated { .. } => "UserAddressUpdated",
            UserEvent::UserAddressRemoved { .. } => "UserAddressRemoved",
            UserEvent::UserDefaultAddressSet { .. } => "UserDefaultAddressSet",
            UserEvent::UserRoleChanged { .. } => "UserRoleChanged",
            UserEvent::UserErased { .. } => "UserErased",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
