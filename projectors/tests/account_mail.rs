//! The account mail worker against real servers: user events sealed as the
//! command API seals them, mail sent over SMTP to the local aiosmtpd of
//! `scripts/services` and read back from its Maildir, and the
//! `notifications` documents in the real MongoDB-wire server. Covers the
//! seed's document shape, one mail per request through redelivery and
//! rebuild, codes that expired before delivery, erased recipients, and a
//! relay that cannot be reached.

mod support;

use chrono::{Duration as TimeDelta, Utc};
use domain::user::{OneTimeCode, UserEvent};
use domain::values::BlindIndex;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use infrastructure::mail::Mailer;
use infrastructure::testing::{code_after, mail_to};
use mongodb::bson::{doc, Document};
use projectors::projections::account_mail::{AccountMail, COLLECTION, RECIPIENT_ERASED};
use projectors::runtime::worker::rebuild;
use projectors::runtime::{DeadLetters, Projection, ProjectionError, WorkerStats};
use secrecy::SecretString;
use support::users::*;
use support::*;
use uuid::Uuid;

async fn mail_worker(h: &Harness, smtp_url: Option<&str>) -> AccountMail {
    let mut smtp = h.settings.smtp.clone();
    if let Some(url) = smtp_url {
        smtp.url = SecretString::from(url.to_owned());
        smtp.timeout_ms = 2000;
    }
    AccountMail::connect(
        h.store.clone(),
        &h.settings.mongo.url,
        &h.settings.mongo.database,
        Upcasters::default(),
        h.personal(),
        Mailer::new(&smtp).expect("smtp settings"),
    )
    .await
    .expect("mongo url")
}

fn verification_requested(user: Uuid, address: &str, code: &str, valid_minutes: i64) -> UserEvent {
    UserEvent::UserEmailVerificationRequested {
        user_id: user,
        email: email(address),
        code: OneTimeCode::parse(code).unwrap(),
        code_hash: BlindIndex::parse(&"c".repeat(64)).unwrap(),
        expires_at: Utc::now() + TimeDelta::minutes(valid_minutes),
        at: Utc::now(),
    }
}

fn reset_requested(user: Uuid, address: &str, code: &str) -> UserEvent {
    UserEvent::UserPasswordResetRequested {
        user_id: user,
        email: email(address),
        code: OneTimeCode::parse(code).unwrap(),
        code_hash: BlindIndex::parse(&"d".repeat(64)).unwrap(),
        expires_at: Utc::now() + TimeDelta::minutes(15),
        at: Utc::now(),
    }
}

/// A registered user with a unique address, and the requests given.
async fn user_with(
    h: &Harness,
    requests: impl FnOnce(Uuid, &str) -> Vec<UserEvent>,
) -> (Uuid, String, Vec<RecordedEvent>) {
    let user = Uuid::now_v7();
    let address = format!("mail-{}-{}@example.com", h.suffix, user.simple());
    let mut events = vec![registered(user, &address, None, 0)];
    events.extend(requests(user, &address));
    h.append_user(user, 0, &events).await;
    let recorded = h
        .recorded()
        .await
        .into_iter()
        .filter(|e| e.aggregate_id == user.to_string())
        .collect();
    (user, address, recorded)
}

