//! Given/when/then tests of the cart rules and the cart decisions, and
//! properties of the summary and of merges.

use super::*;
use crate::values::{vat_on, PostalAddressInput, Sku, Url, ValueError};
use chrono::{Duration, TimeZone};
use cqrs_es::test::TestFramework;
use proptest::prelude::*;
use rust_decimal_macros::dec;

type Given = TestFramework<Cart>;

fn given() -> Given {
    Given::with(CartPolicy::default())
}

/// 2024-01-15 at `h:m` UTC, the seed cart's day.
fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, h, m, 0).unwrap()
}

fn week() -> Duration {
    Duration::days(7)
}

fn cart_id() -> Uuid {
    Uuid::from_u128(0xCA57)
}

fn guest_cart_id() -> Uuid {
    Uuid::from_u128(0x6E57)
}

fn user() -> CartOwner {
    CartOwner::User {
        user_id: Uuid::from_u128(0x0001),
    }
}

fn guest() -> CartOwner {
    CartOwner::Guest {
        session_id: SessionId::parse("session_123").unwrap(),
    }
}

fn money(amount: rust_decimal::Decimal) -> Money {
    Money::new(amount).unwrap()
}

fn qty(n: i64) -> Quantity {
    Quantity::new(n).unwrap()
}

fn iphone_options() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("color".to_owned(), "black".to_owned()),
        ("storage".to_owned(), "256GB".to_owned()),
    ])
}

fn iphone() -> CatalogItem {
    CatalogItem {
        product_id: Uuid::from_u128(0x1001),
        variant_id: Some(Uuid::from_u128(0x2001)),
        sku: Sku::parse("IPH15-256-BLK").unwrap(),
        name: "iPhone 15 Pro".into(),
        unit_price: money(dec!(35900)),
        is_active: true,
        image_url: Some(Url::parse("https://cdn.ecommerce.local/iph15.jpg").unwrap()),
    }
}

fn case() -> CatalogItem {
    CatalogItem {
        product_id: Uuid::from_u128(0x1002),
        variant_id: None,
        sku: Sku::parse("CASE-01").unwrap(),
        name: "Clear Case".into(),
        unit_price: money(dec!(990)),
        is_active: true,
        image_url: None,
    }
}

fn line_of(
    item: &CatalogItem,
    options: BTreeMap<String, String>,
    n: i64,
    added_at: DateTime<Utc>,
) -> CartItem {
    CartItem {
        product_id: item.product_id,
        variant_id: item.variant_id,
        sku: item.sku.clone(),
        name: item.name.clone(),
        unit_price: item.unit_price,
        quantity: qty(n),
        total_price: item.unit_price.times(qty(n)).unwrap(),
        options,
        image_url: item.image_url.clone(),
        added_at,
    }
}

fn iphone_line(n: i64) -> CartItem {
    line_of(&iphone(), iphone_options(), n, t(10, 30))
}

fn case_line(n: i64) -> CartItem {
    line_of(&case(), BTreeMap::new(), n, t(10, 40))
}

fn summary(
    item_count: u64,
    subtotal: rust_decimal::Decimal,
    tax: rust_decimal::Decimal,
    total: rust_decimal::Decimal,
) -> CartSummary {
    CartSummary {
        item_count,
        subtotal: money(subtotal),
        estimated_tax: money(tax),
        estimated_total: money(total),
        shipping_fee: None,
    }
}

fn opened_as(id: Uuid, owner: CartOwner, at: DateTime<Utc>) -> CartEvent {
    CartEvent::CartOpened {
        cart_id: id,
        owner,
        expires_at: at + week(),
        at,
    }
}

fn opened() -> CartEvent {
    opened_as(cart_id(), user(), t(10, 0))
}

fn added_as(
    id: Uuid,
    owner: CartOwner,
    line: CartItem,
    quantity_added: i64,
    items: Vec<CartItem>,
    at: DateTime<Utc>,
) -> CartEvent {
    let summary = CartSummary::compute(&items, None).unwrap();
    CartEvent::CartItemAdded {
        cart_id: id,
        owner,
        line,
        quantity_added: qty(quantity_added),
        items,
        summary,
        expires_at: at + week(),
        at,
    }
}

/// The seed's cart: two iPhones at 10:30.
fn seed_cart() -> Vec<CartEvent> {
    vec![
        opened(),
        added_as(
            cart_id(),
            user(),
            iphone_line(2),
            2,
            vec![iphone_line(2)],
            t(10, 30),
        ),
    ]
}

fn add(
    item: CatalogItem,
    n: i64,
    options: BTreeMap<String, String>,
    at: DateTime<Utc>,
) -> CartCommand {
    CartCommand::AddCartItem {
        item,
        quantity: qty(n),
        options,
        at,
    }
}

fn checked_out(order_id: Uuid) -> CartEvent {
    CartEvent::CartCheckedOut {
        cart_id: cart_id(),
        owner: user(),
        order_id,
        previous_status: CartStatus::Active,
        status: CartStatus::CheckedOut,
        at: t(11, 0),
    }
}

fn expired(at: DateTime<Utc>, expires_at: DateTime<Utc>) -> CartEvent {
    CartEvent::CartExpired {
        cart_id: cart_id(),
        owner: user(),
        expires_at,
        previous_status: CartStatus::Active,
        status: CartStatus::Expired,
        at,
    }
}

fn address() -> PostalAddress {
    PostalAddress::new(PostalAddressInput {
        first_name: "Somchai".into(),
        last_name: "Jaidee".into(),
        street_address_1: "1 Sukhumvit Rd".into(),
        city: "Bangkok".into(),
        state_province: "Bangkok".into(),
        postal_code: "10110".into(),
        ..Default::default()
    })
    .unwrap()
}

fn standard() -> ShippingMethodCode {
    ShippingMethodCode::parse("standard").unwrap()
}

fn coupon(code: &str) -> CouponCode {
    CouponCode::parse(code).unwrap()
}

fn state(events: Vec<CartEvent>) -> Cart {
    let mut cart = Cart::default();
    for event in events {
        cart.apply(event);
    }
    cart
}

// ---------------------------------------------------------------- opening

#[test]
fn a_cart_is_opened_for_an_owner_without_one_and_lives_seven_days() {
    assert_eq!(
        open_cart(None, cart_id(), user(), t(10, 0)),
        Ok(vec![CartEvent::CartOpened {
            cart_id: cart_id(),
            owner: user(),
            expires_at: Utc.with_ymd_and_hms(2024, 1, 22, 10, 0, 0).unwrap(),
            at: t(10, 0),
        }])
    );
}

#[test]
fn an_owner_with_an_active_cart_cannot_open_another() {
    let existing = Uuid::new_v4();
    assert_eq!(
        open_cart(Some(existing), cart_id(), guest(), t(10, 0)),
        Err(CartError::OwnerHasActiveCart { cart_id: existing })
    );
}

#[test]
fn opening_the_owners_active_cart_again_changes_nothing() {
    assert_eq!(
        open_cart(Some(cart_id()), cart_id(), user(), t(10, 0)),
        Ok(vec![])
    );
}

#[test]
fn the_configured_time_to_live_sets_the_expiry() {
    let policy = CartPolicy {
        ttl: Duration::days(1),
        ..CartPolicy::default()
    };
    let events = open_cart_with(&policy, None, cart_id(), user(), t(10, 0)).unwrap();
    assert!(matches!(
        events.as_slice(),
        [CartEvent::CartOpened { expires_at, .. }] if *expires_at == t(10, 0) + Duration::days(1)
    ));
}

