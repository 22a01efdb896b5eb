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
use uuid::Uuid;

pub use postgres::PgUsersReadModel;

use crate::auth::{Admin, SignedIn};
use crate::catalog::{page_of, Items, Listed, Page};
use crate::consistency::ReadAfter;
use crate::error::{ApiError, InvalidParam, StoreError};
use crate::extract::{ApiPath, ApiQuery};
use crate::startup::AppState;
use crate::BoxFuture;

#[derive(Debug, Clone, PartialEq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileView {
    pub avatar_url: Option<String>,
    pub bio: Option<String>,
    pub preferences: serde_json::Value,
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserParams {
    pub status: Option<String>,
    pub email: Option<String>,
    pub limit: Option<u32>,
    pub after: Option<String>,
}

const STATUSES: [&str; 3] = ["active", "inactive", "suspended"];

/// `GET /v1/me`
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
