//! An order after checkout over HTTP: the admin's status moves, the
//! customer's and the admin's cancellations, which give back exactly what
//! the order held, and a cancel racing a ship.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::checkout::{address, cart, checkout, coupon, payload, product};
use crate::support::*;

/// A placed order of `quantity` units with coupon `code`, by a new customer.
async fn placed_order(
    app: &TestApp,
    sku: &str,
    quantity: i64,
    code: &str,
) -> (reqwest::Client, Uuid, Uuid) {
    let product = product(app, sku, 10).await;
    coupon(app, code, json!({ "usage_limit_per_user": 1 })).await;
    let (customer, user_id) = app
        .customer(&format!("{}@example.com", sku.to_lowercase()))
        .await;
    let cart = cart(app, &customer, product, quantity, Some(code)).await;
    let order = created_id(
        checkout(
            app,
            &customer,
            json!({ "cart_id": cart, "shipping_address": address(), "payment_method": "credit_card" }),
        )
        .await,
    )
    .await;
    (customer, order, user_id)
}

async fn set_status(app: &TestApp, order: Uuid, body: Value) -> reqwest::Response {
    app.put(&format!("/v1/orders/{order}/status"), &body).await
}

async fn cancel_as(app: &TestApp, client: &reqwest::Client, order: Uuid) -> reqwest::Response {
    app.send_as(
        client,
        Method::POST,
        &format!("/v1/orders/{order}/cancellation"),
        Some(&json!({ "reason": "Changed my mind" })),
    )
    .await
}

