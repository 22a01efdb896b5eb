//! `GET /v1/me/orders` for the signed-in customer, `GET /v1/orders/{id}`
//! for its owner or an admin, and `GET /v1/orders` for admins, over the
//! order tables as the `orders-tables` projection leaves them.

use chrono::{DateTime, Utc};
use infrastructure::consistency::{record_applied, record_watermark, PartitionOffsets};
use infrastructure::event_store::ConsistencyToken;
use query_api::orders::{OrderDetail, OrderStatus, PaymentStatus};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{self, TestApp, TestContext};

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

fn id_list(orders: &[&OrderDetail]) -> Vec<String> {
    orders.iter().map(|o| o.order.id.to_string()).collect()
}

fn instant(text: &str) -> DateTime<Utc> {
    text.parse().expect("an instant")
}

/// The application, read by a user of this id and role.
async fn app_as(context: &TestContext, user_id: Uuid, role: &str) -> TestApp {
    let mut app = context.spawn_app().await;
    app.client = context.client_as(user_id, role).await;
    app
}

/// The seed's order of `user_id`, placed at `created_at`.
fn placed(user_id: Uuid, created_at: &str) -> OrderDetail {
    let mut order = support::seed_order(user_id);
    order.order.created_at = instant(created_at);
    order.order.updated_at = instant(created_at);
    order
}

/// Every page of `path` (which has a query string), `limit` at a time.
async fn walk(app: &TestApp, path: &str, limit: u32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut next = format!("{path}&limit={limit}");
    loop {
        let page = app.get_json(&next, 200).await;
        let page_ids = ids(&page);
        assert!(page_ids.len() <= limit as usize, "{next}");
        seen.extend(page_ids);
        match page["next_cursor"].as_str() {
            Some(after) => next = format!("{path}&limit={limit}&after={after}"),
            None => break seen,
        }
    }
}

// --------------------------------------------------------- one order

#[tokio::test]
async fn the_owner_reads_their_order_with_its_lines() {
    let context = TestContext::new().await;
    let owner = Uuid::now_v7();
    let order = support::seed_order(owner);
    context.insert_order(&order).await;
    let line = &order.items[0];
    let app = app_as(&context, owner, "customer").await;

    let body = app
        .get_json(&format!("/v1/orders/{}", order.order.id), 200)
        .await;
    let address = json!({
        "first_name": "Somchai",
        "last_name": "Jaidee",
        "company": null,
        "street_address_1": "123 Sukhumvit Rd",
        "street_address_2": "Floor 4",
        "city": "Bangkok",
        "state_province": "Bangkok",
        "postal_code": "10110",
        "country": "TH",
        "phone": "+66812345678",
    });
    assert_eq!(
        body,
        json!({
            "id": order.order.id,
            "order_number": order.order.order_number,
            "user_id": owner,
            "status": "pending",
            "subtotal": "71800.00",
            "tax_amount": "5026.00",
            "shipping_amount": "50.00",
            "discount_amount": "0.00",
            "total_amount": "76876.00",
            "currency": "THB",
            "billing_address": address,
            "shipping_address": address,
            "shipping_method": "standard",
            "tracking_number": null,
            "shipped_at": null,
            "delivered_at": null,
            "payment_status": "pending",
            "payment_method": "credit_card",
            "notes": "Please ring the bell",
            // The shop's own note is not the customer's to read.
            "admin_notes": null,
            "created_at": "2024-01-15T10:30:00Z",
            "updated_at": "2024-01-15T10:30:00Z",
            "item_count": 2,
            "items": [{
                "id": line.id,
                "order_id": order.order.id,
                "product_id": line.product_id,
                "product_variant_id": line.product_variant_id,
                "product_name": "iPhone 15 Pro",
                "product_sku": "IPH-15-PRO-256",
                "product_image_url": "https://cdn.example.com/iphone.png",
                "unit_price": "35900.00",
                "quantity": 2,
                "total_price": "71800.00",
                "product_options": { "color": "black", "storage": "256GB" },
                "created_at": "2024-01-15T10:30:00Z",
            }],
        })
    );
}

