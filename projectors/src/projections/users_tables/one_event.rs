//! The statements of one user event, with its personal fields opened. Each
//! row an event changes gets the event's `at` as its `updated_at`.

use chrono::{DateTime, Utc};
use domain::user::{erased_value, Address, AddressType, Gender, UserEvent};
use sqlx::PgConnection;
use uuid::Uuid;

/// The seed's unique columns that hand a value from one user to another.
#[derive(Debug, Clone, Copy)]
pub(super) enum Unique {
    Email,
    Phone,
}

/// The unique column a violated constraint guards, if it is one of those.
pub(super) fn unique_value(constraint: &str) -> Option<Unique> {
    match constraint {
        "users_email_key" => Some(Unique::Email),
        "users_phone_key" => Some(Unique::Phone),
        _ => None,
    }
}

/// The key the events waiting for `user` to give up an email or a phone
/// park under.
pub(super) fn values_key(user: Uuid) -> String {
    format!("user_values:{user}")
}

/// The other user that holds the email or phone `event` writes.
pub(super) async fn holder(
    conn: &mut PgConnection,
    event: &UserEvent,
    unique: Unique,
) -> Result<Option<Uuid>, sqlx::Error> {
    let (column, value) = match (unique, event) {
        (Unique::Email, UserEvent::UserRegistered { email, .. })
        | (Unique::Email, UserEvent::UserEmailChanged { email, .. }) => ("email", email.as_str()),
        (Unique::Phone, UserEvent::UserRegistered { phone, .. })
        | (Unique::Phone, UserEvent::UserProfileUpdated { phone, .. }) => match phone {
            Some(phone) => ("phone", phone.as_str()),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    sqlx::query_scalar(&format!(
        "SELECT id FROM users WHERE {column} = $1 AND id <> $2 LIMIT 1"
    ))
    .bind(value)
    .bind(event.user_id())
    .fetch_optional(conn)
    .await
}

fn gender(gender: &Option<Gender>) -> Option<&'static str> {
    gender.map(|g| match g {
        Gender::Male => "male",
        Gender::Female => "female",
        Gender::Other => "other",
    })
}

fn address_type(address: &Address) -> &'static str {
    match address.address_type() {
        AddressType::Home => "home",
        AddressType::Work => "work",
        AddressType::Other => "other",
    }
}

