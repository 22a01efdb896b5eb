//! Notifications (the MongoDB `notifications` collection, written by the
//! `order-notifications` and `account-mail` projections) and their one read:
//! `GET /v1/me/notifications`, the signed-in user's own, unread first, a page
//! at a time, with how many of them are unread. Nobody reads anyone else's,
//! an admin included: a notification is personal, not shop data.

mod mongo;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use infrastructure::consistency::{ACCOUNT_MAIL, ORDER_NOTIFICATIONS};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use mongo::{MongoNotifications, NOTIFICATIONS_COLLECTION};

use crate::auth::SignedIn;
use crate::catalog::{page_of, Listed, Page};
use crate::consistency::ReadAfter;
use crate::error::{ApiError, StoreError};
use crate::extract::ApiQuery;
use crate::startup::AppState;
use crate::BoxFuture;

/// What a notification is about (the seed's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

impl NotificationType {
    pub const ALL: [Self; 8] = [
        Self::OrderConfirmed,
        Self::PaymentReceived,
        Self::OrderShipped,
        Self::OrderDelivered,
        Self::OrderCancelled,
        Self::RefundCompleted,
        Self::EmailVerification,
        Self::PasswordReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderConfirmed => "order_confirmed",
            Self::PaymentReceived => "payment_received",
            Self::OrderShipped => "order_shipped",
            Self::OrderDelivered => "order_delivered",
            Self::OrderCancelled => "order_cancelled",
            Self::RefundCompleted => "refund_completed",
            Self::EmailVerification => "email_verification",
            Self::PasswordReset => "password_reset",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// How one channel went: sent (and when), or not sent (and why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChannelView {
    pub sent: bool,
    /// When it was sent; only on a sent channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    /// Why it was not sent (`User opted out`, `No phone number`, ...); only
    /// on a channel that was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The channels a notification went through. Account messages (email
/// verification, password reset) have only `email`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChannelsView {
    pub email: ChannelView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<ChannelView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<ChannelView>,
}

/// One notification, as its recipient reads it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NotificationView {
    /// The notification's id (the seed's `notificationId`), which the
    /// command API's `POST /v1/me/notifications/{id}/read` takes.
    pub id: Uuid,
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: NotificationType,
    pub title: String,
    pub message: String,
    /// What the message is about, under the seed's camelCase keys
    /// (`orderId`, `orderNumber`, `trackingNumber`, `amount` as a string, ...).
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, serde_json::Value>,
    pub channels: ChannelsView,
    pub read: bool,
    /// When it was marked read; null while unread.
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The listing's order: unread first (`read` ascending), then the newest
/// first (`created_at` descending), then `id` descending, a total order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationKey {
    pub read: bool,
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// Port: the notifications as the projections left them, read-only here.
pub trait NotificationsReadModel: Send + Sync {
    /// `user_id`'s notifications in [`NotificationKey`] order, a page at a
    /// time; a document without its content yet (only a read mark) is not
    /// one.
    fn notifications(
        &self,
        user_id: Uuid,
        page: Page<NotificationKey>,
    ) -> BoxFuture<'_, Result<Listed<NotificationView, NotificationKey>, StoreError>>;

    /// How many of `user_id`'s notifications are unread.
    fn unread_count(&self, user_id: Uuid) -> BoxFuture<'_, Result<u64, StoreError>>;
}

/// The query string of `GET /v1/me/notifications`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub after: Option<String>,
}

/// One page of your notifications, and how many of all of them are unread.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    pub items: Vec<NotificationView>,
    /// Pass as `after` for the next page; null on the last one.
    pub next_cursor: Option<String>,
    /// Your unread notifications, all of them, not only this page's.
    pub unread_count: u64,
}

/// `GET /v1/me/notifications`: the reader's own notifications.
#[utoipa::path(
    get,
    path = "/v1/me/notifications",
    tag = "notifications",
    operation_id = "list_my_notifications",
    summary = "Your notifications",
    description = "Unread first, then the newest first (`read` ascending, `created_at` and `id` \
        descending), a page at a time, with `unread_count`, the number of all your unread ones. \
        Your own only, whatever your role.",
    security(("bearerAuth" = [])),
    params(NotificationParams),
    responses(
        (status = 200, description = "One page", body = NotificationPage),
    ),
)]
#[tracing::instrument(name = "list_my_notifications", skip_all, fields(user_id = %session.user_id))]
pub async fn list_my_notifications(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    ApiQuery(params): ApiQuery<NotificationParams>,
    read_after: ReadAfter,
) -> Result<Json<NotificationPage>, ApiError> {
    let page = page_of(params.limit, params.after.as_deref())?;
    // Both projections write the collection: a token waits for both.
    state
        .read_after(read_after, &[ORDER_NOTIFICATIONS, ACCOUNT_MAIL])
        .await?;
    let (listed, unread_count) = tokio::try_join!(
        state.notifications.notifications(session.user_id, page),
        state.notifications.unread_count(session.user_id),
    )?;
    tracing::debug!(
        count = listed.items.len(),
        unread_count,
        "notifications listed"
    );
    Ok(Json(NotificationPage {
        next_cursor: listed.next.as_ref().map(crate::cursor::encode),
        items: listed.items,
        unread_count,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_names_round_trip() {
        for kind in NotificationType::ALL {
            assert_eq!(NotificationType::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert_eq!(NotificationType::parse("OrderShipped"), None);
    }

    #[test]
    fn a_channel_answers_the_stored_shape() {
        let sent = ChannelView {
            sent: true,
            sent_at: Some("2024-01-15T10:30:00Z".parse().unwrap()),
            reason: None,
        };
        assert_eq!(
            serde_json::to_value(&sent).unwrap(),
            serde_json::json!({ "sent": true, "sent_at": "2024-01-15T10:30:00Z" })
        );
        let skipped = ChannelView {
            sent: false,
            sent_at: None,
            reason: Some("User opted out".into()),
        };
        assert_eq!(
            serde_json::to_value(&skipped).unwrap(),
            serde_json::json!({ "sent": false, "reason": "User opted out" })
        );
    }
}
