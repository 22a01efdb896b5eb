//! `GET /v1/products`: search on the Elasticsearch alias.

use serde_json::Value;
use uuid::Uuid;

use crate::support::{SearchCatalog, TestApp, TestContext};

/// The search catalog, read by an admin: every status is searchable.
async fn catalog_app() -> (TestContext, SearchCatalog, TestApp) {
    let context = TestContext::new().await;
    let catalog = SearchCatalog::new();
    context.index_products(&catalog.all()).await;
    let app = context.spawn_admin_app().await;
    (context, catalog, app)
}

fn names(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_alias_missing_is_an_empty_page() {
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    let body = app
        .get_json("/v1/products?q=iphone&page=2&per_page=5", 200)
        .await;
    assert_eq!(
        body,
        serde_json::json!({ "items": [], "total": 0, "page": 2, "per_page": 5, "next_cursor": null })
    );
}

#[tokio::test]
async fn q_matches_the_name_and_items_carry_money_as_strings() {
    let (_context, c, app) = catalog_app().await;
    let body = app.get_json("/v1/products?q=iphone", 200).await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["page"], 1);
    assert_eq!(body["per_page"], 20);
    let item = &body["items"][0];
    assert_eq!(item["id"], c.iphone.id.to_string());
    assert_eq!(item["name"], "iPhone 15 Pro");
    assert_eq!(item["price"], "35900.00");
    assert_eq!(item["regular_price"], "39900.00");
    assert_eq!(item["sale_price"], "35900.00");
    assert_eq!(item["category"]["id"], c.phones.to_string());
    assert_eq!(item["brand"]["name"], "Apple");
    assert_eq!(item["tags"], serde_json::json!(["ios", "flagship"]));
    assert_eq!(item["createdAt"], "2024-01-05T10:30:00Z");

    let body = app.get_json("/v1/products?q=macbook", 200).await;
    assert_eq!(body["items"][0]["price"], "42900.99");
    let body = app.get_json("/v1/products?q=galaxy%20s24", 200).await;
    assert_eq!(names(&body)[0], "Galaxy S24", "best match first");
    assert_eq!(body["items"][0]["price"], "29900.50");
}

#[tokio::test]
async fn filters_by_category_brand_price_and_status() {
    let (_context, c, app) = catalog_app().await;
    let body = app
        .get_json(
            &format!("/v1/products?category_id={}&sort=name_asc", c.phones),
            200,
        )
        .await;
    assert_eq!(names(&body), ["Galaxy S24", "iPhone 15 Pro"]);
    let body = app
        .get_json(
            &format!("/v1/products?brand_id={}&sort=name_asc", c.samsung),
            200,
        )
        .await;
    assert_eq!(names(&body), ["Galaxy Book", "Galaxy S24"]);
    let body = app
        .get_json(
            "/v1/products?min_price=29900.50&max_price=35900&sort=price_asc",
            200,
        )
        .await;
    assert_eq!(names(&body), ["Galaxy S24", "Galaxy Book", "iPhone 15 Pro"]);
    assert_eq!(body["total"], 3);
    let body = app.get_json("/v1/products?status=inactive", 200).await;
    assert_eq!(names(&body), ["AirPods Pro"]);
    let body = app
        .get_json(
            &format!(
                "/v1/products?q=galaxy&brand_id={}&category_id={}&status=active",
                c.samsung, c.phones
            ),
            200,
        )
        .await;
    assert_eq!(names(&body), ["Galaxy S24"]);
    let body = app
        .get_json(&format!("/v1/products?category_id={}", Uuid::new_v4()), 200)
        .await;
    assert_eq!(body["total"], 0);
}

