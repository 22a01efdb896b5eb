//! Accounts: `POST /v1/users` registers, `POST /v1/sessions` logs in,
//! `DELETE /v1/sessions/current` logs out; `command-api create-admin` makes
//! the first admin through the same registration.
//!
//! The email and the phone are claimed through streams named by their blind
//! index, never by the value; the events' personal fields are sealed by
//! `command::execute` before they are appended. A login finds the account
//! through the email's claim, checks the password with argon2id off the
//! runtime (a decoy hash when the email is unknown, so both cost the same),
//! records the login, and opens a session in Redis.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use domain::uniqueness::{UniqueKey, UniqueScope};
use domain::user::{
    register_user, Claim, CodePurpose, Gender, Password, PasswordHash, PersonName, RegisterUser,
    User, UserCommand, UserRole, UserStatus,
};
use domain::values::{BlindIndex, Email, Phone};
use infrastructure::event_store::aggregates::Loaded;
use serde::{Deserialize, Serialize};
use tracing::{instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use super::codes;
use crate::auth::SignedIn;
use crate::command::{
    commit, execute, key_appends, load_as, load_key, load_new, AppState, Committed, Plan, Receipt,
};
use crate::error::ApiError;
use crate::input::{checked, Fields};
use crate::openapi::{
    CommandHeaders, Conflict, Forbidden, InvalidCredentials, PreconditionFailed, RuleBroken,
};
use crate::rate_limit::limit_login;
use crate::request::{CommandBody, CommandContext, CommandRequest};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Unique, case-insensitive.
    #[schema(format = Email)]
    pub email: String,
    /// 8 to 128 characters, not in the list of common passwords.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    pub password: String,
    pub first_name: String,
    pub last_name: String,
    /// Unique among accounts.
    pub phone: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    #[schema(value_type = Option<crate::openapi::GenderName>)]
    pub gender: Option<Gender>,
}

impl CommandBody for RegisterRequest {}

/// A registration whose password is checked against the policy but not
/// hashed yet.
struct Registration {
    email: Email,
    password: Password,
    first_name: PersonName,
    last_name: PersonName,
    phone: Option<Phone>,
    date_of_birth: Option<NaiveDate>,
    gender: Option<Gender>,
}

impl RegisterRequest {
    fn parse(self) -> Result<Registration, ApiError> {
        let mut fields = Fields::new();
        let email = fields.check("email", Email::parse(&self.email));
        let password = fields.check("password", Password::parse(self.password));
        let first_name = fields.check(
            "first_name",
            PersonName::parse_field("first_name", &self.first_name),
        );
        let last_name = fields.check(
            "last_name",
            PersonName::parse_field("last_name", &self.last_name),
        );
        let phone = fields.check_opt("phone", self.phone, |raw| Phone::parse(&raw));
        fields.finish()?;
        Ok(Registration {
            email: checked(email)?,
            password: checked(password)?,
            first_name: checked(first_name)?,
            last_name: checked(last_name)?,
            phone: checked(phone)?,
            date_of_birth: self.date_of_birth,
            gender: self.gender,
        })
    }
}

/// The blind index of a value within the scope of its claim.
pub(crate) fn index_of(
    state: &AppState,
    scope: UniqueScope,
    value: &str,
) -> Result<BlindIndex, ApiError> {
    BlindIndex::parse(&state.personal.blind_index(scope.as_str(), value))
        .map_err(ApiError::internal)
}

/// The claim stream of an email or a phone, loaded, with the blind index
/// that names it: what the user decisions take as a [`Claim`].
pub(crate) struct LoadedClaim {
    pub index: BlindIndex,
    pub key: Loaded<UniqueKey>,
}

impl LoadedClaim {
    /// `value` normalised already (an `Email`, a `Phone`).
    pub async fn load(state: &AppState, scope: UniqueScope, value: &str) -> Result<Self, ApiError> {
        let index = index_of(state, scope, value)?;
        let key = load_key(state, scope, index.as_str()).await?;
        Ok(Self { index, key })
    }

    pub fn claim(&self) -> Claim<'_> {
        Claim {
            key: &self.key.aggregate,
            index: &self.index,
        }
    }
}

