//! The payment aggregate (seed tables `payments` and `payment_refunds`): one
//! stream per payment attempt for an order, holding the provider's reports and
//! the refunds drawn against what was captured.
//!
//! It owns three rules: a payment charges exactly the order's total in the
//! order's currency, a provider report can only move the payment forward along
//! `pending -> processing -> completed|failed|cancelled` (replayed reports are
//! harmless), and refunds, pending or completed, never add up to more than was
//! captured.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use crate::values::{bounded_text, unforbidden_text, Currency, Money, TextLayout, ValueError};

#[cfg(test)]
mod tests;

/// The seed's `payments.payment_method` / `payment_provider` are `VARCHAR(50)`.
pub const METHOD_MAX_CHARS: usize = 50;
/// The seed's external references (`transaction_id`, `provider_transaction_id`,
/// `provider_refund_id`) are `VARCHAR(255)`.
pub const REFERENCE_MAX_CHARS: usize = 255;

/// `payments.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    #[default]
    Pending,
    Processing,
    Completed,
    Failed,
    Cancelled,
    Refunded,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 6] = [
        PaymentStatus::Pending,
        PaymentStatus::Processing,
        PaymentStatus::Completed,
        PaymentStatus::Failed,
        PaymentStatus::Cancelled,
        PaymentStatus::Refunded,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Processing => "processing",
            PaymentStatus::Completed => "completed",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Cancelled => "cancelled",
            PaymentStatus::Refunded => "refunded",
        }
    }

    /// An active payment blocks a second one for the same order: it may still
    /// capture, or already has. The command side uses this to compute
    /// `has_active_payment_for_order`.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            PaymentStatus::Pending | PaymentStatus::Processing | PaymentStatus::Completed
        )
    }

    /// Whether a provider report of `outcome` may move a payment out of `self`.
    /// Only `pending` and `processing` are open; everything else is final as
    /// far as the provider is concerned (refunds have their own path).
    pub fn accepts(&self, outcome: ProviderOutcome) -> bool {
        match self {
            PaymentStatus::Pending => true,
            PaymentStatus::Processing => outcome != ProviderOutcome::Processing,
            _ => false,
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a payment provider reports about a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderOutcome {
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl ProviderOutcome {
    pub const ALL: [ProviderOutcome; 4] = [
        ProviderOutcome::Processing,
        ProviderOutcome::Completed,
        ProviderOutcome::Failed,
        ProviderOutcome::Cancelled,
    ];

    pub fn status(&self) -> PaymentStatus {
        match self {
            ProviderOutcome::Processing => PaymentStatus::Processing,
            ProviderOutcome::Completed => PaymentStatus::Completed,
            ProviderOutcome::Failed => PaymentStatus::Failed,
            ProviderOutcome::Cancelled => PaymentStatus::Cancelled,
        }
    }
}

impl fmt::Display for ProviderOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status().as_str())
    }
}

/// `payment_refunds.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    #[default]
    Pending,
    Completed,
    Failed,
}

impl RefundStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Completed => "completed",
            RefundStatus::Failed => "failed",
        }
    }

    /// Pending refunds hold their amount just like completed ones, so two
    /// refunds in flight cannot together exceed the capture.
    pub fn holds_amount(&self) -> bool {
        matches!(self, RefundStatus::Pending | RefundStatus::Completed)
    }
}

impl fmt::Display for RefundStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the provider reports about a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundOutcome {
    Completed,
    Failed,
}

impl RefundOutcome {
    pub fn status(&self) -> RefundStatus {
        match self {
            RefundOutcome::Completed => RefundStatus::Completed,
            RefundOutcome::Failed => RefundStatus::Failed,
        }
    }
}

impl fmt::Display for RefundOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status().as_str())
    }
}

/// `orders.payment_status`, as a payment event dictates it, so the order side
/// copies it instead of re-deriving it from amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderPaymentStatus {
    Pending,
    Paid,
    Failed,
    Refunded,
    PartiallyRefunded,
}

/// One refund drawn against the payment (a `payment_refunds` row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: Uuid,
    pub amount: Money,
    pub reason: Option<String>,
    pub status: RefundStatus,
    pub provider_refund_id: Option<String>,
}