#[test]
fn the_open_command_goes_through_the_owner_rule() {
    given()
        .given_no_previous_events()
        .when(CartCommand::OpenCart {
            cart_id: cart_id(),
            owner: user(),
            existing_active_cart_for_owner: None,
            at: t(10, 0),
        })
        .then_expect_events(vec![opened()]);
    let existing = Uuid::new_v4();
    given()
        .given_no_previous_events()
        .when(CartCommand::OpenCart {
            cart_id: cart_id(),
            owner: user(),
            existing_active_cart_for_owner: Some(existing),
            at: t(10, 0),
        })
        .then_expect_error(CartError::OwnerHasActiveCart { cart_id: existing });
}

#[test]
fn an_opened_stream_cannot_be_opened_as_another_cart() {
    given()
        .given(vec![opened()])
        .when(CartCommand::OpenCart {
            cart_id: Uuid::new_v4(),
            owner: user(),
            existing_active_cart_for_owner: None,
            at: t(10, 5),
        })
        .then_expect_error(CartError::AlreadyOpened { cart_id: cart_id() });
    given()
        .given(vec![opened()])
        .when(CartCommand::OpenCart {
            cart_id: cart_id(),
            owner: guest(),
            existing_active_cart_for_owner: None,
            at: t(10, 5),
        })
        .then_expect_error(CartError::AlreadyOpened { cart_id: cart_id() });
}

#[test]
fn opening_the_same_cart_again_changes_nothing() {
    given()
        .given(vec![opened()])
        .when(CartCommand::OpenCart {
            cart_id: cart_id(),
            owner: user(),
            existing_active_cart_for_owner: None,
            at: t(10, 5),
        })
        .then_expect_events(vec![]);
}

// ---------------------------------------------------------------- adding

#[test]
fn the_seed_cart_two_iphones_sum_to_76826() {
    given()
        .given(vec![opened()])
        .when(add(iphone(), 2, iphone_options(), t(10, 30)))
        .then_expect_events(vec![CartEvent::CartItemAdded {
            cart_id: cart_id(),
            owner: user(),
            line: iphone_line(2),
            quantity_added: qty(2),
            items: vec![iphone_line(2)],
            summary: summary(2, dec!(71800), dec!(5026), dec!(76826)),
            expires_at: Utc.with_ymd_and_hms(2024, 1, 22, 10, 30, 0).unwrap(),
            at: t(10, 30),
        }]);
}

#[test]
fn adding_the_same_product_variant_and_options_grows_the_line() {
    let grown = line_of(&iphone(), iphone_options(), 3, t(10, 30));
    given()
        .given(seed_cart())
        .when(add(iphone(), 1, iphone_options(), t(10, 45)))
        .then_expect_events(vec![CartEvent::CartItemAdded {
            cart_id: cart_id(),
            owner: user(),
            line: grown.clone(),
            quantity_added: qty(1),
            items: vec![grown],
            summary: summary(3, dec!(107700), dec!(7539), dec!(115239)),
            expires_at: t(10, 45) + week(),
            at: t(10, 45),
        }]);
}

#[test]
fn other_options_make_another_line() {
    let white = BTreeMap::from([("color".to_owned(), "white".to_owned())]);
    let white_line = line_of(&iphone(), white.clone(), 1, t(10, 45));
    given()
        .given(seed_cart())
        .when(add(iphone(), 1, white, t(10, 45)))
        .then_expect_events(vec![CartEvent::CartItemAdded {
            cart_id: cart_id(),
            owner: user(),
            line: white_line.clone(),
            quantity_added: qty(1),
            items: vec![iphone_line(2), white_line],
            summary: summary(3, dec!(107700), dec!(7539), dec!(115239)),
            expires_at: t(10, 45) + week(),
            at: t(10, 45),
        }]);
}

#[test]
fn another_variant_makes_another_line() {
    let other_variant = CatalogItem {
        variant_id: Some(Uuid::from_u128(0x2002)),
        ..iphone()
    };
    let events = state(seed_cart())
        .add_item(
            other_variant,
            qty(1),
            iphone_options(),
            &CartPolicy::default(),
            t(10, 45),
        )
        .unwrap();
    let [CartEvent::CartItemAdded { items, .. }] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(items.len(), 2);
}

#[test]
fn a_readded_line_takes_the_current_catalog_price() {
    let on_sale = CatalogItem {
        unit_price: money(dec!(33900)),
        ..iphone()
    };
    let repriced = CartItem {
        unit_price: money(dec!(33900)),
        total_price: money(dec!(101700)),
        quantity: qty(3),
        ..iphone_line(2)
    };
    given()
        .given(seed_cart())
        .when(add(on_sale, 1, iphone_options(), t(10, 45)))
        .then_expect_events(vec![CartEvent::CartItemAdded {
            cart_id: cart_id(),
            owner: user(),
            line: repriced.clone(),
            quantity_added: qty(1),
            items: vec![repriced],
            summary: summary(3, dec!(101700), dec!(7119), dec!(108819)),
            expires_at: t(10, 45) + week(),
            at: t(10, 45),
        }]);
}

#[test]
fn an_inactive_product_or_variant_cannot_be_added() {
    let inactive = CatalogItem {
        is_active: false,
        ..iphone()
    };
    given()
        .given(vec![opened()])
        .when(add(inactive, 1, iphone_options(), t(10, 30)))
        .then_expect_error(CartError::ProductNotAvailable {
            product_id: iphone().product_id,
        });
}

#[test]
fn a_new_line_above_the_cap_is_refused() {
    given()
        .given(vec![opened()])
        .when(add(iphone(), 11, iphone_options(), t(10, 30)))
        .then_expect_error(CartError::QuantityAboveLimit {
            requested: 11,
            max: 10,
        });
}

#[test]
fn growing_a_line_above_the_cap_is_refused() {
    given()
        .given(seed_cart())
        .when(add(iphone(), 9, iphone_options(), t(10, 45)))
        .then_expect_error(CartError::QuantityAboveLimit {
            requested: 11,
            max: 10,
        });
}

#[test]
fn a_line_may_reach_the_cap_exactly() {
    let full = line_of(&iphone(), iphone_options(), 10, t(10, 30));
    given()
        .given(seed_cart())
        .when(add(iphone(), 8, iphone_options(), t(10, 45)))
        .then_expect_events(vec![CartEvent::CartItemAdded {
            cart_id: cart_id(),
            owner: user(),
            line: full.clone(),
            quantity_added: qty(8),
            items: vec![full],
            summary: summary(10, dec!(359000), dec!(25130), dec!(384130)),
            expires_at: t(10, 45) + week(),
            at: t(10, 45),
        }]);
}

#[test]
fn the_configured_cap_applies() {
    Given::with(CartPolicy {
        max_quantity_per_line: 2,
        ..CartPolicy::default()
    })
    .given(vec![opened()])
    .when(add(case(), 3, BTreeMap::new(), t(10, 30)))
    .then_expect_error(CartError::QuantityAboveLimit {
        requested: 3,
        max: 2,
    });
}

