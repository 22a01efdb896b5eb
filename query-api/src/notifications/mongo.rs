//! [`NotificationsReadModel`] over MongoDB's `notifications` collection in
//! `mongo.database`, the one the cart documents use. The listing is one
//! `find` on the user's documents that have their content (`type` exists:
//! a read mark can be upserted before its content arrives), sorted `read`
//! ascending, `createdAt` and `notificationId` descending, which the
//! projectors' `userId_1_read_1_createdAt_-1` index serves up to the
//! tie-break; the page's key is a keyset predicate on the same fields. The
//! index is the projectors' to create: this API never writes to a store.
//!
//! As for the carts, the client is made on first use (the API starts while
//! MongoDB is down) with short connect and server-selection timeouts, and
//! every read is bounded: a MongoDB that does not answer is `Unavailable`
//! within seconds, never a hung request.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use infrastructure::settings::MongoSettings;
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{
    ChannelView, ChannelsView, NotificationKey, NotificationType, NotificationView,
    NotificationsReadModel,
};
use crate::catalog::{Listed, Page};
use crate::error::StoreError;
use crate::BoxFuture;

/// The collection both notification projections write.
pub const NOTIFICATIONS_COLLECTION: &str = "notifications";

const STORE: &str = "mongodb";
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_millis(1500);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(3);

pub struct MongoNotifications {
    url: String,
    database: String,
    client: OnceCell<Client>,
}

impl MongoNotifications {
    /// Keeps the settings; parses and connects on first use.
    pub fn new(settings: &MongoSettings) -> Self {
        Self {
            url: settings.url.clone(),
            database: settings.database.clone(),
            client: OnceCell::new(),
        }
    }

    async fn collection(&self) -> Result<Collection<Document>, StoreError> {
        let client = self
            .client
            .get_or_try_init(|| async {
                let mut options = ClientOptions::parse(&self.url).await.map_err(classify)?;
                options.connect_timeout = Some(CONNECT_TIMEOUT);
                options.server_selection_timeout = Some(SERVER_SELECTION_TIMEOUT);
                options.app_name = Some("query-api".to_owned());
                Client::with_options(options).map_err(|e| StoreError::failed(STORE, e))
            })
            .await?;
        Ok(client
            .database(&self.database)
            .collection(NOTIFICATIONS_COLLECTION))
    }

    /// Runs `operation` bounded; past the bound the store is unavailable.
    async fn bounded<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(OPERATION_TIMEOUT, operation)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::unavailable(
                    STORE,
                    anyhow::anyhow!("no answer within {OPERATION_TIMEOUT:?}"),
                ))
            })
    }

    #[tracing::instrument(name = "mongo_notifications", skip(self))]
    async fn fetch(
        &self,
        user_id: Uuid,
        page: Page<NotificationKey>,
    ) -> Result<Listed<NotificationView, NotificationKey>, StoreError> {
        let mut filter = of_user(user_id);
        if let Some(after) = &page.after {
            filter.extend(after_key(after));
        }
        let documents: Vec<Document> = self
            .bounded(async {
                let mut cursor = self
                    .collection()
                    .await?
                    .find(filter)
                    .sort(doc! { "read": 1, "createdAt": -1, "notificationId": -1 })
                    // One past the page says whether another page follows.
                    .limit(i64::from(page.limit) + 1)
                    .projection(doc! { "_id": 0, "eventId": 0, "correlationId": 0 })
                    .await
                    .map_err(classify)?;
                let mut documents = Vec::new();
                while cursor.advance().await.map_err(classify)? {
                    documents.push(cursor.deserialize_current().map_err(classify)?);
                }
                Ok(documents)
            })
            .await?;
        let mut items = documents
            .into_iter()
            .map(notification_from)
            .collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        let next = items.last().filter(|_| more).map(|last| NotificationKey {
            read: last.read,
            created_at: last.created_at,
            id: last.id,
        });
        Ok(Listed { items, next })
    }

    #[tracing::instrument(name = "mongo_unread_notifications", skip(self))]
    async fn count_unread(&self, user_id: Uuid) -> Result<u64, StoreError> {
        let mut filter = of_user(user_id);
        filter.insert("read", false);
        self.bounded(async {
            self.collection()
                .await?
                .count_documents(filter)
                .await
                .map_err(classify)
        })
        .await
    }
}

impl NotificationsReadModel for MongoNotifications {
    fn notifications(
        &self,
        user_id: Uuid,
        page: Page<NotificationKey>,
    ) -> BoxFuture<'_, Result<Listed<NotificationView, NotificationKey>, StoreError>> {
        Box::pin(self.fetch(user_id, page))
    }

    fn unread_count(&self, user_id: Uuid) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.count_unread(user_id))
    }
}

/// The user's documents that hold a notification's content.
fn of_user(user_id: Uuid) -> Document {
    doc! { "userId": user_id.to_string(), "type": { "$exists": true } }
}

/// The documents after `key` in the listing's order. `read` is a bool, so
/// "after" in `read` ascending is `read: true` once past the unread ones.
fn after_key(key: &NotificationKey) -> Document {
    let created_at = bson::DateTime::from_millis(key.created_at.timestamp_millis());
    let id = key.id.to_string();
    let later_in_group = vec![
        doc! { "createdAt": { "$lt": created_at } },
        doc! { "createdAt": created_at, "notificationId": { "$lt": id } },
    ];
    if key.read {
        doc! { "read": true, "$or": later_in_group }
    } else {
        let mut or = vec![doc! { "read": true }];
        or.extend(later_in_group.into_iter().map(|mut d| {
            d.insert("read", false);
            d
        }));
        doc! { "$or": or }
    }
}

