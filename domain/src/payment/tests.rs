use super::*;
use chrono::TimeZone;
use cqrs_es::test::TestFramework;
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::json;

type Given = TestFramework<Payment>;

const PAYMENT: Uuid = Uuid::from_u128(0x11);
const ORDER: Uuid = Uuid::from_u128(0x22);
const REFUND_A: Uuid = Uuid::from_u128(0xa1);
const REFUND_B: Uuid = Uuid::from_u128(0xb1);

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap()
}

fn later() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, 10, 35, 0).unwrap()
}

fn money(amount: Decimal) -> Money {
    Money::new(amount).unwrap()
}

fn total() -> Money {
    money(dec!(76826))
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn initiate() -> PaymentCommand {
    PaymentCommand::InitiatePayment {
        payment_id: PAYMENT,
        order_id: ORDER,
        order_total: total(),
        order_currency: Currency::thb(),
        amount: total(),
        currency: Currency::thb(),
        payment_method: "credit_card".into(),
        payment_provider: "omise".into(),
        transaction_id: Some("txn_0001".into()),
        has_active_payment_for_order: false,
        at: at(),
    }
}

fn initiated() -> PaymentEvent {
    PaymentEvent::PaymentInitiated {
        payment_id: PAYMENT,
        order_id: ORDER,
        amount: total(),
        currency: Currency::thb(),
        payment_method: "credit_card".into(),
        payment_provider: "omise".into(),
        transaction_id: Some("txn_0001".into()),
        status: PaymentStatus::Pending,
        created_at: at(),
    }
}

fn report(provider_transaction_id: &str, outcome: ProviderOutcome) -> PaymentCommand {
    PaymentCommand::RecordProviderResult {
        provider_transaction_id: provider_transaction_id.into(),
        outcome,
        provider_response: json!({"id": provider_transaction_id}),
        at: later(),
    }
}

/// The event a provider report produces, as `decide` must build it.
fn reported(
    provider_transaction_id: &str,
    outcome: ProviderOutcome,
    previous_status: PaymentStatus,
) -> PaymentEvent {
    let provider_transaction_id = provider_transaction_id.to_owned();
    let provider_response = json!({"id": provider_transaction_id});
    let status = outcome.status();
    let (payment_id, order_id, amount, currency, processed_at) =
        (PAYMENT, ORDER, total(), Currency::thb(), later());
    match outcome {
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
            processed_at,
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
            processed_at,
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
            processed_at,
        },
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
            processed_at,
        },
    }
}

fn completed() -> Vec<PaymentEvent> {
    vec![
        initiated(),
        reported("prov_1", ProviderOutcome::Completed, PaymentStatus::Pending),
    ]
}

fn refund(refund_id: Uuid, amount: Decimal) -> PaymentCommand {
    PaymentCommand::RefundPayment {
        refund_id,
        amount: money(amount),
        reason: Some("  damaged on arrival ".into()),
        at: later(),
    }
}

fn refund_requested(refund_id: Uuid, amount: Decimal, refundable_after: Decimal) -> PaymentEvent {
    PaymentEvent::RefundRequested {
        payment_id: PAYMENT,
        order_id: ORDER,
        refund_id,
        amount: money(amount),
        currency: Currency::thb(),
        reason: Some("damaged on arrival".into()),
        status: RefundStatus::Pending,
        refundable_after: money(refundable_after),
        created_at: later(),
    }
}

fn refund_result(refund_id: Uuid, outcome: RefundOutcome) -> PaymentCommand {
    PaymentCommand::RecordRefundResult {
        refund_id,
        outcome,
        provider_refund_id: Some("rfnd_1".into()),
        at: later(),
    }
}

