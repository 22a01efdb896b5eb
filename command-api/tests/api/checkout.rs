//! The checkout over HTTP: one append for the order, its stock, coupon,
//! promotion and customer usage, and the cart; prices re-read; the
//! concurrency cases that commerce platforms get wrong.

use std::collections::BTreeMap;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

const ADDRESS: &str = r#"{"first_name": "Somchai", "last_name": "Jaidee",
    "street_address_1": "1 Sukhumvit Rd", "city": "Bangkok", "state_province": "Bangkok",
    "postal_code": "10110"}"#;

pub(crate) fn address() -> Value {
    serde_json::from_str(ADDRESS).unwrap()
}

/// An active product at 35900 with `stock` units.
pub(crate) async fn product(app: &TestApp, sku: &str, stock: i64) -> Uuid {
    let category = app.category(&format!("cat-{}", sku.to_lowercase())).await;
    let id = app
        .product(&json!({
            "sku": sku, "name": format!("Phone {sku}"), "slug": sku.to_lowercase(),
            "category_id": category, "regular_price": "39900.00", "sale_price": "35900.00",
            "stock_quantity": stock,
        }))
        .await;
    ok_body(
        app.put(
            &format!("/v1/products/{id}/status"),
            &json!({ "status": "active" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    id
}

/// A promotion (10% off, at most 500) with coupon `code`, and `terms` over it.
pub(crate) async fn coupon(app: &TestApp, code: &str, terms: Value) -> Uuid {
    let mut body = json!({
        "name": format!("Promo {code}"), "type": "percentage", "value": 10,
        "maximum_discount": "500", "starts_at": "2026-01-01T00:00:00Z",
        "ends_at": "2036-01-01T00:00:00Z",
    });
    for (key, value) in terms.as_object().unwrap() {
        body[key] = value.clone();
    }
    let promotion = created_id(app.post("/v1/promotions", &body).await).await;
    ok_body(
        app.post(
            &format!("/v1/promotions/{promotion}/coupons"),
            &json!({ "code": code }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    promotion
}

/// A customer's cart holding `quantity` of `product`, shipped standard,
/// with `code` applied when given.
pub(crate) async fn cart(
    app: &TestApp,
    customer: &reqwest::Client,
    product: Uuid,
    quantity: i64,
    code: Option<&str>,
) -> Uuid {
    let cart = created_id(
        app.send_as(customer, Method::POST, "/v1/carts", Some(&json!({})))
            .await,
    )
    .await;
    let steps = [
        (
            Method::POST,
            format!("/v1/carts/{cart}/items"),
            json!({ "product_id": product, "quantity": quantity }),
        ),
        (
            Method::PUT,
            format!("/v1/carts/{cart}/shipping-method"),
            json!({ "method": "standard" }),
        ),
    ];
    for (method, path, body) in steps {
        let response = app.send_as(customer, method, &path, Some(&body)).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
    if let Some(code) = code {
        ok_body(
            app.send_as(
                customer,
                Method::PUT,
                &format!("/v1/carts/{cart}/coupon"),
                Some(&json!({ "code": code })),
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }
    cart
}

pub(crate) async fn checkout(
    app: &TestApp,
    customer: &reqwest::Client,
    body: Value,
) -> reqwest::Response {
    app.send_as(customer, Method::POST, "/v1/orders", Some(&body))
        .await
}

pub(crate) fn payload(event: &infrastructure::event_store::RecordedEvent) -> &Value {
    &event.payload[&event.event_type]
}

#[tokio::test]
async fn a_cart_with_a_coupon_becomes_one_order_in_one_append() {
    let app = TestApp::spawn().await;
    let product = product(&app, "CHK-1", 10).await;
    let promotion = coupon(&app, "SAVE10", json!({ "usage_limit_per_user": 1 })).await;
    let (customer, user_id) = app.customer("buyer@example.com").await;
    let cart = cart(&app, &customer, product, 2, Some("save10")).await;

    let response = checkout(
        &app,
        &customer,
        json!({ "cart_id": cart, "shipping_address": address(), "payment_method": "credit_card",
                "notes": "Ring twice\nplease", "expected_total": "76341.00" }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order = created_id(response).await;
    assert_eq!(location, format!("/v1/orders/{order}"));

    // 71800, 10% capped at 500 off, 50 shipping, 7% VAT on 71300.
    let placed = &app.opened_events(&order.to_string()).await[0];
    assert_eq!(placed.event_type, "OrderPlaced");
    let body = payload(placed);
    assert_eq!(
        [
            &body["subtotal"],
            &body["discount_amount"],
            &body["shipping_amount"],
            &body["tax_amount"],
            &body["total_amount"]
        ],
        [
            &json!("71800.00"),
            &json!("500.00"),
            &json!("50.00"),
            &json!("4991.00"),
            &json!("76341.00")
        ]
    );
    assert_eq!(body["user_id"], user_id.to_string());
    assert_eq!(body["payment_method"], "credit_card");
    assert_eq!(body["shipping_address"]["city"], "Bangkok");
    assert_eq!(body["billing_address"], body["shipping_address"]);
    assert!(body["order_number"].as_str().unwrap().starts_with("ORD-20"));
    let stored = &app.events(&order.to_string()).await[0];
    assert!(
        payload(stored)["shipping_address"]
            .as_str()
            .is_some_and(|sealed| sealed.starts_with("pd1.")),
        "the address is sealed in the log"
    );

    // Every stream of the decision moved in the same transaction.
    let in_one_append: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_id, event_type FROM event_store.events \
         WHERE transaction_id = (SELECT transaction_id FROM event_store.events WHERE aggregate_id = $1) \
         ORDER BY position",
    )
    .bind(order.to_string())
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    let types: BTreeMap<&str, &str> = in_one_append
        .iter()
        .map(|(stream, event)| (event.as_str(), stream.as_str()))
        .collect();
    for event in [
        "OrderPlaced",
        "CartCheckedOut",
        "StockReserved",
        "CouponRedeemed",
        "PromotionUsageRecorded",
        "CustomerUsageRecorded",
        "UniqueKeyClaimed",
    ] {
        assert!(types.contains_key(event), "{event} in {in_one_append:?}");
    }
    assert_eq!(types["CartCheckedOut"], cart.to_string());
    assert_eq!(types["PromotionUsageRecorded"], promotion.to_string());
    assert_eq!(
        types["CustomerUsageRecorded"],
        format!("customer_usage:{promotion}:{user_id}")
    );
    assert!(types["UniqueKeyClaimed"].starts_with("order_number:ORD-"));

    // The same cart again: already checked out, nothing appended.
    let before = app.event_count().await;
    let again = problem(
        checkout(
            &app,
            &customer,
            json!({ "cart_id": cart, "shipping_address": address(), "payment_method": "credit_card" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cart-checked-out",
    )
    .await;
    assert_eq!(again["order_id"], order.to_string());
    assert_eq!(app.event_count().await, before);

    // The per-user limit holds on the customer's next cart.
    let next = self::cart(&app, &customer, product, 1, Some("SAVE10")).await;
    problem(
        checkout(
            &app,
            &customer,
            json!({ "cart_id": next, "shipping_address": address(), "payment_method": "promptpay" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "coupon-per-user-limit-reached",
    )
    .await;
}

#[tokio::test]
async fn a_price_changed_since_the_cart_is_a_409_with_the_new_price() {
    let app = TestApp::spawn().await;
    let product = product(&app, "CHK-2", 10).await;
    let (customer, _) = app.customer("price@example.com").await;
    let cart = cart(&app, &customer, product, 1, None).await;
    ok_body(
        app.put(
            &format!("/v1/products/{product}/price"),
            &json!({ "regular_price": "39900.00", "sale_price": "34900.00" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let before = app.event_count().await;
    let changed = problem(
        checkout(
            &app,
            &customer,
            json!({ "cart_id": cart, "shipping_address": address(), "payment_method": "credit_card" }),
        )
        .await,
        StatusCode::CONFLICT,
        "price-changed",
    )
    .await;
    assert_eq!(
        (&changed["sku"], &changed["current"]),
        (&json!("CHK-2"), &json!("34900.00"))
    );
    assert_eq!(app.event_count().await, before, "a refusal appends nothing");
}

#[tokio::test]
async fn refusals_name_what_is_wrong() {
    let app = TestApp::spawn().await;
    let product = product(&app, "CHK-3", 1).await;
    let (customer, _) = app.customer("refused@example.com").await;
    let cart = cart(&app, &customer, product, 1, None).await;
    let with = |changes: Value| {
        let mut body = json!({ "cart_id": cart, "payment_method": "credit_card" });
        for (key, value) in changes.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    // No address given and none in the book.
    problem(
        checkout(&app, &customer, with(json!({}))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "shipping-address-required",
    )
    .await;
    // The last unit goes elsewhere meanwhile.
    ok_body(
        app.post(
            "/v1/inventory/CHK-3/adjustments",
            &json!({ "delta": -1, "reason": "damage" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let short = problem(
        checkout(
            &app,
            &customer,
            with(json!({ "shipping_address": address() })),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient-stock",
    )
    .await;
    assert_eq!(
        (&short["requested"], &short["available"]),
        (&json!(1), &json!(0))
    );
    for (changes, field) in [
        (
            json!({ "shipping_address": address(), "shipping_address_id": Uuid::now_v7() }),
            "shipping_address",
        ),
        (json!({ "payment_method": "Credit Card" }), "payment_method"),
        (json!({ "shipping_method": "teleport" }), "shipping_method"),
        (json!({ "shipping_address": { "first_name": "A" } }), "body"),
    ] {
        let response = checkout(&app, &customer, with(changes.clone())).await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{changes} ({field})"
        );
    }
    problem(
        checkout(
            &app,
            &customer,
            with(json!({ "shipping_address_id": Uuid::now_v7() })),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "address-not-found",
    )
    .await;
    // Someone else's cart does not exist for them; a guest signs in first.
    let (other, _) = app.customer("other@example.com").await;
    problem(
        checkout(&app, &other, with(json!({ "shipping_address": address() }))).await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    let guest = app
        .anonymous
        .post(format!("{}/v1/orders", app.base))
        .json(&with(json!({ "shipping_address": address() })))
        .send()
        .await
        .unwrap();
    assert_eq!(guest.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_book_address_and_a_new_shipping_method_go_into_the_order() {
    let app = TestApp::spawn().await;
    let product = product(&app, "CHK-4", 5).await;
    let (customer, _) = app.customer("book@example.com").await;
    let address_id = created_id(
        app.send_as(
            &customer,
            Method::POST,
            "/v1/me/addresses",
            Some(&address()),
        )
        .await,
    )
    .await;
    let cart = cart(&app, &customer, product, 1, None).await;
    let order = created_id(
        checkout(
            &app,
            &customer,
            json!({ "cart_id": cart, "billing_address_id": address_id,
                    "shipping_method": "express", "payment_method": "promptpay" }),
        )
        .await,
    )
    .await;
    let body = payload(&app.opened_events(&order.to_string()).await[0]).clone();
    assert_eq!(
        body["shipping_address"]["street_address_1"],
        "1 Sukhumvit Rd"
    );
    assert_eq!(body["billing_address"], body["shipping_address"]);
    assert_eq!(body["shipping_method"], "express");
    assert_eq!(body["shipping_amount"], "150.00");
    let cart_events = app.events(&cart.to_string()).await;
    assert_eq!(
        event_types(&cart_events)[cart_events.len() - 2..],
        ["CartShippingMethodSelected", "CartCheckedOut"]
    );
}

#[tokio::test]
async fn concurrent_checkouts_never_sell_more_than_the_stock() {
    let app = TestApp::spawn().await;
    let product = product(&app, "CHK-HOT", 3).await;
    let mut buyers = Vec::new();
    for n in 0..12 {
        let (customer, _) = app.customer(&format!("hot-{n}@example.com")).await;
        let cart = cart(&app, &customer, product, 1, None).await;
        buyers.push((customer, cart));
    }
    let answers = join_all(buyers.iter().map(|(customer, cart)| {
        checkout(
            &app,
            customer,
            json!({ "cart_id": cart, "shipping_address": address(), "payment_method": "credit_card" }),
        )
    }))
    .await;
    let mut placed = 0;
    for answer in answers {
        match answer.status() {
            StatusCode::CREATED => placed += 1,
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT => {
                let problem: Value = answer.json().await.unwrap();
                let kind = problem["type"].as_str().unwrap();
                assert!(
                    kind.ends_with("/insufficient-stock") || kind.ends_with("/version-conflict"),
                    "{problem}"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(placed, 3, "exactly the stock is sold");
    let stock = app.events("inventory:CHK-HOT").await;
    let reserved = stock
        .iter()
        .filter(|event| event.event_type == "StockReserved")
        .count();
    assert_eq!(reserved, 3);
    let last = stock
        .iter()
        .rev()
        .find(|event| event.event_type == "StockReserved")
        .unwrap();
    assert_eq!(payload(last)["available"], 0, "{:?}", payload(last));
}

/// A checkout as a careful client sends it: with an `Idempotency-Key`, and
/// again after a 409 `version-conflict` (the append lost a race and the
/// retries ran out) or a 503 (shed, or timed out, under load), until the
/// answer is a decision. The answer, and
/// how many tries it took.
pub(crate) async fn checkout_until_decided(
    app: &TestApp,
    customer: &reqwest::Client,
    body: Value,
) -> (StatusCode, Value, u32) {
    // One key for every try: a try that committed but whose answer was
    // lost (a 503 after the append, under load) answers its 201 again.
    let key = Uuid::now_v7().to_string();
    for attempt in 1..=100 {
        let response = customer
            .post(format!("{}/v1/orders", app.base))
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        let retry = status == StatusCode::SERVICE_UNAVAILABLE
            || (status == StatusCode::CONFLICT
                && answer["type"]
                    .as_str()
                    .is_some_and(|kind| kind.ends_with("/version-conflict")));
        if !retry {
            return (status, answer, attempt);
        }
    }
    panic!("no decision after 100 tries");
}

fn kind(answer: &Value) -> &str {
    answer["type"]
        .as_str()
        .and_then(|kind| kind.rsplit('/').next())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_coupon_limited_to_five_uses_is_used_five_times_by_200_concurrent_checkouts() {
    let app = TestApp::spawn_with(|settings| settings.postgres.max_connections = 20).await;
    let product = product(&app, "CHK-CPN", 1000).await;
    let promotion = coupon(&app, "FIVE", json!({ "usage_limit": 5 })).await;
    let mut buyers = Vec::new();
    for n in 0..200 {
        let (customer, _) = app.customer(&format!("five-{n}@example.com")).await;
        let cart = cart(&app, &customer, product, 1, Some("FIVE")).await;
        buyers.push((customer, cart));
    }
    let answers = join_all(buyers.iter().map(|(customer, cart)| {
        checkout_until_decided(
            &app,
            customer,
            json!({ "cart_id": cart, "shipping_address": address(), "payment_method": "credit_card" }),
        )
    }))
    .await;
    let placed = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(placed, 5, "the coupon's limit, exactly");
    for (status, answer, _) in &answers {
        if *status != StatusCode::CREATED {
            assert_eq!(
                (*status, kind(answer)),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "coupon-usage-limit-reached"
                ),
                "{answer}"
            );
        }
    }
    let redeemed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_store.events WHERE event_type = 'CouponRedeemed'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(redeemed, 5);
    let uses = app.events(&promotion.to_string()).await;
    let last = uses
        .iter()
        .rev()
        .find(|event| event.event_type == "PromotionUsageRecorded")
        .unwrap();
    assert_eq!(payload(last)["usage_count"], 5);
}

#[tokio::test]
async fn one_customers_20_concurrent_checkouts_use_their_once_per_customer_coupon_once() {
    let app = TestApp::spawn().await;
    let product = product(&app, "CHK-ONCE", 100).await;
    coupon(&app, "ONCE", json!({ "usage_limit_per_user": 1 })).await;
    let (customer, user_id) = app.customer("once@example.com").await;
    let cart = cart(&app, &customer, product, 1, Some("ONCE")).await;
    let answers = join_all((0..20).map(|_| {
        checkout_until_decided(
            &app,
            &customer,
            json!({ "cart_id": cart, "shipping_address": address(), "payment_method": "credit_card" }),
        )
    }))
    .await;
    let placed: Vec<&Value> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::CREATED)
        .map(|(_, answer, _)| answer)
        .collect();
    assert_eq!(placed.len(), 1, "one order: {answers:?}");
    for (status, answer, _) in &answers {
        if *status != StatusCode::CREATED {
            assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
            assert!(
                // The cart already placed, or, read just before the winner
                // committed, the customer's one use already taken.
                [
                    "cart-checked-out",
                    "cart-not-active",
                    "coupon-per-user-limit-reached"
                ]
                .contains(&kind(answer)),
                "{answer}"
            );
        }
    }
    let usage = app
        .events(&format!("customer_usage:{}:{user_id}", {
            let coupons: Vec<String> = sqlx::query_scalar(
                "SELECT aggregate_id FROM event_store.events WHERE event_type = 'PromotionCreated'",
            )
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
            coupons[0].clone()
        }))
        .await;
    assert_eq!(event_types(&usage), ["CustomerUsageRecorded"]);
}
