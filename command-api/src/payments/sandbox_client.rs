//! The adapter of the sandbox payment service ([`super::sandbox`]):
//! [`PaymentProvider`] over HTTP.
//!
//! Every call is bounded by `payments.sandbox.timeout_ms` and carries its
//! platform id as the `Idempotency-Key` (the payment id for an intent, the
//! refund id for a refund), so a retry after a lost answer finds the first
//! intent or refund again. A connection error, a timeout or a 5xx is
//! [`ProviderError::Unavailable`] (try again); any other refusal (4xx) is
//! [`ProviderError::Refused`], except a card decline (402 with its intent),
//! which is an intent that failed.
//!
//! Webhooks are verified as Stripe's are: `Sandbox-Signature:
//! t=<unix>,v1=<hex>`, where the hex is HMAC-SHA256 of `"{t}.{body}"` under
//! the shared secret, compared in constant time; a timestamp further than
//! `webhook_tolerance_seconds` from now is refused as stale, which bounds
//! replays of a captured delivery.

use std::time::Duration;

use async_trait::async_trait;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use domain::values::Money;
use hmac::{Hmac, Mac};
use infrastructure::settings::SandboxSettings;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use super::provider::{
    Intent, IntentRequest, IntentState, PaymentProvider, ProviderError, ProviderRefund,
    RefundRequest, RefundState, WebhookError, WebhookEvent, WebhookKind,
};
use super::sandbox::SIGNATURE_HEADER;

/// The sandbox's adapter. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct SandboxProvider {
    http: reqwest::Client,
    base: String,
    secret: SecretString,
    tolerance_seconds: i64,
}

impl std::fmt::Debug for SandboxProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxProvider")
            .field("base", &self.base)
            .field("tolerance_seconds", &self.tolerance_seconds)
            .finish_non_exhaustive()
    }
}

impl SandboxProvider {
    /// An adapter calling `settings.url` and verifying webhooks with
    /// `settings.webhook_secret`.
    pub fn new(settings: &SandboxSettings) -> Result<Self, reqwest::Error> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self {
            http,
            base: settings.url.trim_end_matches('/').to_owned(),
            secret: settings.webhook_secret.clone(),
            tolerance_seconds: i64::try_from(settings.webhook_tolerance_seconds)
                .unwrap_or(i64::MAX),
        })
    }

    /// POSTs `body` under `key`; the status and JSON answer, or why none.
    async fn post(&self, path: &str, key: Uuid, body: Value) -> Result<Answer, ProviderError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Idempotency-Key", key.to_string())
            .json(&body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if status.is_server_error() {
            return Err(ProviderError::Unavailable(format!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let json: Value = serde_json::from_slice(&body).map_err(|_| {
            ProviderError::Unavailable(format!("{path} answered {status} with no JSON"))
        })?;
        Ok(Answer {
            status: status.as_u16(),
            json,
        })
    }
}

struct Answer {
    status: u16,
    json: Value,
}

fn unreachable(error: reqwest::Error) -> ProviderError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    ProviderError::Unavailable(format!("{what}: {error}"))
}

/// `{"error": {"code", "message"}}` as one line.
fn refusal(path: &str, answer: &Answer) -> ProviderError {
    let error = &answer.json["error"];
    ProviderError::Refused(format!(
        "{path} answered {}: {} ({})",
        answer.status,
        error["message"].as_str().unwrap_or("no message"),
        error["code"].as_str().unwrap_or("no code"),
    ))
}

/// An answer the sandbox never gives: the provider is not itself, which a
/// retry may mend.
fn unexpected(path: &str, what: &str) -> ProviderError {
    ProviderError::Unavailable(format!("{path} answered an unexpected body: {what}"))
}

fn intent_from(path: &str, object: &Value) -> Result<(String, IntentState), ProviderError> {
    let id = object["id"]
        .as_str()
        .ok_or_else(|| unexpected(path, "no intent id"))?
        .to_owned();
    let state = match object["status"].as_str() {
        Some("succeeded") => IntentState::Succeeded,
        Some("failed") => IntentState::Failed {
            reason: object["failure_reason"]
                .as_str()
                .unwrap_or("failed")
                .to_owned(),
        },
        Some("requires_action" | "processing") => IntentState::Pending,
        other => return Err(unexpected(path, &format!("intent status {other:?}"))),
    };
    Ok((id, state))
}

#[async_trait]
impl PaymentProvider for SandboxProvider {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn signature_header(&self) -> &'static str {
        super::sandbox::SIGNATURE_HEADER
    }

    async fn create_intent(&self, request: IntentRequest) -> Result<Intent, ProviderError> {
        const PATH: &str = "/v1/payment_intents";
        let mut body = json!({
            "amount": request.amount.to_string(),
            "currency": request.currency,
            "method": request.method,
            "metadata": {
                "payment_id": request.payment_id.to_string(),
                "order_id": request.order_id.to_string(),
            },
        });
        if let Some(card_number) = &request.card_number {
            body["card_number"] = json!(card_number);
        }
        let answer = self.post(PATH, request.payment_id, body).await?;
        match answer.status {
            200..=299 => {
                let (provider_payment_id, state) = intent_from(PATH, &answer.json)?;
                Ok(Intent {
                    provider_payment_id,
                    state,
                    next_action: answer
                        .json
                        .get("next_action")
                        .filter(|next| !next.is_null())
                        .cloned(),
                    raw: answer.json,
                })
            }
            // A decline: the intent failed, it is no error of the request.
            402 if answer.json["error"]["payment_intent"].is_object() => {
                let object = &answer.json["error"]["payment_intent"];
                let (provider_payment_id, _) = intent_from(PATH, object)?;
                let reason = answer.json["error"]["code"]
                    .as_str()
                    .or(object["failure_reason"].as_str())
                    .unwrap_or("card_error")
                    .to_owned();
                Ok(Intent {
                    provider_payment_id,
                    state: IntentState::Failed { reason },
                    next_action: None,
                    raw: answer.json,
                })
            }
            _ => Err(refusal(PATH, &answer)),
        }
    }

    async fn refund(&self, request: RefundRequest) -> Result<ProviderRefund, ProviderError> {
        const PATH: &str = "/v1/refunds";
        let body = json!({
            "payment_intent": request.provider_payment_id,
            "amount": request.amount.to_string(),
            "metadata": {
                "refund_id": request.refund_id.to_string(),
                "payment_id": request.payment_id.to_string(),
            },
        });
        let answer = self.post(PATH, request.refund_id, body).await?;
        if !(200..=299).contains(&answer.status) {
            return Err(refusal(PATH, &answer));
        }
        let provider_refund_id = answer.json["id"]
            .as_str()
            .ok_or_else(|| unexpected(PATH, "no refund id"))?
            .to_owned();
        let state = match answer.json["status"].as_str() {
            Some("succeeded") => RefundState::Succeeded,
            Some("pending") => RefundState::Pending,
            Some("failed") => RefundState::Failed {
                reason: answer.json["failure_reason"]
                    .as_str()
                    .unwrap_or("failed")
                    .to_owned(),
            },
            other => return Err(unexpected(PATH, &format!("refund status {other:?}"))),
        };
        Ok(ProviderRefund {
            provider_refund_id,
            state,
            raw: answer.json,
        })
    }

    fn verify_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookError> {
        let header = headers
            .get(SIGNATURE_HEADER)
            .ok_or(WebhookError::MissingSignature)?
            .to_str()
            .map_err(|_| WebhookError::BadSignature)?;
        let signature = Signature::parse(header).ok_or(WebhookError::BadSignature)?;
        if !signature.matches(&self.secret, body) {
            return Err(WebhookError::BadSignature);
        }
        let age_seconds = now.timestamp().saturating_sub(signature.timestamp);
        if age_seconds.saturating_abs() > self.tolerance_seconds {
            return Err(WebhookError::Stale { age_seconds });
        }
        let sent_at = DateTime::from_timestamp(signature.timestamp, 0)
            .ok_or(WebhookError::Stale { age_seconds })?;
        read_event(body, sent_at)
    }
}

