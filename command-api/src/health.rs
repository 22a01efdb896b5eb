//! `GET /health`: 200 while the database answers, else 503.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use tracing::instrument;

use crate::command::AppState;
use crate::error::ApiError;

#[instrument(skip_all)]
pub async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(state.store.pool())
        .await
    {
        Ok(_) => Ok(Json(json!({ "status": "ok" }))),
        Err(error) => {
            tracing::warn!(%error, "health check failed: database unreachable");
            Err(ApiError::service_unavailable(
                "the database does not answer",
            ))
        }
    }
}
