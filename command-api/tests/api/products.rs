use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn creating_a_product_claims_sku_and_slug_and_initialises_its_stock() {
    let app = TestApp::spawn().await;
    let category = app.category("smartphones").await;
    let brand = app.brand("apple").await;
    let correlation_id = Uuid::now_v7();
    let response = app
        .request(Method::POST, "/v1/products")
        .header("X-Correlation-Id", correlation_id.to_string())
        .header("User-Agent", "seed-loader")
        .json(&json!({
            "sku": "iph-15-pro",
            "name": "iPhone 15 Pro",
            "slug": "iphone-15-pro",
            "description": "Titanium.",
            "short_description": "Pro phone",
            "category_id": category,
            "brand_id": brand,
            "regular_price": "39900.00",
            "sale_price": "35900.00",
            "cost_price": "30000",
            "stock_quantity": 45,
            "low_stock_threshold": 3,
            "weight": "0.20",
            "length": 14.7,
            "width": 7,
            "height": "0.83",
            "meta_title": "iPhone 15 Pro",
            "meta_description": "Buy it",
            "meta_keywords": ["iphone", "apple"],
        }))
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body = ok_body(response, StatusCode::CREATED).await;
    let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(location, format!("/v1/products/{id}"));
    assert_eq!(body["version"], 1);
    assert_eq!(etag, "\"1\"");

    let product = app.opened_events(&id.to_string()).await;
    assert_eq!(event_types(&product), ["ProductCreated"]);
    let created = &product[0].payload["ProductCreated"];
    assert_eq!(created["sku"], "IPH-15-PRO");
    assert_eq!(created["regular_price"], "39900.00");
    assert_eq!(created["sale_price"], "35900.00");
    assert_eq!(created["cost_price"], "30000.00");
    assert_eq!(created["currency"], "THB");
    assert_eq!(created["track_inventory"], true);
    assert_eq!(created["stock_quantity"], 45);
    assert_eq!(created["low_stock_threshold"], 3);
    assert_eq!(created["weight"], "0.20");
    assert_eq!(created["length"], "14.70");
    assert_eq!(created["width"], "7.00");
    assert_eq!(created["height"], "0.83");
    assert_eq!(created["status"], "draft");
    assert_eq!(created["category_id"], category.to_string());
    assert_eq!(created["brand_id"], brand.to_string());

    let stock = app.opened_events("inventory:IPH-15-PRO").await;
    assert_eq!(event_types(&stock), ["StockInitialized"]);
    let initialized = &stock[0].payload["StockInitialized"];
    assert_eq!(initialized["quantity"], 45);
    assert_eq!(initialized["product_id"], id.to_string());
    assert_eq!(initialized["variant_id"], Value::Null);
    assert_eq!(initialized["low_stock_threshold"], 3);
    assert_eq!(stock[0].aggregate_type, "inventory");

    let sku = app.opened_events("sku:IPH-15-PRO").await;
    let slug = app.opened_events("product_slug:iphone-15-pro").await;
    assert_eq!(event_types(&sku), ["UniqueKeyClaimed"]);
    assert_eq!(event_types(&slug), ["UniqueKeyClaimed"]);
    assert_eq!(
        sku[0].payload["UniqueKeyClaimed"]["owner_id"],
        id.to_string()
    );

    // One transaction, one metadata, and the position of the last event.
    let all = [&product[0], &stock[0], &sku[0], &slug[0]];
    for event in all {
        assert_eq!(event.metadata.correlation_id, correlation_id);
        assert_eq!(event.metadata.user_agent.as_deref(), Some("seed-loader"));
        assert_eq!(event.transaction_id, product[0].transaction_id);
    }
    let last = all.iter().map(|e| e.position).max().unwrap();
    assert_eq!(body["position"], last);
}