fn refund_completed(
    refund_id: Uuid,
    amount: Decimal,
    refunded_total: Decimal,
    fully: bool,
) -> PaymentEvent {
    PaymentEvent::RefundCompleted {
        payment_id: PAYMENT,
        order_id: ORDER,
        refund_id,
        amount: money(amount),
        currency: Currency::thb(),
        provider_refund_id: Some("rfnd_1".into()),
        previous_status: RefundStatus::Pending,
        status: RefundStatus::Completed,
        refunded_total: money(refunded_total),
        previous_payment_status: PaymentStatus::Completed,
        payment_status: if fully {
            PaymentStatus::Refunded
        } else {
            PaymentStatus::Completed
        },
        order_payment_status: if fully {
            OrderPaymentStatus::Refunded
        } else {
            OrderPaymentStatus::PartiallyRefunded
        },
        processed_at: later(),
    }
}

fn refund_failed(refund_id: Uuid, amount: Decimal, refundable_after: Decimal) -> PaymentEvent {
    PaymentEvent::RefundFailed {
        payment_id: PAYMENT,
        order_id: ORDER,
        refund_id,
        amount: money(amount),
        currency: Currency::thb(),
        provider_refund_id: Some("rfnd_1".into()),
        previous_status: RefundStatus::Pending,
        status: RefundStatus::Failed,
        refundable_after: money(refundable_after),
        processed_at: later(),
    }
}

/// Events that bring a payment to `status`.
fn history_to(status: PaymentStatus) -> Vec<PaymentEvent> {
    let mut events = vec![initiated()];
    let via = |outcome| reported("prov_0", outcome, PaymentStatus::Pending);
    match status {
        PaymentStatus::Pending => {}
        PaymentStatus::Processing => events.push(via(ProviderOutcome::Processing)),
        PaymentStatus::Completed => events.push(via(ProviderOutcome::Completed)),
        PaymentStatus::Failed => events.push(via(ProviderOutcome::Failed)),
        PaymentStatus::Cancelled => events.push(via(ProviderOutcome::Cancelled)),
        PaymentStatus::Refunded => {
            events.push(via(ProviderOutcome::Completed));
            events.push(refund_requested(REFUND_A, dec!(76826), dec!(0)));
            events.push(refund_completed(REFUND_A, dec!(76826), dec!(76826), true));
        }
    }
    events
}

fn state(events: Vec<PaymentEvent>) -> Payment {
    let mut payment = Payment::default();
    for event in events {
        payment.apply(event);
    }
    payment
}

// ---- InitiatePayment -------------------------------------------------------

#[test]
fn a_payment_for_the_order_total_is_initiated_pending() {
    Given::with(())
        .given_no_previous_events()
        .when(initiate())
        .then_expect_events(vec![initiated()]);
}

#[test]
fn the_amount_must_equal_the_order_total() {
    let mut command = initiate();
    if let PaymentCommand::InitiatePayment { amount, .. } = &mut command {
        *amount = money(dec!(76825.99));
    }
    Given::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(PaymentError::AmountMismatch {
            expected: total(),
            actual: money(dec!(76825.99)),
        });
}

#[test]
fn the_currency_must_match_the_order_currency() {
    let mut command = initiate();
    if let PaymentCommand::InitiatePayment { currency, .. } = &mut command {
        *currency = usd();
    }
    Given::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(PaymentError::CurrencyMismatch {
            expected: Currency::thb(),
            actual: usd(),
        });
}

#[test]
fn an_order_with_an_active_payment_refuses_another() {
    let mut command = initiate();
    if let PaymentCommand::InitiatePayment {
        has_active_payment_for_order,
        ..
    } = &mut command
    {
        *has_active_payment_for_order = true;
    }
    Given::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(PaymentError::ActivePaymentExists { order_id: ORDER });
}

#[test]
fn only_pending_processing_and_completed_payments_are_active() {
    let active: Vec<_> = PaymentStatus::ALL
        .into_iter()
        .filter(PaymentStatus::is_active)
        .collect();
    assert_eq!(
        active,
        vec![
            PaymentStatus::Pending,
            PaymentStatus::Processing,
            PaymentStatus::Completed
        ]
    );
}

#[test]
fn a_payment_is_initiated_once() {
    Given::with(())
        .given(vec![initiated()])
        .when(initiate())
        .then_expect_error(PaymentError::AlreadyInitiated {
            payment_id: PAYMENT,
        });
}

