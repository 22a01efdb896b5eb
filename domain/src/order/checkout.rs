//! The checkout decision: turns an active cart into an order, pure. It reprices
//! every line from the current catalog, re-checks and reserves stock, evaluates
//! promotions and the coupon, snapshots lines and addresses, allocates the order
//! number, and returns the events of every stream it touches (order, cart,
//! inventories, coupon, promotions) for one atomic append.
//!
//! Stale prices: the cart line's `unit_price` is the price the customer saw.
//! If the catalog's current price differs (up or down) the checkout is refused
//! with `PriceChanged` and the client refreshes the cart; the customer is never
//! charged an amount they did not see. When the client also sends the total it
//! displayed (`expected_total`), a different computed total is refused with
//! `TotalChanged` (e.g. a promotion ended meanwhile).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::order::{
    OrderCoupon, OrderEvent, OrderLine, OrderNote, OrderStatus, PaymentMethodCode, PaymentStatus,
    StockReservation,
};
use crate::cart::{Cart, CartError, CartEvent, CartStatus};
use crate::inventory::{inventory_stream_id, Inventory, InventoryError, InventoryEvent};
use crate::promotion::{
    customer_usage_stream_id, evaluate, Coupon, CouponError, CouponEvent, CouponOffer,
    CustomerUsage, CustomerUsageEvent, EvaluationError, EvaluationInput, EvaluationLine,
    Ineligibility, Promotion, PromotionError, PromotionEvent,
};
use crate::values::{
    CouponCode, Currency, Money, OrderNumber, PostalAddress, Quantity, Sku, Url, ValueError,
};

/// What the catalog says about a sku right now (plain input, read by the command side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub product_id: Uuid,
    pub variant_id: Option<Uuid>,
    pub sku: Sku,
    pub name: String,
    /// The effective price now (sale price when one applies).
    pub price: Money,
    /// The product (and variant) can be sold.
    pub is_active: bool,
    pub image_url: Option<Url>,
    pub category_id: Option<Uuid>,
    /// Whether 7% VAT applies (false for VAT-exempt goods).
    pub taxable: bool,
}

/// The cart's coupon as loaded: the coupon (found through its code's unique
/// key) and its promotion.
#[derive(Debug, Clone, Copy)]
pub struct CouponState<'a> {
    pub coupon: &'a Coupon,
    pub promotion: &'a Promotion,
}

#[derive(Debug, Clone)]
pub struct CheckoutInput<'a> {
    pub order_id: Uuid,
    /// One fresh id per cart line, in cart order (`order_items.id`).
    pub item_ids: &'a [Uuid],
    pub cart: &'a Cart,
    /// Every cart line's sku.
    pub catalog: &'a BTreeMap<Sku, CatalogEntry>,
    /// Every cart line's sku, loaded from `inventory_stream_id(sku)`.
    pub inventories: &'a BTreeMap<Sku, &'a Inventory>,
    /// Required when the cart holds a coupon code.
    pub coupon: Option<CouponState<'a>>,
    /// Promotions that apply without a code (the read model's active ones with no coupon).
    pub automatic_promotions: &'a [&'a Promotion],
    /// The user's past uses per promotion id (read model; absent: none).
    /// Overridden by `customer_usage` where that has the promotion.
    pub user_redemptions: &'a BTreeMap<Uuid, u32>,
    /// The customer's usage stream per promotion id, loaded for the coupon's
    /// promotion and the automatic ones: its count is the per-user count,
    /// and each applied promotion's use is recorded on it, which is what
    /// makes `usage_limit_per_user` hold under concurrency. A promotion
    /// without one falls back to `user_redemptions` and records nothing
    /// per customer.
    pub customer_usage: &'a BTreeMap<Uuid, &'a CustomerUsage>,
    /// False for a suspended or inactive user.
    pub user_can_order: bool,
    /// Where to ship: the request's, else the cart's (required one way or
    /// the other).
    pub shipping_address: Option<PostalAddress>,
    /// None: bill to the shipping address.
    pub billing_address: Option<PostalAddress>,
    pub payment_method: Option<PaymentMethodCode>,
    /// The total the client displayed, when it sends one.
    pub expected_total: Option<Money>,
    pub notes: Option<OrderNote>,
    /// The next number in this year's order sequence.
    pub order_sequence: u64,
    pub now: DateTime<Utc>,
}