#[test]
fn blank_or_oversized_options_are_refused() {
    for (name, value) in [
        ("", "black"),
        ("color", " "),
        ("c".repeat(51).as_str(), "x"),
        ("color", "v".repeat(256).as_str()),
        ("co\u{0}lor", "black"),
        ("color", "bl\u{7}ack"),
        ("color", "two\nlines"),
    ] {
        given()
            .given(vec![opened()])
            .when(add(
                iphone(),
                1,
                BTreeMap::from([(name.to_owned(), value.to_owned())]),
                t(10, 30),
            ))
            .then_expect_error(CartError::InvalidOption {
                name: name.to_owned(),
                value: value.to_owned(),
            });
    }
}

#[test]
fn a_line_total_beyond_the_money_ceiling_is_refused() {
    let dear = CatalogItem {
        unit_price: money(dec!(60000000)),
        ..case()
    };
    given()
        .given(vec![opened()])
        .when(add(dear, 2, BTreeMap::new(), t(10, 30)))
        .then_expect_error(CartError::AmountOutOfRange {
            amount: dec!(120000000),
        });
}

#[test]
fn a_subtotal_beyond_the_money_ceiling_is_refused() {
    let dear = CatalogItem {
        unit_price: money(dec!(60000000)),
        ..case()
    };
    let first = line_of(&dear, BTreeMap::new(), 1, t(10, 30));
    let other = CatalogItem {
        product_id: Uuid::from_u128(0x1003),
        ..dear.clone()
    };
    given()
        .given(vec![
            opened(),
            added_as(cart_id(), user(), first.clone(), 1, vec![first], t(10, 30)),
        ])
        .when(add(other, 1, BTreeMap::new(), t(10, 40)))
        .then_expect_error(CartError::AmountOutOfRange {
            amount: dec!(120000000.00),
        });
}

#[test]
fn a_total_with_tax_beyond_the_money_ceiling_is_refused() {
    // 95,000,000 + 7% = 101,650,000.
    let dear = CatalogItem {
        unit_price: money(dec!(95000000)),
        ..case()
    };
    given()
        .given(vec![opened()])
        .when(add(dear, 1, BTreeMap::new(), t(10, 30)))
        .then_expect_error(CartError::AmountOutOfRange {
            amount: dec!(101650000.00),
        });
}

#[test]
fn nothing_can_be_added_to_a_cart_that_was_never_opened() {
    given()
        .given_no_previous_events()
        .when(add(iphone(), 1, iphone_options(), t(10, 30)))
        .then_expect_error(CartError::NotOpened);
}

// ---------------------------------------------------------------- changing

fn change(line: CartLineKey, quantity: u32) -> CartCommand {
    CartCommand::ChangeCartItemQuantity {
        line,
        quantity,
        at: t(10, 50),
    }
}

#[test]
fn a_line_quantity_is_changed() {
    let changed = iphone_line(5);
    given()
        .given(seed_cart())
        .when(change(iphone_line(2).key(), 5))
        .then_expect_events(vec![CartEvent::CartItemQuantityChanged {
            cart_id: cart_id(),
            owner: user(),
            line: changed.clone(),
            previous_quantity: qty(2),
            items: vec![changed],
            summary: summary(5, dec!(179500), dec!(12565), dec!(192065)),
            expires_at: t(10, 50) + week(),
            at: t(10, 50),
        }]);
}

#[test]
fn changing_a_line_to_zero_removes_it() {
    given()
        .given(seed_cart())
        .when(change(iphone_line(2).key(), 0))
        .then_expect_events(vec![CartEvent::CartItemRemoved {
            cart_id: cart_id(),
            owner: user(),
            line: iphone_line(2),
            items: vec![],
            summary: summary(0, dec!(0), dec!(0), dec!(0)),
            expires_at: t(10, 50) + week(),
            at: t(10, 50),
        }]);
}

#[test]
fn changing_a_line_to_its_quantity_changes_nothing() {
    given()
        .given(seed_cart())
        .when(change(iphone_line(2).key(), 2))
        .then_expect_events(vec![]);
}

#[test]
fn changing_a_line_above_the_cap_is_refused() {
    given()
        .given(seed_cart())
        .when(change(iphone_line(2).key(), 11))
        .then_expect_error(CartError::QuantityAboveLimit {
            requested: 11,
            max: 10,
        });
}

#[test]
fn changing_a_line_that_is_not_there_is_refused() {
    let missing = CartLineKey {
        options: BTreeMap::new(),
        ..iphone_line(2).key()
    };
    given()
        .given(seed_cart())
        .when(change(missing.clone(), 1))
        .then_expect_error(CartError::LineNotFound { line: missing });
}

#[test]
fn a_line_is_removed_and_the_summary_follows() {
    given()
        .given(vec![
            opened(),
            added_as(
                cart_id(),
                user(),
                iphone_line(2),
                2,
                vec![iphone_line(2)],
                t(10, 30),
            ),
            added_as(
                cart_id(),
                user(),
                case_line(1),
                1,
                vec![iphone_line(2), case_line(1)],
                t(10, 40),
            ),
        ])
        .when(CartCommand::RemoveCartItem {
            line: iphone_line(2).key(),
            at: t(10, 50),
        })
        .then_expect_events(vec![CartEvent::CartItemRemoved {
            cart_id: cart_id(),
            owner: user(),
            line: iphone_line(2),
            items: vec![case_line(1)],
            summary: summary(1, dec!(990), dec!(69.30), dec!(1059.30)),
            expires_at: t(10, 50) + week(),
            at: t(10, 50),
        }]);
}

#[test]
fn removing_a_line_that_is_not_there_is_refused() {
    given()
        .given(seed_cart())
        .when(CartCommand::RemoveCartItem {
            line: case_line(1).key(),
            at: t(10, 50),
        })
        .then_expect_error(CartError::LineNotFound {
            line: case_line(1).key(),
        });
}

// ---------------------------------------------------------------- coupon

fn coupon_applied(code: &str, previous: Option<&str>) -> CartEvent {
    CartEvent::CartCouponApplied {
        cart_id: cart_id(),
        owner: user(),
        coupon_code: coupon(code),
        previous_coupon_code: previous.map(coupon),
        summary: summary(2, dec!(71800), dec!(5026), dec!(76826)),
        expires_at: t(10, 50) + week(),
        at: t(10, 50),
    }
}

fn apply_coupon(code: &str) -> CartCommand {
    CartCommand::ApplyCoupon {
        code: coupon(code),
        at: t(10, 50),
    }
}

#[test]
fn a_coupon_is_applied() {
    given()
        .given(seed_cart())
        .when(apply_coupon("save10"))
        .then_expect_events(vec![coupon_applied("SAVE10", None)]);
}

#[test]
fn applying_the_same_coupon_again_changes_nothing() {
    given()
        .given({
            let mut events = seed_cart();
            events.push(coupon_applied("SAVE10", None));
            events
        })
        .when(apply_coupon("SAVE10"))
        .then_expect_events(vec![]);
}

#[test]
fn another_coupon_replaces_the_applied_one() {
    given()
        .given({
            let mut events = seed_cart();
            events.push(coupon_applied("SAVE10", None));
            events
        })
        .when(apply_coupon("NEWYEAR"))
        .then_expect_events(vec![coupon_applied("NEWYEAR", Some("SAVE10"))]);
}

#[test]
fn the_applied_coupon_is_removed() {
    given()
        .given({
            let mut events = seed_cart();
            events.push(coupon_applied("SAVE10", None));
            events
        })
        .when(CartCommand::RemoveCoupon { at: t(10, 55) })
        .then_expect_events(vec![CartEvent::CartCouponRemoved {
            cart_id: cart_id(),
            owner: user(),
            coupon_code: coupon("SAVE10"),
            summary: summary(2, dec!(71800), dec!(5026), dec!(76826)),
            expires_at: t(10, 55) + week(),
            at: t(10, 55),
        }]);
}

