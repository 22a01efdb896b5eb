//! The payment-provider port.

use async_trait::async_trait;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use domain::values::Money;
use serde_json::Value;
use uuid::Uuid;

/// What a payment intent is created for.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentRequest {
    /// Also the provider's idempotency key: the same payment never creates
    /// two intents.
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub amount: Money,
    /// ISO 4217, `THB`.
    pub currency: String,
    /// `credit_card` or `promptpay`.
    pub method: String,
    /// For `credit_card`: the card number (a sandbox test card).
    pub card_number: Option<String>,
}

/// Where an intent stands right after it was created.
#[derive(Debug, Clone, PartialEq)]
pub enum IntentState {
    /// Captured now; a `payment.succeeded` webhook follows.
    Succeeded,
    /// Declined now; a `payment.failed` webhook follows.
    Failed { reason: String },
    /// Decided later (3-D Secure, a PromptPay QR to scan): only a webhook
    /// tells the outcome.
    Pending,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    /// The provider's id of the intent (`payments.provider_transaction_id`).
    pub provider_payment_id: String,
    pub state: IntentState,
    /// What the customer must do next, when anything (a PromptPay QR
    /// payload), as the provider said it.
    pub next_action: Option<Value>,
    /// The provider's answer as it came (`payments.provider_response`).
    pub raw: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefundRequest {
    /// Also the provider's idempotency key.
    pub refund_id: Uuid,
    pub payment_id: Uuid,
    pub provider_payment_id: String,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RefundState {
    Succeeded,
    Failed { reason: String },
    Pending,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRefund {
    pub provider_refund_id: String,
    pub state: RefundState,
    pub raw: Value,
}

/// What a verified webhook reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookKind {
    PaymentSucceeded,
    PaymentFailed,
    RefundSucceeded,
    RefundFailed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// The provider's event id: a redelivery carries the same one.
    pub event_id: String,
    pub kind: WebhookKind,
    pub provider_payment_id: String,
    /// The platform's payment, as the intent's metadata carried it.
    pub payment_id: Uuid,
    /// For refund events: the platform's refund and the provider's id of it.
    pub refund_id: Option<Uuid>,
    pub provider_refund_id: Option<String>,
    pub amount: Money,
    /// When the provider sent it (the signed timestamp).
    pub sent_at: DateTime<Utc>,
    /// The event as it came.
    pub raw: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or answered 5xx: try again.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request as malformed (4xx).
    #[error("the payment provider refused the request: {0}")]
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook carries no signature")]
    MissingSignature,
    #[error("the webhook's signature does not match its body")]
    BadSignature,
    /// Outside the tolerance: a replay of an old delivery, or a clock far off.
    #[error("the webhook was signed {age_seconds} s from now, outside the tolerance")]
    Stale { age_seconds: i64 },
    #[error("the webhook body is not one this provider sends: {0}")]
    Malformed(String),
}

/// Port: a payment service provider.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// The provider's name in routes and rows (`payments.payment_provider`,
    /// `POST /v1/payments/webhooks/{provider}`).
    fn name(&self) -> &'static str;

    /// The header its webhooks carry their signature in.
    fn signature_header(&self) -> &'static str;

    async fn create_intent(&self, request: IntentRequest) -> Result<Intent, ProviderError>;

    async fn refund(&self, request: RefundRequest) -> Result<ProviderRefund, ProviderError>;

    /// Verifies a webhook delivery (its signature over the signed timestamp
    /// and the exact body, and that the timestamp is within the tolerance
    /// of `now`) and reads it.
    fn verify_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookError>;
}
