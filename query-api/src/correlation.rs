//! `X-Correlation-Id`: taken from the request (or minted when absent or
//! unusable), recorded on the request's tracing span so that every log line of
//! the request carries it, and echoed on the response.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use uuid::Uuid;

pub static CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");

/// Longest correlation id accepted from a client; a longer one is replaced.
const MAX_LEN: usize = 128;

/// The request's correlation id, available to handlers as an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(pub String);

/// The client's id when it is short printable ASCII, a fresh UUID otherwise.
pub fn correlation_id_from(value: Option<&HeaderValue>) -> String {
    value
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_LEN && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

/// Middleware: one span per request, carrying the correlation id.
pub async fn propagate(mut request: Request, next: Next) -> Response {
    let correlation_id = correlation_id_from(request.headers().get(&CORRELATION_ID));
    let span = tracing::info_span!(
        "http_request",
        method = %request.method(),
        path = %request.uri().path(),
        correlation_id = %correlation_id,
    );
    request
        .extensions_mut()
        .insert(CorrelationId(correlation_id.clone()));
    async move {
        let started = Instant::now();
        let mut response = next.run(request).await;
        let status = response.status().as_u16();
        let latency_ms = started.elapsed().as_millis() as u64;
        if response.status().is_server_error() {
            tracing::warn!(status, latency_ms, "request completed");
        } else {
            tracing::info!(status, latency_ms, "request completed");
        }
        if let Ok(value) = HeaderValue::from_str(&correlation_id) {
            response.headers_mut().insert(CORRELATION_ID.clone(), value);
        }
        response
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_client_id_is_kept() {
        let value = HeaderValue::from_static("req-42");
        assert_eq!(correlation_id_from(Some(&value)), "req-42");
    }

    #[test]
    fn a_missing_or_unusable_id_is_replaced() {
        assert!(Uuid::parse_str(&correlation_id_from(None)).is_ok());
        let spaces = HeaderValue::from_static("has spaces");
        assert!(Uuid::parse_str(&correlation_id_from(Some(&spaces))).is_ok());
        let long = HeaderValue::from_str(&"x".repeat(MAX_LEN + 1)).unwrap();
        assert!(Uuid::parse_str(&correlation_id_from(Some(&long))).is_ok());
    }
}
