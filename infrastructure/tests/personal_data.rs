//! Contract of the personal-data vault, against the real PostgreSQL key
//! table: sealed values hide the clear ones, open back, are bound to their
//! person and field, and become placeholders once the person is erased, even
//! after a restore of the key table from before the erasure.

use chrono::{Duration, Utc};
use infrastructure::event_store::{EventMetadata, RecordedEvent};
use infrastructure::personal_data::{is_sealed, PersonalData, PersonalDataError};
use infrastructure::settings::Settings;
use infrastructure::testing::TestDatabase;
use serde_json::{json, Value};
use uuid::Uuid;

fn personal_fields(aggregate_type: &str, event_type: &str) -> &'static [&'static str] {
    match (aggregate_type, event_type) {
        ("user", "UserRegistered") => &["email", "first_name", "address"],
        _ => &[],
    }
}

fn erased_value(_: &str, _: &str, field: &str, subject: Uuid) -> Value {
    match field {
        "email" => json!(format!("erased-{subject}@erased.invalid")),
        _ => Value::Null,
    }
}

fn vault(db: &TestDatabase) -> PersonalData {
    let settings = Settings::load(8080, None).unwrap();
    PersonalData::new(
        db.pool.clone(),
        &settings.personal_data,
        personal_fields,
        erased_value,
    )
    .unwrap()
}

fn clear_payload() -> Value {
    json!({
        "user_id": "kept in the clear",
        "email": "somchai@example.com",
        "first_name": "Somchai",
        "address": { "city": "Bangkok", "postal_code": "10110" },
        "phone": null,
    })
}

fn recorded(subject: Uuid, payload: Value, metadata: EventMetadata) -> RecordedEvent {
    RecordedEvent {
        position: 1,
        epoch: 1,
        transaction_id: 1,
        event_id: Uuid::now_v7(),
        aggregate_type: "user".into(),
        aggregate_id: subject.to_string(),
        version: 1,
        event_type: "UserRegistered".into(),
        schema_version: 1,
        payload,
        metadata,
        recorded_at: Utc::now(),
    }
}

