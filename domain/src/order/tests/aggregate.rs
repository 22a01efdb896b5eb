//! Given/when/then for the `Order` aggregate: every transition, every
//! forbidden one, payments, refunds and notes.

use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;
use rust_decimal_macros::dec;
use uuid::Uuid;

use super::support::*;
use crate::order::{
    Order, OrderCommand, OrderError, OrderEvent, OrderNote, OrderStatus, PaymentChange,
    PaymentStatus, TrackingNumber,
};
use crate::values::Money;

type Given = TestFramework<Order>;

fn tracking() -> TrackingNumber {
    TrackingNumber::parse("TH123456789").unwrap()
}

fn reason() -> OrderNote {
    OrderNote::parse("Customer changed their mind").unwrap()
}

#[test]
fn a_note_refuses_control_characters_but_not_lines() {
    assert!(OrderNote::parse("a\u{0}b").is_err());
    assert!(OrderNote::parse("a\u{7}b").is_err());
    assert_eq!(
        OrderNote::parse(" Gift wrap\nleave at door ")
            .unwrap()
            .as_str(),
        "Gift wrap\nleave at door"
    );
}

fn confirmed() -> OrderEvent {
    OrderEvent::OrderConfirmed {
        order_id: ORDER,
        previous_status: OrderStatus::Pending,
        status: OrderStatus::Confirmed,
        at: t(11),
    }
}

fn processing() -> OrderEvent {
    OrderEvent::OrderProcessingStarted {
        order_id: ORDER,
        previous_status: OrderStatus::Confirmed,
        status: OrderStatus::Processing,
        at: t(12),
    }
}

fn shipped() -> OrderEvent {
    OrderEvent::OrderShipped {
        order_id: ORDER,
        previous_status: OrderStatus::Processing,
        status: OrderStatus::Shipped,
        tracking_number: tracking(),
        shipped_at: t(13),
    }
}

fn delivered() -> OrderEvent {
    OrderEvent::OrderDelivered {
        order_id: ORDER,
        previous_status: OrderStatus::Shipped,
        status: OrderStatus::Delivered,
        delivered_at: t(14),
    }
}

fn cancelled(previous_status: OrderStatus, refund_requested: Option<Money>) -> OrderEvent {
    OrderEvent::OrderCancelled {
        order_id: ORDER,
        previous_status,
        status: OrderStatus::Cancelled,
        reason: reason(),
        refund_requested,
        at: t(15),
    }
}

fn captured(payment_id: Uuid, amount: Money, previous: PaymentStatus, paid: Money) -> OrderEvent {
    OrderEvent::OrderPaymentStatusChanged {
        order_id: ORDER,
        payment_id,
        refund_id: None,
        change: PaymentChange::Captured,
        amount,
        previous_payment_status: previous,
        payment_status: PaymentStatus::Paid,
        paid_amount: paid,
        refunded_amount: Money::ZERO,
        at: t(11),
    }
}

fn total() -> Money {
    money(dec!(38463))
}

fn paid() -> OrderEvent {
    captured(PAYMENT, total(), PaymentStatus::Pending, total())
}

/// The history that puts an order in `status` (refunded: delivered, then refunded).
fn history(status: OrderStatus) -> Vec<OrderEvent> {
    let mut events = vec![placed()];
    let path = [confirmed(), processing(), shipped(), delivered()];
    let steps = match status {
        OrderStatus::Pending => 0,
        OrderStatus::Confirmed => 1,
        OrderStatus::Processing => 2,
        OrderStatus::Shipped => 3,
        OrderStatus::Delivered | OrderStatus::Refunded => 4,
        OrderStatus::Cancelled => {
            events.push(cancelled(OrderStatus::Pending, None));
            return events;
        }
    };
    events.extend(path.into_iter().take(steps));
    if status == OrderStatus::Refunded {
        events.push(OrderEvent::OrderRefunded {
            order_id: ORDER,
            previous_status: OrderStatus::Delivered,
            status: OrderStatus::Refunded,
            refunded_amount: total(),
            at: t(20),
        });
    }
    events
}

const ALL: [OrderStatus; 7] = [
    OrderStatus::Pending,
    OrderStatus::Confirmed,
    OrderStatus::Processing,
    OrderStatus::Shipped,
    OrderStatus::Delivered,
    OrderStatus::Cancelled,
    OrderStatus::Refunded,
];

