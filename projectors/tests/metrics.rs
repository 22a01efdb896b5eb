//! `/health` and `/metrics` on the projectors' health server, through the real
//! application. The catalog tables projection needs only PostgreSQL, and
//! with topic creation off the Kafka consumer connects lazily, so no broker
//! is needed to start it.

use infrastructure::metrics::sample;
use infrastructure::settings::Settings;
use infrastructure::testing::{isolated_settings, unique_suffix, TestDatabase};
use projectors::projections::catalog_tables;

/// Settings for the catalog tables projection alone, without a broker.
fn catalog_only(db: &TestDatabase) -> Settings {
    let mut settings = isolated_settings(&db.url, &unique_suffix());
    settings.projectors.only = vec![catalog_tables::NAME.to_owned()];
    settings.kafka.create_topics = false;
    settings
}

/// The projectors running `settings`; answers their health server's base URL.
async fn start(settings: Settings) -> String {
    let app = projectors::app::Application::build(settings)
        .await
        .expect("the projectors start");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    base
}

#[tokio::test]
async fn the_health_server_serves_metrics_with_request_counters_and_pool_gauges() {
    let db = TestDatabase::create().await;
    let settings = catalog_only(&db);
    let max_connections = settings.postgres.max_connections;
    let base = start(settings).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    // Counted before the answer left, so one scrape after it sees it.
    let labels = [("method", "GET"), ("route", "/health"), ("status", "200")];
    assert!(
        sample(&text, "http_requests_total", &labels).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let pool = [("pool", "postgres")];
    assert_eq!(
        sample(&text, "db_pool_max", &pool),
        Some(f64::from(max_connections)),
        "{text}"
    );
    assert!(sample(&text, "db_pool_size", &pool).is_some_and(|n| n >= 1.0));
    assert!(sample(&text, "db_pool_idle", &pool).is_some());
    assert!(sample(&text, "db_pool_in_use", &pool).is_some());
}

#[tokio::test]
async fn health_turns_degraded_on_old_parked_events_and_recent_dead_letters() {
    let db = TestDatabase::create().await;
    let mut settings = catalog_only(&db);
    settings.projectors.parked_degraded_after_seconds = 600;
    let base = start(settings).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let health = || async {
        let response = client.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<serde_json::Value>().await.unwrap()
    };

    let fresh = health().await;
    assert_eq!(fresh["status"], "ok", "{fresh}");

    // A parked event younger than its bound is normal: it waits for its parent.
    sqlx::query(
        "INSERT INTO read_model.parked_events (projection, aggregate_id, version, waiting_for, envelope, parked_at) \
         VALUES ('catalog-tables', 'p-1', 1, 'category:c-1', '{}', now() - interval '5 minutes')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let waiting = health().await;
    assert_eq!(waiting["status"], "ok", "{waiting}");
    assert_eq!(waiting["projections"]["catalog-tables"]["parked"], 1);

    sqlx::query("UPDATE read_model.parked_events SET parked_at = now() - interval '2 hours'")
        .execute(&db.pool)
        .await
        .unwrap();
    let stuck = health().await;
    assert_eq!(stuck["status"], "degraded", "{stuck}");
    let problems = stuck["projections"]["catalog-tables"]["problems"].to_string();
    assert!(problems.contains("1 parked events"), "{problems}");

    sqlx::query("DELETE FROM read_model.parked_events")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO read_model.dead_letters (projection, source, reason, raw_message) \
         VALUES ('catalog-tables', 'kafka:t/0@1', 'undecodable message', 'x')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let lettered = health().await;
    assert_eq!(lettered["status"], "degraded", "{lettered}");
    let problems = lettered["projections"]["catalog-tables"]["problems"].to_string();
    assert!(problems.contains("1 dead letters"), "{problems}");

    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let labels = [("projection", "catalog-tables")];
    assert_eq!(
        sample(&text, "projector_parked_events", &labels),
        Some(0.0),
        "{text}"
    );
}
