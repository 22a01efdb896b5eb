//! A whole purchase on the real stack, over HTTP: a guest fills a cart and
//! logs in (the carts merge), applies a coupon, checks out, pays with the
//! sandbox's card (its webhook comes back), the admin ships, and refunds
//! part of it. After each step the read models are read back, through the
//! query API with the step's consistency token and in the stores.

mod support;

use std::time::Duration;

use infrastructure::testing::{mail_to, wait_for};
use mongodb::bson::doc;
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{json, Value};
use support::platform::*;
use support::*;

/// A GET through the query API that waits for `token`.
async fn read(client: &reqwest::Client, url: String, token: &str) -> Value {
    let response = client
        .get(url)
        .header("Consistency-Token", token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    body
}

fn bearer(token: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guest_buys_pays_is_shipped_to_and_partly_refunded() {
    let h = harness().await;
    let (platform, _sandbox, _handle) = start_with_payments(&h).await;
    let (commands, queries) = (platform.commands.clone(), platform.queries.clone());
    let admin = platform.admin.clone();

    // The catalog and a coupon: 10% off, at most 500.
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
        json!({ "sku": "BUY-1", "name": "iPhone 15 Pro", "slug": "buy-1",
                "category_id": category["id"], "regular_price": "39900.00",
                "sale_price": "35900.00", "stock_quantity": 45 }),
        201,
    )
    .await;
    let product = product["id"].as_str().unwrap().to_owned();
    command(
        &admin,
        Method::PUT,
        format!("{commands}/v1/products/{product}/status"),
        json!({ "status": "active" }),
        200,
    )
    .await;
    let (promotion, _) = command(
        &admin,
        Method::POST,
        format!("{commands}/v1/promotions"),
        json!({ "name": "Launch", "type": "percentage", "value": 10, "maximum_discount": "500",
                "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2036-01-01T00:00:00Z" }),
        201,
    )
    .await;
    let promotion = promotion["id"].as_str().unwrap().to_owned();
    command(
        &admin,
        Method::POST,
        format!("{commands}/v1/promotions/{promotion}/coupons"),
        json!({ "code": "SAVE10" }),
        201,
    )
    .await;

    // 1. A guest fills a cart, then logs in: the carts merge.
    let email = &format!("buyer-e2e-{}@shop.test", h.suffix);
    let password = "a buyer's long passphrase";
    let guest = reqwest::Client::new();
    let (registered, _) = command(
        &guest,
        Method::POST,
        format!("{commands}/v1/users"),
        json!({ "email": email, "password": password, "first_name": "Somchai", "last_name": "Jaidee" }),
        201,
    )
    .await;
    let user_id = registered["id"].as_str().unwrap().to_owned();
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
        .json(&json!({ "product_id": product, "quantity": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
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
    let cart = login["cart_id"]
        .as_str()
        .expect("the merged cart")
        .to_owned();
    let customer = bearer(login["token"].as_str().unwrap());
    let merged = read(
        &customer,
        format!("{queries}/v1/carts/{cart}"),
        login["consistency_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(merged["summary"]["subtotal"], "71800.00");
    let mut redis = redis::Client::open(h.settings.redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let cart_key = format!("{}cart:{user_id}", h.settings.redis.key_prefix);
    let cached: Option<String> = redis.get(&cart_key).await.unwrap();
    assert!(cached.is_some(), "the user's cart: entry");

    // 2. The coupon, priced against the cart, then the checkout.
    command(
        &customer,
        Method::PUT,
        format!("{commands}/v1/carts/{cart}/shipping-method"),
        json!({ "method": "standard" }),
        200,
    )
    .await;
    let (_, token) = command(
        &customer,
        Method::PUT,
        format!("{commands}/v1/carts/{cart}/coupon"),
        json!({ "code": "save10" }),
        200,
    )
    .await;
    let offer = read(
        &customer,
        format!("{queries}/v1/coupons/SAVE10?cart_id={cart}"),
        &token,
    )
    .await;
    assert_eq!(offer["applies"], true, "{offer}");
    let (placed, token) = command(
        &customer,
        Method::POST,
        format!("{commands}/v1/orders"),
        json!({ "cart_id": cart, "payment_method": "credit_card",
                "shipping_address": { "first_name": "Somchai", "last_name": "Jaidee",
                    "street_address_1": "1 Sukhumvit Rd", "city": "Bangkok",
                    "state_province": "Bangkok", "postal_code": "10110" } }),
        201,
    )
    .await;
    let order = placed["id"].as_str().unwrap().to_owned();
    let read_order = read(&customer, format!("{queries}/v1/orders/{order}"), &token).await;
    assert_eq!(
        (
            &read_order["subtotal"],
            &read_order["discount_amount"],
            &read_order["shipping_amount"],
            &read_order["tax_amount"],
            &read_order["total_amount"]
        ),
        (
            &json!("71800.00"),
            &json!("500.00"),
            &json!("50.00"),
            &json!("4991.00"),
            &json!("76341.00")
        ),
        "{read_order}"
    );
    assert_eq!(read_order["status"], "pending");
    assert_eq!(read_order["shipping_address"]["city"], "Bangkok");
    let promotion_read = read(
        &admin,
        format!("{queries}/v1/promotions/{promotion}"),
        &token,
    )
    .await;
    assert_eq!(
        promotion_read["coupons"][0]["usage_count"], 1,
        "{promotion_read}"
    );
    // The token above waited for the promotion tables, not the cart cache.
    eventually("a checked-out cart to leave the cache", || {
        let (mut redis, cart_key) = (redis.clone(), cart_key.clone());
        async move {
            let cached: Option<String> = redis.get(&cart_key).await.ok()?;
            cached.is_none().then_some(())
        }
    })
    .await;
    let mongo = mongodb::Client::with_uri_str(&h.settings.mongo.url)
        .await
        .unwrap();
    let carts = mongo
        .database(&h.settings.mongo.database)
        .collection::<mongodb::bson::Document>("carts");
    // Neither read model is one the tokens above waited for.
    eventually("a checked-out cart to leave the documents", || async {
        let remaining = carts.find_one(doc! { "_id": &cart }).await.ok()?;
        remaining.is_none().then_some(())
    })
    .await;
    let pool = h.db.pool.clone();
    let product_id: uuid::Uuid = product.parse().unwrap();
    eventually("the reserved units to leave the stock", || async {
        let stock: i32 =
            sqlx::query_scalar("SELECT stock_quantity FROM read_model.products WHERE id = $1")
                .bind(product_id)
                .fetch_one(&pool)
                .await
                .ok()?;
        (stock == 43).then_some(())
    })
    .await;
    let product_key =
        infrastructure::views::product_cache_key(&h.settings.redis.key_prefix, product_id);
    wait_for("the product: entry at 43", Duration::from_secs(30), || {
        let mut redis = redis.clone();
        let key = product_key.clone();
        async move {
            let cached: Option<String> = redis.get(&key).await.ok()?;
            let cached: Value = serde_json::from_str(&cached?).ok()?;
            (cached["stock"] == 43).then_some(())
        }
    })
    .await;

    // 3. Paid with the sandbox's card; its webhook comes back and changes nothing more.
    let paid = customer
        .post(format!("{commands}/v1/orders/{order}/payments"))
        .json(&json!({ "card_number": "4242424242424242" }))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 201);
    let paid: Value = paid.json().await.unwrap();
    assert_eq!(paid["status"], "completed", "{paid}");
    let payment = paid["payment_id"].as_str().unwrap().to_owned();
    let read_order = read(
        &customer,
        format!("{queries}/v1/orders/{order}"),
        paid["consistency_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(read_order["payment_status"], "paid");
    let payment_id: uuid::Uuid = payment.parse().unwrap();
    eventually("the payments row completed", || async {
        let status: String =
            sqlx::query_scalar("SELECT status FROM read_model.payments WHERE id = $1")
                .bind(payment_id)
                .fetch_one(&pool)
                .await
                .ok()?;
        (status == "completed").then_some(())
    })
    .await;

    // 4. The admin ships it.
    for body in [
        json!({ "status": "confirmed" }),
        json!({ "status": "processing" }),
    ] {
        command(
            &admin,
            Method::PUT,
            format!("{commands}/v1/orders/{order}/status"),
            body,
            200,
        )
        .await;
    }
    let (_, token) = command(
        &admin,
        Method::PUT,
        format!("{commands}/v1/orders/{order}/status"),
        json!({ "status": "shipped", "tracking_number": "TH1234567890" }),
        200,
    )
    .await;
    let read_order = read(&customer, format!("{queries}/v1/orders/{order}"), &token).await;
    assert_eq!(read_order["status"], "shipped");
    assert_eq!(read_order["tracking_number"], "TH1234567890");
    // The buyer is told, by email over SMTP and in their notifications.
    let shipping_mail = eventually("the shipping mail", || async {
        mail_to(email)
            .into_iter()
            .find(|m| m.contains("Tracking number: TH1234567890"))
    })
    .await;
    assert!(
        shipping_mail.contains("Your order has been shipped!"),
        "{shipping_mail}"
    );
    let notifications = read(&customer, format!("{queries}/v1/me/notifications"), &token).await;
    let shipped_notice = notifications["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == "order_shipped")
        .unwrap_or_else(|| panic!("no order_shipped in {notifications}"))
        .clone();
    assert_eq!(shipped_notice["data"]["trackingNumber"], "TH1234567890");
    assert_eq!(shipped_notice["channels"]["email"]["sent"], true);
    assert_eq!(shipped_notice["read"], false);
    let kinds: Vec<&str> = notifications["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    for kind in ["order_confirmed", "payment_received", "order_shipped"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let notice = shipped_notice["id"].as_str().unwrap();
    let (_, read_token) = command(
        &customer,
        Method::POST,
        format!("{commands}/v1/me/notifications/{notice}/read"),
        Value::Null,
        200,
    )
    .await;
    let notifications = read(
        &customer,
        format!("{queries}/v1/me/notifications"),
        &read_token,
    )
    .await;
    let marked = notifications["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == notice)
        .unwrap();
    assert_eq!(marked["read"], true, "{marked}");
    assert!(marked["read_at"].is_string(), "{marked}");
    let documents = mongo
        .database(&h.settings.mongo.database)
        .collection::<mongodb::bson::Document>("notifications")
        .count_documents(doc! { "notificationId": notice, "read": true })
        .await
        .unwrap();
    assert_eq!(documents, 1);

    // 5. Partly refunded.
    let refunded = admin
        .post(format!("{commands}/v1/payments/{payment}/refunds"))
        .json(&json!({ "amount": "1000.00", "reason": "A scratch on delivery" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refunded.status(), 201);
    let refunded: Value = refunded.json().await.unwrap();
    let read_order = read(
        &customer,
        format!("{queries}/v1/orders/{order}"),
        refunded["consistency_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(read_order["payment_status"], "partially_refunded");
    eventually("the payment_refunds row completed", || async {
        let status: String = sqlx::query_scalar(
            "SELECT status FROM read_model.payment_refunds WHERE payment_id = $1",
        )
        .bind(payment_id)
        .fetch_one(&pool)
        .await
        .ok()?;
        (status == "completed").then_some(())
    })
    .await;
    let mine = read(
        &customer,
        format!("{queries}/v1/me/orders"),
        refunded["consistency_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(mine["items"][0]["id"], json!(order), "{mine}");
    cleanup(&h).await;
}
