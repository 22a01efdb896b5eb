//! A product's images, attributes and variants over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

fn payload(events: &[infrastructure::event_store::RecordedEvent], n: usize) -> &Value {
    let event = &events[n];
    &event.payload[&event.event_type]
}

#[tokio::test]
async fn images_are_added_made_primary_reordered_and_removed() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("IMG-1", "img-1")).await;

    let response = app
        .post(
            &format!("/v1/products/{id}/images"),
            &json!({ "url": "https://cdn.example.com/front.jpg", "alt_text": "Front" }),
        )
        .await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body = ok_body(response, StatusCode::CREATED).await;
    let front: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(location, format!("/v1/products/{id}/images/{front}"));
    // The ETag is the product's: its images are part of it.
    assert_eq!((etag.as_str(), &body["version"]), ("\"2\"", &json!(2)));

    let back = Uuid::now_v7();
    let response = app
        .post(
            &format!("/v1/products/{id}/images"),
            &json!({ "image_id": back, "url": "https://cdn.example.com/back.jpg" }),
        )
        .await;
    assert_eq!(created_id(response).await, back);
    let events = app.events(&id.to_string()).await;
    assert_eq!(payload(&events, 1)["is_primary"], true);
    assert_eq!(payload(&events, 1)["sort_order"], 0);
    assert_eq!(payload(&events, 2)["is_primary"], false);
    assert_eq!(
        payload(&events, 2)["sort_order"],
        1,
        "a new image goes last"
    );

    let primary = format!("/v1/products/{id}/images/{back}/primary");
    ok_body(app.put(&primary, &json!({})).await, StatusCode::OK).await;
    problem(
        app.put(&primary, &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "image-already-primary",
    )
    .await;

    let order = format!("/v1/products/{id}/image-order");
    problem(
        app.put(&order, &json!({ "image_ids": [back] })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "image-order-mismatch",
    )
    .await;
    ok_body(
        app.put(&order, &json!({ "image_ids": [back, front] }))
            .await,
        StatusCode::OK,
    )
    .await;

    ok_body(
        app.delete(&format!("/v1/products/{id}/images/{back}"))
            .await,
        StatusCode::OK,
    )
    .await;
    let events = app.events(&id.to_string()).await;
    assert_eq!(
        event_types(&events)[3..],
        [
            "ProductPrimaryImageChanged",
            "ProductImagesReordered",
            "ProductImageRemoved"
        ]
    );
    assert_eq!(
        payload(&events, 5)["new_primary_image_id"],
        front.to_string(),
        "the primary image went, so the next one is primary"
    );
    problem(
        app.delete(&format!("/v1/products/{id}/images/{back}"))
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn a_bad_image_is_refused_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("IMG-2", "img-2")).await;
    let before = app.event_count().await;
    let body = problem(
        app.post(
            &format!("/v1/products/{id}/images"),
            &json!({ "url": "javascript:alert(1)" }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "url", "{body}");
    let missing = Uuid::now_v7();
    problem(
        app.post(
            &format!("/v1/products/{missing}/images"),
            &json!({ "url": "https://cdn.example.com/a.jpg" }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    let response = app
        .request(Method::POST, &format!("/v1/products/{id}/images"))
        .header("If-Match", "\"5\"")
        .json(&json!({ "url": "https://cdn.example.com/a.jpg" }))
        .send()
        .await
        .unwrap();
    problem(
        response,
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
    )
    .await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn attributes_are_set_by_name_replaced_in_place_and_removed() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("ATTR-1", "attr-1")).await;
    let screen = format!("/v1/products/{id}/attributes/Screen%20size");
    ok_body(
        app.put(&screen, &json!({ "value": "6.1 inches" })).await,
        StatusCode::OK,
    )
    .await;
    ok_body(
        app.put(
            &format!("/v1/products/{id}/attributes/Chip"),
            &json!({ "value": "A17 Pro" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    ok_body(
        app.put(&screen, &json!({ "value": "6.1\"\nSuper Retina XDR" }))
            .await,
        StatusCode::OK,
    )
    .await;
    let events = app.events(&id.to_string()).await;
    let (first, chip, replaced) = (
        payload(&events, 1),
        payload(&events, 2),
        payload(&events, 3),
    );
    assert_eq!(first["name"], "Screen size");
    assert_eq!(chip["sort_order"], 1, "a new attribute goes last");
    assert_eq!(
        (&replaced["attribute_id"], &replaced["sort_order"]),
        (&first["attribute_id"], &first["sort_order"]),
        "a replaced value keeps its row and place"
    );
    assert_eq!(replaced["value"], "6.1\"\nSuper Retina XDR");

    ok_body(app.delete(&screen).await, StatusCode::OK).await;
    problem(
        app.delete(&screen).await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    let long_name = "n".repeat(101);
    problem(
        app.put(
            &format!("/v1/products/{id}/attributes/{long_name}"),
            &json!({ "value": "x" }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
}

#[tokio::test]
async fn a_variant_claims_its_sku_and_gets_stock_tracked_like_its_product() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("VAR-1", "var-1")).await;
    // The product's stock is no longer tracked: its variants follow.
    ok_body(
        app.put(
            "/v1/inventory/VAR-1/tracking",
            &json!({ "track_inventory": false }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let response = app
        .post(
            &format!("/v1/products/{id}/variants"),
            &json!({
                "sku": "var-1-256-black",
                "name": "256 GB Black",
                "price": "43900.00",
                "stock_quantity": 7,
                "attributes": { "storage": "256GB", "color": "Black" },
            }),
        )
        .await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let variant = created_id(response).await;
    assert_eq!(location, format!("/v1/products/{id}/variants/{variant}"));

    let added = app.events(&id.to_string()).await;
    assert_eq!(event_types(&added)[1], "ProductVariantAdded");
    assert_eq!(payload(&added, 1)["sku"], "VAR-1-256-BLACK");
    let stock = app.events("inventory:VAR-1-256-BLACK").await;
    assert_eq!(event_types(&stock), ["StockInitialized"]);
    let initialized = payload(&stock, 0);
    assert_eq!(initialized["variant_id"], variant.to_string());
    assert_eq!(initialized["product_id"], id.to_string());
    assert_eq!(initialized["quantity"], 7);
    assert_eq!(initialized["track_inventory"], false);
    assert_eq!(
        event_types(&app.events("sku:VAR-1-256-BLACK").await),
        ["UniqueKeyClaimed"]
    );

    let before = app.event_count().await;
    for (body, status, kind) in [
        (
            json!({ "sku": "VAR-1", "price": "1.00" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sku-taken",
        ),
        (
            json!({ "sku": "VAR-1-OTHER", "price": "1.00",
                    "attributes": { "color": "Black", "storage": "256GB" } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "variant-attributes-taken",
        ),
        (
            json!({ "sku": "VAR-1-NEG", "price": "1.00", "stock_quantity": -1 }),
            StatusCode::BAD_REQUEST,
            "validation",
        ),
    ] {
        problem(
            app.post(&format!("/v1/products/{id}/variants"), &body)
                .await,
            status,
            kind,
        )
        .await;
    }
    assert_eq!(app.event_count().await, before, "a refusal appends nothing");
}

#[tokio::test]
async fn a_variant_patch_merges_and_deactivation_frees_its_combination() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("VAR-2", "var-2")).await;
    let variants = format!("/v1/products/{id}/variants");
    let black = created_id(
        app.post(
            &variants,
            &json!({ "sku": "VAR-2-B", "name": "Black", "price": "100.00",
                     "attributes": { "color": "Black" } }),
        )
        .await,
    )
    .await;
    let path = format!("{variants}/{black}");
    ok_body(
        app.patch(&path, &json!({ "price": "90.00" })).await,
        StatusCode::OK,
    )
    .await;
    let events = app.events(&id.to_string()).await;
    let updated = payload(&events, 2);
    assert_eq!(
        (&updated["name"], &updated["price"], &updated["attributes"]),
        (
            &json!("Black"),
            &json!("90.00"),
            &json!({ "color": "Black" })
        ),
        "absent fields stay"
    );
    ok_body(
        app.patch(&path, &json!({ "name": null })).await,
        StatusCode::OK,
    )
    .await;
    let events = app.events(&id.to_string()).await;
    assert_eq!(payload(&events, 3)["name"], Value::Null);
    for body in [
        json!({}),
        json!({ "price": null }),
        json!({ "attributes": null }),
    ] {
        problem(
            app.patch(&path, &body).await,
            StatusCode::BAD_REQUEST,
            "validation",
        )
        .await;
    }

    let active = format!("{path}/active");
    ok_body(
        app.put(&active, &json!({ "active": false })).await,
        StatusCode::OK,
    )
    .await;
    problem(
        app.put(&active, &json!({ "active": false })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "active-unchanged",
    )
    .await;
    // Its combination is free while it is inactive...
    created_id(
        app.post(
            &variants,
            &json!({ "sku": "VAR-2-B2", "price": "100.00", "attributes": { "color": "Black" } }),
        )
        .await,
    )
    .await;
    // ... so it cannot come back onto it.
    problem(
        app.put(&active, &json!({ "active": true })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "variant-attributes-taken",
    )
    .await;
    let missing = Uuid::now_v7();
    problem(
        app.patch(
            &format!("{variants}/{missing}"),
            &json!({ "price": "1.00" }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    problem(
        app.send(
            Method::PUT,
            &format!("{variants}/{missing}/active"),
            &json!({ "active": false }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
}