fn metadata(user_id: Option<Uuid>) -> EventMetadata {
    EventMetadata {
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        user_id: user_id.map(|id| id.to_string()),
        client_ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0 (Somchai's phone)".into()),
    }
}

async fn sealed_event(vault: &PersonalData, subject: Uuid) -> RecordedEvent {
    let mut payload = clear_payload();
    vault
        .seal_payload(subject, "user", "UserRegistered", &mut payload)
        .await
        .unwrap();
    let mut meta = metadata(Some(subject));
    vault.seal_metadata(&mut meta, Utc::now()).await.unwrap();
    recorded(subject, payload, meta)
}

#[tokio::test]
async fn sealed_values_hide_the_clear_ones_and_open_back() {
    let db = TestDatabase::create().await;
    let vault = vault(&db);
    let subject = Uuid::now_v7();
    let event = sealed_event(&vault, subject).await;

    let stored = serde_json::to_string(&event).unwrap();
    for clear in [
        "somchai@example.com",
        "Somchai",
        "Bangkok",
        "203.0.113.7",
        "Mozilla",
    ] {
        assert!(
            !stored.contains(clear),
            "{clear} left in the clear: {stored}"
        );
    }
    assert_eq!(event.payload["user_id"], "kept in the clear");
    assert!(
        event.payload["phone"].is_null(),
        "nothing to hide in a null"
    );
    assert!(is_sealed(event.payload["address"].as_str().unwrap()));

    let mut events = vec![event];
    vault.open(&mut events).await.unwrap();
    assert_eq!(events[0].payload, clear_payload());
    assert_eq!(events[0].metadata.client_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(
        events[0].metadata.user_agent.as_deref(),
        Some("Mozilla/5.0 (Somchai's phone)")
    );
}

#[tokio::test]
async fn a_sealed_value_moved_to_another_field_or_person_does_not_open() {
    let db = TestDatabase::create().await;
    let vault = vault(&db);
    let subject = Uuid::now_v7();
    let mut event = sealed_event(&vault, subject).await;
    let email = event.payload["email"].clone();
    event.payload["first_name"] = email.clone();
    let error = vault.open(&mut [event]).await.unwrap_err();
    assert!(
        matches!(error, PersonalDataError::Corrupt { .. }),
        "{error}"
    );

    let other = Uuid::now_v7();
    let _ = sealed_event(&vault, other).await;
    let relabelled = email
        .as_str()
        .unwrap()
        .replace(&subject.to_string(), &other.to_string());
    let mut payload = clear_payload();
    payload["email"] = json!(relabelled);
    let error = vault
        .open(&mut [recorded(other, payload, metadata(None))])
        .await
        .unwrap_err();
    assert!(
        matches!(error, PersonalDataError::Corrupt { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn an_erased_person_reads_as_placeholders_and_cannot_be_written_again() {
    let db = TestDatabase::create().await;
    let vault = vault(&db);
    let subject = Uuid::now_v7();
    let kept = Uuid::now_v7();
    let event = sealed_event(&vault, subject).await;
    let other = sealed_event(&vault, kept).await;

    assert!(vault.erase(subject).await.unwrap());
    assert!(
        !vault.erase(subject).await.unwrap(),
        "nothing left to destroy"
    );

    let mut events = vec![event, other];
    vault.open(&mut events).await.unwrap();
    assert_eq!(
        events[0].payload["email"],
        json!(format!("erased-{subject}@erased.invalid"))
    );
    assert!(events[0].payload["first_name"].is_null());
    assert!(events[0].payload["address"].is_null());
    assert_eq!(events[0].metadata.client_ip, None);
    assert_eq!(events[0].metadata.user_agent, None);
    assert_eq!(events[1].payload, clear_payload(), "others keep their data");

    let mut payload = clear_payload();
    let refused = vault
        .seal_payload(subject, "user", "UserRegistered", &mut payload)
        .await
        .unwrap_err();
    assert!(matches!(refused, PersonalDataError::Erased(id) if id == subject));
}

#[tokio::test]
async fn a_key_table_restored_from_before_an_erasure_loses_the_key_again() {
    let db = TestDatabase::create().await;
    let vault = vault(&db);
    let subject = Uuid::now_v7();
    let event = sealed_event(&vault, subject).await;
    let backup: (Option<Vec<u8>>,) =
        sqlx::query_as("SELECT wrapped_key FROM event_store.subject_keys WHERE subject_id = $1")
            .bind(subject)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO event_store.streams (stream_id, aggregate_type, version) VALUES ($1, 'user', 0)",
    )
    .bind(subject.to_string())
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO event_store.events (event_id, aggregate_type, aggregate_id, version, event_type, \
         schema_version, payload, metadata) VALUES ($1, 'user', $2, 1, 'UserErased', 1, '{}', $3)",
    )
    .bind(Uuid::now_v7())
    .bind(subject.to_string())
    .bind(serde_json::to_value(metadata(None)).unwrap())
    .execute(&db.pool)
    .await
    .unwrap();
    vault.erase(subject).await.unwrap();

    // The restore: the key is back.
    sqlx::query(
        "UPDATE event_store.subject_keys SET wrapped_key = $2, erased_at = NULL WHERE subject_id = $1",
    )
    .bind(subject)
    .bind(backup.0)
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(vault.reapply_erasures().await.unwrap(), 1);

    let mut events = vec![event];
    vault.open(&mut events).await.unwrap();
    assert!(events[0].payload["first_name"].is_null());
    assert_eq!(vault.reapply_erasures().await.unwrap(), 0);
}

#[tokio::test]
async fn anonymous_requests_are_sealed_under_a_day_key_that_expires() {
    let db = TestDatabase::create().await;
    let vault = vault(&db);
    let mut meta = metadata(None);
    let yesterday = Utc::now() - Duration::days(1);
    vault.seal_metadata(&mut meta, yesterday).await.unwrap();
    let mut today = metadata(None);
    vault.seal_metadata(&mut today, Utc::now()).await.unwrap();
    assert!(is_sealed(meta.client_ip.as_deref().unwrap()));
    assert_ne!(
        meta.client_ip.as_deref().unwrap().split('.').nth(1),
        today.client_ip.as_deref().unwrap().split('.').nth(1),
        "one key a day"
    );
    let subject = Uuid::now_v7();
    let mut events = vec![
        recorded(subject, json!({}), meta.clone()),
        recorded(subject, json!({}), today.clone()),
    ];
    vault.open(&mut events).await.unwrap();
    assert_eq!(events[0].metadata.client_ip.as_deref(), Some("203.0.113.7"));

    // Yesterday's key was created yesterday, as far as retention goes.
    sqlx::query(
        "UPDATE event_store.subject_keys SET created_at = now() - interval '2 days' \
         WHERE kind = 'guest-day' AND subject_id = $1",
    )
    .bind(infrastructure::personal_data::guest_subject(
        yesterday.date_naive(),
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let erased = vault
        .erase_guest_days_before(Utc::now() - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(erased, 1);
    let mut events = vec![
        recorded(subject, json!({}), meta),
        recorded(subject, json!({}), today),
    ];
    vault.open(&mut events).await.unwrap();
    assert_eq!(events[0].metadata.client_ip, None, "past retention");
    assert_eq!(events[1].metadata.client_ip.as_deref(), Some("203.0.113.7"));
}

#[tokio::test]
async fn blind_indexes_are_stable_per_scope_and_hide_the_value() {
    let db = TestDatabase::create().await;
    let vault = vault(&db);
    let email = vault.blind_index("user_email", "somchai@example.com");
    assert_eq!(
        email,
        vault.blind_index("user_email", "somchai@example.com")
    );
    assert_ne!(
        email,
        vault.blind_index("user_phone", "somchai@example.com")
    );
    assert_ne!(
        email,
        vault.blind_index("user_email", "somchai@example.co.th")
    );
    assert_eq!(email.len(), 64);
    assert!(email
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
}

/// A vault whose master key is `key` (base64 of 32 bytes) named `id`, with
/// `previous` keys being rotated out.
fn vault_under(db: &TestDatabase, id: &str, key: &str, previous: &[(&str, &str)]) -> PersonalData {
    use infrastructure::personal_data::PreviousMasterKey;
    let mut settings = Settings::load(8080, None).unwrap().personal_data;
    settings.master_key_id = id.to_owned();
    settings.master_key = key.to_owned().into();
    settings.previous_master_keys = previous
        .iter()
        .map(|(id, key)| PreviousMasterKey {
            id: (*id).to_owned(),
            key: (*key).to_owned().into(),
        })
        .collect();
    PersonalData::new(db.pool.clone(), &settings, personal_fields, erased_value).unwrap()
}

const OLD_MASTER: &str = "b2xkLW1hc3Rlci1rZXktb2YtdGhlLXJvdGF0aW9uISE=";
const NEW_MASTER: &str = "bmV3LW1hc3Rlci1rZXktb2YtdGhlLXJvdGF0aW9uISE=";

#[tokio::test]
async fn a_master_key_rotation_rewraps_live_keys_and_keeps_erased_ones_destroyed() {
    let db = TestDatabase::create().await;
    let old = vault_under(&db, "2026-old", OLD_MASTER, &[]);
    let (kept, erased) = (Uuid::now_v7(), Uuid::now_v7());
    let kept_event = sealed_event(&old, kept).await;
    let erased_event = sealed_event(&old, erased).await;
    old.erase(erased).await.unwrap();

    // The new key alone cannot open what the old one wrapped.
    let new_only = vault_under(&db, "2026-new", NEW_MASTER, &[]);
    let refused = new_only.open(&mut [kept_event.clone()]).await;
    assert!(
        matches!(refused, Err(PersonalDataError::Unwrap(..))),
        "{refused:?}"
    );

    // During the rotation both open; the rewrap moves every live key.
    let rotating = vault_under(&db, "2026-new", NEW_MASTER, &[("2026-old", OLD_MASTER)]);
    let mut events = vec![kept_event.clone()];
    rotating.open(&mut events).await.unwrap();
    assert_eq!(events[0].payload, clear_payload());
    // The erased person's key is gone already: one live key to move.
    assert_eq!(
        rotating.keys_by_master().await.unwrap(),
        [("2026-old".to_owned(), 1)]
    );
    assert_eq!(rotating.rewrap(1).await.unwrap(), 1);
    assert_eq!(rotating.rewrap(1).await.unwrap(), 0, "nothing left to move");
    assert_eq!(
        rotating.keys_by_master().await.unwrap(),
        [("2026-new".to_owned(), 1)]
    );

    // Once rotated, the old key can go: the new one alone opens everything
    // that was live, and the erased person stays erased.
    let mut events = vec![kept_event, erased_event];
    new_only.open(&mut events).await.unwrap();
    assert_eq!(events[0].payload, clear_payload());
    assert_eq!(
        events[1].payload["email"],
        format!("erased-{erased}@erased.invalid")
    );
    assert!(events[1].payload["first_name"].is_null());
}

#[tokio::test]
async fn a_previous_master_key_cannot_reuse_an_id() {
    let db = TestDatabase::create().await;
    let mut settings = Settings::load(8080, None).unwrap().personal_data;
    settings.previous_master_keys = vec![infrastructure::personal_data::PreviousMasterKey {
        id: settings.master_key_id.clone(),
        key: OLD_MASTER.to_owned().into(),
    }];
    let refused = PersonalData::new(db.pool.clone(), &settings, personal_fields, erased_value);
    assert!(matches!(
        refused,
        Err(PersonalDataError::DuplicateMasterKeyId(_))
    ));
}
