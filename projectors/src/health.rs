//! The projectors' `/health`: per projection, its counters, how long since its
//! worker last finished a step, its parked events (count and oldest age) and
//! its recent dead letters. `status` is `degraded` when an operator must act:
//! a worker that has not finished a step within the stall bound (a store that
//! keeps refusing, a consumer that cannot poll), a parked event older than its
//! bound, or a dead letter within the recent window. The same figures are
//! exported as gauges on `/metrics`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ::metrics::gauge;
use axum::extract::State;
use axum::routing::get;
use axum::{middleware, Json, Router};
use infrastructure::metrics::{self, PoolMetrics};
use infrastructure::settings::ProjectorSettings;
use serde_json::json;
use sqlx::PgPool;

use crate::runtime::worker::WorkerStats;

/// The bounds past which a projection counts as degraded.
#[derive(Debug, Clone, Copy)]
pub struct HealthBounds {
    pub stalled_after: Duration,
    pub parked_older_than: Duration,
    pub dead_letters_within: Duration,
}

impl HealthBounds {
    pub fn from_settings(settings: &ProjectorSettings) -> Self {
        Self {
            stalled_after: Duration::from_secs(settings.stall_degraded_after_seconds),
            parked_older_than: Duration::from_secs(settings.parked_degraded_after_seconds),
            dead_letters_within: Duration::from_secs(settings.dead_letters_degraded_within_seconds),
        }
    }
}

struct HealthState {
    workers: Vec<(&'static str, Arc<WorkerStats>)>,
    pool: PgPool,
    bounds: HealthBounds,
}

/// `/health` and `/metrics` (the pool's gauges and whatever the workers
/// record).
pub fn health_router(
    workers: Vec<(&'static str, Arc<WorkerStats>)>,
    pool: PgPool,
    bounds: HealthBounds,
) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state(Arc::new(HealthState {
            workers,
            pool: pool.clone(),
            bounds,
        }))
        .merge(metrics::routes(vec![PoolMetrics::new("postgres", pool)]))
        .layer(middleware::from_fn(metrics::record_http))
}

#[derive(Debug, Default, Clone, Copy)]
struct Backlog {
    parked: i64,
    oldest_parked_seconds: f64,
    recent_dead_letters: i64,
}

async fn backlogs(
    pool: &PgPool,
    bounds: HealthBounds,
) -> Result<HashMap<String, Backlog>, sqlx::Error> {
    let rows: Vec<(String, i64, f64, i64)> = sqlx::query_as(
        "WITH parked AS ( \
             SELECT projection, count(*) AS n, \
                    coalesce(extract(epoch FROM now() - min(parked_at))::float8, 0) AS oldest \
             FROM read_model.parked_events GROUP BY projection), \
         letters AS ( \
             SELECT projection, count(*) AS n FROM read_model.dead_letters \
             WHERE created_at > now() - make_interval(secs => $1) GROUP BY projection) \
         SELECT coalesce(p.projection, l.projection), coalesce(p.n, 0), coalesce(p.oldest, 0), coalesce(l.n, 0) \
         FROM parked p FULL JOIN letters l ON l.projection = p.projection",
    )
    .bind(bounds.dead_letters_within.as_secs_f64())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, parked, oldest, letters)| {
            (
                name,
                Backlog {
                    parked,
                    oldest_parked_seconds: oldest,
                    recent_dead_letters: letters,
                },
            )
        })
        .collect())
}

async fn health(State(state): State<Arc<HealthState>>) -> Json<serde_json::Value> {
    let read = tokio::time::timeout(Duration::from_secs(2), backlogs(&state.pool, state.bounds));
    let (backlogs, backlog_error) = match read.await {
        Ok(Ok(backlogs)) => (backlogs, None),
        Ok(Err(error)) => {
            tracing::warn!(%error, "health check cannot read parked events and dead letters");
            (
                HashMap::new(),
                Some("parked events and dead letters cannot be read"),
            )
        }
        Err(_) => (
            HashMap::new(),
            Some("parked events and dead letters did not answer in time"),
        ),
    };
    let mut degraded = backlog_error.is_some();
    let mut projections = serde_json::Map::new();
    for (name, stats) in &state.workers {
        let backlog = backlogs.get(*name).copied().unwrap_or_default();
        let since_progress = stats.since_last_step();
        let mut problems = Vec::new();
        if since_progress > state.bounds.stalled_after {
            problems.push(format!(
                "no step finished for {} s",
                since_progress.as_secs()
            ));
        }
        if backlog.parked > 0
            && backlog.oldest_parked_seconds > state.bounds.parked_older_than.as_secs_f64()
        {
            problems.push(format!(
                "{} parked events, the oldest {:.0} s old",
                backlog.parked, backlog.oldest_parked_seconds
            ));
        }
        if backlog.recent_dead_letters > 0 {
            problems.push(format!(
                "{} dead letters in the last {} s",
                backlog.recent_dead_letters,
                state.bounds.dead_letters_within.as_secs()
            ));
        }
        degraded |= !problems.is_empty();
        let labels = [("projection", name.to_string())];
        gauge!("projector_parked_events", &labels).set(backlog.parked as f64);
        gauge!("projector_parked_oldest_seconds", &labels).set(backlog.oldest_parked_seconds);
        gauge!("projector_seconds_since_last_step", &labels).set(since_progress.as_secs_f64());
        projections.insert(
            name.to_string(),
            json!({
                "batches": stats.batches.load(Ordering::Relaxed),
                "events": stats.events.load(Ordering::Relaxed),
                "dead_letters": stats.dead_letters.load(Ordering::Relaxed),
                "retries": stats.retries.load(Ordering::Relaxed),
                "rebuilds": stats.rebuilds.load(Ordering::Relaxed),
                "assigned_partitions": stats.assigned_partitions.load(Ordering::Relaxed),
                "seconds_since_last_step": since_progress.as_secs_f64(),
                "parked": backlog.parked,
                "oldest_parked_seconds": backlog.oldest_parked_seconds,
                "recent_dead_letters": backlog.recent_dead_letters,
                "problems": problems,
            }),
        );
    }
    Json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "error": backlog_error,
        "projections": projections,
    }))
}
