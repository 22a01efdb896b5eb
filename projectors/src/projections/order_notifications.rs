//! The order notifications: the process manager that turns an order's and
//! a payment's milestones (confirmed, paid, shipped with its tracking
//! number, delivered, cancelled, refunded) into a notification for the
//! buyer, emails it over SMTP, and records it in the MongoDB
//! `notifications` collection in the seed's shape; and the read marks of
//! those notifications (`NotificationRead`), set on the same documents.
//!
//! For each milestone it loads the order and the buyer from the event store
//! (the source of truth, not another projection, so nothing waits on a read
//! model), lets `domain::notification` decide the notification and its
//! channels from the buyer's preferences, and appends it to the
//! notification's own stream, whose id is derived from the milestone's event
//! id: a redelivery, a twin worker or a replay decides the same
//! notification again, which the stream takes as done. Then it mails it,
//! and records the document last.
//!
//! Like the account mail, the collection is a record of deliveries: `reset`
//! keeps the documents, and a milestone whose document is recorded is
//! skipped, so no buyer is mailed twice by a rebuild. Delivery is at least
//! once: a mail sent just before a crash goes again, under the same
//! `Message-ID`. A milestone older than the delivery window (a worker that
//! was down for days, a new deployment replaying years of orders) is
//! recorded but not mailed. Guest orders notify no one.
//!
//! Email is the one channel delivered here. The document records push and
//! sms as the preferences decide when they rule a channel out, and
//! otherwise as not sent because no push or sms delivery is configured: it
//! never claims a message nobody sent.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use domain::notification::triggers::{
    notified_order_of_payment, recipient_preferences, trigger_for_order_event,
    trigger_for_payment_event, OrderRecipient,
};
use domain::notification::{
    notifications_for, ChannelOutcome, NotificationCommand, NotificationEvent, NotificationTrigger,
};
use domain::order::{Order, OrderEvent};
use domain::payment::PaymentEvent;
use domain::user::{is_erased_placeholder, User};
use infrastructure::event_store::aggregates::{load_opening, Upcasters};
use infrastructure::event_store::{PgEventStore, RecordedEvent};
use infrastructure::mail::{Mail, MailError, Mailer};
use infrastructure::personal_data::PersonalData;
use mongodb::bson::{doc, Bson, DateTime as BsonDateTime, Document};
use mongodb::{Collection, Database};
use uuid::Uuid;

use super::account_mail::RECIPIENT_ERASED;
use super::notification_documents;
use super::notification_streams::{self, unavailable_or_rejected};
use crate::runtime::{DeadLetter, Projection, ProjectionError};

pub const NAME: &str = "order-notifications";
const TYPES: &[&str] = &["order", "payment", "notification"];

/// How long after a milestone its email is still worth sending, in days.
pub const DEFAULT_DELIVERY_WINDOW_DAYS: i64 = 3;
/// The email reason recorded for a milestone older than the window.
pub const TOO_OLD_TO_DELIVER: &str = "Too old to deliver";
pub const NO_PUSH_DELIVERY: &str = "No push delivery configured";
pub const NO_SMS_DELIVERY: &str = "No sms delivery configured";

/// Names the notification streams that milestones create: the same
/// milestone always names the same notification.
const NOTIFICATION_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_722d_6e6f_7469_6669_6361_7469);

/// The notification a milestone event creates.
pub fn notification_id_for(event_id: Uuid) -> Uuid {
    Uuid::new_v5(&NOTIFICATION_NAMESPACE, event_id.as_bytes())
}

pub struct OrderNotifications {
    store: PgEventStore,
    database: Database,
    upcasters: Upcasters,
    personal: PersonalData,
    mailer: Mailer,
    delivery_window: Duration,
}

/// What happened to one notification's email.
enum Delivery {
    Sent(DateTime<Utc>),
    NotSent(String),
}

/// A milestone's notification, as decided and appended.
struct Decided {
    notification_id: Uuid,
    user_id: Uuid,
    command: NotificationCommand,
}