/// One provider report already taken into account, kept so a replay is recognised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderResult {
    pub provider_transaction_id: String,
    pub outcome: ProviderOutcome,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    payment_id: Option<Uuid>,
    order_id: Uuid,
    amount: Money,
    currency: Currency,
    payment_method: String,
    payment_provider: String,
    transaction_id: Option<String>,
    status: PaymentStatus,
    provider_results: Vec<ProviderResult>,
    refunds: Vec<Refund>,
}

impl Payment {
    /// `None` until `PaymentInitiated`.
    pub fn payment_id(&self) -> Option<Uuid> {
        self.payment_id
    }
    pub fn order_id(&self) -> Uuid {
        self.order_id
    }
    pub fn amount(&self) -> Money {
        self.amount
    }
    pub fn currency(&self) -> &Currency {
        &self.currency
    }
    pub fn payment_method(&self) -> &str {
        &self.payment_method
    }
    pub fn payment_provider(&self) -> &str {
        &self.payment_provider
    }
    pub fn transaction_id(&self) -> Option<&str> {
        self.transaction_id.as_deref()
    }
    pub fn status(&self) -> PaymentStatus {
        self.status
    }
    /// The provider's id of the transaction, as its first report named it
    /// (what a refund is drawn against).
    pub fn provider_transaction_id(&self) -> Option<&str> {
        self.provider_results
            .first()
            .map(|result| result.provider_transaction_id.as_str())
    }

    pub fn refunds(&self) -> &[Refund] {
        &self.refunds
    }
    pub fn refund(&self, refund_id: Uuid) -> Option<&Refund> {
        self.refunds.iter().find(|r| r.refund_id == refund_id)
    }

    /// What the provider took from the customer: the whole amount once the
    /// payment completed (a refunded payment was captured too), else nothing.
    pub fn captured(&self) -> Money {
        match self.status {
            PaymentStatus::Completed | PaymentStatus::Refunded => self.amount,
            _ => Money::ZERO,
        }
    }

    /// The sum of completed refunds.
    pub fn refunded_total(&self) -> Money {
        self.sum_refunds(|status| status == RefundStatus::Completed)
    }

    /// What can still be refunded: the capture less every pending or completed refund.
    pub fn refundable(&self) -> Money {
        self.captured()
            .saturating_sub(self.sum_refunds(|status| status.holds_amount()))
    }

    fn sum_refunds(&self, counts: impl Fn(RefundStatus) -> bool) -> Money {
        // Refunds are bounded by the capture, itself a valid amount.
        Money::sum(
            self.refunds
                .iter()
                .filter(|r| counts(r.status))
                .map(|r| r.amount),
        )
        .expect("refunds never exceed a valid captured amount")
    }