#[test]
fn method_provider_and_transaction_id_are_bounded() {
    type Edit = Box<dyn Fn(&mut PaymentCommand)>;
    let cases: Vec<(&'static str, Edit, String, usize)> = vec![
        (
            "payment_method",
            Box::new(|c| {
                if let PaymentCommand::InitiatePayment { payment_method, .. } = c {
                    *payment_method = "m".repeat(51)
                }
            }),
            "m".repeat(51),
            50,
        ),
        (
            "payment_method",
            Box::new(|c| {
                if let PaymentCommand::InitiatePayment { payment_method, .. } = c {
                    *payment_method = " ".into()
                }
            }),
            " ".into(),
            50,
        ),
        (
            "payment_provider",
            Box::new(|c| {
                if let PaymentCommand::InitiatePayment {
                    payment_provider, ..
                } = c
                {
                    *payment_provider = String::new()
                }
            }),
            String::new(),
            50,
        ),
        (
            "transaction_id",
            Box::new(|c| {
                if let PaymentCommand::InitiatePayment { transaction_id, .. } = c {
                    *transaction_id = Some("t".repeat(256))
                }
            }),
            "t".repeat(256),
            255,
        ),
    ];
    for (field, edit, value, max) in cases {
        let mut command = initiate();
        edit(&mut command);
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(PaymentError::InvalidValue(crate::values::length_error(
                field, &value, max,
            )));
    }
}

#[test]
fn fifty_character_method_and_provider_are_accepted() {
    let mut command = initiate();
    if let PaymentCommand::InitiatePayment {
        payment_method,
        payment_provider,
        transaction_id,
        ..
    } = &mut command
    {
        *payment_method = "m".repeat(50);
        *payment_provider = "p".repeat(50);
        *transaction_id = None;
    }
    let events = Given::with(())
        .given_no_previous_events()
        .when(command)
        .inspect_result()
        .unwrap();
    let PaymentEvent::PaymentInitiated {
        payment_method,
        payment_provider,
        transaction_id,
        ..
    } = &events[0]
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        (payment_method.len(), payment_provider.len(), transaction_id),
        (50, 50, &None)
    );
}

#[test]
fn nothing_but_initiation_is_accepted_before_initiation() {
    for command in [
        report("prov_1", ProviderOutcome::Completed),
        refund(REFUND_A, dec!(1)),
        refund_result(REFUND_A, RefundOutcome::Completed),
    ] {
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(PaymentError::NotInitiated);
    }
}

// ---- RecordProviderResult --------------------------------------------------

#[test]
fn provider_transitions_table_over_every_status_and_outcome() {
    use PaymentStatus as S;
    let allowed = |from: S, to: S| {
        matches!(
            (from, to),
            (
                S::Pending,
                S::Processing | S::Completed | S::Failed | S::Cancelled
            ) | (S::Processing, S::Completed | S::Failed | S::Cancelled)
        )
    };
    let mut checked = 0;
    for from in PaymentStatus::ALL {
        for outcome in ProviderOutcome::ALL {
            let to = outcome.status();
            let result = Given::with(())
                .given(history_to(from))
                .when(report("prov_new", outcome));
            if allowed(from, to) {
                result.then_expect_events(vec![reported("prov_new", outcome, from)]);
            } else {
                result.then_expect_error(PaymentError::InvalidTransition { from, to });
            }
            assert_eq!(from.accepts(outcome), allowed(from, to), "{from} -> {to}");
            checked += 1;
        }
    }
    assert_eq!(checked, 24);
}

#[test]
fn processing_then_completed_records_both_statuses() {
    Given::with(())
        .given(vec![
            initiated(),
            reported(
                "prov_1",
                ProviderOutcome::Processing,
                PaymentStatus::Pending,
            ),
        ])
        .when(report("prov_2", ProviderOutcome::Completed))
        .then_expect_events(vec![reported(
            "prov_2",
            ProviderOutcome::Completed,
            PaymentStatus::Processing,
        )]);
}

