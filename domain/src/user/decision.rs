//! The user decisions that reach beyond the user's stream: email and phone
//! uniqueness through `UniqueKey` claim streams, and the release of both
//! claims when a person is erased. Claim streams are named by a blind index
//! of the value, never by the value: the command side computes the index
//! (a keyed digest of the normalised email or phone), loads the stream it
//! names and passes both in as a `Claim`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::aggregate::User;
use super::command::{ChangeEmail, RegisterUser, UpdateProfile, UserCommand};
use super::error::UserError;
use super::event::UserEvent;
use crate::uniqueness::{unique_key_stream_id, UniqueKey, UniqueKeyEvent, UniqueScope};
use crate::values::BlindIndex;

/// What a user decision appends in one atomic multi-stream append: `events`
/// to the user's stream, each of `unique_key_events` to the unique-key stream
/// named beside it, all with the expected versions the command side loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct UserDecision {
    pub events: Vec<UserEvent>,
    pub unique_key_events: Vec<(String, UniqueKeyEvent)>,
}

/// A loaded claim stream and the blind index naming it: `key` is the state
/// of the stream `email_stream_id(index)` or `phone_stream_id(index)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim<'a> {
    pub key: &'a UniqueKey,
    pub index: &'a BlindIndex,
}

/// The claim stream of an email: `user_email:{index}`. The index is of the
/// lower-cased email (`Email` already is), which keeps the claim
/// case-insensitive.
pub fn email_stream_id(index: &BlindIndex) -> String {
    unique_key_stream_id(UniqueScope::UserEmail, index.as_str())
}

/// The claim stream of a phone number: `user_phone:{index}`, the index being
/// of the normalised number (`Phone` already is).
pub fn phone_stream_id(index: &BlindIndex) -> String {
    unique_key_stream_id(UniqueScope::UserPhone, index.as_str())
}

fn stream_id(scope: UniqueScope, index: &BlindIndex) -> String {
    unique_key_stream_id(scope, index.as_str())
}

/// The events giving `claim` to `owner_id`; `None` when another owner holds it.
fn claim(
    scope: UniqueScope,
    claim: Claim<'_>,
    owner_id: Uuid,
) -> Option<Vec<(String, UniqueKeyEvent)>> {
    let stream_id = stream_id(scope, claim.index);
    claim
        .key
        .claim(scope, claim.index.as_str(), owner_id)
        .ok()
        .map(|events| events.into_iter().map(|e| (stream_id.clone(), e)).collect())
}

/// The events freeing `claim` when `owner_id` holds it, none otherwise: an
/// account imported without a claim, or whose claim another user took while
/// the read model still allowed duplicates, has nothing to free.
fn release_if_held(
    scope: UniqueScope,
    claim: Claim<'_>,
    owner_id: Uuid,
) -> Vec<(String, UniqueKeyEvent)> {
    let stream_id = stream_id(scope, claim.index);
    claim
        .key
        .release(scope, claim.index.as_str(), owner_id)
        .unwrap_or_default()
        .into_iter()
        .map(|e| (stream_id.clone(), e))
        .collect()
}

/// Registration: the user's stream must be empty, the email's claim free or
/// already ours, and, when the command has a phone, the phone's claim
/// (required: `PhoneClaimMissing`) free or already ours. A phone claim given
/// without a phone is ignored.
pub fn register_user(
    user: &User,
    email: Claim<'_>,
    phone: Option<Claim<'_>>,
    command: RegisterUser,
) -> Result<UserDecision, UserError> {
    let user_id = command.user_id;
    let clear_email = command.email.clone();
    let clear_phone = command.phone.clone();
    let events = user.decide(UserCommand::RegisterUser(command))?;
    let phone = match (clear_phone, phone) {
        (Some(clear), Some(phone)) => Some((clear, phone)),
        (Some(_), None) => return Err(UserError::PhoneClaimMissing),
        (None, _) => None,
    };
    let mut unique_key_events = claim(UniqueScope::UserEmail, email, user_id)
        .ok_or(UserError::EmailTaken { email: clear_email })?;
    if let Some((clear, phone)) = phone {
        let claimed = claim(UniqueScope::UserPhone, phone, user_id)
            .ok_or(UserError::PhoneTaken { phone: clear })?;
        unique_key_events.extend(claimed);
    }
    Ok(UserDecision {
        events,
        unique_key_events,
    })
}

