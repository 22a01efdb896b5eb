//! Promotions and coupons over HTTP: terms parsed into the domain's values,
//! targets that must exist, activation, and coupon codes claimed once
//! whatever their case.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

fn terms() -> Value {
    json!({
        "name": "Summer sale",
        "description": "10% off\nthis summer",
        "type": "percentage",
        "value": 10,
        "minimum_amount": "1000.00",
        "maximum_discount": "500",
        "usage_limit": 5,
        "usage_limit_per_user": 1,
        "starts_at": "2026-06-01T00:00:00Z",
        "ends_at": "2026-09-01T00:00:00Z",
    })
}

fn with(mut body: Value, changes: Value) -> Value {
    for (key, value) in changes.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

#[tokio::test]
async fn a_promotion_is_created_with_the_seed_columns_and_replaced_as_a_whole() {
    let app = TestApp::spawn().await;
    let id = created_id(app.post("/v1/promotions", &terms()).await).await;
    let events = app.events(&id.to_string()).await;
    assert_eq!(event_types(&events), ["PromotionCreated"]);
    let created = &events[0].payload["PromotionCreated"];
    assert_eq!(created["type"], "percentage");
    assert_eq!(created["value"], "10.00");
    assert_eq!(created["minimum_amount"], "1000.00");
    assert_eq!(created["maximum_discount"], "500.00");
    assert_eq!(created["applicable_to"], "all");
    assert_eq!(created["is_active"], true);

    let category = app.category("promo-shoes").await;
    let path = format!("/v1/promotions/{id}");
    let replaced = with(
        terms(),
        json!({ "type": "fixed_amount", "value": "150.50", "applicable_to": "categories",
                 "applicable_ids": [category, category] }),
    );
    let stale = app
        .request(Method::PUT, &path)
        .header("If-Match", "\"7\"")
        .json(&replaced)
        .send()
        .await
        .unwrap();
    problem(
        stale,
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
    )
    .await;
    let body = ok_body(app.put(&path, &replaced).await, StatusCode::OK).await;
    assert_eq!(body["version"], 2);
    let again = ok_body(app.put(&path, &replaced).await, StatusCode::OK).await;
    assert_eq!(again["version"], 2, "the same terms append nothing");
    let events = app.events(&id.to_string()).await;
    let updated = &events[1].payload["PromotionUpdated"];
    assert_eq!(updated["type"], "fixed_amount");
    assert_eq!(updated["applicable_ids"], json!([category]));

    problem(
        app.put(&format!("/v1/promotions/{}", Uuid::now_v7()), &terms())
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn bad_terms_are_400_and_missing_targets_422_and_nothing_is_appended() {
    let app = TestApp::spawn().await;
    let before = app.event_count().await;
    for (changes, field) in [
        (json!({ "value": 120 }), "value"),
        (json!({ "value": null }), "value"),
        (json!({ "type": "free_shipping", "value": 5 }), "value"),
        (json!({ "type": "fixed_amount", "value": "-1" }), "value"),
        (json!({ "minimum_amount": "1.001" }), "minimum_amount"),
        (json!({ "ends_at": "2026-05-01T00:00:00Z" }), "ends_at"),
        (json!({ "usage_limit": 0 }), "usage_limit"),
        (json!({ "maximum_discount": 0 }), "maximum_discount"),
        (json!({ "name": "  " }), "name"),
        (json!({ "applicable_to": "products" }), "applicable_ids"),
        (
            json!({ "applicable_ids": [Uuid::now_v7()] }),
            "applicable_ids",
        ),
    ] {
        let refused = problem(
            app.post("/v1/promotions", &with(terms(), changes.clone()))
                .await,
            StatusCode::BAD_REQUEST,
            "validation",
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], field, "{changes}: {refused}");
    }
    problem(
        app.post("/v1/promotions", &with(terms(), json!({ "type": "bogo" })))
            .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    let missing = Uuid::now_v7();
    let refused = problem(
        app.post(
            "/v1/promotions",
            &with(
                terms(),
                json!({ "applicable_to": "products", "applicable_ids": [missing] }),
            ),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reference-not-found",
    )
    .await;
    assert_eq!(refused["applicable_ids"], missing.to_string());
    assert_eq!(app.event_count().await, before, "a refusal appends nothing");

    let free = created_id(
        app.post(
            "/v1/promotions",
            &with(terms(), json!({ "type": "free_shipping", "value": null })),
        )
        .await,
    )
    .await;
    let events = app.events(&free.to_string()).await;
    assert_eq!(events[0].payload["PromotionCreated"]["value"], "0.00");
}

#[tokio::test]
async fn activation_and_an_inactive_creation() {
    let app = TestApp::spawn().await;
    let id = created_id(
        app.post(
            "/v1/promotions",
            &with(terms(), json!({ "is_active": false })),
        )
        .await,
    )
    .await;
    assert_eq!(
        event_types(&app.events(&id.to_string()).await),
        ["PromotionCreated", "PromotionDeactivated"]
    );
    let active = format!("/v1/promotions/{id}/active");
    let body = ok_body(
        app.put(&active, &json!({ "is_active": true })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["version"], 3);
    let body = ok_body(
        app.put(&active, &json!({ "is_active": true })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["version"], 3, "already active: nothing appended");
    problem(
        app.put(&active, &json!({})).await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
}

#[tokio::test]
async fn a_coupon_code_is_claimed_once_whatever_its_case_and_deactivated_for_good() {
    let app = TestApp::spawn().await;
    let promotion = created_id(app.post("/v1/promotions", &terms()).await).await;
    let coupons = format!("/v1/promotions/{promotion}/coupons");
    let response = app.post(&coupons, &json!({ "code": " summer10 " })).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let coupon = created_id(response).await;
    let events = app.events(&coupon.to_string()).await;
    assert_eq!(event_types(&events), ["CouponIssued"]);
    assert_eq!(events[0].payload["CouponIssued"]["code"], "SUMMER10");
    assert_eq!(
        events[0].payload["CouponIssued"]["promotion_id"],
        promotion.to_string()
    );

    let other = created_id(app.post("/v1/promotions", &terms()).await).await;
    let taken = problem(
        app.post(
            &format!("/v1/promotions/{other}/coupons"),
            &json!({ "code": "Summer10" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "coupon-code-taken",
    )
    .await;
    assert_eq!(taken["coupon_id"], coupon.to_string());
    problem(
        app.post(&coupons, &json!({ "code": "no spaces inside" }))
            .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    problem(
        app.post(
            &format!("/v1/promotions/{}/coupons", Uuid::now_v7()),
            &json!({ "code": "GHOST1" }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;

    let deactivation = format!("/v1/coupons/{coupon}/deactivation");
    let body = ok_body(
        app.request(Method::POST, &deactivation)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["version"], 2);
    let again = ok_body(
        app.request(Method::POST, &deactivation)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["version"], 2, "deactivating twice appends nothing");
    problem(
        app.request(
            Method::POST,
            &format!("/v1/coupons/{}/deactivation", Uuid::now_v7()),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    // The code stays claimed by the deactivated coupon.
    problem(
        app.post(&coupons, &json!({ "code": "SUMMER10" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "coupon-code-taken",
    )
    .await;
}

#[tokio::test]
async fn customers_cannot_manage_promotions() {
    let app = TestApp::spawn().await;
    let (customer, _) = app.customer("promo-customer@example.com").await;
    let response = app
        .send_as(&customer, Method::POST, "/v1/promotions", Some(&terms()))
        .await;
    problem(response, StatusCode::FORBIDDEN, "forbidden").await;
}
