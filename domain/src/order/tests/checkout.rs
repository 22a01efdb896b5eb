//! The checkout decision: a table of refusals, the amounts of accepted
//! checkouts (free shipping, a capped discount, mixed VAT), the streams it
//! writes, idempotency per cart, and a property that totals always reconcile.

use std::collections::BTreeMap;

use cqrs_es::Aggregate;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use uuid::Uuid;

use super::support::*;
use crate::cart::{Cart, CartEvent, CartOwner, CartStatus};
use crate::inventory::{inventory_stream_id, Inventory, InventoryEvent};
use crate::order::{
    place_order, CatalogEntry, CheckoutError, CheckoutInput, CheckoutOutcome, CouponState, Order,
    OrderEvent, OrderStatus, PaymentMethodCode, PaymentStatus, PlacedOrder,
};
use crate::promotion::coupon::tests::{coupon_from, issued, COUPON, PROMOTION};
use crate::promotion::promotion::tests::{created, fixed, percent, promotion_from, terms, used};
use crate::promotion::{
    Applicability, Coupon, CouponEvent, CustomerUsage, CustomerUsageEvent, Promotion,
    PromotionEvent, PromotionKind, PromotionTerms, PromotionType,
};
use crate::values::{CouponCode, Money, OrderNumber, PostalAddress, PostalAddressInput, Sku};

/// Everything `place_order` reads, owned, so each case tweaks one thing.
#[derive(Clone)]
struct Scenario {
    cart: Cart,
    catalog: BTreeMap<Sku, CatalogEntry>,
    inventories: BTreeMap<Sku, Inventory>,
    coupon: Option<(Coupon, Promotion)>,
    automatic: Vec<Promotion>,
    user_redemptions: BTreeMap<Uuid, u32>,
    user_can_order: bool,
    expected_total: Option<Money>,
    item_ids: Vec<Uuid>,
    shipping_address: Option<PostalAddress>,
    payment_method: Option<PaymentMethodCode>,
    customer_usage: BTreeMap<Uuid, CustomerUsage>,
    now: chrono::DateTime<Utc>,
}

fn coupon_code() -> CouponCode {
    CouponCode::parse("SAVE10").unwrap()
}

fn promotion(terms: PromotionTerms) -> Promotion {
    promotion_from(vec![created(PROMOTION, terms)])
}

impl Scenario {
    /// The seed's cart: two iPhones (71800) shipped "standard" for 50, stock 10.
    fn seed() -> Self {
        Self::with_lines(user(), &[line(iphone(), 2)], None)
    }

    fn with_lines(
        owner: CartOwner,
        lines: &[(Product, i64, BTreeMap<String, String>)],
        coupon: Option<&str>,
    ) -> Self {
        let cart = cart_with(owner, lines, dec!(50), coupon);
        let mut catalog = BTreeMap::new();
        let mut inventories = BTreeMap::new();
        for (product, _, _) in lines {
            catalog.insert(product.sku.clone(), product.entry());
            inventories.insert(product.sku.clone(), stock(product, 10, true));
        }
        Self {
            item_ids: (0..lines.len() as u128)
                .map(|i| Uuid::from_u128(0x1_0000 + i))
                .collect(),
            cart,
            catalog,
            inventories,
            coupon: None,
            automatic: vec![],
            user_redemptions: BTreeMap::new(),
            user_can_order: true,
            expected_total: None,
            shipping_address: None,
            payment_method: None,
            customer_usage: BTreeMap::new(),
            now: t(10),
        }
    }

    /// The seed's cart with coupon SAVE10 for a promotion with `terms`.
    fn with_coupon(terms: PromotionTerms) -> Self {
        Self::with_coupon_history(vec![created(PROMOTION, terms)])
    }

    fn with_coupon_history(promotion_events: Vec<PromotionEvent>) -> Self {
        let mut scenario = Self::with_lines(user(), &[line(iphone(), 2)], Some("save10"));
        scenario.coupon = Some((
            coupon_from(vec![issued()]),
            promotion_from(promotion_events),
        ));
        scenario
    }

