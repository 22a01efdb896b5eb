//! The order notifications against real servers: order and payment events
//! appended as the command API appends them (addresses sealed), the buyer
//! read from the event store, mail sent over SMTP to the local aiosmtpd of
//! `scripts/services` and read back from its Maildir, the notification
//! streams in PostgreSQL and the `notifications` documents in the real
//! MongoDB-wire server. Covers the seed's document shape, one mail per
//! milestone through redelivery and rebuild, an opted-out channel, a read
//! mark before and after its notification, and milestones too old to mail.
//! (Checkout needs a session, so there are no guest orders to test.)

mod support;

use chrono::Duration as TimeDelta;
use domain::notification::{Notification, NotificationCommand};
use domain::order::OrderStatus;
use domain::payment::ProviderOutcome;
use infrastructure::event_store::aggregates::{load, Upcasters};
use infrastructure::event_store::RecordedEvent;
use infrastructure::mail::Mailer;
use infrastructure::testing::mail_to;
use mongodb::bson::{doc, Document};
use projectors::projections::notification_documents::COLLECTION;
use projectors::projections::order_notifications::{
    notification_id_for, OrderNotifications, NO_PUSH_DELIVERY, NO_SMS_DELIVERY, TOO_OLD_TO_DELIVER,
};
use projectors::runtime::worker::rebuild;
use projectors::runtime::{DeadLetters, Projection, WorkerStats};
use support::orders::{cancelled, confirmed, line, placed, processing, shipped};
use support::payments::Story;
use support::users::*;
use support::*;
use uuid::Uuid;

async fn worker(h: &Harness) -> OrderNotifications {
    worker_on(h, &h.settings.mongo.database).await
}

/// A worker on `h`'s event store that records in the Mongo `database`.
async fn worker_on(h: &Harness, database: &str) -> OrderNotifications {
    let worker = OrderNotifications::connect(
        h.store.clone(),
        &h.settings.mongo.url,
        database,
        Upcasters::default(),
        h.personal(),
        Mailer::new(&h.settings.smtp).expect("smtp settings"),
    )
    .await
    .expect("mongo url");
    worker.reset().await.expect("indexes");
    worker
}

/// A registered buyer with an address of the test's own.
async fn buyer(
    h: &Harness,
    extra: impl FnOnce(Uuid) -> Vec<domain::user::UserEvent>,
) -> (Uuid, String) {
    let user = Uuid::now_v7();
    let address = format!("orders-{}-{}@example.com", h.suffix, user.simple());
    let mut events = vec![registered(user, &address, Some(&unique_phone(user)), 0)];
    events.extend(extra(user));
    h.append_user(user, 0, &events).await;
    (user, address)
}

/// The order's events as recorded, after `after`.
async fn events_of(h: &Harness, stream: Uuid, after: i64) -> Vec<RecordedEvent> {
    h.recorded()
        .await
        .into_iter()
        .filter(|e| e.aggregate_id == stream.to_string() && e.version > after)
        .collect()
}

async fn notifications(h: &Harness, user: Uuid) -> Vec<Document> {
    notifications_in(h, &h.settings.mongo.database, user).await
}

