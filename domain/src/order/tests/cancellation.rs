//! The cancellation decision: the order's event plus everything the order held
//! given back (stock, coupon redemption, promotion uses), and its refusals.

use std::collections::BTreeMap;

use rust_decimal_macros::dec;
use uuid::Uuid;

use super::support::*;
use crate::inventory::{inventory_stream_id, Inventory, InventoryEvent};
use crate::order::{
    cancel_order, place_order, CancellationError, CheckoutInput, CheckoutOutcome, CouponState,
    Order, OrderCommand, OrderError, OrderEvent, OrderNote, OrderStatus, TrackingNumber,
};
use crate::promotion::coupon::tests::{code, coupon_from, issued, COUPON, PROMOTION};
use crate::promotion::promotion::tests::{created, promotion_from, terms};
use crate::promotion::{Coupon, CouponEvent, Promotion, PromotionEvent};
use crate::values::Sku;

fn reason() -> OrderNote {
    OrderNote::parse("Out of budget").unwrap()
}

/// Every state as it is after placing the seed cart with coupon SAVE10 (10% off).
struct AfterCheckout {
    order: Order,
    inventory: Inventory,
    coupon: Coupon,
    promotion: Promotion,
}

fn after_checkout() -> AfterCheckout {
    let iphone = iphone();
    let cart = cart_with(user(), &[line(iphone.clone(), 2)], dec!(50), Some("save10"));
    let catalog = BTreeMap::from([(iphone.sku.clone(), iphone.entry())]);
    let mut inventory = stock(&iphone, 10, true);
    let mut coupon = coupon_from(vec![issued()]);
    let mut promotion = promotion_from(vec![created(PROMOTION, terms())]);
    let outcome = place_order(CheckoutInput {
        order_id: ORDER,
        item_ids: &[Uuid::from_u128(0x1_0000)],
        cart: &cart,
        catalog: &catalog,
        inventories: &BTreeMap::from([(iphone.sku.clone(), &inventory)]),
        coupon: Some(CouponState {
            coupon: &coupon,
            promotion: &promotion,
        }),
        automatic_promotions: &[],
        user_redemptions: &BTreeMap::new(),
        customer_usage: &BTreeMap::new(),
        user_can_order: true,
        shipping_address: None,
        billing_address: None,
        payment_method: None,
        expected_total: None,
        notes: None,
        order_sequence: 1,
        now: t(10),
    })
    .unwrap();
    let CheckoutOutcome::Placed(placed) = outcome else {
        panic!("expected a placed order");
    };
    let mut order = Order::default();
    apply(&mut order, placed.order);
    for (_, events) in placed.inventory {
        apply(&mut inventory, events);
    }
    apply(&mut coupon, placed.coupon.unwrap().1);
    for (_, events) in placed.promotions {
        apply(&mut promotion, events);
    }
    AfterCheckout {
        order,
        inventory,
        coupon,
        promotion,
    }
}

fn inventories(state: &AfterCheckout) -> BTreeMap<Sku, &Inventory> {
    BTreeMap::from([(iphone().sku, &state.inventory)])
}

fn promotions(state: &AfterCheckout) -> BTreeMap<Uuid, &Promotion> {
    BTreeMap::from([(PROMOTION, &state.promotion)])
}

#[test]
fn cancelling_gives_back_stock_coupon_and_promotion_use() {
    let state = after_checkout();
    let cancellation = cancel_order(
        &state.order,
        &inventories(&state),
        Some(&state.coupon),
        &promotions(&state),
        &BTreeMap::new(),
        reason(),
        t(11),
    )
    .unwrap();
    assert_eq!(cancellation.order_id, ORDER);
    assert_eq!(
        cancellation.order,
        vec![OrderEvent::OrderCancelled {
            order_id: ORDER,
            previous_status: OrderStatus::Pending,
            status: OrderStatus::Cancelled,
            reason: reason(),
            refund_requested: None,
            at: t(11),
        }]
    );
    assert_eq!(cancellation.inventory.len(), 1);
    assert_eq!(
        cancellation.inventory[0].0,
        inventory_stream_id(&iphone().sku)
    );
    assert!(matches!(
        &cancellation.inventory[0].1[0],
        InventoryEvent::StockReleased { order_id: ORDER, quantity, previous_available: 8, available: 10, .. }
            if quantity.get() == 2
    ));
    assert_eq!(
        cancellation.coupon,
        Some((
            COUPON,
            vec![CouponEvent::CouponRedemptionReverted {
                coupon_id: COUPON,
                code: code(),
                promotion_id: PROMOTION,
                order_id: ORDER,
                user_id: Some(USER),
                usage_count: 0,
                reverted_at: t(11),
            }]
        ))
    );
    assert_eq!(
        cancellation.promotions,
        vec![(
            PROMOTION,
            vec![PromotionEvent::PromotionUsageReverted {
                promotion_id: PROMOTION,
                order_id: ORDER,
                usage_count: 0,
                at: t(11),
            }]
        )]
    );
}

#[test]
fn a_paid_order_cancellation_requests_the_refund() {
    let mut state = after_checkout();
    let total = state.order.total_amount();
    let events = state
        .order
        .record_payment_captured(PAYMENT, total, t(10))
        .unwrap();
    apply(&mut state.order, events);
    let cancellation = cancel_order(
        &state.order,
        &inventories(&state),
        Some(&state.coupon),
        &promotions(&state),
        &BTreeMap::new(),
        reason(),
        t(11),
    )
    .unwrap();
    assert!(matches!(
        &cancellation.order[..],
        [OrderEvent::OrderCancelled { refund_requested: Some(amount), .. }] if *amount == total
    ));
}