#[tokio::test]
async fn anyone_elses_order_does_not_exist_but_an_admin_reads_any() {
    let context = TestContext::new().await;
    let owner = Uuid::now_v7();
    let mut order = support::seed_order(owner);
    let mut case = support::order_line(order.order.id, "Phone case", "990", 1);
    case.created_at = instant("2024-01-15T10:31:00Z");
    order.items.push(case);
    context.insert_order(&order).await;
    // An order whose customer is gone: an admin's alone.
    let mut orphan = support::seed_order(owner);
    orphan.order.user_id = None;
    context.insert_order(&orphan).await;
    let path = format!("/v1/orders/{}", order.order.id);

    let other = app_as(&context, Uuid::now_v7(), "customer").await;
    let hidden = other.get_problem(&path, 404).await;
    let unknown = other
        .get_problem(&format!("/v1/orders/{}", Uuid::now_v7()), 404)
        .await;
    assert_eq!(hidden["type"], "https://errors.ecommerce.local/not-found");
    // Word for word what an unknown id answers, but for the id.
    assert_eq!(
        hidden["detail"],
        format!("order {} does not exist", order.order.id)
    );
    assert_eq!(hidden["title"], unknown["title"]);
    let owner_app = app_as(&context, owner, "customer").await;
    owner_app
        .get_problem(&format!("/v1/orders/{}", orphan.order.id), 404)
        .await;

    let admin = app_as(&context, Uuid::now_v7(), "admin").await;
    let body = admin.get_json(&path, 200).await;
    assert_eq!(body["user_id"], owner.to_string());
    assert_eq!(body["admin_notes"], "VIP customer");
    assert_eq!(body["item_count"], 3);
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["product_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["iPhone 15 Pro", "Phone case"]);
    assert_eq!(body["items"][1]["total_price"], "990.00");
    assert_eq!(body["items"][1]["product_options"], json!({}));
    let body = admin
        .get_json(&format!("/v1/orders/{}", orphan.order.id), 200)
        .await;
    assert_eq!(body["user_id"], Value::Null);

    let guest = context.spawn_app().await;
    let response = guest.get(&path).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    // Refused before the id is read.
    assert_eq!(guest.get("/v1/orders/not-a-uuid").await.status(), 401);
    other.get_problem("/v1/orders/not-a-uuid", 400).await;
}

// ------------------------------------------------------------ your orders

#[tokio::test]
async fn your_orders_are_yours_newest_first_a_page_at_a_time() {
    let context = TestContext::new().await;
    let (me, someone) = (Uuid::now_v7(), Uuid::now_v7());
    let mut mine = Vec::new();
    for (n, at) in [
        "2024-01-10T08:00:00Z",
        "2024-01-12T08:00:00Z",
        // Two at the same moment: the id breaks the tie.
        "2024-01-12T08:00:00Z",
        "2024-01-20T08:00:00Z",
        "2024-01-05T08:00:00Z",
    ]
    .into_iter()
    .enumerate()
    {
        let mut order = placed(me, at);
        if n % 2 == 1 {
            order.order.status = OrderStatus::Shipped;
            order.order.tracking_number = Some(format!("TH00{n}"));
        }
        context.insert_order(&order).await;
        mine.push(order);
    }
    context
        .insert_order(&placed(someone, "2024-01-15T08:00:00Z"))
        .await;
    let app = app_as(&context, me, "customer").await;

    let body = app.get_json("/v1/me/orders", 200).await;
    let (oldest, first, tied_a, tied_b, newest) =
        (&mine[4], &mine[0], &mine[1], &mine[2], &mine[3]);
    let (tie_high, tie_low) = if tied_a.order.id > tied_b.order.id {
        (tied_a, tied_b)
    } else {
        (tied_b, tied_a)
    };
    let newest_first = id_list(&[newest, tie_high, tie_low, first, oldest]);
    assert_eq!(ids(&body), newest_first);
    assert_eq!(body["next_cursor"], Value::Null);
    // A summary: the order and its item count, not its lines.
    let item = &body["items"][0];
    assert_eq!(item["item_count"], 2);
    assert_eq!(item["total_amount"], "76876.00");
    assert_eq!(item["shipping_address"]["city"], "Bangkok");
    assert_eq!(item["admin_notes"], Value::Null);
    assert!(item.get("items").is_none(), "{item}");

    assert_eq!(walk(&app, "/v1/me/orders?", 2).await, newest_first);
    assert_eq!(walk(&app, "/v1/me/orders?", 1).await, newest_first);
    let shipped = id_list(&[tied_a, newest]);
    let shipped_sorted: Vec<String> = newest_first
        .iter()
        .filter(|id| shipped.contains(id))
        .cloned()
        .collect();
    assert_eq!(
        ids(&app.get_json("/v1/me/orders?status=shipped", 200).await),
        shipped_sorted
    );
    assert_eq!(
        walk(&app, "/v1/me/orders?status=shipped", 1).await,
        shipped_sorted
    );
    assert_eq!(
        ids(&app.get_json("/v1/me/orders?status=pending", 200).await).len(),
        3
    );
    assert!(ids(&app.get_json("/v1/me/orders?status=delivered", 200).await).is_empty());

    // Someone with no orders has none; the other customer sees only theirs.
    let other = app_as(&context, someone, "customer").await;
    assert_eq!(ids(&other.get_json("/v1/me/orders", 200).await).len(), 1);
    let stranger = app_as(&context, Uuid::now_v7(), "customer").await;
    assert!(ids(&stranger.get_json("/v1/me/orders", 200).await).is_empty());
    // An admin's own orders are theirs too (none here), not everyone's.
    let admin = app_as(&context, Uuid::now_v7(), "admin").await;
    assert!(ids(&admin.get_json("/v1/me/orders", 200).await).is_empty());

    for query in [
        "status=lost",
        "status=",
        "limit=0",
        "limit=501",
        "after=bm90LWEtY3Vyc29y",
        "user_id=0192f6a4-1111-7000-8000-000000000001",
    ] {
        let problem = app
            .get_problem(&format!("/v1/me/orders?{query}"), 400)
            .await;
        assert_eq!(
            problem["type"], "https://errors.ecommerce.local/invalid-request",
            "{query}"
        );
    }
    let guest = context.spawn_app().await;
    assert_eq!(guest.get("/v1/me/orders").await.status(), 401);
    assert_eq!(guest.get("/v1/me/orders?status=lost").await.status(), 401);
}

// ------------------------------------------------------------ admin listing

#[tokio::test]
async fn each_admin_filter_narrows_the_listing_and_they_combine() {
    let context = TestContext::new().await;
    let (somchai, malee) = (Uuid::now_v7(), Uuid::now_v7());
    let january = placed(somchai, "2024-01-15T10:30:00Z");
    let mut paid = placed(somchai, "2024-02-01T00:00:00Z");
    paid.order.status = OrderStatus::Confirmed;
    paid.order.payment_status = PaymentStatus::Paid;
    paid.order.total_amount = support::money("1500.00");
    let mut refunded = placed(malee, "2024-02-10T00:00:00Z");
    refunded.order.status = OrderStatus::Refunded;
    refunded.order.payment_status = PaymentStatus::Refunded;
    refunded.order.total_amount = support::money("99.50");
    let mut shipped = placed(malee, "2024-03-01T00:00:00Z");
    shipped.order.status = OrderStatus::Shipped;
    shipped.order.payment_status = PaymentStatus::Paid;
    for order in [&january, &paid, &refunded, &shipped] {
        context.insert_order(order).await;
    }
    let admin = app_as(&context, Uuid::now_v7(), "admin").await;
    let listed = |query: String| {
        let admin = &admin;
        async move { ids(&admin.get_json(&format!("/v1/orders?{query}"), 200).await) }
    };
    let q = |text: &str| text.to_owned();

    assert_eq!(
        listed(q("")).await,
        id_list(&[&shipped, &refunded, &paid, &january])
    );
    let body = admin.get_json("/v1/orders", 200).await;
    assert_eq!(body["items"][3]["admin_notes"], "VIP customer");
    assert_eq!(body["items"][3]["item_count"], 2);
    assert_eq!(body["next_cursor"], Value::Null);

    assert_eq!(listed(q("status=pending")).await, id_list(&[&january]));
    assert_eq!(listed(q("status=refunded")).await, id_list(&[&refunded]));
    assert!(listed(q("status=cancelled")).await.is_empty());
    assert_eq!(
        listed(q("payment_status=paid")).await,
        id_list(&[&shipped, &paid])
    );
    assert_eq!(
        listed(q("payment_status=pending")).await,
        id_list(&[&january])
    );
    // created_from <= created_at < created_to.
    assert_eq!(
        listed(q("created_from=2024-02-01T00:00:00Z")).await,
        id_list(&[&shipped, &refunded, &paid])
    );
    assert_eq!(
        listed(q("created_to=2024-02-01T00:00:00Z")).await,
        id_list(&[&january])
    );
    assert_eq!(
        listed(q(
            "created_from=2024-02-01T00:00:00Z&created_to=2024-02-10T00:00:00Z"
        ))
        .await,
        id_list(&[&paid])
    );
    // An offset, percent-encoded: 07:00 at +07:00 is midnight UTC.
    assert_eq!(
        listed(q("created_from=2024-02-10T07:00:00%2B07:00")).await,
        id_list(&[&shipped, &refunded])
    );
    // min_total <= total_amount <= max_total.
    assert_eq!(
        listed(q("min_total=1500")).await,
        id_list(&[&shipped, &paid, &january])
    );
    assert_eq!(
        listed(q("max_total=1500.00")).await,
        id_list(&[&refunded, &paid])
    );
    assert_eq!(
        listed(q("min_total=99.5&max_total=99.50")).await,
        id_list(&[&refunded])
    );
    assert_eq!(
        listed(format!("user_id={malee}")).await,
        id_list(&[&shipped, &refunded])
    );
    assert_eq!(
        listed(format!("order_number={}", paid.order.order_number)).await,
        id_list(&[&paid])
    );
    assert!(listed(q("order_number=ORD-2099-999999")).await.is_empty());
    // Combined.
    assert_eq!(
        listed(format!(
            "user_id={somchai}&payment_status=paid&status=confirmed\
             &created_from=2024-01-01T00:00:00Z&created_to=2025-01-01T00:00:00Z\
             &min_total=1000&max_total=2000"
        ))
        .await,
        id_list(&[&paid])
    );
    assert!(listed(format!("user_id={malee}&status=confirmed"))
        .await
        .is_empty());
    assert_eq!(
        listed(q("payment_status=paid&min_total=2000")).await,
        id_list(&[&shipped])
    );
    // Filtered pages.
    assert_eq!(
        walk(&admin, "/v1/orders?payment_status=paid", 1).await,
        id_list(&[&shipped, &paid])
    );
    assert_eq!(
        walk(&admin, "/v1/orders?min_total=0", 3).await,
        id_list(&[&shipped, &refunded, &paid, &january])
    );
}

#[tokio::test]
async fn bad_filter_values_are_400_problems() {
    let context = TestContext::new().await;
    context
        .insert_order(&support::seed_order(Uuid::now_v7()))
        .await;
    let admin = app_as(&context, Uuid::now_v7(), "admin").await;
    for (query, named) in [
        ("status=lost", None),
        ("status=PENDING", None),
        ("payment_status=unpaid", None),
        ("created_from=yesterday", None),
        ("created_to=2024-02-01", None),
        // An unencoded `+` is a space.
        ("created_from=2024-02-10T07:00:00+07:00", None),
        ("user_id=42", None),
        ("total=100", None),
        ("limit=0", Some("limit")),
        ("limit=501", Some("limit")),
        ("limit=-1", None),
        ("after=%%%", None),
        ("after=bm90LWEtY3Vyc29y", Some("after")),
        ("min_total=abc", Some("min_total")),
        ("min_total=-1", Some("min_total")),
        ("min_total=1.001", Some("min_total")),
        ("min_total=1e3", Some("min_total")),
        ("max_total=NaN", Some("max_total")),
        ("max_total=123456789", Some("max_total")),
        (
            "max_total=99999999999999999999999999999999",
            Some("max_total"),
        ),
        ("min_total=200&max_total=100", Some("max_total")),
        (
            "created_from=2024-02-01T00:00:00Z&created_to=2024-01-01T00:00:00Z",
            Some("created_to"),
        ),
        ("order_number=12345", Some("order_number")),
        ("order_number=ORD-2024-1", Some("order_number")),
        ("order_number=", Some("order_number")),
    ] {
        let problem = admin.get_problem(&format!("/v1/orders?{query}"), 400).await;
        assert_eq!(
            problem["type"], "https://errors.ecommerce.local/invalid-request",
            "{query}"
        );
        if let Some(name) = named {
            assert_eq!(problem["invalid_params"][0]["name"], name, "{query}");
        }
    }
    // Every refused value at once.
    let problem = admin
        .get_problem(
            "/v1/orders?min_total=x&max_total=y&order_number=z&limit=0",
            400,
        )
        .await;
    let names: Vec<&str> = problem["invalid_params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["min_total", "max_total", "order_number", "limit"]);
}

#[tokio::test]
async fn the_listing_is_for_admins_only() {
    let context = TestContext::new().await;
    let customer = Uuid::now_v7();
    context.insert_order(&support::seed_order(customer)).await;
    let customer = app_as(&context, customer, "customer").await;
    let guest = context.spawn_app().await;
    for path in [
        "/v1/orders",
        // Refused before the parameters are read.
        "/v1/orders?status=lost&min_total=abc",
    ] {
        let forbidden = customer.get_problem(path, 403).await;
        assert_eq!(
            forbidden["type"],
            "https://errors.ecommerce.local/forbidden"
        );
        let response = guest.get(path).await;
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
}

// --------------------------------------------------------- consistency

#[tokio::test]
async fn reads_with_a_token_wait_for_the_orders_tables() {
    let mut context = TestContext::new().await;
    context.settings.consistency.wait_ms = 200;
    let owner = Uuid::now_v7();
    let order = support::seed_order(owner);
    context.insert_order(&order).await;
    let app = context.spawn_app_with(context.state()).await;
    let customer = context.client_as(owner, "customer").await;
    let admin = context.client_as(Uuid::now_v7(), "admin").await;
    let token = "1.1.3e8.2a";
    let order_path = format!("/v1/orders/{}", order.order.id);
    let reads = [
        (&customer, "/v1/me/orders".to_owned()),
        (&customer, order_path.clone()),
        (&admin, order_path),
        (&admin, "/v1/orders".to_owned()),
    ];
    let read = |client: &reqwest::Client, path: &str, by: &str| {
        let request = match by {
            "header" => client
                .get(format!("{}{path}", app.base_url))
                .header("Consistency-Token", token),
            _ => client.get(format!("{}{path}?consistency_token={token}", app.base_url)),
        };
        async move { request.send().await.unwrap() }
    };
    for (client, path) in &reads {
        for by in ["header", "query"] {
            let response = read(client, path, by).await;
            assert_eq!(response.status(), 503, "{path} by {by}");
            assert_eq!(response.headers()["retry-after"], "1");
            let problem: Value = response.json().await.unwrap();
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains("orders-tables"), "{detail}");
        }
    }

    // The relay published the token's events up to offset 4 of the order
    // topic, and the projection applied them.
    let topic = context.settings.kafka.topic_for("order");
    let place = token.parse::<ConsistencyToken>().unwrap().place();
    let mut connection = context.pool().acquire().await.unwrap();
    record_watermark(
        &mut connection,
        &context.settings.relay.name,
        place,
        &PartitionOffsets::from([((topic.clone(), 0), 4)]),
    )
    .await
    .unwrap();
    record_applied(
        &mut *connection,
        "orders-tables",
        &PartitionOffsets::from([((topic, 0), 5)]),
    )
    .await
    .unwrap();
    for (client, path) in &reads {
        for by in ["header", "query"] {
            let response = read(client, path, by).await;
            assert_eq!(response.status(), 200, "{path} by {by}");
        }
    }
    let body: Value = read(&customer, "/v1/me/orders", "header")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&body), id_list(&[&order]));
}