/// An email change: claims the new address (`new_email`, the claim of
/// `command.email`) and releases the old one (`previous_email`, the claim of
/// `user.email()`) when this user holds it, so that an account imported
/// without a claim can still change its email.
pub fn change_email(
    user: &User,
    new_email: Claim<'_>,
    previous_email: Claim<'_>,
    command: ChangeEmail,
) -> Result<UserDecision, UserError> {
    let email = command.email.clone();
    let events = user.decide(UserCommand::ChangeEmail(command))?;
    let user_id = user.id().ok_or(UserError::NotRegistered)?;
    let mut unique_key_events =
        claim(UniqueScope::UserEmail, new_email, user_id).ok_or(UserError::EmailTaken { email })?;
    unique_key_events.extend(release_if_held(
        UniqueScope::UserEmail,
        previous_email,
        user_id,
    ));
    Ok(UserDecision {
        events,
        unique_key_events,
    })
}

/// A profile update. When the phone changes, the new number's claim
/// (`new_phone`, required when there is a new number) is taken, refused
/// with `PhoneTaken` when another user holds it, and the previous number's
/// claim (`previous_phone`, required when the user had a number) is
/// released when this user holds it. An unchanged number claims nothing,
/// so that a duplicate inherited from before phone claims existed cannot
/// lock its users out of editing their profile.
pub fn update_profile(
    user: &User,
    new_phone: Option<Claim<'_>>,
    previous_phone: Option<Claim<'_>>,
    command: UpdateProfile,
) -> Result<UserDecision, UserError> {
    let clear_phone = command.phone.clone();
    let events = user.decide(UserCommand::UpdateProfile(command))?;
    let user_id = user.id().ok_or(UserError::NotRegistered)?;
    let mut unique_key_events = Vec::new();
    if clear_phone.as_ref() != user.phone() {
        if let Some(clear) = clear_phone {
            let new_phone = new_phone.ok_or(UserError::PhoneClaimMissing)?;
            unique_key_events = claim(UniqueScope::UserPhone, new_phone, user_id)
                .ok_or(UserError::PhoneTaken { phone: clear })?;
        }
        if user.phone().is_some() {
            let previous_phone = previous_phone.ok_or(UserError::PhoneClaimMissing)?;
            unique_key_events.extend(release_if_held(
                UniqueScope::UserPhone,
                previous_phone,
                user_id,
            ));
        }
    }
    Ok(UserDecision {
        events,
        unique_key_events,
    })
}

/// Erasure: `UserErased`, and the release of the email claim and of the
/// phone claim (required when the user has a phone) that this user holds,
/// so that the address and the number can be registered again. Once the
/// person's data is erased, nobody can compute the indexes naming their
/// claims again: they are freed now or never.
pub fn erase_user(
    user: &User,
    email: Claim<'_>,
    phone: Option<Claim<'_>>,
    at: DateTime<Utc>,
) -> Result<UserDecision, UserError> {
    let events = user.decide(UserCommand::EraseUser { at })?;
    let user_id = user.id().ok_or(UserError::NotRegistered)?;
    if user.phone().is_some() && phone.is_none() {
        return Err(UserError::PhoneClaimMissing);
    }
    let mut unique_key_events = release_if_held(UniqueScope::UserEmail, email, user_id);
    if let Some(phone) = phone {
        unique_key_events.extend(release_if_held(UniqueScope::UserPhone, phone, user_id));
    }
    Ok(UserDecision {
        events,
        unique_key_events,
    })
}