#[tokio::test]
async fn money_is_accepted_as_a_string_or_a_number_and_stored_exactly() {
    let app = TestApp::spawn().await;
    let id = app
        .product(&json!({
            "sku": "NUM-1",
            "name": "Numbers",
            "slug": "numbers",
            "regular_price": 39900,
            "sale_price": 35900.5,
            "cost_price": "19.99",
        }))
        .await;
    let created = &app.events(&id.to_string()).await[0].payload["ProductCreated"];
    assert_eq!(created["regular_price"], "39900.00");
    assert_eq!(created["sale_price"], "35900.50");
    assert_eq!(created["cost_price"], "19.99");

    ok_body(
        app.put(
            &format!("/v1/products/{id}/price"),
            &json!({"regular_price": 19.99, "sale_price": "0.1"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let events = app.events(&id.to_string()).await;
    let changed = &events[1].payload["ProductPriceChanged"];
    assert_eq!(changed["regular_price"], "19.99");
    assert_eq!(changed["sale_price"], "0.10");
    assert_eq!(
        changed["cost_price"],
        Value::Null,
        "a PUT replaces the price set"
    );
    assert_eq!(changed["previous_regular_price"], "39900.00");
}

#[tokio::test]
async fn a_taken_sku_or_slug_is_refused_and_nothing_is_appended() {
    let app = TestApp::spawn().await;
    app.product(&product_body("IPH-15", "iphone-15")).await;
    let before = app.event_count().await;

    // Skus are case-insensitive.
    let body = problem(
        app.post("/v1/products", &product_body("iph-15", "other-slug"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "sku-taken",
    )
    .await;
    assert_eq!(body["sku"], "IPH-15");
    let body = problem(
        app.post("/v1/products", &product_body("OTHER-SKU", "iphone-15"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "slug-taken",
    )
    .await;
    assert_eq!(body["slug"], "iphone-15");
    assert_eq!(app.event_count().await, before);
    assert!(app.events("inventory:OTHER-SKU").await.is_empty());
    assert!(app.events("product_slug:other-slug").await.is_empty());
}

#[tokio::test]
async fn business_rules_answer_422_and_append_nothing() {
    let app = TestApp::spawn().await;
    let brand = app.brand("apple").await;
    let before = app.event_count().await;

    let mut body = product_body("SALE-1", "sale-1");
    body["sale_price"] = json!("39900.00");
    let problem_body = problem(
        app.post("/v1/products", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "sale-price-not-below-regular",
    )
    .await;
    assert_eq!(problem_body["sale_price"], "39900.00");

    let mut body = product_body("REF-1", "ref-1");
    body["category_id"] = json!(Uuid::now_v7());
    problem(
        app.post("/v1/products", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "category-not-found",
    )
    .await;
    // A brand's id is not a category.
    body["category_id"] = json!(brand);
    problem(
        app.post("/v1/products", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "category-not-found",
    )
    .await;
    let mut body = product_body("REF-2", "ref-2");
    body["brand_id"] = json!(Uuid::now_v7());
    problem(
        app.post("/v1/products", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "brand-not-found",
    )
    .await;
    // A product id already used by a brand.
    let mut body = product_body("REF-3", "ref-3");
    body["product_id"] = json!(brand);
    problem(
        app.post("/v1/products", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "already-exists",
    )
    .await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_patch_merges_into_the_details_and_swaps_the_slug_claim() {
    let app = TestApp::spawn().await;
    let category = app.category("phones").await;
    let mut body = product_body("PATCH-1", "old-slug");
    body["description"] = json!("Long text");
    body["meta_title"] = json!("Title");
    body["weight"] = json!("0.20");
    body["category_id"] = json!(category);
    let id = app.product(&body).await;

    let response = app
        .patch(
            &format!("/v1/products/{id}"),
            &json!({"name": "Renamed", "slug": "new-slug", "description": null, "height": 1.5}),
        )
        .await;
    assert_eq!(ok_body(response, StatusCode::OK).await["version"], 2);
    let events = app.events(&id.to_string()).await;
    let updated = &events[1].payload["ProductDetailsUpdated"];
    let details = &updated["details"];
    assert_eq!(details["name"], "Renamed");
    assert_eq!(details["slug"], "new-slug");
    assert_eq!(details["description"], Value::Null, "null clears");
    assert_eq!(details["meta_title"], "Title", "absent keeps");
    assert_eq!(details["weight"], "0.20");
    assert_eq!(details["height"], "1.50");
    assert_eq!(details["category_id"], category.to_string());
    assert_eq!(updated["previous_slug"], "old-slug");
    assert_eq!(
        event_types(&app.events("product_slug:old-slug").await),
        ["UniqueKeyClaimed", "UniqueKeyReleased"]
    );
    assert_eq!(
        event_types(&app.events("product_slug:new-slug").await),
        ["UniqueKeyClaimed"]
    );
    // The old slug can be taken by another product now.
    app.product(&product_body("PATCH-2", "old-slug")).await;

    let before = app.event_count().await;
    problem(
        app.patch(&format!("/v1/products/{id}"), &json!({"name": null}))
            .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    problem(
        app.patch(&format!("/v1/products/{id}"), &json!({})).await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    problem(
        app.patch(&format!("/v1/products/{id}"), &json!({"slug": "old-slug"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "slug-taken",
    )
    .await;
    problem(
        app.patch(
            &format!("/v1/products/{id}"),
            &json!({"brand_id": Uuid::now_v7()}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "brand-not-found",
    )
    .await;
    problem(
        app.patch(&format!("/v1/products/{id}"), &json!({"sku": "NEW"}))
            .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn the_status_life_cycle_is_enforced() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("LIFE-1", "life-1")).await;
    let status = |s: &str| json!({ "status": s });
    let path = format!("/v1/products/{id}/status");

    let body = problem(
        app.put(&path, &status("inactive")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-status-transition",
    )
    .await;
    assert_eq!(
        (body["from"].as_str(), body["to"].as_str()),
        (Some("draft"), Some("inactive"))
    );
    problem(
        app.put(&path, &status("active")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "category-required",
    )
    .await;
    problem(
        app.put(&path, &status("published")).await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    problem(
        app.put(
            &format!("/v1/products/{id}/featured"),
            &json!({"featured": true}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "featured-requires-active",
    )
    .await;

    let category = app.category("things").await;
    ok_body(
        app.patch(
            &format!("/v1/products/{id}"),
            &json!({"category_id": category}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let body = ok_body(app.put(&path, &status("active")).await, StatusCode::OK).await;
    assert_eq!(body["version"], 3);
    ok_body(
        app.put(
            &format!("/v1/products/{id}/featured"),
            &json!({"featured": true}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    ok_body(app.put(&path, &status("archived")).await, StatusCode::OK).await;
    let events = app.events(&id.to_string()).await;
    assert_eq!(
        event_types(&events),
        [
            "ProductCreated",
            "ProductDetailsUpdated",
            "ProductStatusChanged",
            "ProductFeatured",
            "ProductStatusChanged"
        ]
    );
    assert_eq!(events[4].payload["ProductStatusChanged"]["featured"], false);

    problem(
        app.patch(&format!("/v1/products/{id}"), &json!({"name": "x"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "product-archived",
    )
    .await;
    problem(
        app.put(
            &format!("/v1/products/{id}/price"),
            &json!({"regular_price": "10.00"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "product-archived",
    )
    .await;
}

#[tokio::test]
async fn if_match_guards_updates() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("IFM-1", "ifm-1")).await;
    let before = app.event_count().await;
    let response = app
        .request(Method::PUT, &format!("/v1/products/{id}/price"))
        .header("If-Match", "\"7\"")
        .json(&json!({"regular_price": "100.00"}))
        .send()
        .await
        .unwrap();
    let body = problem(
        response,
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
    )
    .await;
    assert_eq!(body["current_etag"], "\"1\"");
    assert_eq!(app.event_count().await, before);

    let response = app
        .request(Method::PATCH, &format!("/v1/products/{id}"))
        .header("If-Match", "\"1\"")
        .json(&json!({"name": "Guarded"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["etag"], "\"2\"");
    assert_eq!(ok_body(response, StatusCode::OK).await["version"], 2);

    let response = app
        .request(Method::PATCH, &format!("/v1/products/{id}"))
        .header("If-Match", "soon")
        .json(&json!({"name": "Guarded"}))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::BAD_REQUEST, "invalid-header").await;
}

#[tokio::test]
async fn unknown_products_are_404() {
    let app = TestApp::spawn().await;
    let missing = Uuid::now_v7();
    let body = problem(
        app.patch(&format!("/v1/products/{missing}"), &json!({"name": "x"}))
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    assert_eq!(body["id"], missing.to_string());
    assert_eq!(body["instance"], format!("/v1/products/{missing}"));
    problem(
        app.put(
            &format!("/v1/products/{missing}/price"),
            &json!({"regular_price": "1.00"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    // A category's id is not a product.
    let category = app.category("cat").await;
    problem(
        app.put(
            &format!("/v1/products/{category}/status"),
            &json!({"status": "active"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn concurrent_updates_are_retried_and_all_land() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("RACE-1", "race-1")).await;
    let path = format!("/v1/products/{id}/price");
    let requests = (1..=4).map(|n| {
        let request = app
            .request(Method::PUT, &path)
            .json(&json!({ "regular_price": format!("{n}00.00") }));
        tokio::spawn(async move { request.send().await.unwrap().status() })
    });
    for handle in requests.collect::<Vec<_>>() {
        assert_eq!(handle.await.unwrap(), StatusCode::OK);
    }
    let events = app.events(&id.to_string()).await;
    assert_eq!(events.len(), 5);
}

#[tokio::test]
async fn concurrent_creates_of_one_sku_let_exactly_one_win() {
    let app = TestApp::spawn().await;
    let requests = (1..=3).map(|n| {
        let request = app
            .request(Method::POST, "/v1/products")
            .json(&product_body("RACE-SKU", &format!("race-{n}")));
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (status, body)
        })
    });
    let mut created = 0;
    for handle in requests.collect::<Vec<_>>() {
        let (status, body) = handle.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(body["type"], "https://errors.ecommerce.local/sku-taken")
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(app.events("sku:RACE-SKU").await.len(), 1);
    assert_eq!(app.events("inventory:RACE-SKU").await.len(), 1);
}
