//! Carts over HTTP: a guest's cart named by its cart session, a user's by
//! the session, one active cart per owner, lines at the catalog's price,
//! and the guest's cart merged into the user's at login.

use chrono::{DateTime, Duration, Utc};
use command_api::cart_expiry::{CartExpiry, Sweep};
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::personal_data::PersonalData;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

/// An active product at 35900 (a sale price under 39900), as the seed's cart holds it.
async fn product_on_sale(app: &TestApp, sku: &str) -> Uuid {
    let category = app.category(&format!("cat-{}", sku.to_lowercase())).await;
    let id = app
        .product(&json!({
            "sku": sku, "name": format!("Phone {sku}"), "slug": sku.to_lowercase(),
            "category_id": category, "regular_price": "39900.00", "sale_price": "35900.00",
            "stock_quantity": 45,
        }))
        .await;
    ok_body(
        app.put(
            &format!("/v1/products/{id}/status"),
            &json!({ "status": "active" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    id
}

/// Opens a guest cart; the cart's id and its cart session.
async fn guest_cart(app: &TestApp) -> (Uuid, String) {
    let response = app
        .anonymous
        .post(format!("{}/v1/carts", app.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let session = response.headers()["x-cart-session"]
        .to_str()
        .unwrap()
        .to_owned();
    (created_id(response).await, session)
}

async fn as_guest(
    app: &TestApp,
    session: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.anonymous.request(method, format!("{}{path}", app.base));
    if let Some(session) = session {
        request = request.header("X-Cart-Session", session);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

fn payload(event: &infrastructure::event_store::RecordedEvent) -> &Value {
    &event.payload[&event.event_type]
}

#[tokio::test]
async fn a_guest_cart_holds_lines_at_the_catalog_price_with_the_seeds_summary() {
    let app = TestApp::spawn().await;
    let product = product_on_sale(&app, "CART-1").await;
    let (cart, session) = guest_cart(&app).await;
    let items = format!("/v1/carts/{cart}/items");
    let response = as_guest(
        &app,
        Some(&session),
        Method::POST,
        &items,
        Some(json!({ "product_id": product, "quantity": 2,
                     "options": { "color": "black", "storage": "256GB" } })),
    )
    .await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let item_id = created_id(response).await;
    assert_eq!(location, format!("/v1/carts/{cart}/items/{item_id}"));

    let events = app.events(&cart.to_string()).await;
    assert_eq!(event_types(&events), ["CartOpened", "CartItemAdded"]);
    let added = payload(&events[1]);
    assert_eq!(added["line"]["unit_price"], "35900.00", "the sale price");
    assert_eq!(added["summary"]["subtotal"], "71800.00");
    assert_eq!(added["summary"]["estimated_tax"], "5026.00");
    assert_eq!(added["summary"]["estimated_total"], "76826.00");
    // The session token is a bearer secret: only its digest names the owner.
    let owner = &payload(&events[0])["owner"];
    assert_eq!(owner["type"], "guest");
    assert_ne!(owner["session_id"], session.as_str());
    assert_eq!(owner["session_id"].as_str().unwrap().len(), 64);

    let line = format!("{items}/{item_id}");
    ok_body(
        as_guest(
            &app,
            Some(&session),
            Method::PATCH,
            &line,
            Some(json!({ "quantity": 3 })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    problem(
        as_guest(
            &app,
            Some(&session),
            Method::PATCH,
            &line,
            Some(json!({ "quantity": 11 })),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "quantity-above-limit",
    )
    .await;
    ok_body(
        as_guest(&app, Some(&session), Method::DELETE, &line, None).await,
        StatusCode::OK,
    )
    .await;
    problem(
        as_guest(&app, Some(&session), Method::DELETE, &line, None).await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    let events = app.events(&cart.to_string()).await;
    assert_eq!(
        event_types(&events)[2..],
        ["CartItemQuantityChanged", "CartItemRemoved"]
    );
}

#[tokio::test]
async fn a_cart_is_its_owners_alone() {
    let app = TestApp::spawn().await;
    let product = product_on_sale(&app, "CART-2").await;
    let (cart, session) = guest_cart(&app).await;
    let items = format!("/v1/carts/{cart}/items");
    let line = json!({ "product_id": product, "quantity": 1 });
    // Without the session, with another, with a malformed one, as a user.
    let (_, other_session) = guest_cart(&app).await;
    let (customer, _) = app.customer("shopper@example.com").await;
    let before_others = app.event_count().await;
    for session in [None, Some(other_session.as_str())] {
        problem(
            as_guest(&app, session, Method::POST, &items, Some(line.clone())).await,
            StatusCode::NOT_FOUND,
            "not-found",
        )
        .await;
    }
    problem(
        as_guest(
            &app,
            Some("not a session"),
            Method::POST,
            &items,
            Some(line.clone()),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid-header",
    )
    .await;
    problem(
        app.send_as(&customer, Method::POST, &items, Some(&line))
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    problem(
        app.send_as(&app.client, Method::POST, &items, Some(&line))
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    assert_eq!(app.event_count().await, before_others, "nobody else wrote");
    ok_body(
        as_guest(&app, Some(&session), Method::POST, &items, Some(line)).await,
        StatusCode::CREATED,
    )
    .await;
}

#[tokio::test]
async fn an_owner_has_one_active_cart() {
    let app = TestApp::spawn().await;
    let (customer, _) = app.customer("one-cart@example.com").await;
    let first = created_id(
        app.send_as(&customer, Method::POST, "/v1/carts", Some(&json!({})))
            .await,
    )
    .await;
    let body = problem(
        app.send_as(&customer, Method::POST, "/v1/carts", Some(&json!({})))
            .await,
        StatusCode::CONFLICT,
        "cart-exists",
    )
    .await;
    assert_eq!(body["cart_id"], first.to_string());
    // Two opens at once: one cart.
    let empty = json!({});
    let (a, b) = tokio::join!(
        app.send_as(&customer, Method::POST, "/v1/carts", Some(&empty)),
        app.send_as(&customer, Method::POST, "/v1/carts", Some(&empty)),
    );
    assert_eq!(a.status(), StatusCode::CONFLICT);
    assert_eq!(b.status(), StatusCode::CONFLICT);
    let claim = app
        .events(&format!(
            "active_cart:user:{}",
            app.events(&first.to_string()).await[0].payload["CartOpened"]["owner"]["user_id"]
                .as_str()
                .unwrap()
        ))
        .await;
    assert_eq!(event_types(&claim), ["UniqueKeyClaimed"]);
}

#[tokio::test]
async fn unavailable_products_bad_quantities_and_unknown_shipping_are_refused() {
    let app = TestApp::spawn().await;
    let draft = app.product(&product_body("CART-DRAFT", "cart-draft")).await;
    let on_sale = product_on_sale(&app, "CART-OPT").await;
    let (cart, session) = guest_cart(&app).await;
    let items = format!("/v1/carts/{cart}/items");
    let before = app.event_count().await;
    for (body, status, kind) in [
        (
            json!({ "product_id": draft, "quantity": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "product-unavailable",
        ),
        (
            json!({ "product_id": Uuid::now_v7(), "quantity": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reference-not-found",
        ),
        (
            json!({ "product_id": draft, "quantity": 0 }),
            StatusCode::BAD_REQUEST,
            "validation",
        ),
        (
            json!({ "product_id": on_sale, "quantity": 1, "options": { "color": "" } }),
            StatusCode::BAD_REQUEST,
            "validation",
        ),
    ] {
        problem(
            as_guest(&app, Some(&session), Method::POST, &items, Some(body)).await,
            status,
            kind,
        )
        .await;
    }
    problem(
        as_guest(
            &app,
            Some(&session),
            Method::PUT,
            &format!("/v1/carts/{cart}/shipping-method"),
            Some(json!({ "method": "teleport" })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    assert_eq!(app.event_count().await, before);

    ok_body(
        as_guest(
            &app,
            Some(&session),
            Method::PUT,
            &format!("/v1/carts/{cart}/shipping-method"),
            Some(json!({ "method": "express" })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let coupon_path = format!("/v1/carts/{cart}/coupon");
    problem(
        as_guest(
            &app,
            Some(&session),
            Method::PUT,
            &coupon_path,
            Some(json!({ "code": "welcome10" })),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "coupon-not-found",
    )
    .await;
    let promotion = created_id(
        app.post(
            "/v1/promotions",
            &json!({ "name": "Welcome", "type": "percentage", "value": 10,
                     "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z" }),
        )
        .await,
    )
    .await;
    for code in ["WELCOME10", "RETIRED10"] {
        ok_body(
            app.post(
                &format!("/v1/promotions/{promotion}/coupons"),
                &json!({ "code": code }),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    let retired = app.events("coupon_code:RETIRED10").await;
    let retired = retired[0].payload["UniqueKeyClaimed"]["owner_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok_body(
        app.request(Method::POST, &format!("/v1/coupons/{retired}/deactivation"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    problem(
        as_guest(
            &app,
            Some(&session),
            Method::PUT,
            &coupon_path,
            Some(json!({ "code": "retired10" })),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "coupon-inactive",
    )
    .await;
    ok_body(
        as_guest(
            &app,
            Some(&session),
            Method::PUT,
            &coupon_path,
            Some(json!({ "code": "welcome10" })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let events = app.events(&cart.to_string()).await;
    let shipping = payload(&events[1]);
    assert_eq!(shipping["shipping_method"]["fee"], "150.00");
    assert_eq!(payload(&events[2])["coupon_code"], "WELCOME10");
    ok_body(
        as_guest(
            &app,
            Some(&session),
            Method::DELETE,
            &format!("/v1/carts/{cart}/coupon"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn logging_in_merges_the_guest_cart_once() {
    let app = TestApp::spawn().await;
    let product = product_on_sale(&app, "CART-M").await;
    let (customer, user_id) = app.customer("merge@example.com").await;
    // The user's own cart holds one unit; the guest's two of the same line.
    let user_cart = created_id(
        app.send_as(&customer, Method::POST, "/v1/carts", Some(&json!({})))
            .await,
    )
    .await;
    ok_body(
        app.send_as(
            &customer,
            Method::POST,
            &format!("/v1/carts/{user_cart}/items"),
            Some(&json!({ "product_id": product, "quantity": 1 })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let (guest_cart_id, session) = guest_cart(&app).await;
    ok_body(
        as_guest(
            &app,
            Some(&session),
            Method::POST,
            &format!("/v1/carts/{guest_cart_id}/items"),
            Some(json!({ "product_id": product, "quantity": 2 })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;

    let log_in = || async {
        let response = as_guest(
            &app,
            Some(&session),
            Method::POST,
            "/v1/sessions",
            Some(json!({ "email": "merge@example.com", "password": CUSTOMER_PASSWORD })),
        )
        .await;
        ok_body(response, StatusCode::CREATED).await
    };
    let first = log_in().await;
    assert_eq!(first["cart_id"], user_cart.to_string());
    let user_events = app.events(&user_cart.to_string()).await;
    assert_eq!(
        event_types(&user_events)[2..],
        ["GuestCartMerged"],
        "{user_id}"
    );
    let merged = payload(&user_events[2]);
    assert_eq!(
        merged["items"][0]["quantity"], 2,
        "the larger quantity, not the sum"
    );
    assert_eq!(
        event_types(&app.events(&guest_cart_id.to_string()).await)[2..],
        ["CartMergedInto"]
    );
    assert_eq!(
        deadline(&app, guest_cart_id).await,
        None,
        "a merged cart is not swept"
    );

    let count = app.event_count().await;
    let second = log_in().await;
    assert_eq!(second["cart_id"], Value::Null, "nothing left to merge");
    // The second login records the login, and nothing of the carts.
    assert_eq!(app.event_count().await, count + 1);
    // The guest's cart takes no more changes.
    problem(
        as_guest(
            &app,
            Some(&session),
            Method::POST,
            &format!("/v1/carts/{guest_cart_id}/items"),
            Some(json!({ "product_id": product, "quantity": 1 })),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cart-merged",
    )
    .await;
}

#[tokio::test]
async fn a_login_without_a_user_cart_opens_one_for_the_guests_lines() {
    let app = TestApp::spawn().await;
    let product = product_on_sale(&app, "CART-N").await;
    app.customer("new-cart@example.com").await;
    let (guest_cart_id, session) = guest_cart(&app).await;
    ok_body(
        as_guest(
            &app,
            Some(&session),
            Method::POST,
            &format!("/v1/carts/{guest_cart_id}/items"),
            Some(json!({ "product_id": product, "quantity": 2 })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let answer = ok_body(
        as_guest(
            &app,
            Some(&session),
            Method::POST,
            "/v1/sessions",
            Some(json!({ "email": "new-cart@example.com", "password": CUSTOMER_PASSWORD })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let user_cart: Uuid = answer["cart_id"].as_str().unwrap().parse().unwrap();
    let events = app.events(&user_cart.to_string()).await;
    assert_eq!(event_types(&events), ["CartOpened", "GuestCartMerged"]);
    assert_eq!(payload(&events[1])["summary"]["subtotal"], "71800.00");
}

#[tokio::test]
async fn a_login_with_a_malformed_cart_session_is_400_whatever_the_password() {
    let app = TestApp::spawn().await;
    for password in [CUSTOMER_PASSWORD, "wrong"] {
        problem(
            as_guest(
                &app,
                Some("not-ours"),
                Method::POST,
                "/v1/sessions",
                Some(json!({ "email": "nobody@example.com", "password": password })),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid-header",
        )
        .await;
    }
}

/// The cart's row in the sweeper's list, if it has one.
async fn deadline(app: &TestApp, cart: Uuid) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("SELECT expires_at FROM event_store.cart_deadlines WHERE cart_id = $1")
        .bind(cart.to_string())
        .fetch_optional(&app.db.pool)
        .await
        .unwrap()
}

/// A sweeper of the app's database; the app's own is switched off, so the
/// test alone drives sweeps, one at a time.
fn sweeper(app: &TestApp) -> CartExpiry {
    let personal = PersonalData::new(
        app.db.pool.clone(),
        &app.settings.personal_data,
        domain::personal::personal_fields,
        domain::personal::erased_value,
    )
    .unwrap();
    CartExpiry::new(
        app.store.clone(),
        Upcasters::default(),
        personal,
        app.settings.carts.expiry.clone(),
    )
}

async fn without_sweeper() -> TestApp {
    TestApp::spawn_with(|settings| settings.carts.expiry.enabled = false).await
}

#[tokio::test]
async fn a_cart_left_alone_past_its_expiry_is_expired_once_and_takes_no_more_changes() {
    let app = without_sweeper().await;
    let product = product_on_sale(&app, "CART-X").await;
    let (cart, session) = guest_cart(&app).await;
    let opened = deadline(&app, cart).await.expect("an open cart is listed");
    ok_body(
        as_guest(
            &app,
            Some(&session),
            Method::POST,
            &format!("/v1/carts/{cart}/items"),
            Some(json!({ "product_id": product, "quantity": 1 })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let expires_at = deadline(&app, cart).await.unwrap();
    assert!(expires_at >= opened, "a change moves the expiry");
    let events = app.events(&cart.to_string()).await;
    assert_eq!(
        payload(events.last().unwrap())["expires_at"],
        json!(expires_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        "the list holds the expiry the last event carries"
    );

    let mut sweeper = sweeper(&app);
    let early = sweeper
        .sweep(expires_at - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(early, Sweep::default(), "not due yet");
    let due = expires_at + Duration::seconds(1);
    let sweep = sweeper.sweep(due).await.unwrap();
    assert_eq!((sweep.expired, sweep.skipped), (1, 0));
    let events = app.events(&cart.to_string()).await;
    let expired = events.last().unwrap();
    assert_eq!(expired.event_type, "CartExpired");
    assert_eq!(expired.metadata.user_agent.as_deref(), Some("cart-expiry"));
    assert_eq!(
        deadline(&app, cart).await,
        None,
        "an expired cart leaves the list"
    );
    let again = sweeper.sweep(due + Duration::days(30)).await.unwrap();
    assert_eq!(again, Sweep::default(), "expired once");

    problem(
        as_guest(
            &app,
            Some(&session),
            Method::POST,
            &format!("/v1/carts/{cart}/items"),
            Some(json!({ "product_id": product, "quantity": 1 })),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cart-expired",
    )
    .await;
    // The guest may start over: the expired cart no longer holds the claim.
    let response = as_guest(
        &app,
        Some(&session),
        Method::POST,
        "/v1/carts",
        Some(json!({})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_sweeper_decides_on_the_stream_not_on_the_list() {
    let app = without_sweeper().await;
    let (cart, _) = guest_cart(&app).await;
    let expires_at = deadline(&app, cart).await.unwrap();
    // A list that says due while the stream says otherwise (a row behind
    // a change): the stream wins and nothing is appended.
    sqlx::query("UPDATE event_store.cart_deadlines SET expires_at = $1 WHERE cart_id = $2")
        .bind(expires_at - Duration::days(30))
        .bind(cart.to_string())
        .execute(&app.db.pool)
        .await
        .unwrap();
    let before = app.event_count().await;
    let sweep = sweeper(&app)
        .sweep(expires_at - Duration::days(1))
        .await
        .unwrap();
    assert_eq!((sweep.expired, sweep.skipped), (0, 1));
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn one_sweeper_holds_the_lease_at_a_time() {
    let app = without_sweeper().await;
    let (cart, _) = guest_cart(&app).await;
    let due = deadline(&app, cart).await.unwrap() + Duration::seconds(1);
    let (mut first, mut second) = (sweeper(&app), sweeper(&app));
    assert!(first.try_lead().await.unwrap());
    assert!(!second.try_lead().await.unwrap());
    assert_eq!(
        second.sweep(due).await.unwrap(),
        Sweep::default(),
        "without the lease, nothing is swept"
    );
    first.release().await;
    assert!(!first.is_sweeper());
    assert_eq!(second.sweep(due).await.unwrap().expired, 1);
    assert!(second.is_sweeper());
}
