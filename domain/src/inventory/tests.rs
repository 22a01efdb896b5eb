//! Given/when/then tests of the inventory rules, and properties over random
//! reserve/release/adjust sequences.

use super::*;
use chrono::TimeZone;
use cqrs_es::test::TestFramework;
use proptest::prelude::*;

type Given = TestFramework<Inventory>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap()
}

fn sku() -> Sku {
    Sku::parse("IPH15-256-BLK").unwrap()
}

fn product_id() -> Uuid {
    Uuid::from_u128(0x0001)
}

fn variant_id() -> Option<Uuid> {
    Some(Uuid::from_u128(0x0002))
}

fn qty(n: i64) -> Quantity {
    Quantity::new(n).unwrap()
}

fn initialized(quantity: i32, threshold: i32, tracked: bool) -> InventoryEvent {
    InventoryEvent::StockInitialized {
        sku: sku(),
        product_id: product_id(),
        variant_id: variant_id(),
        quantity,
        low_stock_threshold: threshold,
        track_inventory: tracked,
        at: at(),
    }
}

/// Tracked, threshold 5.
fn stocked(quantity: i32) -> InventoryEvent {
    initialized(quantity, 5, true)
}

fn initialize(quantity: i32, threshold: i32) -> InventoryCommand {
    InventoryCommand::InitializeStock {
        sku: sku(),
        product_id: product_id(),
        variant_id: variant_id(),
        quantity,
        low_stock_threshold: threshold,
        track_inventory: true,
        at: at(),
    }
}

fn adjust(delta: i32) -> InventoryCommand {
    InventoryCommand::AdjustStock {
        delta,
        reason: StockAdjustmentReason::Correction,
        note: Some("cycle count".into()),
        at: at(),
    }
}

#[test]
fn an_adjustment_note_refuses_control_characters_but_not_lines() {
    for (note, ok) in [
        ("a\u{0}b", false),
        ("a\u{7}b", false),
        ("counted\ntwice", true),
    ] {
        let result = Given::with(())
            .given(vec![stocked(10)])
            .when(InventoryCommand::AdjustStock {
                delta: 1,
                reason: StockAdjustmentReason::Correction,
                note: Some(note.into()),
                at: at(),
            })
            .inspect_result();
        assert_eq!(result.is_ok(), ok, "{note:?}: {result:?}");
    }
}

fn adjusted(delta: i32, previous: i64, available: i64) -> InventoryEvent {
    InventoryEvent::StockAdjusted {
        sku: sku(),
        product_id: product_id(),
        variant_id: variant_id(),
        delta,
        reason: StockAdjustmentReason::Correction,
        note: Some("cycle count".into()),
        previous_available: previous,
        available,
        at: at(),
    }
}

fn reserve(order_id: Uuid, n: i64) -> InventoryCommand {
    InventoryCommand::ReserveStock {
        order_id,
        quantity: qty(n),
        at: at(),
    }
}

fn reserved(order_id: Uuid, n: i64, previous: i64, available: i64) -> InventoryEvent {
    InventoryEvent::StockReserved {
        sku: sku(),
        product_id: product_id(),
        variant_id: variant_id(),
        order_id,
        quantity: qty(n),
        previous_available: previous,
        available,
        at: at(),
    }
}

fn release(order_id: Uuid) -> InventoryCommand {
    InventoryCommand::ReleaseStock { order_id, at: at() }
}

fn released(order_id: Uuid, n: i64, previous: i64, available: i64) -> InventoryEvent {
    InventoryEvent::StockReleased {
        sku: sku(),
        product_id: product_id(),
        variant_id: variant_id(),
        order_id,
        quantity: qty(n),
        previous_available: previous,
        available,
        at: at(),
    }
}

fn tracking(track_inventory: bool) -> InventoryEvent {
    InventoryEvent::InventoryTrackingChanged {
        sku: sku(),
        product_id: product_id(),
        variant_id: variant_id(),
        track_inventory,
        at: at(),
    }
}

fn low(available: i64, threshold: i32) -> InventoryEvent {
    InventoryEvent::LowStockReached {
        sku: sku(),
        product_id: product_id(),
        variant_id: variant_id(),
        available,
        threshold,
        at: at(),
    }
}

fn out() -> InventoryEvent {
    InventoryEvent::OutOfStock {
        sku: sku(),
        product_id: product_id(),
        variant_id: variant_id(),
        at: at(),
    }
}