/// A parsed `Sandbox-Signature`: its timestamp and every `v1` in it (more
/// than one while a secret is rotated).
struct Signature {
    timestamp: i64,
    v1: Vec<Vec<u8>>,
}

impl Signature {
    fn parse(header: &str) -> Option<Self> {
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", value)) => timestamp = Some(value.parse::<i64>().ok()?),
                Some(("v1", value)) => v1.push(unhex(value)?),
                // Other schemes are for other verifiers.
                _ => {}
            }
        }
        let timestamp = timestamp?;
        (!v1.is_empty()).then_some(Self { timestamp, v1 })
    }

    /// Whether any `v1` is the HMAC of `"{t}.{body}"`, compared in
    /// constant time.
    fn matches(&self, secret: &SecretString, body: &[u8]) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(self.timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        self.v1
            .iter()
            .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn read_event(body: &[u8], sent_at: DateTime<Utc>) -> Result<WebhookEvent, WebhookError> {
    let malformed = |what: &str| WebhookError::Malformed(what.to_owned());
    let raw: Value = serde_json::from_slice(body).map_err(|_| malformed("not JSON"))?;
    let event_id = raw["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| malformed("no event id"))?
        .to_owned();
    let kind = match raw["type"].as_str() {
        Some("payment.succeeded") => WebhookKind::PaymentSucceeded,
        Some("payment.failed") => WebhookKind::PaymentFailed,
        Some("refund.succeeded") => WebhookKind::RefundSucceeded,
        Some("refund.failed") => WebhookKind::RefundFailed,
        _ => return Err(malformed("unknown event type")),
    };
    let object = &raw["data"]["object"];
    let text = |field: &str| {
        object[field]
            .as_str()
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| WebhookError::Malformed(format!("data.object.{field} is missing")))
    };
    let uuid = |field: &str| {
        object["metadata"][field]
            .as_str()
            .and_then(|value| Uuid::parse_str(value).ok())
            .ok_or_else(|| {
                WebhookError::Malformed(format!("data.object.metadata.{field} is not a uuid"))
            })
    };
    let amount = object["amount"]
        .as_str()
        .and_then(|value| value.parse::<Decimal>().ok())
        .and_then(|value| Money::new(value).ok())
        .ok_or_else(|| malformed("data.object.amount is not an amount"))?;
    let (provider_payment_id, refund_id, provider_refund_id) = match kind {
        WebhookKind::PaymentSucceeded | WebhookKind::PaymentFailed => (text("id")?, None, None),
        WebhookKind::RefundSucceeded | WebhookKind::RefundFailed => (
            text("payment_intent")?,
            Some(uuid("refund_id")?),
            Some(text("id")?),
        ),
    };
    Ok(WebhookEvent {
        event_id,
        kind,
        provider_payment_id,
        payment_id: uuid("payment_id")?,
        refund_id,
        provider_refund_id,
        amount,
        sent_at,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_header_lists_its_timestamp_and_signatures() {
        let parsed = Signature::parse("t=12, v1=00ff ,v0=zz,v1=10").unwrap();
        assert_eq!(parsed.timestamp, 12);
        assert_eq!(parsed.v1, vec![vec![0, 255], vec![16]]);
        for bad in ["", "t=12", "v1=00", "t=x,v1=00", "t=1,v1=0", "t=1,v1=zz"] {
            assert!(Signature::parse(bad).is_none(), "{bad}");
        }
    }
}
