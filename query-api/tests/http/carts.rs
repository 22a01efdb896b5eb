//! `GET /v1/carts/{id}`: Redis first, then MongoDB, for the cart's owner
//! only.

use std::sync::Arc;

use infrastructure::consistency::{record_applied, record_watermark, PartitionOffsets};
use infrastructure::event_store::ConsistencyToken;
use infrastructure::views::carts::CartOwnerView;
use query_api::carts::{MongoCartDocuments, RedisCartCache};
use query_api::AppState;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{self, TestContext};

#[tokio::test]
async fn the_owner_reads_a_miss_from_mongo_and_a_hit_from_redis_with_the_same_body() {
    let context = TestContext::new().await;
    let user_id = Uuid::now_v7();
    let owner = support::user_owner(user_id);
    let cart = support::seed_cart();
    context.cart_document_put(&owner, &cart).await;
    let app = context.spawn_app().await;
    let client = context.client_as(user_id, "customer").await;
    let url = format!("{}/v1/carts/{}", app.base_url, cart.cart_id);

    let miss = client.get(&url).send().await.unwrap();
    assert_eq!(miss.status(), 200);
    assert_eq!(miss.headers()["x-cache"], "miss");
    let miss_body: Value = miss.json().await.unwrap();
    assert_eq!(miss_body["id"], cart.cart_id.to_string());
    assert_eq!(
        miss_body["owner"],
        json!({ "type": "user", "user_id": user_id })
    );
    let item = &miss_body["items"][0];
    let line = &cart.items[0];
    let item_id = domain::cart::CartLineKey {
        product_id: line.product_id,
        variant_id: line.product_variant_id,
        options: line.options.clone(),
    }
    .item_id();
    assert_eq!(item["item_id"], item_id.to_string());
    assert_eq!(item["product_id"], line.product_id.to_string());
    assert_eq!(
        item["product_variant_id"],
        line.product_variant_id.unwrap().to_string()
    );
    assert_eq!(item["sku"], "IPH-15-PRO-256");
    assert_eq!(item["image_url"], "https://cdn.example.com/iphone.png");
    assert_eq!(item["quantity"], 2);
    assert_eq!(item["unit_price"], "35900.00");
    assert_eq!(item["total_price"], "71800.00");
    assert_eq!(
        item["options"],
        json!({ "color": "black", "storage": "256GB" })
    );
    assert_eq!(
        miss_body["summary"],
        json!({
            "item_count": 2,
            "subtotal": "71800.00",
            "estimated_tax": "5026.00",
            "estimated_total": "76826.00",
            "shipping_fee": "50.00",
        })
    );
    assert_eq!(miss_body["coupon_code"], "WELCOME10");
    assert_eq!(miss_body["shipping_method"], "standard");
    assert_eq!(miss_body["shipping_address"], Value::Null);
    for field in ["created_at", "updated_at", "expires_at", "items"] {
        assert!(!miss_body[field].is_null(), "{field}");
    }

    context.cart_cache_put(&owner, &cart).await;
    let hit = client.get(&url).send().await.unwrap();
    assert_eq!(hit.status(), 200);
    assert_eq!(hit.headers()["x-cache"], "hit");
    let hit_body: Value = hit.json().await.unwrap();
    assert_eq!(hit_body, miss_body);
}

#[tokio::test]
async fn a_cart_in_the_cache_only_is_a_hit() {
    let context = TestContext::new().await;
    let user_id = Uuid::now_v7();
    let cart = support::seed_cart();
    context
        .cart_cache_put(&support::user_owner(user_id), &cart)
        .await;
    let app = context.spawn_app().await;
    let response = context
        .client_as(user_id, "customer")
        .await
        .get(format!("{}/v1/carts/{}", app.base_url, cart.cart_id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "hit");
}

#[tokio::test]
async fn the_owners_entry_for_another_cart_falls_through_to_mongo() {
    let context = TestContext::new().await;
    let user_id = Uuid::now_v7();
    let owner = support::user_owner(user_id);
    let (asked, current) = (support::seed_cart(), support::seed_cart());
    context.cart_document_put(&owner, &asked).await;
    context.cart_cache_put(&owner, &current).await;
    let app = context.spawn_app().await;
    let response = context
        .client_as(user_id, "customer")
        .await
        .get(format!("{}/v1/carts/{}", app.base_url, asked.cart_id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "miss");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], asked.cart_id.to_string());
}

