//! The signed-in user's own account, on the stream named by the session's
//! user id: `PATCH /v1/me` (the profile, moving the phone's claim),
//! `PUT /v1/me/email` and `PUT /v1/me/password` (behind the current
//! password, then every session ends), the address book under
//! `/v1/me/addresses`, and `DELETE /v1/me` (erasure, as
//! [`users::erase_account`]).
//!
//! `/v1/me` is one path for every user; idempotency keys are scoped to
//! their sender by the request layer, so one user's key never answers
//! another's request.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use domain::uniqueness::{UniqueKey, UniqueScope};
use domain::user::{
    change_email as decide_change_email, update_profile as decide_update_profile, Address,
    AddressType, ChangeEmail, CodePurpose, Gender, Password, PasswordHash, PersonName,
    UpdateProfile, User, UserCommand,
};
use domain::values::{Email, Phone, PostalAddressInput};
use infrastructure::event_store::aggregates::Loaded;
use infrastructure::event_store::StreamAppend;
use serde::Deserialize;
use serde_json::Value;
use tracing::{instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::{revoke_sessions, LoadedClaim};
use super::categories::merge_text;
use super::{codes, users};
use crate::auth::SignedIn;
use crate::command::{execute, key_appends, load_existing, AppState, Plan, Receipt};
use crate::error::ApiError;
use crate::input::{self, checked, patch, Fields, Patch};
use crate::openapi::{
    CommandHeaders, Conflict, InvalidCredentials, NotFound, PreconditionFailed, RuleBroken,
};
use crate::request::{ApiPath, CommandBody, CommandContext, CommandRequest};

// ---- profile -------------------------------------------------------------

/// A partial profile: absent fields stay, `null` clears a nullable one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String)]
    pub first_name: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String)]
    pub last_name: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub phone: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<NaiveDate>)]
    pub date_of_birth: Patch<NaiveDate>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<crate::openapi::GenderName>)]
    pub gender: Patch<Gender>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>, pattern = r"^\s*https?://[^/\s]\S*\s*$")]
    pub avatar_url: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub bio: Patch<String>,
    /// Replaced whole: a JSON object; `notifications`, when given, an object of booleans.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Object)]
    pub preferences: Patch<Value>,
    /// Replaced whole: a JSON object.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Object)]
    pub settings: Patch<Value>,
}

impl CommandBody for UpdateProfileRequest {
    // The domain allows tabs and line feeds in the bio alone.
    const MULTI_LINE_FIELDS: &'static [&'static str] = &["bio"];
}

/// A patch field of a column that `null` clears, without parsing.
fn merge_value<T>(patch: Patch<T>, current: Option<T>) -> Option<T> {
    match patch {
        None => current,
        Some(value) => value,
    }
}

impl UpdateProfileRequest {
    fn is_empty(&self) -> bool {
        self.first_name.is_none()
            && self.last_name.is_none()
            && self.phone.is_none()
            && self.date_of_birth.is_none()
            && self.gender.is_none()
            && self.avatar_url.is_none()
            && self.bio.is_none()
            && self.preferences.is_none()
            && self.settings.is_none()
    }