    fn run(&self) -> Result<CheckoutOutcome, CheckoutError> {
        let inventories: BTreeMap<Sku, &Inventory> = self
            .inventories
            .iter()
            .map(|(sku, inventory)| (sku.clone(), inventory))
            .collect();
        let automatic: Vec<&Promotion> = self.automatic.iter().collect();
        place_order(CheckoutInput {
            order_id: ORDER,
            item_ids: &self.item_ids,
            cart: &self.cart,
            catalog: &self.catalog,
            inventories: &inventories,
            coupon: self
                .coupon
                .as_ref()
                .map(|(coupon, promotion)| CouponState { coupon, promotion }),
            automatic_promotions: &automatic,
            user_redemptions: &self.user_redemptions,
            customer_usage: &self
                .customer_usage
                .iter()
                .map(|(id, usage)| (*id, usage))
                .collect(),
            user_can_order: self.user_can_order,
            shipping_address: self.shipping_address.clone(),
            billing_address: None,
            payment_method: self.payment_method.clone(),
            expected_total: self.expected_total,
            notes: None,
            order_sequence: 123,
            now: self.now,
        })
    }

    fn placed(&self) -> PlacedOrder {
        match self.run() {
            Ok(CheckoutOutcome::Placed(placed)) => *placed,
            other => panic!("expected a placed order, got {other:?}"),
        }
    }
}

/// The amounts OrderPlaced carries: subtotal, discount, shipping, tax, total.
fn amounts(placed: &PlacedOrder) -> [Decimal; 5] {
    match &placed.order[..] {
        [OrderEvent::OrderPlaced {
            subtotal,
            discount_amount,
            shipping_amount,
            tax_amount,
            total_amount,
            ..
        }] => [
            subtotal,
            discount_amount,
            shipping_amount,
            tax_amount,
            total_amount,
        ]
        .map(|m| m.amount()),
        other => panic!("expected one OrderPlaced, got {other:?}"),
    }
}

