//! Orders: the `Order` aggregate (placement snapshot, fulfilment state machine,
//! payment status, admin notes) and the two decisions that span aggregates:
//! `place_order` (cart -> order, with stock, coupon and promotion uses) and
//! `cancel_order` (order -> cancelled, giving all of that back).

pub mod cancellation;
pub mod checkout;
// The aggregate shares the module's name on purpose: `order::Order`.
#[allow(clippy::module_inception)]
pub mod order;
pub mod personal;

#[cfg(test)]
mod tests;

pub use cancellation::{cancel_order, Cancellation, CancellationError};
pub use checkout::{
    place_order, CatalogEntry, CheckoutError, CheckoutInput, CheckoutOutcome, CouponState,
    PlacedOrder,
};
pub use order::{
    Order, OrderCommand, OrderCoupon, OrderError, OrderEvent, OrderLine, OrderNote, OrderStatus,
    PaymentChange, PaymentMethodCode, PaymentStatus, StockReservation, TrackingNumber,
};