#[test]
fn a_replayed_provider_report_changes_nothing() {
    Given::with(())
        .given(completed())
        .when(report("prov_1", ProviderOutcome::Completed))
        .then_expect_events(vec![]);
}

#[test]
fn a_replayed_early_report_after_later_ones_changes_nothing() {
    // The provider retries its `processing` callback after `completed` arrived.
    Given::with(())
        .given(vec![
            initiated(),
            reported(
                "prov_1",
                ProviderOutcome::Processing,
                PaymentStatus::Pending,
            ),
            reported(
                "prov_2",
                ProviderOutcome::Completed,
                PaymentStatus::Processing,
            ),
        ])
        .when(report("prov_1", ProviderOutcome::Processing))
        .then_expect_events(vec![]);
}

#[test]
fn the_same_provider_transaction_with_another_outcome_is_refused() {
    for (given, outcome) in [
        (completed(), ProviderOutcome::Failed),
        (
            vec![
                initiated(),
                reported(
                    "prov_1",
                    ProviderOutcome::Processing,
                    PaymentStatus::Pending,
                ),
                reported(
                    "prov_1",
                    ProviderOutcome::Completed,
                    PaymentStatus::Processing,
                ),
            ],
            ProviderOutcome::Failed,
        ),
    ] {
        let recorded = ProviderOutcome::Completed;
        Given::with(())
            .given(given)
            .when(report("prov_1", outcome))
            .then_expect_error(PaymentError::ProviderResultConflict {
                provider_transaction_id: "prov_1".into(),
                recorded,
                reported: outcome,
            });
    }
}

#[test]
fn one_provider_transaction_moves_forward_under_its_id() {
    // Given an intent that needed the customer's action
    let given = vec![
        initiated(),
        reported(
            "prov_1",
            ProviderOutcome::Processing,
            PaymentStatus::Pending,
        ),
    ];
    // When the same transaction then succeeds, it completes
    let events = Given::with(())
        .given(given.clone())
        .when(report("prov_1", ProviderOutcome::Completed))
        .inspect_result()
        .unwrap();
    assert!(matches!(
        events[..],
        [PaymentEvent::PaymentCompleted { .. }]
    ));
    // And its earlier report, replayed after that, changes nothing
    let mut after = given;
    after.extend(events);
    Given::with(())
        .given(after)
        .when(report("prov_1", ProviderOutcome::Processing))
        .then_expect_events(vec![]);
}

#[test]
fn a_provider_transaction_id_is_bounded() {
    Given::with(())
        .given(vec![initiated()])
        .when(report("", ProviderOutcome::Completed))
        .then_expect_error(PaymentError::InvalidValue(crate::values::length_error(
            "provider_transaction_id",
            "",
            255,
        )));
}

// ---- RefundPayment ---------------------------------------------------------

#[test]
fn a_refund_reason_refuses_control_characters_but_not_lines() {
    for (reason, ok) in [
        ("a\u{0}b", false),
        ("a\u{7}b", false),
        ("damaged\nbox", true),
    ] {
        let result = Given::with(())
            .given(completed())
            .when(PaymentCommand::RefundPayment {
                refund_id: REFUND_A,
                amount: money(dec!(826)),
                reason: Some(reason.into()),
                at: later(),
            })
            .inspect_result();
        assert_eq!(result.is_ok(), ok, "{reason:?}: {result:?}");
    }
}

#[test]
fn a_completed_payment_is_refunded_in_part() {
    Given::with(())
        .given(completed())
        .when(refund(REFUND_A, dec!(826)))
        .then_expect_events(vec![refund_requested(REFUND_A, dec!(826), dec!(76000))]);
}

#[test]
fn a_blank_reason_is_dropped() {
    let events = Given::with(())
        .given(completed())
        .when(PaymentCommand::RefundPayment {
            refund_id: REFUND_A,
            amount: money(dec!(1)),
            reason: Some("   ".into()),
            at: later(),
        })
        .inspect_result()
        .unwrap();
    assert!(matches!(
        &events[..],
        [PaymentEvent::RefundRequested { reason: None, .. }]
    ));
}

