//! The admins' user commands: `PUT /v1/users/{id}/status` (suspend,
//! reactivate, deactivate), `PUT /v1/users/{id}/role` and
//! `DELETE /v1/users/{id}` (erasure); and the erasure itself, which
//! `DELETE /v1/me` shares.
//!
//! Whatever takes a right away (a suspension, a deactivation, a role change,
//! an erasure) ends every session of the user after the append: a session
//! carries the role and status it was opened with, so only a new login
//! sees the change.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::uniqueness::{UniqueKey, UniqueScope};
use domain::user::{
    erase_user, SuspensionReason, User, UserCommand, UserError, UserRole, UserStatus,
};
use infrastructure::event_store::aggregates::Loaded;
use serde::Deserialize;
use tracing::{instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::{revoke_sessions, LoadedClaim};
use crate::auth::Admin;
use crate::command::{
    commit, execute, key_appends, load_existing, AppState, Committed, Plan, Receipt,
};
use crate::error::ApiError;
use crate::openapi::{
    CommandHeaders, Conflict, Forbidden, NotFound, PreconditionFailed, RuleBroken,
};
use crate::request::{
    ApiPath, CommandBody, CommandContext, CommandRequest, CONSISTENCY_TOKEN, IDEMPOTENT_REPLAYED,
};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeStatusRequest {
    #[schema(value_type = crate::openapi::UserStatusName)]
    pub status: UserStatus,
    /// Required for `suspended`, refused otherwise: what the user is told.
    pub reason: Option<String>,
}

impl CommandBody for ChangeStatusRequest {}

impl ChangeStatusRequest {
    fn into_command(self, at: chrono::DateTime<chrono::Utc>) -> Result<UserCommand, ApiError> {
        match (self.status, self.reason) {
            (UserStatus::Suspended, Some(reason)) => Ok(UserCommand::SuspendUser {
                reason: SuspensionReason::parse(&reason)?,
                at,
            }),
            (UserStatus::Suspended, None) => Err(ApiError::invalid_field(
                "reason",
                "a suspension needs a reason the user can be told",
            )),
            (_, Some(_)) => Err(ApiError::invalid_field(
                "reason",
                "only a suspension takes a reason",
            )),
            (UserStatus::Active, None) => Ok(UserCommand::ReactivateUser { at }),
            (UserStatus::Inactive, None) => Ok(UserCommand::DeactivateUser { at }),
        }
    }
}

#[utoipa::path(
    put,
    path = "/v1/users/{id}/status",
    tag = "users",
    operation_id = "change_user_status",
    summary = "Suspend, reactivate or deactivate a user",
    description = "`suspended` needs a `reason` (1 to 500 characters), the others refuse one (400). A move \
        the life cycle does not allow, the current status included, is a 422 `invalid-status-transition`. A \
        suspension or a deactivation ends every session of the user.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The user"), CommandHeaders),
    request_body = ChangeStatusRequest,
    responses(
        (status = 200, description = "Changed", body = Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %id, status = tracing::field::Empty))]
pub async fn change_status(
    _admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<ChangeStatusRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    Span::current().record("status", body.status.as_str());
    let ends_sessions = body.status != UserStatus::Active;
    let command = body.into_command(context.at)?;
    let response = execute(&state, &context, || {
        plan_simple(state.clone(), context.clone(), id, command.clone())
    })
    .await?;
    if ends_sessions {
        revoke_sessions(&state, id).await?;
    }
    Ok(response)
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleRequest {
    #[schema(value_type = crate::openapi::UserRoleName)]
    pub role: UserRole,
}

impl CommandBody for ChangeRoleRequest {}

#[utoipa::path(
    put,
    path = "/v1/users/{id}/role",
    tag = "users",
    operation_id = "change_user_role",
    summary = "Change a user's role",
    description = "Every session of the user ends: the new role applies from their next login.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The user"), CommandHeaders),
    request_body = ChangeRoleRequest,
    responses(
        (status = 200, description = "Changed", body = Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %id, role = tracing::field::Empty))]
pub async fn change_role(
    _admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<ChangeRoleRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    Span::current().record("role", body.role.as_str());
    let command = UserCommand::ChangeRole {
        role: body.role,
        at: context.at,
    };
    let response = execute(&state, &context, || {
        plan_simple(state.clone(), context.clone(), id, command.clone())
    })
    .await?;
    revoke_sessions(&state, id).await?;
    Ok(response)
}