fn command_to(target: OrderStatus) -> OrderCommand {
    match target {
        OrderStatus::Confirmed => OrderCommand::ConfirmOrder { at: t(16) },
        OrderStatus::Processing => OrderCommand::StartProcessing { at: t(16) },
        OrderStatus::Shipped => OrderCommand::ShipOrder {
            tracking_number: tracking(),
            at: t(16),
        },
        OrderStatus::Delivered => OrderCommand::MarkDelivered { at: t(16) },
        OrderStatus::Cancelled => OrderCommand::CancelOrder {
            reason: reason(),
            at: t(16),
        },
        other => unreachable!("no command leads to {other}"),
    }
}

#[test]
fn the_fulfilment_path_carries_previous_and_new_status() {
    let expected = [
        (OrderStatus::Pending, confirmed()),
        (OrderStatus::Confirmed, processing()),
        (OrderStatus::Processing, shipped()),
        (OrderStatus::Shipped, delivered()),
    ];
    for (from, event) in expected {
        let command = match &event {
            OrderEvent::OrderConfirmed { at, .. } => OrderCommand::ConfirmOrder { at: *at },
            OrderEvent::OrderProcessingStarted { at, .. } => {
                OrderCommand::StartProcessing { at: *at }
            }
            OrderEvent::OrderShipped { shipped_at, .. } => OrderCommand::ShipOrder {
                tracking_number: tracking(),
                at: *shipped_at,
            },
            OrderEvent::OrderDelivered { delivered_at, .. } => {
                OrderCommand::MarkDelivered { at: *delivered_at }
            }
            _ => unreachable!(),
        };
        Given::with(())
            .given(history(from))
            .when(command)
            .then_expect_events(vec![event]);
    }
}

#[test]
fn every_other_transition_is_refused() {
    let targets = [
        OrderStatus::Confirmed,
        OrderStatus::Processing,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];
    let mut refused = 0;
    for from in ALL {
        for to in targets {
            if from.can_become(to) {
                continue;
            }
            refused += 1;
            Given::with(())
                .given(history(from))
                .when(command_to(to))
                .then_expect_error(OrderError::InvalidTransition { from, to });
        }
    }
    // 7 statuses x 5 targets, minus the 4 fulfilment steps and 3 cancellations.
    assert_eq!(refused, 28);
}

#[test]
fn shipping_and_delivery_record_their_dates_and_tracking_number() {
    let order = order_from(history(OrderStatus::Delivered));
    assert_eq!(order.status(), OrderStatus::Delivered);
    assert_eq!(order.tracking_number(), Some(&tracking()));
    assert_eq!(order.shipped_at(), Some(t(13)));
    assert_eq!(order.delivered_at(), Some(t(14)));
}

#[test]
fn tracking_numbers_are_1_to_100_characters() {
    assert!(TrackingNumber::parse("").is_err());
    assert!(TrackingNumber::parse("   ").is_err());
    assert!(TrackingNumber::parse(&"X".repeat(101)).is_err());
    assert_eq!(
        TrackingNumber::parse(&"X".repeat(100))
            .unwrap()
            .as_str()
            .len(),
        100
    );
    assert!(serde_json::from_str::<TrackingNumber>("\"\"").is_err());
}

#[test]
fn an_unpaid_order_is_cancelled_before_shipping_without_refund() {
    for from in [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Processing,
    ] {
        Given::with(())
            .given(history(from))
            .when(OrderCommand::CancelOrder {
                reason: reason(),
                at: t(15),
            })
            .then_expect_events(vec![cancelled(from, None)]);
    }
}

#[test]
fn a_paid_order_is_cancelled_with_the_captured_amount_to_refund() {
    Given::with(())
        .given(vec![placed(), paid()])
        .when(OrderCommand::CancelOrder {
            reason: reason(),
            at: t(15),
        })
        .then_expect_events(vec![cancelled(OrderStatus::Pending, Some(total()))]);
}

