//! What operators rely on, against the real application and its stores:
//! `/metrics`, the concurrency limit and the request timeout. A read is held
//! open by a lock the test takes on a read-model table in an open
//! transaction, so the handler really is busy in PostgreSQL.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use infrastructure::metrics::sample;
use infrastructure::testing::wait_for;
use reqwest::header;
use sqlx::{Postgres, Transaction};
use support::{TestApp, TestContext};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(15);

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
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

fn requests(text: &str, route: &str, status: u16) -> f64 {
    let status = status.to_string();
    let labels = [("method", "GET"), ("route", route), ("status", &status)];
    sample(text, "http_requests_total", &labels).unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_report_the_pool() {
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    let before = scrape(&app).await;
    let id = Uuid::new_v4();
    app.get_problem(&format!("/v1/products/{id}"), 404).await;
    app.get_problem("/v1/nowhere/7", 404).await;

    let after = scrape(&app).await;
    let route = "/v1/products/{id}";
    assert!(
        requests(&after, route, 404) >= requests(&before, route, 404) + 1.0,
        "{after}"
    );
    let labels = [("method", "GET"), ("route", route), ("status", "404")];
    let timed = sample(&after, "http_request_duration_seconds_count", &labels);
    assert!(timed.is_some_and(|n| n >= 1.0), "{after}");
    assert!(!after.contains(&id.to_string()), "{after}");
    assert!(!after.contains("/v1/nowhere"), "{after}");
    assert!(requests(&after, "unmatched", 404) >= 1.0, "{after}");

    let pool = [("pool", "postgres")];
    let max = f64::from(context.settings.postgres.max_connections);
    assert_eq!(sample(&after, "db_pool_max", &pool), Some(max), "{after}");
    assert!(sample(&after, "db_pool_size", &pool).is_some_and(|n| n >= 1.0));
    assert!(sample(&after, "db_pool_idle", &pool).is_some());
    assert!(sample(&after, "db_pool_in_use", &pool).is_some());
}

/// Locks `read_model.categories` in a transaction that stays open until it
/// is dropped or rolled back.
async fn lock_categories(context: &TestContext) -> Transaction<'static, Postgres> {
    let mut tx = context.pool().begin().await.expect("begin");
    sqlx::query("LOCK TABLE read_model.categories IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .expect("lock categories");
    tx
}

async fn wait_for_lock_waiter(context: &TestContext) {
    wait_for("a read blocked on the lock", DEADLINE, || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE NOT l.granted AND d.datname = current_database()",
        )
        .fetch_one(context.pool())
        .await
        .expect("pg_locks");
        (waiting > 0).then_some(())
    })
    .await;
}

fn retry_after(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_full_server_sheds_reads_with_503_and_retry_after_but_answers_health_and_metrics() {
    let mut context = TestContext::new().await;
    context.settings.http.max_concurrent_requests = 1;
    context.settings.http.request_timeout_ms = 60_000;
    let app = context.spawn_app().await;
    let lock = lock_categories(&context).await;
    let held = tokio::spawn({
        let request = app.client.get(format!("{}/v1/categories", app.base_url));
        async move { request.send().await.expect("held read answered") }
    });
    wait_for_lock_waiter(&context).await;

    let shed = app.get("/v1/brands").await;
    assert_eq!(shed.status(), 503);
    assert_eq!(retry_after(&shed), Some("1"));
    assert_eq!(
        shed.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body: serde_json::Value = shed.json().await.expect("problem");
    assert_eq!(
        body["type"],
        "https://errors.ecommerce.local/service-unavailable"
    );
    assert_eq!(body["status"], 503);

    // Outside the limit: operators still see the server while it is full.
    assert_eq!(app.get("/health").await.status(), 200);
    let metrics = scrape(&app).await;
    assert!(requests(&metrics, "/v1/brands", 503) >= 1.0, "{metrics}");

    lock.rollback().await.expect("release the lock");
    let held = held.await.expect("held read task");
    assert_eq!(held.status(), 200);
    // The permit came back with the held read.
    app.get_json("/v1/brands", 200).await;
}

#[tokio::test]
async fn a_read_running_past_the_timeout_is_503_with_retry_after_and_a_problem() {
    let mut context = TestContext::new().await;
    context.settings.http.request_timeout_ms = 300;
    let app = context.spawn_app().await;
    let lock = lock_categories(&context).await;

    let response = app.get("/v1/categories").await;
    assert_eq!(response.status(), 503);
    assert_eq!(retry_after(&response), Some("1"));
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.expect("problem");
    assert_eq!(
        body["type"],
        "https://errors.ecommerce.local/service-unavailable"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("in time"),
        "{body}"
    );

    lock.rollback().await.expect("release the lock");
    app.get_json("/v1/categories", 200).await;
}
