//! Where events that can never be applied go: `read_model.dead_letters` in
//! PostgreSQL, with the reason and the raw message, and an error log line.
//! Nothing is dropped silently, and nothing is recorded twice: one letter per
//! event and projection.

use infrastructure::event_store::RecordedEvent;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

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