#[tokio::test]
async fn another_customer_an_admin_and_a_guest_get_404() {
    let context = TestContext::new().await;
    let owner_id = Uuid::now_v7();
    let owner = support::user_owner(owner_id);
    let cart = support::seed_cart();
    context.cart_document_put(&owner, &cart).await;
    context.cart_cache_put(&owner, &cart).await;
    let app = context.spawn_app().await;
    let path = format!("/v1/carts/{}", cart.cart_id);
    for client in [
        context.client_as(Uuid::now_v7(), "customer").await,
        context.client_as(Uuid::now_v7(), "admin").await,
        reqwest::Client::new(),
    ] {
        let response = client
            .get(format!("{}{path}", app.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "https://errors.ecommerce.local/not-found");
    }
    // The owner's own unknown cart is as absent.
    let response = context
        .client_as(owner_id, "customer")
        .await
        .get(format!("{}/v1/carts/{}", app.base_url, Uuid::now_v7()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_guest_reads_their_cart_with_its_session_and_only_with_it() {
    let context = TestContext::new().await;
    let (token, owner) = support::guest_session();
    let cart = support::seed_cart();
    context.cart_document_put(&owner, &cart).await;
    let app = context.spawn_app().await;
    let path = format!("/v1/carts/{}", cart.cart_id);

    let response = app.get_with_header(&path, "X-Cart-Session", &token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "miss");
    let body: Value = response.json().await.unwrap();
    let CartOwnerView::Guest { session_id } = &owner else {
        unreachable!()
    };
    assert_eq!(
        body["owner"],
        json!({ "type": "guest", "session_id": session_id })
    );
    assert!(
        !body.to_string().contains(&token),
        "the session token itself is never answered"
    );

    context.cart_cache_put(&owner, &cart).await;
    let response = app.get_with_header(&path, "X-Cart-Session", &token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "hit");

    app.get_problem(&path, 404).await;
    let (another, _) = support::guest_session();
    let response = app.get_with_header(&path, "X-Cart-Session", &another).await;
    assert_eq!(response.status(), 404);
    let response = app
        .get_with_header(&path, "X-Cart-Session", "not-a-cart-session")
        .await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["invalid_params"][0]["name"], "X-Cart-Session");
    // A signed-in user reads as themselves, whatever session they carry.
    let response = context
        .client_as(Uuid::now_v7(), "customer")
        .await
        .get(format!("{}{path}", app.base_url))
        .header("X-Cart-Session", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_cart_past_its_expiry_is_not_found() {
    let context = TestContext::new().await;
    let user_id = Uuid::now_v7();
    let owner = support::user_owner(user_id);
    let mut cart = support::seed_cart();
    cart.expires_at = cart.updated_at - chrono::Duration::seconds(1);
    context.cart_document_put(&owner, &cart).await;
    context.cart_cache_put(&owner, &cart).await;
    let app = context.spawn_app().await;
    let response = context
        .client_as(user_id, "customer")
        .await
        .get(format!("{}/v1/carts/{}", app.base_url, cart.cart_id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn redis_down_reads_mongo_and_mongo_down_is_a_503() {
    let context = TestContext::new().await;
    let user_id = Uuid::now_v7();
    let owner = support::user_owner(user_id);
    let cart = support::seed_cart();
    context.cart_document_put(&owner, &cart).await;
    let mut redis = context.settings.redis.clone();
    redis.url = support::DEAD_REDIS.into();
    let app = context
        .spawn_app_with(AppState {
            cart_cache: Arc::new(RedisCartCache::new(&redis).unwrap()),
            ..context.state()
        })
        .await;
    let client = context.client_as(user_id, "customer").await;
    let url = format!("{}/v1/carts/{}", app.base_url, cart.cart_id);
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "miss");

    let mut mongo = context.settings.mongo.clone();
    mongo.url = support::DEAD_MONGO.into();
    let app = context
        .spawn_app_with(AppState {
            cart_documents: Arc::new(MongoCartDocuments::new(&mongo)),
            ..context.state()
        })
        .await;
    let url = format!("{}/v1/carts/{}", app.base_url, cart.cart_id);
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://errors.ecommerce.local/service-unavailable"
    );
    // A hit needs no MongoDB.
    context.cart_cache_put(&owner, &cart).await;
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "hit");
}

#[tokio::test]
async fn a_read_with_a_token_waits_for_both_cart_projections() {
    let mut context = TestContext::new().await;
    context.settings.consistency.wait_ms = 200;
    let user_id = Uuid::now_v7();
    let owner = support::user_owner(user_id);
    let cart = support::seed_cart();
    context.cart_document_put(&owner, &cart).await;
    let app = context.spawn_app_with(context.state()).await;
    let client = context.client_as(user_id, "customer").await;
    let url = format!("{}/v1/carts/{}", app.base_url, cart.cart_id);
    let token = "1.1.3e8.2a";
    let read = || async {
        client
            .get(&url)
            .header("Consistency-Token", token)
            .send()
            .await
            .unwrap()
    };

    // Nothing published yet: neither projection has applied it.
    let response = read().await;
    assert_eq!(response.status(), 503);
    let problem: Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("cart-cache") && detail.contains("cart-documents"),
        "{detail}"
    );

    // The relay published the token's events up to offset 4 of the cart
    // topic; the cache has applied them, the documents not yet.
    let topic = context.settings.kafka.topic_for("cart");
    let place = token.parse::<ConsistencyToken>().unwrap().place();
    let mut connection = context.pool().acquire().await.unwrap();
    let published = PartitionOffsets::from([((topic.clone(), 0), 4)]);
    record_watermark(
        &mut connection,
        &context.settings.relay.name,
        place,
        &published,
    )
    .await
    .unwrap();
    let applied = PartitionOffsets::from([((topic, 0), 5)]);
    record_applied(&mut *connection, "cart-cache", &applied)
        .await
        .unwrap();
    let response = read().await;
    assert_eq!(response.status(), 503);
    let problem: Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("cart-documents") && !detail.contains("cart-cache"),
        "{detail}"
    );

    record_applied(&mut *connection, "cart-documents", &applied)
        .await
        .unwrap();
    let response = read().await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "miss");
}

#[tokio::test]
async fn a_malformed_cart_id_is_a_400() {
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    let problem = app.get_problem("/v1/carts/cart_001", 400).await;
    assert_eq!(
        problem["type"],
        "https://errors.ecommerce.local/invalid-request"
    );
}