async fn notifications(h: &Harness, user: Uuid) -> Vec<Document> {
    use futures::TryStreamExt;
    mongodb::Client::with_uri_str(&h.settings.mongo.url)
        .await
        .unwrap()
        .database(&h.settings.mongo.database)
        .collection::<Document>(COLLECTION)
        .find(doc! { "userId": user.to_string() })
        .sort(doc! { "createdAt": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_code_request_is_mailed_once_and_recorded_without_the_code() {
    let h = harness().await;
    let worker = mail_worker(&h, None).await;
    worker.reset().await.unwrap();
    let (user, address, events) = user_with(&h, |user, address| {
        vec![
            verification_requested(user, address, "48213907", 15),
            reset_requested(user, address, "55501234"),
        ]
    })
    .await;

    let letters = worker.apply(&events).await.unwrap();
    assert!(letters.is_empty(), "{letters:?}");
    let mail = mail_to(&address);
    assert_eq!(mail.len(), 2, "{mail:?}");
    assert_eq!(
        code_after(&mail[0], "verification code is", 8).as_deref(),
        Some("48213907")
    );
    assert_eq!(
        code_after(&mail[1], "reset code is", 8).as_deref(),
        Some("55501234")
    );

    let docs = notifications(&h, user).await;
    assert_eq!(docs.len(), 2, "{docs:?}");
    let kinds: Vec<&str> = docs.iter().map(|d| d.get_str("type").unwrap()).collect();
    assert_eq!(kinds, ["email_verification", "password_reset"]);
    for document in &docs {
        let email = document
            .get_document("channels")
            .unwrap()
            .get_document("email")
            .unwrap();
        assert!(email.get_bool("sent").unwrap(), "{document}");
        assert!(email.get_datetime("sentAt").is_ok(), "{document}");
        assert!(!document.get_bool("read").unwrap());
        assert!(document.get_datetime("createdAt").is_ok());
        assert!(document
            .get_document("data")
            .unwrap()
            .get_str("expiresAt")
            .is_ok());
        let shown = document.to_string();
        for secret in ["48213907", "55501234", address.as_str()] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // Kept on a stream of its own too, so that it can be marked read,
        // and without the code there either.
        let stream = h
            .store
            .load_stream(document.get_str("notificationId").unwrap())
            .await
            .unwrap();
        assert_eq!(stream.len(), 1, "{document}");
        assert_eq!(stream[0].event_type, "NotificationCreated");
        let kept = stream[0].payload.to_string();
        for secret in ["48213907", "55501234", address.as_str()] {
            assert!(!kept.contains(secret), "{secret} in {kept}");
        }
    }

    // A redelivery, and a rebuild from the whole log, send nothing again.
    worker.apply(&events).await.unwrap();
    rebuild(
        &worker,
        &h.store,
        &DeadLetters::new(h.db.pool.clone()),
        &worker_options(),
        &WorkerStats::new(),
    )
    .await
    .unwrap();
    assert_eq!(mail_to(&address).len(), 2);
    assert_eq!(notifications(&h, user).await.len(), 2);
}

#[tokio::test]
async fn a_code_that_expired_before_delivery_is_recorded_not_sent() {
    let h = harness().await;
    let worker = mail_worker(&h, None).await;
    worker.reset().await.unwrap();
    let (user, address, events) = user_with(&h, |user, address| {
        vec![verification_requested(user, address, "11112222", -1)]
    })
    .await;
    worker.apply(&events).await.unwrap();
    assert!(mail_to(&address).is_empty());
    let docs = notifications(&h, user).await;
    let email = docs[0]
        .get_document("channels")
        .unwrap()
        .get_document("email")
        .unwrap();
    assert!(!email.get_bool("sent").unwrap());
    assert_eq!(
        email.get_str("reason").unwrap(),
        "Code expired before delivery"
    );
}

#[tokio::test]
async fn an_erased_persons_code_is_never_mailed() {
    let h = harness().await;
    let worker = mail_worker(&h, None).await;
    worker.reset().await.unwrap();
    let (user, address, events) = user_with(&h, |user, address| {
        vec![verification_requested(user, address, "33334444", 15)]
    })
    .await;
    h.personal().erase(user).await.unwrap();
    worker.apply(&events).await.unwrap();
    assert!(mail_to(&address).is_empty());
    let docs = notifications(&h, user).await;
    let email = docs[0]
        .get_document("channels")
        .unwrap()
        .get_document("email")
        .unwrap();
    assert_eq!(email.get_str("reason").unwrap(), RECIPIENT_ERASED);
}

#[tokio::test]
async fn an_unreachable_relay_fails_the_batch_as_unavailable_and_records_nothing() {
    let h = harness().await;
    // Nothing listens on port 9 (discard) of loopback here.
    let worker = mail_worker(&h, Some("smtp://127.0.0.1:9")).await;
    worker.reset().await.unwrap();
    let (user, address, events) = user_with(&h, |user, address| {
        vec![verification_requested(user, address, "77778888", 15)]
    })
    .await;
    let outcome = worker.apply(&events).await;
    assert!(
        matches!(outcome, Err(ProjectionError::Unavailable(_))),
        "{outcome:?}"
    );
    // The probe says the store is down, so the worker waits instead of
    // isolating the batch as poison.
    assert!(matches!(
        worker.probe().await,
        Err(ProjectionError::Unavailable(_))
    ));
    assert!(notifications(&h, user).await.is_empty());
    assert!(mail_to(&address).is_empty());

    // Once the relay is back, the same batch goes out.
    let worker = mail_worker(&h, None).await;
    worker.probe().await.unwrap();
    worker.apply(&events).await.unwrap();
    assert_eq!(mail_to(&address).len(), 1);
}
