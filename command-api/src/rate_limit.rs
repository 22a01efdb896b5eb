//! The command limits per client address, counted in entries shaped like
//! the seed's `rate_limit:api:{ip}`: `rate_limits.auth` for registration and
//! login (`rate_limit:auth:{ip}`), `rate_limits.write` for every other
//! command (`rate_limit:write:{ip}`). Over the limit: 429
//! with `Retry-After` and the draft `RateLimit` headers, which every limited
//! response carries. When Redis does not answer, commands go on unlimited
//! (`rate_limiter_unavailable_total`, a warning); the per-account login limit
//! ([`limit_login`]) and the per-account limit on one-time codes
//! ([`limit_codes`]) fail closed instead, since they are what stands between
//! a credential and a guessing script.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use infrastructure::client_address::client_address;
use infrastructure::rate_limit::header_pairs;

use crate::command::AppState;
use crate::error::ApiError;

/// Registration, login and password resets, the routes a credential-stuffing
/// script hits.
fn is_auth(method: &Method, path: &str) -> bool {
    method == Method::POST
        && matches!(
            path,
            "/v1/sessions"
                | "/v1/users"
                | "/v1/password-resets"
                | "/v1/password-resets/confirm"
                | "/v1/email-verifications/confirm"
        )
}

pub async fn limit_commands(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
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
    let (policy, limit) = if is_auth(request.method(), request.uri().path()) {
        ("auth", state.rate_limits.auth)
    } else {
        ("write", state.rate_limits.write)
    };
    let client = client_address(request.headers(), peer.ip(), &state.trusted_proxies);
    let key = state.limiter.client_key(policy, &client.to_string());
    let now = Utc::now();
    let standing = match state.limiter.count(&key, limit, now).await {
        Ok(standing) => standing,
        Err(error) => {
            metrics::counter!("rate_limiter_unavailable_total", "api" => "command").increment(1);
            tracing::warn!(%error, "rate limiter unreachable, commands go on unlimited");
            return next.run(request).await;
        }
    };
    let mut response = if standing.allowed() {
        next.run(request).await
    } else {
        metrics::counter!("rate_limited_total", "api" => "command", "policy" => policy)
            .increment(1);
        ApiError::rate_limited(standing.reset_after(now)).into_response()
    };
    for (name, value) in header_pairs(policy, &standing, now) {
        response.headers_mut().insert(name, value);
    }
    response
}

/// Counts a login attempt against the account (by the blind index of its
/// email, whoever tries it and from wherever): 429 past the limit, 503 when
/// it cannot be counted.
pub async fn limit_login(state: &AppState, account_index: &str) -> Result<(), ApiError> {
    let key = state.limiter.login_key(account_index);
    let limit = state.rate_limits.login_per_account;
    limit_account(state, "login", &key, limit, "logins").await
}

/// Counts a one-time code request or attempt against the account (`account`
/// is the user's id, or the blind index of the email a reset names): the
/// bound on guesses at a code, and on mail sent to one address. Fails
/// closed, as logins do.
pub async fn limit_codes(state: &AppState, account: &str) -> Result<(), ApiError> {
    let key = state.limiter.code_key(account);
    let limit = state.rate_limits.codes_per_account;
    limit_account(state, "code", &key, limit, "one-time codes").await
}

async fn limit_account(
    state: &AppState,
    policy: &'static str,
    key: &str,
    limit: infrastructure::rate_limit::Limit,
    what: &str,
) -> Result<(), ApiError> {
    if !state.rate_limits.enabled {
        return Ok(());
    }
    let now = Utc::now();
    match state.limiter.count(key, limit, now).await {
        Ok(standing) if standing.allowed() => Ok(()),
        Ok(standing) => {
            metrics::counter!("rate_limited_total", "api" => "command", "policy" => policy)
                .increment(1);
            Err(ApiError::rate_limited(standing.reset_after(now)))
        }
        Err(error) => {
            tracing::warn!(%error, policy, "account limiter unreachable, requests refused");
            Err(ApiError::service_unavailable(format!(
                "{what} cannot be counted right now; retry later"
            )))
        }
    }
}
