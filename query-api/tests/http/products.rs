//! `GET /v1/products/{id}`: Redis first, then PostgreSQL.

use std::sync::Arc;

use query_api::catalog::PgCatalogReadModel;
use query_api::products::RedisProductCache;
use query_api::AppState;
use serde_json::Value;

use crate::support::{self, TestContext};

#[tokio::test]
async fn a_miss_reads_postgres_and_a_hit_answers_the_same_body() {
    let context = TestContext::new().await;
    let category = support::category("Phones", 1);
    let brand = support::brand("Apple");
    context.insert_category(&category).await;
    context.insert_brand(&brand).await;
    let mut product = support::product("iPhone 15 Pro");
    product.category_id = Some(category.id);
    product.brand_id = Some(brand.id);
    context.insert_product(&product).await;
    let app = context.spawn_app().await;
    let path = format!("/v1/products/{}", product.id);

    let miss = app.get(&path).await;
    assert_eq!(miss.status(), 200);
    assert_eq!(miss.headers()["x-cache"], "miss");
    assert_eq!(miss.headers()["content-type"], "application/json");
    let miss_body: Value = miss.json().await.unwrap();
    assert_eq!(miss_body["id"], product.id.to_string());
    assert_eq!(miss_body["regular_price"], "39900.00");
    assert_eq!(miss_body["sale_price"], "35900.00");
    assert_eq!(miss_body["weight"], "0.19");
    assert!(
        miss_body.get("cost_price").is_none(),
        "internal cost is not exposed"
    );
    assert_eq!(
        serde_json::from_value::<infrastructure::views::ProductView>(miss_body.clone()).unwrap(),
        product
    );

    context.cache_put(&product).await;
    let hit = app.get(&path).await;
    assert_eq!(hit.status(), 200);
    assert_eq!(hit.headers()["x-cache"], "hit");
    let hit_body: Value = hit.json().await.unwrap();
    assert_eq!(hit_body, miss_body);
    assert!(
        hit_body.get("cachedAt").is_none(),
        "the cache envelope stays internal"
    );
}

#[tokio::test]
async fn a_hit_does_not_touch_postgres() {
    let context = TestContext::new().await;
    // Only in the cache: the projector wrote it, PostgreSQL lags behind.
    let product = support::product("Cached only");
    context.cache_put(&product).await;
    let app = context.spawn_app().await;
    let response = app.get(&format!("/v1/products/{}", product.id)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "hit");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "Cached only");
}

#[tokio::test]
async fn a_corrupt_cache_entry_falls_through_to_postgres() {
    let context = TestContext::new().await;
    let product = support::product("Galaxy S24");
    context.insert_product(&product).await;
    context.cache_put_raw(product.id, "not json").await;
    let app = context.spawn_app().await;
    let response = app.get(&format!("/v1/products/{}", product.id)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "miss");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "Galaxy S24");
}

#[tokio::test]
async fn redis_down_falls_through_to_postgres() {
    let context = TestContext::new().await;
    let product = support::product("Pixel 8");
    context.insert_product(&product).await;
    let mut redis = context.settings.redis.clone();
    redis.url = support::DEAD_REDIS.into();
    let app = context
        .spawn_app_with(AppState {
            cache: Arc::new(RedisProductCache::new(&redis).unwrap()),
            ..context.state()
        })
        .await;

    let response = app.get(&format!("/v1/products/{}", product.id)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "miss");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "Pixel 8");

    let health = app.get_json("/health", 200).await;
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["checks"]["redis"], "down");
    assert_eq!(health["checks"]["postgres"], "up");
}

#[tokio::test]
async fn an_unknown_product_is_a_problem_404() {
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    let id = uuid::Uuid::new_v4();
    let problem = app.get_problem(&format!("/v1/products/{id}"), 404).await;
    assert_eq!(problem["type"], "https://errors.ecommerce.local/not-found");
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains(&id.to_string()));
}

#[tokio::test]
async fn a_malformed_id_is_a_problem_400() {
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    for bad in ["not-a-uuid", "123", "prod_001"] {
        let problem = app.get_problem(&format!("/v1/products/{bad}"), 400).await;
        assert_eq!(
            problem["type"],
            "https://errors.ecommerce.local/invalid-request"
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .starts_with("invalid path parameter"),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn postgres_down_is_a_problem_503() {
    let context = TestContext::new().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(1))
        .connect_lazy(support::DEAD_POSTGRES)
        .unwrap();
    let app = context
        .spawn_app_with(AppState {
            read_model: Arc::new(PgCatalogReadModel::new(pool)),
            ..context.state()
        })
        .await;
    let problem = app
        .get_problem(&format!("/v1/products/{}", uuid::Uuid::new_v4()), 503)
        .await;
    assert_eq!(
        problem["type"],
        "https://errors.ecommerce.local/service-unavailable"
    );
    let problem = app.get_problem("/v1/categories", 503).await;
    assert_eq!(
        problem["type"],
        "https://errors.ecommerce.local/service-unavailable"
    );
}