fn back(available: i64) -> InventoryEvent {
    InventoryEvent::BackInStock {
        sku: sku(),
        product_id: product_id(),
        variant_id: variant_id(),
        available,
        at: at(),
    }
}

fn insufficient(requested: u32, available: i64) -> InventoryError {
    InventoryError::InsufficientStock {
        sku: sku(),
        requested,
        available,
    }
}

fn state(events: Vec<InventoryEvent>) -> Inventory {
    let mut inventory = Inventory::default();
    for event in events {
        inventory.apply(event);
    }
    inventory
}

// ---------------------------------------------------------------- initialize

#[test]
fn stock_is_initialized_with_its_level_threshold_and_tracking() {
    Given::with(())
        .given_no_previous_events()
        .when(initialize(45, 5))
        .then_expect_events(vec![stocked(45)]);
}

#[test]
fn an_empty_stock_may_be_initialized_without_an_out_of_stock_alert() {
    Given::with(())
        .given_no_previous_events()
        .when(initialize(0, 5))
        .then_expect_events(vec![stocked(0)]);
}

#[test]
fn stock_cannot_be_initialized_twice() {
    Given::with(())
        .given(vec![stocked(45)])
        .when(initialize(10, 5))
        .then_expect_error(InventoryError::AlreadyInitialized { sku: sku() });
}

#[test]
fn a_negative_initial_quantity_is_refused() {
    Given::with(())
        .given_no_previous_events()
        .when(initialize(-1, 5))
        .then_expect_error(InventoryError::NegativeQuantity { quantity: -1 });
}

#[test]
fn a_negative_initial_threshold_is_refused() {
    Given::with(())
        .given_no_previous_events()
        .when(initialize(10, -1))
        .then_expect_error(InventoryError::NegativeThreshold { threshold: -1 });
}

#[test]
fn every_other_command_needs_initialized_stock() {
    let order = Uuid::new_v4();
    for command in [
        adjust(5),
        InventoryCommand::SetLowStockThreshold {
            threshold: 3,
            at: at(),
        },
        InventoryCommand::SetTrackInventory {
            track_inventory: false,
            at: at(),
        },
        reserve(order, 1),
        release(order),
    ] {
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(InventoryError::NotInitialized);
    }
}

// ---------------------------------------------------------------- adjust

#[test]
fn a_restock_raises_the_level() {
    Given::with(())
        .given(vec![stocked(45)])
        .when(InventoryCommand::AdjustStock {
            delta: 10,
            reason: StockAdjustmentReason::Restock,
            note: None,
            at: at(),
        })
        .then_expect_events(vec![InventoryEvent::StockAdjusted {
            sku: sku(),
            product_id: product_id(),
            variant_id: variant_id(),
            delta: 10,
            reason: StockAdjustmentReason::Restock,
            note: None,
            previous_available: 45,
            available: 55,
            at: at(),
        }]);
}

#[test]
fn a_zero_adjustment_is_refused() {
    Given::with(())
        .given(vec![stocked(45)])
        .when(adjust(0))
        .then_expect_error(InventoryError::ZeroAdjustment { sku: sku() });
}

#[test]
fn removing_more_than_is_available_is_refused() {
    Given::with(())
        .given(vec![stocked(3)])
        .when(adjust(-4))
        .then_expect_error(insufficient(4, 3));
}

#[test]
fn removing_more_than_is_available_is_refused_even_when_untracked() {
    Given::with(())
        .given(vec![initialized(3, 5, false)])
        .when(adjust(-4))
        .then_expect_error(insufficient(4, 3));
}

#[test]
fn the_most_negative_delta_is_reported_without_overflow() {
    Given::with(())
        .given(vec![stocked(3)])
        .when(adjust(i32::MIN))
        .then_expect_error(insufficient(2_147_483_648, 3));
}

#[test]
fn removing_everything_that_is_available_is_allowed_and_goes_out_of_stock() {
    Given::with(())
        .given(vec![stocked(3)])
        .when(adjust(-3))
        .then_expect_events(vec![adjusted(-3, 3, 0), out()]);
}