/// A command that touches only the user's own stream.
async fn plan_simple(
    state: AppState,
    context: CommandContext,
    id: Uuid,
    command: UserCommand,
) -> Result<Plan, ApiError> {
    let user = load_existing::<User>(&state, &context, "user", id).await?;
    let events = user.aggregate.decide(command)?;
    Ok(Plan::updated(id, vec![user.append(&events)]))
}

#[utoipa::path(
    delete,
    path = "/v1/users/{id}",
    tag = "users",
    operation_id = "erase_user",
    summary = "Erase a user",
    description = "Appends the erasure and releases the email's and the phone's claims, then destroys the \
        person's data key and ends their sessions. Erasing again is a 404 (a replay of the same \
        `Idempotency-Key` gets the 204 again).",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The user"), CommandHeaders),
    responses(
        (status = 204, description = "Erased",
            headers(("Consistency-Token" = String, description = "The erasure's place in the log"))),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %id))]
pub async fn erase(
    _admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    context: CommandContext,
) -> Result<Response, ApiError> {
    erase_account(&state, &context, id, None).await
}

/// Erases `user_id`: `UserErased` with the email and phone claims released
/// in one append, then the data key destroyed and the sessions ended. 204,
/// with the `Consistency-Token` of the append.
/// `password`, when given, must be the user's current one (a person erasing
/// their own account proves it is them; an admin does not know it).
pub(crate) async fn erase_account(
    state: &AppState,
    context: &CommandContext,
    user_id: Uuid,
    password: Option<String>,
) -> Result<Response, ApiError> {
    let committed = commit(state, context, || {
        plan_erase(state.clone(), context.clone(), user_id, password.clone())
    })
    .await?;
    // After a replay too: the request that appended may have failed here.
    forget(state, user_id).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    match committed {
        Committed::Appended(stored) => {
            if let Some(token) = stored["body"]["consistency_token"].as_str() {
                let token = HeaderValue::from_str(token).map_err(ApiError::internal)?;
                headers.insert(CONSISTENCY_TOKEN.clone(), token);
            }
        }
        Committed::Replayed(replayed) => copy_replay_headers(replayed.headers(), headers),
    }
    Ok(response)
}

fn copy_replay_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for name in [&CONSISTENCY_TOKEN, &IDEMPOTENT_REPLAYED] {
        if let Some(value) = from.get(name) {
            to.insert(name.clone(), value.clone());
        }
    }
}

/// Destroys the person's data key and ends their sessions: both may be
/// done again at no cost.
async fn forget(state: &AppState, user_id: Uuid) -> Result<(), ApiError> {
    if state.personal.erase(user_id).await? {
        tracing::info!(%user_id, "data key destroyed");
    }
    revoke_sessions(state, user_id).await
}

async fn plan_erase(
    state: AppState,
    context: CommandContext,
    user_id: Uuid,
    password: Option<String>,
) -> Result<Plan, ApiError> {
    let user = load_existing::<User>(&state, &context, "user", user_id).await?;
    if let Some(password) = password {
        super::me::check_password(&state, &user.aggregate, password).await?;
    }
    if user.aggregate.is_erased() {
        // An erasure appended by a request that failed before destroying the
        // key is finished now; the answer stays the domain's 404.
        forget(&state, user_id).await?;
        return Err(UserError::Erased { user_id }.into());
    }
    let email = user
        .aggregate
        .email()
        .ok_or_else(|| ApiError::not_found("user", user_id))?;
    let email = LoadedClaim::load(&state, UniqueScope::UserEmail, email.as_str()).await?;
    let phone = match user.aggregate.phone() {
        Some(phone) => {
            Some(LoadedClaim::load(&state, UniqueScope::UserPhone, phone.as_str()).await?)
        }
        None => None,
    };
    let decision = erase_user(
        &user.aggregate,
        email.claim(),
        phone.as_ref().map(LoadedClaim::claim),
        context.at,
    )?;
    let keys: Vec<&Loaded<UniqueKey>> = std::iter::once(&email.key)
        .chain(phone.as_ref().map(|claim| &claim.key))
        .collect();
    let mut appends = vec![user.append(&decision.events)];
    appends.extend(key_appends(&keys, &decision.unique_key_events)?);
    Ok(Plan::updated(user_id, appends))
}