#[test]
fn what_was_already_refunded_is_not_requested_again() {
    Given::with(())
        .given(vec![
            placed(),
            paid(),
            OrderEvent::OrderPaymentStatusChanged {
                order_id: ORDER,
                payment_id: PAYMENT,
                refund_id: Some(Uuid::from_u128(1)),
                change: PaymentChange::RefundCompleted,
                amount: money(dec!(463)),
                previous_payment_status: PaymentStatus::Paid,
                payment_status: PaymentStatus::PartiallyRefunded,
                paid_amount: total(),
                refunded_amount: money(dec!(463)),
                at: t(12),
            },
        ])
        .when(OrderCommand::CancelOrder {
            reason: reason(),
            at: t(15),
        })
        .then_expect_events(vec![cancelled(
            OrderStatus::Pending,
            Some(money(dec!(38000))),
        )]);
}

#[test]
fn a_capture_makes_the_order_paid_once_per_payment() {
    Given::with(())
        .given(vec![placed()])
        .when(OrderCommand::RecordPaymentCaptured {
            payment_id: PAYMENT,
            amount: total(),
            at: t(11),
        })
        .then_expect_events(vec![paid()]);
    Given::with(())
        .given(vec![placed(), paid()])
        .when(OrderCommand::RecordPaymentCaptured {
            payment_id: PAYMENT,
            amount: total(),
            at: t(12),
        })
        .then_expect_events(vec![]);
}

#[test]
fn a_second_payment_adds_to_the_paid_amount() {
    let second = Uuid::from_u128(0x301);
    Given::with(())
        .given(vec![
            placed(),
            captured(
                PAYMENT,
                money(dec!(38000)),
                PaymentStatus::Pending,
                money(dec!(38000)),
            ),
        ])
        .when(OrderCommand::RecordPaymentCaptured {
            payment_id: second,
            amount: money(dec!(463)),
            at: t(11),
        })
        .then_expect_events(vec![captured(
            second,
            money(dec!(463)),
            PaymentStatus::Paid,
            total(),
        )]);
}

#[test]
fn zero_amounts_are_refused() {
    Given::with(())
        .given(vec![placed()])
        .when(OrderCommand::RecordPaymentCaptured {
            payment_id: PAYMENT,
            amount: Money::ZERO,
            at: t(11),
        })
        .then_expect_error(OrderError::ZeroAmount);
    Given::with(())
        .given(vec![placed(), paid()])
        .when(OrderCommand::RecordRefundCompleted {
            payment_id: PAYMENT,
            refund_id: Uuid::from_u128(1),
            amount: Money::ZERO,
            at: t(11),
        })
        .then_expect_error(OrderError::ZeroAmount);
}

fn failed(payment_id: Uuid) -> OrderEvent {
    OrderEvent::OrderPaymentStatusChanged {
        order_id: ORDER,
        payment_id,
        refund_id: None,
        change: PaymentChange::Failed,
        amount: Money::ZERO,
        previous_payment_status: PaymentStatus::Pending,
        payment_status: PaymentStatus::Failed,
        paid_amount: Money::ZERO,
        refunded_amount: Money::ZERO,
        at: t(11),
    }
}

#[test]
fn a_failed_payment_shows_only_while_nothing_is_captured() {
    Given::with(())
        .given(vec![placed()])
        .when(OrderCommand::RecordPaymentFailed {
            payment_id: PAYMENT,
            at: t(11),
        })
        .then_expect_events(vec![failed(PAYMENT)]);
    // A second failure changes nothing.
    Given::with(())
        .given(vec![placed(), failed(PAYMENT)])
        .when(OrderCommand::RecordPaymentFailed {
            payment_id: Uuid::from_u128(0x301),
            at: t(12),
        })
        .then_expect_events(vec![]);
    // Another attempt failing after a capture does not unpay the order.
    Given::with(())
        .given(vec![placed(), paid()])
        .when(OrderCommand::RecordPaymentFailed {
            payment_id: Uuid::from_u128(0x301),
            at: t(12),
        })
        .then_expect_events(vec![]);
    // The captured payment itself cannot fail afterwards.
    Given::with(())
        .given(vec![placed(), paid()])
        .when(OrderCommand::RecordPaymentFailed {
            payment_id: PAYMENT,
            at: t(12),
        })
        .then_expect_error(OrderError::PaymentAlreadyCaptured {
            payment_id: PAYMENT,
        });
}

#[test]
fn a_capture_after_a_failure_makes_the_order_paid() {
    let retry = Uuid::from_u128(0x301);
    Given::with(())
        .given(vec![placed(), failed(PAYMENT)])
        .when(OrderCommand::RecordPaymentCaptured {
            payment_id: retry,
            amount: total(),
            at: t(11),
        })
        .then_expect_events(vec![captured(
            retry,
            total(),
            PaymentStatus::Failed,
            total(),
        )]);
}

