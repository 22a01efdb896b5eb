//! Payments over HTTP against the sandbox PSP on loopback: cards that
//! succeed, fail or need action, its signed webhooks (late, twice, out of
//! order, forged, stale), and refunds that never pass the capture.

use std::time::Duration;

use command_api::payments::sandbox::{
    sign, SandboxHandle, SandboxServer, TestCard, SIGNATURE_HEADER,
};
use futures::future::join_all;
use infrastructure::testing::wait_for;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::checkout::{address, cart, checkout, payload, product};
use crate::support::*;

/// The app with a sandbox PSP of its own, whose webhooks come back to it.
struct Shop {
    app: TestApp,
    sandbox: String,
    _handle: SandboxHandle,
}

async fn shop() -> Shop {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox = format!("http://{}", listener.local_addr().unwrap());
    let url = sandbox.clone();
    let app = TestApp::spawn_with(move |settings| settings.payments.sandbox.url = url).await;
    let mut settings = app.settings.payments.sandbox.clone();
    settings.webhook_url = format!("{}/v1/payments/webhooks/sandbox", app.base);
    let (_, handle) = SandboxServer::start_on(listener, settings).unwrap();
    Shop {
        app,
        sandbox,
        _handle: handle,
    }
}

/// A customer's placed order of two units at 35900 (76876 with shipping and VAT).
async fn order(shop: &Shop, sku: &str) -> (reqwest::Client, Uuid) {
    let app = &shop.app;
    let product = product(app, sku, 10).await;
    let (customer, _) = app
        .customer(&format!("{}@example.com", sku.to_lowercase()))
        .await;
    let cart = cart(app, &customer, product, 2, None).await;
    let order = created_id(
        checkout(
            app,
            &customer,
            json!({ "cart_id": cart, "shipping_address": address(), "payment_method": "credit_card" }),
        )
        .await,
    )
    .await;
    (customer, order)
}

async fn pay(shop: &Shop, customer: &reqwest::Client, order: Uuid, card: &str) -> Value {
    let response = shop
        .app
        .send_as(
            customer,
            Method::POST,
            &format!("/v1/orders/{order}/payments"),
            Some(&json!({ "card_number": card })),
        )
        .await;
    ok_body(response, StatusCode::CREATED).await
}

/// The intent id the payment's events name.
async fn intent_of(app: &TestApp, payment: &str) -> String {
    app.events(payment)
        .await
        .iter()
        .find_map(|event| {
            payload(event)["provider_transaction_id"]
                .as_str()
                .map(str::to_owned)
        })
        .expect("a provider report")
}

/// The sandbox's webhook events of `object`, once `ready` holds for them.
async fn webhooks(shop: &Shop, object: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let client = reqwest::Client::new();
    let url = format!("{}/v1/test/webhooks?object_id={object}", shop.sandbox);
    wait_for("the sandbox's webhooks", Duration::from_secs(15), || {
        let (client, url) = (client.clone(), url.clone());
        let ready = &ready;
        async move {
            let listed: Value = client.get(url).send().await.ok()?.json().await.ok()?;
            let events = listed["data"].as_array()?.clone();
            ready(&events).then_some(events)
        }
    })
    .await
}

fn delivered(events: &[Value]) -> bool {
    !events.is_empty() && events.iter().all(|event| event["delivered"] == true)
}

async fn control(shop: &Shop, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", shop.sandbox))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap_or_default()
}