    /// The user's whole profile with this patch merged in.
    fn merge(&self, user: &User, at: DateTime<Utc>) -> Result<UpdateProfile, ApiError> {
        let id = user.id().unwrap_or_default();
        // An erased user has no names left: there is no profile to edit.
        let (Some(first_name), Some(last_name)) = (user.first_name(), user.last_name()) else {
            return Err(ApiError::not_found("user", id));
        };
        let patch = self.clone();
        let mut fields = Fields::new();
        let first_name =
            fields.merge_required("first_name", patch.first_name, first_name.clone(), |raw| {
                PersonName::parse_field("first_name", &raw)
            });
        let last_name =
            fields.merge_required("last_name", patch.last_name, last_name.clone(), |raw| {
                PersonName::parse_field("last_name", &raw)
            });
        let phone = fields.merge_nullable("phone", patch.phone, user.phone().cloned(), |raw| {
            Phone::parse(&raw)
        });
        let avatar_url = fields.merge_nullable(
            "avatar_url",
            patch.avatar_url,
            user.avatar_url().cloned(),
            input::url,
        );
        // The seed's columns are NOT NULL DEFAULT '{}': `{}` empties them.
        let preferences = fields.merge_required(
            "preferences",
            patch.preferences,
            user.preferences().clone(),
            Ok::<Value, String>,
        );
        let settings = fields.merge_required(
            "settings",
            patch.settings,
            user.settings().clone(),
            Ok::<Value, String>,
        );
        fields.finish()?;
        Ok(UpdateProfile {
            first_name: checked(first_name)?,
            last_name: checked(last_name)?,
            phone: checked(phone)?,
            date_of_birth: merge_value(patch.date_of_birth, user.date_of_birth()),
            gender: merge_value(patch.gender, user.gender()),
            avatar_url: checked(avatar_url)?,
            bio: merge_text(patch.bio, user.bio().map(str::to_owned)),
            preferences: checked(preferences)?,
            settings: checked(settings)?,
            at,
        })
    }
}

#[utoipa::path(
    patch,
    path = "/v1/me",
    tag = "me",
    operation_id = "update_profile",
    summary = "Update your profile",
    description = "Absent fields stay; `null` clears `phone`, `date_of_birth`, `gender`, `avatar_url` and `bio` (on the \
        others it is a 400); `{}` is a 400. A new phone is claimed (409 `phone-taken`).",
    security(("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = UpdateProfileRequest,
    responses(
        (status = 200, description = "Updated", body = Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %session.user_id))]
pub async fn update_profile(
    SignedIn(session, _): SignedIn,
    State(state): State<AppState>,
    request: CommandRequest<UpdateProfileRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    if body.is_empty() {
        return Err(ApiError::invalid_field(
            "body",
            "give at least one field to change",
        ));
    }
    let user_id = session.user_id;
    execute(&state, &context, || {
        plan_update_profile(state.clone(), context.clone(), user_id, body.clone())
    })
    .await
}

async fn plan_update_profile(
    state: AppState,
    context: CommandContext,
    user_id: Uuid,
    patch: UpdateProfileRequest,
) -> Result<Plan, ApiError> {
    let user = load_existing::<User>(&state, &context, "user", user_id).await?;
    let command = patch.merge(&user.aggregate, context.at)?;
    // Only a number that changes claims or releases anything.
    let (new_phone, previous_phone) = if command.phone.as_ref() == user.aggregate.phone() {
        (None, None)
    } else {
        (
            phone_claim(&state, command.phone.as_ref()).await?,
            phone_claim(&state, user.aggregate.phone()).await?,
        )
    };
    let decision = decide_update_profile(
        &user.aggregate,
        new_phone.as_ref().map(LoadedClaim::claim),
        previous_phone.as_ref().map(LoadedClaim::claim),
        command,
    )?;
    let keys: Vec<&Loaded<UniqueKey>> = new_phone
        .iter()
        .chain(previous_phone.iter())
        .map(|claim| &claim.key)
        .collect();
    let mut appends = vec![user.append(&decision.events)];
    appends.extend(key_appends(&keys, &decision.unique_key_events)?);
    Ok(Plan::updated(user_id, appends))
}

async fn phone_claim(
    state: &AppState,
    phone: Option<&Phone>,
) -> Result<Option<LoadedClaim>, ApiError> {
    match phone {
        Some(phone) => Ok(Some(
            LoadedClaim::load(state, UniqueScope::UserPhone, phone.as_str()).await?,
        )),
        None => Ok(None),
    }
}

// ---- credentials -----------------------------------------------------------

/// 401 unless `password` is `user`'s current one. Checked inside the plan,
/// after the idempotent replay (a replayed change would otherwise be checked
/// against the password it set) and against the version the append asserts.
pub(crate) async fn check_password(
    state: &AppState,
    user: &User,
    password: String,
) -> Result<(), ApiError> {
    let hash = user.password_hash().map(|hash| hash.expose().to_owned());
    let matches = state
        .passwords
        .verify(password, hash)
        .await
        .map_err(ApiError::internal)?;
    if matches {
        Ok(())
    } else {
        Err(ApiError::wrong_password())
    }
}

// Not Debug: it holds a password.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    #[schema(format = Email)]
    pub email: String,
    #[schema(format = Password)]
    pub current_password: String,
}