#[test]
fn removing_a_coupon_when_none_is_applied_changes_nothing() {
    given()
        .given(seed_cart())
        .when(CartCommand::RemoveCoupon { at: t(10, 55) })
        .then_expect_events(vec![]);
}

// ---------------------------------------------------------------- shipping

fn shipping_selected(fee: rust_decimal::Decimal) -> CartEvent {
    CartEvent::CartShippingMethodSelected {
        cart_id: cart_id(),
        owner: user(),
        shipping_method: ShippingSelection {
            method: standard(),
            fee: money(fee),
        },
        summary: CartSummary {
            shipping_fee: Some(money(fee)),
            ..summary(2, dec!(71800), dec!(5026), dec!(76826))
        },
        expires_at: t(10, 55) + week(),
        at: t(10, 55),
    }
}

#[test]
fn a_shipping_address_is_set_and_the_same_one_again_changes_nothing() {
    let set = CartEvent::CartShippingAddressSet {
        cart_id: cart_id(),
        owner: user(),
        address: address(),
        summary: summary(2, dec!(71800), dec!(5026), dec!(76826)),
        expires_at: t(10, 50) + week(),
        at: t(10, 50),
    };
    let command = || CartCommand::SetShippingAddress {
        address: address(),
        at: t(10, 50),
    };
    given()
        .given(seed_cart())
        .when(command())
        .then_expect_events(vec![set.clone()]);
    given()
        .given({
            let mut events = seed_cart();
            events.push(set);
            events
        })
        .when(command())
        .then_expect_events(vec![]);
}

#[test]
fn a_shipping_method_shows_its_fee_beside_a_total_without_shipping() {
    given()
        .given(seed_cart())
        .when(CartCommand::SelectShippingMethod {
            method: standard(),
            fee: money(dec!(50)),
            at: t(10, 55),
        })
        .then_expect_events(vec![shipping_selected(dec!(50))]);
}

#[test]
fn selecting_the_same_method_and_fee_again_changes_nothing_but_a_new_fee_does() {
    let mut events = seed_cart();
    events.push(shipping_selected(dec!(50)));
    given()
        .given(events.clone())
        .when(CartCommand::SelectShippingMethod {
            method: standard(),
            fee: money(dec!(50)),
            at: t(10, 55),
        })
        .then_expect_events(vec![]);
    given()
        .given(events)
        .when(CartCommand::SelectShippingMethod {
            method: standard(),
            fee: money(dec!(0)),
            at: t(10, 55),
        })
        .then_expect_events(vec![shipping_selected(dec!(0))]);
}

#[test]
fn later_line_changes_keep_the_shipping_fee_in_the_summary() {
    let mut events = seed_cart();
    events.push(shipping_selected(dec!(50)));
    let result = given()
        .given(events)
        .when(change(iphone_line(2).key(), 1))
        .inspect_result()
        .unwrap();
    let [CartEvent::CartItemQuantityChanged { summary: s, .. }] = result.as_slice() else {
        panic!("{result:?}");
    };
    assert_eq!(
        s,
        &CartSummary {
            shipping_fee: Some(money(dec!(50))),
            ..summary(1, dec!(35900), dec!(2513), dec!(38413))
        }
    );
}