/// Writes `event`; returns the parking keys its effect releases.
pub(super) async fn apply(
    conn: &mut PgConnection,
    event: &UserEvent,
) -> Result<Vec<String>, sqlx::Error> {
    let user_id = event.user_id();
    let at = event.at();
    match event {
        UserEvent::UserRegistered {
            email,
            password_hash,
            first_name,
            last_name,
            phone,
            date_of_birth,
            gender: g,
            status,
            email_verified,
            phone_verified,
            ..
        } => {
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, first_name, last_name, phone, \
                 date_of_birth, gender, status, email_verified, phone_verified, created_at, \
                 updated_at, last_login_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, NULL)",
            )
            .bind(user_id)
            .bind(email.as_str())
            .bind(password_hash.expose())
            .bind(first_name.as_str())
            .bind(last_name.as_str())
            .bind(phone.as_ref().map(|p| p.as_str()))
            .bind(date_of_birth)
            .bind(gender(g))
            .bind(status.as_str())
            .bind(email_verified)
            .bind(phone_verified)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            // The profile row is the user's own: its id is the user's, so a
            // rebuild writes the same row.
            sqlx::query(
                "INSERT INTO user_profiles (id, user_id, avatar_url, bio, preferences, settings, \
                 created_at, updated_at) VALUES ($1, $1, NULL, NULL, '{}', '{}', $2, $2)",
            )
            .bind(user_id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(vec![])
        }
        UserEvent::UserProfileUpdated {
            first_name,
            last_name,
            phone,
            phone_verified,
            date_of_birth,
            gender: g,
            avatar_url,
            bio,
            preferences,
            settings,
            ..
        } => {
            sqlx::query(
                "UPDATE users SET first_name = $2, last_name = $3, phone = $4, \
                 phone_verified = $5, date_of_birth = $6, gender = $7, updated_at = $8 \
                 WHERE id = $1",
            )
            .bind(user_id)
            .bind(first_name.as_str())
            .bind(last_name.as_str())
            .bind(phone.as_ref().map(|p| p.as_str()))
            .bind(phone_verified)
            .bind(date_of_birth)
            .bind(gender(g))
            .bind(at)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO user_profiles (id, user_id, avatar_url, bio, preferences, settings, \
                 created_at, updated_at) VALUES ($1, $1, $2, $3, $4, $5, $6, $6) \
                 ON CONFLICT (user_id) DO UPDATE SET avatar_url = EXCLUDED.avatar_url, \
                 bio = EXCLUDED.bio, preferences = EXCLUDED.preferences, \
                 settings = EXCLUDED.settings, updated_at = EXCLUDED.updated_at",
            )
            .bind(user_id)
            .bind(avatar_url.as_ref().map(|u| u.as_str()))
            .bind(bio)
            .bind(preferences)
            .bind(settings)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            // The phone the user had may be someone else's now.
            Ok(vec![values_key(user_id)])
        }
        UserEvent::UserEmailChanged {
            email,
            email_verified,
            ..
        } => {
            sqlx::query(
                "UPDATE users SET email = $2, email_verified = $3, updated_at = $4 WHERE id = $1",
            )
            .bind(user_id)
            .bind(email.as_str())
            .bind(email_verified)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(vec![values_key(user_id)])
        }
        UserEvent::UserEmailVerified { .. } => {
            update_user(conn, user_id, "email_verified = TRUE", at).await
        }
        // Only the flag: the number is the one the row holds already, and an
        // erased person's reads as a placeholder that must not reach the
        // unique `phone` column.
        UserEvent::UserPhoneVerified { .. } => {
            update_user(conn, user_id, "phone_verified = TRUE", at).await
        }
        // A code request changes no column: the seed keeps no codes.
        UserEvent::UserEmailVerificationRequested { .. }
        | UserEvent::UserPasswordResetRequested { .. } => Ok(vec![]),
        UserEvent::UserPasswordChanged { password_hash, .. }
        | UserEvent::UserPasswordReset { password_hash, .. } => {
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(user_id)
                .bind(password_hash.expose())
                .bind(at)
                .execute(&mut *conn)
                .await?;
            Ok(vec![])
        }
        UserEvent::UserLoggedIn { .. } => {
            update_user(conn, user_id, "last_login_at = $2", at).await
        }
        UserEvent::UserSuspended { status, .. }
        | UserEvent::UserReactivated { status, .. }
        | UserEvent::UserDeactivated { status, .. } => {
            sqlx::query("UPDATE users SET status = $2, updated_at = $3 WHERE id = $1")
                .bind(user_id)
                .bind(status.as_str())
                .bind(at)
                .execute(&mut *conn)
                .await?;
            Ok(vec![])
        }
        // The role has no column in the seed's tables.
        UserEvent::UserRoleChanged { .. } => Ok(vec![]),
        UserEvent::UserAddressAdded {
            address_id,
            address,
            is_default,
            ..
        }
        | UserEvent::UserAddressUpdated {
            address_id,
            address,
            is_default,
            ..
        } => {
            // One statement for both: the event carries the whole address.
            sqlx::query(
                "INSERT INTO user_addresses (id, user_id, type, first_name, last_name, company, \
                 street_address_1, street_address_2, city, state_province, postal_code, country, \
                 phone, is_default, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) \
                 ON CONFLICT (id) DO UPDATE SET type = EXCLUDED.type, \
                 first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name, \
                 company = EXCLUDED.company, street_address_1 = EXCLUDED.street_address_1, \
                 street_address_2 = EXCLUDED.street_address_2, city = EXCLUDED.city, \
                 state_province = EXCLUDED.state_province, postal_code = EXCLUDED.postal_code, \
                 country = EXCLUDED.country, phone = EXCLUDED.phone, \
                 is_default = EXCLUDED.is_default, updated_at = EXCLUDED.updated_at \
                 WHERE user_addresses.user_id = EXCLUDED.user_id",
            )
            .bind(address_id)
            .bind(user_id)
            .bind(address_type(address))
            .bind_address(address)
            .bind(is_default)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            if *is_default {
                set_default(conn, user_id, Some(*address_id), at).await?;
            }
            Ok(vec![])
        }
        UserEvent::UserAddressRemoved {
            address_id,
            new_default_address_id,
            ..
        } => {
            sqlx::query("DELETE FROM user_addresses WHERE id = $1 AND user_id = $2")
                .bind(address_id)
                .bind(user_id)
                .execute(&mut *conn)
                .await?;
            set_default(conn, user_id, *new_default_address_id, at).await?;
            Ok(vec![])
        }
        UserEvent::UserDefaultAddressSet { address_id, .. } => {
            set_default(conn, user_id, Some(*address_id), at).await?;
            Ok(vec![])
        }
        UserEvent::UserErased { status, .. } => {
            // The row stays, for what points at it (orders), holding nothing
            // of the person: the domain's placeholders where the seed wants a
            // value, NULL elsewhere, nothing verified.
            let email = placeholder("email", user_id);
            let password_hash = placeholder("password_hash", user_id);
            sqlx::query(
                "UPDATE users SET email = $2, password_hash = $3, first_name = NULL, \
                 last_name = NULL, phone = NULL, date_of_birth = NULL, gender = NULL, \
                 status = $4, email_verified = FALSE, phone_verified = FALSE, updated_at = $5 \
                 WHERE id = $1",
            )
            .bind(user_id)
            .bind(email)
            .bind(password_hash)
            .bind(status.as_str())
            .bind(at)
            .execute(&mut *conn)
            .await?;
            for table in ["user_addresses", "user_profiles"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                    .bind(user_id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(vec![values_key(user_id)])
        }
    }
}