fn refund(refund_id: u128, amount: Money) -> OrderCommand {
    OrderCommand::RecordRefundCompleted {
        payment_id: PAYMENT,
        refund_id: Uuid::from_u128(refund_id),
        amount,
        at: t(20),
    }
}

fn refunded_event(
    refund_id: u128,
    amount: Money,
    previous: PaymentStatus,
    status: PaymentStatus,
    refunded: Money,
) -> OrderEvent {
    OrderEvent::OrderPaymentStatusChanged {
        order_id: ORDER,
        payment_id: PAYMENT,
        refund_id: Some(Uuid::from_u128(refund_id)),
        change: PaymentChange::RefundCompleted,
        amount,
        previous_payment_status: previous,
        payment_status: status,
        paid_amount: total(),
        refunded_amount: refunded,
        at: t(20),
    }
}

#[test]
fn a_partial_refund_is_partially_refunded_and_keeps_the_status() {
    let part = money(dec!(463));
    Given::with(())
        .given([vec![placed(), paid()], delivered_after_paid()].concat())
        .when(refund(1, part))
        .then_expect_events(vec![refunded_event(
            1,
            part,
            PaymentStatus::Paid,
            PaymentStatus::PartiallyRefunded,
            part,
        )]);
}

fn delivered_after_paid() -> Vec<OrderEvent> {
    vec![confirmed(), processing(), shipped(), delivered()]
}

#[test]
fn refunds_reaching_the_captured_amount_refund_a_delivered_order() {
    let part = money(dec!(463));
    let rest = money(dec!(38000));
    Given::with(())
        .given(
            [
                vec![placed(), paid()],
                delivered_after_paid(),
                vec![refunded_event(
                    1,
                    part,
                    PaymentStatus::Paid,
                    PaymentStatus::PartiallyRefunded,
                    part,
                )],
            ]
            .concat(),
        )
        .when(refund(2, rest))
        .then_expect_events(vec![
            refunded_event(
                2,
                rest,
                PaymentStatus::PartiallyRefunded,
                PaymentStatus::Refunded,
                total(),
            ),
            OrderEvent::OrderRefunded {
                order_id: ORDER,
                previous_status: OrderStatus::Delivered,
                status: OrderStatus::Refunded,
                refunded_amount: total(),
                at: t(20),
            },
        ]);
}

#[test]
fn a_full_refund_of_a_cancelled_order_refunds_it() {
    Given::with(())
        .given(vec![
            placed(),
            paid(),
            cancelled(OrderStatus::Pending, Some(total())),
        ])
        .when(refund(1, total()))
        .then_expect_events(vec![
            refunded_event(
                1,
                total(),
                PaymentStatus::Paid,
                PaymentStatus::Refunded,
                total(),
            ),
            OrderEvent::OrderRefunded {
                order_id: ORDER,
                previous_status: OrderStatus::Cancelled,
                status: OrderStatus::Refunded,
                refunded_amount: total(),
                at: t(20),
            },
        ]);
}

#[test]
fn a_full_refund_of_an_order_in_progress_leaves_its_status() {
    Given::with(())
        .given(vec![placed(), paid(), confirmed()])
        .when(refund(1, total()))
        .then_expect_events(vec![refunded_event(
            1,
            total(),
            PaymentStatus::Paid,
            PaymentStatus::Refunded,
            total(),
        )]);
}

#[test]
fn a_refund_cannot_exceed_what_the_payment_captured() {
    Given::with(())
        .given(vec![placed(), paid()])
        .when(refund(1, money(dec!(38463.01))))
        .then_expect_error(OrderError::RefundExceedsCaptured {
            payment_id: PAYMENT,
            amount: money(dec!(38463.01)),
            refundable: total(),
        });
    let part = money(dec!(463));
    Given::with(())
        .given(vec![
            placed(),
            paid(),
            refunded_event(
                1,
                part,
                PaymentStatus::Paid,
                PaymentStatus::PartiallyRefunded,
                part,
            ),
        ])
        .when(refund(2, total()))
        .then_expect_error(OrderError::RefundExceedsCaptured {
            payment_id: PAYMENT,
            amount: total(),
            refundable: money(dec!(38000)),
        });
}

