//! Conditional requests per RFC 9110 §13: `If-Match` (strong comparison) and
//! `If-None-Match` (weak comparison) on updates and creates. A false
//! condition is 412 and appends nothing; a malformed header is 400.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    header: (&str, &str),
    body: &Value,
) -> Response {
    app.request(method, path)
        .header(header.0, header.1)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Asserts a 412 naming `header` and the current ETag (`null` when the
/// resource does not exist).
async fn precondition_failed(response: Response, header: &str, current_etag: Value) {
    let body = problem(
        response,
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
    )
    .await;
    assert_eq!(body["header"], header, "{body}");
    assert_eq!(body["current_etag"], current_etag, "{body}");
}

#[tokio::test]
async fn a_false_if_match_is_412_naming_the_current_etag() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("PRE-1", "pre-1")).await;
    let path = format!("/v1/products/{id}/price");
    let body = json!({"regular_price": "100.00"});
    let before = app.event_count().await;
    for stale in [
        "\"7\"",
        "\"0\"",
        "W/\"1\"",
        "\"2\", W/\"1\"",
        "\"abc\"",
        "\"\"",
    ] {
        let response = send(&app, Method::PUT, &path, ("If-Match", stale), &body).await;
        precondition_failed(response, "If-Match", json!("\"1\"")).await;
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn if_match_holds_for_star_or_any_listed_strong_tag() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("PRE-2", "pre-2")).await;
    let path = format!("/v1/products/{id}/price");
    let cases = [
        ("\"1\"", 2),
        ("\"9\", \"2\"", 3),
        ("W/\"3\", \"3\"", 4),
        ("*", 5),
        (" \"5\" ,, \"8\"", 6),
    ];
    for (n, (if_match, version)) in cases.into_iter().enumerate() {
        let body = json!({"regular_price": format!("{}.00", 100 + n)});
        let response = send(&app, Method::PUT, &path, ("If-Match", if_match), &body).await;
        assert_eq!(
            response.headers()["etag"],
            format!("\"{version}\"").as_str(),
            "{if_match}"
        );
        assert_eq!(
            ok_body(response, StatusCode::OK).await["version"],
            version,
            "{if_match}"
        );
    }
}