impl OrderNotifications {
    pub async fn connect(
        store: PgEventStore,
        url: &str,
        database: &str,
        upcasters: Upcasters,
        personal: PersonalData,
        mailer: Mailer,
    ) -> anyhow::Result<Self> {
        let client = mongodb::Client::with_uri_str(url).await?;
        Ok(Self {
            store,
            database: client.database(database),
            upcasters,
            personal,
            mailer,
            delivery_window: Duration::days(DEFAULT_DELIVERY_WINDOW_DAYS),
        })
    }

    pub fn with_delivery_window(mut self, window: Duration) -> Self {
        self.delivery_window = window;
        self
    }

    fn collection(&self) -> Collection<Document> {
        self.database.collection(notification_documents::COLLECTION)
    }

    async fn is_recorded(&self, notification_id: Uuid) -> Result<bool, ProjectionError> {
        self.collection()
            .find_one(doc! {
                "notificationId": notification_id.to_string(),
                "type": { "$exists": true },
            })
            .await
            .map(|found| found.is_some())
            .map_err(ProjectionError::unavailable)
    }

    /// The trigger a milestone event calls for, with its buyer; `None` for
    /// events that notify no one (other steps, guest orders).
    async fn trigger_of(
        &self,
        event: &RecordedEvent,
    ) -> Result<Result<Option<NotificationTrigger>, String>, ProjectionError> {
        let decoded = match event.aggregate_type.as_str() {
            "order" => self
                .upcasters
                .decode::<OrderEvent>(event)
                .map(|e| Milestone::Order(Box::new(e))),
            "payment" => self
                .upcasters
                .decode::<PaymentEvent>(event)
                .map(|e| Milestone::Payment(Box::new(e))),
            _ => return Ok(Ok(None)),
        };
        let milestone = match decoded {
            Ok(milestone) => milestone,
            Err(_) => {
                return Ok(Err(format!(
                    "{} v{} does not decode",
                    event.event_type, event.schema_version
                )))
            }
        };
        let order_id = match &milestone {
            Milestone::Order(_) => match Uuid::parse_str(&event.aggregate_id) {
                Ok(id) => id,
                Err(_) => {
                    return Ok(Err(format!(
                        "order stream {} is no uuid",
                        event.aggregate_id
                    )))
                }
            },
            Milestone::Payment(payment) => match notified_order_of_payment(payment) {
                Some(id) => id,
                None => return Ok(Ok(None)),
            },
        };
        let order = load_opening::<Order>(
            &self.store,
            &self.upcasters,
            &self.personal,
            &order_id.to_string(),
        )
        .await
        .map_err(unavailable_or_rejected)?;
        let Some(recipient) = OrderRecipient::of(&order.aggregate) else {
            return Ok(Ok(None));
        };
        Ok(Ok(match &milestone {
            Milestone::Order(order_event) => trigger_for_order_event(order_event, &recipient),
            Milestone::Payment(payment) => trigger_for_payment_event(payment, &recipient),
        }))
    }

    /// Decides the notification for `trigger` from its buyer's account and
    /// appends it to its stream, unless it is there already.
    async fn decide(
        &self,
        event: &RecordedEvent,
        trigger: &NotificationTrigger,
    ) -> Result<Result<(Decided, User), String>, ProjectionError> {
        let user_id = trigger.user_id();
        let buyer = load_opening::<User>(
            &self.store,
            &self.upcasters,
            &self.personal,
            &user_id.to_string(),
        )
        .await
        .map_err(unavailable_or_rejected)?
        .aggregate;
        let Some(preferences) = recipient_preferences(&buyer) else {
            return Ok(Err(format!("buyer {user_id} is not registered")));
        };
        let notification_id = notification_id_for(event.event_id);
        let Some(command) =
            notifications_for(trigger, &preferences, notification_id, event.recorded_at)
        else {
            return Ok(Err(format!("buyer {user_id} is not the trigger's user")));
        };
        match notification_streams::create(
            &self.store,
            &self.upcasters,
            notification_id,
            &command,
            event,
            NAME,
        )
        .await?
        {
            Ok(()) => {}
            Err(reason) => return Ok(Err(reason)),
        }
        Ok(Ok((
            Decided {
                notification_id,
                user_id,
                command,
            },
            buyer,
        )))
    }

