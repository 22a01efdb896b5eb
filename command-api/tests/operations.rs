//! What operators rely on, against the real application and PostgreSQL:
//! `/metrics`, the concurrency limit and the request timeout. A request is
//! held open by a lock the test takes on the event store's tables in an
//! open transaction, so the handler really is busy in the database.

#[allow(dead_code)]
#[path = "api/support.rs"]
mod support;

use std::time::Duration;

use infrastructure::metrics::sample;
use infrastructure::testing::wait_for;
use reqwest::{header, StatusCode};
use serde_json::json;
use sqlx::{Postgres, Transaction};
use support::{created_id, problem, TestApp};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(15);

async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics answered");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.expect("metrics body")
}

fn requests(text: &str, method: &str, route: &str, status: StatusCode) -> f64 {
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status.as_str()),
    ];
    sample(text, "http_requests_total", &labels).unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_report_the_pool() {
    let app = TestApp::spawn().await;
    let before = scrape(&app).await;
    let id = Uuid::new_v4();
    let path = format!("/v1/products/{id}");
    let status = app
        .patch(&path, &json!({ "name": "Renamed" }))
        .await
        .status();
    let nowhere = app.patch("/v1/nowhere/7", &json!({})).await.status();
    assert_eq!(nowhere, StatusCode::NOT_FOUND);

    let after = scrape(&app).await;
    let route = "/v1/products/{id}";
    assert!(
        requests(&after, "PATCH", route, status) >= requests(&before, "PATCH", route, status) + 1.0,
        "{after}"
    );
    let labels = [
        ("method", "PATCH"),
        ("route", route),
        ("status", status.as_str()),
    ];
    let timed = sample(&after, "http_request_duration_seconds_count", &labels);
    assert!(timed.is_some_and(|n| n >= 1.0), "{after}");
    let bucket = [labels[0], labels[1], labels[2], ("le", "+Inf")];
    assert!(sample(&after, "http_request_duration_seconds_bucket", &bucket).is_some());
    // Template and fixed label only: no raw path becomes a time series.
    assert!(!after.contains(&id.to_string()), "{after}");
    assert!(!after.contains("/v1/nowhere"), "{after}");
    assert!(requests(&after, "PATCH", "unmatched", StatusCode::NOT_FOUND) >= 1.0);

    let pool = [("pool", "postgres")];
    // Every app of this test binary has `postgres.max_connections = 5`.
    assert_eq!(sample(&after, "db_pool_max", &pool), Some(5.0), "{after}");
    assert!(sample(&after, "db_pool_size", &pool).is_some_and(|n| n >= 1.0));
    assert!(sample(&after, "db_pool_idle", &pool).is_some());
    assert!(sample(&after, "db_pool_in_use", &pool).is_some());
}

/// Takes an exclusive lock on every table of the event store, in a
/// transaction that stays open until it is dropped or rolled back.
async fn lock_event_store(app: &TestApp) -> Transaction<'static, Postgres> {
    let mut tx = app.db.pool.begin().await.expect("begin");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'event_store'",
    )
    .fetch_all(&mut *tx)
    .await
    .expect("event store tables");
    assert!(!tables.is_empty());
    let names: Vec<String> = tables
        .iter()
        .map(|t| format!("event_store.\"{t}\""))
        .collect();
    sqlx::query(&format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        names.join(", ")
    ))
    .execute(&mut *tx)
    .await
    .expect("lock the event store");
    tx
}

/// Waits until some session of the test database waits for a lock.
async fn wait_for_lock_waiter(app: &TestApp) {
    wait_for("a request blocked on the lock", DEADLINE, || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE NOT l.granted AND d.datname = current_database()",
        )
        .fetch_one(&app.db.pool)
        .await
        .expect("pg_locks");
        (waiting > 0).then_some(())
    })
    .await;
}

fn category(slug: &str) -> serde_json::Value {
    json!({ "name": slug, "slug": slug })
}

#[tokio::test]
async fn a_full_server_sheds_commands_with_503_and_retry_after_but_answers_health_and_metrics() {
    let app = TestApp::spawn_with(|s| {
        s.http.max_concurrent_requests = 1;
        s.http.request_timeout_ms = 60_000;
    })
    .await;
    let lock = lock_event_store(&app).await;
    let held = tokio::spawn({
        let request = app
            .request(reqwest::Method::POST, "/v1/categories")
            .json(&category("held"));
        async move { request.send().await.expect("held request answered") }
    });
    wait_for_lock_waiter(&app).await;

    let shed = app.post("/v1/brands", &category("shed")).await;
    assert_eq!(
        shed.headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body = problem(shed, StatusCode::SERVICE_UNAVAILABLE, "service-unavailable").await;
    assert_eq!(body["instance"], "/v1/brands");
    assert!(body["request_id"].is_string(), "{body}");

    // Outside the limit: operators still see the server while it is full.
    let health = app
        .request(reqwest::Method::GET, "/health")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let metrics = scrape(&app).await;
    assert!(
        requests(
            &metrics,
            "POST",
            "/v1/brands",
            StatusCode::SERVICE_UNAVAILABLE
        ) >= 1.0,
        "{metrics}"
    );

    lock.rollback().await.expect("release the lock");
    let held = held.await.expect("held request task");
    created_id(held).await;
    // The permit came back with the held request.
    created_id(app.post("/v1/brands", &category("after")).await).await;
}

#[tokio::test]
async fn a_command_running_past_the_timeout_is_503_with_retry_after_and_appends_nothing() {
    let app = TestApp::spawn_with(|s| s.http.request_timeout_ms = 300).await;
    let lock = lock_event_store(&app).await;

    let response = app.post("/v1/categories", &category("slow")).await;
    assert_eq!(
        response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body = problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service-unavailable",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("in time"),
        "{body}"
    );
    assert_eq!(body["instance"], "/v1/categories");

    lock.rollback().await.expect("release the lock");
    assert_eq!(app.event_count().await, 0, "the timed-out command appended");
    created_id(app.post("/v1/categories", &category("slow")).await).await;
}
