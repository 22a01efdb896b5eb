//! The `User` aggregate: one stream per user, holding the account (with its
//! role), the profile and the address book, until the person is erased.
//! `decide` holds every rule that this stream alone can check; `handle` only
//! writes what `decide` returns, so the decision fns and the aggregate cannot
//! drift apart.

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::address::Address;
use super::code::{CodePurpose, CodeRefusal, IssuedCode, PendingCode};
use super::command::{ChangeEmail, RegisterUser, UpdateProfile, UserCommand};
use super::error::UserError;
use super::event::UserEvent;
use super::personal::is_erased_placeholder;
use super::profile::{
    check_notification_preferences, notification_channel_opted_out, Gender, PasswordHash,
    PersonName,
};
use super::role::UserRole;
use super::status::UserStatus;
use crate::values::{
    forbidden_in_json, unforbidden_text, BlindIndex, Email, Phone, TextLayout, Url, ValueError,
};

/// One entry of the address book, in the order it was added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserAddress {
    pub address_id: Uuid,
    pub address: Address,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    id: Option<Uuid>,
    email: Option<Email>,
    password_hash: Option<PasswordHash>,
    first_name: Option<PersonName>,
    last_name: Option<PersonName>,
    phone: Option<Phone>,
    date_of_birth: Option<NaiveDate>,
    gender: Option<Gender>,
    status: UserStatus,
    // Defaulted so that snapshots taken before roles and erasure existed
    // still load.
    #[serde(default)]
    role: UserRole,
    #[serde(default)]
    erased: bool,
    email_verified: bool,
    phone_verified: bool,
    // Defaulted so that snapshots taken before one-time codes existed load.
    #[serde(default)]
    pending_email_verification: Option<PendingCode>,
    #[serde(default)]
    pending_password_reset: Option<PendingCode>,
    avatar_url: Option<Url>,
    bio: Option<String>,
    preferences: Value,
    settings: Value,
    addresses: Vec<UserAddress>,
    default_address_id: Option<Uuid>,
    created_at: Option<DateTime<Utc>>,
    last_login_at: Option<DateTime<Utc>>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn check_date_of_birth(
    date_of_birth: Option<NaiveDate>,
    at: DateTime<Utc>,
) -> Result<(), UserError> {
    match date_of_birth {
        Some(date_of_birth) if date_of_birth > at.date_naive() => {
            Err(UserError::DateOfBirthInFuture { date_of_birth })
        }
        _ => Ok(()),
    }
}

/// Blank free text means "not given", as a blank form field does; what is
/// given must be free of the characters `layout` forbids.
fn non_blank(
    field: &'static str,
    text: Option<String>,
    layout: TextLayout,
) -> Result<Option<String>, ValueError> {
    if let Some(text) = &text {
        unforbidden_text(field, text, layout)?;
    }
    Ok(text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()))
}

/// Settings and preferences are free JSON, but every string in them (keys
/// included) is stored, so none may hold a control character but tab and
/// line feed.
fn printable_json(field: &'static str, value: &serde_json::Value) -> Result<(), ValueError> {
    match forbidden_in_json(value, &|_| TextLayout::MultiLine)
        .into_iter()
        .next()
    {
        Some(found) => Err(ValueError::Text {
            field,
            reason: found.reason,
        }),
        None => Ok(()),
    }
}

impl User {
    // ---- read accessors -------------------------------------------------

