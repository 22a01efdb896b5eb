//! [`UsersReadModel`] over PostgreSQL's `read_model` schema. NULL booleans
//! and timestamps read as the seed's defaults, so a row always makes a
//! complete view; `password_hash` is never selected.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;
use uuid::Uuid;

use super::{AddressView, ProfileView, UserDetail, UserFilter, UserKey, UserView, UsersReadModel};
use crate::catalog::postgres::classify;
use crate::catalog::{Listed, Page};
use crate::error::StoreError;
use crate::BoxFuture;

const USER_COLUMNS: &str = "id, email, first_name, last_name, phone, date_of_birth, gender, \
    COALESCE(status, 'active') AS status, \
    COALESCE(email_verified, FALSE) AS email_verified, \
    COALESCE(phone_verified, FALSE) AS phone_verified, \
    COALESCE(created_at, updated_at, 'epoch') AS created_at, \
    COALESCE(updated_at, created_at, 'epoch') AS updated_at, \
    last_login_at";

#[derive(Clone)]
pub struct PgUsersReadModel {
    pool: PgPool,
}

impl PgUsersReadModel {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    #[tracing::instrument(name = "pg_user", skip(self))]
    async fn fetch_user(&self, id: Uuid) -> Result<Option<UserDetail>, StoreError> {
        // One snapshot for the three tables: a profile or an address is
        // never shown beside a user row from another moment.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let Some(row) = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM read_model.users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?
        else {
            return Ok(None);
        };
        let user = user_from(&row).map_err(classify)?;
        let profile = sqlx::query(
            "SELECT avatar_url, bio, COALESCE(preferences, '{}') AS preferences, \
             COALESCE(settings, '{}') AS settings, \
             COALESCE(created_at, updated_at, 'epoch') AS created_at, \
             COALESCE(updated_at, created_at, 'epoch') AS updated_at \
             FROM read_model.user_profiles WHERE user_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?
        .map(|row| profile_from(&row))
        .transpose()
        .map_err(classify)?;
        let addresses = sqlx::query(
            "SELECT id, COALESCE(type, 'home') AS type, first_name, last_name, company, \
             street_address_1, street_address_2, city, state_province, postal_code, country, \
             phone, COALESCE(is_default, FALSE) AS is_default, \
             COALESCE(created_at, updated_at, 'epoch') AS created_at, \
             COALESCE(updated_at, created_at, 'epoch') AS updated_at \
             FROM read_model.user_addresses WHERE user_id = $1 \
             ORDER BY is_default DESC NULLS LAST, created_at, id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?
        .iter()
        .map(address_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(Some(UserDetail {
            user,
            profile,
            addresses,
        }))
    }

    #[tracing::instrument(name = "pg_users", skip(self))]
    async fn fetch_users(
        &self,
        filter: UserFilter,
        page: Page<UserKey>,
    ) -> Result<Listed<UserView, UserKey>, StoreError> {
        // One row past the page says whether another page follows.
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM read_model.users \
             WHERE ($1::text IS NULL OR COALESCE(status, 'active') = $1) \
             AND ($2::text IS NULL OR lower(email) = $2) \
             AND ($3::uuid IS NULL OR id > $3) \
             ORDER BY id LIMIT $4"
        ))
        .bind(filter.status)
        .bind(filter.email)
        .bind(page.after.map(|key| key.id))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let mut users = rows
            .iter()
            .map(user_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?;
        let more = users.len() > page.limit as usize;
        users.truncate(page.limit as usize);
        let next = users
            .last()
            .filter(|_| more)
            .map(|user| UserKey { id: user.id });
        Ok(Listed { items: users, next })
    }
}

impl UsersReadModel for PgUsersReadModel {
    fn user(&self, id: Uuid) -> BoxFuture<'_, Result<Option<UserDetail>, StoreError>> {
        Box::pin(self.fetch_user(id))
    }

    fn users(
        &self,
        filter: UserFilter,
        page: Page<UserKey>,
    ) -> BoxFuture<'_, Result<Listed<UserView, UserKey>, StoreError>> {
        Box::pin(self.fetch_users(filter, page))
    }
}

fn user_from(row: &PgRow) -> Result<UserView, sqlx::Error> {
    Ok(UserView {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        phone: row.try_get("phone")?,
        date_of_birth: row.try_get("date_of_birth")?,
        gender: row.try_get("gender")?,
        status: row.try_get("status")?,
        email_verified: row.try_get("email_verified")?,
        phone_verified: row.try_get("phone_verified")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_login_at: row.try_get("last_login_at")?,
    })
}

fn profile_from(row: &PgRow) -> Result<ProfileView, sqlx::Error> {
    Ok(ProfileView {
        avatar_url: row.try_get("avatar_url")?,
        bio: row.try_get("bio")?,
        preferences: row.try_get("preferences")?,
        settings: row.try_get("settings")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn address_from(row: &PgRow) -> Result<AddressView, sqlx::Error> {
    Ok(AddressView {
        id: row.try_get("id")?,
        kind: row.try_get("type")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        company: row.try_get("company")?,
        street_address_1: row.try_get("street_address_1")?,
        street_address_2: row.try_get("street_address_2")?,
        city: row.try_get("city")?,
        state_province: row.try_get("state_province")?,
        postal_code: row.try_get("postal_code")?,
        country: row.try_get("country")?,
        phone: row.try_get("phone")?,
        is_default: row.try_get("is_default")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
