//! The user aggregate behind the seed's `users`, `user_profiles` and
//! `user_addresses` tables: one stream per user holding the account (email,
//! password hash, role, status, verification), the profile (including the
//! notification opt-outs in `preferences`) and the address book with its
//! single default, until the person is erased. Also owns the user decisions
//! that reach other streams (email and phone uniqueness through `UniqueKey`
//! claims named by blind indexes, and their release on erasure), the
//! password policy a new password must meet before it is hashed, the
//! one-time codes that verify an email or reset a password, and the list of
//! event fields that identify a person. The rules are written up in
//! docs/domain.md ("User aggregate").

mod address;
mod aggregate;
mod code;
mod command;
mod decision;
mod error;
mod event;
mod password;
mod personal;
mod profile;
mod role;
mod status;

#[cfg(test)]
mod tests;

pub use address::{Address, AddressType};
pub use aggregate::{User, UserAddress};
pub use code::{CodePurpose, CodeRefusal, IssuedCode, OneTimeCode, PendingCode};
pub use command::{ChangeEmail, RegisterUser, UpdateProfile, UserCommand};
pub use decision::{
    change_email, email_stream_id, erase_user, phone_stream_id, register_user, update_profile,
    Claim, UserDecision,
};
pub use error::UserError;
pub use event::UserEvent;
pub use password::{Password, PasswordError, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS};
pub(crate) use personal::erased_address;
pub use personal::{erased_value, is_erased_placeholder, personal_fields};
pub use profile::{
    notification_channel_opted_out, Gender, PasswordHash, PasswordHashError, PersonName,
    SuspensionReason, NOTIFICATIONS_KEY,
};
pub use role::UserRole;
pub use status::UserStatus;