#[test]
fn only_completed_payments_can_be_refunded() {
    for status in PaymentStatus::ALL {
        let result = Given::with(())
            .given(history_to(status))
            .when(refund(REFUND_B, dec!(1)));
        if status == PaymentStatus::Completed {
            result.then_expect_events(vec![refund_requested(REFUND_B, dec!(1), dec!(76825))]);
        } else {
            result.then_expect_error(PaymentError::NotRefundable { status });
        }
    }
}

#[test]
fn a_refund_must_be_above_zero() {
    Given::with(())
        .given(completed())
        .when(refund(REFUND_A, dec!(0)))
        .then_expect_error(PaymentError::InvalidRefundAmount {
            amount: Money::ZERO,
        });
}

#[test]
fn a_refund_cannot_exceed_the_capture() {
    Given::with(())
        .given(completed())
        .when(refund(REFUND_A, dec!(76826.01)))
        .then_expect_error(PaymentError::RefundExceedsCaptured {
            requested: money(dec!(76826.01)),
            refundable: total(),
        });
}

#[test]
fn pending_refunds_hold_their_amount() {
    let mut given = completed();
    given.push(refund_requested(REFUND_A, dec!(76000), dec!(826)));
    Given::with(())
        .given(given)
        .when(refund(REFUND_B, dec!(826.01)))
        .then_expect_error(PaymentError::RefundExceedsCaptured {
            requested: money(dec!(826.01)),
            refundable: money(dec!(826)),
        });
}

#[test]
fn completed_refunds_hold_their_amount_and_the_rest_can_be_refunded() {
    let mut given = completed();
    given.push(refund_requested(REFUND_A, dec!(76000), dec!(826)));
    given.push(refund_completed(REFUND_A, dec!(76000), dec!(76000), false));
    Given::with(())
        .given(given.clone())
        .when(refund(REFUND_B, dec!(826.01)))
        .then_expect_error(PaymentError::RefundExceedsCaptured {
            requested: money(dec!(826.01)),
            refundable: money(dec!(826)),
        });
    Given::with(())
        .given(given)
        .when(refund(REFUND_B, dec!(826)))
        .then_expect_events(vec![refund_requested(REFUND_B, dec!(826), dec!(0))]);
}

#[test]
fn a_retried_refund_request_changes_nothing() {
    let mut given = completed();
    given.push(refund_requested(REFUND_A, dec!(500), dec!(76326)));
    Given::with(())
        .given(given)
        .when(refund(REFUND_A, dec!(500)))
        .then_expect_events(vec![]);
}

#[test]
fn a_refund_id_cannot_be_reused_for_another_amount() {
    let mut given = completed();
    given.push(refund_requested(REFUND_A, dec!(500), dec!(76326)));
    Given::with(())
        .given(given)
        .when(refund(REFUND_A, dec!(600)))
        .then_expect_error(PaymentError::DuplicateRefund {
            refund_id: REFUND_A,
            amount: money(dec!(500)),
        });
}

// ---- RecordRefundResult ----------------------------------------------------

#[test]
fn a_partial_refund_completes_and_leaves_the_payment_completed() {
    let mut given = completed();
    given.push(refund_requested(REFUND_A, dec!(826), dec!(76000)));
    Given::with(())
        .given(given)
        .when(refund_result(REFUND_A, RefundOutcome::Completed))
        .then_expect_events(vec![refund_completed(
            REFUND_A,
            dec!(826),
            dec!(826),
            false,
        )]);
}

#[test]
fn the_refund_that_exhausts_the_capture_marks_the_payment_refunded() {
    let mut given = completed();
    given.push(refund_requested(REFUND_A, dec!(76000), dec!(826)));
    given.push(refund_completed(REFUND_A, dec!(76000), dec!(76000), false));
    given.push(refund_requested(REFUND_B, dec!(826), dec!(0)));
    Given::with(())
        .given(given)
        .when(refund_result(REFUND_B, RefundOutcome::Completed))
        .then_expect_events(vec![refund_completed(
            REFUND_B,
            dec!(826),
            dec!(76826),
            true,
        )]);
}