#[test]
fn refusals() {
    let iphone_sku = iphone().sku;
    let code = coupon_code;
    let cases: Vec<(&str, Scenario, CheckoutError)> = vec![
        (
            "stale price: the catalog moved since the cart was priced",
            {
                let mut s = Scenario::seed();
                s.catalog.get_mut(&iphone_sku).unwrap().price = money(dec!(36900));
                s
            },
            CheckoutError::PriceChanged {
                sku: iphone_sku.clone(),
                expected: money(dec!(35900)),
                current: money(dec!(36900)),
            },
        ),
        (
            "a price drop is also a change the customer has not seen",
            {
                let mut s = Scenario::seed();
                s.catalog.get_mut(&iphone_sku).unwrap().price = money(dec!(34900));
                s
            },
            CheckoutError::PriceChanged {
                sku: iphone_sku.clone(),
                expected: money(dec!(35900)),
                current: money(dec!(34900)),
            },
        ),
        (
            "stale total: the client displayed another total",
            {
                let mut s = Scenario::seed();
                s.expected_total = Some(money(dec!(76826)));
                s
            },
            CheckoutError::TotalChanged {
                expected: money(dec!(76826)),
                current: money(dec!(76876)),
            },
        ),
        (
            "insufficient stock",
            {
                let mut s = Scenario::seed();
                s.inventories
                    .insert(iphone_sku.clone(), stock(&iphone(), 1, true));
                s
            },
            CheckoutError::InsufficientStock {
                sku: iphone_sku.clone(),
                requested: 2,
                available: 1,
            },
        ),
        (
            "stock never initialized: the sku cannot be sold",
            {
                let mut s = Scenario::seed();
                s.inventories
                    .insert(iphone_sku.clone(), Inventory::default());
                s
            },
            CheckoutError::ProductUnavailable {
                sku: iphone_sku.clone(),
            },
        ),
        (
            "stock not loaded",
            {
                let mut s = Scenario::seed();
                s.inventories.clear();
                s
            },
            CheckoutError::InventoryMissing {
                sku: iphone_sku.clone(),
            },
        ),
        (
            "product deactivated",
            {
                let mut s = Scenario::seed();
                s.catalog.get_mut(&iphone_sku).unwrap().is_active = false;
                s
            },
            CheckoutError::ProductUnavailable {
                sku: iphone_sku.clone(),
            },
        ),
        (
            "product gone from the catalog",
            {
                let mut s = Scenario::seed();
                s.catalog.clear();
                s
            },
            CheckoutError::ProductUnavailable {
                sku: iphone_sku.clone(),
            },
        ),
        (
            "expired coupon",
            Scenario::with_coupon(PromotionTerms {
                ends_at: t(10),
                ..terms()
            }),
            CheckoutError::CouponExpired { code: code() },
        ),
        (
            "coupon not yet valid",
            Scenario::with_coupon(PromotionTerms {
                starts_at: t(11),
                ..terms()
            }),
            CheckoutError::CouponNotYetValid {
                code: code(),
                starts_at: t(11),
            },
        ),
        (
            "coupon at its limit",
            Scenario::with_coupon_history(vec![
                created(
                    PROMOTION,
                    PromotionTerms {
                        usage_limit: Some(2),
                        ..terms()
                    },
                ),
                used(PROMOTION, 1),
                used(PROMOTION, 2),
            ]),
            CheckoutError::CouponLimitReached {
                code: code(),
                limit: 2,
            },
        ),
        (
            "coupon at its per-user limit",
            {
                let mut s = Scenario::with_coupon(PromotionTerms {
                    usage_limit_per_user: Some(1),
                    ..terms()
                });
                s.user_redemptions.insert(PROMOTION, 1);
                s
            },
            CheckoutError::CouponPerUserLimitReached {
                code: code(),
                limit: 1,
            },
        ),
        (
            "coupon minimum not met by the subtotal",
            Scenario::with_coupon(PromotionTerms {
                minimum_amount: Some(money(dec!(100000))),
                ..terms()
            }),
            CheckoutError::CouponMinimumNotMet {
                code: code(),
                minimum: money(dec!(100000)),
                subtotal: money(dec!(71800)),
            },
        ),
        (
            "coupon for other products",
            Scenario::with_coupon(PromotionTerms {
                applicable_to: Applicability::Products {
                    ids: [NOVEL].into(),
                },
                ..terms()
            }),
            CheckoutError::CouponNotApplicable { code: code() },
        ),
        (
            "coupon deactivated",
            {
                let mut s = Scenario::with_coupon(terms());
                s.coupon.as_mut().unwrap().0 = coupon_from(vec![
                    issued(),
                    CouponEvent::CouponDeactivated {
                        coupon_id: COUPON,
                        code: code(),
                        at: t(5),
                    },
                ]);
                s
            },
            CheckoutError::CouponInactive { code: code() },
        ),
        (
            "promotion behind the coupon deactivated",
            Scenario::with_coupon_history(vec![
                created(PROMOTION, terms()),
                PromotionEvent::PromotionDeactivated {
                    promotion_id: PROMOTION,
                    at: t(5),
                },
            ]),
            CheckoutError::CouponInactive { code: code() },
        ),
        (
            "coupon code unknown",
            {
                let mut s = Scenario::with_coupon(terms());
                s.coupon = None;
                s
            },
            CheckoutError::CouponNotFound { code: code() },
        ),
        (
            "suspended or inactive user",
            {
                let mut s = Scenario::seed();
                s.user_can_order = false;
                s
            },
            CheckoutError::UserCannotOrder {
                user_id: Some(USER),
            },
        ),
        (
            "empty cart",
            Scenario::with_lines(user(), &[], None),
            CheckoutError::EmptyCart,
        ),
        (
            "cart never opened",
            {
                let mut s = Scenario::seed();
                s.cart = Cart::default();
                s
            },
            CheckoutError::CartNotActive {
                status: CartStatus::NotOpened,
            },
        ),
        (
            "cart past its expiry",
            {
                let mut s = Scenario::seed();
                s.now = expired_by(&s.cart);
                s
            },
            CheckoutError::CartNotActive {
                status: CartStatus::Expired,
            },
        ),
        (
            "fewer item ids than lines",
            {
                let mut s = Scenario::seed();
                s.item_ids.clear();
                s
            },
            CheckoutError::ItemIdsMissing { lines: 1, ids: 0 },
        ),
    ];
    for (name, scenario, expected) in cases {
        assert_eq!(scenario.run(), Err(expected), "{name}");
    }
}

