//! One-time codes over HTTP: email verification (registration and an email
//! change send a code, `POST /v1/me/email/verification` sends a new one to
//! the signed-in user, `POST /v1/email-verifications/confirm` takes it with
//! the email, no session needed) and password reset for a guest (`POST /v1/password-resets`
//! sends a code to an account's email, `POST /v1/password-resets/confirm`
//! sets a new password with it).
//!
//! A code is 8 random digits, drawn here; the stream keeps only its keyed
//! digest (an HMAC under the blind-index key, bound to the user and the
//! purpose), and the request event carries the code sealed, for the mail
//! worker of the projectors to deliver. Requests and attempts count against
//! `rate_limits.codes_per_account`, which fails closed.
//!
//! Neither tells whether an email has an account: a reset request answers
//! 202 at once and does its work after the answer, and both confirmations
//! answer one `invalid-code` problem for an unknown email, a wrong, expired
//! or used code, and an account that may not use it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::uniqueness::UniqueScope;
use domain::user::{
    CodePurpose, IssuedCode, OneTimeCode, Password, PasswordHash, User, UserCommand, UserError,
};
use domain::values::{BlindIndex, Email};
use rand::Rng;
use serde::Deserialize;
use tracing::{instrument, Instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::{index_of, revoke_sessions};
use crate::auth::SignedIn;
use crate::command::Receipt;
use crate::command::{commit, execute, load_as, load_existing, load_key, AppState, Plan};
use crate::error::ApiError;
use crate::openapi::{CommandHeaders, Conflict, NotFound, PreconditionFailed, RuleBroken};
use crate::rate_limit::limit_codes;
use crate::request::{CommandBody, CommandContext, CommandRequest};

/// Draws a code uniformly from the 10^8 of `OneTimeCode::DIGITS` digits,
/// with rand's thread generator: a CSPRNG seeded and reseeded from the OS.
fn draw_code() -> OneTimeCode {
    OneTimeCode::from_number(rand::rng().random_range(0..100_000_000))
}

/// The keyed digest of `code` for `user_id` and `purpose`: the same code
/// issued to another user, or for the other purpose, digests differently.
fn digest(
    state: &AppState,
    user_id: Uuid,
    purpose: CodePurpose,
    code: &OneTimeCode,
) -> Result<BlindIndex, ApiError> {
    let scope = format!("one_time_code:{purpose}:{user_id}");
    BlindIndex::parse(&state.personal.blind_index(&scope, code.as_str()))
        .map_err(ApiError::internal)
}

/// A fresh code for `user_id`, valid for `accounts.code_ttl_seconds` from `at`.
pub(crate) fn issue(
    state: &AppState,
    user_id: Uuid,
    purpose: CodePurpose,
    at: DateTime<Utc>,
) -> Result<IssuedCode, ApiError> {
    let code = draw_code();
    let code_hash = digest(state, user_id, purpose, &code)?;
    Ok(IssuedCode {
        code,
        code_hash,
        expires_at: at + state.code_ttl,
    })
}

fn parse_code(raw: &str) -> Result<OneTimeCode, ApiError> {
    OneTimeCode::parse(raw).map_err(|error| ApiError::invalid_field("code", error))
}

// ---- email verification ------------------------------------------------------

#[utoipa::path(
    post,
    path = "/v1/me/email/verification",
    tag = "codes",
    operation_id = "request_email_verification",
    summary = "Send a new email verification code",
    description = "Counts against `rate_limits.codes_per_account`, which fails closed (503). 422 `account-rule` \
        once the email is verified.",
    security(("bearerAuth" = [])),
    params(CommandHeaders),
    responses(
        (status = 200, description = "Sent", body = Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %session.user_id))]
pub async fn request_email_verification(
    SignedIn(session, _): SignedIn,
    State(state): State<AppState>,
    context: CommandContext,
) -> Result<Response, ApiError> {
    let user_id = session.user_id;
    limit_codes(&state, &user_id.to_string()).await?;
    execute(&state, &context, || {
        let (state, context) = (state.clone(), context.clone());
        async move {
            let user = load_existing::<User>(&state, &context, "user", user_id).await?;
            let code = issue(&state, user_id, CodePurpose::EmailVerification, context.at)?;
            let events = user
                .aggregate
                .decide(UserCommand::RequestEmailVerification {
                    code,
                    at: context.at,
                })?;
            Ok(Plan::updated(user_id, vec![user.append(&events)]))
        }
    })
    .await
}