#[test]
fn a_shipped_order_cannot_be_cancelled_and_nothing_is_given_back() {
    let mut state = after_checkout();
    for command in [
        OrderCommand::ConfirmOrder { at: t(11) },
        OrderCommand::StartProcessing { at: t(11) },
        OrderCommand::ShipOrder {
            tracking_number: TrackingNumber::parse("TH1").unwrap(),
            at: t(12),
        },
    ] {
        let events = match command {
            OrderCommand::ConfirmOrder { at } => state.order.confirm(at),
            OrderCommand::StartProcessing { at } => state.order.start_processing(at),
            OrderCommand::ShipOrder {
                tracking_number,
                at,
            } => state.order.ship(tracking_number, at),
            _ => unreachable!(),
        }
        .unwrap();
        apply(&mut state.order, events);
    }
    let result = cancel_order(
        &state.order,
        &inventories(&state),
        Some(&state.coupon),
        &promotions(&state),
        &BTreeMap::new(),
        reason(),
        t(13),
    );
    assert_eq!(
        result,
        Err(CancellationError::Order {
            error: OrderError::InvalidTransition {
                from: OrderStatus::Shipped,
                to: OrderStatus::Cancelled,
            },
        })
    );
}

#[test]
fn a_cancellation_is_not_repeated() {
    let mut state = after_checkout();
    let cancellation = cancel_order(
        &state.order,
        &inventories(&state),
        Some(&state.coupon),
        &promotions(&state),
        &BTreeMap::new(),
        reason(),
        t(11),
    )
    .unwrap();
    apply(&mut state.order, cancellation.order);
    for (_, events) in cancellation.inventory {
        apply(&mut state.inventory, events);
    }
    apply(&mut state.coupon, cancellation.coupon.unwrap().1);
    // The order refuses; each other stream would have nothing left to give back.
    assert_eq!(
        cancel_order(
            &state.order,
            &inventories(&state),
            Some(&state.coupon),
            &promotions(&state),
            &BTreeMap::new(),
            reason(),
            t(12)
        ),
        Err(CancellationError::Order {
            error: OrderError::InvalidTransition {
                from: OrderStatus::Cancelled,
                to: OrderStatus::Cancelled,
            },
        })
    );
    assert_eq!(state.inventory.release(ORDER, t(12)), Ok(vec![]));
    assert_eq!(state.coupon.revert(ORDER, t(12)), Ok(vec![]));
}

#[test]
fn every_stream_the_order_holds_must_be_loaded() {
    let state = after_checkout();
    assert_eq!(
        cancel_order(
            &state.order,
            &BTreeMap::new(),
            Some(&state.coupon),
            &promotions(&state),
            &BTreeMap::new(),
            reason(),
            t(11)
        ),
        Err(CancellationError::InventoryMissing { sku: iphone().sku })
    );
    assert_eq!(
        cancel_order(
            &state.order,
            &inventories(&state),
            None,
            &promotions(&state),
            &BTreeMap::new(),
            reason(),
            t(11)
        ),
        Err(CancellationError::CouponMissing { coupon_id: COUPON })
    );
    let other_coupon = Coupon::default();
    assert_eq!(
        cancel_order(
            &state.order,
            &inventories(&state),
            Some(&other_coupon),
            &promotions(&state),
            &BTreeMap::new(),
            reason(),
            t(11)
        ),
        Err(CancellationError::CouponMissing { coupon_id: COUPON })
    );
    assert_eq!(
        cancel_order(
            &state.order,
            &inventories(&state),
            Some(&state.coupon),
            &BTreeMap::new(),
            &BTreeMap::new(),
            reason(),
            t(11)
        ),
        Err(CancellationError::PromotionMissing {
            promotion_id: PROMOTION
        })
    );
}

#[test]
fn an_order_never_placed_cannot_be_cancelled() {
    assert_eq!(
        cancel_order(
            &Order::default(),
            &BTreeMap::new(),
            None,
            &BTreeMap::new(),
            &BTreeMap::new(),
            reason(),
            t(11)
        ),
        Err(CancellationError::Order {
            error: OrderError::NotPlaced,
        })
    );
}

#[test]
fn cancelling_gives_the_customer_their_use_back() {
    // Given a placed order whose use is recorded on the customer's stream
    let state = after_checkout();
    let user_id = state.order.user_id().unwrap();
    let mut usage = crate::promotion::CustomerUsage::default();
    let recorded = usage.record(PROMOTION, user_id, ORDER, t(10));
    apply(&mut usage, recorded);
    // When it is cancelled
    let cancellation = cancel_order(
        &state.order,
        &inventories(&state),
        Some(&state.coupon),
        &promotions(&state),
        &BTreeMap::from([(PROMOTION, &usage)]),
        reason(),
        t(11),
    )
    .unwrap();
    // Then the use goes back on that stream, in the same cancellation
    assert_eq!(
        cancellation.customer_usage,
        vec![(
            crate::promotion::customer_usage_stream_id(PROMOTION, user_id),
            vec![
                crate::promotion::CustomerUsageEvent::CustomerUsageReverted {
                    promotion_id: PROMOTION,
                    user_id,
                    order_id: ORDER,
                    uses: 0,
                    at: t(11),
                }
            ]
        )]
    );
}