async fn notifications_in(h: &Harness, database: &str, user: Uuid) -> Vec<Document> {
    use futures::TryStreamExt;
    mongodb::Client::with_uri_str(&h.settings.mongo.url)
        .await
        .unwrap()
        .database(database)
        .collection::<Document>(COLLECTION)
        .find(doc! { "userId": user.to_string() })
        .sort(doc! { "createdAt": 1, "type": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

fn channel<'a>(document: &'a Document, name: &str) -> &'a Document {
    document
        .get_document("channels")
        .unwrap()
        .get_document(name)
        .unwrap()
}

async fn apply(worker: &OrderNotifications, events: &[RecordedEvent]) {
    let letters = worker.apply(events).await.unwrap();
    assert!(letters.is_empty(), "{letters:?}");
}

fn an_order(order: Uuid, user: Option<Uuid>) -> domain::order::OrderEvent {
    placed(
        order,
        user,
        vec![line(Uuid::now_v7(), None, "NOTE-1", "35900", 2)],
        1,
    )
}

#[tokio::test]
async fn a_shipped_order_mails_its_buyer_once_and_records_the_seed_document() {
    let h = harness().await;
    let worker = worker(&h).await;
    let (user, address) = buyer(&h, |_| vec![]).await;
    let order = Uuid::now_v7();
    h.append_order(
        order,
        0,
        &[
            an_order(order, Some(user)),
            confirmed(order, 2),
            processing(order, 3),
            shipped(order, "TH123456789", 4),
        ],
    )
    .await;
    let events = events_of(&h, order, 0).await;

    apply(&worker, &events).await;
    // Redelivered, and rebuilt from scratch: nobody is mailed twice.
    apply(&worker, &events).await;
    rebuild(
        &worker,
        &h.store,
        &DeadLetters::new(h.db.pool.clone()),
        &worker_options(),
        &WorkerStats::new(),
    )
    .await
    .unwrap();

    let mail = mail_to(&address);
    assert_eq!(mail.len(), 2, "confirmed and shipped, once each: {mail:?}");
    let shipped_mail = mail
        .iter()
        .find(|m| m.contains("Your order has been shipped!"))
        .expect("the shipping mail");
    assert!(
        shipped_mail.contains("Tracking number: TH123456789"),
        "{shipped_mail}"
    );

    let docs = notifications(&h, user).await;
    let kinds: Vec<&str> = docs.iter().map(|d| d.get_str("type").unwrap()).collect();
    assert_eq!(kinds, ["order_confirmed", "order_shipped"], "{docs:?}");
    let shipped_doc = &docs[1];
    assert_eq!(
        shipped_doc.get_str("title").unwrap(),
        "Your order has been shipped!"
    );
    let data = shipped_doc.get_document("data").unwrap();
    assert_eq!(data.get_str("orderId").unwrap(), order.to_string());
    assert_eq!(data.get_str("trackingNumber").unwrap(), "TH123456789");
    assert!(shipped_doc
        .get_str("message")
        .unwrap()
        .contains(data.get_str("orderNumber").unwrap()));
    let email = channel(shipped_doc, "email");
    assert!(email.get_bool("sent").unwrap(), "{shipped_doc}");
    assert!(email.get_datetime("sentAt").is_ok(), "{shipped_doc}");
    // Nothing pushes or texts here, and the record says so.
    assert_eq!(
        channel(shipped_doc, "push").get_str("reason").unwrap(),
        NO_PUSH_DELIVERY
    );
    assert_eq!(
        channel(shipped_doc, "sms").get_str("reason").unwrap(),
        NO_SMS_DELIVERY
    );
    assert!(!shipped_doc.get_bool("read").unwrap());
    assert!(shipped_doc.get("readAt").unwrap().as_null().is_some());
    assert!(shipped_doc.get_datetime("createdAt").is_ok());

    // The process manager's decision is a fact on the notification's stream.
    let shipped_event = events
        .iter()
        .find(|e| e.event_type == "OrderShipped")
        .unwrap();
    let id = notification_id_for(shipped_event.event_id);
    assert_eq!(
        shipped_doc.get_str("notificationId").unwrap(),
        id.to_string()
    );
    let stream = load::<Notification>(&h.store, &Upcasters::default(), &id.to_string())
        .await
        .unwrap();
    assert_eq!(stream.version, 1, "created once");
    assert_eq!(stream.aggregate.user_id(), user);
}

#[tokio::test]
async fn an_opted_out_email_is_recorded_as_not_sent_with_the_reason() {
    let h = harness().await;
    let worker = worker(&h).await;
    // `profile_updated` opts out of email; push and sms stay on.
    let (user, address) = buyer(&h, |user| vec![profile_updated(user, "Somchai", None, 1)]).await;
    let order = Uuid::now_v7();
    h.append_order(
        order,
        0,
        &[an_order(order, Some(user)), confirmed(order, 2)],
    )
    .await;

    apply(&worker, &events_of(&h, order, 0).await).await;

    assert!(mail_to(&address).is_empty(), "opted out of email");
    let docs = notifications(&h, user).await;
    assert_eq!(docs.len(), 1, "{docs:?}");
    let email = channel(&docs[0], "email");
    assert!(!email.get_bool("sent").unwrap());
    assert_eq!(email.get_str("reason").unwrap(), "User opted out");
    assert_eq!(
        channel(&docs[0], "sms").get_str("reason").unwrap(),
        "No phone number",
        "the profile update removed the phone"
    );
}

#[tokio::test]
async fn a_payment_and_a_cancellation_notify_with_their_amount_and_reason() {
    let h = harness().await;
    let worker = worker(&h).await;
    let (user, address) = buyer(&h, |_| vec![]).await;
    let order = Uuid::now_v7();
    h.append_order(order, 0, &[an_order(order, Some(user))])
        .await;
    let total = h.order_total(order).await;
    let payment = Uuid::now_v7();
    let story = Story::initiated(payment, order, &total, 2).report(
        &payment.to_string(),
        ProviderOutcome::Completed,
        3,
    );
    h.append_story(&story).await;
    h.append_order(order, 1, &[cancelled(order, OrderStatus::Pending, 4)])
        .await;

    apply(&worker, &events_of(&h, payment, 0).await).await;
    apply(&worker, &events_of(&h, order, 0).await).await;

    let docs = notifications(&h, user).await;
    let kinds: Vec<&str> = docs.iter().map(|d| d.get_str("type").unwrap()).collect();
    assert_eq!(kinds, ["payment_received", "order_cancelled"], "{docs:?}");
    let paid = docs[0].get_document("data").unwrap();
    assert_eq!(
        paid.get("amount").map(ToString::to_string),
        Some(format!("\"{total}\"")),
        "{paid}"
    );
    assert_eq!(
        docs[1]
            .get_document("data")
            .unwrap()
            .get_str("reason")
            .unwrap(),
        "Changed my mind"
    );
    let mail = mail_to(&address);
    assert_eq!(mail.len(), 2, "{mail:?}");
    assert!(
        mail.iter().any(|m| m.contains(&format!("Amount: {total}"))),
        "{mail:?}"
    );
}

#[tokio::test]
async fn a_read_mark_sets_read_and_read_at_whichever_arrives_first() {
    let h = harness().await;
    let worker = worker(&h).await;
    let (user, _) = buyer(&h, |_| vec![]).await;
    let order = Uuid::now_v7();
    h.append_order(
        order,
        0,
        &[an_order(order, Some(user)), confirmed(order, 2)],
    )
    .await;
    let milestones = events_of(&h, order, 0).await;
    let confirmed_event = milestones
        .iter()
        .find(|e| e.event_type == "OrderConfirmed")
        .unwrap();
    let id = notification_id_for(confirmed_event.event_id);

    // The milestone's stream is written before its document: mark it read
    // as a client would, and let the read mark be seen first.
    apply(&worker, &milestones).await;
    let docs = notifications(&h, user).await;
    assert!(!docs[0].get_bool("read").unwrap());
    let stream = load::<Notification>(&h.store, &Upcasters::default(), &id.to_string())
        .await
        .unwrap();
    let read = stream
        .decide(
            NotificationCommand::MarkNotificationRead {
                user_id: user,
                at: at(5),
            },
            &(),
        )
        .await
        .unwrap();
    h.append("notification", &id.to_string(), stream.version, &read)
        .await;
    let marks = events_of(&h, id, 1).await;
    assert_eq!(marks.len(), 1);
    apply(&worker, &marks).await;

    let docs = notifications(&h, user).await;
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert!(docs[0].get_bool("read").unwrap());
    assert_eq!(
        docs[0].get_datetime("readAt").unwrap().timestamp_millis(),
        at(5).timestamp_millis()
    );

    // A worker that sees the mark before the milestone (two topics keep no
    // order between them) ends in the same document.
    let database = format!("{}_marks_first", h.settings.mongo.database);
    let marks_first = worker_on(&h, &database).await;
    apply(&marks_first, &marks).await;
    apply(&marks_first, &milestones).await;
    let docs = notifications_in(&h, &database, user).await;
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert!(docs[0].get_bool("read").unwrap());
    assert_eq!(docs[0].get_str("type").unwrap(), "order_confirmed");
    assert_eq!(
        docs[0].get_str("title").unwrap(),
        "Your order has been confirmed!"
    );
}

#[tokio::test]
async fn a_milestone_older_than_the_delivery_window_is_recorded_unmailed() {
    let h = harness().await;
    let worker = worker(&h).await.with_delivery_window(TimeDelta::zero());
    let (user, address) = buyer(&h, |_| vec![]).await;
    let order = Uuid::now_v7();
    h.append_order(
        order,
        0,
        &[an_order(order, Some(user)), confirmed(order, 2)],
    )
    .await;

    apply(&worker, &events_of(&h, order, 0).await).await;

    assert!(mail_to(&address).is_empty());
    let docs = notifications(&h, user).await;
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(
        channel(&docs[0], "email").get_str("reason").unwrap(),
        TOO_OLD_TO_DELIVER
    );
}
