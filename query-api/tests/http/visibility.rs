//! What the public sees and what only an admin sees: public reads show only
//! active products, categories and brands; a customer is the public here.

use uuid::Uuid;

use crate::support::{self, SearchCatalog, TestContext};

#[tokio::test]
async fn the_public_lists_only_active_categories_and_brands() {
    let context = TestContext::new().await;
    let apple = support::brand("Apple");
    let mut nokia = support::brand("Nokia");
    nokia.is_active = false;
    context.insert_brand(&apple).await;
    context.insert_brand(&nokia).await;
    let phones = support::category("Phones", 1);
    let mut pagers = support::category("Pagers", 2);
    pagers.is_active = false;
    context.insert_category(&phones).await;
    context.insert_category(&pagers).await;

    let guest = context.spawn_app().await;
    let mut customer = context.spawn_app().await;
    customer.client = context.client_as(Uuid::now_v7(), "customer").await;
    for app in [&guest, &customer] {
        let brands = app.get_json("/v1/brands", 200).await;
        assert_eq!(brands["items"], serde_json::json!([apple]));
        let categories = app.get_json("/v1/categories", 200).await;
        assert_eq!(categories["items"], serde_json::json!([phones]));
        assert_eq!(app.get_json("/v1/brands?is_active=true", 200).await, brands);
        let refused = app.get_problem("/v1/brands?is_active=false", 403).await;
        assert_eq!(refused["type"], "https://errors.ecommerce.local/forbidden");
        app.get_problem("/v1/categories?is_active=false", 403).await;
    }
    let admin = context.spawn_admin_app().await;
    let all = admin.get_json("/v1/brands", 200).await;
    assert_eq!(all["items"], serde_json::json!([apple, nokia]));
}

#[tokio::test]
async fn the_public_finds_only_active_products() {
    let context = TestContext::new().await;
    let catalog = SearchCatalog::new();
    context.index_products(&catalog.all()).await;
    let guest = context.spawn_app().await;
    let body = guest.get_json("/v1/products?per_page=50", 200).await;
    let ids: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert!(!ids.is_empty());
    for hidden in [&catalog.airpods, &catalog.galaxy_book] {
        assert!(
            !ids.contains(&hidden.id.to_string().as_str()),
            "{} ({}) is hidden: {body}",
            hidden.name,
            hidden.status
        );
    }
    assert_eq!(body["total"], catalog.all().len() as u64 - 2);
    guest.get_problem("/v1/products?status=draft", 403).await;
    guest.get_problem("/v1/products?status=inactive", 403).await;
    guest.get_json("/v1/products?status=active", 200).await;

    let admin = context.spawn_admin_app().await;
    let all = admin.get_json("/v1/products?per_page=50", 200).await;
    assert_eq!(all["total"], catalog.all().len() as u64);
}

#[tokio::test]
async fn a_product_that_is_not_active_is_not_found_by_the_public() {
    let context = TestContext::new().await;
    let mut draft = support::product("Prototype");
    draft.status = "draft".into();
    context.insert_product(&draft).await;
    let mut cached = support::product("Withdrawn");
    cached.status = "inactive".into();
    context.insert_product(&cached).await;
    context.cache_put(&cached).await;

    let guest = context.spawn_app().await;
    for id in [draft.id, cached.id] {
        guest.get_problem(&format!("/v1/products/{id}"), 404).await;
    }
    let admin = context.spawn_admin_app().await;
    for id in [draft.id, cached.id] {
        admin.get_json(&format!("/v1/products/{id}"), 200).await;
    }
}

#[tokio::test]
async fn a_token_that_names_no_session_is_401_and_an_unchecked_one_503() {
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    let response = app
        .get_with_header(
            "/v1/brands",
            "Authorization",
            "Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");

    let mut state = context.state();
    state.sessions = std::sync::Arc::new(
        infrastructure::sessions::Sessions::new(
            support::DEAD_REDIS,
            "x:",
            std::time::Duration::from_secs(60),
        )
        .unwrap(),
    );
    let down = context.spawn_app_with(state).await;
    let response = down
        .get_with_header(
            "/v1/brands",
            "Authorization",
            "Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .await;
    assert_eq!(response.status(), 503);
    // A guest needs no session check.
    down.get_json("/v1/brands", 200).await;
}