#[test]
fn a_fully_refunded_payment_is_refunded_with_refunded_total_equal_to_capture() {
    let payment = state(history_to(PaymentStatus::Refunded));
    assert_eq!(payment.status(), PaymentStatus::Refunded);
    assert_eq!(payment.refunded_total(), total());
    assert_eq!(payment.captured(), total());
    assert_eq!(payment.refundable(), Money::ZERO);
}

#[test]
fn a_failed_refund_frees_its_amount() {
    let mut given = completed();
    given.push(refund_requested(REFUND_A, dec!(76826), dec!(0)));
    Given::with(())
        .given(given.clone())
        .when(refund_result(REFUND_A, RefundOutcome::Failed))
        .then_expect_events(vec![refund_failed(REFUND_A, dec!(76826), dec!(76826))]);
    given.push(refund_failed(REFUND_A, dec!(76826), dec!(76826)));
    Given::with(())
        .given(given)
        .when(refund(REFUND_B, dec!(76826)))
        .then_expect_events(vec![refund_requested(REFUND_B, dec!(76826), dec!(0))]);
}

#[test]
fn a_result_for_an_unknown_refund_is_refused() {
    Given::with(())
        .given(completed())
        .when(refund_result(REFUND_B, RefundOutcome::Completed))
        .then_expect_error(PaymentError::UnknownRefund {
            refund_id: REFUND_B,
        });
}

#[test]
fn recording_a_refund_result_twice_changes_nothing() {
    let mut done = completed();
    done.push(refund_requested(REFUND_A, dec!(826), dec!(76000)));
    let mut failed = done.clone();
    done.push(refund_completed(REFUND_A, dec!(826), dec!(826), false));
    failed.push(refund_failed(REFUND_A, dec!(826), dec!(76826)));
    Given::with(())
        .given(done)
        .when(refund_result(REFUND_A, RefundOutcome::Completed))
        .then_expect_events(vec![]);
    Given::with(())
        .given(failed)
        .when(refund_result(REFUND_A, RefundOutcome::Failed))
        .then_expect_events(vec![]);
}

#[test]
fn a_settled_refund_cannot_change_its_outcome() {
    let mut done = completed();
    done.push(refund_requested(REFUND_A, dec!(826), dec!(76000)));
    let mut failed = done.clone();
    done.push(refund_completed(REFUND_A, dec!(826), dec!(826), false));
    failed.push(refund_failed(REFUND_A, dec!(826), dec!(76826)));
    Given::with(())
        .given(done)
        .when(refund_result(REFUND_A, RefundOutcome::Failed))
        .then_expect_error(PaymentError::RefundAlreadySettled {
            refund_id: REFUND_A,
            status: RefundStatus::Completed,
            reported: RefundOutcome::Failed,
        });
    Given::with(())
        .given(failed)
        .when(refund_result(REFUND_A, RefundOutcome::Completed))
        .then_expect_error(PaymentError::RefundAlreadySettled {
            refund_id: REFUND_A,
            status: RefundStatus::Failed,
            reported: RefundOutcome::Completed,
        });
}

// ---- serialization ---------------------------------------------------------

#[test]
fn statuses_serialize_as_the_seed_check_values() {
    let names: Vec<String> = PaymentStatus::ALL
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
        names,
        [
            "pending",
            "processing",
            "completed",
            "failed",
            "cancelled",
            "refunded"
        ]
    );
    assert_eq!(
        serde_json::to_value(OrderPaymentStatus::PartiallyRefunded).unwrap(),
        json!("partially_refunded")
    );
    assert_eq!(
        serde_json::to_value(RefundStatus::Failed).unwrap(),
        json!("failed")
    );
}