/// A document as the projections write it; fields beyond what the reader
/// answers are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredNotification {
    notification_id: String,
    #[serde(rename = "type")]
    kind: String,
    title: String,
    message: String,
    #[serde(default)]
    data: Option<Document>,
    channels: StoredChannels,
    read: bool,
    #[serde(default)]
    read_at: Option<bson::DateTime>,
    created_at: bson::DateTime,
}

#[derive(Deserialize)]
struct StoredChannels {
    email: StoredChannel,
    #[serde(default)]
    push: Option<StoredChannel>,
    #[serde(default)]
    sms: Option<StoredChannel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredChannel {
    sent: bool,
    #[serde(default)]
    sent_at: Option<bson::DateTime>,
    #[serde(default)]
    reason: Option<String>,
}

impl From<StoredChannel> for ChannelView {
    fn from(channel: StoredChannel) -> Self {
        Self {
            sent: channel.sent,
            sent_at: channel.sent_at.map(instant),
            reason: channel.reason,
        }
    }
}

fn instant(at: bson::DateTime) -> DateTime<Utc> {
    // Out of chrono's range only for dates no projection writes.
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or_default()
}

/// A document that does not read as a notification is the read model's
/// failure, not the reader's: it is reported, never answered half.
fn notification_from(document: Document) -> Result<NotificationView, StoreError> {
    let undecodable = |reason: String| {
        StoreError::failed(
            STORE,
            anyhow::anyhow!("notification document cannot be read: {reason}"),
        )
    };
    let stored: StoredNotification =
        bson::from_document(document).map_err(|e| undecodable(e.to_string()))?;
    let id = Uuid::parse_str(&stored.notification_id).map_err(|_| {
        undecodable(format!(
            "notificationId {:?} is not a UUID",
            stored.notification_id
        ))
    })?;
    let kind = NotificationType::parse(&stored.kind).ok_or_else(|| {
        undecodable(format!(
            "{id}: type {:?} is not a notification type",
            stored.kind
        ))
    })?;
    let data = match stored.data.map(|data| json_of(Bson::Document(data))) {
        Some(Value::Object(data)) => data,
        _ => Map::new(),
    };
    Ok(NotificationView {
        id,
        kind,
        title: stored.title,
        message: stored.message,
        data,
        channels: ChannelsView {
            email: stored.channels.email.into(),
            push: stored.channels.push.map(Into::into),
            sms: stored.channels.sms.map(Into::into),
        },
        read: stored.read,
        read_at: stored.read_at.map(instant),
        created_at: instant(stored.created_at),
    })
}

/// `data` as plain JSON: a date as RFC 3339 and a decimal as its string, as
/// the rest of the API answers them, rather than MongoDB's extended JSON.
fn json_of(value: Bson) -> Value {
    match value {
        Bson::Document(document) => Value::Object(
            document
                .into_iter()
                .map(|(key, value)| (key, json_of(value)))
                .collect(),
        ),
        Bson::Array(items) => Value::Array(items.into_iter().map(json_of).collect()),
        Bson::String(text) => Value::String(text),
        Bson::Boolean(flag) => Value::Bool(flag),
        Bson::Int32(n) => Value::from(n),
        Bson::Int64(n) => Value::from(n),
        Bson::Double(x) => Number::from_f64(x).map_or(Value::Null, Value::Number),
        Bson::Decimal128(decimal) => Value::String(decimal.to_string()),
        Bson::DateTime(at) => {
            Value::String(instant(at).to_rfc3339_opts(SecondsFormat::AutoSi, true))
        }
        Bson::ObjectId(id) => Value::String(id.to_hex()),
        Bson::Null | Bson::Undefined => Value::Null,
        other => other.into_relaxed_extjson(),
    }
}

fn classify(error: mongodb::error::Error) -> StoreError {
    match *error.kind {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => StoreError::unavailable(STORE, error),
        _ => StoreError::failed(STORE, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_among_the_unread_continues_into_the_read() {
        let key = NotificationKey {
            read: false,
            created_at: "2024-01-15T10:30:00.123Z".parse().unwrap(),
            id: Uuid::nil(),
        };
        let at = bson::DateTime::from_millis(key.created_at.timestamp_millis());
        let id = Uuid::nil().to_string();
        assert_eq!(
            after_key(&key),
            doc! { "$or": [
                { "read": true },
                { "createdAt": { "$lt": at }, "read": false },
                { "createdAt": at, "notificationId": { "$lt": &id }, "read": false },
            ] }
        );
        let key = NotificationKey { read: true, ..key };
        assert_eq!(
            after_key(&key),
            doc! { "read": true, "$or": [
                { "createdAt": { "$lt": at } },
                { "createdAt": at, "notificationId": { "$lt": &id } },
            ] }
        );
    }

    #[test]
    fn data_reads_as_plain_json() {
        let at = bson::DateTime::from_millis(1_705_314_600_000);
        let data = doc! {
            "orderNumber": "ORD-2024-000001",
            "amount": "76876.00",
            "count": 2_i32,
            "at": at,
            "nested": { "list": [1_i64, 2.5, Bson::Null] },
        };
        assert_eq!(
            json_of(Bson::Document(data)),
            serde_json::json!({
                "orderNumber": "ORD-2024-000001",
                "amount": "76876.00",
                "count": 2,
                "at": "2024-01-15T10:30:00Z",
                "nested": { "list": [1, 2.5, null] },
            })
        );
    }
}
