//! Contract of `NotificationsReadModel`, run against `MongoNotifications`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Document};
use query_api::catalog::{Listed, Page};
use query_api::error::StoreError;
use query_api::notifications::{
    ChannelView, ChannelsView, MongoNotifications, NotificationKey, NotificationType,
    NotificationView, NotificationsReadModel,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::{self, TestContext};

/// What a contract run needs from an implementation: the adapter over a
/// fresh, isolated store, a way to seed that store as its writers would,
/// and the same adapter over a store that is down.
pub(crate) trait NotificationsHarness: Sized {
    type Model: NotificationsReadModel;
    async fn start() -> Self;
    fn model(&self) -> &Self::Model;
    fn unreachable(&self) -> Self::Model;
    async fn put(&self, documents: &[Document]);
}

fn instant(text: &str) -> DateTime<Utc> {
    text.parse().expect("an instant")
}

fn page(limit: u32, after: Option<NotificationKey>) -> Page<NotificationKey> {
    Page { limit, after }
}

/// The ids of `documents` in the listing's order, computed from the
/// fixtures themselves: unread first, then the newest, then the highest id.
fn expected_order(documents: &[Document]) -> Vec<String> {
    let mut keyed: Vec<(bool, i64, String)> = documents
        .iter()
        .map(|d| {
            (
                d.get_bool("read").unwrap(),
                d.get_datetime("createdAt").unwrap().timestamp_millis(),
                support::notification_id(d),
            )
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
    keyed.into_iter().map(|(_, _, id)| id).collect()
}

fn ids(items: &[NotificationView]) -> Vec<String> {
    items.iter().map(|n| n.id.to_string()).collect()
}

async fn everything<H: NotificationsHarness>(harness: &H, user_id: Uuid) -> Vec<NotificationView> {
    let listed = harness
        .model()
        .notifications(user_id, page(500, None))
        .await
        .expect("store answers");
    assert_eq!(listed.next, None);
    listed.items
}

/// Every page, `limit` at a time, checking each page's size and cursor.
async fn walk<H: NotificationsHarness>(harness: &H, user_id: Uuid, limit: u32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let Listed { items, next } = harness
            .model()
            .notifications(user_id, page(limit, after))
            .await
            .expect("store answers");
        assert!(items.len() <= limit as usize);
        if next.is_some() {
            assert_eq!(
                items.len(),
                limit as usize,
                "a page before the last is full"
            );
        }
        seen.extend(ids(&items));
        match next {
            Some(key) => after = Some(key),
            None => break seen,
        }
    }
}

/// A user's mix: unread and read, two pairs created at the same instant
/// (one pair on each side of the read boundary), an account message.
fn mixed(user_id: Uuid) -> Vec<Document> {
    let order = |kind: &str, at: &str| support::order_notification(user_id, kind, instant(at));
    let read_at = instant("2024-02-01T00:00:00Z");
    vec![
        order("order_confirmed", "2024-01-15T10:30:00.120Z"),
        order("payment_received", "2024-01-15T10:31:00Z"),
        order("order_shipped", "2024-01-16T08:00:00Z"),
        order("order_delivered", "2024-01-16T08:00:00Z"),
        support::account_notification(user_id, instant("2024-01-10T09:00:00Z")),
        support::marked_read(order("order_shipped", "2024-01-20T08:00:00Z"), read_at),
        support::marked_read(order("order_cancelled", "2024-01-12T08:00:00Z"), read_at),
        support::marked_read(order("refund_completed", "2024-01-12T08:00:00Z"), read_at),
        support::marked_read(
            support::account_notification(user_id, instant("2024-01-01T00:00:00Z")),
            read_at,
        ),
    ]
}

pub(crate) async fn unread_come_first_then_the_newest<H: NotificationsHarness>() {
    let harness = H::start().await;
    let user_id = Uuid::now_v7();
    let documents = mixed(user_id);
    harness.put(&documents).await;
    let listed = everything(&harness, user_id).await;
    assert_eq!(ids(&listed), expected_order(&documents));
    let reads: Vec<bool> = listed.iter().map(|n| n.read).collect();
    assert_eq!(
        reads,
        [false, false, false, false, false, true, true, true, true]
    );
    assert!(listed
        .windows(2)
        .all(|w| w[0].read != w[1].read || w[0].created_at >= w[1].created_at));
}

pub(crate) async fn pages_neither_skip_nor_repeat<H: NotificationsHarness>() {
    let harness = H::start().await;
    let user_id = Uuid::now_v7();
    let documents = mixed(user_id);
    harness.put(&documents).await;
    let all = expected_order(&documents);
    for limit in [1, 2, 3, 4, 5, 9] {
        assert_eq!(walk(&harness, user_id, limit).await, all, "limit {limit}");
    }
    // A page that ends exactly at the last one says so.
    let listed = harness
        .model()
        .notifications(user_id, page(9, None))
        .await
        .unwrap();
    assert_eq!(listed.next, None);
    let listed = harness
        .model()
        .notifications(user_id, page(8, None))
        .await
        .unwrap();
    assert!(listed.next.is_some());
}

pub(crate) async fn a_user_reads_only_their_own<H: NotificationsHarness>() {
    let harness = H::start().await;
    let (me, someone) = (Uuid::now_v7(), Uuid::now_v7());
    let mine = mixed(me);
    let theirs = mixed(someone);
    harness.put(&mine).await;
    harness.put(&theirs).await;
    assert_eq!(ids(&everything(&harness, me).await), expected_order(&mine));
    assert_eq!(walk(&harness, me, 2).await, expected_order(&mine));
    assert_eq!(
        ids(&everything(&harness, someone).await),
        expected_order(&theirs)
    );
    assert!(everything(&harness, Uuid::now_v7()).await.is_empty());
    assert_eq!(
        harness.model().unread_count(Uuid::now_v7()).await.unwrap(),
        0
    );
}

pub(crate) async fn a_read_mark_without_its_content_is_no_notification<H: NotificationsHarness>() {
    let harness = H::start().await;
    let user_id = Uuid::now_v7();
    let unread =
        support::order_notification(user_id, "order_shipped", instant("2024-01-16T08:00:00Z"));
    // As a read mark upserts it before the content: the id and the mark only.
    let mark = support::read_mark_alone(instant("2024-01-17T00:00:00Z"));
    // The same, were the mark to carry its recipient.
    let mut addressed_mark = support::read_mark_alone(instant("2024-01-17T00:00:00Z"));
    addressed_mark.insert("userId", user_id.to_string());
    let mut unread_mark = addressed_mark.clone();
    unread_mark.insert("_id", mongodb::bson::oid::ObjectId::new());
    unread_mark.insert("notificationId", Uuid::now_v7().to_string());
    unread_mark.insert("read", false);
    harness
        .put(&[unread.clone(), mark, addressed_mark, unread_mark])
        .await;
    assert_eq!(
        ids(&everything(&harness, user_id).await),
        [support::notification_id(&unread)]
    );
    assert_eq!(walk(&harness, user_id, 1).await.len(), 1);
    assert_eq!(harness.model().unread_count(user_id).await.unwrap(), 1);
}

pub(crate) async fn unread_count_counts_all_of_the_users_unread<H: NotificationsHarness>() {
    let harness = H::start().await;
    let (me, someone) = (Uuid::now_v7(), Uuid::now_v7());
    harness.put(&mixed(me)).await;
    harness.put(&mixed(someone)).await;
    harness
        .put(&[support::order_notification(
            someone,
            "order_confirmed",
            instant("2024-03-01T00:00:00Z"),
        )])
        .await;
    assert_eq!(harness.model().unread_count(me).await.unwrap(), 5);
    assert_eq!(harness.model().unread_count(someone).await.unwrap(), 6);
    // Not the page's: a one-item page of five unread.
    let first = harness
        .model()
        .notifications(me, page(1, None))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    assert_eq!(harness.model().unread_count(me).await.unwrap(), 5);
}

pub(crate) async fn a_notification_reads_back_whole<H: NotificationsHarness>() {
    let harness = H::start().await;
    let user_id = Uuid::now_v7();
    let created = instant("2024-01-16T08:00:00.250Z");
    let shipped = support::marked_read(
        support::order_notification(user_id, "order_shipped", created),
        instant("2024-01-17T09:00:00Z"),
    );
    let account = support::account_notification(user_id, instant("2024-01-10T09:00:00Z"));
    harness.put(&[shipped.clone(), account.clone()]).await;
    let listed = everything(&harness, user_id).await;
    let by_id = |d: &Document| {
        listed
            .iter()
            .find(|n| n.id.to_string() == support::notification_id(d))
            .cloned()
            .expect("listed")
    };
    let data = |value: serde_json::Value| value.as_object().unwrap().clone();
    assert_eq!(
        by_id(&shipped),
        NotificationView {
            id: support::notification_id(&shipped).parse().unwrap(),
            kind: NotificationType::OrderShipped,
            title: "Your order has been shipped!".into(),
            message: "Your order ORD-2024-000001 is on its way.".into(),
            data: data(json!({
                "orderId": "0192f6a4-a000-7000-8000-000000000001",
                "orderNumber": "ORD-2024-000001",
                "trackingNumber": "TH1234567890",
                "amount": "76876.00",
            })),
            channels: ChannelsView {
                email: ChannelView {
                    sent: true,
                    sent_at: Some(created),
                    reason: None
                },
                push: Some(ChannelView {
                    sent: false,
                    sent_at: None,
                    reason: Some("User opted out".into())
                }),
                sms: Some(ChannelView {
                    sent: false,
                    sent_at: None,
                    reason: Some("No phone number".into())
                }),
            },
            read: true,
            read_at: Some(instant("2024-01-17T09:00:00Z")),
            created_at: created,
        }
    );
    let account = by_id(&account);
    assert_eq!(account.kind, NotificationType::EmailVerification);
    assert_eq!(account.channels.push, None);
    assert_eq!(account.channels.sms, None);
    assert!(!account.read);
    assert_eq!(account.read_at, None);
    // A date in `data` reads as RFC 3339, as the API answers dates.
    assert_eq!(account.data["expiresAt"], json!("2024-01-10T10:00:00Z"));
}

pub(crate) async fn an_undecodable_document_is_a_failure<H: NotificationsHarness>() {
    let harness = H::start().await;
    let user_id = Uuid::now_v7();
    let mut unknown =
        support::order_notification(user_id, "order_lost", instant("2024-01-16T08:00:00Z"));
    unknown.insert("title", 42);
    harness.put(&[unknown]).await;
    match harness.model().notifications(user_id, page(10, None)).await {
        Err(error @ StoreError::Failed { .. }) => assert_eq!(error.store(), "mongodb"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub(crate) async fn a_store_that_is_down_is_unavailable_fast<H: NotificationsHarness>() {
    let harness = H::start().await;
    let model = harness.unreachable();
    let started = Instant::now();
    let error = model
        .notifications(Uuid::now_v7(), page(10, None))
        .await
        .expect_err("store is down");
    assert!(error.is_unavailable(), "{error:?}");
    let error = model
        .unread_count(Uuid::now_v7())
        .await
        .expect_err("store is down");
    assert!(error.is_unavailable(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
}

macro_rules! notifications_contract {
    ($harness:ty) => {
        #[tokio::test]
        async fn unread_come_first_then_the_newest() {
            super::unread_come_first_then_the_newest::<$harness>().await;
        }
        #[tokio::test]
        async fn pages_neither_skip_nor_repeat() {
            super::pages_neither_skip_nor_repeat::<$harness>().await;
        }
        #[tokio::test]
        async fn a_user_reads_only_their_own() {
            super::a_user_reads_only_their_own::<$harness>().await;
        }
        #[tokio::test]
        async fn a_read_mark_without_its_content_is_no_notification() {
            super::a_read_mark_without_its_content_is_no_notification::<$harness>().await;
        }
        #[tokio::test]
        async fn unread_count_counts_all_of_the_users_unread() {
            super::unread_count_counts_all_of_the_users_unread::<$harness>().await;
        }
        #[tokio::test]
        async fn a_notification_reads_back_whole() {
            super::a_notification_reads_back_whole::<$harness>().await;
        }
        #[tokio::test]
        async fn an_undecodable_document_is_a_failure() {
            super::an_undecodable_document_is_a_failure::<$harness>().await;
        }
        #[tokio::test]
        async fn a_store_that_is_down_is_unavailable_fast() {
            super::a_store_that_is_down_is_unavailable_fast::<$harness>().await;
        }
    };
}

mod mongo_adapter {
    use super::*;

    pub(crate) struct MongoHarness {
        context: TestContext,
        model: MongoNotifications,
    }

    impl NotificationsHarness for MongoHarness {
        type Model = MongoNotifications;

        async fn start() -> Self {
            let context = TestContext::new().await;
            let model = MongoNotifications::new(&context.settings.mongo);
            Self { context, model }
        }

        fn model(&self) -> &MongoNotifications {
            &self.model
        }

        fn unreachable(&self) -> MongoNotifications {
            let mut settings = self.context.settings.mongo.clone();
            settings.url = support::DEAD_MONGO.into();
            MongoNotifications::new(&settings)
        }

        async fn put(&self, documents: &[Document]) {
            self.context.notifications_put(documents).await;
        }
    }

    notifications_contract!(MongoHarness);

    /// Mongo-specific: an empty or missing collection is an empty listing,
    /// not an error (the projectors may not have run yet).
    #[tokio::test]
    async fn a_missing_collection_is_empty() {
        let harness = MongoHarness::start().await;
        let listed = harness
            .model
            .notifications(Uuid::now_v7(), page(10, None))
            .await
            .unwrap();
        assert!(listed.items.is_empty());
        assert_eq!(listed.next, None);
        assert_eq!(harness.model.unread_count(Uuid::now_v7()).await.unwrap(), 0);
    }

    /// Mongo-specific: each deployment reads its own database, the one the
    /// carts use.
    #[tokio::test]
    async fn notifications_of_another_database_are_invisible() {
        let harness = MongoHarness::start().await;
        let other = TestContext::new().await;
        let user_id = Uuid::now_v7();
        other.notifications_put(&mixed(user_id)).await;
        assert!(everything(&harness, user_id).await.is_empty());
        assert_eq!(harness.model.unread_count(user_id).await.unwrap(), 0);
        let stored = other
            .mongo()
            .await
            .collection::<Document>("notifications")
            .count_documents(doc! { "userId": user_id.to_string() })
            .await
            .unwrap();
        assert_eq!(stored, 9);
    }
}