impl CommandBody for ChangeEmailRequest {
    const SECRET_FIELDS: &'static [&'static str] = &["current_password"];
}

#[utoipa::path(
    put,
    path = "/v1/me/email",
    tag = "me",
    operation_id = "change_email",
    summary = "Change your email",
    description = "Needs the current password (401 `invalid-credentials`), checked before the new email's claim (409 \
        `email-taken`; the current email is a 422). Every session of the user ends, this one included.",
    security(("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = ChangeEmailRequest,
    responses(
        (status = 200, description = "Changed", body = Receipt),
        (status = 401, response = InvalidCredentials),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %session.user_id))]
pub async fn change_email(
    SignedIn(session, _): SignedIn,
    State(state): State<AppState>,
    request: CommandRequest<ChangeEmailRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let email =
        Email::parse(&body.email).map_err(|error| ApiError::invalid_field("email", error))?;
    let user_id = session.user_id;
    let password = body.current_password;
    let response = execute(&state, &context, || {
        plan_change_email(
            state.clone(),
            context.clone(),
            user_id,
            email.clone(),
            password.clone(),
        )
    })
    .await?;
    // Every session knows the old email, and one of them may be a thief's.
    revoke_sessions(&state, user_id).await?;
    Ok(response)
}

async fn plan_change_email(
    state: AppState,
    context: CommandContext,
    user_id: Uuid,
    email: Email,
    password: String,
) -> Result<Plan, ApiError> {
    let user = load_existing::<User>(&state, &context, "user", user_id).await?;
    // First, so that without the password nothing is learnt (not even
    // whether the new email is taken).
    check_password(&state, &user.aggregate, password).await?;
    let previous = user
        .aggregate
        .email()
        .ok_or_else(|| ApiError::not_found("user", user_id))?;
    let new_claim = LoadedClaim::load(&state, UniqueScope::UserEmail, email.as_str()).await?;
    let previous_claim =
        LoadedClaim::load(&state, UniqueScope::UserEmail, previous.as_str()).await?;
    let decision = decide_change_email(
        &user.aggregate,
        new_claim.claim(),
        previous_claim.claim(),
        ChangeEmail {
            email,
            at: context.at,
        },
    )?;
    // The new address gets its code in the same append.
    let mut changed = user.aggregate.clone();
    for event in &decision.events {
        changed.apply(event.clone());
    }
    let code = codes::issue(&state, user_id, CodePurpose::EmailVerification, context.at)?;
    let mut events = decision.events;
    events.extend(changed.decide(UserCommand::RequestEmailVerification {
        code,
        at: context.at,
    })?);
    let mut appends = vec![user.append(&events)];
    appends.extend(key_appends(
        &[&new_claim.key, &previous_claim.key],
        &decision.unique_key_events,
    )?);
    Ok(Plan::updated(user_id, appends))
}

// Not Debug: it holds passwords.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(format = Password)]
    pub current_password: String,
    /// 8 to 128 characters, not in the list of common passwords.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    pub new_password: String,
}

impl CommandBody for ChangePasswordRequest {
    const SECRET_FIELDS: &'static [&'static str] = &["current_password", "new_password"];
}

#[utoipa::path(
    put,
    path = "/v1/me/password",
    tag = "me",
    operation_id = "change_password",
    summary = "Change your password",
    description = "Needs the current password (401 `invalid-credentials`); the new one meets the registration's policy. \
        Every session of the user ends, this one included.",
    security(("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed", body = Receipt),
        (status = 401, response = InvalidCredentials),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %session.user_id))]