    /// The events `command` produces against the current state, without applying them.
    pub fn decide(&self, command: PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        match command {
            PaymentCommand::InitiatePayment {
                payment_id,
                order_id,
                order_total,
                order_currency,
                amount,
                currency,
                payment_method,
                payment_provider,
                transaction_id,
                has_active_payment_for_order,
                at,
            } => {
                if let Some(existing) = self.payment_id {
                    return Err(PaymentError::AlreadyInitiated {
                        payment_id: existing,
                    });
                }
                if amount != order_total {
                    return Err(PaymentError::AmountMismatch {
                        expected: order_total,
                        actual: amount,
                    });
                }
                if currency != order_currency {
                    return Err(PaymentError::CurrencyMismatch {
                        expected: order_currency,
                        actual: currency,
                    });
                }
                if has_active_payment_for_order {
                    return Err(PaymentError::ActivePaymentExists { order_id });
                }
                Ok(vec![PaymentEvent::PaymentInitiated {
                    payment_id,
                    order_id,
                    amount,
                    currency,
                    payment_method: bounded_text(
                        "payment_method",
                        &payment_method,
                        METHOD_MAX_CHARS,
                    )?,
                    payment_provider: bounded_text(
                        "payment_provider",
                        &payment_provider,
                        METHOD_MAX_CHARS,
                    )?,
                    transaction_id: transaction_id
                        .map(|id| reference("transaction_id", &id))
                        .transpose()?,
                    status: PaymentStatus::Pending,
                    created_at: at,
                }])
            }
            PaymentCommand::RecordProviderResult {
                provider_transaction_id,
                outcome,
                provider_response,
                at,
            } => {
                let payment_id = self.initiated()?;
                let provider_transaction_id =
                    reference("provider_transaction_id", &provider_transaction_id)?;
                let previous_status = self.status;
                let seen: Vec<ProviderOutcome> = self
                    .provider_results
                    .iter()
                    .filter(|r| r.provider_transaction_id == provider_transaction_id)
                    .map(|r| r.outcome)
                    .collect();
                // Providers retry their callbacks: the same report again is
                // already applied. One transaction moves forward under its
                // id (an intent that needed action, then succeeded); another
                // outcome that is not a move forward is a contradiction.
                if seen.contains(&outcome) {
                    return Ok(vec![]);
                }
                if let Some(recorded) = seen.last().copied() {
                    if !previous_status.accepts(outcome) {
                        return Err(PaymentError::ProviderResultConflict {
                            provider_transaction_id,
                            recorded,
                            reported: outcome,
                        });
                    }
                }
                let status = outcome.status();
                if !previous_status.accepts(outcome) {
                    return Err(PaymentError::InvalidTransition {
                        from: previous_status,
                        to: status,
                    });
                }
                let order_id = self.order_id;
                let amount = self.amount;
                let currency = self.currency.clone();
                Ok(vec![match outcome {
                    ProviderOutcome::Processing => PaymentEvent::PaymentProcessingStarted {
                        payment_id,
                        order_id,
                        amount,
                        currency,
                        provider_transaction_id,
                        provider_response,
                        previous_status,
                        status,
                        order_payment_status: OrderPaymentStatus::Pending,
                        processed_at: at,
                    },
                    ProviderOutcome::Completed => PaymentEvent::PaymentCompleted {
                        payment_id,
                        order_id,
                        amount,
                        currency,
                        provider_transaction_id,
                        provider_response,
                        previous_status,
                        status,
                        order_payment_status: OrderPaymentStatus::Paid,
                        processed_at: at,
                    },
                    ProviderOutcome::Failed => PaymentEvent::PaymentFailed {
                        payment_id,
                        order_id,
                        amount,
                        currency,
                        provider_transaction_id,
                        provider_response,
                        previous_status,
                        status,
                        order_payment_status: OrderPaymentStatus::Failed,
                        processed_at: at,
                    },
                    // A cancelled attempt leaves the order unpaid but payable again.
                    ProviderOutcome::Cancelled => PaymentEvent::PaymentCancelled {
                        payment_id,
                        order_id,
                        amount,
                        currency,
                        provider_transaction_id,
                        provider_response,
                        previous_status,
                        status,
                        order_payment_status: OrderPaymentStatus::Pending,
                        processed_at: at,
                    },
                }])
            }
            PaymentCommand::RefundPayment {
                refund_id,
                amount,
                reason,
                at,
            } => {
                let payment_id = self.initiated()?;
                if let Some(existing) = self.refund(refund_id) {
                    // A retried request is the same refund; reusing its id for
                    // another amount is not.
                    return if existing.amount == amount {
                        Ok(vec![])
                    } else {
                        Err(PaymentError::DuplicateRefund {
                            refund_id,
                            amount: existing.amount,
                        })
                    };
                }
                if amount.is_zero() {
                    return Err(PaymentError::InvalidRefundAmount { amount });
                }
                if self.status != PaymentStatus::Completed {
                    return Err(PaymentError::NotRefundable {
                        status: self.status,
                    });
                }
                let refundable = self.refundable();
                let refundable_after = refundable.checked_sub(amount).map_err(|_| {
                    PaymentError::RefundExceedsCaptured {
                        requested: amount,
                        refundable,
                    }
                })?;
                if let Some(reason) = &reason {
                    unforbidden_text("reason", reason, TextLayout::MultiLine)?;
                }
                Ok(vec![PaymentEvent::RefundRequested {
                    payment_id,
                    order_id: self.order_id,
                    refund_id,
                    amount,
                    currency: self.currency.clone(),
                    reason: reason
                        .map(|r| r.trim().to_owned())
                        .filter(|r| !r.is_empty()),
                    status: RefundStatus::Pending,
                    refundable_after,
                    created_at: at,
                }])
            }
            PaymentCommand::RecordRefundResult {
                refund_id,
                outcome,
                provider_refund_id,
                at,
            } => {
                let payment_id = self.initiated()?;
                let refund = self
                    .refund(refund_id)
                    .ok_or(PaymentError::UnknownRefund { refund_id })?;
                if refund.status != RefundStatus::Pending {
                    return if refund.status == outcome.status() {
                        Ok(vec![])
                    } else {
                        Err(PaymentError::RefundAlreadySettled {
                            refund_id,
                            status: refund.status,
                            reported: outcome,
                        })
                    };
                }
                let provider_refund_id = provider_refund_id
                    .map(|id| reference("provider_refund_id", &id))
                    .transpose()?;
                let previous_status = refund.status;
                let status = outcome.status();
                let order_id = self.order_id;
                let amount = refund.amount;
                let currency = self.currency.clone();
                Ok(vec![match outcome {
                    RefundOutcome::Completed => {
                        let captured = self.captured();
                        let refunded_total = self
                            .refunded_total()
                            .checked_add(amount)
                            .expect("a pending refund fits within the capture");
                        // `payments.status` has no partial state: a partly refunded
                        // payment stays `completed`; only the order tells the two apart.
                        let (payment_status, order_payment_status) = if refunded_total == captured {
                            (PaymentStatus::Refunded, OrderPaymentStatus::Refunded)
                        } else {
                            (
                                PaymentStatus::Completed,
                                OrderPaymentStatus::PartiallyRefunded,
                            )
                        };
                        PaymentEvent::RefundCompleted {
                            payment_id,
                            order_id,
                            refund_id,
                            amount,
                            currency,
                            provider_refund_id,
                            previous_status,
                            status,
                            refunded_total,
                            previous_payment_status: self.status,
                            payment_status,
                            order_payment_status,
                            processed_at: at,
                        }
                    }
                    RefundOutcome::Failed => PaymentEvent::RefundFailed {
                        payment_id,
                        order_id,
                        refund_id,
                        amount,
                        currency,
                        provider_refund_id,
                        previous_status,
                        status,
                        refundable_after: self
                            .refundable()
                            .checked_add(amount)
                            .expect("a freed refund fits within the capture"),
                        processed_at: at,
                    },
                }])
            }
        }
    }