#[tokio::test]
async fn a_malformed_if_match_or_if_none_match_is_400() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("PRE-3", "pre-3")).await;
    let path = format!("/v1/products/{id}");
    let before = app.event_count().await;
    for header in ["If-Match", "If-None-Match"] {
        for malformed in [
            "1",
            "soon",
            "\"1",
            "W/1",
            "w/\"1\"",
            "\"1\" \"2\"",
            "*, \"1\"",
            "\"a\"b\"",
        ] {
            let response = send(
                &app,
                Method::PATCH,
                &path,
                (header, malformed),
                &json!({"name": "x"}),
            )
            .await;
            let body = problem(response, StatusCode::BAD_REQUEST, "invalid-header").await;
            assert_eq!(body["header"], header, "{malformed:?}: {body}");
        }
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn if_match_on_a_missing_resource_is_412() {
    let app = TestApp::spawn().await;
    let category = app.category("not-a-product").await;
    let before = app.event_count().await;
    for id in [Uuid::now_v7(), category] {
        for if_match in ["*", "\"1\""] {
            let path = format!("/v1/products/{id}");
            let response = send(
                &app,
                Method::PATCH,
                &path,
                ("If-Match", if_match),
                &json!({"name": "x"}),
            )
            .await;
            precondition_failed(response, "If-Match", Value::Null).await;
        }
        // Without a condition it is the usual 404, and so with one that holds.
        let path = format!("/v1/products/{id}");
        problem(
            app.patch(&path, &json!({"name": "x"})).await,
            StatusCode::NOT_FOUND,
            "not-found",
        )
        .await;
        let response = send(
            &app,
            Method::PATCH,
            &path,
            ("If-None-Match", "*"),
            &json!({"name": "x"}),
        )
        .await;
        problem(response, StatusCode::NOT_FOUND, "not-found").await;
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn if_none_match_on_an_update_is_412_when_a_tag_matches_weakly() {
    let app = TestApp::spawn().await;
    let brand = app.brand("sony").await;
    let path = format!("/v1/brands/{brand}");
    let before = app.event_count().await;
    for matching in ["*", "\"1\"", "W/\"1\"", "\"4\", W/\"1\""] {
        let response = send(
            &app,
            Method::PATCH,
            &path,
            ("If-None-Match", matching),
            &json!({"name": "Sony"}),
        )
        .await;
        precondition_failed(response, "If-None-Match", json!("\"1\"")).await;
    }
    assert_eq!(app.event_count().await, before);
    let response = send(
        &app,
        Method::PATCH,
        &path,
        ("If-None-Match", "\"7\", W/\"2\""),
        &json!({"name": "Sony"}),
    )
    .await;
    assert_eq!(ok_body(response, StatusCode::OK).await["version"], 2);
}

#[tokio::test]
async fn if_match_on_a_create_is_412_unless_the_id_exists_with_that_tag() {
    let app = TestApp::spawn().await;
    for if_match in ["*", "\"1\""] {
        let response = send(
            &app,
            Method::POST,
            "/v1/brands",
            ("If-Match", if_match),
            &json!({"name": "Sony", "slug": "sony"}),
        )
        .await;
        precondition_failed(response, "If-Match", Value::Null).await;
        let id = Uuid::now_v7();
        let body = json!({"brand_id": id, "name": "Sony", "slug": "sony"});
        let response = send(
            &app,
            Method::POST,
            "/v1/brands",
            ("If-Match", if_match),
            &body,
        )
        .await;
        precondition_failed(response, "If-Match", Value::Null).await;
    }
    assert_eq!(app.event_count().await, 0);
    // The condition holds on an existing id, and the create is then refused
    // for what it is: the id is taken.
    let id = Uuid::now_v7();
    created_id(
        app.post(
            "/v1/brands",
            &json!({"brand_id": id, "name": "Sony", "slug": "sony"}),
        )
        .await,
    )
    .await;
    let body = json!({"brand_id": id, "name": "Sony", "slug": "sony-2"});
    let response = send(
        &app,
        Method::POST,
        "/v1/brands",
        ("If-Match", "\"1\""),
        &body,
    )
    .await;
    problem(response, StatusCode::UNPROCESSABLE_ENTITY, "already-exists").await;
}

#[tokio::test]
async fn if_none_match_star_on_a_create_is_412_when_the_id_is_taken() {
    let app = TestApp::spawn().await;
    // A server-chosen id is always new.
    let response = send(
        &app,
        Method::POST,
        "/v1/categories",
        ("If-None-Match", "*"),
        &json!({"name": "Audio", "slug": "audio"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // A client-chosen id: created once, then 412 instead of 422.
    let id = Uuid::now_v7();
    let body = json!({"category_id": id, "name": "Phones", "slug": "phones"});
    let response = send(
        &app,
        Method::POST,
        "/v1/categories",
        ("If-None-Match", "*"),
        &body,
    )
    .await;
    assert_eq!(created_id(response).await, id);
    let before = app.event_count().await;
    let again = json!({"category_id": id, "name": "Phones", "slug": "phones-2"});
    let response = send(
        &app,
        Method::POST,
        "/v1/categories",
        ("If-None-Match", "*"),
        &again,
    )
    .await;
    precondition_failed(response, "If-None-Match", json!("\"1\"")).await;
    let product = json!({"product_id": id, "sku": "PRE-9", "name": "x", "slug": "pre-9", "regular_price": "1.00"});
    let response = send(
        &app,
        Method::POST,
        "/v1/products",
        ("If-None-Match", "*"),
        &product,
    )
    .await;
    // The id is a category's: there is no such product, so the condition
    // holds and the create is refused because the id is in use.
    problem(response, StatusCode::UNPROCESSABLE_ENTITY, "already-exists").await;
    assert_eq!(app.event_count().await, before);
}
