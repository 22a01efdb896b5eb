//! Customer notifications (Mongo `notifications`): the process manager that turns
//! order and payment milestones into a notification for their customer, and the
//! notification aggregate, one stream per notification, that records what was
//! sent on which channel and when the recipient read it.
//!
//! Account messages (email verification, password reset) come from the
//! user's own events through `account::account_message_for`: they carry a
//! one-time code, go by email only and are not stored as notification
//! streams, because their record is the delivery itself.
//!
//! The process manager is the pure `notifications_for`: it knows nothing of the
//! order or payment modules; the command side maps their events onto a
//! `NotificationTrigger` and loads the recipient's `RecipientPreferences`.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;
use uuid::Uuid;

use crate::values::{Currency, Money, OrderNumber};

pub mod account;
#[cfg(test)]
mod tests;
pub mod triggers;

/// The seed's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationType {
    OrderConfirmed,
    PaymentReceived,
    OrderShipped,
    OrderDelivered,
    OrderCancelled,
    RefundCompleted,
    EmailVerification,
    PasswordReset,
}

/// A milestone worth telling the customer about, as the command side maps it
/// from order and payment events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationTrigger {
    OrderConfirmed {
        order_id: Uuid,
        order_number: OrderNumber,
        user_id: Uuid,
    },
    PaymentReceived {
        order_id: Uuid,
        order_number: OrderNumber,
        user_id: Uuid,
        amount: Money,
        currency: Currency,
    },
    OrderShipped {
        order_id: Uuid,
        order_number: OrderNumber,
        user_id: Uuid,
        tracking_number: Option<String>,
    },
    OrderDelivered {
        order_id: Uuid,
        order_number: OrderNumber,
        user_id: Uuid,
    },
    OrderCancelled {
        order_id: Uuid,
        order_number: OrderNumber,
        user_id: Uuid,
        reason: Option<String>,
    },
    RefundCompleted {
        order_id: Uuid,
        order_number: OrderNumber,
        user_id: Uuid,
        amount: Money,
        currency: Currency,
    },
}

impl NotificationTrigger {
    /// The customer the milestone concerns.
    pub fn user_id(&self) -> Uuid {
        match self {
            NotificationTrigger::OrderConfirmed { user_id, .. }
            | NotificationTrigger::PaymentReceived { user_id, .. }
            | NotificationTrigger::OrderShipped { user_id, .. }
            | NotificationTrigger::OrderDelivered { user_id, .. }
            | NotificationTrigger::OrderCancelled { user_id, .. }
            | NotificationTrigger::RefundCompleted { user_id, .. } => *user_id,
        }
    }
}

/// What the recipient allows and can receive, loaded by the command side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientPreferences {
    pub user_id: Uuid,
    pub email_opt_in: bool,
    pub push_opt_in: bool,
    pub sms_opt_in: bool,
    pub has_phone: bool,
}

/// Why a channel was not used; serializes as the seed's human-readable reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SkipReason {
    #[serde(rename = "User opted out")]
    UserOptedOut,
    #[serde(rename = "No phone number")]
    NoPhoneNumber,
    /// Account messages (one-time codes) go by email and nowhere else.
    #[serde(rename = "Email only")]
    EmailOnly,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::UserOptedOut => "User opted out",
            SkipReason::NoPhoneNumber => "No phone number",
            SkipReason::EmailOnly => "Email only",
        })
    }
}

/// What happened on one channel. Serializes to the seed's shape:
/// `{"sent": true, "sentAt": ...}` or `{"sent": false, "reason": ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ChannelRecord", into = "ChannelRecord")]
pub enum ChannelOutcome {
    Sent { sent_at: DateTime<Utc> },
    Skipped { reason: SkipReason },
}

#[derive(Serialize, Deserialize)]
struct ChannelRecord {
    sent: bool,
    #[serde(rename = "sentAt", default, skip_serializing_if = "Option::is_none")]
    sent_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<SkipReason>,
}

impl From<ChannelOutcome> for ChannelRecord {
    fn from(outcome: ChannelOutcome) -> Self {
        match outcome {
            ChannelOutcome::Sent { sent_at } => ChannelRecord {
                sent: true,
                sent_at: Some(sent_at),
                reason: None,
            },
            ChannelOutcome::Skipped { reason } => ChannelRecord {
                sent: false,
                sent_at: None,
                reason: Some(reason),
            },
        }
    }
}

