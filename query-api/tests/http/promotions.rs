//! `GET /v1/promotions` and `GET /v1/promotions/{id}` for admins, and
//! `GET /v1/coupons/{code}` for customers, alone and against their own cart,
//! over the promotion tables as the projection leaves them.

use infrastructure::consistency::{record_applied, record_watermark, PartitionOffsets};
use infrastructure::event_store::ConsistencyToken;
use infrastructure::views::carts::{CachedCart, CartOwnerView};
use query_api::promotions::{ApplicableTo, PromotionType, PromotionView};
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

fn id_list(promotions: &[&PromotionView]) -> Vec<String> {
    promotions.iter().map(|p| p.id.to_string()).collect()
}

/// The application, read by a customer of this id.
async fn customer_app(context: &TestContext, user_id: Uuid) -> TestApp {
    let mut app = context.spawn_app().await;
    app.client = context.client_as(user_id, "customer").await;
    app
}

// ------------------------------------------------------------ admin reads

#[tokio::test]
async fn admins_list_promotions_with_every_column_money_as_strings() {
    let context = TestContext::new().await;
    let mut promotion = support::promotion("Phones week");
    promotion.kind = PromotionType::FixedAmount;
    promotion.value = support::money("250.5");
    promotion.minimum_amount = Some(support::money("1000"));
    promotion.maximum_discount = Some(support::money("250.50"));
    promotion.usage_limit = Some(100);
    promotion.usage_limit_per_user = Some(1);
    promotion.applicable_to = ApplicableTo::Products;
    promotion.targets = vec![Uuid::from_u128(2), Uuid::from_u128(1)];
    promotion.usage_count = 7;
    let (promotion, _) = context
        .insert_promotion_with_coupon(&promotion, "PHONES250")
        .await;
    let admin = context.spawn_admin_app().await;

    let body = admin.get_json("/v1/promotions", 200).await;
    assert_eq!(body["next_cursor"], Value::Null);
    assert_eq!(
        body["items"][0],
        json!({
            "id": promotion.id,
            "name": "Phones week",
            "description": "Phones week, for everyone",
            "type": "fixed_amount",
            "value": "250.50",
            "minimum_amount": "1000.00",
            "maximum_discount": "250.50",
            "usage_limit": 100,
            "usage_limit_per_user": 1,
            "starts_at": "2024-01-01T10:30:00Z",
            "ends_at": "2099-01-01T00:00:00Z",
            "is_active": true,
            "applicable_to": "products",
            "created_at": "2024-01-01T10:30:00Z",
            "updated_at": "2024-01-02T10:30:00Z",
            "targets": [Uuid::from_u128(1), Uuid::from_u128(2)],
            "usage_count": 7,
            "coupon_count": 1,
        })
    );
}

#[tokio::test]
async fn each_filter_narrows_the_listing() {
    let context = TestContext::new().await;
    let window = |name: &str, from: &str, to: &str| {
        let mut promotion = support::promotion(name);
        promotion.starts_at = from.parse().unwrap();
        promotion.ends_at = to.parse().unwrap();
        promotion
    };
    let march = window("March", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z");
    let mut shipping = window("Ship free", "2025-02-01T00:00:00Z", "2025-03-10T00:00:00Z");
    shipping.kind = PromotionType::FreeShipping;
    shipping.value = support::money("0");
    let mut paused = window("Paused", "2025-03-05T00:00:00Z", "2025-03-20T00:00:00Z");
    paused.is_active = false;
    paused.applicable_to = ApplicableTo::Categories;
    paused.targets = vec![Uuid::now_v7()];
    for promotion in [&march, &shipping, &paused] {
        context.insert_promotion(promotion).await;
    }
    let admin = context.spawn_admin_app().await;
    let listed = |query: &'static str| {
        let admin = &admin;
        async move { ids(&admin.get_json(&format!("/v1/promotions{query}"), 200).await) }
    };

    // The latest start first.
    assert_eq!(listed("").await, id_list(&[&paused, &march, &shipping]));
    assert_eq!(
        listed("?is_active=true").await,
        id_list(&[&march, &shipping])
    );
    assert_eq!(listed("?is_active=false").await, id_list(&[&paused]));
    assert_eq!(listed("?type=free_shipping").await, id_list(&[&shipping]));
    assert_eq!(
        listed("?type=percentage").await,
        id_list(&[&paused, &march])
    );
    assert!(listed("?type=fixed_amount").await.is_empty());
    assert_eq!(
        listed("?applicable_to=categories").await,
        id_list(&[&paused])
    );
    assert_eq!(
        listed("?applicable_to=all").await,
        id_list(&[&march, &shipping])
    );
    // starts_at <= valid_at < ends_at.
    assert_eq!(
        listed("?valid_at=2025-03-10T00:00:00Z").await,
        id_list(&[&paused, &march])
    );
    assert_eq!(
        listed("?valid_at=2025-03-09T23:59:59Z").await,
        id_list(&[&paused, &march, &shipping])
    );
    // An offset, percent-encoded: 07:00 at +07:00 is midnight UTC.
    assert_eq!(
        listed("?valid_at=2025-03-10T07:00:00%2B07:00").await,
        id_list(&[&paused, &march])
    );
    assert_eq!(
        listed("?is_active=true&type=percentage&applicable_to=all&valid_at=2025-03-15T00:00:00Z")
            .await,
        id_list(&[&march])
    );
}