#[tokio::test]
async fn each_sort_order() {
    let (_context, _c, app) = catalog_app().await;
    let sorted = |sort: &'static str| {
        let app = &app;
        async move {
            names(
                &app.get_json(&format!("/v1/products?sort={sort}"), 200)
                    .await,
            )
        }
    };
    let newest = [
        "iPhone 15 Pro",
        "MacBook Air",
        "Galaxy S24",
        "AirPods Pro",
        "Galaxy Book",
    ];
    assert_eq!(sorted("newest").await, newest);
    assert_eq!(
        names(&app.get_json("/v1/products", 200).await),
        newest,
        "newest is the default without q"
    );
    assert_eq!(
        sorted("price_asc").await,
        [
            "AirPods Pro",
            "Galaxy S24",
            "Galaxy Book",
            "iPhone 15 Pro",
            "MacBook Air"
        ]
    );
    assert_eq!(
        sorted("price_desc").await,
        [
            "MacBook Air",
            "iPhone 15 Pro",
            "Galaxy Book",
            "Galaxy S24",
            "AirPods Pro"
        ]
    );
    assert_eq!(
        sorted("name_asc").await,
        [
            "AirPods Pro",
            "Galaxy Book",
            "Galaxy S24",
            "MacBook Air",
            "iPhone 15 Pro"
        ]
    );
    let relevance = names(
        &app.get_json("/v1/products?q=galaxy%20book&sort=relevance", 200)
            .await,
    );
    assert_eq!(relevance[0], "Galaxy Book");
    let by_price = names(
        &app.get_json("/v1/products?q=galaxy&sort=price_desc", 200)
            .await,
    );
    assert_eq!(by_price, ["Galaxy Book", "Galaxy S24"]);
}

#[tokio::test]
async fn pagination_reports_the_total_and_cuts_pages() {
    let (_context, _c, app) = catalog_app().await;
    let page = |n: u32| {
        let app = &app;
        async move {
            app.get_json(
                &format!("/v1/products?sort=price_asc&per_page=2&page={n}"),
                200,
            )
            .await
        }
    };
    let first = page(1).await;
    assert_eq!(first["total"], 5);
    assert_eq!(first["page"], 1);
    assert_eq!(first["per_page"], 2);
    assert_eq!(names(&first), ["AirPods Pro", "Galaxy S24"]);
    let second = page(2).await;
    assert_eq!(names(&second), ["Galaxy Book", "iPhone 15 Pro"]);
    let third = page(3).await;
    assert_eq!(names(&third), ["MacBook Air"]);
    assert_eq!(third["total"], 5);
    let beyond = page(4).await;
    assert_eq!(beyond["items"], serde_json::json!([]));
    assert_eq!(beyond["total"], 5);

    // The same pages through cursors, which also reach past 10,000 hits.
    let mut walked = Vec::new();
    let mut path = "/v1/products?sort=price_asc&per_page=2".to_owned();
    loop {
        let body = app.get_json(&path, 200).await;
        walked.extend(names(&body));
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/products?sort=price_asc&per_page=2&after={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        walked,
        [
            "AirPods Pro",
            "Galaxy S24",
            "Galaxy Book",
            "iPhone 15 Pro",
            "MacBook Air"
        ]
    );
}

#[tokio::test]
async fn malformed_query_parameters_are_problem_400s() {
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    let cases = [
        ("page=0", Some("page")),
        ("page=-1", None),
        ("page=abc", None),
        ("per_page=0", Some("per_page")),
        ("per_page=101", Some("per_page")),
        ("min_price=100&max_price=99.99", Some("min_price")),
        ("min_price=-5", Some("min_price")),
        ("min_price=cheap", None),
        ("status=sold", None),
        ("sort=popular", None),
        ("category_id=phones", None),
        ("brand_id=1", None),
        ("page=200&per_page=100", Some("page")),
        ("after=not-a-cursor", Some("after")),
        (
            "q=phone&after=eyJzb3J0IjoibmV3ZXN0IiwiYWZ0ZXIiOlsxLCJhIl19",
            Some("after"),
        ),
        ("colour=red", None),
    ];
    for (query, param) in cases {
        let problem = app.get_problem(&format!("/v1/products?{query}"), 400).await;
        assert_eq!(
            problem["type"], "https://errors.ecommerce.local/invalid-request",
            "{query}"
        );
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{query}"
        );
        if let Some(param) = param {
            assert_eq!(
                problem["invalid_params"][0]["name"], param,
                "{query}: {problem}"
            );
        }
    }
}
