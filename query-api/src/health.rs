//! `GET /health`: 200 while PostgreSQL (the store every read falls back to)
//! answers, 503 otherwise; Redis, Elasticsearch and MongoDB (carts) are
//! reported, not required.

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use infrastructure::relay::error_chain;
use serde::Serialize;

use crate::error::StoreError;
use crate::startup::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    Up,
    Down,
}

#[derive(Debug, Serialize)]
pub struct Checks {
    pub postgres: Check,
    pub redis: Check,
    pub elasticsearch: Check,
    pub mongodb: Check,
}

#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok` (everything answers), `degraded` (PostgreSQL answers, a
    /// secondary store does not) or `unavailable` (PostgreSQL does not).
    pub status: &'static str,
    pub checks: Checks,
}

#[tracing::instrument(name = "health", skip_all)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (postgres, redis, elasticsearch, mongodb) = tokio::join!(
        check("postgresql", state.read_model.ping()),
        check("redis", state.cache.ping()),
        check("elasticsearch", state.search.ping()),
        check("mongodb", state.cart_documents.ping()),
    );
    let checks = Checks {
        postgres,
        redis,
        elasticsearch,
        mongodb,
    };
    let (code, status) = if checks.postgres == Check::Down {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    } else if [checks.redis, checks.elasticsearch, checks.mongodb].contains(&Check::Down) {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ok")
    };
    (code, Json(Health { status, checks }))
}

async fn check(store: &'static str, ping: impl Future<Output = Result<(), StoreError>>) -> Check {
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(())) => Check::Up,
        Ok(Err(error)) => {
            tracing::warn!(store, error = %error_chain(&error), "health check failed");
            Check::Down
        }
        Err(_) => {
            tracing::warn!(
                store,
                timeout_ms = CHECK_TIMEOUT.as_millis() as u64,
                "health check timed out"
            );
            Check::Down
        }
    }
}