pub async fn change_password(
    SignedIn(session, _): SignedIn,
    State(state): State<AppState>,
    request: CommandRequest<ChangePasswordRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let new_password = Password::parse(body.new_password)
        .map_err(|error| ApiError::invalid_field("new_password", error))?;
    let user_id = session.user_id;
    let current = body.current_password;
    let response = execute(&state, &context, || {
        plan_change_password(
            state.clone(),
            context.clone(),
            user_id,
            current.clone(),
            new_password.clone(),
        )
    })
    .await?;
    revoke_sessions(&state, user_id).await?;
    Ok(response)
}

async fn plan_change_password(
    state: AppState,
    context: CommandContext,
    user_id: Uuid,
    current: String,
    new_password: Password,
) -> Result<Plan, ApiError> {
    let user = load_existing::<User>(&state, &context, "user", user_id).await?;
    check_password(&state, &user.aggregate, current).await?;
    // Hashed once the current password holds, so that a wrong guess costs
    // the server one argon2 run, not two.
    let hash = state
        .passwords
        .hash(new_password.expose_secret().to_owned())
        .await
        .map_err(ApiError::internal)?;
    let events = user.aggregate.decide(UserCommand::ChangePassword {
        password_hash: PasswordHash::parse(&hash).map_err(ApiError::internal)?,
        at: context.at,
    })?;
    Ok(Plan::updated(user_id, vec![user.append(&events)]))
}

// ---- erasure -----------------------------------------------------------------

#[utoipa::path(
    delete,
    path = "/v1/me",
    tag = "me",
    operation_id = "erase_me",
    summary = "Erase your account",
    description = "As `DELETE /v1/users/{id}` on your own account, behind the current password \
        (401 `invalid-credentials`): erasure cannot be undone, so a stolen session alone must not do it. \
        Every session ends.",
    security(("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = EraseMeRequest,
    responses(
        (status = 204, description = "Erased",
            headers(("Consistency-Token" = String, description = "The erasure's place in the log"))),
        (status = 401, response = InvalidCredentials),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %session.user_id))]
pub async fn erase(
    SignedIn(session, _): SignedIn,
    State(state): State<AppState>,
    request: CommandRequest<EraseMeRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    users::erase_account(
        &state,
        &context,
        session.user_id,
        Some(body.current_password),
    )
    .await
}

// Not Debug: it holds a password.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseMeRequest {
    #[schema(format = Password)]
    pub current_password: String,
}

impl CommandBody for EraseMeRequest {
    const SECRET_FIELDS: &'static [&'static str] = &["current_password"];
}

// ---- address book ------------------------------------------------------------

/// A new address: the seed's `user_addresses` columns but `is_default` (the
/// first address is the default; `PUT .../default` moves it).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddAddressRequest {
    /// Client-chosen id; a new UUID v7 when absent.
    pub address_id: Option<Uuid>,
    /// `home` when absent.
    #[serde(rename = "type")]
    #[schema(value_type = Option<crate::openapi::AddressTypeName>)]
    pub address_type: Option<AddressType>,
    pub first_name: String,
    pub last_name: String,
    pub company: Option<String>,
    pub street_address_1: String,
    pub street_address_2: Option<String>,
    pub city: String,
    pub state_province: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2; TH when absent.
    pub country: Option<String>,
    pub phone: Option<String>,
}

impl CommandBody for AddAddressRequest {}

impl AddAddressRequest {
    fn into_address(self) -> Result<(Uuid, Address), ApiError> {
        let address = Address::new(
            self.address_type.unwrap_or_default(),
            PostalAddressInput {
                first_name: self.first_name,
                last_name: self.last_name,
                company: self.company,
                street_address_1: self.street_address_1,
                street_address_2: self.street_address_2,
                city: self.city,
                state_province: self.state_province,
                postal_code: self.postal_code,
                country: self.country,
                phone: self.phone,
            },
        )?;
        Ok((self.address_id.unwrap_or_else(Uuid::now_v7), address))
    }
}

