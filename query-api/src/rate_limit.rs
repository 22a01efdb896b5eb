//! The read limit per client address (`rate_limits.read`), counted in the
//! seed's `rate_limit:api:{ip}` entry. Over the limit: 429 with `Retry-After`
//! and the draft `RateLimit` headers, which every limited response carries.
//! When Redis does not answer, reads go on unlimited: a shop stays open, and
//! the metric `rate_limiter_unavailable_total` and a warning say so.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use infrastructure::client_address::client_address;
use infrastructure::rate_limit::header_pairs;

use crate::error::ApiError;
use crate::startup::AppState;

pub async fn limit_reads(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !state.rate_limits.enabled {
        return next.run(request).await;
    }
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return next.run(request).await;
    };
    let client = client_address(request.headers(), peer.ip(), &state.trusted_proxies);
    let key = state.limiter.client_key("api", &client.to_string());
    let now = Utc::now();
    let standing = match state.limiter.count(&key, state.rate_limits.read, now).await {
        Ok(standing) => standing,
        Err(error) => {
            metrics::counter!("rate_limiter_unavailable_total", "api" => "query").increment(1);
            tracing::warn!(%error, "rate limiter unreachable, reads go on unlimited");
            return next.run(request).await;
        }
    };
    let mut response = if standing.allowed() {
        next.run(request).await
    } else {
        metrics::counter!("rate_limited_total", "api" => "query").increment(1);
        ApiError::rate_limited(standing.reset_after(now)).into_response()
    };
    for (name, value) in header_pairs("read", &standing, now) {
        response.headers_mut().insert(name, value);
    }
    response
}
