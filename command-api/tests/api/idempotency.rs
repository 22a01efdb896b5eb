use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

async fn post_with_key(app: &TestApp, path: &str, key: &str, body: &Value) -> Response {
    app.request(Method::POST, path)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_repeated_request_gets_the_first_answer_and_appends_once() {
    let app = TestApp::spawn().await;
    let body = product_body("IDEM-1", "idem-1");
    let first = post_with_key(&app, "/v1/products", "order-form-42", &body).await;
    assert!(!first.headers().contains_key("idempotent-replayed"));
    let location = first.headers()["location"].clone();
    let first = ok_body(first, StatusCode::CREATED).await;
    let count = app.event_count().await;

    let again = post_with_key(&app, "/v1/products", "order-form-42", &body).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], location);
    assert_eq!(ok_body(again, StatusCode::CREATED).await, first);
    assert_eq!(app.event_count().await, count);

    // The same key with another body is refused.
    let mut other = body.clone();
    other["name"] = json!("Something else");
    problem(
        post_with_key(&app, "/v1/products", "order-form-42", &other).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    )
    .await;
    assert_eq!(app.event_count().await, count);
    // Keys are scoped to their route: on another path it names another request.
    let brand = post_with_key(
        &app,
        "/v1/brands",
        "order-form-42",
        &json!({"name": "Apple", "slug": "apple"}),
    )
    .await;
    assert!(!brand.headers().contains_key("idempotent-replayed"));
    created_id(brand).await;
}

#[tokio::test]
async fn updates_replay_their_status_code() {
    let app = TestApp::spawn().await;
    let id = app.product(&product_body("IDEM-2", "idem-2")).await;
    let send = || {
        app.request(Method::PUT, &format!("/v1/products/{id}/price"))
            .header("Idempotency-Key", "price-change-1")
            .json(&json!({"regular_price": "120.00"}))
            .send()
    };
    let first = ok_body(send().await.unwrap(), StatusCode::OK).await;
    let again = send().await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(ok_body(again, StatusCode::OK).await, first);
    assert_eq!(app.events(&id.to_string()).await.len(), 2);
}

#[tokio::test]
async fn concurrent_twins_append_once_and_answer_alike() {
    let app = TestApp::spawn().await;
    let body = product_body("IDEM-3", "idem-3");
    let requests = (0..3).map(|_| {
        let request = app
            .request(Method::POST, "/v1/products")
            .header("Idempotency-Key", "twin")
            .json(&body);
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        })
    });
    let mut answers = Vec::new();
    for handle in requests.collect::<Vec<_>>() {
        answers.push(handle.await.unwrap());
    }
    for (status, answer) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer, &answers[0].1);
    }
    // Product, inventory, sku and slug: one event each.
    assert_eq!(app.event_count().await, 4);
}

#[tokio::test]
async fn a_refused_request_stores_no_answer() {
    let app = TestApp::spawn().await;
    let mut body = product_body("IDEM-4", "idem-4");
    body["sale_price"] = json!("50000.00");
    for _ in 0..2 {
        problem(
            post_with_key(&app, "/v1/products", "refused", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "sale-price-not-below-regular",
        )
        .await;
    }
    assert_eq!(app.event_count().await, 0);
}
