//! Re-driving dead letters once their cause is fixed (`projectors
//! dead-letters retry ID…`).
//!
//! A dead letter freezes its aggregate: its later events were dead-lettered
//! behind it. Retrying a letter therefore retries its whole aggregate: every
//! event of the stream from the first dead-lettered version on is read from
//! the event store and applied in order, under the batch guard, so a
//! blue/green swap never runs half-way through it. The aggregate's letters
//! are deleted only for the events that were applied; one that a live worker
//! added meanwhile stays, and keeps the aggregate frozen until it is retried
//! in turn.

use std::collections::BTreeSet;

use infrastructure::event_store::PgEventStore;
use infrastructure::relay::error_chain;
use uuid::Uuid;

use super::dead_letters::StoredLetter;
use super::{BatchGuard, DeadLetters, Projection};

/// What retrying one aggregate came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Retried {
    pub aggregate_id: String,
    /// Dead letters deleted: their events are applied now.
    pub cleared: Vec<i64>,
    /// Why the aggregate still does not apply, when it does not.
    pub failure: Option<String>,
}

/// Retries the aggregates of `letters`, which belong to `projection`.
pub async fn retry(
    projection: &dyn Projection,
    store: &PgEventStore,
    dead_letters: &DeadLetters,
    letters: &[StoredLetter],
) -> anyhow::Result<Vec<Retried>> {
    let name = projection.name();
    let mut aggregates = BTreeSet::new();
    for letter in letters {
        anyhow::ensure!(
            letter.projection == name,
            "dead letter {} belongs to {}, not {name}",
            letter.id,
            letter.projection
        );
        let aggregate = letter.aggregate_id.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "dead letter {} names no aggregate; discard it instead",
                letter.id
            )
        })?;
        aggregates.insert(aggregate);
    }
    let mut outcomes = Vec::new();
    for aggregate_id in aggregates {
        outcomes.push(retry_aggregate(projection, store, dead_letters, &aggregate_id).await?);
    }
    Ok(outcomes)
}

async fn retry_aggregate(
    projection: &dyn Projection,
    store: &PgEventStore,
    dead_letters: &DeadLetters,
    aggregate_id: &str,
) -> anyhow::Result<Retried> {
    let name = projection.name();
    let held = dead_letters.of_aggregate(name, aggregate_id).await?;
    let from = held.iter().filter_map(|l| l.version).min().unwrap_or(1);
    let events: Vec<_> = store
        .load_stream(aggregate_id)
        .await?
        .into_iter()
        .filter(|e| e.version >= from)
        .filter(|e| {
            projection
                .aggregate_types()
                .contains(&e.aggregate_type.as_str())
        })
        .collect();
    let guard = BatchGuard::enter(store.pool(), name).await?;
    projection.forget_applied(aggregate_id, from).await?;
    let applied = projection.apply(&events).await;
    guard.leave().await?;
    let failure = match applied {
        Ok(refused) if refused.is_empty() => None,
        Ok(refused) => Some(
            refused
                .iter()
                .map(|l| l.reason.clone())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(error) => Some(error_chain(&error)),
    };
    let cleared = match &failure {
        Some(reason) => {
            tracing::warn!(projection = name, aggregate_id, %reason, "dead letters still do not apply");
            Vec::new()
        }
        None => {
            let applied: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
            let cleared = dead_letters
                .discard_applied(name, aggregate_id, &applied)
                .await?;
            tracing::info!(
                projection = name,
                aggregate_id,
                events = events.len(),
                cleared = cleared.len(),
                "dead letters retried"
            );
            cleared
        }
    };
    Ok(Retried {
        aggregate_id: aggregate_id.to_owned(),
        cleared,
        failure,
    })
}