#[test]
fn a_cart_without_shipping_details_is_refused() {
    let mut scenario = Scenario::seed();
    let mut cart = Cart::default();
    apply(
        &mut cart,
        crate::cart::open_cart(None, CART, user(), t(9)).unwrap(),
    );
    let events = cart
        .add_item(
            iphone().catalog_item(),
            qty(2),
            BTreeMap::new(),
            &Default::default(),
            t(9),
        )
        .unwrap();
    apply(&mut cart, events);
    scenario.cart = cart.clone();
    assert_eq!(scenario.run(), Err(CheckoutError::ShippingAddressMissing));
    let events = cart
        .set_shipping_address(address(), &Default::default(), t(9))
        .unwrap();
    apply(&mut cart, events);
    scenario.cart = cart;
    assert_eq!(scenario.run(), Err(CheckoutError::ShippingMethodMissing));
}

#[test]
fn the_requests_shipping_address_and_payment_method_go_into_the_order() {
    // Given the seed's cart, which holds an address, and a request naming another
    let elsewhere = PostalAddress::new(PostalAddressInput {
        first_name: "Malee".into(),
        last_name: "Sukjai".into(),
        street_address_1: "9 Nimman Rd".into(),
        city: "Chiang Mai".into(),
        state_province: "Chiang Mai".into(),
        postal_code: "50200".into(),
        ..Default::default()
    })
    .unwrap();
    let mut scenario = Scenario::seed();
    scenario.shipping_address = Some(elsewhere.clone());
    scenario.payment_method = Some(PaymentMethodCode::parse("promptpay").unwrap());
    // When it is checked out
    let placed = scenario.placed();
    // Then the order ships there, bills there (no billing address given) and records the method
    let OrderEvent::OrderPlaced {
        shipping_address,
        billing_address,
        payment_method,
        ..
    } = &placed.order[0]
    else {
        panic!("expected OrderPlaced");
    };
    assert_eq!(shipping_address, &elsewhere);
    assert_eq!(billing_address, &elsewhere);
    assert_eq!(payment_method.as_ref().unwrap().as_str(), "promptpay");
}

