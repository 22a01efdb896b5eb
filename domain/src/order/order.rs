//! The `Order` aggregate: an order placed by the checkout decision (see
//! `checkout`), then its fulfilment state machine, its cancellation, the
//! payment status that follows the payments, and the admin notes.
//!
//! Status: pending -> confirmed -> processing -> shipped -> delivered, with
//! cancellation allowed before shipping, and `refunded` reached only when
//! refunds give back everything captured on a cancelled or delivered order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cart::ShippingMethodCode;
use crate::promotion::AppliedPromotion;
use crate::values::{
    bounded_multiline_text, bounded_text, CouponCode, Currency, Money, OrderNumber, PostalAddress,
    Quantity, Sku, Url, ValueError,
};

/// The seed's `orders.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    #[default]
    Pending,
    Confirmed,
    Processing,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    /// The fulfilment transitions and cancellation; `refunded` is not here
    /// because no command sets it (it follows the refunds).
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Confirmed)
                | (Confirmed, Processing)
                | (Processing, Shipped)
                | (Shipped, Delivered)
                | (Pending | Confirmed | Processing, Cancelled)
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Processing => "processing",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
        })
    }
}

/// The seed's `orders.payment_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    #[default]
    Pending,
    Paid,
    Failed,
    Refunded,
    PartiallyRefunded,
}

/// What happened to a payment, as `OrderPaymentStatusChanged` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentChange {
    Captured,
    Failed,
    RefundCompleted,
}

/// How the customer will pay, as the seed's `orders.payment_method
/// VARCHAR(50)` holds it: lower-case words of `a-z 0-9` joined by `_`
/// (`credit_card`, `promptpay`), 1 to 50 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PaymentMethodCode(String);