#[test]
fn shipping_method_codes_and_session_ids_are_bounded() {
    assert_eq!(
        ShippingMethodCode::parse(" express ").unwrap().as_str(),
        "express"
    );
    assert!(ShippingMethodCode::parse("").is_err());
    assert!(ShippingMethodCode::parse(&"x".repeat(51)).is_err());
    assert!(ShippingMethodCode::parse(&"x".repeat(50)).is_ok());
    assert_eq!(SessionId::parse("Ab-1_=").unwrap().as_str(), "Ab-1_=");
    assert!(SessionId::parse(&"s".repeat(128)).is_ok());
    for bad in [
        String::new(),
        "s".repeat(129),
        "a b".into(),
        "ทดสอบ".into(),
        "a\n".into(),
    ] {
        assert!(
            matches!(
                SessionId::parse(&bad),
                Err(ValueError::Text {
                    field: "session_id",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    assert!(serde_json::from_str::<SessionId>("\"has space\"").is_err());
}

// ---------------------------------------------------------------- closed carts

fn every_change(at: DateTime<Utc>) -> Vec<CartCommand> {
    vec![
        add(case(), 1, BTreeMap::new(), at),
        CartCommand::ChangeCartItemQuantity {
            line: iphone_line(2).key(),
            quantity: 3,
            at,
        },
        CartCommand::RemoveCartItem {
            line: iphone_line(2).key(),
            at,
        },
        CartCommand::ApplyCoupon {
            code: coupon("SAVE10"),
            at,
        },
        CartCommand::RemoveCoupon { at },
        CartCommand::SetShippingAddress {
            address: address(),
            at,
        },
        CartCommand::SelectShippingMethod {
            method: standard(),
            fee: money(dec!(50)),
            at,
        },
        CartCommand::MergeGuestCart {
            guest_cart: GuestCartSnapshot {
                cart_id: guest_cart_id(),
                items: vec![case_line(1)],
            },
            at,
        },
    ]
}

#[test]
fn a_checked_out_cart_refuses_every_change() {
    let order = Uuid::new_v4();
    let mut events = seed_cart();
    events.push(checked_out(order));
    for command in every_change(t(11, 30)) {
        given()
            .given(events.clone())
            .when(command)
            .then_expect_error(CartError::AlreadyCheckedOut { order_id: order });
    }
}

#[test]
fn an_expired_cart_refuses_every_change() {
    let expires_at = t(10, 30) + week();
    let mut events = seed_cart();
    events.push(expired(expires_at, expires_at));
    for command in every_change(expires_at + Duration::hours(1)) {
        given()
            .given(events.clone())
            .when(command)
            .then_expect_error(CartError::Expired { expires_at });
    }
}

#[test]
fn a_cart_past_its_expiry_refuses_every_change_before_it_is_marked_expired() {
    let expires_at = t(10, 30) + week();
    for command in every_change(expires_at) {
        given()
            .given(seed_cart())
            .when(command)
            .then_expect_error(CartError::Expired { expires_at });
    }
}

#[test]
fn a_cart_just_before_its_expiry_still_takes_changes() {
    let at = t(10, 30) + week() - Duration::seconds(1);
    let events = given()
        .given(seed_cart())
        .when(add(case(), 1, BTreeMap::new(), at))
        .inspect_result()
        .unwrap();
    assert!(matches!(
        events.as_slice(),
        [CartEvent::CartItemAdded { expires_at, .. }] if *expires_at == at + week()
    ));
}

#[test]
fn a_merged_guest_cart_refuses_every_change() {
    let user_cart = Uuid::new_v4();
    let events = vec![
        opened_as(guest_cart_id(), guest(), t(9, 0)),
        CartEvent::CartMergedInto {
            cart_id: guest_cart_id(),
            owner: guest(),
            user_cart_id: user_cart,
            previous_status: CartStatus::Active,
            status: CartStatus::Merged,
            at: t(10, 0),
        },
    ];
    for command in every_change(t(10, 30)) {
        given()
            .given(events.clone())
            .when(command)
            .then_expect_error(CartError::Merged {
                into_cart_id: user_cart,
            });
    }
}

// ---------------------------------------------------------------- checkout

fn check_out(order_id: Uuid, at: DateTime<Utc>) -> CartCommand {
    CartCommand::CheckOut { order_id, at }
}

#[test]
fn a_cart_with_items_is_checked_out_into_an_order() {
    let order = Uuid::new_v4();
    given()
        .given(seed_cart())
        .when(check_out(order, t(11, 0)))
        .then_expect_events(vec![checked_out(order)]);
}

#[test]
fn checking_out_again_for_the_same_order_changes_nothing() {
    let order = Uuid::new_v4();
    let mut events = seed_cart();
    events.push(checked_out(order));
    given()
        .given(events.clone())
        .when(check_out(order, t(11, 5)))
        .then_expect_events(vec![]);
    // Even after the cart would have expired: the retry is of a past success.
    given()
        .given(events)
        .when(check_out(order, t(10, 0) + Duration::days(30)))
        .then_expect_events(vec![]);
}

#[test]
fn a_checked_out_cart_cannot_be_checked_out_into_another_order() {
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let mut events = seed_cart();
    events.push(checked_out(first));
    given()
        .given(events)
        .when(check_out(second, t(11, 5)))
        .then_expect_error(CartError::AlreadyCheckedOut { order_id: first });
}

#[test]
fn an_empty_cart_cannot_be_checked_out() {
    given()
        .given(vec![opened()])
        .when(check_out(Uuid::new_v4(), t(11, 0)))
        .then_expect_error(CartError::Empty);
    given()
        .given({
            let mut events = seed_cart();
            events.push(CartEvent::CartItemRemoved {
                cart_id: cart_id(),
                owner: user(),
                line: iphone_line(2),
                items: vec![],
                summary: CartSummary::default(),
                expires_at: t(10, 50) + week(),
                at: t(10, 50),
            });
            events
        })
        .when(check_out(Uuid::new_v4(), t(11, 0)))
        .then_expect_error(CartError::Empty);
}

#[test]
fn an_expired_cart_cannot_be_checked_out() {
    let expires_at = t(10, 30) + week();
    given()
        .given(seed_cart())
        .when(check_out(Uuid::new_v4(), expires_at))
        .then_expect_error(CartError::Expired { expires_at });
    let mut events = seed_cart();
    events.push(expired(expires_at, expires_at));
    given()
        .given(events)
        .when(check_out(Uuid::new_v4(), expires_at))
        .then_expect_error(CartError::Expired { expires_at });
}

#[test]
fn a_cart_that_was_never_opened_cannot_be_checked_out() {
    given()
        .given_no_previous_events()
        .when(check_out(Uuid::new_v4(), t(11, 0)))
        .then_expect_error(CartError::NotOpened);
}

// ---------------------------------------------------------------- expiry

#[test]
fn a_cart_expires_a_week_after_its_last_change() {
    let expires_at = t(10, 30) + week();
    given()
        .given(seed_cart())
        .when(CartCommand::ExpireCart { at: expires_at })
        .then_expect_events(vec![expired(expires_at, expires_at)]);
}

#[test]
fn a_cart_does_not_expire_before_its_time() {
    let expires_at = t(10, 30) + week();
    given()
        .given(seed_cart())
        .when(CartCommand::ExpireCart {
            at: expires_at - Duration::seconds(1),
        })
        .then_expect_error(CartError::NotYetExpired { expires_at });
}

#[test]
fn every_change_pushes_the_expiry_back() {
    // Opened at 10:00, changed at 10:30: a week after opening is too early.
    given()
        .given(seed_cart())
        .when(CartCommand::ExpireCart {
            at: t(10, 0) + week(),
        })
        .then_expect_error(CartError::NotYetExpired {
            expires_at: t(10, 30) + week(),
        });
}

#[test]
fn an_untouched_empty_cart_expires_a_week_after_opening() {
    let expires_at = t(10, 0) + week();
    given()
        .given(vec![opened()])
        .when(CartCommand::ExpireCart { at: expires_at })
        .then_expect_events(vec![expired(expires_at, expires_at)]);
}

#[test]
fn expiring_an_expired_cart_changes_nothing() {
    let expires_at = t(10, 30) + week();
    let mut events = seed_cart();
    events.push(expired(expires_at, expires_at));
    given()
        .given(events)
        .when(CartCommand::ExpireCart {
            at: expires_at + Duration::days(1),
        })
        .then_expect_events(vec![]);
}

#[test]
fn checked_out_merged_or_unopened_carts_do_not_expire() {
    let order = Uuid::new_v4();
    let mut events = seed_cart();
    events.push(checked_out(order));
    given()
        .given(events)
        .when(CartCommand::ExpireCart {
            at: t(10, 0) + Duration::days(30),
        })
        .then_expect_error(CartError::AlreadyCheckedOut { order_id: order });
    given()
        .given(vec![
            opened_as(guest_cart_id(), guest(), t(9, 0)),
            CartEvent::CartMergedInto {
                cart_id: guest_cart_id(),
                owner: guest(),
                user_cart_id: cart_id(),
                previous_status: CartStatus::Active,
                status: CartStatus::Merged,
                at: t(10, 0),
            },
        ])
        .when(CartCommand::ExpireCart {
            at: t(10, 0) + Duration::days(30),
        })
        .then_expect_error(CartError::Merged {
            into_cart_id: cart_id(),
        });
    given()
        .given_no_previous_events()
        .when(CartCommand::ExpireCart { at: t(10, 0) })
        .then_expect_error(CartError::NotOpened);
}

// ---------------------------------------------------------------- merging

/// The guest cart: 3 iPhones (same line as the user's, at a lower price) and
/// one case, opened at 9:00.
fn guest_events() -> Vec<CartEvent> {
    let cheaper = CatalogItem {
        unit_price: money(dec!(34900)),
        ..iphone()
    };
    let guest_iphone = line_of(&cheaper, iphone_options(), 3, t(9, 10));
    let guest_case = line_of(&case(), BTreeMap::new(), 1, t(9, 20));
    vec![
        opened_as(guest_cart_id(), guest(), t(9, 0)),
        added_as(
            guest_cart_id(),
            guest(),
            guest_iphone.clone(),
            3,
            vec![guest_iphone.clone()],
            t(9, 10),
        ),
        added_as(
            guest_cart_id(),
            guest(),
            guest_case.clone(),
            1,
            vec![guest_iphone, guest_case],
            t(9, 20),
        ),
    ]
}

fn guest_snapshot() -> GuestCartSnapshot {
    let guest = state(guest_events());
    GuestCartSnapshot {
        cart_id: guest_cart_id(),
        items: guest.items().to_vec(),
    }
}

fn merge(at: DateTime<Utc>) -> CartCommand {
    CartCommand::MergeGuestCart {
        guest_cart: guest_snapshot(),
        at,
    }
}

/// The user's seed cart after merging the guest cart at 11:00: iPhones at the
/// larger quantity (3) and the user's price, the guest's case appended.
fn merged_user_cart_event() -> CartEvent {
    let iphones = iphone_line(3);
    let guest_case = line_of(&case(), BTreeMap::new(), 1, t(9, 20));
    CartEvent::GuestCartMerged {
        cart_id: cart_id(),
        owner: user(),
        guest_cart_id: guest_cart_id(),
        items: vec![iphones, guest_case],
        // 3 × 35900 + 990 = 108690; VAT 7608.30.
        summary: summary(4, dec!(108690), dec!(7608.30), dec!(116298.30)),
        expires_at: t(11, 0) + week(),
        at: t(11, 0),
    }
}

fn guest_marked_merged() -> CartEvent {
    CartEvent::CartMergedInto {
        cart_id: guest_cart_id(),
        owner: guest(),
        user_cart_id: cart_id(),
        previous_status: CartStatus::Active,
        status: CartStatus::Merged,
        at: t(11, 0),
    }
}

#[test]
fn a_guest_cart_merges_by_larger_quantity_at_the_users_price_and_appends_new_lines() {
    given()
        .given(seed_cart())
        .when(merge(t(11, 0)))
        .then_expect_events(vec![merged_user_cart_event()]);
}

#[test]
fn a_user_line_larger_than_the_guests_is_kept() {
    let mut events = seed_cart();
    events.push(CartEvent::CartItemQuantityChanged {
        cart_id: cart_id(),
        owner: user(),
        line: iphone_line(5),
        previous_quantity: qty(2),
        items: vec![iphone_line(5)],
        summary: CartSummary::compute(&[iphone_line(5)], None).unwrap(),
        expires_at: t(10, 40) + week(),
        at: t(10, 40),
    });
    let result = given()
        .given(events)
        .when(merge(t(11, 0)))
        .inspect_result()
        .unwrap();
    let [CartEvent::GuestCartMerged { items, .. }] = result.as_slice() else {
        panic!("{result:?}");
    };
    assert_eq!(items[0], iphone_line(5));
    assert_eq!(items.len(), 2);
}

#[test]
fn merged_lines_are_capped() {
    let result = Given::with(CartPolicy {
        max_quantity_per_line: 1,
        ..CartPolicy::default()
    })
    .given(vec![opened()])
    .when(merge(t(11, 0)))
    .inspect_result()
    .unwrap();
    let [CartEvent::GuestCartMerged { items, .. }] = result.as_slice() else {
        panic!("{result:?}");
    };
    assert!(items.iter().all(|l| l.quantity == qty(1)), "{items:?}");
    assert_eq!(items[0].total_price, money(dec!(34900)));
}

#[test]
fn merging_the_same_guest_cart_twice_changes_nothing() {
    let mut events = seed_cart();
    events.push(merged_user_cart_event());
    given()
        .given(events)
        .when(merge(t(11, 5)))
        .then_expect_events(vec![]);
}

#[test]
fn only_a_user_cart_takes_a_guest_cart_in() {
    given()
        .given(vec![opened_as(cart_id(), guest(), t(10, 0))])
        .when(merge(t(11, 0)))
        .then_expect_error(CartError::NotAUserCart { cart_id: cart_id() });
}

#[test]
fn a_cart_cannot_be_merged_into_itself() {
    given()
        .given(seed_cart())
        .when(CartCommand::MergeGuestCart {
            guest_cart: GuestCartSnapshot {
                cart_id: cart_id(),
                items: vec![],
            },
            at: t(11, 0),
        })
        .then_expect_error(CartError::MergeIntoItself { cart_id: cart_id() });
}

#[test]
fn merge_guest_cart_returns_the_events_of_both_streams() {
    let outcome = merge_guest_cart(
        &state(seed_cart()),
        &state(guest_events()),
        guest_cart_id(),
        t(11, 0),
    );
    assert_eq!(
        outcome,
        Ok(MergeOutcome {
            user_cart_events: vec![merged_user_cart_event()],
            guest_cart_events: vec![guest_marked_merged()],
        })
    );
}

#[test]
fn merge_guest_cart_twice_changes_nothing() {
    let mut user_cart = state(seed_cart());
    let mut guest_cart = state(guest_events());
    let outcome = merge_guest_cart(&user_cart, &guest_cart, guest_cart_id(), t(11, 0)).unwrap();
    outcome
        .user_cart_events
        .into_iter()
        .for_each(|e| user_cart.apply(e));
    outcome
        .guest_cart_events
        .into_iter()
        .for_each(|e| guest_cart.apply(e));
    assert_eq!(guest_cart.status(), CartStatus::Merged);
    assert_eq!(guest_cart.merged_into(), Some(cart_id()));
    assert!(user_cart.has_merged(guest_cart_id()));
    assert_eq!(
        merge_guest_cart(&user_cart, &guest_cart, guest_cart_id(), t(11, 5)),
        Ok(MergeOutcome::default())
    );
}

#[test]
fn a_guest_cart_merged_elsewhere_cannot_be_merged_again() {
    let elsewhere = Uuid::new_v4();
    let mut guest_cart = guest_events();
    guest_cart.push(CartEvent::CartMergedInto {
        cart_id: guest_cart_id(),
        owner: guest(),
        user_cart_id: elsewhere,
        previous_status: CartStatus::Active,
        status: CartStatus::Merged,
        at: t(10, 0),
    });
    assert_eq!(
        merge_guest_cart(
            &state(seed_cart()),
            &state(guest_cart),
            guest_cart_id(),
            t(11, 0)
        ),
        Err(CartError::Merged {
            into_cart_id: elsewhere
        })
    );
}

#[test]
fn merge_guest_cart_refuses_carts_in_the_wrong_role_or_state() {
    let user_cart = state(seed_cart());
    let guest_cart = state(guest_events());
    let order = Uuid::new_v4();
    let guest_expiry = t(9, 20) + week();
    let cases: Vec<(&str, Cart, Cart, DateTime<Utc>, CartError)> = vec![
        (
            "guest side is a user cart",
            user_cart.clone(),
            state(vec![opened_as(guest_cart_id(), user(), t(9, 0))]),
            t(11, 0),
            CartError::NotAGuestCart {
                cart_id: guest_cart_id(),
            },
        ),
        (
            "user side is a guest cart",
            state(vec![opened_as(cart_id(), guest(), t(10, 0))]),
            guest_cart.clone(),
            t(11, 0),
            CartError::NotAUserCart { cart_id: cart_id() },
        ),
        (
            "guest cart never opened",
            user_cart.clone(),
            Cart::default(),
            t(11, 0),
            CartError::NotOpened,
        ),
        (
            "user cart never opened",
            Cart::default(),
            guest_cart.clone(),
            t(11, 0),
            CartError::NotOpened,
        ),
        (
            "guest cart checked out",
            user_cart.clone(),
            state({
                let mut events = guest_events();
                events.push(CartEvent::CartCheckedOut {
                    cart_id: guest_cart_id(),
                    owner: guest(),
                    order_id: order,
                    previous_status: CartStatus::Active,
                    status: CartStatus::CheckedOut,
                    at: t(10, 0),
                });
                events
            }),
            t(11, 0),
            CartError::AlreadyCheckedOut { order_id: order },
        ),
        (
            "guest cart past its expiry",
            state(vec![opened_as(cart_id(), user(), guest_expiry)]),
            guest_cart.clone(),
            guest_expiry,
            CartError::Expired {
                expires_at: guest_expiry,
            },
        ),
        (
            "user cart checked out",
            state({
                let mut events = seed_cart();
                events.push(checked_out(order));
                events
            }),
            guest_cart.clone(),
            t(11, 0),
            CartError::AlreadyCheckedOut { order_id: order },
        ),
    ];
    for (name, user_side, guest_side, at, error) in cases {
        assert_eq!(
            merge_guest_cart(&user_side, &guest_side, guest_cart_id(), at),
            Err(error),
            "{name}"
        );
    }
}

#[test]
fn an_empty_guest_cart_is_still_closed_by_the_merge() {
    let outcome = merge_guest_cart(
        &state(seed_cart()),
        &state(vec![opened_as(guest_cart_id(), guest(), t(9, 0))]),
        guest_cart_id(),
        t(11, 0),
    )
    .unwrap();
    assert_eq!(outcome.guest_cart_events, vec![guest_marked_merged()]);
    assert_eq!(
        outcome.user_cart_events,
        vec![CartEvent::GuestCartMerged {
            cart_id: cart_id(),
            owner: user(),
            guest_cart_id: guest_cart_id(),
            items: vec![iphone_line(2)],
            summary: summary(2, dec!(71800), dec!(5026), dec!(76826)),
            expires_at: t(11, 0) + week(),
            at: t(11, 0),
        }]
    );
}

// ---------------------------------------------------------------- state & shape

#[test]
fn the_state_exposes_what_checkout_needs() {
    let order = Uuid::new_v4();
    let mut events = seed_cart();
    events.extend([
        coupon_applied("SAVE10", None),
        CartEvent::CartShippingAddressSet {
            cart_id: cart_id(),
            owner: user(),
            address: address(),
            summary: summary(2, dec!(71800), dec!(5026), dec!(76826)),
            expires_at: t(10, 50) + week(),
            at: t(10, 50),
        },
        shipping_selected(dec!(50)),
    ]);
    let cart = state(events.clone());
    assert_eq!(cart.id(), Some(cart_id()));
    assert_eq!(cart.owner(), Some(&user()));
    assert_eq!(cart.status(), CartStatus::Active);
    assert_eq!(cart.items(), &[iphone_line(2)]);
    assert_eq!(cart.coupon_code(), Some(&coupon("SAVE10")));
    assert_eq!(cart.shipping_address(), Some(&address()));
    assert_eq!(
        cart.shipping_method(),
        Some(&ShippingSelection {
            method: standard(),
            fee: money(dec!(50)),
        })
    );
    assert_eq!(cart.summary().estimated_total, money(dec!(76826)));
    assert_eq!(cart.summary().shipping_fee, Some(money(dec!(50))));
    assert_eq!(cart.created_at(), Some(t(10, 0)));
    assert_eq!(cart.updated_at(), Some(t(10, 55)));
    assert_eq!(cart.expires_at(), Some(t(10, 55) + week()));
    assert_eq!(
        cart.check_out(order, t(11, 0)),
        Ok(vec![checked_out(order)])
    );
    events.push(checked_out(order));
    let done = state(events);
    assert_eq!(done.status(), CartStatus::CheckedOut);
    assert_eq!(done.order_id(), Some(order));
    assert_eq!(Cart::default().status(), CartStatus::NotOpened);
    assert_eq!(Cart::TYPE, "cart");
}

#[test]
fn the_default_policy_is_ten_per_line_for_seven_days() {
    let policy = CartPolicy::default();
    assert_eq!(policy.max_quantity_per_line, 10);
    assert_eq!(policy.ttl, Duration::days(7));
    let silly = CartPolicy {
        max_quantity_per_line: 0,
        ..policy.clone()
    };
    assert_eq!(silly.line_cap(), 1);
    let huge = CartPolicy {
        max_quantity_per_line: u32::MAX,
        ..policy
    };
    assert_eq!(huge.line_cap(), Quantity::MAX);
}

#[test]
fn owners_and_statuses_serialize_for_the_read_side() {
    assert_eq!(
        serde_json::to_value(guest()).unwrap(),
        serde_json::json!({"type": "guest", "session_id": "session_123"})
    );
    assert_eq!(
        serde_json::to_value(user()).unwrap(),
        serde_json::json!({"type": "user", "user_id": Uuid::from_u128(1)})
    );
    assert_eq!(user().user_id(), Some(Uuid::from_u128(1)));
    assert_eq!(user().session_id(), None);
    assert_eq!(
        guest().session_id().map(SessionId::as_str),
        Some("session_123")
    );
    for (status, text) in [
        (CartStatus::Active, "active"),
        (CartStatus::CheckedOut, "checked_out"),
        (CartStatus::Expired, "expired"),
        (CartStatus::Merged, "merged"),
    ] {
        assert_eq!(serde_json::to_value(status).unwrap(), text);
    }
}

#[test]
fn event_types_are_the_variant_names_at_version_one() {
    let order = Uuid::new_v4();
    let expires_at = t(10, 30) + week();
    let mut all = seed_cart();
    all.extend([
        CartEvent::CartItemQuantityChanged {
            cart_id: cart_id(),
            owner: user(),
            line: iphone_line(1),
            previous_quantity: qty(2),
            items: vec![iphone_line(1)],
            summary: CartSummary::default(),
            expires_at,
            at: t(10, 30),
        },
        CartEvent::CartItemRemoved {
            cart_id: cart_id(),
            owner: user(),
            line: iphone_line(1),
            items: vec![],
            summary: CartSummary::default(),
            expires_at,
            at: t(10, 30),
        },
        coupon_applied("SAVE10", None),
        CartEvent::CartCouponRemoved {
            cart_id: cart_id(),
            owner: user(),
            coupon_code: coupon("SAVE10"),
            summary: CartSummary::default(),
            expires_at,
            at: t(10, 30),
        },
        CartEvent::CartShippingAddressSet {
            cart_id: cart_id(),
            owner: user(),
            address: address(),
            summary: CartSummary::default(),
            expires_at,
            at: t(10, 30),
        },
        shipping_selected(dec!(50)),
        merged_user_cart_event(),
        guest_marked_merged(),
        checked_out(order),
        expired(expires_at, expires_at),
    ]);
    let names = [
        "CartOpened",
        "CartItemAdded",
        "CartItemQuantityChanged",
        "CartItemRemoved",
        "CartCouponApplied",
        "CartCouponRemoved",
        "CartShippingAddressSet",
        "CartShippingMethodSelected",
        "GuestCartMerged",
        "CartMergedInto",
        "CartCheckedOut",
        "CartExpired",
    ];
    assert_eq!(all.len(), names.len());
    for (event, name) in all.into_iter().zip(names) {
        assert_eq!(event.event_type(), name);
        assert_eq!(event.event_version(), "1");
        let json = serde_json::to_value(&event).unwrap();
        assert!(json.get(name).is_some(), "externally tagged: {json}");
        assert_eq!(serde_json::from_value::<CartEvent>(json).unwrap(), event);
    }
}

#[test]
fn money_in_events_serializes_as_strings() {
    let json = serde_json::to_value(&seed_cart()[1]).unwrap();
    let added = &json["CartItemAdded"];
    assert_eq!(added["summary"]["estimated_total"], "76826.00");
    assert_eq!(added["summary"]["item_count"], 2);
    assert_eq!(added["line"]["unit_price"], "35900.00");
    assert_eq!(added["line"]["total_price"], "71800.00");
    assert_eq!(added["line"]["options"]["storage"], "256GB");
}

#[test]
fn the_state_survives_a_serde_round_trip() {
    let mut events = seed_cart();
    events.push(merged_user_cart_event());
    let cart = state(events);
    let json = serde_json::to_string(&cart).unwrap();
    assert_eq!(serde_json::from_str::<Cart>(&json).unwrap(), cart);
}

// ---------------------------------------------------------------- properties

#[derive(Debug, Clone)]
enum Op {
    Add {
        product: u8,
        option: u8,
        cents: i64,
        quantity: i64,
    },
    Change {
        product: u8,
        option: u8,
        quantity: u32,
    },
    Remove {
        product: u8,
        option: u8,
    },
    Ship {
        cents: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 0u8..2, 0i64..10_000_000, 1i64..6).prop_map(|(product, option, cents, quantity)| Op::Add {
            product,
            option,
            cents,
            quantity
        }),
        2 => (0u8..4, 0u8..2, 0u32..12).prop_map(|(product, option, quantity)| Op::Change {
            product,
            option,
            quantity
        }),
        1 => (0u8..4, 0u8..2).prop_map(|(product, option)| Op::Remove { product, option }),
        1 => (0i64..100_000).prop_map(|cents| Op::Ship { cents }),
    ]
}

fn key_of(product: u8, option: u8) -> CartLineKey {
    CartLineKey {
        product_id: Uuid::from_u128(u128::from(product) + 1),
        variant_id: None,
        options: BTreeMap::from([("size".to_owned(), option.to_string())]),
    }
}

fn assert_reconciles(cart: &Cart, cap: u32) -> Result<(), TestCaseError> {
    let s = cart.summary();
    let mut subtotal = rust_decimal::Decimal::ZERO;
    let mut count = 0u64;
    for (i, line) in cart.items().iter().enumerate() {
        prop_assert_eq!(
            line.total_price.amount(),
            line.unit_price.amount() * rust_decimal::Decimal::from(line.quantity.get())
        );
        prop_assert!(line.quantity.get() <= cap);
        prop_assert!(cart.items()[..i]
            .iter()
            .all(|other| other.key() != line.key()));
        subtotal += line.total_price.amount();
        count += u64::from(line.quantity.get());
    }
    prop_assert_eq!(s.subtotal.amount(), subtotal);
    prop_assert_eq!(s.estimated_tax, vat_on(s.subtotal));
    prop_assert_eq!(
        s.estimated_total.amount(),
        s.subtotal.amount() + s.estimated_tax.amount()
    );
    prop_assert_eq!(s.item_count, count);
    prop_assert_eq!(s.shipping_fee, cart.shipping_method().map(|m| m.fee));
    Ok(())
}

proptest! {
    /// Whatever the sequence of changes, the summary reconciles with the lines:
    /// subtotal = Σ line totals, tax = vat_on(subtotal), total = subtotal + tax.
    #[test]
    fn the_summary_always_reconciles(ops in proptest::collection::vec(op(), 0..40)) {
        let policy = CartPolicy::default();
        let mut cart = state(vec![opened()]);
        let at = t(10, 30);
        for op in ops {
            let result = match op {
                Op::Add { product, option, cents, quantity } => {
                    let key = key_of(product, option);
                    let item = CatalogItem {
                        product_id: key.product_id,
                        unit_price: money(rust_decimal::Decimal::new(cents, 2)),
                        ..case()
                    };
                    cart.add_item(item, qty(quantity), key.options, &policy, at)
                }
                Op::Change { product, option, quantity } => {
                    cart.change_item_quantity(&key_of(product, option), quantity, &policy, at)
                }
                Op::Remove { product, option } => {
                    cart.remove_item(&key_of(product, option), &policy, at)
                }
                Op::Ship { cents } => cart.select_shipping_method(
                    standard(),
                    money(rust_decimal::Decimal::new(cents, 2)),
                    &policy,
                    at,
                ),
            };
            if let Ok(events) = result {
                for event in events {
                    cart.apply(event);
                }
            }
            assert_reconciles(&cart, policy.line_cap())?;
        }
    }

    /// A merge keeps every line of both carts once, at the larger capped
    /// quantity, and its summary reconciles.
    #[test]
    fn a_merge_keeps_every_line_at_the_larger_quantity(
        user_lines in proptest::collection::btree_map((0u8..4, 0u8..2), 1i64..11, 0..6),
        guest_lines in proptest::collection::btree_map((0u8..4, 0u8..2), 1i64..11, 0..6),
    ) {
        let policy = CartPolicy::default();
        let build = |id: Uuid, owner: CartOwner, lines: &BTreeMap<(u8, u8), i64>, cents: i64| {
            let mut cart = state(vec![opened_as(id, owner, t(9, 0))]);
            for (&(product, option), &n) in lines {
                let key = key_of(product, option);
                let item = CatalogItem {
                    product_id: key.product_id,
                    unit_price: money(rust_decimal::Decimal::new(cents, 2)),
                    ..case()
                };
                for event in cart.add_item(item, qty(n), key.options, &policy, t(9, 30)).unwrap() {
                    cart.apply(event);
                }
            }
            cart
        };
        let mut user_cart = build(cart_id(), user(), &user_lines, 12_345);
        let guest_cart = build(guest_cart_id(), guest(), &guest_lines, 99);
        let outcome = merge_guest_cart(&user_cart, &guest_cart, guest_cart_id(), t(11, 0)).unwrap();
        prop_assert_eq!(outcome.guest_cart_events.len(), 1);
        for event in outcome.user_cart_events {
            user_cart.apply(event);
        }
        assert_reconciles(&user_cart, policy.line_cap())?;
        let keys: BTreeSet<_> = user_lines.keys().chain(guest_lines.keys()).collect();
        prop_assert_eq!(user_cart.items().len(), keys.len());
        for (product, option) in keys {
            let line = user_cart
                .items()
                .iter()
                .find(|l| l.key() == key_of(*product, *option))
                .unwrap();
            let user_q = user_lines.get(&(*product, *option)).copied().unwrap_or(0);
            let guest_q = guest_lines.get(&(*product, *option)).copied().unwrap_or(0);
            prop_assert_eq!(i64::from(line.quantity.get()), user_q.max(guest_q));
            let cents = if user_q > 0 { 12_345 } else { 99 };
            prop_assert_eq!(line.unit_price.amount(), rust_decimal::Decimal::new(cents, 2));
        }
    }
}

mod line_ids {
    use super::*;

    fn key(product: u128, variant: Option<u128>, options: &[(&str, &str)]) -> CartLineKey {
        CartLineKey {
            product_id: Uuid::from_u128(product),
            variant_id: variant.map(Uuid::from_u128),
            options: options
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_line_id_names_its_product_variant_and_options_and_nothing_else() {
        let line = key(1, Some(2), &[("color", "black"), ("storage", "256GB")]);
        assert_eq!(line.item_id(), line.clone().item_id(), "stable");
        assert_eq!(line.item_id().get_version_num(), 5);
        for other in [
            key(9, Some(2), &[("color", "black"), ("storage", "256GB")]),
            key(1, None, &[("color", "black"), ("storage", "256GB")]),
            key(1, Some(2), &[("color", "white"), ("storage", "256GB")]),
            key(1, Some(2), &[("color", "black")]),
        ] {
            assert_ne!(line.item_id(), other.item_id(), "{other:?}");
        }
    }

    #[test]
    fn owners_have_distinct_keys() {
        let user = CartOwner::User {
            user_id: Uuid::from_u128(7),
        };
        let guest = CartOwner::Guest {
            session_id: SessionId::parse("abc").unwrap(),
        };
        assert_eq!(user.key(), format!("user:{}", Uuid::from_u128(7)));
        assert_eq!(guest.key(), "guest:abc");
    }
}