impl TryFrom<ChannelRecord> for ChannelOutcome {
    type Error = String;
    fn try_from(record: ChannelRecord) -> Result<Self, Self::Error> {
        match record {
            ChannelRecord {
                sent: true,
                sent_at: Some(sent_at),
                reason: None,
            } => Ok(ChannelOutcome::Sent { sent_at }),
            ChannelRecord {
                sent: false,
                sent_at: None,
                reason: Some(reason),
            } => Ok(ChannelOutcome::Skipped { reason }),
            _ => Err("a channel is either sent with sentAt or skipped with a reason".to_owned()),
        }
    }
}

/// The seed's `channels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationChannels {
    pub email: ChannelOutcome,
    pub push: ChannelOutcome,
    pub sms: ChannelOutcome,
}

impl NotificationChannels {
    /// Opting out wins over every other reason; sms also needs a phone number.
    pub fn for_recipient(recipient: &RecipientPreferences, at: DateTime<Utc>) -> Self {
        let sent = ChannelOutcome::Sent { sent_at: at };
        let opted_out = ChannelOutcome::Skipped {
            reason: SkipReason::UserOptedOut,
        };
        let by_opt_in = |opt_in: bool| if opt_in { sent } else { opted_out };
        Self {
            email: by_opt_in(recipient.email_opt_in),
            push: by_opt_in(recipient.push_opt_in),
            sms: match (recipient.sms_opt_in, recipient.has_phone) {
                (false, _) => opted_out,
                (true, false) => ChannelOutcome::Skipped {
                    reason: SkipReason::NoPhoneNumber,
                },
                (true, true) => sent,
            },
        }
    }
}

/// The process manager: what `recipient` should be told about `trigger`.
/// `None` when the milestone is someone else's (the preferences of another
/// user were passed), so a fan-out over recipients stays safe.
pub fn notifications_for(
    trigger: &NotificationTrigger,
    recipient: &RecipientPreferences,
    notification_id: Uuid,
    at: DateTime<Utc>,
) -> Option<NotificationCommand> {
    if trigger.user_id() != recipient.user_id {
        return None;
    }
    let (notification_type, title, message, data) = content(trigger);
    Some(NotificationCommand::CreateNotification {
        notification_id,
        user_id: recipient.user_id,
        notification_type,
        title: title.to_owned(),
        message,
        data,
        channels: NotificationChannels::for_recipient(recipient, at),
        at,
    })
}

