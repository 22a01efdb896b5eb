//! `GET /health`: 503 while the database does not answer; otherwise the
//! relay's state, read from the database whichever process leads: lag,
//! leader, a stall with the transaction holding the log back, an undecodable
//! event stopping the log. `status` is `degraded` when an operator must act.

use axum::extract::State;
use axum::Json;
use infrastructure::relay::status::RelayStatus;
use serde_json::{json, Value};
use tracing::instrument;

use crate::command::AppState;
use crate::error::ApiError;

const RELAY_STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[instrument(skip_all)]
pub async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if let Err(error) = sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(state.store.pool())
        .await
    {
        tracing::warn!(%error, "health check failed: database unreachable");
        return Err(ApiError::service_unavailable(
            "the database does not answer",
        ));
    }
    // Bounded: the event store's tables may be locked (a migration, an
    // operator), and health must still answer, saying what it could not see.
    let read = RelayStatus::read(state.store.pool(), &state.relay);
    let relay = match tokio::time::timeout(RELAY_STATUS_TIMEOUT, read).await {
        Ok(Ok(relay)) => relay,
        Ok(Err(error)) => {
            tracing::warn!(%error, "health check failed: relay status unreadable");
            return Err(ApiError::service_unavailable(
                "the relay's status cannot be read",
            ));
        }
        Err(_) => {
            tracing::warn!("relay status did not answer in time");
            return Ok(Json(json!({
                "status": "degraded",
                "relay": null,
                "relay_error": "the relay's status did not answer in time",
            })));
        }
    };
    if relay.stalled {
        tracing::warn!(
            held_back = relay.held_back_events,
            holder_pid = relay.oldest_transaction.as_ref().and_then(|t| t.pid),
            holder_age_seconds = relay.oldest_transaction.as_ref().map(|t| t.age_seconds),
            "relay stalled behind an old transaction"
        );
    }
    let status = if relay.is_degraded() {
        "degraded"
    } else {
        "ok"
    };
    Ok(Json(json!({ "status": status, "relay": relay })))
}