#[tokio::test]
async fn the_listing_pages_with_its_cursor() {
    let context = TestContext::new().await;
    let mut inserted = Vec::new();
    for n in 0..5 {
        let mut promotion = support::promotion(&format!("Promo {n}"));
        // Two share a window: the id breaks the tie.
        promotion.starts_at = support::at(1 + n.min(3));
        context.insert_promotion(&promotion).await;
        inserted.push(promotion);
    }
    let admin = context.spawn_admin_app().await;
    let whole = ids(&admin.get_json("/v1/promotions", 200).await);
    assert_eq!(whole.len(), 5);

    let mut seen = Vec::new();
    let mut path = "/v1/promotions?limit=2".to_owned();
    loop {
        let page = admin.get_json(&path, 200).await;
        let page_ids = ids(&page);
        assert!(page_ids.len() <= 2);
        seen.extend(page_ids);
        match page["next_cursor"].as_str() {
            Some(after) => path = format!("/v1/promotions?limit=2&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, whole, "every promotion once, in order");
    let problem = admin
        .get_problem("/v1/promotions?after=bm90LWEtY3Vyc29y", 400)
        .await;
    assert_eq!(problem["invalid_params"][0]["name"], "after");
}

#[tokio::test]
async fn bad_filter_values_are_400_problems() {
    let context = TestContext::new().await;
    context
        .insert_promotion(&support::promotion("Anything"))
        .await;
    let admin = context.spawn_admin_app().await;
    for query in [
        "type=bogo",
        "type=",
        "applicable_to=everyone",
        "is_active=maybe",
        "valid_at=tomorrow",
        "valid_at=2025-03-10",
        // An unencoded `+` is a space.
        "valid_at=2025-03-10T07:00:00+07:00",
        "limit=0",
        "limit=501",
        "limit=-1",
        "after=%%%",
        "status=active",
    ] {
        let problem = admin
            .get_problem(&format!("/v1/promotions?{query}"), 400)
            .await;
        assert_eq!(
            problem["type"], "https://errors.ecommerce.local/invalid-request",
            "{query}"
        );
    }
    admin.get_problem("/v1/promotions/not-a-uuid", 400).await;
}

#[tokio::test]
async fn promotions_are_for_admins_only() {
    let context = TestContext::new().await;
    let promotion = support::promotion("Secret sale");
    context.insert_promotion(&promotion).await;
    let customer = customer_app(&context, Uuid::now_v7()).await;
    let guest = context.spawn_app().await;
    for path in [
        "/v1/promotions".to_owned(),
        format!("/v1/promotions/{}", promotion.id),
        // Refused before the parameters are read.
        "/v1/promotions?type=bogo".to_owned(),
    ] {
        let forbidden = customer.get_problem(&path, 403).await;
        assert_eq!(
            forbidden["type"],
            "https://errors.ecommerce.local/forbidden"
        );
        let response = guest.get(&path).await;
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
}

#[tokio::test]
async fn an_admin_reads_one_promotion_with_its_coupons() {
    let context = TestContext::new().await;
    let promotion = support::promotion("Welcome");
    context.insert_promotion(&promotion).await;
    let mut welcome = support::coupon("welcome10");
    welcome.usage_count = 3;
    let mut retired = support::coupon("OLDWELCOME");
    retired.is_active = false;
    retired.created_at = support::at(2);
    context.insert_coupon(promotion.id, &welcome).await;
    context.insert_coupon(promotion.id, &retired).await;
    context.insert_promotion(&support::promotion("Other")).await;
    let admin = context.spawn_admin_app().await;

    let body = admin
        .get_json(&format!("/v1/promotions/{}", promotion.id), 200)
        .await;
    assert_eq!(body["id"], promotion.id.to_string());
    assert_eq!(body["value"], "10.00");
    assert_eq!(body["coupon_count"], 2);
    assert_eq!(
        body["coupons"],
        json!([
            {
                "id": retired.id,
                "code": "OLDWELCOME",
                "usage_count": 0,
                "is_active": false,
                "created_at": "2024-01-02T10:30:00Z",
            },
            {
                "id": welcome.id,
                "code": "WELCOME10",
                "usage_count": 3,
                "is_active": true,
                "created_at": "2024-01-03T10:30:00Z",
            },
        ])
    );
    let missing = admin
        .get_problem(&format!("/v1/promotions/{}", Uuid::now_v7()), 404)
        .await;
    assert_eq!(missing["type"], "https://errors.ecommerce.local/not-found");
}

// ----------------------------------------------------- coupon, no cart

#[tokio::test]
async fn a_code_is_checked_case_insensitively_by_users_and_guests() {
    let context = TestContext::new().await;
    let mut promotion = support::promotion("Welcome");
    promotion.minimum_amount = Some(support::money("1000"));
    promotion.maximum_discount = Some(support::money("500"));
    context
        .insert_promotion_with_coupon(&promotion, "WELCOME10")
        .await;
    let expected = json!({
        "code": "WELCOME10",
        "applies": true,
        "reason": null,
        "promotion": {
            "name": "Welcome",
            "type": "percentage",
            "value": "10.00",
            "minimum_amount": "1000.00",
            "maximum_discount": "500.00",
            "ends_at": "2099-01-01T00:00:00Z",
        },
        "cart": null,
    });
    let guest = context.spawn_app().await;
    let user = customer_app(&context, Uuid::now_v7()).await;
    for (app, path) in [
        (&guest, "/v1/coupons/welcome10"),
        (&guest, "/v1/coupons/WeLcOmE10"),
        (&user, "/v1/coupons/WELCOME10"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers().get("x-cache").is_none(), "no cart read");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, expected, "{path}");
    }
}

#[tokio::test]
async fn a_code_that_cannot_be_used_now_says_why() {
    let context = TestContext::new().await;
    let me = Uuid::now_v7();
    let mut cases: Vec<(&str, Value)> = Vec::new();

    let mut ended = support::promotion("Ended");
    ended.ends_at = support::at(20);
    context.insert_promotion_with_coupon(&ended, "ENDED").await;
    cases.push((
        "ENDED",
        json!({ "code": "ended", "ends_at": "2024-01-20T10:30:00Z" }),
    ));
    let mut later = support::promotion("Later");
    later.starts_at = "2098-06-01T00:00:00Z".parse().unwrap();
    context.insert_promotion_with_coupon(&later, "LATER").await;
    cases.push((
        "LATER",
        json!({ "code": "not_started", "starts_at": "2098-06-01T00:00:00Z" }),
    ));
    let mut paused = support::promotion("Paused");
    paused.is_active = false;
    context
        .insert_promotion_with_coupon(&paused, "PAUSED")
        .await;
    cases.push(("PAUSED", json!({ "code": "inactive" })));
    let live = support::promotion("Live");
    context.insert_promotion(&live).await;
    let mut withdrawn = support::coupon("WITHDRAWN");
    withdrawn.is_active = false;
    context.insert_coupon(live.id, &withdrawn).await;
    cases.push(("WITHDRAWN", json!({ "code": "inactive" })));
    let mut used_up = support::promotion("Used up");
    used_up.usage_limit = Some(5);
    used_up.usage_count = 5;
    context
        .insert_promotion_with_coupon(&used_up, "USEDUP")
        .await;
    cases.push((
        "USEDUP",
        json!({ "code": "usage_limit_reached", "limit": 5 }),
    ));
    let mut once = support::promotion("Once each");
    once.usage_limit_per_user = Some(1);
    let (_, once_coupon) = context.insert_promotion_with_coupon(&once, "ONCE").await;
    context.insert_redemption(once_coupon.id, Some(me)).await;
    cases.push((
        "ONCE",
        json!({ "code": "per_user_limit_reached", "limit": 1 }),
    ));
    let mut vip = support::promotion("VIP");
    vip.applicable_to = ApplicableTo::Users;
    vip.targets = vec![Uuid::now_v7()];
    context.insert_promotion_with_coupon(&vip, "VIPONLY").await;
    cases.push(("VIPONLY", json!({ "code": "not_applicable" })));

    let app = customer_app(&context, me).await;
    for (code, reason) in cases {
        let body = app.get_json(&format!("/v1/coupons/{code}"), 200).await;
        assert_eq!(body["applies"], false, "{code}");
        assert_eq!(body["reason"], reason, "{code}");
        assert_eq!(body["code"], code);
    }
    // Someone else's redemptions are theirs; a guest is not counted per person.
    let other = customer_app(&context, Uuid::now_v7()).await;
    assert_eq!(
        other.get_json("/v1/coupons/once", 200).await["applies"],
        true
    );
    let guest = context.spawn_app().await;
    assert_eq!(
        guest.get_json("/v1/coupons/once", 200).await["applies"],
        true
    );
}

#[tokio::test]
async fn an_unknown_code_is_404_and_an_invalid_one_400() {
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    let missing = app.get_problem("/v1/coupons/NOSUCHCODE", 404).await;
    assert_eq!(missing["type"], "https://errors.ecommerce.local/not-found");
    let long = "X".repeat(51);
    for bad in [
        "AB",
        "WELCOME%2010",
        "%C3%A9T%C3%89",
        long.as_str(),
        "SAVE!",
    ] {
        let problem = app.get_problem(&format!("/v1/coupons/{bad}"), 400).await;
        assert_eq!(problem["invalid_params"][0]["name"], "code", "{bad}");
    }
    app.get_problem("/v1/coupons/WELCOME10?cart_id=cart_001", 400)
        .await;
    app.get_problem("/v1/coupons/WELCOME10?cart=1", 400).await;
}

// ------------------------------------------------------ coupon on a cart

/// The seed's cart (2 × 35900, shipping 50) in MongoDB, owned by `owner`.
async fn seed_cart_of(context: &TestContext, owner: &CartOwnerView) -> CachedCart {
    let cart = support::seed_cart();
    context.cart_document_put(owner, &cart).await;
    cart
}

#[tokio::test]
async fn ten_percent_capped_at_500_takes_500_off_the_seed_cart() {
    let context = TestContext::new().await;
    let user_id = Uuid::now_v7();
    let owner = support::user_owner(user_id);
    let mut promotion = support::promotion("Welcome");
    promotion.maximum_discount = Some(support::money("500"));
    context
        .insert_promotion_with_coupon(&promotion, "WELCOME10")
        .await;
    let cart = seed_cart_of(&context, &owner).await;
    let app = customer_app(&context, user_id).await;
    let path = format!("/v1/coupons/welcome10?cart_id={}", cart.cart_id);

    let miss = app.get(&path).await;
    assert_eq!(miss.status(), 200);
    assert_eq!(miss.headers()["x-cache"], "miss");
    let body: Value = miss.json().await.unwrap();
    assert_eq!(body["applies"], true);
    assert_eq!(body["reason"], Value::Null);
    // 10% of 71800 is 7180, capped at 500; VAT on 71300 is 4991.
    assert_eq!(
        body["cart"],
        json!({
            "cart_id": cart.cart_id,
            "subtotal": "71800.00",
            "discount_amount": "500.00",
            "shipping_fee": "50.00",
            "shipping_discount": "0.00",
            "shipping_amount": "50.00",
            "tax_amount": "4991.00",
            "total_amount": "76341.00",
        })
    );

    // The cart cache answers the same.
    context.cart_cache_put(&owner, &cart).await;
    let hit = app.get(&path).await;
    assert_eq!(hit.status(), 200);
    assert_eq!(hit.headers()["x-cache"], "hit");
    assert_eq!(hit.json::<Value>().await.unwrap(), body);
}

#[tokio::test]
async fn a_minimum_the_cart_does_not_meet_is_reported_with_the_cart_without_the_coupon() {
    let context = TestContext::new().await;
    let user_id = Uuid::now_v7();
    let mut promotion = support::promotion("Big spender");
    promotion.minimum_amount = Some(support::money("80000"));
    context
        .insert_promotion_with_coupon(&promotion, "BIG")
        .await;
    let cart = seed_cart_of(&context, &support::user_owner(user_id)).await;
    let app = customer_app(&context, user_id).await;

    // Without the cart, the minimum is for later.
    assert_eq!(app.get_json("/v1/coupons/BIG", 200).await["applies"], true);
    let body = app
        .get_json(&format!("/v1/coupons/BIG?cart_id={}", cart.cart_id), 200)
        .await;
    assert_eq!(body["applies"], false);
    assert_eq!(
        body["reason"],
        json!({ "code": "minimum_not_met", "minimum": "80000.00", "subtotal": "71800.00" })
    );
    assert_eq!(body["cart"]["discount_amount"], "0.00");
    assert_eq!(body["cart"]["tax_amount"], "5026.00");
    assert_eq!(body["cart"]["total_amount"], "76876.00");
}

#[tokio::test]
async fn a_used_up_per_user_limit_does_not_apply_to_the_cart() {
    let context = TestContext::new().await;
    let user_id = Uuid::now_v7();
    let mut promotion = support::promotion("Once each");
    promotion.usage_limit_per_user = Some(2);
    let (_, coupon) = context
        .insert_promotion_with_coupon(&promotion, "TWICE")
        .await;
    // Two uses through another coupon of the same promotion count too.
    let other = support::coupon("TWICE-B");
    context.insert_coupon(promotion.id, &other).await;
    context.insert_redemption(coupon.id, Some(user_id)).await;
    let cart = seed_cart_of(&context, &support::user_owner(user_id)).await;
    let app = customer_app(&context, user_id).await;
    let path = format!("/v1/coupons/TWICE?cart_id={}", cart.cart_id);

    assert_eq!(app.get_json(&path, 200).await["applies"], true);
    context.insert_redemption(other.id, Some(user_id)).await;
    let body = app.get_json(&path, 200).await;
    assert_eq!(body["applies"], false);
    assert_eq!(
        body["reason"],
        json!({ "code": "per_user_limit_reached", "limit": 2 })
    );
    assert_eq!(body["cart"]["discount_amount"], "0.00");
}

#[tokio::test]
async fn a_targeted_coupon_applies_by_the_catalog_category_of_the_lines() {
    let context = TestContext::new().await;
    let user_id = Uuid::now_v7();
    let cart = seed_cart_of(&context, &support::user_owner(user_id)).await;
    let phones = Uuid::now_v7();
    context
        .insert_product_in_category(cart.items[0].product_id, Some(phones))
        .await;
    let mut for_phones = support::promotion("Phones");
    for_phones.kind = PromotionType::FixedAmount;
    for_phones.value = support::money("1000");
    for_phones.applicable_to = ApplicableTo::Categories;
    for_phones.targets = vec![phones];
    context
        .insert_promotion_with_coupon(&for_phones, "PHONES1000")
        .await;
    let mut for_books = for_phones.clone();
    for_books.id = Uuid::now_v7();
    for_books.targets = vec![Uuid::now_v7()];
    context
        .insert_promotion_with_coupon(&for_books, "BOOKS1000")
        .await;
    let app = customer_app(&context, user_id).await;

    let body = app
        .get_json(
            &format!("/v1/coupons/PHONES1000?cart_id={}", cart.cart_id),
            200,
        )
        .await;
    assert_eq!(body["applies"], true);
    assert_eq!(body["cart"]["discount_amount"], "1000.00");
    // VAT on 70800 is 4956.
    assert_eq!(body["cart"]["tax_amount"], "4956.00");
    assert_eq!(body["cart"]["total_amount"], "75806.00");
    let body = app
        .get_json(
            &format!("/v1/coupons/BOOKS1000?cart_id={}", cart.cart_id),
            200,
        )
        .await;
    assert_eq!(body["applies"], false);
    assert_eq!(body["reason"], json!({ "code": "not_applicable" }));
}

#[tokio::test]
async fn free_shipping_takes_the_carts_fee_off() {
    let context = TestContext::new().await;
    let (token, owner) = support::guest_session();
    let cart = seed_cart_of(&context, &owner).await;
    let mut promotion = support::promotion("Ship free");
    promotion.kind = PromotionType::FreeShipping;
    promotion.value = support::money("0");
    context
        .insert_promotion_with_coupon(&promotion, "SHIPFREE")
        .await;
    let app = context.spawn_app().await;

    let response = app
        .get_with_header(
            &format!("/v1/coupons/shipfree?cart_id={}", cart.cart_id),
            "X-Cart-Session",
            &token,
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["applies"], true);
    assert_eq!(body["cart"]["discount_amount"], "0.00");
    assert_eq!(body["cart"]["shipping_discount"], "50.00");
    assert_eq!(body["cart"]["shipping_amount"], "0.00");
    assert_eq!(body["cart"]["total_amount"], "76826.00");
}

#[tokio::test]
async fn only_the_carts_owner_checks_a_code_against_it() {
    let context = TestContext::new().await;
    let owner_id = Uuid::now_v7();
    let owner = support::user_owner(owner_id);
    let cart = seed_cart_of(&context, &owner).await;
    context.cart_cache_put(&owner, &cart).await;
    let (token, guest_owner) = support::guest_session();
    let guest_cart = seed_cart_of(&context, &guest_owner).await;
    context
        .insert_promotion_with_coupon(&support::promotion("Welcome"), "WELCOME10")
        .await;
    let app = context.spawn_app().await;
    let path = format!("/v1/coupons/WELCOME10?cart_id={}", cart.cart_id);

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
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "https://errors.ecommerce.local/not-found");
        assert!(problem["detail"].as_str().unwrap().contains("cart"));
    }
    // Another guest's session, or none, does not reach the guest's cart.
    let guest_path = format!("/v1/coupons/WELCOME10?cart_id={}", guest_cart.cart_id);
    let (another, _) = support::guest_session();
    let response = app
        .get_with_header(&guest_path, "X-Cart-Session", &another)
        .await;
    assert_eq!(response.status(), 404);
    app.get_problem(&guest_path, 404).await;
    let response = app
        .get_with_header(&guest_path, "X-Cart-Session", &token)
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .get_with_header(&guest_path, "X-Cart-Session", "not-a-cart-session")
        .await;
    assert_eq!(response.status(), 400);
    // The owner, and an unknown code on their cart.
    let mine = customer_app(&context, owner_id).await;
    let body = mine.get_json(&path, 200).await;
    assert_eq!(body["cart"]["discount_amount"], "7180.00");
    mine.get_problem(
        &format!("/v1/coupons/NOSUCHCODE?cart_id={}", cart.cart_id),
        404,
    )
    .await;
    mine.get_problem(
        &format!("/v1/coupons/WELCOME10?cart_id={}", Uuid::now_v7()),
        404,
    )
    .await;
}

// --------------------------------------------------------- consistency

#[tokio::test]
async fn reads_with_a_token_wait_for_the_promotion_tables() {
    let mut context = TestContext::new().await;
    context.settings.consistency.wait_ms = 200;
    context
        .insert_promotion_with_coupon(&support::promotion("Welcome"), "WELCOME10")
        .await;
    let app = context.spawn_app_with(context.state()).await;
    let admin = context.client_as(Uuid::now_v7(), "admin").await;
    let token = "1.1.3e8.2a";
    let read = |path: &'static str| {
        let admin = &admin;
        let url = format!("{}{path}", app.base_url);
        async move {
            admin
                .get(url)
                .header("Consistency-Token", token)
                .send()
                .await
                .unwrap()
        }
    };
    for path in ["/v1/promotions", "/v1/coupons/WELCOME10"] {
        let response = read(path).await;
        assert_eq!(response.status(), 503, "{path}");
        let problem: Value = response.json().await.unwrap();
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("promotion-tables"), "{detail}");
    }

    // The relay published the token's events up to offset 4 of the coupon
    // topic, and the projection applied them.
    let topic = context.settings.kafka.topic_for("coupon");
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
        "promotion-tables",
        &PartitionOffsets::from([((topic, 0), 5)]),
    )
    .await
    .unwrap();
    for path in ["/v1/promotions", "/v1/coupons/WELCOME10"] {
        assert_eq!(read(path).await.status(), 200, "{path}");
    }
}
