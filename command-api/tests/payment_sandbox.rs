//! The contract of the payment-provider port (`payments::provider`), run
//! against the real adapter (`SandboxProvider`) and the real sandbox PSP
//! over loopback. Each test starts its own sandbox on 127.0.0.1:0 and a
//! small webhook receiver on 127.0.0.1:0 that keeps every delivery, and
//! verifies what arrives with the adapter, as the command API does. No
//! server of `scripts/services` is needed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use command_api::payments::provider::{
    IntentRequest, IntentState, PaymentProvider, ProviderError, RefundRequest, RefundState,
    WebhookError, WebhookEvent, WebhookKind,
};
use command_api::payments::sandbox::{
    sign, SandboxHandle, SandboxServer, TestCard, DELIVERY_ATTEMPTS, SIGNATURE_HEADER,
};
use command_api::payments::sandbox_client::SandboxProvider;
use domain::values::Money;
use infrastructure::settings::{SandboxSettings, Settings};
use infrastructure::testing::wait_for;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(15);
const WEBHOOK_PATH: &str = "/v1/payments/webhooks/sandbox";

#[derive(Clone)]
struct Delivery {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Receiver {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// Deliveries still to answer 500.
    failures: Arc<AtomicU32>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver
        .deliveries
        .lock()
        .unwrap()
        .push(Delivery { headers, body });
    let refuse = receiver
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refuse {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

struct Harness {
    settings: SandboxSettings,
    provider: SandboxProvider,
    receiver: Receiver,
    http: reqwest::Client,
    base: String,
    _sandbox: SandboxHandle,
}

async fn start() -> Harness {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_address = listener.local_addr().unwrap();
    let app = Router::new()
        .route(WEBHOOK_PATH, post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut settings = Settings::load(8080, None).unwrap().payments.sandbox;
    settings.host = "127.0.0.1".into();
    settings.port = 0;
    settings.webhook_url = format!("http://{receiver_address}{WEBHOOK_PATH}");
    settings.webhook_secret = SecretString::from(format!("whsec_test_{}", Uuid::new_v4()));
    settings.timeout_ms = 2000;
    let (address, sandbox) = SandboxServer::start(settings.clone()).await.unwrap();
    settings.url = format!("http://{address}");
    Harness {
        provider: SandboxProvider::new(&settings).unwrap(),
        settings,
        receiver,
        http: reqwest::Client::new(),
        base: format!("http://{address}"),
        _sandbox: sandbox,
    }
}

fn money(amount: &str) -> Money {
    Money::new(amount.parse::<Decimal>().unwrap()).unwrap()
}

fn card(number: &str, amount: &str) -> IntentRequest {
    IntentRequest {
        payment_id: Uuid::now_v7(),
        order_id: Uuid::now_v7(),
        amount: money(amount),
        currency: "THB".into(),
        method: "credit_card".into(),
        card_number: Some(number.into()),
    }
}

fn refund_of(intent: &IntentRequest, provider_payment_id: &str, amount: &str) -> RefundRequest {
    RefundRequest {
        refund_id: Uuid::now_v7(),
        payment_id: intent.payment_id,
        provider_payment_id: provider_payment_id.into(),
        amount: money(amount),
    }
}

impl Harness {
    fn deliveries(&self) -> Vec<Delivery> {
        self.receiver.deliveries.lock().unwrap().clone()
    }

    /// Every delivery so far, verified by the adapter now.
    fn events(&self) -> Vec<WebhookEvent> {
        self.deliveries()
            .iter()
            .map(|d| {
                self.provider
                    .verify_webhook(&d.headers, &d.body, Utc::now())
                    .expect("every delivery verifies")
            })
            .collect()
    }

    /// The verified deliveries once `done` holds of them.
    async fn wait_events(
        &self,
        what: &str,
        done: impl Fn(&[WebhookEvent]) -> bool,
    ) -> Vec<WebhookEvent> {
        wait_for(what, DEADLINE, || {
            let events = self.events();
            let ready = done(&events);
            async move { ready.then_some(events) }
        })
        .await
    }

    /// The verified deliveries about one intent, once there are `n`.
    async fn wait_for_intent(&self, provider_payment_id: &str, n: usize) -> Vec<WebhookEvent> {
        let about = |events: &[WebhookEvent]| -> Vec<WebhookEvent> {
            events
                .iter()
                .filter(|e| e.provider_payment_id == provider_payment_id)
                .cloned()
                .collect()
        };
        let events = self
            .wait_events(
                &format!("{n} webhooks of {provider_payment_id}"),
                |events| about(events).len() >= n,
            )
            .await;
        about(&events)
    }

    async fn control(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn complete(&self, intent: &str, body: Value) -> (StatusCode, Value) {
        self.control(&format!("/v1/test/payment_intents/{intent}/complete"), body)
            .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// The sandbox's record of the events about one intent or refund.
    async fn recorded_events(&self, object_id: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/v1/test/webhooks?object_id={object_id}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        body["data"].as_array().unwrap().clone()
    }

    async fn intent(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/payment_intents/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A raw request to the sandbox's API.
    async fn raw(&self, path: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

fn failed(reason: &str) -> IntentState {
    IntentState::Failed {
        reason: reason.into(),
    }
}

#[tokio::test]
async fn the_adapter_is_named_sandbox() {
    let h = start().await;
    assert_eq!(h.provider.name(), "sandbox");
}

#[tokio::test]
async fn the_succeeding_card_is_captured_at_once_then_reported() {
    let h = start().await;
    let request = card(TestCard::SUCCEEDS, "1250.50");
    let intent = h.provider.create_intent(request.clone()).await.unwrap();
    assert_eq!(intent.state, IntentState::Succeeded);
    assert!(intent.provider_payment_id.starts_with("pi_"));
    assert_eq!(intent.next_action, None);
    assert_eq!(intent.raw["status"], "succeeded");
    assert_eq!(intent.raw["amount"], "1250.50");
    assert_eq!(intent.raw["card_last4"], "4242");

    let events = h.wait_for_intent(&intent.provider_payment_id, 1).await;
    let event = &events[0];
    assert!(event.event_id.starts_with("evt_"));
    assert_eq!(event.kind, WebhookKind::PaymentSucceeded);
    assert_eq!(event.payment_id, request.payment_id);
    assert_eq!(event.amount, request.amount);
    assert_eq!(event.refund_id, None);
    assert_eq!(event.provider_refund_id, None);
    assert_eq!(
        event.raw["data"]["object"]["metadata"]["order_id"],
        request.order_id.to_string()
    );
    assert!((Utc::now() - event.sent_at).num_seconds().abs() <= 5);
    assert_eq!(
        h.intent(&intent.provider_payment_id).await["status"],
        "succeeded"
    );
}

#[tokio::test]
async fn the_declined_card_fails_at_once_then_is_reported() {
    let h = start().await;
    let request = card(TestCard::DECLINED, "99.00");
    let intent = h.provider.create_intent(request.clone()).await.unwrap();
    assert_eq!(intent.state, failed("card_declined"));

    let events = h.wait_for_intent(&intent.provider_payment_id, 1).await;
    assert_eq!(events[0].kind, WebhookKind::PaymentFailed);
    assert_eq!(events[0].payment_id, request.payment_id);
    assert_eq!(
        events[0].raw["data"]["object"]["failure_reason"],
        "card_declined"
    );
}

#[tokio::test]
async fn an_incorrect_card_number_is_a_failed_intent_not_an_error() {
    let h = start().await;
    let request = card("4111111111111111", "10.00");
    let intent = h.provider.create_intent(request.clone()).await.unwrap();
    assert_eq!(intent.state, failed("incorrect_number"));
    assert_eq!(intent.raw["error"]["type"], "card_error");

    let events = h.wait_for_intent(&intent.provider_payment_id, 1).await;
    assert_eq!(events[0].kind, WebhookKind::PaymentFailed);
    assert_eq!(events[0].payment_id, request.payment_id);
    assert_eq!(
        h.intent(&intent.provider_payment_id).await["status"],
        "failed"
    );
}

#[tokio::test]
async fn the_confirmation_card_waits_until_the_control_call_decides() {
    let h = start().await;
    let succeeds = card(TestCard::REQUIRES_ACTION, "500.00");
    let fails = card(TestCard::REQUIRES_ACTION, "600.00");
    let first = h.provider.create_intent(succeeds.clone()).await.unwrap();
    let second = h.provider.create_intent(fails.clone()).await.unwrap();
    assert_eq!(first.state, IntentState::Pending);
    assert_eq!(second.state, IntentState::Pending);
    assert_eq!(
        first.next_action.as_ref().unwrap()["type"],
        "redirect_to_url"
    );
    // Nothing is reported before the customer confirms.
    assert!(h
        .recorded_events(&first.provider_payment_id)
        .await
        .is_empty());

    let (status, body) = h
        .complete(&first.provider_payment_id, json!({"outcome": "succeeded"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = h
        .complete(&second.provider_payment_id, json!({"outcome": "failed"}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let events = h.wait_for_intent(&first.provider_payment_id, 1).await;
    assert_eq!(events[0].kind, WebhookKind::PaymentSucceeded);
    assert_eq!(events[0].event_id, body["event_id"]);
    assert_eq!(events[0].payment_id, succeeds.payment_id);
    let events = h.wait_for_intent(&second.provider_payment_id, 1).await;
    assert_eq!(events[0].kind, WebhookKind::PaymentFailed);
    assert_eq!(
        events[0].raw["data"]["object"]["failure_reason"],
        "authentication_failed"
    );

    // A decided intent cannot be decided again.
    let (status, body) = h
        .complete(&first.provider_payment_id, json!({"outcome": "failed"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "payment_intent_unexpected_state");
}

#[tokio::test]
async fn promptpay_shows_a_qr_then_completes_when_scanned() {
    let h = start().await;
    let request = IntentRequest {
        method: "promptpay".into(),
        card_number: None,
        ..card("", "359.00")
    };
    let intent = h.provider.create_intent(request.clone()).await.unwrap();
    assert_eq!(intent.state, IntentState::Pending);
    let next = intent.next_action.expect("a QR to scan");
    assert_eq!(next["type"], "promptpay_qr");
    let payload = next["qr_payload"].as_str().unwrap();
    assert!(payload.starts_with("000201"), "{payload}");
    assert!(payload.contains("5406359.00"), "{payload}");

    let (status, _) = h
        .complete(&intent.provider_payment_id, json!({"outcome": "succeeded"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let events = h.wait_for_intent(&intent.provider_payment_id, 1).await;
    assert_eq!(events[0].kind, WebhookKind::PaymentSucceeded);
    assert_eq!(events[0].payment_id, request.payment_id);
    assert_eq!(events[0].amount, money("359.00"));
    let stored = h.intent(&intent.provider_payment_id).await;
    assert_eq!(stored["status"], "succeeded");
    assert_eq!(stored["next_action"], Value::Null);
}

#[tokio::test]
async fn one_payment_id_makes_one_intent_however_often_it_is_sent() {
    let h = start().await;
    let request = card(TestCard::SUCCEEDS, "42.00");
    let (first, second) = tokio::join!(
        h.provider.create_intent(request.clone()),
        h.provider.create_intent(request.clone()),
    );
    let third = h.provider.create_intent(request.clone()).await.unwrap();
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.provider_payment_id, second.provider_payment_id);
    assert_eq!(first.provider_payment_id, third.provider_payment_id);
    assert_eq!(third.state, IntentState::Succeeded);
    let recorded = h.recorded_events(&first.provider_payment_id).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");

    // The same key for another payment is a mistake the provider refuses.
    let other = IntentRequest {
        amount: money("43.00"),
        ..request
    };
    assert!(matches!(
        h.provider.create_intent(other).await,
        Err(ProviderError::Refused(_))
    ));
}

#[tokio::test]
async fn malformed_requests_are_refused_with_an_error_document() {
    let h = start().await;
    let unknown_method = IntentRequest {
        method: "bitcoin".into(),
        ..card(TestCard::SUCCEEDS, "10.00")
    };
    let zero = card(TestCard::SUCCEEDS, "0");
    let dollars = IntentRequest {
        currency: "USD".into(),
        ..card(TestCard::SUCCEEDS, "10.00")
    };
    let no_card = IntentRequest {
        card_number: None,
        ..card(TestCard::SUCCEEDS, "10.00")
    };
    for request in [unknown_method, zero, dollars, no_card] {
        let answer = h.provider.create_intent(request.clone()).await;
        assert!(
            matches!(answer, Err(ProviderError::Refused(_))),
            "{request:?}: {answer:?}"
        );
    }

    let body = json!({"amount": "ten", "currency": "THB", "method": "promptpay"});
    let (status, error) = h.raw("/v1/payment_intents", Some("k1"), body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "invalid_amount");
    let (status, error) = h.raw("/v1/payment_intents", None, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "idempotency_key_missing");
    let (status, error) = h
        .raw(
            "/v1/payment_intents",
            Some("k2"),
            json!({"amount": "1.00", "currency": "THB", "method": "cash"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "payment_method_invalid");
    let (status, error) = h.get("/v1/payment_intents/pi_nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["code"], "resource_missing");
}

#[tokio::test]
async fn refunds_go_up_to_the_capture_and_not_a_satang_beyond() {
    let h = start().await;
    let request = card(TestCard::SUCCEEDS, "100.00");
    let intent = h.provider.create_intent(request.clone()).await.unwrap();
    let pi = intent.provider_payment_id.clone();

    // Above the capture: refused, and nothing happens.
    let too_much = refund_of(&request, &pi, "100.01");
    assert!(matches!(
        h.provider.refund(too_much).await,
        Err(ProviderError::Refused(message)) if message.contains("amount_too_large")
    ));

    let partial = refund_of(&request, &pi, "30.00");
    let first = h.provider.refund(partial.clone()).await.unwrap();
    assert_eq!(first.state, RefundState::Succeeded);
    assert!(first.provider_refund_id.starts_with("re_"));
    // Above what is left.
    assert!(matches!(
        h.provider.refund(refund_of(&request, &pi, "70.01")).await,
        Err(ProviderError::Refused(_))
    ));
    let rest = refund_of(&request, &pi, "70.00");
    let second = h.provider.refund(rest.clone()).await.unwrap();
    assert_eq!(second.state, RefundState::Succeeded);
    assert!(matches!(
        h.provider.refund(refund_of(&request, &pi, "0.01")).await,
        Err(ProviderError::Refused(_))
    ));
    assert_eq!(h.intent(&pi).await["amount_refunded"], "100.00");

    let events = h.wait_for_intent(&pi, 3).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0].kind, WebhookKind::PaymentSucceeded);
    let refunds: Vec<_> = events
        .iter()
        .filter(|e| e.kind == WebhookKind::RefundSucceeded)
        .collect();
    assert_eq!(refunds.len(), 2);
    for (refund, answered) in [(&partial, &first), (&rest, &second)] {
        let event = refunds
            .iter()
            .find(|e| e.refund_id == Some(refund.refund_id))
            .expect("a webhook per refund");
        assert_eq!(event.payment_id, request.payment_id);
        assert_eq!(event.provider_payment_id, pi);
        assert_eq!(
            event.provider_refund_id.as_deref(),
            Some(answered.provider_refund_id.as_str())
        );
        assert_eq!(event.amount, refund.amount);
    }
}

#[tokio::test]
async fn one_refund_id_makes_one_refund() {
    let h = start().await;
    let request = card(TestCard::SUCCEEDS, "80.00");
    let intent = h.provider.create_intent(request.clone()).await.unwrap();
    let refund = refund_of(&request, &intent.provider_payment_id, "80.00");
    let first = h.provider.refund(refund.clone()).await.unwrap();
    // A repeat of a full refund is not a second one (which would be refused).
    let again = h.provider.refund(refund.clone()).await.unwrap();
    assert_eq!(first.provider_refund_id, again.provider_refund_id);
    assert_eq!(again.state, RefundState::Succeeded);
    assert_eq!(h.recorded_events(&first.provider_refund_id).await.len(), 1);
}

#[tokio::test]
async fn the_refund_failing_card_accepts_a_refund_then_reports_its_failure() {
    let h = start().await;
    let request = card(TestCard::REFUNDS_FAIL, "250.00");
    let intent = h.provider.create_intent(request.clone()).await.unwrap();
    assert_eq!(intent.state, IntentState::Succeeded);
    let refund = refund_of(&request, &intent.provider_payment_id, "250.00");
    let answered = h.provider.refund(refund.clone()).await.unwrap();
    assert_eq!(answered.state, RefundState::Pending);

    let events = h.wait_for_intent(&intent.provider_payment_id, 2).await;
    let failed = events
        .iter()
        .find(|e| e.kind == WebhookKind::RefundFailed)
        .expect("refund.failed");
    assert_eq!(failed.refund_id, Some(refund.refund_id));
    assert_eq!(
        failed.provider_refund_id.as_deref(),
        Some(answered.provider_refund_id.as_str())
    );
    assert_eq!(failed.amount, refund.amount);
    assert_eq!(failed.raw["data"]["object"]["failure_reason"], "declined");
    // What a failed refund took is free again.
    assert_eq!(
        h.intent(&intent.provider_payment_id).await["amount_refunded"],
        "0.00"
    );
    let retry = refund_of(&request, &intent.provider_payment_id, "250.00");
    assert_eq!(
        h.provider.refund(retry).await.unwrap().state,
        RefundState::Pending
    );
}

#[tokio::test]
async fn a_payment_not_captured_cannot_be_refunded() {
    let h = start().await;
    let request = card(TestCard::REQUIRES_ACTION, "20.00");
    let intent = h.provider.create_intent(request.clone()).await.unwrap();
    let refund = refund_of(&request, &intent.provider_payment_id, "20.00");
    assert!(matches!(
        h.provider.refund(refund).await,
        Err(ProviderError::Refused(message)) if message.contains("payment_intent_unexpected_state")
    ));
    let unknown = refund_of(&request, "pi_unknown", "20.00");
    assert!(matches!(
        h.provider.refund(unknown).await,
        Err(ProviderError::Refused(_))
    ));
}

#[tokio::test]
async fn only_an_untouched_fresh_delivery_signed_with_the_secret_verifies() {
    let h = start().await;
    let intent = h
        .provider
        .create_intent(card(TestCard::SUCCEEDS, "15.00"))
        .await
        .unwrap();
    h.wait_for_intent(&intent.provider_payment_id, 1).await;
    let delivery = h.deliveries().remove(0);
    let (headers, body) = (&delivery.headers, &delivery.body);
    let now = Utc::now();
    let event = h.provider.verify_webhook(headers, body, now).unwrap();

    // A changed body.
    let mut tampered = body.to_vec();
    let at = tampered.iter().position(|b| *b == b'5').unwrap();
    tampered[at] = b'9';
    assert_eq!(
        h.provider.verify_webhook(headers, &tampered, now),
        Err(WebhookError::BadSignature)
    );
    // Another secret.
    let mut other = h.settings.clone();
    other.webhook_secret = SecretString::from("whsec_someone_else".to_owned());
    let stranger = SandboxProvider::new(&other).unwrap();
    assert_eq!(
        stranger.verify_webhook(headers, body, now),
        Err(WebhookError::BadSignature)
    );
    // No signature, or one that does not parse.
    assert_eq!(
        h.provider.verify_webhook(&HeaderMap::new(), body, now),
        Err(WebhookError::MissingSignature)
    );
    for garbage in ["nonsense", "t=abc,v1=00", "v1=00", "t=1"] {
        let mut headers = headers.clone();
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_static(garbage));
        assert_eq!(
            h.provider.verify_webhook(&headers, body, now),
            Err(WebhookError::BadSignature),
            "{garbage}"
        );
    }

    // Signed at the edge of the tolerance, and beyond it either way.
    let tolerance = h.settings.webhook_tolerance_seconds as i64;
    let signed_at = event.sent_at;
    let at_edge = signed_at + chrono::Duration::seconds(tolerance);
    assert!(h.provider.verify_webhook(headers, body, at_edge).is_ok());
    let later = signed_at + chrono::Duration::seconds(tolerance + 1);
    assert_eq!(
        h.provider.verify_webhook(headers, body, later),
        Err(WebhookError::Stale {
            age_seconds: tolerance + 1
        })
    );
    let earlier = signed_at - chrono::Duration::seconds(tolerance + 1);
    assert_eq!(
        h.provider.verify_webhook(headers, body, earlier),
        Err(WebhookError::Stale {
            age_seconds: -(tolerance + 1)
        })
    );
    // A replay of an old delivery, validly signed an hour ago.
    let mut replayed = HeaderMap::new();
    let old = now.timestamp() - 3600;
    replayed.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_str(&sign(&h.settings.webhook_secret, old, body)).unwrap(),
    );
    assert_eq!(
        h.provider.verify_webhook(&replayed, body, now),
        Err(WebhookError::Stale { age_seconds: 3600 })
    );
    // A second signature (a rotated secret) beside the right one.
    let mut rotated = HeaderMap::new();
    let right = sign(&h.settings.webhook_secret, now.timestamp(), body);
    let v1 = right.split_once(",v1=").unwrap().1;
    rotated.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_str(&format!(
            "t={},v1={},v1={v1}",
            now.timestamp(),
            "ab".repeat(32)
        ))
        .unwrap(),
    );
    assert!(h.provider.verify_webhook(&rotated, body, now).is_ok());
    // A signed body that is no event of this provider.
    let strange = br#"{"id":"evt_1","type":"charge.dispute.created","data":{"object":{}}}"#;
    let mut signed = HeaderMap::new();
    signed.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_str(&sign(&h.settings.webhook_secret, now.timestamp(), strange)).unwrap(),
    );
    assert!(matches!(
        h.provider.verify_webhook(&signed, strange, now),
        Err(WebhookError::Malformed(_))
    ));
}

#[tokio::test]
async fn a_redelivery_is_the_same_event_freshly_signed() {
    let h = start().await;
    let intent = h
        .provider
        .create_intent(card(TestCard::DECLINED, "12.00"))
        .await
        .unwrap();
    let first = h
        .wait_for_intent(&intent.provider_payment_id, 1)
        .await
        .remove(0);
    let (status, body) = h
        .control(
            &format!("/v1/test/webhooks/{}/redeliver", first.event_id),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The control answers once the receiver did.
    assert_eq!(body["delivered"], true);
    assert_eq!(body["event"]["attempts"], 2);
    let deliveries = h.deliveries();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0].body, deliveries[1].body);
    let events = h.events();
    assert_eq!(events[1].event_id, first.event_id);
    assert_eq!(events[1].kind, WebhookKind::PaymentFailed);

    let (status, body) = h
        .control("/v1/test/webhooks/evt_unknown/redeliver", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn a_refused_delivery_is_retried_with_the_same_event() {
    let h = start().await;
    h.receiver.failures.store(2, Ordering::SeqCst);
    let intent = h
        .provider
        .create_intent(card(TestCard::SUCCEEDS, "77.00"))
        .await
        .unwrap();
    let events = h.wait_for_intent(&intent.provider_payment_id, 3).await;
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.event_id == events[0].event_id));
    let recorded = wait_for("the delivery recorded", DEADLINE, || async {
        let recorded = h.recorded_events(&intent.provider_payment_id).await;
        (recorded[0]["delivered"] == true).then_some(recorded)
    })
    .await;
    assert_eq!(recorded[0]["attempts"], 3);
    assert_eq!(recorded[0]["last_result"], "204");
}

#[tokio::test]
async fn a_receiver_that_never_takes_it_gets_a_bounded_number_of_tries() {
    let h = start().await;
    h.receiver.failures.store(u32::MAX, Ordering::SeqCst);
    let intent = h
        .provider
        .create_intent(card(TestCard::SUCCEEDS, "5.00"))
        .await
        .unwrap();
    let tries = DELIVERY_ATTEMPTS as usize;
    h.wait_for_intent(&intent.provider_payment_id, tries).await;
    let recorded = wait_for("the last try recorded", DEADLINE, || async {
        let recorded = h.recorded_events(&intent.provider_payment_id).await;
        (recorded[0]["attempts"] == DELIVERY_ATTEMPTS).then_some(recorded)
    })
    .await;
    assert_eq!(recorded[0]["delivered"], false);
    assert_eq!(recorded[0]["last_result"], "500");
    assert_eq!(h.deliveries().len(), tries);
}

#[tokio::test]
async fn held_events_go_out_in_the_order_the_test_chooses() {
    let h = start().await;
    let (status, _) = h
        .control("/v1/test/webhooks/hold", json!({"hold": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let request = card(TestCard::SUCCEEDS, "300.00");
    let intent = h.provider.create_intent(request.clone()).await.unwrap();
    let refund = h
        .provider
        .refund(refund_of(&request, &intent.provider_payment_id, "300.00"))
        .await
        .unwrap();
    let payment_event = h.recorded_events(&intent.provider_payment_id).await;
    let refund_event = h.recorded_events(&refund.provider_refund_id).await;
    assert_eq!(payment_event[0]["held"], true);
    assert_eq!(refund_event[0]["attempts"], 0);
    assert!(h.deliveries().is_empty());

    // The refund's report first, then the payment's.
    for event in [&refund_event[0], &payment_event[0]] {
        let (status, body) = h
            .control(
                &format!(
                    "/v1/test/webhooks/{}/redeliver",
                    event["id"].as_str().unwrap()
                ),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["delivered"], true);
    }
    let kinds: Vec<_> = h.events().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [WebhookKind::RefundSucceeded, WebhookKind::PaymentSucceeded]
    );
}

#[tokio::test]
async fn a_completion_reported_after_a_later_refund_arrives_in_that_order() {
    let h = start().await;
    // Held, so the order of arrival is the test's, not the clock's.
    let (status, _) = h
        .control("/v1/test/webhooks/hold", json!({"hold": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let request = card(TestCard::REQUIRES_ACTION, "64.00");
    let intent = h.provider.create_intent(request.clone()).await.unwrap();
    let pi = intent.provider_payment_id.clone();
    let (status, completed) = h.complete(&pi, json!({"outcome": "succeeded"})).await;
    assert_eq!(status, StatusCode::OK);
    // Captured now, reported later: the refund's report overtakes it.
    let refund = h
        .provider
        .refund(refund_of(&request, &pi, "64.00"))
        .await
        .unwrap();
    assert_eq!(refund.state, RefundState::Succeeded);
    let refund_event = h.recorded_events(&refund.provider_refund_id).await;
    for event in [&refund_event[0]["id"], &completed["event_id"]] {
        let (status, body) = h
            .control(
                &format!("/v1/test/webhooks/{}/redeliver", event.as_str().unwrap()),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["delivered"], true);
    }
    let events = h.wait_for_intent(&pi, 2).await;
    assert_eq!(events[0].kind, WebhookKind::RefundSucceeded);
    assert_eq!(events[1].kind, WebhookKind::PaymentSucceeded);
    assert_eq!(events[1].event_id, completed["event_id"]);
}

#[tokio::test]
async fn an_outage_is_unavailable_and_a_lost_answer_is_found_again() {
    let h = start().await;
    let (status, _) = h.control("/v1/test/outage", json!({"requests": 1})).await;
    assert_eq!(status, StatusCode::OK);
    let before = card(TestCard::SUCCEEDS, "10.00");
    assert!(matches!(
        h.provider.create_intent(before.clone()).await,
        Err(ProviderError::Unavailable(_))
    ));
    // Nothing was made: the retry is the first intent.
    let retried = h.provider.create_intent(before).await.unwrap();
    assert_eq!(
        h.recorded_events(&retried.provider_payment_id).await.len(),
        1
    );

    // The intent is made but its answer lost; the retry finds it.
    h.control(
        "/v1/test/outage",
        json!({"requests": 1, "after_processing": true}),
    )
    .await;
    let after = card(TestCard::SUCCEEDS, "11.00");
    assert!(matches!(
        h.provider.create_intent(after.clone()).await,
        Err(ProviderError::Unavailable(_))
    ));
    let found = h.provider.create_intent(after.clone()).await.unwrap();
    assert_eq!(found.state, IntentState::Succeeded);
    assert_eq!(
        found.raw["metadata"]["payment_id"],
        after.payment_id.to_string()
    );
    let events = h.wait_events("the one webhook of the lost answer", |events| {
        events.iter().any(|e| e.payment_id == after.payment_id)
    });
    let about: Vec<_> = events
        .await
        .into_iter()
        .filter(|e| e.payment_id == after.payment_id)
        .collect();
    assert_eq!(about.len(), 1);
    assert_eq!(about[0].provider_payment_id, found.provider_payment_id);
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_or_never_answers_is_unavailable() {
    let h = start().await;
    // A port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    // A server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_address: SocketAddr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    for address in [closed, silent_address] {
        let mut settings = h.settings.clone();
        settings.url = format!("http://{address}");
        settings.timeout_ms = 300;
        let provider = SandboxProvider::new(&settings).unwrap();
        let request = card(TestCard::SUCCEEDS, "1.00");
        assert!(matches!(
            provider.create_intent(request.clone()).await,
            Err(ProviderError::Unavailable(_))
        ));
        assert!(matches!(
            provider.refund(refund_of(&request, "pi_x", "1.00")).await,
            Err(ProviderError::Unavailable(_))
        ));
    }
}