/// The answer of an address command: the address's id, the user stream's
/// version (the ETag `If-Match` compares), and for a new one its location.
fn address_plan(
    user_id: Uuid,
    address_id: Uuid,
    created: bool,
    appends: Vec<StreamAppend>,
) -> Plan {
    Plan {
        id: address_id,
        stream_id: user_id.to_string(),
        location: created.then(|| format!("/v1/me/addresses/{address_id}")),
        appends,
    }
}

#[utoipa::path(
    post,
    path = "/v1/me/addresses",
    tag = "me",
    operation_id = "add_address",
    summary = "Add an address",
    description = "The first address is the default. An invalid address is a 400 naming its first invalid field.",
    security(("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = AddAddressRequest,
    responses(
        (status = 201, description = "Added", body = Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %session.user_id, address_id = tracing::field::Empty))]
pub async fn add_address(
    SignedIn(session, _): SignedIn,
    State(state): State<AppState>,
    request: CommandRequest<AddAddressRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let (address_id, address) = body.into_address()?;
    Span::current().record("address_id", tracing::field::display(address_id));
    let user_id = session.user_id;
    execute(&state, &context, || {
        let command = UserCommand::AddAddress {
            address_id,
            address: address.clone(),
            at: context.at,
        };
        plan_address(state.clone(), context.clone(), user_id, address_id, command)
    })
    .await
}

/// An address command on the user's own stream.
async fn plan_address(
    state: AppState,
    context: CommandContext,
    user_id: Uuid,
    address_id: Uuid,
    command: UserCommand,
) -> Result<Plan, ApiError> {
    let created = matches!(command, UserCommand::AddAddress { .. });
    let user = load_existing::<User>(&state, &context, "user", user_id).await?;
    let events = user.aggregate.decide(command)?;
    Ok(address_plan(
        user_id,
        address_id,
        created,
        vec![user.append(&events)],
    ))
}

/// A partial address: absent fields stay, `null` clears a nullable one
/// (`company`, `street_address_2`, `phone`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAddressRequest {
    #[serde(rename = "type", default, deserialize_with = "patch")]
    #[schema(value_type = crate::openapi::AddressTypeName)]
    pub address_type: Patch<AddressType>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String)]
    pub first_name: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String)]
    pub last_name: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub company: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String)]
    pub street_address_1: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub street_address_2: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String)]
    pub city: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String)]
    pub state_province: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String)]
    pub postal_code: Patch<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String)]
    pub country: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub phone: Patch<String>,
}

impl CommandBody for UpdateAddressRequest {}

impl UpdateAddressRequest {
    fn is_empty(&self) -> bool {
        self.address_type.is_none()
            && self.first_name.is_none()
            && self.last_name.is_none()
            && self.company.is_none()
            && self.street_address_1.is_none()
            && self.street_address_2.is_none()
            && self.city.is_none()
            && self.state_province.is_none()
            && self.postal_code.is_none()
            && self.country.is_none()
            && self.phone.is_none()
    }

    /// `current` with this patch merged in, checked whole by the domain.
    fn merge(&self, current: &Address) -> Result<Address, ApiError> {
        let patch = self.clone();
        let postal = current.postal().clone();
        let mut fields = Fields::new();
        let address_type = fields.merge_required(
            "type",
            patch.address_type,
            current.address_type(),
            Ok::<AddressType, String>,
        );
        let mut required = |field: &str, patch: Patch<String>, current: String| {
            fields.merge_required(field, patch, current, input::text)
        };
        let first_name = required("first_name", patch.first_name, postal.first_name);
        let last_name = required("last_name", patch.last_name, postal.last_name);
        let street_address_1 = required(
            "street_address_1",
            patch.street_address_1,
            postal.street_address_1,
        );
        let city = required("city", patch.city, postal.city);
        let state_province = required(
            "state_province",
            patch.state_province,
            postal.state_province,
        );
        let postal_code = required("postal_code", patch.postal_code, postal.postal_code);
        let country = required("country", patch.country, postal.country.into());
        fields.finish()?;
        Ok(Address::new(
            checked(address_type)?,
            PostalAddressInput {
                first_name: checked(first_name)?,
                last_name: checked(last_name)?,
                company: merge_text(patch.company, postal.company),
                street_address_1: checked(street_address_1)?,
                street_address_2: merge_text(patch.street_address_2, postal.street_address_2),
                city: checked(city)?,
                state_province: checked(state_province)?,
                postal_code: checked(postal_code)?,
                country: Some(checked(country)?),
                phone: merge_text(patch.phone, postal.phone.map(String::from)),
            },
        )?)
    }
}

