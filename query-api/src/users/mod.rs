//! The accounts read model (`read_model.users`, `user_profiles`,
//! `user_addresses`, as the seed defines them) and its reads: `GET /v1/me`
//! for the logged-in user, `GET /v1/users` and `GET /v1/users/{id}` for
//! admins. The password hash is never read.

pub(crate) mod postgres;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use infrastructure::consistency::USERS_TABLES;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use postgres::PgUsersReadModel;

use crate::auth::{Admin, SignedIn};
use crate::catalog::{page_of, Items, Listed, Page};
use crate::consistency::ReadAfter;
use crate::error::{ApiError, InvalidParam, StoreError};
use crate::extract::{ApiPath, ApiQuery};
use crate::openapi::{Forbidden, NotFound};
use crate::startup::AppState;
use crate::BoxFuture;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub gender: Option<String>,
    pub status: String,
    pub email_verified: bool,
    pub phone_verified: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProfileView {
    pub avatar_url: Option<String>,
    pub bio: Option<String>,
    pub preferences: serde_json::Value,
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AddressView {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub first_name: String,
    pub last_name: String,
    pub company: Option<String>,
    pub street_address_1: String,
    pub street_address_2: Option<String>,
    pub city: String,
    pub state_province: String,
    pub postal_code: String,
    pub country: String,
    pub phone: Option<String>,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user with their profile and address book (the default first).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UserDetail {
    #[serde(flatten)]
    pub user: UserView,
    pub profile: Option<ProfileView>,
    pub addresses: Vec<AddressView>,
}

/// Filters of the admin's user listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub status: Option<String>,
    /// Compared case-insensitively, as emails are stored lower-cased.
    pub email: Option<String>,
}

/// The listing's order: by id, which is a UUID v7 and so by registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserKey {
    pub id: Uuid,
}

/// Port: the accounts as the projectors left them.
pub trait UsersReadModel: Send + Sync {
    fn user(&self, id: Uuid) -> BoxFuture<'_, Result<Option<UserDetail>, StoreError>>;

    fn users(
        &self,
        filter: UserFilter,
        page: Page<UserKey>,
    ) -> BoxFuture<'_, Result<Listed<UserView, UserKey>, StoreError>>;
}

/// The query string of `GET /v1/users`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserParams {
    #[param(schema_with = status_schema)]
    pub status: Option<String>,
    /// Exact, case-insensitive.
    pub email: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub after: Option<String>,
}

const STATUSES: [&str; 3] = ["active", "inactive", "suspended"];

fn status_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(STATUSES))
        .build()
}

/// `GET /v1/me`
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "users",
    operation_id = "get_me",
    summary = "Your account",
    description = "With its profile and addresses (the default first). 404 while the account is not \
        projected yet: send the login's consistency token to wait for it.",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Your account", body = UserDetail),
        (status = 404, response = NotFound),
    ),
)]
#[tracing::instrument(name = "get_me", skip_all, fields(user_id = %session.user_id))]
pub async fn get_me(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    read_after: ReadAfter,
) -> Result<Json<UserDetail>, ApiError> {
    state.read_after(read_after, &[USERS_TABLES]).await?;
    match state.users.user(session.user_id).await? {
        Some(user) => Ok(Json(user)),
        // A session opened before the projection caught up: the login's
        // consistency token waits for it.
        None => Err(ApiError::not_found(
            "your account is not in the read model yet; retry with the login's consistency token",
        )),
    }
}

/// `GET /v1/users/{id}` (admin)
#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    tag = "users",
    operation_id = "get_user",
    summary = "One user",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The user", body = UserDetail),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
#[tracing::instrument(name = "get_user", skip(state, _admin))]
pub async fn get_user(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    read_after: ReadAfter,
) -> Result<Json<UserDetail>, ApiError> {
    state.read_after(read_after, &[USERS_TABLES]).await?;
    match state.users.user(id).await? {
        Some(user) => Ok(Json(user)),
        None => Err(ApiError::not_found(format!("user {id} does not exist"))),
    }
}

/// `GET /v1/users` (admin): by status and email, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "users",
    operation_id = "list_users",
    summary = "List users",
    description = "In registration order, a page at a time.",
    security(("bearerAuth" = [])),
    params(UserParams),
    responses(
        (status = 200, description = "One page", body = Items<UserView>),
        (status = 403, response = Forbidden),
    ),
)]
#[tracing::instrument(name = "list_users", skip(state, _admin, params))]
pub async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(params): ApiQuery<UserParams>,
    read_after: ReadAfter,
) -> Result<Json<Items<UserView>>, ApiError> {
    if let Some(status) = params.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::invalid_params(vec![InvalidParam::new(
            "status",
            format!("{status:?} is not one of {}", STATUSES.join(", ")),
        )]));
    }
    let page = page_of(params.limit, params.after.as_deref())?;
    let filter = UserFilter {
        status: params.status,
        email: params.email.map(|e| e.trim().to_lowercase()),
    };
    state.read_after(read_after, &[USERS_TABLES]).await?;
    let listed = state.users.users(filter, page).await?;
    Ok(Json(Items::of(listed)))
}