/// Type, title, message and `data` per trigger. `data` keeps the seed's
/// camelCase keys because clients read it as-is.
fn content(trigger: &NotificationTrigger) -> (NotificationType, &'static str, String, Value) {
    let base = |order_id: &Uuid, order_number: &OrderNumber| {
        let mut data = Map::new();
        data.insert("orderId".into(), json!(order_id));
        data.insert("orderNumber".into(), json!(order_number));
        data
    };
    match trigger {
        NotificationTrigger::OrderConfirmed {
            order_id,
            order_number,
            ..
        } => (
            NotificationType::OrderConfirmed,
            "Your order has been confirmed!",
            format!("Your order #{order_number} has been confirmed."),
            Value::Object(base(order_id, order_number)),
        ),
        NotificationTrigger::PaymentReceived {
            order_id,
            order_number,
            amount,
            currency,
            ..
        } => {
            let mut data = base(order_id, order_number);
            data.insert("amount".into(), json!(amount));
            data.insert("currency".into(), json!(currency));
            (
                NotificationType::PaymentReceived,
                "Payment received",
                format!(
                    "We received your payment of {amount} {currency} for order #{order_number}."
                ),
                Value::Object(data),
            )
        }
        NotificationTrigger::OrderShipped {
            order_id,
            order_number,
            tracking_number,
            ..
        } => {
            let mut data = base(order_id, order_number);
            if let Some(tracking_number) = tracking_number {
                data.insert("trackingNumber".into(), json!(tracking_number));
            }
            (
                NotificationType::OrderShipped,
                "Your order has been shipped!",
                format!("Your order #{order_number} is on its way."),
                Value::Object(data),
            )
        }
        NotificationTrigger::OrderDelivered {
            order_id,
            order_number,
            ..
        } => (
            NotificationType::OrderDelivered,
            "Your order has been delivered!",
            format!("Your order #{order_number} has been delivered."),
            Value::Object(base(order_id, order_number)),
        ),
        NotificationTrigger::OrderCancelled {
            order_id,
            order_number,
            reason,
            ..
        } => {
            let mut data = base(order_id, order_number);
            let reason = reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
            let message = match reason {
                Some(reason) => {
                    data.insert("reason".into(), json!(reason));
                    format!("Your order #{order_number} has been cancelled: {reason}")
                }
                None => format!("Your order #{order_number} has been cancelled."),
            };
            (
                NotificationType::OrderCancelled,
                "Your order has been cancelled",
                message,
                Value::Object(data),
            )
        }
        NotificationTrigger::RefundCompleted {
            order_id,
            order_number,
            amount,
            currency,
            ..
        } => {
            let mut data = base(order_id, order_number);
            data.insert("amount".into(), json!(amount));
            data.insert("currency".into(), json!(currency));
            (
                NotificationType::RefundCompleted,
                "Your refund has been completed",
                format!(
                    "A refund of {amount} {currency} for order #{order_number} has been completed."
                ),
                Value::Object(data),
            )
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    notification_id: Option<Uuid>,
    user_id: Uuid,
    notification_type: Option<NotificationType>,
    data: Value,
    read_at: Option<DateTime<Utc>>,
}

impl Notification {
    /// `None` until `NotificationCreated`.
    pub fn notification_id(&self) -> Option<Uuid> {
        self.notification_id
    }
    pub fn user_id(&self) -> Uuid {
        self.user_id
    }
    pub fn notification_type(&self) -> Option<NotificationType> {
        self.notification_type
    }
    pub fn is_read(&self) -> bool {
        self.read_at.is_some()
    }
    pub fn read_at(&self) -> Option<DateTime<Utc>> {
        self.read_at
    }

    /// The events `command` produces against the current state, without applying them.
    pub fn decide(
        &self,
        command: NotificationCommand,
    ) -> Result<Vec<NotificationEvent>, NotificationError> {
        match command {
            NotificationCommand::CreateNotification {
                notification_id,
                user_id,
                notification_type,
                title,
                message,
                data,
                channels,
                at,
            } => {
                if let Some(existing) = self.notification_id {
                    // A redelivered trigger mapped to the same id is already done.
                    let same = self.user_id == user_id
                        && self.notification_type == Some(notification_type)
                        && self.data == data;
                    return if same {
                        Ok(vec![])
                    } else {
                        Err(NotificationError::AlreadyCreated {
                            notification_id: existing,
                        })
                    };
                }
                Ok(vec![NotificationEvent::NotificationCreated {
                    notification_id,
                    user_id,
                    notification_type,
                    title,
                    message,
                    data,
                    channels,
                    read: false,
                    created_at: at,
                }])
            }
            NotificationCommand::MarkNotificationRead { user_id, at } => {
                let notification_id = self.notification_id.ok_or(NotificationError::NotFound)?;
                if user_id != self.user_id {
                    return Err(NotificationError::NotRecipient { user_id });
                }
                if self.is_read() {
                    return Ok(vec![]);
                }
                Ok(vec![NotificationEvent::NotificationRead {
                    notification_id,
                    user_id,
                    read: true,
                    read_at: at,
                }])
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum NotificationCommand {
    /// Built by `notifications_for`, not by clients.
    CreateNotification {
        notification_id: Uuid,
        user_id: Uuid,
        notification_type: NotificationType,
        title: String,
        message: String,
        data: Value,
        channels: NotificationChannels,
        at: DateTime<Utc>,
    },
    /// `user_id` is the authenticated caller; only the recipient may mark it read.
    MarkNotificationRead { user_id: Uuid, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NotificationEvent {
    NotificationCreated {
        notification_id: Uuid,
        user_id: Uuid,
        notification_type: NotificationType,
        title: String,
        message: String,
        /// Seed-shaped payload (camelCase keys: `orderId`, `trackingNumber`, ...).
        data: Value,
        channels: NotificationChannels,
        read: bool,
        created_at: DateTime<Utc>,
    },
    NotificationRead {
        notification_id: Uuid,
        user_id: Uuid,
        read: bool,
        read_at: DateTime<Utc>,
    },
}

impl DomainEvent for NotificationEvent {
    fn event_type(&self) -> String {
        match self {
            NotificationEvent::NotificationCreated { .. } => "NotificationCreated",
            NotificationEvent::NotificationRead { .. } => "NotificationRead",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotificationError {
    #[error("notification not found")]
    NotFound,
    #[error("notification {notification_id} already exists with other content")]
    AlreadyCreated { notification_id: Uuid },
    #[error("user {user_id} is not the notification's recipient")]
    NotRecipient { user_id: Uuid },
}

impl Aggregate for Notification {
    const TYPE: &'static str = "notification";
    type Command = NotificationCommand;
    type Event = NotificationEvent;
    type Error = NotificationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            NotificationEvent::NotificationCreated {
                notification_id,
                user_id,
                notification_type,
                data,
                ..
            } => {
                self.notification_id = Some(notification_id);
                self.user_id = user_id;
                self.notification_type = Some(notification_type);
                self.data = data;
            }
            NotificationEvent::NotificationRead { read_at, .. } => self.read_at = Some(read_at),
        }
    }
}