    async fn deliver(
        &self,
        event: &RecordedEvent,
        decided: &Decided,
        buyer: &User,
    ) -> Result<Delivery, ProjectionError> {
        let NotificationCommand::CreateNotification {
            title,
            message,
            data,
            channels,
            ..
        } = &decided.command
        else {
            unreachable!("the process manager only creates notifications")
        };
        if let ChannelOutcome::Skipped { reason } = channels.email {
            return Ok(Delivery::NotSent(reason.to_string()));
        }
        let Some(to) = buyer.email().filter(|email| !is_erased_placeholder(email)) else {
            return Ok(Delivery::NotSent(RECIPIENT_ERASED.to_owned()));
        };
        if Utc::now() - event.recorded_at > self.delivery_window {
            return Ok(Delivery::NotSent(TOO_OLD_TO_DELIVER.to_owned()));
        }
        let text = email_text(message, data);
        let sent = self
            .mailer
            .send(Mail {
                to: to.as_str(),
                subject: title,
                text: &text,
                message_id: Some(format!("{}@{NAME}", decided.notification_id)),
            })
            .await;
        match sent {
            Ok(()) => Ok(Delivery::Sent(Utc::now())),
            Err(MailError::Refused(reason)) => {
                tracing::warn!(notification_id = %decided.notification_id, %reason, "order mail refused by the relay");
                Ok(Delivery::NotSent(format!("Refused: {reason}")))
            }
            Err(error) => Err(ProjectionError::unavailable(error)),
        }
    }

    async fn record(
        &self,
        event: &RecordedEvent,
        decided: &Decided,
        delivery: Delivery,
    ) -> Result<(), ProjectionError> {
        let NotificationCommand::CreateNotification {
            notification_type,
            title,
            message,
            data,
            channels,
            at,
            ..
        } = &decided.command
        else {
            unreachable!("the process manager only creates notifications")
        };
        let email = match delivery {
            Delivery::Sent(at) => sent_at(at),
            Delivery::NotSent(reason) => not_sent(&reason),
        };
        let undelivered = |outcome: ChannelOutcome, no_delivery: &str| match outcome {
            ChannelOutcome::Skipped { reason } => not_sent(&reason.to_string()),
            ChannelOutcome::Sent { .. } => not_sent(no_delivery),
        };
        let notification_id = decided.notification_id.to_string();
        let content = doc! {
            "notificationId": &notification_id,
            "userId": decided.user_id.to_string(),
            "type": mongodb::bson::to_bson(notification_type).map_err(ProjectionError::rejected)?,
            "title": title,
            "message": message,
            "data": mongodb::bson::to_bson(data).map_err(ProjectionError::rejected)?,
            "channels": {
                "email": email,
                "push": undelivered(channels.push, NO_PUSH_DELIVERY),
                "sms": undelivered(channels.sms, NO_SMS_DELIVERY),
            },
            "createdAt": BsonDateTime::from_millis(at.timestamp_millis()),
            "eventId": event.event_id.to_string(),
            "correlationId": event.metadata.correlation_id.to_string(),
        };
        // A read mark may have arrived first (from another topic): the
        // content is set over it, and only a new document starts unread.
        self.collection()
            .update_one(
                doc! { "notificationId": &notification_id },
                doc! {
                    "$set": content,
                    "$setOnInsert": { "read": false, "readAt": Bson::Null },
                },
            )
            .upsert(true)
            .await
            .map_err(ProjectionError::unavailable)?;
        Ok(())
    }

    async fn mark_read(&self, event: &RecordedEvent) -> Result<Option<String>, ProjectionError> {
        let read = match self.upcasters.decode::<NotificationEvent>(event) {
            Ok(NotificationEvent::NotificationRead {
                notification_id,
                read_at,
                ..
            }) => (notification_id, read_at),
            Ok(NotificationEvent::NotificationCreated { .. }) => return Ok(None),
            Err(_) => {
                return Ok(Some(format!(
                    "{} v{} does not decode",
                    event.event_type, event.schema_version
                )))
            }
        };
        let (notification_id, read_at) = read;
        self.collection()
            .update_one(
                doc! { "notificationId": notification_id.to_string() },
                doc! { "$set": {
                    "read": true,
                    "readAt": BsonDateTime::from_millis(read_at.timestamp_millis()),
                } },
            )
            .upsert(true)
            .await
            .map_err(ProjectionError::unavailable)?;
        Ok(None)
    }