impl PaymentMethodCode {
    pub const MAX_LEN: usize = 50;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let code = bounded_text("payment_method", raw, Self::MAX_LEN)?;
        let well_formed = code.split('_').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
        if well_formed {
            Ok(Self(code))
        } else {
            Err(ValueError::PaymentMethod(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PaymentMethodCode {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PaymentMethodCode> for String {
    fn from(value: PaymentMethodCode) -> String {
        value.0
    }
}

/// A carrier's tracking number: trimmed, 1 to 100 characters (`orders.tracking_number`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrackingNumber(String);

impl TrackingNumber {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        bounded_text("tracking_number", raw, 100).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TrackingNumber {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TrackingNumber> for String {
    fn from(value: TrackingNumber) -> String {
        value.0
    }
}

/// A free-text note on an order (a cancellation reason, an admin note, the
/// customer's note): trimmed, 1 to 2000 characters, lines allowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderNote(String);

impl OrderNote {
    pub const MAX_LEN: usize = 2000;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        bounded_multiline_text("note", raw, Self::MAX_LEN).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrderNote {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<OrderNote> for String {
    fn from(value: OrderNote) -> String {
        value.0
    }
}

/// One line as ordered: the seed's `order_items` row, a snapshot that later
/// catalog changes do not touch. `discount_amount` is this line's share of the
/// promotions (not a seed column; the line's `total_price` is before discount).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub order_item_id: Uuid,
    pub product_id: Uuid,
    pub product_variant_id: Option<Uuid>,
    pub product_name: String,
    pub product_sku: Sku,
    pub product_image_url: Option<Url>,
    pub unit_price: Money,
    pub quantity: Quantity,
    pub total_price: Money,
    pub discount_amount: Money,
    pub taxable: bool,
    pub product_options: BTreeMap<String, String>,
}

/// Stock held for the order on `inventory_stream_id(sku)`, given back on cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReservation {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// The coupon redeemed by the order, reverted on cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCoupon {
    pub coupon_id: Uuid,
    pub code: CouponCode,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PaymentRecord {
    captured: Money,
    refunded: Money,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    order_id: Option<Uuid>,
    order_number: Option<OrderNumber>,
    cart_id: Option<Uuid>,
    user_id: Option<Uuid>,
    status: OrderStatus,
    payment_status: PaymentStatus,
    items: Vec<OrderLine>,
    subtotal: Money,
    tax_amount: Money,
    shipping_amount: Money,
    discount_amount: Money,
    total_amount: Money,
    currency: Currency,
    billing_address: Option<PostalAddress>,
    shipping_address: Option<PostalAddress>,
    shipping_method: Option<ShippingMethodCode>,
    payment_method: Option<PaymentMethodCode>,
    tracking_number: Option<TrackingNumber>,
    shipped_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    coupon: Option<OrderCoupon>,
    promotions: Vec<AppliedPromotion>,
    reserved_stock: Vec<StockReservation>,
    payments: BTreeMap<Uuid, PaymentRecord>,
    refund_ids: BTreeSet<Uuid>,
    paid_amount: Money,
    refunded_amount: Money,
    admin_notes: Option<String>,
}

impl Order {
    pub fn order_id(&self) -> Option<Uuid> {
        self.order_id
    }
    pub fn order_number(&self) -> Option<&OrderNumber> {
        self.order_number.as_ref()
    }
    pub fn cart_id(&self) -> Option<Uuid> {
        self.cart_id
    }
    pub fn user_id(&self) -> Option<Uuid> {
        self.user_id
    }
    pub fn status(&self) -> OrderStatus {
        self.status
    }
    pub fn payment_status(&self) -> PaymentStatus {
        self.payment_status
    }
    pub fn items(&self) -> &[OrderLine] {
        &self.items
    }
    /// How the customer chose to pay at checkout.
    pub fn payment_method(&self) -> Option<&PaymentMethodCode> {
        self.payment_method.as_ref()
    }

    pub fn currency(&self) -> &Currency {
        &self.currency
    }

    pub fn total_amount(&self) -> Money {
        self.total_amount
    }
    pub fn tracking_number(&self) -> Option<&TrackingNumber> {
        self.tracking_number.as_ref()
    }
    pub fn shipped_at(&self) -> Option<DateTime<Utc>> {
        self.shipped_at
    }
    pub fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.delivered_at
    }
    pub fn coupon(&self) -> Option<&OrderCoupon> {
        self.coupon.as_ref()
    }
    pub fn promotions(&self) -> &[AppliedPromotion] {
        &self.promotions
    }
    pub fn reserved_stock(&self) -> &[StockReservation] {
        &self.reserved_stock
    }
    pub fn paid_amount(&self) -> Money {
        self.paid_amount
    }
    pub fn refunded_amount(&self) -> Money {
        self.refunded_amount
    }
    pub fn admin_notes(&self) -> Option<&str> {
        self.admin_notes.as_deref()
    }

    fn id(&self) -> Result<Uuid, OrderError> {
        self.order_id.ok_or(OrderError::NotPlaced)
    }

    /// The order id and current status when `next` is an allowed move.
    fn transition(&self, next: OrderStatus) -> Result<(Uuid, OrderStatus), OrderError> {
        let order_id = self.id()?;
        if !self.status.can_become(next) {
            return Err(OrderError::InvalidTransition {
                from: self.status,
                to: next,
            });
        }
        Ok((order_id, self.status))
    }

    pub fn confirm(&self, at: DateTime<Utc>) -> Result<Vec<OrderEvent>, OrderError> {
        let (order_id, previous_status) = self.transition(OrderStatus::Confirmed)?;
        Ok(vec![OrderEvent::OrderConfirmed {
            order_id,
            previous_status,
            status: OrderStatus::Confirmed,
            at,
        }])
    }

    pub fn start_processing(&self, at: DateTime<Utc>) -> Result<Vec<OrderEvent>, OrderError> {
        let (order_id, previous_status) = self.transition(OrderStatus::Processing)?;
        Ok(vec![OrderEvent::OrderProcessingStarted {
            order_id,
            previous_status,
            status: OrderStatus::Processing,
            at,
        }])
    }

    pub fn ship(
        &self,
        tracking_number: TrackingNumber,
        at: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let (order_id, previous_status) = self.transition(OrderStatus::Shipped)?;
        Ok(vec![OrderEvent::OrderShipped {
            order_id,
            previous_status,
            status: OrderStatus::Shipped,
            tracking_number,
            shipped_at: at,
        }])
    }

    pub fn mark_delivered(&self, at: DateTime<Utc>) -> Result<Vec<OrderEvent>, OrderError> {
        let (order_id, previous_status) = self.transition(OrderStatus::Delivered)?;
        Ok(vec![OrderEvent::OrderDelivered {
            order_id,
            previous_status,
            status: OrderStatus::Delivered,
            delivered_at: at,
        }])
    }

    /// The order's own part of a cancellation; `cancel_order` adds the stock
    /// releases and the coupon and promotion reverts. What was captured and not
    /// yet refunded is reported as `refund_requested` for the payment side.
    pub fn cancel(
        &self,
        reason: OrderNote,
        at: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let (order_id, previous_status) = self.transition(OrderStatus::Cancelled)?;
        let outstanding = self.paid_amount.saturating_sub(self.refunded_amount);
        Ok(vec![OrderEvent::OrderCancelled {
            order_id,
            previous_status,
            status: OrderStatus::Cancelled,
            reason,
            refund_requested: (!outstanding.is_zero()).then_some(outstanding),
            at,
        }])
    }

    /// A payment captured money for this order. The same payment again: no event.
    /// Money that arrives after a cancellation is still recorded: it is real and
    /// has to be refunded.
    pub fn record_payment_captured(
        &self,
        payment_id: Uuid,
        amount: Money,
        at: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let order_id = self.id()?;
        if amount.is_zero() {
            return Err(OrderError::ZeroAmount);
        }
        if self.payments.contains_key(&payment_id) {
            return Ok(vec![]);
        }
        let paid_amount = add(self.paid_amount, amount)?;
        Ok(vec![OrderEvent::OrderPaymentStatusChanged {
            order_id,
            payment_id,
            refund_id: None,
            change: PaymentChange::Captured,
            amount,
            previous_payment_status: self.payment_status,
            payment_status: payment_status_for(paid_amount, self.refunded_amount),
            paid_amount,
            refunded_amount: self.refunded_amount,
            at,
        }])
    }

    /// A payment attempt failed. It only shows while nothing has been captured;
    /// a repeated failure changes nothing.
    pub fn record_payment_failed(
        &self,
        payment_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let order_id = self.id()?;
        if self.payments.contains_key(&payment_id) {
            return Err(OrderError::PaymentAlreadyCaptured { payment_id });
        }
        if self.payment_status != PaymentStatus::Pending {
            return Ok(vec![]);
        }
        Ok(vec![OrderEvent::OrderPaymentStatusChanged {
            order_id,
            payment_id,
            refund_id: None,
            change: PaymentChange::Failed,
            amount: Money::ZERO,
            previous_payment_status: self.payment_status,
            payment_status: PaymentStatus::Failed,
            paid_amount: self.paid_amount,
            refunded_amount: self.refunded_amount,
            at,
        }])
    }

    /// A refund of a captured payment completed. `refunded` only when all that
    /// was captured is back, else `partially_refunded`. When fully refunded, a
    /// cancelled or delivered order becomes `refunded` too.
    pub fn record_refund_completed(
        &self,
        payment_id: Uuid,
        refund_id: Uuid,
        amount: Money,
        at: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let order_id = self.id()?;
        if amount.is_zero() {
            return Err(OrderError::ZeroAmount);
        }
        if self.refund_ids.contains(&refund_id) {
            return Ok(vec![]);
        }
        let payment = self
            .payments
            .get(&payment_id)
            .ok_or(OrderError::UnknownPayment { payment_id })?;
        let refundable = payment.captured.saturating_sub(payment.refunded);
        if amount > refundable {
            return Err(OrderError::RefundExceedsCaptured {
                payment_id,
                amount,
                refundable,
            });
        }
        let refunded_amount = add(self.refunded_amount, amount)?;
        let payment_status = payment_status_for(self.paid_amount, refunded_amount);
        let mut events = vec![OrderEvent::OrderPaymentStatusChanged {
            order_id,
            payment_id,
            refund_id: Some(refund_id),
            change: PaymentChange::RefundCompleted,
            amount,
            previous_payment_status: self.payment_status,
            payment_status,
            paid_amount: self.paid_amount,
            refunded_amount,
            at,
        }];
        let ended = matches!(self.status, OrderStatus::Cancelled | OrderStatus::Delivered);
        if payment_status == PaymentStatus::Refunded && ended {
            events.push(OrderEvent::OrderRefunded {
                order_id,
                previous_status: self.status,
                status: OrderStatus::Refunded,
                refunded_amount,
                at,
            });
        }
        Ok(events)
    }

    /// Appends a line to the admin notes; the event carries the whole new text.
    pub fn add_admin_note(
        &self,
        note: OrderNote,
        at: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let order_id = self.id()?;
        let admin_notes = match &self.admin_notes {
            Some(existing) => format!("{existing}\n{}", note.as_str()),
            None => note.as_str().to_owned(),
        };
        Ok(vec![OrderEvent::OrderAdminNoteAdded {
            order_id,
            note,
            admin_notes,
            at,
        }])
    }
}

fn add(a: Money, b: Money) -> Result<Money, OrderError> {
    a.checked_add(b).map_err(|_| OrderError::AmountOutOfRange {
        amount: a.amount() + b.amount(),
    })
}

/// The payment status that the captured and refunded totals imply.
fn payment_status_for(paid: Money, refunded: Money) -> PaymentStatus {
    if refunded.is_zero() {
        PaymentStatus::Paid
    } else if refunded >= paid {
        PaymentStatus::Refunded
    } else {
        PaymentStatus::PartiallyRefunded
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    ConfirmOrder {
        at: DateTime<Utc>,
    },
    StartProcessing {
        at: DateTime<Utc>,
    },
    ShipOrder {
        tracking_number: TrackingNumber,
        at: DateTime<Utc>,
    },
    MarkDelivered {
        at: DateTime<Utc>,
    },
    /// The order's own events only; the command side cancels through
    /// `cancel_order`, which also releases stock and reverts the coupon.
    CancelOrder {
        reason: OrderNote,
        at: DateTime<Utc>,
    },
    RecordPaymentCaptured {
        payment_id: Uuid,
        amount: Money,
        at: DateTime<Utc>,
    },
    RecordPaymentFailed {
        payment_id: Uuid,
        at: DateTime<Utc>,
    },
    RecordRefundCompleted {
        payment_id: Uuid,
        /// Makes a redelivered refund a no-op.
        refund_id: Uuid,
        amount: Money,
        at: DateTime<Utc>,
    },
    AddAdminNote {
        note: OrderNote,
        at: DateTime<Utc>,
    },
}

// OrderPlaced carries the whole order snapshot; the other events are small.
// Events are built and serialized one at a time, so the size gap costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderEvent {
    OrderPlaced {
        order_id: Uuid,
        order_number: OrderNumber,
        cart_id: Uuid,
        user_id: Option<Uuid>,
        status: OrderStatus,
        payment_status: PaymentStatus,
        items: Vec<OrderLine>,
        subtotal: Money,
        discount_amount: Money,
        /// The selected method's fee before any shipping discount.
        shipping_fee: Money,
        shipping_discount: Money,
        shipping_amount: Money,
        tax_amount: Money,
        total_amount: Money,
        currency: Currency,
        billing_address: PostalAddress,
        shipping_address: PostalAddress,
        shipping_method: ShippingMethodCode,
        /// Added after the first version of the event; absent reads as none.
        #[serde(default)]
        payment_method: Option<PaymentMethodCode>,
        coupon: Option<OrderCoupon>,
        promotions: Vec<AppliedPromotion>,
        reserved_stock: Vec<StockReservation>,
        notes: Option<OrderNote>,
        created_at: DateTime<Utc>,
    },
    OrderConfirmed {
        order_id: Uuid,
        previous_status: OrderStatus,
        status: OrderStatus,
        at: DateTime<Utc>,
    },
    OrderProcessingStarted {
        order_id: Uuid,
        previous_status: OrderStatus,
        status: OrderStatus,
        at: DateTime<Utc>,
    },
    OrderShipped {
        order_id: Uuid,
        previous_status: OrderStatus,
        status: OrderStatus,
        tracking_number: TrackingNumber,
        shipped_at: DateTime<Utc>,
    },
    OrderDelivered {
        order_id: Uuid,
        previous_status: OrderStatus,
        status: OrderStatus,
        delivered_at: DateTime<Utc>,
    },
    OrderCancelled {
        order_id: Uuid,
        previous_status: OrderStatus,
        status: OrderStatus,
        reason: OrderNote,
        refund_requested: Option<Money>,
        at: DateTime<Utc>,
    },
    OrderRefunded {
        order_id: Uuid,
        previous_status: OrderStatus,
        status: OrderStatus,
        refunded_amount: Money,
        at: DateTime<Utc>,
    },
    OrderPaymentStatusChanged {
        order_id: Uuid,
        payment_id: Uuid,
        refund_id: Option<Uuid>,
        change: PaymentChange,
        /// Captured or refunded by this change (0 for a failure).
        amount: Money,
        previous_payment_status: PaymentStatus,
        payment_status: PaymentStatus,
        paid_amount: Money,
        refunded_amount: Money,
        at: DateTime<Utc>,
    },
    OrderAdminNoteAdded {
        order_id: Uuid,
        note: OrderNote,
        admin_notes: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        match self {
            OrderEvent::OrderPlaced { .. } => "OrderPlaced",
            OrderEvent::OrderConfirmed { .. } => "OrderConfirmed",
            OrderEvent::OrderProcessingStarted { .. } => "OrderProcessingStarted",
            OrderEvent::OrderShipped { .. } => "OrderShipped",
            OrderEvent::OrderDelivered { .. } => "OrderDelivered",
            OrderEvent::OrderCancelled { .. } => "OrderCancelled",
            OrderEvent::OrderRefunded { .. } => "OrderRefunded",
            OrderEvent::OrderPaymentStatusChanged { .. } => "OrderPaymentStatusChanged",
            OrderEvent::OrderAdminNoteAdded { .. } => "OrderAdminNoteAdded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error("order not found")]
    NotPlaced,
    #[error("an order cannot go from {from} to {to}")]
    InvalidTransition { from: OrderStatus, to: OrderStatus },
    #[error("a payment or refund amount must be above 0")]
    ZeroAmount,
    #[error("payment {payment_id} captured nothing on this order")]
    UnknownPayment { payment_id: Uuid },
    #[error("payment {payment_id} was captured and cannot fail")]
    PaymentAlreadyCaptured { payment_id: Uuid },
    #[error(
        "refund of {amount} exceeds the {refundable} still refundable on payment {payment_id}"
    )]
    RefundExceedsCaptured {
        payment_id: Uuid,
        amount: Money,
        refundable: Money,
    },
    #[error("amount {amount} is out of range")]
    AmountOutOfRange { amount: Decimal },
}

impl Aggregate for Order {
    const TYPE: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            OrderCommand::ConfirmOrder { at } => self.confirm(at)?,
            OrderCommand::StartProcessing { at } => self.start_processing(at)?,
            OrderCommand::ShipOrder {
                tracking_number,
                at,
            } => self.ship(tracking_number, at)?,
            OrderCommand::MarkDelivered { at } => self.mark_delivered(at)?,
            OrderCommand::CancelOrder { reason, at } => self.cancel(reason, at)?,
            OrderCommand::RecordPaymentCaptured {
                payment_id,
                amount,
                at,
            } => self.record_payment_captured(payment_id, amount, at)?,
            OrderCommand::RecordPaymentFailed { payment_id, at } => {
                self.record_payment_failed(payment_id, at)?
            }
            OrderCommand::RecordRefundCompleted {
                payment_id,
                refund_id,
                amount,
                at,
            } => self.record_refund_completed(payment_id, refund_id, amount, at)?,
            OrderCommand::AddAdminNote { note, at } => self.add_admin_note(note, at)?,
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            OrderEvent::OrderPlaced {
                order_id,
                order_number,
                cart_id,
                user_id,
                status,
                payment_status,
                items,
                subtotal,
                discount_amount,
                shipping_amount,
                tax_amount,
                total_amount,
                currency,
                billing_address,
                shipping_address,
                shipping_method,
                payment_method,
                coupon,
                promotions,
                reserved_stock,
                ..
            } => {
                *self = Order {
                    order_id: Some(order_id),
                    order_number: Some(order_number),
                    cart_id: Some(cart_id),
                    user_id,
                    status,
                    payment_status,
                    items,
                    subtotal,
                    tax_amount,
                    shipping_amount,
                    discount_amount,
                    total_amount,
                    currency,
                    billing_address: Some(billing_address),
                    shipping_address: Some(shipping_address),
                    shipping_method: Some(shipping_method),
                    payment_method,
                    coupon,
                    promotions,
                    reserved_stock,
                    ..Order::default()
                };
            }
            OrderEvent::OrderConfirmed { status, .. }
            | OrderEvent::OrderProcessingStarted { status, .. }
            | OrderEvent::OrderCancelled { status, .. }
            | OrderEvent::OrderRefunded { status, .. } => self.status = status,
            OrderEvent::OrderShipped {
                status,
                tracking_number,
                shipped_at,
                ..
            } => {
                self.status = status;
                self.tracking_number = Some(tracking_number);
                self.shipped_at = Some(shipped_at);
            }
            OrderEvent::OrderDelivered {
                status,
                delivered_at,
                ..
            } => {
                self.status = status;
                self.delivered_at = Some(delivered_at);
            }
            OrderEvent::OrderPaymentStatusChanged {
                payment_id,
                refund_id,
                change,
                amount,
                payment_status,
                paid_amount,
                refunded_amount,
                ..
            } => {
                let payment = self.payments.entry(payment_id);
                match change {
                    PaymentChange::Captured => payment.or_default().captured = amount,
                    PaymentChange::RefundCompleted => {
                        let record = payment.or_default();
                        // Refunds never exceed the capture (checked when decided),
                        // so the sum stays in range; apply must not panic anyway.
                        record.refunded = record
                            .refunded
                            .checked_add(amount)
                            .unwrap_or(record.captured);
                    }
                    PaymentChange::Failed => {}
                }
                if let Some(refund_id) = refund_id {
                    self.refund_ids.insert(refund_id);
                }
                self.payment_status = payment_status;
                self.paid_amount = paid_amount;
                self.refunded_amount = refunded_amount;
            }
            OrderEvent::OrderAdminNoteAdded { admin_notes, .. } => {
                self.admin_notes = Some(admin_notes)
            }
        }
    }
}