#[test]
fn on_hand_stock_including_reservations_stays_within_the_column() {
    let order = Uuid::new_v4();
    let max = i32::MAX;
    // Available max - 10 plus the 10 that order holds is exactly the ceiling.
    Given::with(())
        .given(vec![
            initialized(max, 5, true),
            reserved(order, 10, MAX_STOCK, MAX_STOCK - 10),
        ])
        .when(adjust(1))
        .then_expect_error(InventoryError::StockLimitExceeded {
            sku: sku(),
            on_hand: MAX_STOCK + 1,
            max: MAX_STOCK,
        });
}

// ---------------------------------------------------------------- alerts

#[test]
fn falling_to_the_threshold_reaches_low_stock() {
    Given::with(())
        .given(vec![stocked(10)])
        .when(adjust(-5))
        .then_expect_events(vec![adjusted(-5, 10, 5), low(5, 5)]);
}

#[test]
fn staying_below_the_threshold_raises_no_second_low_stock_alert() {
    Given::with(())
        .given(vec![stocked(5)])
        .when(adjust(-1))
        .then_expect_events(vec![adjusted(-1, 5, 4)]);
}

#[test]
fn falling_from_above_the_threshold_to_zero_is_out_of_stock_only() {
    Given::with(())
        .given(vec![stocked(10)])
        .when(adjust(-10))
        .then_expect_events(vec![adjusted(-10, 10, 0), out()]);
}

#[test]
fn rising_from_zero_into_the_low_band_is_back_in_stock_only() {
    Given::with(())
        .given(vec![stocked(0)])
        .when(adjust(3))
        .then_expect_events(vec![adjusted(3, 0, 3), back(3)]);
}

#[test]
fn rising_from_zero_above_the_threshold_is_back_in_stock() {
    Given::with(())
        .given(vec![stocked(0)])
        .when(adjust(20))
        .then_expect_events(vec![adjusted(20, 0, 20), back(20)]);
}

#[test]
fn rising_out_of_the_low_band_raises_nothing() {
    Given::with(())
        .given(vec![stocked(3)])
        .when(adjust(7))
        .then_expect_events(vec![adjusted(7, 3, 10)]);
}

#[test]
fn staying_above_the_threshold_raises_nothing() {
    Given::with(())
        .given(vec![stocked(10)])
        .when(adjust(-4))
        .then_expect_events(vec![adjusted(-4, 10, 6)]);
}

#[test]
fn an_untracked_inventory_raises_no_alerts() {
    Given::with(())
        .given(vec![initialized(10, 5, false)])
        .when(adjust(-10))
        .then_expect_events(vec![adjusted(-10, 10, 0)]);
    Given::with(())
        .given(vec![initialized(0, 5, false)])
        .when(adjust(3))
        .then_expect_events(vec![adjusted(3, 0, 3)]);
}

#[test]
fn a_zero_threshold_never_reports_low_stock() {
    Given::with(())
        .given(vec![initialized(2, 0, true)])
        .when(adjust(-1))
        .then_expect_events(vec![adjusted(-1, 2, 1)]);
}

// ---------------------------------------------------------------- threshold

fn set_threshold(threshold: i32) -> InventoryCommand {
    InventoryCommand::SetLowStockThreshold {
        threshold,
        at: at(),
    }
}

fn threshold_set(previous: i32, threshold: i32) -> InventoryEvent {
    InventoryEvent::LowStockThresholdSet {
        sku: sku(),
        product_id: product_id(),
        variant_id: variant_id(),
        previous_threshold: previous,
        threshold,
        at: at(),
    }
}

#[test]
fn the_threshold_is_changed() {
    Given::with(())
        .given(vec![stocked(45)])
        .when(set_threshold(10))
        .then_expect_events(vec![threshold_set(5, 10)]);
}

#[test]
fn the_same_threshold_again_changes_nothing() {
    Given::with(())
        .given(vec![stocked(45)])
        .when(set_threshold(5))
        .then_expect_events(vec![]);
}

#[test]
fn a_negative_threshold_is_refused() {
    Given::with(())
        .given(vec![stocked(45)])
        .when(set_threshold(-1))
        .then_expect_error(InventoryError::NegativeThreshold { threshold: -1 });
}

#[test]
fn raising_the_threshold_past_the_level_reaches_low_stock() {
    Given::with(())
        .given(vec![stocked(8)])
        .when(set_threshold(10))
        .then_expect_events(vec![threshold_set(5, 10), low(8, 10)]);
}