    fn initiated(&self) -> Result<Uuid, PaymentError> {
        self.payment_id.ok_or(PaymentError::NotInitiated)
    }
}

fn reference(field: &'static str, raw: &str) -> Result<String, ValueError> {
    bounded_text(field, raw, REFERENCE_MAX_CHARS)
}

#[derive(Debug, Clone, PartialEq)]
pub enum PaymentCommand {
    /// Starts a payment for an order. `order_total`, `order_currency` and
    /// `has_active_payment_for_order` come from the loaded order and the
    /// order's other payments (`PaymentStatus::is_active`).
    InitiatePayment {
        payment_id: Uuid,
        order_id: Uuid,
        order_total: Money,
        order_currency: Currency,
        amount: Money,
        currency: Currency,
        payment_method: String,
        payment_provider: String,
        transaction_id: Option<String>,
        has_active_payment_for_order: bool,
        at: DateTime<Utc>,
    },
    /// A provider callback. `provider_transaction_id` is the deduplication key:
    /// one id reports one outcome.
    RecordProviderResult {
        provider_transaction_id: String,
        outcome: ProviderOutcome,
        provider_response: serde_json::Value,
        at: DateTime<Utc>,
    },
    RefundPayment {
        refund_id: Uuid,
        amount: Money,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    RecordRefundResult {
        refund_id: Uuid,
        outcome: RefundOutcome,
        provider_refund_id: Option<String>,
        at: DateTime<Utc>,
    },
}

/// In the `Refund*` events `previous_status`/`status` are the refund's
/// (`payment_refunds.status`); the payment's are `previous_payment_status`/`payment_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PaymentEvent {
    PaymentInitiated {
        payment_id: Uuid,
        order_id: Uuid,
        amount: Money,
        currency: Currency,
        payment_method: String,
        payment_provider: String,
        transaction_id: Option<String>,
        status: PaymentStatus,
        created_at: DateTime<Utc>,
    },
    PaymentProcessingStarted {
        payment_id: Uuid,
        order_id: Uuid,
        amount: Money,
        currency: Currency,
        provider_transaction_id: String,
        provider_response: serde_json::Value,
        previous_status: PaymentStatus,
        status: PaymentStatus,
        order_payment_status: OrderPaymentStatus,
        processed_at: DateTime<Utc>,
    },
    PaymentCompleted {
        payment_id: Uuid,
        order_id: Uuid,
        amount: Money,
        currency: Currency,
        provider_transaction_id: String,
        provider_response: serde_json::Value,
        previous_status: PaymentStatus,
        status: PaymentStatus,
        order_payment_status: OrderPaymentStatus,
        processed_at: DateTime<Utc>,
    },
    PaymentFailed {
        payment_id: Uuid,
        order_id: Uuid,
        amount: Money,
        currency: Currency,
        provider_transaction_id: String,
        provider_response: serde_json::Value,
        previous_status: PaymentStatus,
        status: PaymentStatus,
        order_payment_status: OrderPaymentStatus,
        processed_at: DateTime<Utc>,
    },
    PaymentCancelled {
        payment_id: Uuid,
        order_id: Uuid,
        amount: Money,
        currency: Currency,
        provider_transaction_id: String,
        provider_response: serde_json::Value,
        previous_status: PaymentStatus,
        status: PaymentStatus,
        order_payment_status: OrderPaymentStatus,
        processed_at: DateTime<Utc>,
    },
    RefundRequested {
        payment_id: Uuid,
        order_id: Uuid,
        refund_id: Uuid,
        amount: Money,
        currency: Currency,
        reason: Option<String>,
        status: RefundStatus,
        /// What can still be refunded once this refund is held.
        refundable_after: Money,
        created_at: DateTime<Utc>,
    },
    RefundCompleted {
        payment_id: Uuid,
        order_id: Uuid,
        refund_id: Uuid,
        amount: Money,
        currency: Currency,
        provider_refund_id: Option<String>,
        previous_status: RefundStatus,
        status: RefundStatus,
        /// Sum of the payment's completed refunds, this one included.
        refunded_total: Money,
        previous_payment_status: PaymentStatus,
        /// `refunded` once `refunded_total` equals the capture, else still `completed`.
        payment_status: PaymentStatus,
        /// `refunded` or `partially_refunded`, for `orders.payment_status`.
        order_payment_status: OrderPaymentStatus,
        processed_at: DateTime<Utc>,
    },
    RefundFailed {
        payment_id: Uuid,
        order_id: Uuid,
        refund_id: Uuid,
        amount: Money,
        currency: Currency,
        provider_refund_id: Option<String>,
        previous_status: RefundStatus,
        status: RefundStatus,
        /// What can be refunded again, now that this refund's amount is freed.
        refundable_after: Money,
        processed_at: DateTime<Utc>,
    },
}

