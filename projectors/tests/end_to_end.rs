//! The vertical slice on real servers: commands over HTTP create a category, a
//! brand and a product; the relay publishes their events; the projectors put
//! the product into PostgreSQL, Elasticsearch, Redis and MongoDB; the query
//! API serves it by id and by search. A price change then flows the same way.

mod support;

use mongodb::bson::doc;
use redis::AsyncCommands;
use serde_json::{json, Value};
use support::platform::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_product_created_over_http_reaches_every_store_and_both_query_endpoints() {
    let h = harness().await;
    let platform = start(&h).await;
    let client = platform.admin.clone();
    let correlation = uuid::Uuid::now_v7().to_string();

    let category = post(
        &client,
        format!("{}/v1/categories", platform.commands),
        &correlation,
        json!({
            "name": "Smartphones", "slug": "smartphones"
        }),
    )
    .await;
    let brand = post(
        &client,
        format!("{}/v1/brands", platform.commands),
        &correlation,
        json!({
            "name": "Apple", "slug": "apple"
        }),
    )
    .await;
    let product = post(
        &client,
        format!("{}/v1/products", platform.commands),
        &correlation,
        json!({
            "sku": "IPH-15-PRO-256",
            "name": "iPhone 15 Pro",
            "slug": "iphone-15-pro-256",
            "description": "Titanium smartphone with A17 Pro",
            "category_id": category["id"],
            "brand_id": brand["id"],
            "regular_price": "39900.00",
            "sale_price": 35900,
            "stock_quantity": 45,
            "meta_keywords": ["apple", "iphone"]
        }),
    )
    .await;
    let id = product["id"].as_str().unwrap().to_owned();
    assert_eq!(product["version"], 1);
    assert!(product["position"].as_i64().unwrap() > 0);

    // PostgreSQL read model, with its foreign keys.
    let row: (String, String, Option<String>, i32, String) =
        eventually("the product row", || async {
            sqlx::query_as(
            "SELECT p.name, p.regular_price::text, p.sale_price::text, p.stock_quantity, c.name \
             FROM read_model.products p JOIN read_model.categories c ON c.id = p.category_id \
             JOIN read_model.brands b ON b.id = p.brand_id WHERE p.id = $1::uuid",
        )
        .bind(&id)
        .fetch_optional(&h.db.pool)
        .await
        .unwrap()
        })
        .await;
    assert_eq!(
        row,
        (
            "iPhone 15 Pro".into(),
            "39900.00".into(),
            Some("35900.00".into()),
            45,
            "Smartphones".into()
        )
    );

    // Redis, through the query API: a cache hit with the seed's keys.
    let by_id: Value = eventually("a cache hit for the product", || async {
        let response = client
            .get(format!("{}/v1/products/{id}", platform.queries))
            .send()
            .await
            .ok()?;
        let hit = response
            .headers()
            .get("x-cache")
            .is_some_and(|v| v == "hit");
        hit.then_some(())?;
        response.json().await.ok()
    })
    .await;
    assert_eq!(by_id["name"], "iPhone 15 Pro");
    assert_eq!(by_id["sale_price"], "35900.00");
    assert_eq!(by_id["stock_quantity"], 45);
    let mut redis = redis::Client::open(h.settings.redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let cached: String = redis
        .get(infrastructure::views::product_cache_key(
            &h.settings.redis.key_prefix,
            id.parse().unwrap(),
        ))
        .await
        .unwrap();
    let cached: Value = serde_json::from_str(&cached).unwrap();
    assert_eq!(
        (cached["price"].clone(), cached["stock"].clone()),
        (json!(35900.0), json!(45))
    );
    assert!(cached["cachedAt"].is_string());

    // Elasticsearch, through the query API's search.
    let search = format!(
        "{}/v1/products?q=titanium&category_id={}&brand_id={}&min_price=30000&max_price=36000",
        platform.queries,
        category["id"].as_str().unwrap(),
        brand["id"].as_str().unwrap()
    );
    let found: Value = eventually("the product in search", || async {
        let page: Value = client.get(&search).send().await.ok()?.json().await.ok()?;
        // The category's and brand's names may land after the product itself:
        // they travel on other partitions.
        let named = page["items"][0]["category"]["name"] == "Smartphones"
            && page["items"][0]["brand"]["name"] == "Apple";
        (page["total"] == 1 && named).then_some(page)
    })
    .await;
    assert_eq!(found["items"][0]["id"], json!(id));
    assert_eq!(found["items"][0]["category"]["name"], "Smartphones");
    assert_eq!(found["items"][0]["brand"]["name"], "Apple");
    assert_eq!(found["items"][0]["price"], "35900.00");

    // MongoDB activity log: one document per event, carrying the request's ids.
    let mongo = mongodb::Client::with_uri_str(&h.settings.mongo.url)
        .await
        .unwrap();
    let logs = mongo
        .database(&h.settings.mongo.database)
        .collection::<mongodb::bson::Document>("activity_logs");
    let created = eventually("the activity log of the creation", || async {
        logs.find_one(doc! { "resourceId": &id, "action": "product_created" })
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(created.get_str("resource").unwrap(), "products");
    assert_eq!(created.get_str("userId").unwrap(), platform.admin_id);
    let details = created.get_document("details").unwrap();
    assert_eq!(details.get_str("correlationId").unwrap(), correlation);
    assert_eq!(details.get_str("userAgent").unwrap(), "e2e-test/1.0");
    assert_eq!(details.get_str("ipAddress").unwrap(), "127.0.0.1");

    // Categories and brands listings.
    let categories: Value = client
        .get(format!("{}/v1/categories", platform.queries))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(categories["items"][0]["slug"], "smartphones");
    let brands: Value = client
        .get(format!("{}/v1/brands", platform.queries))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(brands["items"][0]["slug"], "apple");

    // A price change flows to every store too.
    let response = client
        .put(format!("{}/v1/products/{id}/price", platform.commands))
        .json(&json!({ "regular_price": "38900", "sale_price": "34900.50" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    eventually("the new price in the cache", || async {
        let body: Value = client
            .get(format!("{}/v1/products/{id}", platform.queries))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (body["sale_price"] == "34900.50").then_some(())
    })
    .await;
    eventually("the new price in search", || async {
        let page: Value = client
            .get(format!(
                "{}/v1/products?max_price=34900.50&min_price=34900.50",
                platform.queries
            ))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (page["total"] == 1).then_some(())
    })
    .await;
    let price: String = eventually("the new price in PostgreSQL", || async {
        let price: Option<String> = sqlx::query_scalar(
            "SELECT sale_price::text FROM read_model.products WHERE id = $1::uuid",
        )
        .bind(&id)
        .fetch_one(&h.db.pool)
        .await
        .ok()?;
        price.filter(|p| p == "34900.50")
    })
    .await;
    assert_eq!(price, "34900.50");

    // The projections report how far behind the log they are.
    let metrics = client
        .get(format!("{}/metrics", platform.projectors))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lag = infrastructure::metrics::sample(
        &metrics,
        "projector_lag_seconds",
        &[("projection", "catalog-tables")],
    );
    assert!(
        lag.is_some_and(|seconds| (0.0..60.0).contains(&seconds)),
        "{lag:?}"
    );
    cleanup(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_with_the_commands_token_sees_its_write_every_time() {
    let h = harness().await;
    let platform = start(&h).await;
    let client = platform.admin.clone();
    let correlation = uuid::Uuid::now_v7().to_string();
    for n in 0..200 {
        let created = client
            .post(format!("{}/v1/products", platform.commands))
            .header("X-Correlation-Id", &correlation)
            .json(&json!({
                "sku": format!("RYW-{n}"),
                "name": format!("Read your writes {n}"),
                "slug": format!("read-your-writes-{n}"),
                "regular_price": "100.00",
                "stock_quantity": 3
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let token = created.headers()["consistency-token"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = created.json().await.unwrap();
        assert_eq!(body["consistency_token"], token.as_str());
        let id = body["id"].as_str().unwrap();

        let read = client
            .get(format!("{}/v1/products/{id}", platform.queries))
            .header("Consistency-Token", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200, "read {n}: {:?}", read.text().await);
        let product: Value = read.json().await.unwrap();
        assert_eq!(product["sku"], format!("RYW-{n}"), "read {n}");

        if n % 25 == 0 {
            // The token also travels as a query parameter, and search waits
            // for its own projection.
            let found: Value = client
                .get(format!(
                    "{}/v1/products?q=RYW-{n}&consistency_token={token}",
                    platform.queries
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let ids: Vec<&str> = found["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|item| item["id"].as_str())
                .collect();
            assert!(ids.contains(&id), "search {n}: {found}");
        }
    }
    cleanup(&h).await;
}

/// Sends `body` to the command API and returns the answer's consistency
/// token, after checking the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn images_attributes_variants_and_stock_reach_every_store_and_the_product_read() {
    use reqwest::Method;
    let h = harness().await;
    let platform = start(&h).await;
    let client = platform.admin.clone();
    let commands = &platform.commands;
    let (product, _) = command(
        &client,
        Method::POST,
        format!("{commands}/v1/products"),
        json!({ "sku": "CMP-1", "name": "Complete", "slug": "complete",
                "regular_price": "39900.00", "stock_quantity": 10 }),
        201,
    )
    .await;
    let id = product["id"].as_str().unwrap().to_owned();
    let url = |path: &str| format!("{commands}/v1/products/{id}{path}");
    let (front, _) = command(
        &client,
        Method::POST,
        url("/images"),
        json!({ "url": "https://cdn.example.com/front.jpg", "alt_text": "Front" }),
        201,
    )
    .await;
    let (back, _) = command(
        &client,
        Method::POST,
        url("/images"),
        json!({ "url": "https://cdn.example.com/back.jpg" }),
        201,
    )
    .await;
    let (front, back) = (front["id"].clone(), back["id"].clone());
    for (method, path, body) in [
        (
            Method::PUT,
            format!("/images/{}/primary", back.as_str().unwrap()),
            json!({}),
        ),
        (
            Method::PUT,
            "/image-order".to_owned(),
            json!({ "image_ids": [back, front] }),
        ),
        (
            Method::PUT,
            "/attributes/Screen".to_owned(),
            json!({ "value": "6.1 inches" }),
        ),
        (
            Method::PUT,
            "/attributes/Chip".to_owned(),
            json!({ "value": "A17 Pro", "sort_order": -1 }),
        ),
    ] {
        command(&client, method, url(&path), body, 200).await;
    }
    let (black, _) = command(
        &client,
        Method::POST,
        url("/variants"),
        json!({ "sku": "CMP-1-BLK", "price": "41900.00", "stock_quantity": 4,
                "attributes": { "color": "Black" } }),
        201,
    )
    .await;
    let (white, _) = command(
        &client,
        Method::POST,
        url("/variants"),
        json!({ "sku": "CMP-1-WHT", "price": "41900.00", "attributes": { "color": "White" } }),
        201,
    )
    .await;
    let white = white["id"].as_str().unwrap().to_owned();
    command(
        &client,
        Method::PUT,
        url(&format!("/variants/{white}/active")),
        json!({ "active": false }),
        200,
    )
    .await;
    command(
        &client,
        Method::POST,
        format!("{commands}/v1/inventory/CMP-1/adjustments"),
        json!({ "delta": -3, "reason": "damage" }),
        200,
    )
    .await;
    let (_, token) = command(
        &client,
        Method::POST,
        format!("{commands}/v1/inventory/CMP-1-BLK/adjustments"),
        json!({ "delta": 6, "reason": "restock" }),
        200,
    )
    .await;

    // The read waits for the token, so the first answer is already complete.
    let read = |token: String| {
        let client = client.clone();
        let url = format!("{}/v1/products/{id}", platform.queries);
        async move {
            let response = client
                .get(url)
                .header("Consistency-Token", token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
            (cache, response.json::<Value>().await.unwrap())
        }
    };
    let (cache, hit) = read(token.clone()).await;
    assert_eq!(cache, "hit");
    assert_eq!(hit["stock_quantity"], 7);
    let images: Vec<(&Value, &Value, &Value)> = hit["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (&i["id"], &i["is_primary"], &i["sort_order"]))
        .collect();
    assert_eq!(
        images,
        [
            (&back, &json!(true), &json!(0)),
            (&front, &json!(false), &json!(1))
        ]
    );
    let attributes: Vec<(&Value, &Value)> = hit["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (&a["name"], &a["value"]))
        .collect();
    assert_eq!(
        attributes,
        [
            (&json!("Chip"), &json!("A17 Pro")),
            (&json!("Screen"), &json!("6.1 inches"))
        ]
    );
    let variants: Vec<(&Value, &Value, &Value, &Value)> = hit["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (&v["id"], &v["stock_quantity"], &v["is_active"], &v["price"]))
        .collect();
    assert_eq!(
        variants,
        [
            (&black["id"], &json!(10), &json!(true), &json!("41900.00")),
            (&json!(white), &json!(0), &json!(false), &json!("41900.00")),
        ]
    );

    // The seed's tables hold the same rows.
    let rows: Vec<(String, i32, bool)> = sqlx::query_as(
        "SELECT sku, stock_quantity, is_active FROM read_model.product_variants \
         WHERE product_id = $1::uuid ORDER BY sku",
    )
    .bind(&id)
    .fetch_all(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            ("CMP-1-BLK".into(), 10, true),
            ("CMP-1-WHT".into(), 0, false)
        ]
    );
    let primary: String = sqlx::query_scalar(
        "SELECT url FROM read_model.product_images WHERE product_id = $1::uuid AND is_primary",
    )
    .bind(&id)
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(primary, "https://cdn.example.com/back.jpg");

    // Without the cache entry, PostgreSQL answers exactly as the cache did.
    let mut redis = redis::Client::open(h.settings.redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis
        .del(infrastructure::views::product_cache_key(
            &h.settings.redis.key_prefix,
            id.parse().unwrap(),
        ))
        .await
        .unwrap();
    let (cache, miss) = read(token).await;
    assert_eq!(cache, "miss");
    assert_eq!(miss, hit);

    // Search carries the product's stock and attributes.
    let found: Value = eventually("the stock and attributes in search", || async {
        let page: Value = client
            .get(format!("{}/v1/products?q=complete", platform.queries))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let item = &page["items"][0];
        (item["stock"] == 7 && item["attributes"]["Chip"] == "A17 Pro").then(|| item.clone())
    })
    .await;
    assert_eq!(found["id"], json!(id));
    cleanup(&h).await;
}

/// A guest fills a cart, logs in, and reads the merged cart back through the
/// query API with the login's consistency token: from Redis, and from
/// MongoDB when the cache entry is gone, the same both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guest_cart_merged_at_login_reads_back_from_redis_and_mongo() {
    use reqwest::Method;
    let h = harness().await;
    let platform = start(&h).await;
    let admin = platform.admin.clone();
    let commands = &platform.commands;
    let (category, _) = command(
        &admin,
        Method::POST,
        format!("{commands}/v1/categories"),
        json!({ "name": "Phones", "slug": "phones" }),
        201,
    )
    .await;
    let (product, _) = command(
        &admin,
        Method::POST,
        format!("{commands}/v1/products"),
        json!({ "sku": "CART-E2E", "name": "iPhone 15 Pro", "slug": "cart-e2e",
                "category_id": category["id"], "regular_price": "39900.00",
                "sale_price": "35900.00", "stock_quantity": 45 }),
        201,
    )
    .await;
    let product_id = product["id"].as_str().unwrap().to_owned();
    command(
        &admin,
        Method::PUT,
        format!("{commands}/v1/products/{product_id}/status"),
        json!({ "status": "active" }),
        200,
    )
    .await;
    // A customer, and a guest who shops before logging in as them.
    let email = "cart-e2e@shop.test";
    let password = "a customer's long passphrase";
    let guest = reqwest::Client::new();
    command(
        &guest,
        Method::POST,
        format!("{commands}/v1/users"),
        json!({ "email": email, "password": password, "first_name": "Somchai", "last_name": "Jaidee" }),
        201,
    )
    .await;
    let opened = guest
        .post(format!("{commands}/v1/carts"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let session = opened.headers()["x-cart-session"]
        .to_str()
        .unwrap()
        .to_owned();
    let guest_cart: Value = opened.json().await.unwrap();
    let guest_cart = guest_cart["id"].as_str().unwrap().to_owned();
    let added = guest
        .post(format!("{commands}/v1/carts/{guest_cart}/items"))
        .header("X-Cart-Session", &session)
        .json(&json!({ "product_id": product_id, "quantity": 2,
                       "options": { "color": "black", "storage": "256GB" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201, "{:?}", added.text().await);
    let login: Value = guest
        .post(format!("{commands}/v1/sessions"))
        .header("X-Cart-Session", &session)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cart_id = login["cart_id"]
        .as_str()
        .expect("the merged cart")
        .to_owned();
    let token = login["consistency_token"].as_str().unwrap().to_owned();
    let customer = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", login["token"].as_str().unwrap())
                    .parse()
                    .unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let read = |client: reqwest::Client| {
        let url = format!("{}/v1/carts/{cart_id}", platform.queries);
        let token = token.clone();
        async move {
            let response = client
                .get(url)
                .header("Consistency-Token", token)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let cache = response
                .headers()
                .get("x-cache")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                status,
                cache,
                response.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    let (status, cache, hit) = read(customer.clone()).await;
    assert_eq!((status, cache.as_deref()), (200, Some("hit")), "{hit}");
    assert_eq!(hit["summary"]["subtotal"], "71800.00");
    assert_eq!(hit["summary"]["estimated_tax"], "5026.00");
    assert_eq!(hit["summary"]["estimated_total"], "76826.00");
    assert_eq!(hit["items"][0]["quantity"], 2);
    assert_eq!(hit["items"][0]["unit_price"], "35900.00");
    // The guest's cart is gone from every store; nobody else sees this one.
    assert_eq!(read(guest.clone()).await.0, 404);

    // Mongo holds the seed's document, money as Decimal128.
    let mongo = mongodb::Client::with_uri_str(&h.settings.mongo.url)
        .await
        .unwrap();
    let carts = mongo
        .database(&h.settings.mongo.database)
        .collection::<mongodb::bson::Document>("carts");
    let document = carts
        .find_one(doc! { "_id": &cart_id })
        .await
        .unwrap()
        .expect("the user's cart document");
    let summary = document.get_document("summary").unwrap();
    assert_eq!(
        summary.get("estimatedTotal").unwrap().element_type(),
        mongodb::bson::spec::ElementType::Decimal128
    );
    assert!(carts
        .find_one(doc! { "_id": &guest_cart })
        .await
        .unwrap()
        .is_none());

    // Without the Redis entry, Mongo answers the same.
    let mut redis = redis::Client::open(h.settings.redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis
        .keys(format!("{}*cart:*", h.settings.redis.key_prefix))
        .await
        .unwrap();
    assert!(!keys.is_empty(), "the cart's Redis entry");
    let _: () = redis.del(keys).await.unwrap();
    let (status, cache, miss) = read(customer).await;
    assert_eq!((status, cache.as_deref()), (200, Some("miss")));
    assert_eq!(miss, hit);
    cleanup(&h).await;
}