fn payment_status(app_events: &[infrastructure::event_store::RecordedEvent]) -> Option<String> {
    app_events
        .iter()
        .rev()
        .find(|event| event.event_type == "OrderPaymentStatusChanged")
        .and_then(|event| payload(event)["payment_status"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn a_card_payment_is_captured_once_however_often_its_webhook_comes() {
    let shop = shop().await;
    let (customer, order) = order(&shop, "PAY-1").await;
    let answer = pay(&shop, &customer, order, TestCard::SUCCEEDS).await;
    assert_eq!(answer["status"], "completed", "{answer}");
    let payment = answer["payment_id"].as_str().unwrap().to_owned();
    let intent = intent_of(&shop.app, &payment).await;
    let events = webhooks(&shop, &intent, delivered).await;
    // The webhook found the payment already completed: nothing more.
    let before = shop.app.event_count().await;
    let again = control(
        &shop,
        &format!(
            "/v1/test/webhooks/{}/redeliver",
            events[0]["id"].as_str().unwrap()
        ),
        json!({}),
    )
    .await;
    assert_eq!(again["delivered"], true, "{again}");
    assert_eq!(
        shop.app.event_count().await,
        before,
        "a redelivery changes nothing"
    );
    assert_eq!(
        event_types(&shop.app.events(&payment).await),
        ["PaymentInitiated", "PaymentCompleted"]
    );
    let order_events = shop.app.events(&order.to_string()).await;
    assert_eq!(payment_status(&order_events).as_deref(), Some("paid"));
    // One active payment per order: a captured one holds it.
    let response = shop
        .app
        .send_as(
            &customer,
            Method::POST,
            &format!("/v1/orders/{order}/payments"),
            Some(&json!({ "card_number": TestCard::SUCCEEDS })),
        )
        .await;
    problem(response, StatusCode::UNPROCESSABLE_ENTITY, "payment-exists").await;
}

#[tokio::test]
async fn a_declined_card_fails_and_frees_the_order_for_another_payment() {
    let shop = shop().await;
    let (customer, order) = order(&shop, "PAY-2").await;
    let declined = pay(&shop, &customer, order, TestCard::DECLINED).await;
    assert_eq!(declined["status"], "failed");
    let order_events = shop.app.events(&order.to_string()).await;
    assert_eq!(payment_status(&order_events).as_deref(), Some("failed"));
    let paid = pay(&shop, &customer, order, TestCard::SUCCEEDS).await;
    assert_eq!(paid["status"], "completed");
    assert_ne!(paid["payment_id"], declined["payment_id"]);
    let order_events = shop.app.events(&order.to_string()).await;
    assert_eq!(payment_status(&order_events).as_deref(), Some("paid"));
}

#[tokio::test]
async fn a_payment_that_needs_action_completes_by_its_webhook_even_delivered_twice() {
    let shop = shop().await;
    let (customer, order) = order(&shop, "PAY-3").await;
    control(&shop, "/v1/test/webhooks/hold", json!({ "hold": true })).await;
    let answer = pay(&shop, &customer, order, TestCard::REQUIRES_ACTION).await;
    assert_eq!(answer["status"], "processing", "{answer}");
    let payment = answer["payment_id"].as_str().unwrap().to_owned();
    let intent = intent_of(&shop.app, &payment).await;
    control(
        &shop,
        &format!("/v1/test/payment_intents/{intent}/complete"),
        json!({ "outcome": "succeeded" }),
    )
    .await;
    let held = webhooks(&shop, &intent, |events| !events.is_empty()).await;
    let event = held[0]["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let answer = control(
            &shop,
            &format!("/v1/test/webhooks/{event}/redeliver"),
            json!({}),
        )
        .await;
        assert_eq!(answer["delivered"], true, "{answer}");
    }
    assert_eq!(
        event_types(&shop.app.events(&payment).await),
        [
            "PaymentInitiated",
            "PaymentProcessingStarted",
            "PaymentCompleted"
        ]
    );
    let order_events = shop.app.events(&order.to_string()).await;
    assert_eq!(payment_status(&order_events).as_deref(), Some("paid"));
}

#[tokio::test]
async fn a_refund_webhook_before_the_payments_own_is_applied_in_order() {
    let shop = shop().await;
    let (customer, order) = order(&shop, "PAY-4").await;
    let answer = pay(&shop, &customer, order, TestCard::SUCCEEDS).await;
    let payment = answer["payment_id"].as_str().unwrap().to_owned();
    let refund = shop
        .app
        .post(
            &format!("/v1/payments/{payment}/refunds"),
            &json!({ "amount": "1000.00", "reason": "One unit back" }),
        )
        .await;
    ok_body(refund, StatusCode::CREATED).await;
    let events = shop.app.events(&payment).await;
    assert_eq!(
        event_types(&events),
        [
            "PaymentInitiated",
            "PaymentCompleted",
            "RefundRequested",
            "RefundCompleted"
        ]
    );
    let order_events = shop.app.events(&order.to_string()).await;
    assert_eq!(
        payment_status(&order_events).as_deref(),
        Some("partially_refunded")
    );
    // Every webhook again, the refund's first: nothing changes.
    let intent = intent_of(&shop.app, &payment).await;
    let mut all = webhooks(&shop, &intent, delivered).await;
    all.reverse();
    let before = shop.app.event_count().await;
    for event in all {
        let id = event["id"].as_str().unwrap();
        control(
            &shop,
            &format!("/v1/test/webhooks/{id}/redeliver"),
            json!({}),
        )
        .await;
    }
    assert_eq!(shop.app.event_count().await, before);
}

#[tokio::test]
async fn refunds_go_up_to_the_capture_and_never_past_it_even_at_once() {
    let shop = shop().await;
    let (customer, order) = order(&shop, "PAY-5").await;
    let answer = pay(&shop, &customer, order, TestCard::SUCCEEDS).await;
    let payment = answer["payment_id"].as_str().unwrap().to_owned();
    let refunds = format!("/v1/payments/{payment}/refunds");
    // 76876 captured: ten refunds of 20000 at once, of which three fit.
    let each = json!({ "amount": "20000.00" });
    let answers = join_all((0..10).map(|_| shop.app.post(&refunds, &each))).await;
    let mut placed = 0;
    for response in answers {
        match response.status() {
            StatusCode::CREATED => placed += 1,
            status => {
                let body: Value = response.json().await.unwrap();
                assert!(
                    status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::CONFLICT,
                    "{status}: {body}"
                );
            }
        }
    }
    assert!(placed <= 3, "{placed} refunds of 20000 out of 76876");
    let completed: Vec<Value> = shop
        .app
        .events(&payment)
        .await
        .iter()
        .filter(|event| event.event_type == "RefundCompleted")
        .map(|event| payload(event).clone())
        .collect();
    assert_eq!(completed.len(), placed);
    let refunded: rust_decimal::Decimal = completed
        .iter()
        .map(|event| {
            event["amount"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert!(refunded <= rust_decimal::Decimal::from(76876), "{refunded}");

    // The rest, exactly, refunds the whole payment; a satang more does not fit.
    let rest = rust_decimal::Decimal::from(76876) - refunded;
    ok_body(
        shop.app
            .post(&refunds, &json!({ "amount": rest.to_string() }))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let order_events = shop.app.events(&order.to_string()).await;
    assert_eq!(payment_status(&order_events).as_deref(), Some("refunded"));
    let over = problem(
        shop.app.post(&refunds, &json!({ "amount": "0.01" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "payment-not-refundable",
    )
    .await;
    assert_eq!(over["payment_status"], "refunded");
    // A customer cannot refund.
    let response = shop
        .app
        .send_as(
            &customer,
            Method::POST,
            &refunds,
            Some(&json!({ "amount": "1.00" })),
        )
        .await;
    problem(response, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn webhooks_unsigned_forged_or_stale_are_refused() {
    let shop = shop().await;
    let (customer, order) = order(&shop, "PAY-6").await;
    let answer = pay(&shop, &customer, order, TestCard::SUCCEEDS).await;
    let payment = answer["payment_id"].as_str().unwrap().to_owned();
    let intent = intent_of(&shop.app, &payment).await;
    webhooks(&shop, &intent, delivered).await;
    let body = json!({
        "id": "evt_forged", "type": "payment.failed", "created": chrono::Utc::now().timestamp(),
        "data": { "object": { "id": intent, "object": "payment_intent", "amount": "76876.00",
            "currency": "THB", "status": "failed",
            "metadata": { "payment_id": payment, "order_id": order } } }
    })
    .to_string();
    let url = format!("{}/v1/payments/webhooks/sandbox", shop.app.base);
    let client = reqwest::Client::new();
    let send = |signature: Option<String>| {
        let mut request = client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body.clone());
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        request.send()
    };
    let now = chrono::Utc::now().timestamp();
    let wrong: secrecy::SecretString = "whsec_not_the_shops".to_owned().into();
    let secret = shop.app.settings.payments.sandbox.webhook_secret.clone();
    for signature in [
        None,
        Some(sign(&wrong, now, body.as_bytes())),
        Some(sign(&secret, now - 3600, body.as_bytes())),
    ] {
        let response = send(signature).await.unwrap();
        problem(response, StatusCode::BAD_REQUEST, "invalid-header").await;
    }
    assert_eq!(
        event_types(&shop.app.events(&payment).await),
        ["PaymentInitiated", "PaymentCompleted"],
        "nothing forged got in"
    );
    let unknown = reqwest::Client::new()
        .post(format!("{}/v1/payments/webhooks/stripe", shop.app.base))
        .body("{}")
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    problem(unknown, StatusCode::NOT_FOUND, "not-found").await;
}