// Not Debug: a live code is a credential.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmEmailRequest {
    #[schema(format = Email)]
    pub email: String,
    /// The 8 digits sent by email; surrounding blanks are dropped.
    pub code: String,
}

impl CommandBody for ConfirmEmailRequest {
    const SECRET_FIELDS: &'static [&'static str] = &["code"];
}

/// Verifies the email with the code mailed to it. No session is needed:
/// the code is the proof, and the person may open the mail on another
/// device than the one they registered on.
#[utoipa::path(
    post,
    path = "/v1/email-verifications/confirm",
    tag = "codes",
    operation_id = "confirm_email",
    summary = "Verify an email with the code sent to it",
    description = "No session needed: the code is the proof. One 422 `invalid-code` for an unknown \
        email, a wrong, expired or used code, and an account that may not use it; every attempt counts \
        against `rate_limits.codes_per_account`.",
    security((), ("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = ConfirmEmailRequest,
    responses(
        (status = 200, description = "Verified", body = Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn confirm_email(
    State(state): State<AppState>,
    request: CommandRequest<ConfirmEmailRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { mut context, body } = request;
    let email =
        Email::parse(&body.email).map_err(|error| ApiError::invalid_field("email", error))?;
    let code = parse_code(&body.code)?;
    let index = index_of(&state, UniqueScope::UserEmail, email.as_str())?;
    // Before the code is looked at: every guess counts.
    limit_codes(&state, index.as_str()).await?;
    let Some((user_id, _)) = account_of(&state, &index).await? else {
        return Err(invalid_code());
    };
    Span::current().record("user_id", tracing::field::display(user_id));
    context.metadata.user_id = Some(user_id.to_string());
    let code_hash = digest(&state, user_id, CodePurpose::EmailVerification, &code)?;
    execute(&state, &context, || {
        let (state, context, code_hash) = (state.clone(), context.clone(), code_hash.clone());
        async move {
            let user = load_existing::<User>(&state, &context, "user", user_id).await?;
            let events = user
                .aggregate
                .decide(UserCommand::VerifyEmail {
                    code_hash,
                    at: context.at,
                })
                .map_err(code_refusal)?;
            Ok(Plan::updated(user_id, vec![user.append(&events)]))
        }
    })
    .await
}

// ---- password reset ------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    #[schema(format = Email)]
    pub email: String,
}

impl CommandBody for PasswordResetRequest {}

/// 202 whatever happens next: the code goes out (or not) after the answer,
/// so that neither the status nor the time taken tells whether the email
/// has an account.
#[utoipa::path(
    post,
    path = "/v1/password-resets",
    tag = "codes",
    operation_id = "request_password_reset",
    summary = "Send a password reset code",
    description = "202 whatever the email: whether it has an account is never told, by the status or by \
        the time taken. The code is sent after the answer.",
    security((), ("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = PasswordResetRequest,
    responses((status = 202, description = "Accepted")),
)]
#[instrument(skip_all)]
pub async fn request_password_reset(
    State(state): State<AppState>,
    request: CommandRequest<PasswordResetRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest {
        mut context,
        body: PasswordResetRequest { email },
    } = request;
    let email = Email::parse(&email).map_err(|error| ApiError::invalid_field("email", error))?;
    // The answer is given before the work: there is nothing to replay.
    context.idempotency = None;
    let span = tracing::info_span!("password reset request");
    tokio::spawn(
        async move {
            if let Err(error) = send_reset_code(&state, &context, &email).await {
                // Logged once here: the client was answered already.
                tracing::warn!(status = %error.status(), detail = %error, "password reset code not issued");
            }
        }
        .instrument(span),
    );
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The account behind `email`, if one holds its claim and is not erased.
async fn account_of(
    state: &AppState,
    index: &BlindIndex,
) -> Result<Option<(Uuid, User)>, ApiError> {
    let Some(owner) = load_key(state, UniqueScope::UserEmail, index.as_str())
        .await?
        .aggregate
        .owner_id()
    else {
        return Ok(None);
    };
    Ok(load_as::<User>(state, &owner.to_string())
        .await?
        .filter(|user| user.version > 0 && !user.aggregate.is_erased())
        .map(|user| (owner, user.aggregate)))
}

async fn send_reset_code(
    state: &AppState,
    context: &CommandContext,
    email: &Email,
) -> Result<(), ApiError> {
    let index = index_of(state, UniqueScope::UserEmail, email.as_str())?;
    limit_codes(state, index.as_str()).await?;
    let Some((user_id, _)) = account_of(state, &index).await? else {
        metrics::counter!("password_resets_total", "outcome" => "unknown-email").increment(1);
        return Ok(());
    };
    Span::current().record("user_id", tracing::field::display(user_id));
    let outcome = commit(state, context, || {
        let (state, context) = (state.clone(), context.clone());
        async move {
            let user = load_existing::<User>(&state, &context, "user", user_id).await?;
            let code = issue(&state, user_id, CodePurpose::PasswordReset, context.at)?;
            let events = user.aggregate.decide(UserCommand::RequestPasswordReset {
                code,
                at: context.at,
            })?;
            Ok(Plan::updated(user_id, vec![user.append(&events)]))
        }
    })
    .await;
    let label = if outcome.is_ok() { "issued" } else { "refused" };
    metrics::counter!("password_resets_total", "outcome" => label).increment(1);
    outcome.map(|_| ())
}

// Not Debug: it holds a code and a password.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPasswordResetRequest {
    #[schema(format = Email)]
    pub email: String,
    /// The 8 digits sent by email.
    pub code: String,
    #[schema(format = Password)]
    pub new_password: String,
}

impl CommandBody for ConfirmPasswordResetRequest {
    const SECRET_FIELDS: &'static [&'static str] = &["code", "new_password"];
}

/// One answer for every way a code fails, so that a guess learns nothing
/// about the account.
fn invalid_code() -> ApiError {
    ApiError::rule(
        "invalid-code",
        "Invalid code",
        "the code is wrong, expired or used, or the email has no account that may use it",
    )
}

#[utoipa::path(
    post,
    path = "/v1/password-resets/confirm",
    tag = "codes",
    operation_id = "confirm_password_reset",
    summary = "Set a new password with a reset code",
    description = "One 422 `invalid-code` for an unknown email, a wrong, expired or used code, and an \
        account that may not reset. Every session of the user ends.",
    security((), ("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = ConfirmPasswordResetRequest,
    responses(
        (status = 200, description = "Reset", body = Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn confirm_password_reset(
    State(state): State<AppState>,
    request: CommandRequest<ConfirmPasswordResetRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let email =
        Email::parse(&body.email).map_err(|error| ApiError::invalid_field("email", error))?;
    let code = parse_code(&body.code)?;
    let new_password = Password::parse(body.new_password)
        .map_err(|error| ApiError::invalid_field("new_password", error))?;
    let index = index_of(&state, UniqueScope::UserEmail, email.as_str())?;
    limit_codes(&state, index.as_str()).await?;
    let Some((user_id, user)) = account_of(&state, &index).await? else {
        return Err(invalid_code());
    };
    Span::current().record("user_id", tracing::field::display(user_id));
    let code_hash = digest(&state, user_id, CodePurpose::PasswordReset, &code)?;
    // Checked before hashing, so that a wrong guess costs no argon2 run; the
    // plan checks again against the version it appends to.
    user.check_password_reset(&code_hash, context.at)
        .map_err(code_refusal)?;
    let hash = state
        .passwords
        .hash(new_password.expose_secret().to_owned())
        .await
        .map_err(ApiError::internal)?;
    let password_hash = PasswordHash::parse(&hash).map_err(ApiError::internal)?;
    let response = execute(&state, &context, || {
        let (state, context) = (state.clone(), context.clone());
        let (code_hash, password_hash) = (code_hash.clone(), password_hash.clone());
        async move {
            let user = load_existing::<User>(&state, &context, "user", user_id).await?;
            let events = user
                .aggregate
                .decide(UserCommand::ResetPassword {
                    code_hash,
                    password_hash,
                    at: context.at,
                })
                .map_err(code_refusal)?;
            Ok(Plan::updated(user_id, vec![user.append(&events)]))
        }
    })
    .await?;
    // Whoever held a session may be who the reset is meant to lock out.
    revoke_sessions(&state, user_id).await?;
    Ok(response)
}

fn code_refusal(error: UserError) -> ApiError {
    match error {
        UserError::NoPendingCode { .. }
        | UserError::WrongCode { .. }
        | UserError::CodeExpired { .. }
        | UserError::Suspended { .. }
        | UserError::Inactive { .. }
        | UserError::Erased { .. }
        | UserError::EmailAlreadyVerified { .. }
        | UserError::NotRegistered => invalid_code(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_codes_have_eight_digits_and_vary() {
        let codes: std::collections::HashSet<String> =
            (0..50).map(|_| draw_code().as_str().to_owned()).collect();
        assert!(codes.iter().all(|c| c.len() == 8));
        assert!(codes.len() > 45, "{} distinct of 50", codes.len());
    }
}