    pub fn is_registered(&self) -> bool {
        self.id.is_some()
    }
    pub fn id(&self) -> Option<Uuid> {
        self.id
    }
    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }
    pub fn password_hash(&self) -> Option<&PasswordHash> {
        self.password_hash.as_ref()
    }
    pub fn first_name(&self) -> Option<&PersonName> {
        self.first_name.as_ref()
    }
    pub fn last_name(&self) -> Option<&PersonName> {
        self.last_name.as_ref()
    }
    pub fn phone(&self) -> Option<&Phone> {
        self.phone.as_ref()
    }
    pub fn date_of_birth(&self) -> Option<NaiveDate> {
        self.date_of_birth
    }
    pub fn gender(&self) -> Option<Gender> {
        self.gender
    }
    pub fn status(&self) -> UserStatus {
        self.status
    }
    /// `Customer` from registration until a `ChangeRole`.
    pub fn role(&self) -> UserRole {
        self.role
    }
    /// Once true, the state holds no personal data and every command is
    /// refused with `UserError::Erased`.
    pub fn is_erased(&self) -> bool {
        self.erased
    }
    pub fn email_verified(&self) -> bool {
        self.email_verified
    }
    pub fn phone_verified(&self) -> bool {
        self.phone_verified
    }
    /// The live code of `purpose`, if one was issued and not used or voided
    /// (it may have expired: expiry is checked against the time of use).
    pub fn pending_code(&self, purpose: CodePurpose) -> Option<&PendingCode> {
        match purpose {
            CodePurpose::EmailVerification => self.pending_email_verification.as_ref(),
            CodePurpose::PasswordReset => self.pending_password_reset.as_ref(),
        }
    }
    pub fn avatar_url(&self) -> Option<&Url> {
        self.avatar_url.as_ref()
    }
    pub fn bio(&self) -> Option<&str> {
        self.bio.as_deref()
    }
    /// A JSON object once registered (`{}` until the profile is edited).
    pub fn preferences(&self) -> &Value {
        &self.preferences
    }
    pub fn settings(&self) -> &Value {
        &self.settings
    }
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at
    }
    pub fn last_login_at(&self) -> Option<DateTime<Utc>> {
        self.last_login_at
    }

    /// Whether the user opted out of a notification channel ("email",
    /// "push", "sms"): see `notification_channel_opted_out`.
    pub fn channel_opted_out(&self, channel: &str) -> bool {
        notification_channel_opted_out(&self.preferences, channel)
    }

    /// The address book in the order addresses were added.
    pub fn addresses(&self) -> &[UserAddress] {
        &self.addresses
    }
    pub fn address(&self, address_id: Uuid) -> Option<&Address> {
        self.addresses
            .iter()
            .find(|a| a.address_id == address_id)
            .map(|a| &a.address)
    }
    pub fn default_address_id(&self) -> Option<Uuid> {
        self.default_address_id
    }
    pub fn default_address(&self) -> Option<&Address> {
        self.default_address_id.and_then(|id| self.address(id))
    }

    /// The checkout's gate: only an active account may place orders.
    pub fn can_place_orders(&self) -> Result<(), UserError> {
        self.active_id().map(|_| ())
    }

    // ---- decisions ------------------------------------------------------

    /// The id of a registered user that may still act: every command but
    /// registration starts here, so an erased stream refuses them all.
    fn registered_id(&self) -> Result<Uuid, UserError> {
        let user_id = self.id.ok_or(UserError::NotRegistered)?;
        if self.erased {
            return Err(UserError::Erased { user_id });
        }
        Ok(user_id)
    }

    fn active_id(&self) -> Result<Uuid, UserError> {
        let user_id = self.registered_id()?;
        match self.status {
            UserStatus::Active => Ok(user_id),
            UserStatus::Suspended => Err(UserError::Suspended { user_id }),
            UserStatus::Inactive => Err(UserError::Inactive { user_id }),
        }
    }

    /// The events `command` produces on this stream, or why it is refused.
    /// Set-wide rules (email and phone uniqueness) are not checked here: the
    /// decision fns in `decision.rs` add them around this call.
    pub fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
        if let UserCommand::RegisterUser(register) = command {
            return self.register(register);
        }
        let user_id = self.registered_id()?;
        match command {
            UserCommand::RegisterUser(_) => unreachable!("handled above"),
            UserCommand::UpdateProfile(update) => self.update_profile(user_id, update),
            UserCommand::ChangeEmail(change) => self.change_email(user_id, change),
            UserCommand::RequestEmailVerification { code, at } => {
                let user_id = self.active_id()?;
                let email = self.unverified_email()?;
                let IssuedCode {
                    code,
                    code_hash,
                    expires_at,
                } = code;
                Ok(vec![UserEvent::UserEmailVerificationRequested {
                    user_id,
                    email,
                    code,
                    code_hash,
                    expires_at,
                    at,
                }])
            }
            UserCommand::VerifyEmail { code_hash, at } => {
                let email = self.unverified_email()?;
                self.check_code(CodePurpose::EmailVerification, &code_hash, at)?;
                Ok(vec![UserEvent::UserEmailVerified { user_id, email, at }])
            }
            UserCommand::RequestPasswordReset { code, at } => {
                let user_id = self.active_id()?;
                let email = self.email.clone().ok_or(UserError::NotRegistered)?;
                let IssuedCode {
                    code,
                    code_hash,
                    expires_at,
                } = code;
                Ok(vec![UserEvent::UserPasswordResetRequested {
                    user_id,
                    email,
                    code,
                    code_hash,
                    expires_at,
                    at,
                }])
            }
            UserCommand::ResetPassword {
                code_hash,
                password_hash,
                at,
            } => {
                self.check_password_reset(&code_hash, at)?;
                Ok(vec![UserEvent::UserPasswordReset {
                    user_id,
                    password_hash,
                    at,
                }])
            }
            UserCommand::VerifyPhone { at } => {
                let phone = self.phone.clone().ok_or(UserError::NoPhone { user_id })?;
                if self.phone_verified {
                    return Err(UserError::PhoneAlreadyVerified { phone });
                }
                Ok(vec![UserEvent::UserPhoneVerified { user_id, phone, at }])
            }
            UserCommand::ChangePassword { password_hash, at } => {
                Ok(vec![UserEvent::UserPasswordChanged {
                    user_id,
                    password_hash,
                    at,
                }])
            }
            UserCommand::RecordLogin {
                at,
                ip_address,
                user_agent,
            } => {
                let user_id = self.active_id()?;
                Ok(vec![UserEvent::UserLoggedIn {
                    user_id,
                    at,
                    ip_address,
                    user_agent: non_blank("user_agent", user_agent, TextLayout::SingleLine)?,
                }])
            }
            UserCommand::SuspendUser { reason, at } => {
                let previous_status = self.transition_to(UserStatus::Suspended)?;
                Ok(vec![UserEvent::UserSuspended {
                    user_id,
                    reason,
                    previous_status,
                    status: UserStatus::Suspended,
                    at,
                }])
            }
            UserCommand::ReactivateUser { at } => {
                let previous_status = self.transition_to(UserStatus::Active)?;
                Ok(vec![UserEvent::UserReactivated {
                    user_id,
                    previous_status,
                    status: UserStatus::Active,
                    at,
                }])
            }
            UserCommand::DeactivateUser { at } => {
                let previous_status = self.transition_to(UserStatus::Inactive)?;
                Ok(vec![UserEvent::UserDeactivated {
                    user_id,
                    previous_status,
                    status: UserStatus::Inactive,
                    at,
                }])
            }
            UserCommand::AddAddress {
                address_id,
                address,
                at,
            } => {
                if self.address(address_id).is_some() {
                    return Err(UserError::AddressAlreadyExists { address_id });
                }
                Ok(vec![UserEvent::UserAddressAdded {
                    user_id,
                    address_id,
                    address,
                    // The first address is the default, so a user with any
                    // address always has exactly one default to ship to.
                    is_default: self.default_address_id.is_none(),
                    at,
                }])
            }
            UserCommand::UpdateAddress {
                address_id,
                address,
                at,
            } => {
                let current = self
                    .address(address_id)
                    .ok_or(UserError::AddressNotFound { address_id })?;
                if *current == address {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::UserAddressUpdated {
                    user_id,
                    address_id,
                    address,
                    is_default: self.default_address_id == Some(address_id),
                    at,
                }])
            }
            UserCommand::RemoveAddress { address_id, at } => {
                if self.address(address_id).is_none() {
                    return Err(UserError::AddressNotFound { address_id });
                }
                let was_default = self.default_address_id == Some(address_id);
                let new_default_address_id = if was_default {
                    // The most recently added address is the likeliest to
                    // still be where the user lives.
                    self.addresses
                        .iter()
                        .rev()
                        .map(|a| a.address_id)
                        .find(|id| *id != address_id)
                } else {
                    self.default_address_id
                };
                Ok(vec![UserEvent::UserAddressRemoved {
                    user_id,
                    address_id,
                    was_default,
                    new_default_address_id,
                    at,
                }])
            }
            UserCommand::SetDefaultAddress { address_id, at } => {
                if self.address(address_id).is_none() {
                    return Err(UserError::AddressNotFound { address_id });
                }
                if self.default_address_id == Some(address_id) {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::UserDefaultAddressSet {
                    user_id,
                    address_id,
                    previous_default_address_id: self.default_address_id,
                    at,
                }])
            }
            UserCommand::ChangeRole { role, at } => {
                if self.role == role {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::UserRoleChanged {
                    user_id,
                    previous_role: self.role,
                    role,
                    at,
                }])
            }
            // Erasure is not a move of the status machine: a person may ask
            // for it from any status, and nothing leads out of it.
            UserCommand::EraseUser { at } => Ok(vec![UserEvent::UserErased {
                user_id,
                previous_status: self.status,
                status: UserStatus::Inactive,
                at,
            }]),
        }
    }

    fn register(&self, command: RegisterUser) -> Result<Vec<UserEvent>, UserError> {
        if is_erased_placeholder(&command.email) {
            return Err(UserError::EmailReserved);
        }
        if let Some(user_id) = self.id {
            // The id of an erased person stays taken: reusing it would hand
            // the new account the old one's history (orders, reviews).
            if self.erased {
                return Err(UserError::Erased { user_id });
            }
            return Err(UserError::AlreadyRegistered { user_id });
        }
        check_date_of_birth(command.date_of_birth, command.at)?;
        Ok(vec![UserEvent::UserRegistered {
            user_id: command.user_id,
            email: command.email,
            password_hash: command.password_hash,
            first_name: command.first_name,
            last_name: command.last_name,
            phone: command.phone,
            date_of_birth: command.date_of_birth,
            gender: command.gender,
            status: UserStatus::Active,
            email_verified: false,
            phone_verified: false,
            at: command.at,
        }])
    }

    fn update_profile(
        &self,
        user_id: Uuid,
        command: UpdateProfile,
    ) -> Result<Vec<UserEvent>, UserError> {
        check_date_of_birth(command.date_of_birth, command.at)?;
        if !command.preferences.is_object() {
            return Err(UserError::PreferencesNotAnObject {
                value: command.preferences,
            });
        }
        check_notification_preferences(&command.preferences)
            .map_err(|value| UserError::InvalidNotificationPreferences { value })?;
        if !command.settings.is_object() {
            return Err(UserError::SettingsNotAnObject {
                value: command.settings,
            });
        }
        printable_json("preferences", &command.preferences)?;
        printable_json("settings", &command.settings)?;
        let bio = non_blank("bio", command.bio, TextLayout::MultiLine)?;
        // Verification proves a number, not an account: a new number starts unproven.
        let phone_verified = self.phone_verified && command.phone == self.phone;
        let unchanged = self.first_name.as_ref() == Some(&command.first_name)
            && self.last_name.as_ref() == Some(&command.last_name)
            && self.phone == command.phone
            && self.date_of_birth == command.date_of_birth
            && self.gender == command.gender
            && self.avatar_url == command.avatar_url
            && self.bio == bio
            && self.preferences == command.preferences
            && self.settings == command.settings;
        if unchanged {
            return Ok(vec![]);
        }
        Ok(vec![UserEvent::UserProfileUpdated {
            user_id,
            first_name: command.first_name,
            last_name: command.last_name,
            phone: command.phone,
            phone_verified,
            date_of_birth: command.date_of_birth,
            gender: command.gender,
            avatar_url: command.avatar_url,
            bio,
            preferences: command.preferences,
            settings: command.settings,
            at: command.at,
        }])
    }

    fn change_email(
        &self,
        user_id: Uuid,
        command: ChangeEmail,
    ) -> Result<Vec<UserEvent>, UserError> {
        let previous_email = self.email.clone().ok_or(UserError::NotRegistered)?;
        if is_erased_placeholder(&command.email) {
            return Err(UserError::EmailReserved);
        }
        if previous_email == command.email {
            return Err(UserError::EmailUnchanged {
                email: command.email,
            });
        }
        Ok(vec![UserEvent::UserEmailChanged {
            user_id,
            previous_email,
            email: command.email,
            email_verified: false,
            at: command.at,
        }])
    }

    /// Whether `ResetPassword` with `code_hash` would be accepted `at`, without
    /// a new hash: the command side asks before it spends an argon2 run.
    pub fn check_password_reset(
        &self,
        code_hash: &BlindIndex,
        at: DateTime<Utc>,
    ) -> Result<(), UserError> {
        self.active_id()?;
        self.check_code(CodePurpose::PasswordReset, code_hash, at)
    }

    fn unverified_email(&self) -> Result<Email, UserError> {
        let email = self.email.clone().ok_or(UserError::NotRegistered)?;
        if self.email_verified {
            return Err(UserError::EmailAlreadyVerified { email });
        }
        Ok(email)
    }

    fn check_code(
        &self,
        purpose: CodePurpose,
        offered: &BlindIndex,
        at: DateTime<Utc>,
    ) -> Result<(), UserError> {
        let pending = self
            .pending_code(purpose)
            .ok_or(UserError::NoPendingCode { purpose })?;
        pending.check(offered, at).map_err(|refusal| match refusal {
            CodeRefusal::Wrong => UserError::WrongCode { purpose },
            CodeRefusal::Expired { expired_at } => UserError::CodeExpired {
                purpose,
                expired_at,
            },
        })
    }

    /// The status being left, when `to` is reachable from it.
    fn transition_to(&self, to: UserStatus) -> Result<UserStatus, UserError> {
        let from = self.status;
        if from.can_become(to) {
            Ok(from)
        } else {
            Err(UserError::InvalidStatusTransition { from, to })
        }
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            UserEvent::UserRegistered {
                user_id,
                email,
                password_hash,
                first_name,
                last_name,
                phone,
                date_of_birth,
                gender,
                status,
                email_verified,
                phone_verified,
                at,
            } => {
                self.id = Some(user_id);
                self.email = Some(email);
                self.password_hash = Some(password_hash);
                self.first_name = Some(first_name);
                self.last_name = Some(last_name);
                self.phone = phone;
                self.date_of_birth = date_of_birth;
                self.gender = gender;
                self.status = status;
                self.role = UserRole::Customer;
                self.email_verified = email_verified;
                self.phone_verified = phone_verified;
                self.preferences = empty_object();
                self.settings = empty_object();
                self.created_at = Some(at);
            }
            UserEvent::UserProfileUpdated {
                first_name,
                last_name,
                phone,
                phone_verified,
                date_of_birth,
                gender,
                avatar_url,
                bio,
                preferences,
                settings,
                ..
            } => {
                self.first_name = Some(first_name);
                self.last_name = Some(last_name);
                self.phone = phone;
                self.phone_verified = phone_verified;
                self.date_of_birth = date_of_birth;
                self.gender = gender;
                self.avatar_url = avatar_url;
                self.bio = bio;
                self.preferences = preferences;
                self.settings = settings;
            }
            UserEvent::UserEmailChanged {
                email,
                email_verified,
                ..
            } => {
                self.email = Some(email);
                self.email_verified = email_verified;
                // Both codes went to the old address: neither may act on
                // the account once it has moved.
                self.pending_email_verification = None;
                self.pending_password_reset = None;
            }
            UserEvent::UserEmailVerified { .. } => {
                self.email_verified = true;
                self.pending_email_verification = None;
            }
            UserEvent::UserEmailVerificationRequested {
                code_hash,
                expires_at,
                ..
            } => {
                self.pending_email_verification = Some(PendingCode {
                    code_hash,
                    expires_at,
                });
            }
            UserEvent::UserPasswordResetRequested {
                code_hash,
                expires_at,
                ..
            } => {
                self.pending_password_reset = Some(PendingCode {
                    code_hash,
                    expires_at,
                });
            }
            UserEvent::UserPhoneVerified { .. } => self.phone_verified = true,
            // Whichever way the password changed, an outstanding reset code
            // must not change it again.
            UserEvent::UserPasswordChanged { password_hash, .. }
            | UserEvent::UserPasswordReset { password_hash, .. } => {
                self.password_hash = Some(password_hash);
                self.pending_password_reset = None;
            }
            UserEvent::UserLoggedIn { at, .. } => self.last_login_at = Some(at),
            UserEvent::UserSuspended { status, .. }
            | UserEvent::UserReactivated { status, .. }
            | UserEvent::UserDeactivated { status, .. } => self.status = status,
            UserEvent::UserAddressAdded {
                address_id,
                address,
                is_default,
                ..
            } => {
                self.addresses.push(UserAddress {
                    address_id,
                    address,
                });
                if is_default {
                    self.default_address_id = Some(address_id);
                }
            }
            UserEvent::UserAddressUpdated {
                address_id,
                address,
                ..
            } => {
                if let Some(entry) = self
                    .addresses
                    .iter_mut()
                    .find(|a| a.address_id == address_id)
                {
                    entry.address = address;
                }
            }
            UserEvent::UserAddressRemoved {
                address_id,
                new_default_address_id,
                ..
            } => {
                self.addresses.retain(|a| a.address_id != address_id);
                self.default_address_id = new_default_address_id;
            }
            UserEvent::UserDefaultAddressSet { address_id, .. } => {
                self.default_address_id = Some(address_id);
            }
            UserEvent::UserRoleChanged { role, .. } => self.role = role,
            UserEvent::UserErased { status, .. } => {
                // Only what identifies nobody survives, so that a snapshot
                // taken after the erasure does not keep what the destroyed
                // key made unreadable in the events.
                *self = User {
                    id: self.id,
                    status,
                    role: self.role,
                    erased: true,
                    preferences: empty_object(),
                    settings: empty_object(),
                    created_at: self.created_at,
                    last_login_at: self.last_login_at,
                    ..User::default()
                };
            }
        }
    }
}
