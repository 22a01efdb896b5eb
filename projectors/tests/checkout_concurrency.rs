//! A flash sale on the real stack: 500 customers check out the last 10
//! units at once. Exactly 10 orders are placed, the stock never goes below
//! 0, and every read model (PostgreSQL, Redis, Elasticsearch, the query
//! API) ends at 0.

mod support;

use std::time::Duration;

use futures::future::join_all;
use infrastructure::testing::wait_for;
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{json, Value};
use support::platform::*;
use support::*;

const BUYERS: usize = 500;
const STOCK: i64 = 10;
/// Requests in flight at once, below the API's `max_concurrent_requests`.
const IN_FLIGHT: usize = 64;

/// A customer, logged in, with one unit of `product` in their cart.
async fn buyer(commands: &str, n: usize, product: &str) -> (reqwest::Client, String) {
    let anonymous = reqwest::Client::new();
    let email = format!("flash-{n}@shop.test");
    let password = "a flash sale passphrase";
    command(
        &anonymous,
        Method::POST,
        format!("{commands}/v1/users"),
        json!({ "email": email, "password": password, "first_name": "Flash", "last_name": "Buyer" }),
        201,
    )
    .await;
    let login: Value = anonymous
        .post(format!("{commands}/v1/sessions"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = reqwest::Client::builder()
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
    let (cart, _) = command(
        &client,
        Method::POST,
        format!("{commands}/v1/carts"),
        json!({}),
        201,
    )
    .await;
    let cart = cart["id"].as_str().unwrap().to_owned();
    command(
        &client,
        Method::POST,
        format!("{commands}/v1/carts/{cart}/items"),
        json!({ "product_id": product, "quantity": 1 }),
        201,
    )
    .await;
    command(
        &client,
        Method::PUT,
        format!("{commands}/v1/carts/{cart}/shipping-method"),
        json!({ "method": "standard" }),
        200,
    )
    .await;
    (client, cart)
}

/// Checks out until the answer is a decision: a 409 `version-conflict` (the
/// append lost its race more often than the server retries) or a 503 (shed
/// under load) is sent again, as a careful client would. `gate` bounds the
/// requests in flight, as a real front's connection limit does: all the
/// checkouts are under way at once, and the server is not asked to shed
/// what no front would let through.
async fn checkout(
    commands: &str,
    client: &reqwest::Client,
    cart: &str,
    gate: &tokio::sync::Semaphore,
) -> (u16, Value, u32) {
    let body = json!({
        "cart_id": cart, "payment_method": "credit_card",
        "shipping_address": { "first_name": "Flash", "last_name": "Buyer",
            "street_address_1": "1 Sukhumvit Rd", "city": "Bangkok",
            "state_province": "Bangkok", "postal_code": "10110" },
    });
    // One key for every try: a try that committed but whose answer was
    // lost (a 503 after the append, under load) answers its 201 again.
    let key = uuid::Uuid::now_v7().to_string();
    for attempt in 1..=200 {
        let _permit = gate.acquire().await.unwrap();
        let response = client
            .post(format!("{commands}/v1/orders"))
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or_default();
        let conflict = answer["type"]
            .as_str()
            .is_some_and(|kind| kind.ends_with("/version-conflict"));
        if status != 503 && !(status == 409 && conflict) {
            return (status, answer, attempt);
        }
    }
    panic!("no decision after 200 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_buyers_of_ten_units_place_exactly_ten_orders_and_every_store_ends_at_zero() {
    let mut h = harness().await;
    h.settings.postgres.max_connections = 30;
    let platform = start(&h).await;
    let commands = platform.commands.clone();
    let (category, _) = command(
        &platform.admin,
        Method::POST,
        format!("{commands}/v1/categories"),
        json!({ "name": "Flash", "slug": "flash" }),
        201,
    )
    .await;
    let (product, _) = command(
        &platform.admin,
        Method::POST,
        format!("{commands}/v1/products"),
        json!({ "sku": "FLASH-1", "name": "Flash phone", "slug": "flash-phone",
                "category_id": category["id"], "regular_price": "9900.00",
                "stock_quantity": STOCK }),
        201,
    )
    .await;
    let product = product["id"].as_str().unwrap().to_owned();
    command(
        &platform.admin,
        Method::PUT,
        format!("{commands}/v1/products/{product}/status"),
        json!({ "status": "active" }),
        200,
    )
    .await;

    let mut buyers = Vec::with_capacity(BUYERS);
    for n in 0..BUYERS {
        buyers.push(buyer(&commands, n, &product).await);
    }
    let gate = tokio::sync::Semaphore::new(IN_FLIGHT);
    let answers = join_all(
        buyers
            .iter()
            .map(|(client, cart)| checkout(&commands, client, cart, &gate)),
    )
    .await;

    let placed: Vec<&Value> = answers
        .iter()
        .filter(|(status, _, _)| *status == 201)
        .map(|(_, answer, _)| answer)
        .collect();
    assert_eq!(placed.len(), STOCK as usize, "exactly the stock is sold");
    for (status, answer, _) in &answers {
        if *status != 201 {
            assert_eq!(*status, 422, "{answer}");
            assert!(
                answer["type"]
                    .as_str()
                    .is_some_and(|kind| kind.ends_with("/insufficient-stock")),
                "every other buyer is told the product is out of stock: {answer}"
            );
        }
    }
    let tries: u32 = answers.iter().map(|(_, _, tries)| tries).sum();
    println!(
        "{BUYERS} buyers, {} placed, {} requests in all",
        placed.len(),
        tries
    );

    // The log: every reservation left 0 or more, the last left 0.
    let available: Vec<i64> = sqlx::query_scalar(
        "SELECT (payload -> 'StockReserved' ->> 'available')::bigint FROM event_store.events \
         WHERE aggregate_id = 'inventory:FLASH-1' AND event_type = 'StockReserved' ORDER BY version",
    )
    .fetch_all(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(available.len(), STOCK as usize);
    assert!(available.iter().all(|left| *left >= 0), "{available:?}");
    assert_eq!(available.last(), Some(&0));

    // Every store ends at 0.
    let pool = h.db.pool.clone();
    let id: uuid::Uuid = product.parse().unwrap();
    eventually("products.stock_quantity at 0", || async {
        let stock: i32 =
            sqlx::query_scalar("SELECT stock_quantity FROM read_model.products WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .ok()?;
        (stock == 0).then_some(())
    })
    .await;
    let redis = redis::Client::open(h.settings.redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = infrastructure::views::product_cache_key(&h.settings.redis.key_prefix, id);
    wait_for(
        "the Redis product entry at 0",
        Duration::from_secs(60),
        || {
            let mut redis = redis.clone();
            let key = key.clone();
            async move {
                let cached: Option<String> = redis.get(&key).await.ok()?;
                let cached: Value = serde_json::from_str(&cached?).ok()?;
                (cached["stock"] == 0).then_some(())
            }
        },
    )
    .await;
    let client = reqwest::Client::new();
    eventually("the search document at 0", || async {
        let page: Value = client
            .get(format!("{}/v1/products?q=flash", platform.queries))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (page["items"][0]["stock"] == 0).then_some(())
    })
    .await;
    let read: Value = client
        .get(format!("{}/v1/products/{product}", platform.queries))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["stock_quantity"], 0, "{read}");
    cleanup(&h).await;
}