#[test]
fn raising_the_threshold_while_already_low_or_empty_raises_nothing_more() {
    Given::with(())
        .given(vec![stocked(4)])
        .when(set_threshold(10))
        .then_expect_events(vec![threshold_set(5, 10)]);
    Given::with(())
        .given(vec![stocked(0)])
        .when(set_threshold(10))
        .then_expect_events(vec![threshold_set(5, 10)]);
}

#[test]
fn raising_the_threshold_of_an_untracked_inventory_raises_no_alert() {
    Given::with(())
        .given(vec![initialized(8, 5, false)])
        .when(set_threshold(10))
        .then_expect_events(vec![threshold_set(5, 10)]);
}

#[test]
fn the_new_threshold_governs_later_alerts() {
    Given::with(())
        .given(vec![stocked(20), threshold_set(5, 15)])
        .when(adjust(-6))
        .then_expect_events(vec![adjusted(-6, 20, 14), low(14, 15)]);
}

// ---------------------------------------------------------------- tracking

#[test]
fn tracking_is_switched_off_and_on() {
    Given::with(())
        .given(vec![stocked(45)])
        .when(InventoryCommand::SetTrackInventory {
            track_inventory: false,
            at: at(),
        })
        .then_expect_events(vec![tracking(false)]);
    Given::with(())
        .given(vec![stocked(45), tracking(false)])
        .when(InventoryCommand::SetTrackInventory {
            track_inventory: true,
            at: at(),
        })
        .then_expect_events(vec![tracking(true)]);
}

#[test]
fn switching_tracking_to_its_current_value_changes_nothing() {
    Given::with(())
        .given(vec![stocked(45)])
        .when(InventoryCommand::SetTrackInventory {
            track_inventory: true,
            at: at(),
        })
        .then_expect_events(vec![]);
}

#[test]
fn switching_tracking_on_at_zero_raises_no_alert() {
    Given::with(())
        .given(vec![initialized(0, 5, false)])
        .when(InventoryCommand::SetTrackInventory {
            track_inventory: true,
            at: at(),
        })
        .then_expect_events(vec![tracking(true)]);
}

// ---------------------------------------------------------------- reserve

#[test]
fn a_reservation_deducts_available_stock() {
    let order = Uuid::new_v4();
    Given::with(())
        .given(vec![stocked(45)])
        .when(reserve(order, 2))
        .then_expect_events(vec![reserved(order, 2, 45, 43)]);
}

#[test]
fn a_reservation_beyond_available_stock_is_refused() {
    Given::with(())
        .given(vec![stocked(2)])
        .when(reserve(Uuid::new_v4(), 3))
        .then_expect_error(insufficient(3, 2));
}

#[test]
fn other_orders_reservations_count_against_availability() {
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    Given::with(())
        .given(vec![stocked(5), reserved(first, 4, 5, 1)])
        .when(reserve(second, 2))
        .then_expect_error(insufficient(2, 1));
}

#[test]
fn reserving_the_last_units_goes_out_of_stock() {
    let order = Uuid::new_v4();
    Given::with(())
        .given(vec![stocked(2)])
        .when(reserve(order, 2))
        .then_expect_events(vec![reserved(order, 2, 2, 0), out()]);
}

#[test]
fn reserving_into_the_low_band_reaches_low_stock() {
    let order = Uuid::new_v4();
    Given::with(())
        .given(vec![stocked(7)])
        .when(reserve(order, 3))
        .then_expect_events(vec![reserved(order, 3, 7, 4), low(4, 5)]);
}

#[test]
fn reserving_again_for_the_same_order_changes_nothing() {
    let order = Uuid::new_v4();
    Given::with(())
        .given(vec![stocked(45), reserved(order, 2, 45, 43)])
        .when(reserve(order, 2))
        .then_expect_events(vec![]);
}

#[test]
fn reserving_a_different_quantity_for_the_same_order_is_refused() {
    let order = Uuid::new_v4();
    Given::with(())
        .given(vec![stocked(45), reserved(order, 2, 45, 43)])
        .when(reserve(order, 3))
        .then_expect_error(InventoryError::ReservationMismatch {
            sku: sku(),
            order_id: order,
            reserved: qty(2),
            requested: qty(3),
        });
}

#[test]
fn a_released_reservation_cannot_be_taken_again() {
    let order = Uuid::new_v4();
    Given::with(())
        .given(vec![
            stocked(45),
            reserved(order, 2, 45, 43),
            released(order, 2, 43, 45),
        ])
        .when(reserve(order, 2))
        .then_expect_error(InventoryError::ReservationReleased {
            sku: sku(),
            order_id: order,
        });
}

