//! What every route shares: health, correlation ids, problem answers for
//! unknown routes and methods.

use std::sync::Arc;

use query_api::carts::MongoCartDocuments;
use query_api::products::ElasticsearchProductSearch;
use query_api::AppState;

use crate::support::{self, TestContext};

#[tokio::test]
async fn health_reports_every_store() {
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    let health = app.get_json("/health", 200).await;
    assert_eq!(
        health,
        serde_json::json!({
            "status": "ok",
            "checks": { "postgres": "up", "redis": "up", "elasticsearch": "up", "mongodb": "up" }
        })
    );
}

#[tokio::test]
async fn health_is_degraded_without_elasticsearch_and_503_without_postgres() {
    let context = TestContext::new().await;
    let mut elasticsearch = context.settings.elasticsearch.clone();
    elasticsearch.url = support::DEAD_ELASTICSEARCH.into();
    let app = context
        .spawn_app_with(AppState {
            search: Arc::new(ElasticsearchProductSearch::new(&elasticsearch).unwrap()),
            ..context.state()
        })
        .await;
    let health = app.get_json("/health", 200).await;
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["checks"]["elasticsearch"], "down");
    // Search needs Elasticsearch: a 503 problem, not an empty page.
    let problem = app.get_problem("/v1/products?q=phone", 503).await;
    assert_eq!(
        problem["type"],
        "https://errors.ecommerce.local/service-unavailable"
    );

    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(1))
        .connect_lazy(support::DEAD_POSTGRES)
        .unwrap();
    let app = context
        .spawn_app_with(AppState {
            read_model: Arc::new(query_api::catalog::PgCatalogReadModel::new(pool)),
            ..context.state()
        })
        .await;
    let health = app.get_json("/health", 503).await;
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["checks"]["postgres"], "down");
    assert_eq!(health["checks"]["redis"], "up");
}

#[tokio::test]
async fn health_is_degraded_without_mongodb() {
    let context = TestContext::new().await;
    let mut mongo = context.settings.mongo.clone();
    mongo.url = support::DEAD_MONGO.into();
    let app = context
        .spawn_app_with(AppState {
            cart_documents: Arc::new(MongoCartDocuments::new(&mongo)),
            ..context.state()
        })
        .await;
    let health = app.get_json("/health", 200).await;
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["checks"]["mongodb"], "down");
    assert_eq!(health["checks"]["postgres"], "up");
}

#[tokio::test]
async fn the_correlation_id_is_echoed_or_minted() {
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    let response = app
        .client
        .get(format!("{}/v1/brands", app.base_url))
        .header("X-Correlation-Id", "order-flow-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-correlation-id"], "order-flow-42");

    // Errors carry it too.
    let response = app
        .client
        .get(format!("{}/v1/products/nope", app.base_url))
        .header("X-Correlation-Id", "bad-id-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-correlation-id"], "bad-id-7");

    let response = app.get("/health").await;
    let minted = response.headers()["x-correlation-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(minted).is_ok(), "{minted}");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    let problem = app.get_problem("/v1/wishlists", 404).await;
    assert_eq!(problem["type"], "https://errors.ecommerce.local/not-found");
    let response = app
        .client
        .post(format!("{}/v1/products", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn a_token_not_applied_in_time_is_a_503_naming_the_lagging_projection() {
    let mut context = TestContext::new().await;
    context.settings.consistency.wait_ms = 200;
    let app = context.spawn_app_with(context.state()).await;

    // Nothing was ever published: no projection can have applied it.
    let token = "1.1.3e8.2a";
    let response = app
        .get_with_header("/v1/categories", "Consistency-Token", token)
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let problem: serde_json::Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("catalog-tables"), "{detail}");

    let problem = app
        .get_problem("/v1/categories?consistency_token=not-a-token", 400)
        .await;
    assert_eq!(problem["invalid_params"][0]["name"], "consistency_token");

    // Without a token, and with the empty one, nothing waits.
    app.get_json("/v1/categories", 200).await;
    app.get_json("/v1/categories?consistency_token=1.0.0.0", 200)
        .await;
}