impl DomainEvent for PaymentEvent {
    fn event_type(&self) -> String {
        match self {
            PaymentEvent::PaymentInitiated { .. } => "PaymentInitiated",
            PaymentEvent::PaymentProcessingStarted { .. } => "PaymentProcessingStarted",
            PaymentEvent::PaymentCompleted { .. } => "PaymentCompleted",
            PaymentEvent::PaymentFailed { .. } => "PaymentFailed",
            PaymentEvent::PaymentCancelled { .. } => "PaymentCancelled",
            PaymentEvent::RefundRequested { .. } => "RefundRequested",
            PaymentEvent::RefundCompleted { .. } => "RefundCompleted",
            PaymentEvent::RefundFailed { .. } => "RefundFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PaymentError {
    #[error("payment has not been initiated")]
    NotInitiated,
    #[error("payment {payment_id} has already been initiated")]
    AlreadyInitiated { payment_id: Uuid },
    #[error(transparent)]
    InvalidValue(#[from] ValueError),
    #[error("payment amount {actual} does not match the order total {expected}")]
    AmountMismatch { expected: Money, actual: Money },
    #[error("payment currency {actual} does not match the order currency {expected}")]
    CurrencyMismatch {
        expected: Currency,
        actual: Currency,
    },
    #[error("order {order_id} already has an active payment")]
    ActivePaymentExists { order_id: Uuid },
    #[error("provider transaction {provider_transaction_id:?} was recorded as {recorded}, now reported as {reported}")]
    ProviderResultConflict {
        provider_transaction_id: String,
        recorded: ProviderOutcome,
        reported: ProviderOutcome,
    },
    #[error("a payment cannot go from {from} to {to}")]
    InvalidTransition {
        from: PaymentStatus,
        to: PaymentStatus,
    },
    #[error("refund amount must be above zero, got {amount}")]
    InvalidRefundAmount { amount: Money },
    #[error("a {status} payment cannot be refunded")]
    NotRefundable { status: PaymentStatus },
    #[error("refund of {requested} exceeds the {refundable} still refundable")]
    RefundExceedsCaptured { requested: Money, refundable: Money },
    #[error("refund {refund_id} already exists for {amount}")]
    DuplicateRefund { refund_id: Uuid, amount: Money },
    #[error("unknown refund {refund_id}")]
    UnknownRefund { refund_id: Uuid },
    #[error("refund {refund_id} is already {status}, cannot record it as {reported}")]
    RefundAlreadySettled {
        refund_id: Uuid,
        status: RefundStatus,
        reported: RefundOutcome,
    },
}

impl Aggregate for Payment {
    const TYPE: &'static str = "payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;
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
            PaymentEvent::PaymentInitiated {
                payment_id,
                order_id,
                amount,
                currency,
                payment_method,
                payment_provider,
                transaction_id,
                status,
                ..
            } => {
                self.payment_id = Some(payment_id);
                self.order_id = order_id;
                self.amount = amount;
                self.currency = currency;
                self.payment_method = payment_method;
                self.payment_provider = payment_provider;
                self.transaction_id = transaction_id;
                self.status = status;
            }
            PaymentEvent::PaymentProcessingStarted {
                provider_transaction_id,
                status,
                ..
            } => self.record_provider_result(
                provider_transaction_id,
                ProviderOutcome::Processing,
                status,
            ),
            PaymentEvent::PaymentCompleted {
                provider_transaction_id,
                status,
                ..
            } => self.record_provider_result(
                provider_transaction_id,
                ProviderOutcome::Completed,
                status,
            ),
            PaymentEvent::PaymentFailed {
                provider_transaction_id,
                status,
                ..
            } => self.record_provider_result(
                provider_transaction_id,
                ProviderOutcome::Failed,
                status,
            ),
            PaymentEvent::PaymentCancelled {
                provider_transaction_id,
                status,
                ..
            } => self.record_provider_result(
                provider_transaction_id,
                ProviderOutcome::Cancelled,
                status,
            ),
            PaymentEvent::RefundRequested {
                refund_id,
                amount,
                reason,
                status,
                ..
            } => self.refunds.push(Refund {
                refund_id,
                amount,
                reason,
                status,
                provider_refund_id: None,
            }),
            PaymentEvent::RefundCompleted {
                refund_id,
                provider_refund_id,
                status,
                payment_status,
                ..
            } => {
                self.settle_refund(refund_id, status, provider_refund_id);
                self.status = payment_status;
            }
            PaymentEvent::RefundFailed {
                refund_id,
                provider_refund_id,
                status,
                ..
            } => self.settle_refund(refund_id, status, provider_refund_id),
        }
    }
}

impl Payment {
    fn record_provider_result(
        &mut self,
        provider_transaction_id: String,
        outcome: ProviderOutcome,
        status: PaymentStatus,
    ) {
        self.provider_results.push(ProviderResult {
            provider_transaction_id,
            outcome,
        });
        self.status = status;
    }

    fn settle_refund(
        &mut self,
        refund_id: Uuid,
        status: RefundStatus,
        provider_refund_id: Option<String>,
    ) {
        if let Some(refund) = self.refunds.iter_mut().find(|r| r.refund_id == refund_id) {
            refund.status = status;
            refund.provider_refund_id = provider_refund_id;
        }
    }
}
