//! Notification fixtures: documents of the Mongo `notifications` collection
//! in the shape the `order-notifications` and `account-mail` projections
//! write them, and the read mark that can arrive before its content.

use chrono::{DateTime, Utc};
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime as BsonDateTime, Document};
use query_api::notifications::NOTIFICATIONS_COLLECTION;
use uuid::Uuid;

use super::TestContext;

fn date(at: DateTime<Utc>) -> BsonDateTime {
    BsonDateTime::from_millis(at.timestamp_millis())
}

/// An order milestone of `user_id` (`order_shipped` and the like), unread,
/// mailed at `created_at`, with push skipped and no sms delivery.
pub fn order_notification(user_id: Uuid, kind: &str, created_at: DateTime<Utc>) -> Document {
    doc! {
        "_id": ObjectId::new(),
        "notificationId": Uuid::now_v7().to_string(),
        "userId": user_id.to_string(),
        "type": kind,
        "title": "Your order has been shipped!",
        "message": "Your order ORD-2024-000001 is on its way.",
        "data": {
            "orderId": "0192f6a4-a000-7000-8000-000000000001",
            "orderNumber": "ORD-2024-000001",
            "trackingNumber": "TH1234567890",
            "amount": "76876.00",
        },
        "channels": {
            "email": { "sent": true, "sentAt": date(created_at) },
            "push": { "sent": false, "reason": "User opted out" },
            "sms": { "sent": false, "reason": "No phone number" },
        },
        "read": false,
        "readAt": Bson::Null,
        "createdAt": date(created_at),
        "eventId": Uuid::now_v7().to_string(),
        "correlationId": Uuid::now_v7().to_string(),
    }
}

/// An account message of `user_id` (email only), unread, mailed at
/// `created_at`.
pub fn account_notification(user_id: Uuid, created_at: DateTime<Utc>) -> Document {
    doc! {
        "_id": ObjectId::new(),
        "notificationId": Uuid::now_v7().to_string(),
        "userId": user_id.to_string(),
        "type": "email_verification",
        "title": "Verify your email",
        "message": "Your code is 123456.",
        "data": { "expiresAt": date(created_at + chrono::Duration::hours(1)) },
        "channels": { "email": { "sent": true, "sentAt": date(created_at) } },
        "read": false,
        "readAt": Bson::Null,
        "createdAt": date(created_at),
        "eventId": Uuid::now_v7().to_string(),
        "correlationId": Uuid::now_v7().to_string(),
    }
}

/// `document`, marked read at `read_at`.
pub fn marked_read(mut document: Document, read_at: DateTime<Utc>) -> Document {
    document.insert("read", true);
    document.insert("readAt", date(read_at));
    document
}

/// What a read mark upserted before its content leaves: no content at all.
pub fn read_mark_alone(read_at: DateTime<Utc>) -> Document {
    doc! {
        "_id": ObjectId::new(),
        "notificationId": Uuid::now_v7().to_string(),
        "read": true,
        "readAt": date(read_at),
    }
}

/// The `notificationId` of a fixture.
pub fn notification_id(document: &Document) -> String {
    document
        .get_str("notificationId")
        .expect("a notificationId")
        .to_owned()
}

impl TestContext {
    /// Writes the documents as the notification projections do.
    pub async fn notifications_put(&self, documents: &[Document]) {
        self.mongo()
            .await
            .collection::<Document>(NOTIFICATIONS_COLLECTION)
            .insert_many(documents)
            .await
            .expect("MongoDB answers; start it with `scripts/services up`");
    }
}