#[test]
fn an_untracked_inventory_records_but_never_refuses_or_deducts() {
    let order = Uuid::new_v4();
    Given::with(())
        .given(vec![initialized(1, 5, false)])
        .when(reserve(order, 50))
        .then_expect_events(vec![reserved(order, 50, 1, 1)]);
}

// ---------------------------------------------------------------- release

#[test]
fn releasing_gives_back_exactly_what_the_order_holds() {
    let (order, other) = (Uuid::new_v4(), Uuid::new_v4());
    Given::with(())
        .given(vec![
            stocked(45),
            reserved(order, 2, 45, 43),
            reserved(other, 5, 43, 38),
        ])
        .when(release(order))
        .then_expect_events(vec![released(order, 2, 38, 40)]);
}

#[test]
fn releasing_from_zero_is_back_in_stock() {
    let order = Uuid::new_v4();
    Given::with(())
        .given(vec![stocked(2), reserved(order, 2, 2, 0)])
        .when(release(order))
        .then_expect_events(vec![released(order, 2, 0, 2), back(2)]);
}

#[test]
fn releasing_an_order_that_never_reserved_changes_nothing() {
    Given::with(())
        .given(vec![stocked(45)])
        .when(release(Uuid::new_v4()))
        .then_expect_events(vec![]);
}

#[test]
fn releasing_twice_changes_nothing_the_second_time() {
    let order = Uuid::new_v4();
    Given::with(())
        .given(vec![
            stocked(45),
            reserved(order, 2, 45, 43),
            released(order, 2, 43, 45),
        ])
        .when(release(order))
        .then_expect_events(vec![]);
}

#[test]
fn a_hold_taken_while_untracked_gives_nothing_back_after_tracking_starts() {
    let order = Uuid::new_v4();
    Given::with(())
        .given(vec![
            initialized(10, 5, false),
            reserved(order, 4, 10, 10),
            tracking(true),
        ])
        .when(release(order))
        .then_expect_events(vec![released(order, 4, 10, 10)]);
}

#[test]
fn a_hold_taken_while_tracked_is_given_back_after_tracking_stops() {
    let order = Uuid::new_v4();
    Given::with(())
        .given(vec![
            stocked(10),
            reserved(order, 4, 10, 6),
            tracking(false),
        ])
        .when(release(order))
        .then_expect_events(vec![released(order, 4, 6, 10)]);
}

// ---------------------------------------------------------------- state & shape

#[test]
fn the_state_exposes_what_the_command_side_needs() {
    let (order, other) = (Uuid::new_v4(), Uuid::new_v4());
    let inventory = state(vec![
        stocked(45),
        reserved(order, 2, 45, 43),
        reserved(other, 1, 43, 42),
        released(other, 1, 42, 43),
    ]);
    assert_eq!(inventory.sku(), Some(&sku()));
    assert_eq!(inventory.product_id(), product_id());
    assert_eq!(inventory.variant_id(), variant_id());
    assert_eq!(inventory.available(), 43);
    assert_eq!(inventory.low_stock_threshold(), 5);
    assert!(inventory.is_tracked());
    assert_eq!(inventory.reserved_for(order), Some(qty(2)));
    assert_eq!(inventory.reserved_for(other), None);
    assert_eq!(Inventory::default().sku(), None);
}

#[test]
fn the_stream_id_is_the_sku() {
    assert_eq!(inventory_stream_id(&sku()), "inventory:IPH15-256-BLK");
    assert_eq!(Inventory::TYPE, "inventory");
}

#[test]
fn event_types_are_the_variant_names_at_version_one() {
    let order = Uuid::new_v4();
    let events = vec![
        (stocked(1), "StockInitialized"),
        (adjusted(1, 1, 2), "StockAdjusted"),
        (threshold_set(5, 6), "LowStockThresholdSet"),
        (tracking(false), "InventoryTrackingChanged"),
        (reserved(order, 1, 2, 1), "StockReserved"),
        (released(order, 1, 1, 2), "StockReleased"),
        (low(1, 5), "LowStockReached"),
        (out(), "OutOfStock"),
        (back(1), "BackInStock"),
    ];
    for (event, name) in events {
        assert_eq!(event.event_type(), name);
        assert_eq!(event.event_version(), "1");
        let json = serde_json::to_value(&event).unwrap();
        assert!(json.get(name).is_some(), "externally tagged: {json}");
        assert_eq!(
            serde_json::from_value::<InventoryEvent>(json).unwrap(),
            event
        );
    }
}