    async fn notify(&self, event: &RecordedEvent) -> Result<Option<String>, ProjectionError> {
        if self
            .is_recorded(notification_id_for(event.event_id))
            .await?
        {
            return Ok(None);
        }
        let trigger = match self.trigger_of(event).await? {
            Ok(Some(trigger)) => trigger,
            Ok(None) => return Ok(None),
            Err(reason) => return Ok(Some(reason)),
        };
        let (decided, buyer) = match self.decide(event, &trigger).await? {
            Ok(decided) => decided,
            Err(reason) => return Ok(Some(reason)),
        };
        let delivery = self.deliver(event, &decided, &buyer).await?;
        self.record(event, &decided, delivery).await?;
        Ok(None)
    }
}

enum Milestone {
    Order(Box<OrderEvent>),
    Payment(Box<PaymentEvent>),
}

/// The event types that can notify; the rest are not even decoded.
const MILESTONES: &[&str] = &[
    "OrderConfirmed",
    "OrderShipped",
    "OrderDelivered",
    "OrderCancelled",
    "PaymentCompleted",
    "RefundCompleted",
];

fn sent_at(at: DateTime<Utc>) -> Document {
    doc! { "sent": true, "sentAt": BsonDateTime::from_millis(at.timestamp_millis()) }
}

fn not_sent(reason: &str) -> Document {
    doc! { "sent": false, "reason": reason }
}

/// The message, then what the buyer may want to quote or look up.
fn email_text(message: &str, data: &serde_json::Value) -> String {
    let mut text = message.to_owned();
    let details = [
        ("orderNumber", "Order number"),
        ("trackingNumber", "Tracking number"),
        ("amount", "Amount"),
        ("currency", "Currency"),
    ];
    let mut first = true;
    for (key, label) in details {
        if let Some(value) = data.get(key).and_then(serde_json::Value::as_str) {
            text.push_str(if first { "\n\n" } else { "\n" });
            text.push_str(&format!("{label}: {value}"));
            first = false;
        }
    }
    text
}

#[async_trait]
impl Projection for OrderNotifications {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        TYPES
    }

    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        let mut letters = Vec::new();
        for event in events {
            let refused = match event.event_type.as_str() {
                "NotificationRead" => self.mark_read(event).await?,
                kind if MILESTONES.contains(&kind) => self.notify(event).await?,
                _ => None,
            };
            if let Some(reason) = refused {
                letters.push(DeadLetter::for_event(event, reason));
            }
        }
        Ok(letters)
    }

    async fn probe(&self) -> Result<(), ProjectionError> {
        if !self.is_intact().await? {
            return Err(ProjectionError::Lost);
        }
        self.mailer
            .check()
            .await
            .map_err(ProjectionError::unavailable)
    }

    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        notification_documents::has_indexes(&self.collection())
            .await
            .map_err(ProjectionError::unavailable)
    }

    /// Keeps every document: they record mail that went out, which a
    /// rebuild must not send again.
    async fn reset(&self) -> Result<(), ProjectionError> {
        notification_documents::create_indexes(&self.collection())
            .await
            .map_err(ProjectionError::unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_email_quotes_the_order_number_and_tracking_number() {
        let text = email_text(
            "Your order #ORD-2026-000001 is on its way.",
            &json!({"orderId": "x", "orderNumber": "ORD-2026-000001", "trackingNumber": "TH123456789"}),
        );
        assert_eq!(
            text,
            "Your order #ORD-2026-000001 is on its way.\n\nOrder number: ORD-2026-000001\nTracking number: TH123456789"
        );
    }

    #[test]
    fn a_milestone_always_names_the_same_notification() {
        let event = Uuid::now_v7();
        assert_eq!(notification_id_for(event), notification_id_for(event));
        assert_ne!(
            notification_id_for(event),
            notification_id_for(Uuid::now_v7())
        );
    }
}
