//! The account mail worker: sends the one-time codes of email verification
//! and password reset by SMTP, and records each in the MongoDB
//! `notifications` collection in the seed's shape (`userId`, `type`,
//! `title`, `message`, `data`, `channels.email` with `sent` and `sentAt`, or
//! `reason` when it was not sent, `read`, `readAt`, `createdAt`).
//!
//! What to send comes from the domain's process manager
//! (`domain::notification::account::account_message_for`); the code travels
//! sealed in the request event and is opened here, and only the email holds
//! it: the recorded notification holds neither the code nor the address.
//!
//! The collection is a record of deliveries, not a view that can be redrawn:
//! `reset` keeps its documents, and an event whose notification is recorded
//! already is skipped, so that a redelivery, a rebuild or a replay never
//! mails a person twice. A code whose time has run out is not sent but
//! recorded with the reason, which is also what a replay of old requests
//! leaves. Delivery is at least once: a mail sent just before a crash, and
//! not yet recorded, goes again, under the same `Message-ID`.
//!
//! Each message is also kept as a notification on its own stream
//! (`notification_streams`), email only and without the code, so that its
//! recipient can mark it read like an order's.
//!
//! A relay that refuses a message (a permanent SMTP reply) is recorded as
//! the reason; one that cannot be reached fails the batch as unavailable,
//! and `probe` asks the relay too, so an outage waits instead of turning
//! the waiting mail into dead letters.

use async_trait::async_trait;
use chrono::Utc;
use domain::notification::account::{account_message_for, AccountMessage, EXPIRED_BEFORE_DELIVERY};
use domain::user::{is_erased_placeholder, UserEvent};
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::{PgEventStore, RecordedEvent};
use infrastructure::mail::{Mail, MailError, Mailer};
use infrastructure::personal_data::{PersonalData, PersonalDataError};
use mongodb::bson::{doc, Bson, DateTime as BsonDateTime, Document};
use mongodb::{Collection, Database};

use super::{notification_documents, notification_streams};

use crate::runtime::{DeadLetter, Projection, ProjectionError};

pub const NAME: &str = "account-mail";
pub const COLLECTION: &str = notification_documents::COLLECTION;
const TYPES: &[&str] = &["user"];
const MAILED_EVENTS: &[&str] = &[
    "UserEmailVerificationRequested",
    "UserPasswordResetRequested",
];

/// The reason recorded for a request whose person was erased before the
/// code went out: their address is gone.
pub const RECIPIENT_ERASED: &str = "Recipient erased";

pub struct AccountMail {
    store: PgEventStore,
    database: Database,
    upcasters: Upcasters,
    personal: PersonalData,
    mailer: Mailer,
}

/// What happened to one message's email.
enum Delivery {
    Sent,
    NotSent(String),
}

impl AccountMail {
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
        })
    }

    fn collection(&self) -> Collection<Document> {
        self.database.collection(COLLECTION)
    }

    async fn is_recorded(&self, notification_id: &str) -> Result<bool, ProjectionError> {
        self.collection()
            .find_one(doc! { "notificationId": notification_id, "type": { "$exists": true } })
            .await
            .map(|found| found.is_some())
            .map_err(ProjectionError::unavailable)
    }

    /// The message `event` (sealed, as delivered) calls for, or why it can
    /// never be sent.
    async fn message_of(
        &self,
        event: &RecordedEvent,
    ) -> Result<Result<AccountMessage, String>, ProjectionError> {
        let mut opened = [event.clone()];
        match self.personal.open(&mut opened).await {
            Ok(()) => {}
            Err(error @ PersonalDataError::Corrupt { .. }) => return Ok(Err(error.to_string())),
            Err(error) => return Err(ProjectionError::unavailable(error)),
        }
        let (_, payload) = self.upcasters.upcast(&opened[0]);
        let decoded: UserEvent = match serde_json::from_value(payload) {
            Ok(decoded) => decoded,
            // The serde message may quote the opened payload.
            Err(_) => {
                return Ok(Err(format!(
                    "{} v{} does not decode",
                    event.event_type, event.schema_version
                )))
            }
        };
        Ok(account_message_for(&decoded, event.event_id)
            .ok_or_else(|| format!("{} asks for no message", event.event_type)))
    }

    async fn deliver(&self, message: &AccountMessage) -> Result<Delivery, ProjectionError> {
        if is_erased_placeholder(&message.email.to) {
            return Ok(Delivery::NotSent(RECIPIENT_ERASED.to_owned()));
        }
        if Utc::now() >= message.expires_at {
            return Ok(Delivery::NotSent(EXPIRED_BEFORE_DELIVERY.to_owned()));
        }
        let sent = self
            .mailer
            .send(Mail {
                to: message.email.to.as_str(),
                subject: &message.email.subject,
                text: &message.email.text,
                message_id: Some(format!("{}@account-mail", message.notification_id)),
            })
            .await;
        match sent {
            Ok(()) => Ok(Delivery::Sent),
            Err(MailError::Refused(reason)) => {
                tracing::warn!(notification_id = %message.notification_id, %reason, "mail refused by the relay");
                Ok(Delivery::NotSent(format!("Refused: {reason}")))
            }
            Err(error) => Err(ProjectionError::unavailable(error)),
        }
    }

    async fn record(
        &self,
        event: &RecordedEvent,
        message: &AccountMessage,
        delivery: Delivery,
    ) -> Result<(), ProjectionError> {
        let email = match delivery {
            Delivery::Sent => doc! { "sent": true, "sentAt": BsonDateTime::now() },
            Delivery::NotSent(reason) => doc! { "sent": false, "reason": reason },
        };
        let notification_id = message.notification_id.to_string();
        let data = mongodb::bson::to_bson(&message.data).map_err(ProjectionError::rejected)?;
        let document = doc! {
            "notificationId": &notification_id,
            "userId": message.user_id.to_string(),
            "type": mongodb::bson::to_bson(&message.notification_type).map_err(ProjectionError::rejected)?,
            "title": &message.title,
            "message": &message.message,
            "data": data,
            "channels": { "email": email },
            "createdAt": BsonDateTime::from_millis(message.requested_at.timestamp_millis()),
            "eventId": event.event_id.to_string(),
            "correlationId": event.metadata.correlation_id.to_string(),
        };
        // A read mark (the order notifications worker sets them, from the
        // notification's stream) may be there first: the content is set
        // over it, and only a new document starts unread.
        self.collection()
            .update_one(
                doc! { "notificationId": &notification_id },
                doc! {
                    "$set": document,
                    "$setOnInsert": { "read": false, "readAt": Bson::Null },
                },
            )
            .upsert(true)
            .await
            .map_err(ProjectionError::unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl Projection for AccountMail {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        TYPES
    }

    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        let mut letters = Vec::new();
        for event in events
            .iter()
            .filter(|e| MAILED_EVENTS.contains(&e.event_type.as_str()))
        {
            if self.is_recorded(&event.event_id.to_string()).await? {
                continue;
            }
            let message = match self.message_of(event).await? {
                Ok(message) => message,
                Err(reason) => {
                    letters.push(DeadLetter::for_event(event, reason));
                    continue;
                }
            };
            let notification = message.notification();
            let created = notification_streams::create(
                &self.store,
                &self.upcasters,
                message.notification_id,
                &notification,
                event,
                NAME,
            )
            .await?;
            if let Err(reason) = created {
                letters.push(DeadLetter::for_event(event, reason));
                continue;
            }
            let delivery = self.deliver(&message).await?;
            self.record(event, &message, delivery).await?;
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
