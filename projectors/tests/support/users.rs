//! User events for the projector tests, appended the way the command API
//! appends them: serialized, with their personal fields sealed under the
//! person's key.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::user::{Address, AddressType, PasswordHash, PersonName, UserEvent, UserStatus};
use domain::values::{Email, Phone, PostalAddressInput};
use infrastructure::event_store::aggregates::new_events;
use infrastructure::event_store::StreamAppend;
use infrastructure::personal_data::PersonalData;
use uuid::Uuid;

use super::{metadata, Harness};

/// A password hash as the command API stores it.
pub const PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo";

/// Whole seconds from a fixed start, so that times read back from
/// PostgreSQL (microseconds) compare equal.
pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap() + Duration::minutes(minutes)
}

pub fn name(raw: &str) -> PersonName {
    PersonName::parse(raw).unwrap()
}

pub fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

pub fn phone(raw: &str) -> Phone {
    Phone::parse(raw).unwrap()
}

pub fn registered(user: Uuid, address: &str, phone_number: Option<&str>, when: i64) -> UserEvent {
    UserEvent::UserRegistered {
        user_id: user,
        email: email(address),
        password_hash: PasswordHash::parse(PASSWORD_HASH).unwrap(),
        first_name: name("Somchai"),
        last_name: name("Jaidee"),
        phone: phone_number.map(phone),
        date_of_birth: chrono::NaiveDate::from_ymd_opt(1990, 4, 13),
        gender: Some(domain::user::Gender::Male),
        status: UserStatus::Active,
        email_verified: false,
        phone_verified: false,
        at: at(when),
    }
}

pub fn postal(first_name: &str, street: &str) -> Address {
    Address::new(
        AddressType::Home,
        PostalAddressInput {
            first_name: first_name.into(),
            last_name: "Jaidee".into(),
            company: None,
            street_address_1: street.into(),
            street_address_2: Some("Soi 7".into()),
            city: "Bangkok".into(),
            state_province: "Bangkok".into(),
            postal_code: "10110".into(),
            country: Some("TH".into()),
            phone: Some("+66812223333".into()),
        },
    )
    .unwrap()
}

pub fn address_added(
    user: Uuid,
    address_id: Uuid,
    address: Address,
    is_default: bool,
    when: i64,
) -> UserEvent {
    UserEvent::UserAddressAdded {
        user_id: user,
        address_id,
        address,
        is_default,
        at: at(when),
    }
}

pub fn profile_updated(
    user: Uuid,
    first_name: &str,
    phone_number: Option<&str>,
    when: i64,
) -> UserEvent {
    UserEvent::UserProfileUpdated {
        user_id: user,
        first_name: name(first_name),
        last_name: name("Jaidee"),
        phone: phone_number.map(phone),
        phone_verified: false,
        date_of_birth: chrono::NaiveDate::from_ymd_opt(1990, 4, 13),
        gender: Some(domain::user::Gender::Male),
        avatar_url: Some(
            domain::values::Url::parse("https://cdn.example.com/a/somchai.png").unwrap(),
        ),
        bio: Some("Coffee and phones".into()),
        preferences: serde_json::json!({"notifications": {"email": false}}),
        settings: serde_json::json!({"language": "th"}),
        at: at(when),
    }
}

impl Harness {
    /// Seals and opens the log's personal data with the test's keys.
    pub fn personal(&self) -> PersonalData {
        projectors::app::personal_data(&self.settings, &self.store).expect("personal data")
    }

    /// Appends `events` to `user`'s stream after `expected`, their personal
    /// fields sealed under the user's key, as the command API does.
    pub async fn append_user(&self, user: Uuid, expected: i64, events: &[UserEvent]) {
        let personal = self.personal();
        let mut sealed = new_events(events);
        for event in &mut sealed {
            personal
                .seal_payload(user, "user", &event.event_type, &mut event.payload)
                .await
                .expect("seal");
        }
        self.store
            .append(
                vec![StreamAppend {
                    stream_id: user.to_string(),
                    aggregate_type: "user".to_owned(),
                    expected_version: expected,
                    events: sealed,
                }],
                &metadata(),
                None,
                |_| serde_json::Value::Null,
            )
            .await
            .expect("append");
    }

    /// Registers `users` users, each with a profile update and a default
    /// address; returns their ids.
    pub async fn seed_users(&self, users: usize) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for n in 0..users {
            let id = Uuid::now_v7();
            let phone_number = unique_phone(id);
            self.append_user(
                id,
                0,
                &[
                    registered(
                        id,
                        &format!("user-{id}@example.com"),
                        Some(&phone_number),
                        0,
                    ),
                    profile_updated(id, &format!("Somchai{n}"), Some(&phone_number), 1),
                    address_added(
                        id,
                        Uuid::now_v7(),
                        postal("Somchai", "1 Sukhumvit Rd"),
                        true,
                        2,
                    ),
                ],
            )
            .await;
            ids.push(id);
        }
        ids
    }
}

/// A Thai mobile number of `user`'s own.
pub fn unique_phone(user: Uuid) -> String {
    format!("+668{:08}", user.as_u128() % 100_000_000)
}

/// Rows of the users tables as JSON, in a stable order, for comparing two
/// read models.
pub async fn dump_users(pool: &sqlx::PgPool) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for table in ["users", "user_profiles", "user_addresses"] {
        let json: Vec<serde_json::Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t) FROM read_model.{table} t ORDER BY id"
        ))
        .fetch_all(pool)
        .await
        .expect("dump table");
        rows.push(serde_json::json!({ table: json }));
    }
    rows
}