/// Every stream a placed order writes, for one atomic append.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedOrder {
    pub order_id: Uuid,
    pub order: Vec<OrderEvent>,
    pub cart_id: Uuid,
    pub cart: Vec<CartEvent>,
    /// Per `inventory_stream_id(sku)`.
    pub inventory: Vec<(String, Vec<InventoryEvent>)>,
    /// Per coupon id.
    pub coupon: Option<(Uuid, Vec<CouponEvent>)>,
    /// Per promotion id.
    pub promotions: Vec<(Uuid, Vec<PromotionEvent>)>,
    /// Per `customer_usage_stream_id(promotion, user)`.
    pub customer_usage: Vec<(String, Vec<CustomerUsageEvent>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckoutOutcome {
    Placed(Box<PlacedOrder>),
    /// The cart was already checked out into this order: nothing to append.
    AlreadyPlaced {
        order_id: Uuid,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckoutError {
    #[error("the cart is {status:?}, not active")]
    CartNotActive { status: CartStatus },
    #[error("the cart is empty")]
    EmptyCart,
    #[error("this account cannot place orders")]
    UserCannotOrder { user_id: Option<Uuid> },
    #[error("{sku} is no longer available")]
    ProductUnavailable { sku: Sku },
    #[error("the price of {sku} changed from {expected} to {current}")]
    PriceChanged {
        sku: Sku,
        expected: Money,
        current: Money,
    },
    #[error("the total changed from {expected} to {current}")]
    TotalChanged { expected: Money, current: Money },
    #[error("{sku}: {requested} requested, {available} available")]
    InsufficientStock {
        sku: Sku,
        requested: u32,
        available: i64,
    },
    #[error("the stock of {sku} was not loaded")]
    InventoryMissing { sku: Sku },
    #[error("stock refused the reservation: {error}")]
    Inventory { error: InventoryError },
    #[error("no shipping address")]
    ShippingAddressMissing,
    #[error("no shipping method")]
    ShippingMethodMissing,
    #[error("coupon {code} does not exist")]
    CouponNotFound { code: CouponCode },
    #[error("coupon {code} is not active")]
    CouponInactive { code: CouponCode },
    #[error("coupon {code} is valid from {starts_at}")]
    CouponNotYetValid {
        code: CouponCode,
        starts_at: DateTime<Utc>,
    },
    #[error("coupon {code} has expired")]
    CouponExpired { code: CouponCode },
    #[error("coupon {code} reached its usage limit of {limit}")]
    CouponLimitReached { code: CouponCode, limit: u32 },
    #[error("coupon {code} can be used {limit} time(s) per customer")]
    CouponPerUserLimitReached { code: CouponCode, limit: u32 },
    #[error("coupon {code} needs a subtotal of {minimum} (now {subtotal})")]
    CouponMinimumNotMet {
        code: CouponCode,
        minimum: Money,
        subtotal: Money,
    },
    #[error("coupon {code} does not apply to this order")]
    CouponNotApplicable { code: CouponCode },
    #[error("{lines} cart lines but {ids} item ids")]
    ItemIdsMissing { lines: usize, ids: usize },
    #[error("amount {amount} is out of range for an order")]
    AmountOutOfRange { amount: Decimal },
    #[error("cannot allocate an order number: {error}")]
    OrderNumber { error: ValueError },
    #[error("the cart refused the checkout: {error}")]
    Cart { error: CartError },
    #[error("the coupon refused the redemption: {error}")]
    Coupon { error: CouponError },
    #[error("a promotion refused the use: {error}")]
    Promotion { error: PromotionError },
}

fn coupon_error(code: &CouponCode, reason: Ineligibility) -> CheckoutError {
    let code = code.clone();
    match reason {
        Ineligibility::Inactive => CheckoutError::CouponInactive { code },
        Ineligibility::NotStarted { starts_at } => {
            CheckoutError::CouponNotYetValid { code, starts_at }
        }
        Ineligibility::Ended { .. } => CheckoutError::CouponExpired { code },
        Ineligibility::UsageLimitReached { limit } => {
            CheckoutError::CouponLimitReached { code, limit }
        }
        Ineligibility::PerUserLimitReached { limit } => {
            CheckoutError::CouponPerUserLimitReached { code, limit }
        }
        Ineligibility::NotApplicable => CheckoutError::CouponNotApplicable { code },
        Ineligibility::MinimumNotMet { minimum, subtotal } => CheckoutError::CouponMinimumNotMet {
            code,
            minimum,
            subtotal,
        },
    }
}

fn redemption_error(code: &CouponCode, error: CouponError) -> CheckoutError {
    let code = code.clone();
    match error {
        CouponError::Inactive { .. } | CouponError::PromotionInactive { .. } => {
            CheckoutError::CouponInactive { code }
        }
        CouponError::NotYetValid { starts_at, .. } => {
            CheckoutError::CouponNotYetValid { code, starts_at }
        }
        CouponError::Expired { .. } => CheckoutError::CouponExpired { code },
        CouponError::UsageLimitReached { limit, .. } => {
            CheckoutError::CouponLimitReached { code, limit }
        }
        CouponError::PerUserLimitReached { limit, .. } => {
            CheckoutError::CouponPerUserLimitReached { code, limit }
        }
        CouponError::NotIssued => CheckoutError::CouponNotFound { code },
        error => CheckoutError::Coupon { error },
    }
}

fn reservation_error(sku: &Sku, error: InventoryError) -> CheckoutError {
    match error {
        InventoryError::InsufficientStock {
            sku,
            requested,
            available,
        } => CheckoutError::InsufficientStock {
            sku,
            requested,
            available,
        },
        // No stock record: the sku cannot be sold.
        InventoryError::NotInitialized => CheckoutError::ProductUnavailable { sku: sku.clone() },
        error => CheckoutError::Inventory { error },
    }
}

/// A line repriced from the catalog.
struct PricedLine<'a> {
    entry: &'a CatalogEntry,
    quantity: Quantity,
    total_price: Money,
}

/// Places the order for `input.cart`, or says why not. See the module doc for the rules.
pub fn place_order(input: CheckoutInput<'_>) -> Result<CheckoutOutcome, CheckoutError> {
    let cart = input.cart;
    let at = input.now;

    // The cart: already placed (idempotent), active, allowed, not empty.
    match (cart.status(), cart.order_id()) {
        (CartStatus::CheckedOut, Some(order_id)) => {
            return Ok(CheckoutOutcome::AlreadyPlaced { order_id })
        }
        (CartStatus::Active, _) => {}
        (status, _) => return Err(CheckoutError::CartNotActive { status }),
    }
    let cart_id = cart.id().ok_or(CheckoutError::CartNotActive {
        status: cart.status(),
    })?;
    let user_id = cart.owner().and_then(|owner| owner.user_id());
    if !input.user_can_order {
        return Err(CheckoutError::UserCannotOrder { user_id });
    }
    let items = cart.items();
    if items.is_empty() {
        return Err(CheckoutError::EmptyCart);
    }
    let cart_events = cart
        .check_out(input.order_id, at)
        .map_err(|error| match error {
            CartError::Empty => CheckoutError::EmptyCart,
            CartError::Expired { .. } => CheckoutError::CartNotActive {
                status: CartStatus::Expired,
            },
            error => CheckoutError::Cart { error },
        })?;
    if input.item_ids.len() < items.len() {
        return Err(CheckoutError::ItemIdsMissing {
            lines: items.len(),
            ids: input.item_ids.len(),
        });
    }

    // 1. Reprice every line from the catalog, then reserve stock per sku.
    let mut priced = Vec::with_capacity(items.len());
    for item in items {
        let entry = input
            .catalog
            .get(&item.sku)
            .filter(|entry| {
                entry.is_active
                    && entry.product_id == item.product_id
                    && entry.variant_id == item.variant_id
            })
            .ok_or_else(|| CheckoutError::ProductUnavailable {
                sku: item.sku.clone(),
            })?;
        if entry.price != item.unit_price {
            return Err(CheckoutError::PriceChanged {
                sku: item.sku.clone(),
                expected: item.unit_price,
                current: entry.price,
            });
        }
        let total_price =
            entry
                .price
                .times(item.quantity)
                .map_err(|_| CheckoutError::AmountOutOfRange {
                    amount: entry.price.amount() * Decimal::from(item.quantity.get()),
                })?;
        priced.push(PricedLine {
            entry,
            quantity: item.quantity,
            total_price,
        });
    }
    // Lines of one sku (different options) share its stock: one reservation each.
    let mut per_sku: BTreeMap<&Sku, u64> = BTreeMap::new();
    for item in items {
        *per_sku.entry(&item.sku).or_default() += u64::from(item.quantity.get());
    }
    let mut inventory = Vec::with_capacity(per_sku.len());
    let mut reserved_stock = Vec::with_capacity(per_sku.len());
    for (sku, requested) in per_sku {
        let stock = input
            .inventories
            .get(sku)
            .ok_or_else(|| CheckoutError::InventoryMissing { sku: sku.clone() })?;
        let quantity = i64::try_from(requested)
            .ok()
            .and_then(|q| Quantity::new(q).ok())
            .ok_or_else(|| CheckoutError::InsufficientStock {
                sku: sku.clone(),
                requested: u32::try_from(requested).unwrap_or(u32::MAX),
                available: stock.available(),
            })?;
        let events = stock
            .reserve(input.order_id, quantity, at)
            .map_err(|error| reservation_error(sku, error))?;
        inventory.push((inventory_stream_id(sku), events));
        reserved_stock.push(StockReservation {
            sku: sku.clone(),
            quantity,
        });
    }

    let shipping_address = input
        .shipping_address
        .or_else(|| cart.shipping_address().cloned())
        .ok_or(CheckoutError::ShippingAddressMissing)?;
    let shipping = cart
        .shipping_method()
        .ok_or(CheckoutError::ShippingMethodMissing)?;

    // The coupon must be the one the cart names, and active.
    let coupon = match cart.coupon_code() {
        None => None,
        Some(code) => {
            let state = input
                .coupon
                .filter(|state| state.coupon.code() == Some(code))
                .ok_or_else(|| CheckoutError::CouponNotFound { code: code.clone() })?;
            if !state.coupon.is_active() {
                return Err(CheckoutError::CouponInactive { code: code.clone() });
            }
            if state.coupon.promotion_id() != state.promotion.promotion_id() {
                return Err(redemption_error(
                    code,
                    CouponError::PromotionMismatch {
                        code: code.clone(),
                        promotion_id: state.coupon.promotion_id().unwrap_or_default(),
                    },
                ));
            }
            Some((code, state))
        }
    };

    // 2. Promotions, shipping, tax, totals. A customer's usage stream, where
    // loaded, is their count.
    let mut user_redemptions = input.user_redemptions.clone();
    for (promotion_id, usage) in input.customer_usage {
        user_redemptions.insert(*promotion_id, usage.uses());
    }
    let lines: Vec<EvaluationLine> = priced
        .iter()
        .map(|line| EvaluationLine {
            product_id: line.entry.product_id,
            category_id: line.entry.category_id,
            total_price: line.total_price,
            taxable: line.entry.taxable,
        })
        .collect();
    let evaluation = evaluate(&EvaluationInput {
        lines: &lines,
        shipping_fee: shipping.fee,
        user_id,
        now: at,
        automatic: input.automatic_promotions,
        coupon: coupon.map(|(code, state)| CouponOffer {
            code,
            promotion: state.promotion,
        }),
        user_redemptions: &user_redemptions,
    })
    .map_err(|error| match error {
        EvaluationError::CouponIneligible { code, reason } => coupon_error(&code, reason),
        EvaluationError::AmountOutOfRange { amount } => CheckoutError::AmountOutOfRange { amount },
    })?;
    if let Some(expected) = input
        .expected_total
        .filter(|expected| *expected != evaluation.total_amount)
    {
        return Err(CheckoutError::TotalChanged {
            expected,
            current: evaluation.total_amount,
        });
    }

    // The coupon's redemption and one recorded use per applied promotion.
    let redemptions =
        |promotion_id: Uuid| user_redemptions.get(&promotion_id).copied().unwrap_or(0);
    let mut coupon_events = None;
    let mut order_coupon = None;
    if let Some((code, state)) = coupon {
        let coupon_id = state
            .coupon
            .coupon_id()
            .ok_or_else(|| CheckoutError::CouponNotFound { code: code.clone() })?;
        let promotion_id = state.promotion.promotion_id().unwrap_or_default();
        let events = state
            .coupon
            .redeem(
                input.order_id,
                user_id,
                state.promotion,
                redemptions(promotion_id),
                at,
            )
            .map_err(|error| redemption_error(code, error))?;
        coupon_events = Some((coupon_id, events));
        order_coupon = Some(OrderCoupon {
            coupon_id,
            code: code.clone(),
        });
    }
    let mut promotions = Vec::with_capacity(evaluation.applied.len());
    let mut customer_usage = Vec::new();
    for applied in &evaluation.applied {
        let through_coupon = applied.coupon_code.is_some();
        let promotion = match (through_coupon, coupon) {
            (true, Some((_, state))) => state.promotion,
            _ => input
                .automatic_promotions
                .iter()
                .find(|p| p.promotion_id() == Some(applied.promotion_id))
                .copied()
                .ok_or(CheckoutError::Promotion {
                    error: PromotionError::NotFound,
                })?,
        };
        let coupon_id = order_coupon
            .as_ref()
            .filter(|_| through_coupon)
            .map(|c| c.coupon_id);
        let events = promotion
            .record_usage(
                input.order_id,
                user_id,
                coupon_id,
                redemptions(applied.promotion_id),
                at,
            )
            .map_err(|error| match (&applied.coupon_code, error) {
                (Some(code), PromotionError::UsageLimitReached { limit, .. }) => {
                    CheckoutError::CouponLimitReached {
                        code: code.clone(),
                        limit,
                    }
                }
                (Some(code), PromotionError::PerUserLimitReached { limit, .. }) => {
                    CheckoutError::CouponPerUserLimitReached {
                        code: code.clone(),
                        limit,
                    }
                }
                (_, error) => CheckoutError::Promotion { error },
            })?;
        promotions.push((applied.promotion_id, events));
        if let (Some(user_id), Some(usage)) =
            (user_id, input.customer_usage.get(&applied.promotion_id))
        {
            customer_usage.push((
                customer_usage_stream_id(applied.promotion_id, user_id),
                usage.record(applied.promotion_id, user_id, input.order_id, at),
            ));
        }
    }

    // 3. Snapshots; 4. the order number; 5. the events.
    let order_items = priced
        .iter()
        .zip(items)
        .zip(input.item_ids)
        .zip(&evaluation.line_discounts)
        .map(|(((line, item), order_item_id), discount)| OrderLine {
            order_item_id: *order_item_id,
            product_id: line.entry.product_id,
            product_variant_id: line.entry.variant_id,
            product_name: line.entry.name.clone(),
            product_sku: item.sku.clone(),
            product_image_url: line.entry.image_url.clone(),
            unit_price: line.entry.price,
            quantity: line.quantity,
            total_price: line.total_price,
            discount_amount: *discount,
            taxable: line.entry.taxable,
            product_options: item.options.clone(),
        })
        .collect();
    let order_number = OrderNumber::allocate(at.year(), input.order_sequence)
        .map_err(|error| CheckoutError::OrderNumber { error })?;
    let placed = OrderEvent::OrderPlaced {
        order_id: input.order_id,
        order_number,
        cart_id,
        user_id,
        status: OrderStatus::Pending,
        payment_status: PaymentStatus::Pending,
        items: order_items,
        subtotal: evaluation.subtotal,
        discount_amount: evaluation.discount_amount,
        shipping_fee: evaluation.shipping_fee,
        shipping_discount: evaluation.shipping_discount,
        shipping_amount: evaluation.shipping_amount,
        tax_amount: evaluation.tax_amount,
        total_amount: evaluation.total_amount,
        currency: Currency::default(),
        billing_address: input
            .billing_address
            .unwrap_or_else(|| shipping_address.clone()),
        shipping_address,
        shipping_method: shipping.method.clone(),
        payment_method: input.payment_method,
        coupon: order_coupon,
        promotions: evaluation.applied,
        reserved_stock,
        notes: input.notes,
        created_at: at,
    };
    Ok(CheckoutOutcome::Placed(Box::new(PlacedOrder {
        order_id: input.order_id,
        order: vec![placed],
        cart_id,
        cart: cart_events,
        inventory,
        coupon: coupon_events,
        promotions,
        customer_usage,
    })))
}