#[test]
fn events_round_trip_and_name_themselves_by_variant() {
    let events = vec![
        initiated(),
        reported("p", ProviderOutcome::Processing, PaymentStatus::Pending),
        reported("p", ProviderOutcome::Completed, PaymentStatus::Pending),
        reported("p", ProviderOutcome::Failed, PaymentStatus::Pending),
        reported("p", ProviderOutcome::Cancelled, PaymentStatus::Pending),
        refund_requested(REFUND_A, dec!(1), dec!(2)),
        refund_completed(REFUND_A, dec!(1), dec!(1), false),
        refund_failed(REFUND_A, dec!(1), dec!(2)),
    ];
    let names: Vec<String> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        names,
        [
            "PaymentInitiated",
            "PaymentProcessingStarted",
            "PaymentCompleted",
            "PaymentFailed",
            "PaymentCancelled",
            "RefundRequested",
            "RefundCompleted",
            "RefundFailed"
        ]
    );
    for event in events {
        let value = serde_json::to_value(&event).unwrap();
        assert!(value.get(event.event_type()).is_some(), "{value}");
        assert_eq!(
            serde_json::from_value::<PaymentEvent>(value).unwrap(),
            event
        );
        assert_eq!(event.event_version(), "1");
    }
}

// ---- property: refunds never exceed the capture ---------------------------

#[derive(Debug, Clone)]
enum Step {
    Request { refund: usize, cents: i64 },
    Result { refund: usize, completed: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0..6usize,
            prop_oneof![3 => 0..2_600_000i64, 1 => 0..8_000_000i64]
        )
            .prop_map(|(refund, cents)| Step::Request { refund, cents }),
        (0..6usize, any::<bool>())
            .prop_map(|(refund, completed)| Step::Result { refund, completed }),
    ]
}

proptest! {
    #[test]
    fn refunds_never_exceed_what_was_captured(steps in proptest::collection::vec(step(), 1..40)) {
        let mut payment = state(completed());
        let captured = payment.captured();
        let ids: Vec<Uuid> = (0..6).map(|i| Uuid::from_u128(0x1000 + i)).collect();
        for step in steps {
            let command = match step {
                Step::Request { refund, cents } => PaymentCommand::RefundPayment {
                    refund_id: ids[refund],
                    amount: money(Decimal::new(cents, 2)),
                    reason: None,
                    at: later(),
                },
                Step::Result { refund, completed } => PaymentCommand::RecordRefundResult {
                    refund_id: ids[refund],
                    outcome: if completed { RefundOutcome::Completed } else { RefundOutcome::Failed },
                    provider_refund_id: None,
                    at: later(),
                },
            };
            let before = payment.clone();
            match payment.decide(command.clone()) {
                Ok(events) => {
                    for event in events {
                        payment.apply(event);
                    }
                }
                Err(error) => {
                    // A refused request is refused for a reason the state shows.
                    if let (PaymentCommand::RefundPayment { amount, .. }, PaymentError::RefundExceedsCaptured { requested, refundable }) = (&command, &error) {
                        prop_assert_eq!(requested, amount);
                        prop_assert_eq!(*refundable, before.refundable());
                        prop_assert!(*amount > before.refundable());
                    }
                }
            }
            let held = Money::sum(payment.refunds().iter().filter(|r| r.status.holds_amount()).map(|r| r.amount)).unwrap();
            prop_assert!(held <= captured, "held {} > captured {}", held, captured);
            prop_assert!(payment.refunded_total() <= captured);
            prop_assert_eq!(payment.refundable(), captured.saturating_sub(held));
            prop_assert_eq!(
                payment.status() == PaymentStatus::Refunded,
                payment.refunded_total() == captured
            );
        }
    }

    #[test]
    fn a_request_within_the_refundable_amount_is_always_accepted(cents in 1i64..=7_682_600) {
        let payment = state(completed());
        let events = payment.decide(PaymentCommand::RefundPayment {
            refund_id: REFUND_A,
            amount: money(Decimal::new(cents, 2)),
            reason: None,
            at: later(),
        }).unwrap();
        prop_assert_eq!(events.len(), 1);
    }
}