#[utoipa::path(
    patch,
    path = "/v1/me/addresses/{id}",
    tag = "me",
    operation_id = "update_address",
    summary = "Update an address",
    description = "Absent fields stay; `null` clears `company`, `street_address_2` and `phone` (on the others it is a \
        400); `{}` is a 400.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The address, in the user's own book"), CommandHeaders),
    request_body = UpdateAddressRequest,
    responses(
        (status = 200, description = "Updated", body = Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %session.user_id, address_id = %address_id))]
pub async fn update_address(
    SignedIn(session, _): SignedIn,
    State(state): State<AppState>,
    ApiPath(address_id): ApiPath<Uuid>,
    request: CommandRequest<UpdateAddressRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    if body.is_empty() {
        return Err(ApiError::invalid_field(
            "body",
            "give at least one field to change",
        ));
    }
    let user_id = session.user_id;
    execute(&state, &context, || {
        plan_update_address(
            state.clone(),
            context.clone(),
            user_id,
            address_id,
            body.clone(),
        )
    })
    .await
}

async fn plan_update_address(
    state: AppState,
    context: CommandContext,
    user_id: Uuid,
    address_id: Uuid,
    patch: UpdateAddressRequest,
) -> Result<Plan, ApiError> {
    let user = load_existing::<User>(&state, &context, "user", user_id).await?;
    // Only the user's own book is searched: another user's address is as
    // unknown here as one that never existed.
    let current = user
        .aggregate
        .address(address_id)
        .ok_or_else(|| ApiError::not_found("address", address_id))?;
    let address = patch.merge(current)?;
    let events = user.aggregate.decide(UserCommand::UpdateAddress {
        address_id,
        address,
        at: context.at,
    })?;
    Ok(address_plan(
        user_id,
        address_id,
        false,
        vec![user.append(&events)],
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/me/addresses/{id}",
    tag = "me",
    operation_id = "remove_address",
    summary = "Remove an address",
    description = "When it was the default, the most recently added of the others becomes the default.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The address, in the user's own book"), CommandHeaders),
    responses(
        (status = 200, description = "Removed", body = Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %session.user_id, address_id = %address_id))]
pub async fn remove_address(
    SignedIn(session, _): SignedIn,
    State(state): State<AppState>,
    ApiPath(address_id): ApiPath<Uuid>,
    context: CommandContext,
) -> Result<Response, ApiError> {
    let user_id = session.user_id;
    let command = UserCommand::RemoveAddress {
        address_id,
        at: context.at,
    };
    execute(&state, &context, || {
        plan_address(
            state.clone(),
            context.clone(),
            user_id,
            address_id,
            command.clone(),
        )
    })
    .await
}

#[utoipa::path(
    put,
    path = "/v1/me/addresses/{id}/default",
    tag = "me",
    operation_id = "set_default_address",
    summary = "Make an address the default",
    description = "Nothing is appended when it is the default already.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The address, in the user's own book"), CommandHeaders),
    responses(
        (status = 200, description = "Done", body = Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %session.user_id, address_id = %address_id))]
pub async fn set_default_address(
    SignedIn(session, _): SignedIn,
    State(state): State<AppState>,
    ApiPath(address_id): ApiPath<Uuid>,
    context: CommandContext,
) -> Result<Response, ApiError> {
    let user_id = session.user_id;
    let command = UserCommand::SetDefaultAddress {
        address_id,
        at: context.at,
    };
    execute(&state, &context, || {
        plan_address(
            state.clone(),
            context.clone(),
            user_id,
            address_id,
            command.clone(),
        )
    })
    .await
}