/// What the domain reads `field` of an erased person's registration as.
fn placeholder(field: &str, user_id: Uuid) -> String {
    match erased_value("UserRegistered", field, user_id) {
        serde_json::Value::String(value) => value,
        other => other.to_string(),
    }
}

/// `assignment` on the user's row (`$2` is the event's time), which is
/// updated at that time.
async fn update_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    assignment: &str,
    at: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE users SET {assignment}, updated_at = $2 WHERE id = $1"
    ))
    .bind(user_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(vec![])
}

/// Makes `default` the user's one default address (none for `None`); only
/// the rows whose flag changes are updated.
async fn set_default(
    conn: &mut PgConnection,
    user_id: Uuid,
    default: Option<Uuid>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE user_addresses SET is_default = (id IS NOT DISTINCT FROM $2), updated_at = $3 \
         WHERE user_id = $1 AND is_default IS DISTINCT FROM (id IS NOT DISTINCT FROM $2)",
    )
    .bind(user_id)
    .bind(default)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Binds an address's columns after `type`: names, company, street lines,
/// city, state, postal code, country, phone.
trait BindAddress<'q> {
    fn bind_address(self, address: &'q Address) -> Self;
}

impl<'q> BindAddress<'q> for sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    fn bind_address(self, address: &'q Address) -> Self {
        let postal = address.postal();
        self.bind(postal.first_name.as_str())
            .bind(postal.last_name.as_str())
            .bind(postal.company.as_deref())
            .bind(postal.street_address_1.as_str())
            .bind(postal.street_address_2.as_deref())
            .bind(postal.city.as_str())
            .bind(postal.state_province.as_str())
            .bind(postal.postal_code.as_str())
            .bind(postal.country.as_str())
            .bind(postal.phone.as_ref().map(|p| p.as_str()))
    }
}
