//! Where events that can never be applied go: `read_model.dead_letters` in
//! PostgreSQL, with the reason and the raw message, and an error log line.
//! Nothing is dropped silently.

use infrastructure::event_store::RecordedEvent;
use sqlx::PgPool;
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
        for letter in letters {
            tracing::error!(
                projection,
                event_id = ?letter.event_id,
                aggregate_id = ?letter.aggregate_id,
                source = %letter.source,
                reason = %letter.reason,
                "event dead-lettered"
            );
            sqlx::query(
                "INSERT INTO read_model.dead_letters \
                 (projection, event_id, aggregate_type, aggregate_id, version, source, reason, raw_message) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(projection)
            .bind(letter.event_id)
            .bind(&letter.aggregate_type)
            .bind(&letter.aggregate_id)
            .bind(letter.version)
            .bind(&letter.source)
            .bind(&letter.reason)
            .bind(&letter.raw_message)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }
}
