//! Read-your-writes in the query API. A read that carries the consistency
//! token a command answered (the `Consistency-Token` header, or the
//! `consistency_token` query parameter) waits, up to `consistency.wait_ms`,
//! until every projection the endpoint reads has applied it, then reads. Past
//! the bound it answers 503 with `Retry-After`, naming the projections that
//! lag. A read without a token does not wait.

use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use infrastructure::consistency::{lagging, ReadModel};
use infrastructure::event_store::ConsistencyToken;
use infrastructure::settings::KafkaSettings;
use sqlx::PgPool;

use crate::catalog::postgres::classify;
use crate::error::{ApiError, StoreError};
use crate::BoxFuture;

pub const CONSISTENCY_TOKEN_HEADER: &str = "consistency-token";
pub const CONSISTENCY_TOKEN_PARAM: &str = "consistency_token";

/// Which projections have applied a token.
pub trait AppliedTokens: Send + Sync {
    /// The projections among `read_models` that have not applied `token`.
    fn lagging<'a>(
        &'a self,
        token: ConsistencyToken,
        read_models: &'a [ReadModel],
    ) -> BoxFuture<'a, Result<Vec<&'static str>, StoreError>>;
}

/// The relay's watermarks and the projections' applied offsets, in
/// PostgreSQL (see `infrastructure::consistency`).
pub struct PgAppliedTokens {
    pool: PgPool,
    kafka: KafkaSettings,
    relay: String,
}

impl PgAppliedTokens {
    pub fn new(pool: PgPool, kafka: KafkaSettings, relay: impl Into<String>) -> Self {
        Self {
            pool,
            kafka,
            relay: relay.into(),
        }
    }
}

impl AppliedTokens for PgAppliedTokens {
    fn lagging<'a>(
        &'a self,
        token: ConsistencyToken,
        read_models: &'a [ReadModel],
    ) -> BoxFuture<'a, Result<Vec<&'static str>, StoreError>> {
        Box::pin(async move {
            lagging(&self.pool, &self.kafka, &self.relay, token, read_models)
                .await
                .map_err(classify)
        })
    }
}

/// How long a read waits for its token, and how often it looks.
#[derive(Debug, Clone, Copy)]
pub struct ConsistencyWait {
    pub bound: Duration,
    pub poll: Duration,
}

/// The token a read must see, if it carries one.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadAfter(pub Option<ConsistencyToken>);

impl<S: Send + Sync> FromRequestParts<S> for ReadAfter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let from_header = match parts.headers.get(CONSISTENCY_TOKEN_HEADER) {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::bad_request("the Consistency-Token header is not a consistency token")
            })?),
        };
        let from_query = parts.uri.query().and_then(token_param);
        let Some(text) = from_header.or(from_query) else {
            return Ok(Self(None));
        };
        text.trim()
            .parse()
            .map(|token| Self(Some(token)))
            .map_err(|_| {
                ApiError::invalid_params(vec![crate::error::InvalidParam::new(
                    CONSISTENCY_TOKEN_PARAM,
                    "not a consistency token from the command API",
                )])
            })
    }
}

/// The `consistency_token` parameter of a query string. Tokens are made of
/// hex digits and dots, which need no percent-decoding.
fn token_param(query: &str) -> Option<&str> {
    query.split('&').find_map(|pair| {
        pair.strip_prefix(CONSISTENCY_TOKEN_PARAM)?
            .strip_prefix('=')
    })
}

/// The query string without the `consistency_token` parameter, for the
/// endpoints' own parameter parsing.
pub fn without_token_param(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(CONSISTENCY_TOKEN_PARAM) && !pair.is_empty())
        .collect::<Vec<_>>()
        .join("&")
}

/// Waits until every projection of `read_models` has applied the token of
/// `read_after`, up to the bound.
pub async fn wait_until_applied(
    tokens: &dyn AppliedTokens,
    wait: ConsistencyWait,
    read_after: ReadAfter,
    read_models: &[ReadModel],
) -> Result<(), ApiError> {
    let Some(token) = read_after.0 else {
        return Ok(());
    };
    let deadline = Instant::now() + wait.bound;
    loop {
        let behind = tokens.lagging(token, read_models).await?;
        if behind.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            metrics::counter!("query_consistency_timeouts_total").increment(1);
            return Err(ApiError::unavailable(format!(
                "{} has not applied consistency token {token} within {} ms; retry later",
                behind.join(", "),
                wait.bound.as_millis()
            )));
        }
        tokio::time::sleep(
            wait.poll
                .min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_parameter_is_found_and_removed_from_the_query() {
        let query = "q=phone&consistency_token=1.1.2f.9&page=2";
        assert_eq!(token_param(query), Some("1.1.2f.9"));
        assert_eq!(without_token_param(query), "q=phone&page=2");
        assert_eq!(token_param("q=phone"), None);
        assert_eq!(without_token_param("consistency_token=1.1.1.1"), "");
    }
}
