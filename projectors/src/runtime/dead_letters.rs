//! Where events that can never be applied go: `read_model.dead_letters` in
//! PostgreSQL, with the reason and the raw message, and an error log line.
//! Nothing is dropped silently, and nothing is recorded twice: one letter per
//! event and projection.

use chrono::{DateTime, Utc};
use infrastructure::event_store::RecordedEvent;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::apply::{Frozen, Head};

#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub event_id: Option<Uuid>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub version: Option<i64>,
    /// Where it came from, e.g. `kafka:topic/partition@offset` or `replay`.
    pub source: String,
    pub reason: String,
    pub raw_message: String,
}

impl DeadLetter {
    /// A decoded event the projection cannot apply.
    pub fn for_event(event: &RecordedEvent, reason: impl Into<String>) -> Self {
        Self {
            event_id: Some(event.event_id),
            aggregate_type: Some(event.aggregate_type.clone()),
            aggregate_id: Some(event.aggregate_id.clone()),
            version: Some(event.version),
            source: format!("position:{}", event.position),
            reason: reason.into(),
            raw_message: serde_json::to_string(event).unwrap_or_default(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct DeadLetters {
    pool: PgPool,
}

impl DeadLetters {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn record(
        &self,
        projection: &str,
        letters: &[DeadLetter],
    ) -> Result<(), sqlx::Error> {
        write(&self.pool, projection, letters).await
    }

    /// For each aggregate of `events` that has a dead letter in `projection`,
    /// its first one. A letter of an undecodable message knows its aggregate
    /// id (the message key) but not its type, and freezes every aggregate of
    /// that id.
    pub(crate) async fn heads(
        &self,
        projection: &str,
        events: &[RecordedEvent],
    ) -> Result<Frozen, sqlx::Error> {
        let mut frozen = Frozen::new();
        if events.is_empty() {
            return Ok(frozen);
        }
        let mut ids: Vec<&str> = events.iter().map(|e| e.aggregate_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let rows: Vec<(Option<String>, String, Option<Uuid>, String)> = sqlx::query_as(
            "SELECT DISTINCT ON (aggregate_type, aggregate_id) aggregate_type, aggregate_id, event_id, reason \
             FROM read_model.dead_letters WHERE projection = $1 AND aggregate_id = ANY($2) \
             ORDER BY aggregate_type, aggregate_id, id",
        )
        .bind(projection)
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        for (aggregate_type, aggregate_id, event_id, reason) in rows {
            let head = Head { event_id, reason };
            match aggregate_type {
                Some(t) => {
                    frozen.insert((t, aggregate_id), head);
                }
                None => {
                    for event in events.iter().filter(|e| e.aggregate_id == aggregate_id) {
                        frozen
                            .entry((event.aggregate_type.clone(), aggregate_id.clone()))
                            .or_insert_with(|| head.clone());
                    }
                }
            }
        }
        Ok(frozen)
    }

    /// The letters of `projection` (all when `None`), oldest first.
    pub async fn list(
        &self,
        projection: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredLetter>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {STORED_COLUMNS} FROM read_model.dead_letters \
             WHERE $1::text IS NULL OR projection = $1 ORDER BY id LIMIT $2"
        ))
        .bind(projection)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// The letters `ids`, oldest first.
    pub async fn by_ids(&self, ids: &[i64]) -> Result<Vec<StoredLetter>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {STORED_COLUMNS} FROM read_model.dead_letters WHERE id = ANY($1) ORDER BY id"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
    }

    /// Every letter of one aggregate in `projection`, oldest first.
    pub async fn of_aggregate(
        &self,
        projection: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredLetter>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {STORED_COLUMNS} FROM read_model.dead_letters \
             WHERE projection = $1 AND aggregate_id = $2 ORDER BY id"
        ))
        .bind(projection)
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Deletes the aggregate's letters of the events in `applied`, and those
    /// of its messages that never decoded (their content came from the event
    /// store with the rest). Returns the ids deleted.
    pub async fn discard_applied(
        &self,
        projection: &str,
        aggregate_id: &str,
        applied: &[Uuid],
    ) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "DELETE FROM read_model.dead_letters WHERE projection = $1 AND aggregate_id = $2 \
             AND (event_id = ANY($3) OR event_id IS NULL) RETURNING id",
        )
        .bind(projection)
        .bind(aggregate_id)
        .bind(applied)
        .fetch_all(&self.pool)
        .await
    }

    /// Deletes the letters `ids`: the operator has dealt with them, and the
    /// aggregates they froze take events again. Returns those deleted.
    pub async fn discard(&self, ids: &[i64]) -> Result<Vec<StoredLetter>, sqlx::Error> {
        sqlx::query_as(&format!(
            "DELETE FROM read_model.dead_letters WHERE id = ANY($1) RETURNING {STORED_COLUMNS}"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
    }
}

/// The columns of a [`StoredLetter`].
const STORED_COLUMNS: &str =
    "id, projection, event_id, aggregate_type, aggregate_id, version, source, reason, created_at";

/// A dead letter as stored, for the operator's commands.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct StoredLetter {
    pub id: i64,
    pub projection: String,
    pub event_id: Option<Uuid>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub version: Option<i64>,
    pub source: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// Records `letters` through `executor`: inside a projection's own
/// transaction, a dead letter commits atomically with the version that marks
/// its event as handled. Recording one again changes nothing.
pub async fn write<'e>(
    executor: impl PgExecutor<'e>,
    projection: &str,
    letters: &[DeadLetter],
) -> Result<(), sqlx::Error> {
    if letters.is_empty() {
        return Ok(());
    }
    for letter in letters {
        tracing::error!(
            projection,
            event_id = ?letter.event_id,
            aggregate_id = ?letter.aggregate_id,
            source = %letter.source,
            reason = %letter.reason,
            "event dead-lettered"
        );
    }
    sqlx::query(
        "INSERT INTO read_model.dead_letters \
         (projection, event_id, aggregate_type, aggregate_id, version, source, reason, raw_message) \
         SELECT $1, * FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[]) \
         ON CONFLICT (projection, (coalesce(event_id::text, source))) DO NOTHING",
    )
    .bind(projection)
    .bind(letters.iter().map(|l| l.event_id).collect::<Vec<_>>())
    .bind(letters.iter().map(|l| l.aggregate_type.clone()).collect::<Vec<_>>())
    .bind(letters.iter().map(|l| l.aggregate_id.clone()).collect::<Vec<_>>())
    .bind(letters.iter().map(|l| l.version).collect::<Vec<_>>())
    .bind(letters.iter().map(|l| l.source.as_str()).collect::<Vec<_>>())
    .bind(letters.iter().map(|l| l.reason.as_str()).collect::<Vec<_>>())
    .bind(letters.iter().map(|l| l.raw_message.as_str()).collect::<Vec<_>>())
    .execute(executor)
    .await?;
    Ok(())
}
