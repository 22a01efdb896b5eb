//! The user aggregate behind the seed's `users`, `user_profiles` and
//! `user_addresses` tables: one stream per user holding the account (email,
//! password hash, status, verification), the profile (including the
//! notification opt-outs in `preferences`) and the address book with its
//! single default. Also owns the user decisions that reach other streams:
//! email uniqueness through `UniqueKey` claims, phone uniqueness through the
//! read model. The rules are written up in docs/domain/user.md.

mod address;
mod aggregate;
mod command;
mod decision;
mod error;
mod event;
mod profile;
mod status;

#[cfg(test)]
mod tests;

pub use address::{Address, AddressType};
pub use aggregate::{User, UserAddress};
pub use command::{ChangeEmail, RegisterUser, UpdateProfile, UserCommand};
pub use decision::{
    change_email, email_stream_id, ensure_phone_available, register_user, update_profile,
    UserDecision,
};
pub use error::UserError;
pub use event::UserEvent;
pub use profile::{
    notification_channel_opted_out, Gender, PasswordHash, PasswordHashError, PersonName,
    SuspensionReason, NOTIFICATIONS_KEY,
};
pub use status::UserStatus;
