//! The user decisions that reach beyond the user's stream: email uniqueness
//! through `UniqueKey` claim streams, and phone uniqueness through the read
//! model (uniqueness.rs has no phone scope, so the `users_phone_key`
//! constraint stays the final guard and the command side passes in who
//! currently holds the number).

use uuid::Uuid;

use super::aggregate::User;
use super::command::{ChangeEmail, RegisterUser, UpdateProfile, UserCommand};
use super::error::UserError;
use super::event::UserEvent;
use crate::uniqueness::{
    unique_key_stream_id, UniqueKey, UniqueKeyError, UniqueKeyEvent, UniqueScope,
};
use crate::values::{Email, Phone};

/// What a user decision appends in one atomic multi-stream append: `events`
/// to the user's stream, each of `unique_key_events` to the unique-key stream
/// named beside it, all with the expected versions the command side loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct UserDecision {
    pub events: Vec<UserEvent>,
    pub unique_key_events: Vec<(String, UniqueKeyEvent)>,
}

/// The claim stream of an email (`user_email:{email}`). Email is already
/// lower-cased, which makes the claim case-insensitive.
pub fn email_stream_id(email: &Email) -> String {
    unique_key_stream_id(UniqueScope::UserEmail, email.as_str())
}

/// Refuses `phone` for `user_id` when the read model says another user holds
/// it. `phone_owner` is the id of the user whose `users.phone` equals it.
pub fn ensure_phone_available(
    user_id: Uuid,
    phone: &Phone,
    phone_owner: Option<Uuid>,
) -> Result<(), UserError> {
    match phone_owner {
        Some(owner) if owner != user_id => Err(UserError::PhoneTaken {
            phone: phone.clone(),
        }),
        _ => Ok(()),
    }
}

fn claim_email(
    key: &UniqueKey,
    email: &Email,
    owner_id: Uuid,
) -> Result<Vec<(String, UniqueKeyEvent)>, UserError> {
    let stream_id = email_stream_id(email);
    key.claim(UniqueScope::UserEmail, email.as_str(), owner_id)
        .map(|events| events.into_iter().map(|e| (stream_id.clone(), e)).collect())
        .map_err(|error| match error {
            UniqueKeyError::AlreadyClaimed { .. } | UniqueKeyError::NotHeld { .. } => {
                UserError::EmailTaken {
                    email: email.clone(),
                }
            }
        })
}

/// Registration: the user's stream must be empty, the email's claim stream
/// (`email_key`, loaded from `email_stream_id(&command.email)`) free or
/// already ours, and the phone, if any, not held by someone else.
pub fn register_user(
    user: &User,
    email_key: &UniqueKey,
    phone_owner: Option<Uuid>,
    command: RegisterUser,
) -> Result<UserDecision, UserError> {
    let user_id = command.user_id;
    let email = command.email.clone();
    let phone = command.phone.clone();
    let events = user.decide(UserCommand::RegisterUser(command))?;
    let unique_key_events = claim_email(email_key, &email, user_id)?;
    if let Some(phone) = &phone {
        ensure_phone_available(user_id, phone, phone_owner)?;
    }
    Ok(UserDecision {
        events,
        unique_key_events,
    })
}

/// An email change: claims the new address (`new_email_key`, loaded from
/// `email_stream_id(&command.email)`) and releases the old one
/// (`previous_email_key`, from `email_stream_id(user.email())`). The old key
/// is released only when this user holds it, so an account imported without
/// a claim can still change its email.
pub fn change_email(
    user: &User,
    new_email_key: &UniqueKey,
    previous_email_key: &UniqueKey,
    command: ChangeEmail,
) -> Result<UserDecision, UserError> {
    let email = command.email.clone();
    let events = user.decide(UserCommand::ChangeEmail(command))?;
    let (user_id, previous_email) = match (user.id(), user.email()) {
        (Some(id), Some(previous)) => (id, previous),
        _ => return Err(UserError::NotRegistered),
    };
    let mut unique_key_events = claim_email(new_email_key, &email, user_id)?;
    // `release` refuses a key this user does not hold: then there is nothing to free.
    let released = previous_email_key
        .release(UniqueScope::UserEmail, previous_email.as_str(), user_id)
        .unwrap_or_default();
    let stream_id = email_stream_id(previous_email);
    unique_key_events.extend(released.into_iter().map(|e| (stream_id.clone(), e)));
    Ok(UserDecision {
        events,
        unique_key_events,
    })
}

/// A profile update: a new phone number must not be held by another user.
/// An unchanged number is not re-checked, so that a duplicate the read model
/// inherited from before the check cannot lock its users out of editing.
pub fn update_profile(
    user: &User,
    phone_owner: Option<Uuid>,
    command: UpdateProfile,
) -> Result<Vec<UserEvent>, UserError> {
    let phone = command.phone.clone();
    let events = user.decide(UserCommand::UpdateProfile(command))?;
    if let (Some(phone), Some(user_id)) = (&phone, user.id()) {
        if user.phone() != Some(phone) {
            ensure_phone_available(user_id, phone, phone_owner)?;
        }
    }
    Ok(events)
}