#[test]
fn a_refund_needs_a_captured_payment_and_counts_once() {
    Given::with(())
        .given(vec![placed()])
        .when(refund(1, total()))
        .then_expect_error(OrderError::UnknownPayment {
            payment_id: PAYMENT,
        });
    let part = money(dec!(463));
    Given::with(())
        .given(vec![
            placed(),
            paid(),
            refunded_event(
                1,
                part,
                PaymentStatus::Paid,
                PaymentStatus::PartiallyRefunded,
                part,
            ),
        ])
        .when(refund(1, part))
        .then_expect_events(vec![]);
}

#[test]
fn admin_notes_accumulate_and_the_event_carries_the_full_text() {
    let first = OrderNote::parse("Called the customer").unwrap();
    let second = OrderNote::parse("  Gift wrap requested ").unwrap();
    let first_added = OrderEvent::OrderAdminNoteAdded {
        order_id: ORDER,
        note: first.clone(),
        admin_notes: "Called the customer".into(),
        at: t(11),
    };
    Given::with(())
        .given(vec![placed()])
        .when(OrderCommand::AddAdminNote {
            note: first,
            at: t(11),
        })
        .then_expect_events(vec![first_added.clone()]);
    Given::with(())
        .given(vec![placed(), first_added])
        .when(OrderCommand::AddAdminNote {
            note: second.clone(),
            at: t(12),
        })
        .then_expect_events(vec![OrderEvent::OrderAdminNoteAdded {
            order_id: ORDER,
            note: second,
            admin_notes: "Called the customer\nGift wrap requested".into(),
            at: t(12),
        }]);
    assert!(OrderNote::parse(" ").is_err());
    assert!(OrderNote::parse(&"x".repeat(OrderNote::MAX_LEN + 1)).is_err());
}

#[test]
fn nothing_happens_to_an_order_that_was_never_placed() {
    let commands = vec![
        OrderCommand::ConfirmOrder { at: t(11) },
        OrderCommand::StartProcessing { at: t(11) },
        OrderCommand::ShipOrder {
            tracking_number: tracking(),
            at: t(11),
        },
        OrderCommand::MarkDelivered { at: t(11) },
        OrderCommand::CancelOrder {
            reason: reason(),
            at: t(11),
        },
        OrderCommand::RecordPaymentCaptured {
            payment_id: PAYMENT,
            amount: total(),
            at: t(11),
        },
        OrderCommand::RecordPaymentFailed {
            payment_id: PAYMENT,
            at: t(11),
        },
        refund(1, total()),
        OrderCommand::AddAdminNote {
            note: reason(),
            at: t(11),
        },
    ];
    for command in commands {
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(OrderError::NotPlaced);
    }
}

#[test]
fn statuses_serialize_as_the_seed_check_values() {
    let statuses: Vec<String> = ALL
        .iter()
        .map(|s| {
            serde_json::to_value(s)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        statuses,
        [
            "pending",
            "confirmed",
            "processing",
            "shipped",
            "delivered",
            "cancelled",
            "refunded"
        ]
    );
    let payment: Vec<String> = [
        PaymentStatus::Pending,
        PaymentStatus::Paid,
        PaymentStatus::Failed,
        PaymentStatus::Refunded,
        PaymentStatus::PartiallyRefunded,
    ]
    .iter()
    .map(|s| {
        serde_json::to_value(s)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    })
    .collect();
    assert_eq!(
        payment,
        [
            "pending",
            "paid",
            "failed",
            "refunded",
            "partially_refunded"
        ]
    );
}

#[test]
fn events_round_trip_and_are_named_after_their_variant() {
    for event in [
        placed(),
        confirmed(),
        shipped(),
        cancelled(OrderStatus::Pending, Some(total())),
        paid(),
    ] {
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<OrderEvent>(&json).unwrap(), event);
        assert!(json.starts_with(&format!("{{\"{}\"", event.event_type())));
        assert_eq!(event.event_version(), "1");
    }
    let json = serde_json::to_value(placed()).unwrap();
    assert_eq!(json["OrderPlaced"]["total_amount"], "38463.00");
    assert_eq!(json["OrderPlaced"]["order_number"], "ORD-2024-000001");
    assert_eq!(json["OrderPlaced"]["items"][0]["product_sku"], "IPH-15-PRO");
}