#[test]
fn adjustment_reasons_serialize_as_snake_case() {
    let reasons = [
        (StockAdjustmentReason::Restock, "restock"),
        (StockAdjustmentReason::Correction, "correction"),
        (StockAdjustmentReason::Damage, "damage"),
        (StockAdjustmentReason::Return, "return"),
        (StockAdjustmentReason::Other, "other"),
    ];
    for (reason, text) in reasons {
        assert_eq!(serde_json::to_value(reason).unwrap(), text);
    }
}

#[test]
fn the_state_survives_a_serde_round_trip() {
    let order = Uuid::new_v4();
    let inventory = state(vec![stocked(45), reserved(order, 2, 45, 43)]);
    let json = serde_json::to_string(&inventory).unwrap();
    assert_eq!(serde_json::from_str::<Inventory>(&json).unwrap(), inventory);
}

// ---------------------------------------------------------------- properties

#[derive(Debug, Clone)]
enum Op {
    Reserve { order: u8, quantity: i64 },
    Release { order: u8 },
    Adjust { delta: i32 },
    Threshold { threshold: i32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..8, 1i64..30).prop_map(|(order, quantity)| Op::Reserve { order, quantity }),
        (0u8..8).prop_map(|order| Op::Release { order }),
        (-40i32..40).prop_map(|delta| Op::Adjust { delta }),
        (0i32..20).prop_map(|threshold| Op::Threshold { threshold }),
    ]
}

proptest! {
    /// While tracked, no sequence of accepted commands takes available below
    /// zero, every refusal leaves the state untouched, and stock is conserved:
    /// available plus what reservations hold is the initial level plus the
    /// accepted adjustments.
    #[test]
    fn available_stock_never_goes_negative_while_tracked(
        initial in 0i32..50,
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        let mut inventory = state(vec![stocked(initial)]);
        let mut adjusted_total = i64::from(initial);
        for op in ops {
            let before = inventory.clone();
            let result = match op {
                Op::Reserve { order, quantity } => {
                    inventory.reserve(Uuid::from_u128(u128::from(order)), qty(quantity), at())
                }
                Op::Release { order } => {
                    inventory.release(Uuid::from_u128(u128::from(order)), at())
                }
                Op::Adjust { delta } => {
                    inventory.adjust(delta, StockAdjustmentReason::Other, None, at())
                }
                Op::Threshold { threshold } => inventory.set_low_stock_threshold(threshold, at()),
            };
            match result {
                Ok(events) => {
                    if let (Op::Adjust { delta }, false) = (&op, events.is_empty()) {
                        adjusted_total += i64::from(*delta);
                    }
                    for event in events {
                        inventory.apply(event);
                    }
                }
                Err(_) => prop_assert_eq!(&inventory, &before),
            }
            prop_assert!(inventory.available() >= 0, "{:?}", inventory);
            let held: i64 = (0u8..8)
                .filter_map(|o| inventory.reserved_for(Uuid::from_u128(u128::from(o))))
                .map(|q| i64::from(q.get()))
                .sum();
            prop_assert_eq!(inventory.available() + held, adjusted_total);
        }
    }

    /// Each alert appears exactly when its crossing happens.
    #[test]
    fn alerts_match_the_crossing_of_the_level(
        initial in 0i32..30,
        threshold in 0i32..10,
        delta in -30i32..30,
    ) {
        let inventory = state(vec![initialized(initial, threshold, true)]);
        let before = i64::from(initial);
        let after = before + i64::from(delta);
        prop_assume!(delta != 0 && after >= 0);
        let events = inventory
            .adjust(delta, StockAdjustmentReason::Other, None, at())
            .unwrap();
        let has = |name: &str| events.iter().any(|e| e.event_type() == name);
        let t = i64::from(threshold);
        prop_assert_eq!(has("LowStockReached"), before > t && after <= t && after > 0);
        prop_assert_eq!(has("OutOfStock"), before > 0 && after == 0);
        prop_assert_eq!(has("BackInStock"), before == 0 && after > 0);
    }
}