#[tokio::test]
async fn the_admin_moves_an_order_along_the_seed_statuses_and_nowhere_else() {
    let app = TestApp::spawn().await;
    let (customer, order, _) = placed_order(&app, "ORD-A", 1, "MOVE10").await;
    problem(
        set_status(&app, order, json!({ "status": "shipped" })).await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    problem(
        set_status(
            &app,
            order,
            json!({ "status": "shipped", "tracking_number": "TH123" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-status-transition",
    )
    .await;
    for body in [
        json!({ "status": "confirmed" }),
        json!({ "status": "processing" }),
        json!({ "status": "shipped", "tracking_number": "TH1234567890" }),
        json!({ "status": "delivered" }),
    ] {
        ok_body(set_status(&app, order, body).await, StatusCode::OK).await;
    }
    let events = app.events(&order.to_string()).await;
    assert_eq!(
        event_types(&events),
        [
            "OrderPlaced",
            "OrderConfirmed",
            "OrderProcessingStarted",
            "OrderShipped",
            "OrderDelivered"
        ]
    );
    assert_eq!(payload(&events[3])["tracking_number"], "TH1234567890");
    for status in ["confirmed", "pending", "refunded", "cancelled", "delivered"] {
        problem(
            set_status(&app, order, json!({ "status": status })).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-status-transition",
        )
        .await;
    }
    let response = app
        .send_as(
            &customer,
            Method::PUT,
            &format!("/v1/orders/{order}/status"),
            Some(&json!({ "status": "confirmed" })),
        )
        .await;
    problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    problem(
        set_status(&app, Uuid::now_v7(), json!({ "status": "confirmed" })).await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn a_cancel_gives_back_exactly_what_the_order_held_in_one_append() {
    let app = TestApp::spawn().await;
    let (customer, order, user_id) = placed_order(&app, "ORD-B", 3, "BACK10").await;
    let stranger = app.customer("stranger@example.com").await.0;
    problem(
        cancel_as(&app, &stranger, order).await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;

    ok_body(cancel_as(&app, &customer, order).await, StatusCode::OK).await;
    let in_one_append: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT aggregate_id, event_type, payload FROM event_store.events \
         WHERE transaction_id = (SELECT transaction_id FROM event_store.events \
                                 WHERE aggregate_id = $1 AND event_type = 'OrderCancelled') \
         ORDER BY position",
    )
    .bind(order.to_string())
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    let types: Vec<&str> = in_one_append.iter().map(|(_, t, _)| t.as_str()).collect();
    for event in [
        "OrderCancelled",
        "StockReleased",
        "CouponRedemptionReverted",
        "PromotionUsageReverted",
        "CustomerUsageReverted",
    ] {
        assert!(types.contains(&event), "{event} in {types:?}");
    }
    let released = in_one_append
        .iter()
        .find(|(_, t, _)| t == "StockReleased")
        .unwrap();
    assert_eq!(released.0, "inventory:ORD-B");
    assert_eq!(released.2["StockReleased"]["quantity"], 3);
    assert_eq!(released.2["StockReleased"]["available"], 10);

    // Cancelled once: again is a 422, and nothing more is given back.
    let before = app.event_count().await;
    problem(
        cancel_as(&app, &customer, order).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "order-not-cancellable",
    )
    .await;
    problem(
        app.post(
            &format!("/v1/orders/{order}/cancellation"),
            &json!({ "reason": "Again" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-status-transition",
    )
    .await;
    assert_eq!(app.event_count().await, before);

    // The customer's use came back: the per-user limit lets them order again.
    let product: Uuid = app.events(&order.to_string()).await[0].payload["OrderPlaced"]["items"][0]
        ["product_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let next = cart(&app, &customer, product, 1, Some("BACK10")).await;
    let response = checkout(
        &app,
        &customer,
        json!({ "cart_id": next, "shipping_address": address(), "payment_method": "promptpay" }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED, "{user_id}");
}

#[tokio::test]
async fn a_customer_cancels_only_before_processing_and_nobody_after_shipping() {
    let app = TestApp::spawn().await;
    let (customer, order, _) = placed_order(&app, "ORD-C", 1, "LATE10").await;
    for status in ["confirmed", "processing"] {
        ok_body(
            set_status(&app, order, json!({ "status": status })).await,
            StatusCode::OK,
        )
        .await;
    }
    let refused = problem(
        cancel_as(&app, &customer, order).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "order-not-cancellable",
    )
    .await;
    assert_eq!(refused["order_status"], "processing");
    ok_body(
        set_status(
            &app,
            order,
            json!({ "status": "shipped", "tracking_number": "TH9" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    problem(
        app.post(
            &format!("/v1/orders/{order}/cancellation"),
            &json!({ "reason": "Too late" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-status-transition",
    )
    .await;
}

#[tokio::test]
async fn a_cancel_racing_a_ship_leaves_one_consistent_outcome() {
    let app = TestApp::spawn().await;
    let mut outcomes = Vec::new();
    for round in 0..4 {
        let (_, order, _) =
            placed_order(&app, &format!("ORD-R{round}"), 2, &format!("RACE{round}")).await;
        for status in ["confirmed", "processing"] {
            ok_body(
                set_status(&app, order, json!({ "status": status })).await,
                StatusCode::OK,
            )
            .await;
        }
        let cancellation = format!("/v1/orders/{order}/cancellation");
        let reason = json!({ "reason": "Race" });
        let (shipped, cancelled) = tokio::join!(
            set_status(
                &app,
                order,
                json!({ "status": "shipped", "tracking_number": "TH-RACE" })
            ),
            app.post(&cancellation, &reason),
        );
        let statuses = (shipped.status(), cancelled.status());
        assert!(
            matches!(
                statuses,
                (StatusCode::OK, StatusCode::UNPROCESSABLE_ENTITY)
                    | (StatusCode::UNPROCESSABLE_ENTITY, StatusCode::OK)
            ),
            "exactly one wins: {statuses:?}"
        );
        let events = app.events(&order.to_string()).await;
        let last = events.last().unwrap().event_type.clone();
        let stock = app.events(&format!("inventory:ORD-R{round}")).await;
        let released = stock.iter().any(|e| e.event_type == "StockReleased");
        match last.as_str() {
            "OrderShipped" => assert!(!released, "a shipped order keeps its stock"),
            "OrderCancelled" => assert!(released, "a cancelled order gives it back"),
            other => panic!("unexpected last event {other}"),
        }
        outcomes.push(last);
    }
    assert_eq!(outcomes.len(), 4);
}
