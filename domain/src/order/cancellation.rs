//! The cancellation decision: the order's `OrderCancelled` together with what
//! the order held elsewhere given back: each stock reservation released, the
//! coupon redemption reverted and each promotion use reverted (on the
//! promotion's stream and on the customer's usage stream), for one atomic
//! append. Every part is idempotent on its own stream (a released reservation
//! or reverted redemption yields no event), and the order refuses a second
//! cancellation, so a retried cancel cannot give anything back twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::order::{Order, OrderError, OrderEvent, OrderNote};
use crate::inventory::{inventory_stream_id, Inventory, InventoryError, InventoryEvent};
use crate::promotion::{
    customer_usage_stream_id, Coupon, CouponError, CouponEvent, CustomerUsage, CustomerUsageEvent,
    Promotion, PromotionError, PromotionEvent,
};
use crate::values::Sku;

/// Every stream a cancellation writes, for one atomic append.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancellation {
    pub order_id: Uuid,
    pub order: Vec<OrderEvent>,
    /// Per `inventory_stream_id(sku)`.
    pub inventory: Vec<(String, Vec<InventoryEvent>)>,
    /// Per coupon id.
    pub coupon: Option<(Uuid, Vec<CouponEvent>)>,
    /// Per promotion id.
    pub promotions: Vec<(Uuid, Vec<PromotionEvent>)>,
    /// Per `customer_usage_stream_id(promotion, user)`.
    pub customer_usage: Vec<(String, Vec<CustomerUsageEvent>)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CancellationError {
    #[error(transparent)]
    Order { error: OrderError },
    #[error("the stock of {sku} was not loaded")]
    InventoryMissing { sku: Sku },
    #[error("stock refused the release: {error}")]
    Inventory { error: InventoryError },
    #[error("coupon {coupon_id} was not loaded")]
    CouponMissing { coupon_id: Uuid },
    #[error("the coupon refused the revert: {error}")]
    Coupon { error: CouponError },
    #[error("promotion {promotion_id} was not loaded")]
    PromotionMissing { promotion_id: Uuid },
    #[error("the promotion refused the revert: {error}")]
    Promotion { error: PromotionError },
}

/// Cancels `order` (only before shipping). `inventories` holds the stream of
/// every sku in `order.reserved_stock()`, `coupon` the order's coupon if it has
/// one, `promotions` every promotion in `order.promotions()`, and
/// `customer_usage` the customer's usage stream of those promotions (one
/// not given holds no use of this order).
pub fn cancel_order(
    order: &Order,
    inventories: &BTreeMap<Sku, &Inventory>,
    coupon: Option<&Coupon>,
    promotions: &BTreeMap<Uuid, &Promotion>,
    customer_usage: &BTreeMap<Uuid, &CustomerUsage>,
    reason: OrderNote,
    at: DateTime<Utc>,
) -> Result<Cancellation, CancellationError> {
    let order_events = order
        .cancel(reason, at)
        .map_err(|error| CancellationError::Order { error })?;
    let order_id = order.order_id().ok_or(CancellationError::Order {
        error: OrderError::NotPlaced,
    })?;

    let mut inventory = Vec::with_capacity(order.reserved_stock().len());
    for reservation in order.reserved_stock() {
        let stock = inventories.get(&reservation.sku).ok_or_else(|| {
            CancellationError::InventoryMissing {
                sku: reservation.sku.clone(),
            }
        })?;
        let events = stock
            .release(order_id, at)
            .map_err(|error| CancellationError::Inventory { error })?;
        inventory.push((inventory_stream_id(&reservation.sku), events));
    }

    let coupon_events = match order.coupon() {
        None => None,
        Some(used) => {
            let coupon = coupon
                .filter(|coupon| coupon.coupon_id() == Some(used.coupon_id))
                .ok_or(CancellationError::CouponMissing {
                    coupon_id: used.coupon_id,
                })?;
            let events = coupon
                .revert(order_id, at)
                .map_err(|error| CancellationError::Coupon { error })?;
            Some((used.coupon_id, events))
        }
    };

    let mut promotion_events = Vec::with_capacity(order.promotions().len());
    for applied in order.promotions() {
        let promotion =
            promotions
                .get(&applied.promotion_id)
                .ok_or(CancellationError::PromotionMissing {
                    promotion_id: applied.promotion_id,
                })?;
        let events = promotion
            .revert_usage(order_id, at)
            .map_err(|error| CancellationError::Promotion { error })?;
        promotion_events.push((applied.promotion_id, events));
    }

    let mut usage_events = Vec::new();
    if let Some(user_id) = order.user_id() {
        for applied in order.promotions() {
            if let Some(usage) = customer_usage.get(&applied.promotion_id) {
                usage_events.push((
                    customer_usage_stream_id(applied.promotion_id, user_id),
                    usage.revert(applied.promotion_id, user_id, order_id, at),
                ));
            }
        }
    }

    Ok(Cancellation {
        order_id,
        order: order_events,
        inventory,
        coupon: coupon_events,
        promotions: promotion_events,
        customer_usage: usage_events,
    })
}