#[test]
fn payment_method_codes_are_lower_case_words() {
    for good in ["credit_card", "promptpay", "bank_transfer2"] {
        assert!(PaymentMethodCode::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "Credit",
        "credit-card",
        "_card",
        "card_",
        "a__b",
        &"a".repeat(51),
    ] {
        assert!(PaymentMethodCode::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn accepted_checkouts_and_their_amounts() {
    // [subtotal, discount, shipping, tax, total]
    let cases: Vec<(&str, Scenario, [Decimal; 5])> = vec![
        (
            "the seed cart: 71800 + 50 shipping + 5026 VAT",
            Scenario::seed(),
            [dec!(71800), dec!(0), dec!(50), dec!(5026), dec!(76876)],
        ),
        (
            "10% coupon: VAT on the discounted amount",
            Scenario::with_coupon(terms()),
            [
                dec!(71800),
                dec!(7180),
                dec!(50),
                dec!(4523.40),
                dec!(69193.40),
            ],
        ),
        (
            "free-shipping coupon zeroes the fee",
            Scenario::with_coupon(PromotionTerms {
                kind: PromotionKind::FreeShipping,
                ..terms()
            }),
            [dec!(71800), dec!(0), dec!(0), dec!(5026), dec!(76826)],
        ),
        (
            "a 50% coupon clamped at its maximum_discount of 1000",
            Scenario::with_coupon(PromotionTerms {
                kind: percent(dec!(50)),
                maximum_discount: Some(money(dec!(1000))),
                ..terms()
            }),
            [dec!(71800), dec!(1000), dec!(50), dec!(4956), dec!(75806)],
        ),
        (
            "mixed taxable lines: the VAT-exempt book adds no VAT",
            Scenario::with_lines(user(), &[line(iphone(), 2), line(novel(), 1)], None),
            [dec!(72200), dec!(0), dec!(50), dec!(5026), dec!(77276)],
        ),
        (
            "mixed lines with a books promotion: VAT unchanged, the book discounted",
            {
                let mut s =
                    Scenario::with_lines(user(), &[line(iphone(), 2), line(novel(), 1)], None);
                s.automatic = vec![promotion_from(vec![created(
                    Uuid::from_u128(0x900),
                    PromotionTerms {
                        kind: fixed(dec!(100)),
                        applicable_to: Applicability::Categories {
                            ids: [BOOKS].into(),
                        },
                        ..terms()
                    },
                )])];
                s
            },
            [dec!(72200), dec!(100), dec!(50), dec!(5026), dec!(77176)],
        ),
        (
            "a guest can order",
            Scenario::with_lines(guest(), &[line(iphone(), 1)], None),
            [dec!(35900), dec!(0), dec!(50), dec!(2513), dec!(38463)],
        ),
        (
            "untracked stock does not refuse",
            {
                let mut s = Scenario::seed();
                s.inventories
                    .insert(iphone().sku, stock(&iphone(), 0, false));
                s
            },
            [dec!(71800), dec!(0), dec!(50), dec!(5026), dec!(76876)],
        ),
        (
            "the expected total matches",
            {
                let mut s = Scenario::seed();
                s.expected_total = Some(money(dec!(76876)));
                s
            },
            [dec!(71800), dec!(0), dec!(50), dec!(5026), dec!(76876)],
        ),
    ];
    for (name, scenario, expected) in cases {
        let placed = scenario.placed();
        assert_eq!(amounts(&placed), expected, "{name}");
        let [subtotal, discount, shipping, tax, total] = expected;
        assert_eq!(total, subtotal - discount + shipping + tax, "{name}");
    }
}

#[test]
fn a_placed_order_writes_every_stream_it_touches() {
    let scenario = Scenario::with_coupon(terms());
    let placed = scenario.placed();
    let iphone = iphone();

    assert_eq!(placed.order_id, ORDER);
    assert_eq!(placed.cart_id, CART);
    assert!(matches!(
        &placed.cart[..],
        [CartEvent::CartCheckedOut {
            order_id: ORDER,
            status: CartStatus::CheckedOut,
            ..
        }]
    ));
    assert_eq!(placed.inventory.len(), 1);
    assert_eq!(placed.inventory[0].0, inventory_stream_id(&iphone.sku));
    assert!(matches!(
        &placed.inventory[0].1[0],
        InventoryEvent::StockReserved { order_id: ORDER, quantity, available: 8, .. } if quantity.get() == 2
    ));
    assert_eq!(
        placed.coupon,
        Some((
            COUPON,
            vec![CouponEvent::CouponRedeemed {
                coupon_id: COUPON,
                code: coupon_code(),
                promotion_id: PROMOTION,
                order_id: ORDER,
                user_id: Some(USER),
                usage_count: 1,
                redeemed_at: t(10),
            }]
        ))
    );
    assert_eq!(
        placed.promotions,
        vec![(
            PROMOTION,
            vec![PromotionEvent::PromotionUsageRecorded {
                promotion_id: PROMOTION,
                order_id: ORDER,
                user_id: Some(USER),
                coupon_id: Some(COUPON),
                usage_count: 1,
                at: t(10),
            }]
        )]
    );

    let [OrderEvent::OrderPlaced {
        order_number,
        user_id,
        status,
        payment_status,
        items,
        billing_address,
        shipping_address,
        shipping_method,
        coupon,
        promotions,
        reserved_stock,
        ..
    }] = &placed.order[..]
    else {
        panic!("expected one OrderPlaced");
    };
    assert_eq!(
        order_number,
        &OrderNumber::parse("ORD-2024-000123").unwrap()
    );
    assert_eq!(*user_id, Some(USER));
    assert_eq!(
        (*status, *payment_status),
        (OrderStatus::Pending, PaymentStatus::Pending)
    );
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item.order_item_id, Uuid::from_u128(0x1_0000));
    assert_eq!(item.product_name, "iPhone 15 Pro");
    assert_eq!(item.product_sku, iphone.sku);
    assert_eq!(item.unit_price, money(dec!(35900)));
    assert_eq!(item.quantity, qty(2));
    assert_eq!(item.total_price, money(dec!(71800)));
    assert_eq!(item.discount_amount, money(dec!(7180)));
    assert_eq!(shipping_address, &address());
    assert_eq!(billing_address, &address());
    assert_eq!(shipping_method.as_str(), "standard");
    assert_eq!(coupon.as_ref().map(|c| c.coupon_id), Some(COUPON));
    assert_eq!(promotions.len(), 1);
    assert_eq!(promotions[0].promotion_type, PromotionType::Percentage);
    assert_eq!(reserved_stock.len(), 1);

    // The order stream rebuilt from the event is the pending order.
    let mut order = Order::default();
    order.apply(placed.order[0].clone());
    assert_eq!(order.status(), OrderStatus::Pending);
    assert_eq!(order.total_amount(), money(dec!(69193.40)));
}

#[test]
fn the_snapshot_takes_the_catalog_name_and_image_and_keeps_line_options() {
    let mut options = BTreeMap::new();
    options.insert("color".to_owned(), "black".to_owned());
    let mut scenario = Scenario::with_lines(user(), &[(iphone(), 1, options.clone())], None);
    let entry = scenario.catalog.get_mut(&iphone().sku).unwrap();
    entry.name = "iPhone 15 Pro (2024)".into();
    entry.image_url = Some(crate::values::Url::parse("https://cdn.example.com/i.jpg").unwrap());
    let placed = scenario.placed();
    let [OrderEvent::OrderPlaced { items, .. }] = &placed.order[..] else {
        panic!("expected one OrderPlaced");
    };
    assert_eq!(items[0].product_name, "iPhone 15 Pro (2024)");
    assert_eq!(
        items[0].product_image_url.as_ref().unwrap().as_str(),
        "https://cdn.example.com/i.jpg"
    );
    assert_eq!(items[0].product_options, options);
}

#[test]
fn lines_of_one_sku_share_a_single_reservation() {
    let black = BTreeMap::from([("color".to_owned(), "black".to_owned())]);
    let white = BTreeMap::from([("color".to_owned(), "white".to_owned())]);
    let mut scenario =
        Scenario::with_lines(user(), &[(iphone(), 2, black), (iphone(), 3, white)], None);
    scenario
        .inventories
        .insert(iphone().sku, stock(&iphone(), 4, true));
    assert_eq!(
        scenario.run(),
        Err(CheckoutError::InsufficientStock {
            sku: iphone().sku,
            requested: 5,
            available: 4,
        })
    );
    scenario
        .inventories
        .insert(iphone().sku, stock(&iphone(), 5, true));
    let placed = scenario.placed();
    assert_eq!(placed.inventory.len(), 1);
    assert!(matches!(
        &placed.inventory[0].1[0],
        InventoryEvent::StockReserved { quantity, available: 0, .. } if quantity.get() == 5
    ));
}

#[test]
fn an_automatic_promotion_records_its_use_without_a_coupon() {
    let mut scenario =
        Scenario::with_lines(user(), &[line(iphone(), 1), line(phone_case(), 1)], None);
    let auto = Uuid::from_u128(0x901);
    scenario.automatic = vec![promotion_from(vec![created(
        auto,
        PromotionTerms {
            kind: percent(dec!(10)),
            applicable_to: Applicability::Products { ids: [CASE].into() },
            ..terms()
        },
    )])];
    let placed = scenario.placed();
    assert_eq!(amounts(&placed)[1], dec!(49));
    assert_eq!(placed.coupon, None);
    assert_eq!(
        placed.promotions,
        vec![(
            auto,
            vec![PromotionEvent::PromotionUsageRecorded {
                promotion_id: auto,
                order_id: ORDER,
                user_id: Some(USER),
                coupon_id: None,
                usage_count: 1,
                at: t(10),
            }]
        )]
    );
}

#[test]
fn a_checked_out_cart_is_already_placed_with_no_events() {
    let mut scenario = Scenario::seed();
    scenario.cart = checked_out(&scenario.cart, ORDER);
    assert_eq!(
        scenario.run(),
        Ok(CheckoutOutcome::AlreadyPlaced { order_id: ORDER })
    );
    // Even when the retry carries another order id: the cart knows its order.
    let other = Uuid::from_u128(0xbad);
    let mut retry = Scenario::seed();
    retry.cart = checked_out(&retry.cart, other);
    assert_eq!(
        retry.run(),
        Ok(CheckoutOutcome::AlreadyPlaced { order_id: other })
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn placed_totals_always_reconcile(
            iphones in 1i64..=5,
            books in 0i64..=3,
            fee in 0i64..=20_000,
            percentage in 1i64..=10_000,
            cap in proptest::option::of(1i64..=10_000_000),
            free_shipping in any::<bool>(),
        ) {
            let mut lines = vec![line(iphone(), iphones)];
            if books > 0 {
                lines.push(line(novel(), books));
            }
            let mut scenario = Scenario::with_lines(user(), &lines, Some("save10"));
            scenario.cart = cart_with(user(), &lines, Decimal::new(fee, 2), Some("save10"));
            let kind = if free_shipping { PromotionKind::FreeShipping } else { percent(Decimal::new(percentage, 2)) };
            let maximum_discount = cap.map(|c| money(Decimal::new(c, 2)));
            scenario.coupon = Some((
                coupon_from(vec![issued()]),
                promotion(PromotionTerms { kind, maximum_discount, ..terms() }),
            ));
            let placed = scenario.placed();
            let [subtotal, discount, shipping, tax, total] = amounts(&placed);
            prop_assert_eq!(total, subtotal - discount + shipping + tax);
            prop_assert!(total >= Decimal::ZERO);
            prop_assert!(discount <= subtotal);
            if let Some(cap) = maximum_discount {
                prop_assert!(discount <= cap.amount());
                prop_assert!(Decimal::new(fee, 2) - shipping <= cap.amount());
            }
        }
    }
}

#[test]
fn the_customers_usage_stream_counts_against_the_per_user_limit_and_records_the_use() {
    let limited = PromotionTerms {
        usage_limit_per_user: Some(1),
        ..terms()
    };
    // Given a customer whose usage stream holds no use, while the lagging
    // read model already counts one
    let mut scenario = Scenario::with_coupon(limited.clone());
    scenario.user_redemptions.insert(PROMOTION, 1);
    scenario
        .customer_usage
        .insert(PROMOTION, CustomerUsage::default());
    // When the order is placed
    let placed = scenario.placed();
    // Then the stream's count decided, and the use is recorded on it
    let user_id = user().user_id().unwrap();
    assert_eq!(
        placed.customer_usage,
        vec![(
            crate::promotion::customer_usage_stream_id(PROMOTION, user_id),
            vec![CustomerUsageEvent::CustomerUsageRecorded {
                promotion_id: PROMOTION,
                user_id,
                order_id: ORDER,
                uses: 1,
                at: scenario.now,
            }]
        )]
    );

    // Given the stream holding that use, when the customer checks out again
    let mut usage = CustomerUsage::default();
    let (_, events) = &placed.customer_usage[0];
    apply(&mut usage, events.clone());
    let mut again = Scenario::with_coupon(limited);
    again.customer_usage.insert(PROMOTION, usage);
    // Then the per-user limit refuses it, whatever the read model says
    assert_eq!(
        again.run(),
        Err(CheckoutError::CouponPerUserLimitReached {
            code: coupon_code(),
            limit: 1
        })
    );
}
