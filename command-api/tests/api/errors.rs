use std::time::Duration;

use infrastructure::testing::wait_for;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

/// Each malformed body is a 400 problem, and nothing is appended.
#[tokio::test]
async fn malformed_input_is_400_and_appends_nothing() {
    let app = TestApp::spawn().await;
    app.product(&product_body("BASE-1", "base-1")).await;
    let before = app.event_count().await;

    let with = |key: &str, value: Value| {
        let mut body = product_body("NEW-1", "new-1");
        body[key] = value;
        body
    };
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("bad slug", with("slug", json!("Not A Slug")), Some("slug")),
        ("bad sku", with("sku", json!("no spaces")), Some("sku")),
        (
            "negative price",
            with("regular_price", json!("-1.00")),
            Some("regular_price"),
        ),
        (
            "zero price",
            with("regular_price", json!(0)),
            Some("regular_price"),
        ),
        (
            "three decimals",
            with("regular_price", json!("1.005")),
            Some("regular_price"),
        ),
        (
            "bad money text",
            with("regular_price", json!("12,00")),
            None,
        ),
        (
            "bad currency",
            with("currency", json!("baht")),
            Some("currency"),
        ),
        (
            "negative stock",
            with("stock_quantity", json!(-1)),
            Some("stock_quantity"),
        ),
        (
            "negative dimension",
            with("weight", json!(-0.5)),
            Some("weight"),
        ),
        ("empty name", with("name", json!("   ")), Some("name")),
        (
            "unknown field",
            with("colour", json!("red")),
            Some("colour"),
        ),
        (
            "wrong type",
            with("stock_quantity", json!("many")),
            Some("stock_quantity"),
        ),
        ("wrong uuid", with("category_id", json!("not-a-uuid")), None),
        (
            "missing field",
            json!({"sku": "X-1", "name": "x", "slug": "x"}),
            None,
        ),
    ];
    for (case, body, field) in cases {
        let problem = problem(
            app.post("/v1/products", &body).await,
            StatusCode::BAD_REQUEST,
            "validation",
        )
        .await;
        if let Some(field) = field {
            let fields: Vec<&str> = problem["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{case}: {problem}"))
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert_eq!(fields, [field], "{case}: {problem}");
        }
    }
    for raw in ["{\"sku\": ", "not json", "", "[1,2]"] {
        let response = app
            .request(Method::POST, "/v1/products")
            .header("Content-Type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::BAD_REQUEST, "validation").await;
    }
    assert_eq!(app.event_count().await, before);
}

/// A body is a JSON object. serde also reads a struct from an array of its
/// fields in order, so without this check `["Renamed"]` renamed a category
/// and an array of a brand's six fields created one (found by schemathesis).
#[tokio::test]
async fn a_body_that_is_not_an_object_is_400_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let category = app.category("phones").await;
    let before = app.event_count().await;
    let renamed = format!("/v1/categories/{category}");
    for (method, path, body) in [
        (Method::PATCH, renamed.as_str(), json!(["Renamed"])),
        (
            Method::POST,
            "/v1/brands",
            json!([null, "Apple", "apple", null, null, null]),
        ),
        (
            Method::POST,
            "/v1/sessions",
            json!([ADMIN_EMAIL, ADMIN_PASSWORD]),
        ),
        (Method::POST, "/v1/categories", json!("phones")),
        (Method::POST, "/v1/categories", json!(null)),
    ] {
        let problem = problem(
            app.send(method, path, &body).await,
            StatusCode::BAD_REQUEST,
            "validation",
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().contains("JSON object"),
            "{path} {body}: {problem}"
        );
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn oversized_and_non_json_bodies_are_refused() {
    let app = TestApp::spawn_with(|s| s.http.body_limit_bytes = 1024).await;
    let mut body = product_body("BIG-1", "big-1");
    body["description"] = json!("x".repeat(2000));
    let problem_body = problem(
        app.post("/v1/products", &body).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    )
    .await;
    assert_eq!(problem_body["instance"], "/v1/products");

    let response = app
        .request(Method::POST, "/v1/products")
        .body(serde_json::to_vec(&product_body("TXT-1", "txt-1")).unwrap())
        .send()
        .await
        .unwrap();
    problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;
    let response = app
        .request(Method::POST, "/v1/brands")
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn routing_and_header_errors_are_problems_too() {
    let app = TestApp::spawn().await;
    problem(
        app.request(Method::GET, "/v1/nothing-here")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    let response = app
        .request(Method::GET, "/v1/products")
        .send()
        .await
        .unwrap();
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("POST"), "{allow}");
    problem(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
    )
    .await;
    let body = problem(
        app.patch("/v1/products/not-a-uuid", &json!({"name": "x"}))
            .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("path"), "{body}");
    let response = app
        .request(Method::POST, "/v1/brands")
        .header("X-Correlation-Id", "not-a-uuid")
        .json(&json!({"name": "Sony", "slug": "sony"}))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::BAD_REQUEST, "invalid-header").await;
    assert_eq!(body["header"], "X-Correlation-Id");
    let response = app
        .request(Method::POST, "/v1/brands")
        .header("Idempotency-Key", "has spaces")
        .json(&json!({"name": "Sony", "slug": "sony"}))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::BAD_REQUEST, "invalid-header").await;
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn health_answers_while_the_database_does() {
    let app = TestApp::spawn().await;
    let response = app.request(Method::GET, "/health").send().await.unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    let body = ok_body(response, StatusCode::OK).await;
    assert_eq!(body["status"], "ok");
    // The relay is off in these tests: only the set-up's events wait.
    assert_eq!(body["relay"]["lag_events"], app.setup_events);
    assert_eq!(body["relay"]["stalled"], false);
}

/// With every pooled connection busy, a request that cannot get one within
/// `acquire_timeout_seconds` is a 503 the client may retry, not a 500. The
/// only connection is held for real: the first request's read waits on a
/// table lock this test takes, while a second request queues for the pool.
#[tokio::test]
async fn an_exhausted_connection_pool_is_503_with_retry_after() {
    let app = TestApp::spawn_with(|s| {
        s.postgres.max_connections = 1;
        s.postgres.acquire_timeout_seconds = 1;
    })
    .await;
    let mut lock = app.db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE event_store.events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let first = app
        .request(Method::POST, "/v1/brands")
        .json(&json!({"name": "Sony", "slug": "sony"}))
        .send();
    let first = tokio::spawn(first);
    let database = app.db.name.clone();
    wait_for(
        "the first request to wait on the lock with the pool's only connection",
        Duration::from_secs(10),
        || {
            let pool = app.db.pool.clone();
            let database = database.clone();
            async move {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = $1 AND wait_event_type = 'Lock'",
                )
                .bind(&database)
                .fetch_one(&pool)
                .await
                .unwrap();
                (waiting > 0).then_some(())
            }
        },
    )
    .await;

    let response = app
        .post("/v1/brands", &json!({"name": "Sonos", "slug": "sonos"}))
        .await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service-unavailable",
    )
    .await;
    let seconds: u64 = retry_after
        .unwrap_or_else(|| panic!("no Retry-After: {body}"))
        .parse()
        .expect("Retry-After in seconds");
    assert!(seconds >= 1, "{seconds}");

    // Once the lock is gone the first request completes.
    lock.rollback().await.unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(app.event_count().await, 2);
}
