//! Stock over HTTP: adjustments, the low-stock threshold and tracking, on
//! a product's and a variant's inventory stream.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn an_adjustment_moves_the_stock_and_never_below_zero() {
    let app = TestApp::spawn().await;
    let id = app
        .product(&json!({ "sku": "STK-1", "name": "Stocked", "slug": "stk-1",
                          "regular_price": "10.00", "stock_quantity": 10,
                          "low_stock_threshold": 3 }))
        .await;
    let adjustments = "/v1/inventory/stk-1/adjustments";
    let response = app
        .post(
            adjustments,
            &json!({ "delta": -8, "reason": "damage", "note": "Dropped\nin the warehouse" }),
        )
        .await;
    // The stock's own version: initialised, adjusted, and the alert.
    assert_eq!(response.headers()["etag"], "\"3\"");
    let body = ok_body(response, StatusCode::OK).await;
    assert_eq!(body["id"], id.to_string(), "the receipt names the product");
    let stock = app.events("inventory:STK-1").await;
    assert_eq!(
        event_types(&stock),
        ["StockInitialized", "StockAdjusted", "LowStockReached"]
    );
    let adjusted = &stock[1].payload["StockAdjusted"];
    assert_eq!(
        (&adjusted["available"], &adjusted["reason"]),
        (&json!(2), &json!("damage"))
    );

    let before = app.event_count().await;
    let refused = problem(
        app.post(adjustments, &json!({ "delta": -3, "reason": "correction" }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient-stock",
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("STK-1"),
        "{refused}"
    );
    problem(
        app.post(adjustments, &json!({ "delta": 0, "reason": "correction" }))
            .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    problem(
        app.post(adjustments, &json!({ "delta": 1, "reason": "lost" }))
            .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    let stale = app
        .request(Method::POST, adjustments)
        .header("If-Match", "\"1\"")
        .json(&json!({ "delta": 5, "reason": "restock" }))
        .send()
        .await
        .unwrap();
    problem(
        stale,
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
    )
    .await;
    assert_eq!(app.event_count().await, before, "a refusal appends nothing");

    let restock = app
        .request(Method::POST, adjustments)
        .header("If-Match", "\"3\"")
        .json(&json!({ "delta": 5, "reason": "restock" }))
        .send()
        .await
        .unwrap();
    ok_body(restock, StatusCode::OK).await;
    let stock = app.events("inventory:STK-1").await;
    assert_eq!(stock[3].payload["StockAdjusted"]["available"], 7);
}

#[tokio::test]
async fn threshold_and_tracking_change_once_and_unknown_skus_are_404() {
    let app = TestApp::spawn().await;
    app.product(&product_body("STK-2", "stk-2")).await;
    let threshold = "/v1/inventory/STK-2/low-stock-threshold";
    ok_body(
        app.put(threshold, &json!({ "threshold": 12 })).await,
        StatusCode::OK,
    )
    .await;
    let version = ok_body(
        app.put(threshold, &json!({ "threshold": 12 })).await,
        StatusCode::OK,
    )
    .await["version"]
        .clone();
    assert_eq!(version, 2, "the current threshold appends nothing");
    problem(
        app.put(threshold, &json!({ "threshold": -1 })).await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    ok_body(
        app.put(
            "/v1/inventory/STK-2/tracking",
            &json!({ "track_inventory": false }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let stock = app.events("inventory:STK-2").await;
    assert_eq!(
        event_types(&stock),
        [
            "StockInitialized",
            "LowStockThresholdSet",
            "InventoryTrackingChanged"
        ]
    );

    for path in [
        "/v1/inventory/NOBODY-STOCKS-THIS/tracking",
        "/v1/inventory/not%20a%20sku/tracking",
    ] {
        problem(
            app.put(path, &json!({ "track_inventory": true })).await,
            StatusCode::NOT_FOUND,
            "not-found",
        )
        .await;
    }
    // A product's id is no sku.
    let body: Value = problem(
        app.put(
            &format!("/v1/inventory/{}/tracking", uuid::Uuid::nil()),
            &json!({ "track_inventory": true }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn a_variant_has_stock_of_its_own() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("STK-3", "stk-3")).await;
    let variant = created_id(
        app.post(
            &format!("/v1/products/{id}/variants"),
            &json!({ "sku": "STK-3-RED", "price": "10.00", "stock_quantity": 4 }),
        )
        .await,
    )
    .await;
    let body = ok_body(
        app.post(
            "/v1/inventory/STK-3-RED/adjustments",
            &json!({ "delta": 6, "reason": "restock" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        body["id"],
        variant.to_string(),
        "the receipt names the variant"
    );
    let stock = app.events("inventory:STK-3-RED").await;
    assert_eq!(stock[1].payload["StockAdjusted"]["available"], 10);
    assert_eq!(
        event_types(&app.events("inventory:STK-3").await),
        ["StockInitialized"],
        "the product's stock did not move"
    );
}