/// Ends every session of `user_id`, after a change that must not leave an
/// old session alive (credentials, status, role, erasure). The change is
/// appended by then: a 503 here asks for the retry, which with the same
/// `Idempotency-Key` replays the change and revokes again.
pub(crate) async fn revoke_sessions(state: &AppState, user_id: Uuid) -> Result<(), ApiError> {
    state
        .sessions
        .close_all(user_id)
        .await
        .map(|_| ())
        .map_err(|error| {
            tracing::warn!(%error, %user_id, "session store unreachable while revoking sessions");
            ApiError::service_unavailable(
                "the change is saved, but the sessions could not be ended; retry with the same Idempotency-Key",
            )
        })
}

impl Registration {
    /// The domain's command, once the password is hashed off the runtime.
    async fn into_command(
        self,
        state: &AppState,
        at: chrono::DateTime<Utc>,
    ) -> Result<RegisterUser, ApiError> {
        let hash = state
            .passwords
            .hash(self.password.expose_secret().to_owned())
            .await
            .map_err(ApiError::internal)?;
        Ok(RegisterUser {
            user_id: Uuid::now_v7(),
            email: self.email,
            password_hash: PasswordHash::parse(&hash).map_err(ApiError::internal)?,
            first_name: self.first_name,
            last_name: self.last_name,
            phone: self.phone,
            date_of_birth: self.date_of_birth,
            gender: self.gender,
            at,
        })
    }
}

#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "accounts",
    operation_id = "register",
    summary = "Register a customer",
    description = "201 with `Location: /v1/users/{id}`. The email (case-insensitive) and the phone are unique \
        (409 `email-taken`, `phone-taken`); the password is 8 to 128 characters and not a common one. A \
        verification code is sent to the email.",
    security((), ("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = Receipt),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn register(
    State(state): State<AppState>,
    request: CommandRequest<RegisterRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { mut context, body } = request;
    let command = body.parse()?.into_command(&state, context.at).await?;
    Span::current().record("user_id", tracing::field::display(command.user_id));
    // The registration is the person's own act: its client address and
    // agent are sealed under their key, and erased with them, rather than
    // under the day's guest key.
    context.metadata.user_id = Some(command.user_id.to_string());
    execute(&state, &context, || {
        plan_register(
            state.clone(),
            context.clone(),
            command.clone(),
            UserRole::Customer,
        )
    })
    .await
}

/// Registration with its claims, and for an admin the role in the same
/// append, so that no customer account exists even for a moment.
async fn plan_register(
    state: AppState,
    context: CommandContext,
    command: RegisterUser,
    role: UserRole,
) -> Result<Plan, ApiError> {
    let id = command.user_id;
    let user = load_new::<User>(&state, &context, "user", id).await?;
    let email_index = index_of(&state, UniqueScope::UserEmail, command.email.as_str())?;
    let email_key = load_key(&state, UniqueScope::UserEmail, email_index.as_str()).await?;
    let phone = match &command.phone {
        Some(phone) => {
            let index = index_of(&state, UniqueScope::UserPhone, phone.as_str())?;
            let key = load_key(&state, UniqueScope::UserPhone, index.as_str()).await?;
            Some((index, key))
        }
        None => None,
    };
    let at = command.at;
    let decision = register_user(
        &user.aggregate,
        Claim {
            key: &email_key.aggregate,
            index: &email_index,
        },
        phone.as_ref().map(|(index, key)| Claim {
            key: &key.aggregate,
            index,
        }),
        command,
    )?;
    // The verification code, and for an admin the role, in the same append:
    // no account exists without its first code, nor as a customer for a
    // moment.
    let mut registered = user.aggregate.clone();
    for event in &decision.events {
        registered.apply(event.clone());
    }
    let mut events = decision.events;
    let code = codes::issue(&state, id, CodePurpose::EmailVerification, at)?;
    let requested = registered.decide(UserCommand::RequestEmailVerification { code, at })?;
    for event in &requested {
        registered.apply(event.clone());
    }
    events.extend(requested);
    if role != UserRole::Customer {
        events.extend(registered.decide(UserCommand::ChangeRole { role, at })?);
    }
    let mut keys: Vec<&Loaded<UniqueKey>> = vec![&email_key];
    keys.extend(phone.as_ref().map(|(_, key)| key));
    let mut appends = vec![user.append(&events)];
    appends.extend(key_appends(&keys, &decision.unique_key_events)?);
    Ok(Plan::created("users", id, appends))
}

/// `command-api create-admin`: registers an admin, for the first one.
pub async fn create_admin(
    state: &AppState,
    context: &CommandContext,
    request: RegisterRequest,
) -> Result<Uuid, ApiError> {
    let command = request.parse()?.into_command(state, context.at).await?;
    let id = command.user_id;
    match commit(state, context, || {
        plan_register(
            state.clone(),
            context.clone(),
            command.clone(),
            UserRole::Admin,
        )
    })
    .await?
    {
        Committed::Appended(_) | Committed::Replayed(_) => Ok(id),
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogInRequest {
    pub email: String,
    pub password: String,
}

impl CommandBody for LogInRequest {}

/// A login's answer. The token is shown here once, and never again.
#[derive(Serialize, ToSchema)]
pub struct SessionOpened {
    /// The bearer token: 256 random bits, base64url.
    pub token: String,
    #[schema(value_type = String, examples("Bearer"))]
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
    pub user_id: Uuid,
    /// The role the session carries until it ends.
    #[schema(value_type = crate::openapi::UserRoleName)]
    pub role: &'static str,
    /// The login's place in the log: a read that sends it sees the account
    /// as of this login (and the merged cart, when there was one).
    pub consistency_token: Option<String>,
    /// The user's active cart, when the login merged the guest's cart of
    /// the request's `X-Cart-Session` into it.
    pub cart_id: Option<Uuid>,
}

/// Merges the guest's active cart into the user's; the user's cart and the
/// merge's consistency token, or `None` when there was nothing to merge. A
/// merge that fails does not fail the login: the guest's cart stays as it
/// was, and the failure is logged.
async fn merge_guest_cart(
    state: &AppState,
    context: &CommandContext,
    user_id: Uuid,
    guest: domain::cart::CartOwner,
) -> Option<(Uuid, Option<String>)> {
    let outcome = commit(state, context, || {
        let (state, context, guest) = (state.clone(), context.clone(), guest.clone());
        async move {
            super::carts::plan_merge_at_login(state, context, user_id, guest)
                .await?
                .ok_or_else(|| {
                    ApiError::rule(
                        "nothing-to-merge",
                        "Nothing to merge",
                        "no active guest cart",
                    )
                })
        }
    })
    .await;
    match outcome {
        Ok(Committed::Appended(stored)) => {
            let cart_id = stored["body"]["id"].as_str()?.parse().ok()?;
            let token = stored["body"]["consistency_token"]
                .as_str()
                .map(str::to_owned);
            tracing::info!(%cart_id, "guest cart merged at login");
            Some((cart_id, token))
        }
        Ok(Committed::Replayed(_)) => None,
        Err(error) if error.kind() == "nothing-to-merge" => None,
        Err(error) => {
            tracing::warn!(kind = error.kind(), "guest cart not merged at login");
            None
        }
    }
}

#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "accounts",
    operation_id = "log_in",
    summary = "Log in",
    description = "Opens a session: 201 with a bearer token and `Cache-Control: no-store`. An unknown email \
        and a wrong password get the same 401 `invalid-credentials`, after the same work. A login is never \
        replayed from an `Idempotency-Key` (its answer holds a secret). Logins are also limited per account \
        (`rate_limits.login_per_account`), and refused with 503 when that limit cannot be counted.",
    security((), ("bearerAuth" = [])),
    params(
        ("X-Cart-Session" = Option<String>, Header,
            description = "A guest's cart session: its active cart is merged into the user's (`cart_id`)"),
        CommandHeaders,
    ),
    request_body = LogInRequest,
    responses(
        (status = 201, description = "Logged in", body = SessionOpened,
            headers(("Cache-Control" = String, description = "`no-store`: the body holds a bearer token"))),
        (status = 401, response = InvalidCredentials),
        (status = 403, response = Forbidden),
    ),
)]
#[instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn log_in(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    request: CommandRequest<LogInRequest>,
) -> Result<Response, ApiError> {
    // Read before the credentials: a malformed cart session is the
    // request's fault, whatever the password.
    let cart_session = super::carts::cart_session(&headers)?;
    let CommandRequest {
        mut context,
        body: LogInRequest { email, password },
    } = request;
    // A login's answer holds a bearer token, which must never be stored to
    // be replayed: a repeated login simply opens another session.
    context.idempotency = None;
    let email = Email::parse(&email).map_err(|error| ApiError::invalid_field("email", error))?;
    let index = index_of(&state, UniqueScope::UserEmail, email.as_str())?;
    limit_login(&state, index.as_str()).await?;
    let owner = load_key(&state, UniqueScope::UserEmail, index.as_str())
        .await?
        .aggregate
        .owner_id();
    let user = match owner {
        Some(owner) => load_as::<User>(&state, &owner.to_string())
            .await?
            .filter(|user| user.version > 0 && !user.aggregate.is_erased()),
        None => None,
    };
    let hash = user
        .as_ref()
        .and_then(|user| user.aggregate.password_hash())
        .map(|hash| hash.expose().to_owned());
    let matches = state
        .passwords
        .verify(password, hash)
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| matches) else {
        metrics::counter!("logins_total", "outcome" => "refused").increment(1);
        return Err(ApiError::invalid_credentials());
    };
    let user_id = user
        .aggregate
        .id()
        .ok_or_else(ApiError::invalid_credentials)?;
    Span::current().record("user_id", tracing::field::display(user_id));
    match user.aggregate.status() {
        UserStatus::Active => {}
        status => {
            metrics::counter!("logins_total", "outcome" => "not-active").increment(1);
            return Err(ApiError::forbidden(format!(
                "this account is {status} and cannot log in"
            )));
        }
    }
    // The login is the user's own act, recorded as theirs.
    context.metadata.user_id = Some(user_id.to_string());
    let at = context.at;
    let committed = commit(&state, &context, || {
        let state = state.clone();
        let context = context.clone();
        async move {
            let user = load_as::<User>(&state, &user_id.to_string())
                .await?
                .ok_or_else(|| ApiError::not_found("user", user_id))?;
            let events = user.aggregate.decide(UserCommand::RecordLogin {
                at,
                ip_address: context
                    .metadata
                    .client_ip
                    .as_deref()
                    .and_then(|ip| ip.parse().ok()),
                user_agent: context.metadata.user_agent.clone(),
            })?;
            Ok(Plan::updated(user_id, vec![user.append(&events)]))
        }
    })
    .await?;
    let mut consistency_token = match committed {
        Committed::Appended(stored) => stored["body"]["consistency_token"]
            .as_str()
            .map(str::to_owned),
        Committed::Replayed(_) => None,
    };
    let mut cart_id = None;
    if let Some(token) = cart_session {
        if let Some((merged_into, token)) =
            merge_guest_cart(&state, &context, user_id, super::carts::guest_owner(&token)).await
        {
            cart_id = Some(merged_into);
            consistency_token = token.or(consistency_token);
        }
    }
    let email = user
        .aggregate
        .email()
        .map(Email::as_str)
        .unwrap_or_default();
    let role = user.aggregate.role();
    let (token, session) = state
        .sessions
        .open(user_id, email, role.as_str(), Utc::now())
        .await
        .map_err(|error| {
            tracing::warn!(%error, "session store unreachable at login");
            ApiError::service_unavailable("sessions cannot be opened right now; retry later")
        })?;
    metrics::counter!("logins_total", "outcome" => "opened").increment(1);
    let mut response = (
        StatusCode::CREATED,
        Json(SessionOpened {
            token: token.expose_secret().to_owned(),
            token_type: "Bearer",
            expires_at: session.expires_at,
            user_id,
            role: role.as_str(),
            consistency_token,
            cart_id,
        }),
    )
        .into_response();
    // A bearer token must not be kept by any cache on the way.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[utoipa::path(
    delete,
    path = "/v1/sessions/current",
    tag = "accounts",
    operation_id = "log_out",
    summary = "Log out",
    description = "Ends this request's session: the token opens nothing afterwards.",
    security(("bearerAuth" = [])),
    responses((status = 204, description = "Logged out")),
)]
pub async fn log_out(
    SignedIn(session, token): SignedIn,
    State(state): State<AppState>,
) -> Result<StatusCode, ApiError> {
    state
        .sessions
        .close(&token, session.user_id)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "session store unreachable at logout");
            ApiError::service_unavailable("sessions cannot be closed right now; retry later")
        })?;
    Ok(StatusCode::NO_CONTENT)
}
