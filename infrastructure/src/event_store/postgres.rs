//! The PostgreSQL adapter of the event store (`event_store` schema, see
//! `migrations/`): atomic multi-stream appends under expected versions,
//! idempotency keys, stream loads, and the gap-free tailing read.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row, Transaction};
use tracing::instrument;

use super::{
    AppendOutcome, AppendReceipt, EventMetadata, EventStoreError, GlobalCheckpoint, IdempotencyKey,
    RecordedEvent, StreamAppend,
};

/// The channel an append notifies at commit, so tailers wake without polling.
pub const APPENDED_CHANNEL: &str = "event_store_appended";

const SELECT_EVENT: &str = "SELECT position, transaction_id::text::bigint AS transaction_id, event_id, \
     aggregate_type, aggregate_id, version, event_type, schema_version, payload, metadata, recorded_at \
     FROM event_store.events";

#[derive(Clone, Debug)]
pub struct PgEventStore {
    pool: PgPool,
}

impl PgEventStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Appends to every stream in one transaction, each under its expected
    /// version; all or nothing. With an idempotency key, a key already used by
    /// the same request returns its first response and appends nothing.
    /// `respond` builds the response stored with the key.
    #[instrument(skip_all, fields(streams = appends.len(), idempotency_key = idempotency.as_ref().map(|k| k.key.as_str())))]
    pub async fn append(
        &self,
        appends: Vec<StreamAppend>,
        metadata: &EventMetadata,
        idempotency: Option<&IdempotencyKey>,
        respond: impl FnOnce(&AppendReceipt) -> serde_json::Value,
    ) -> Result<AppendOutcome, EventStoreError> {
        if let Some(key) = idempotency {
            if let Some(response) = self.stored_response(key).await? {
                return Ok(AppendOutcome::AlreadyHandled { response });
            }
        }
        let mut tx = self.pool.begin().await?;
        if let Some(key) = idempotency {
            // Taken first, so that a concurrent duplicate waits here for us to
            // finish, then finds our answer instead of racing our appends.
            let inserted = sqlx::query(
                "INSERT INTO event_store.idempotency_keys (idempotency_key, request_fingerprint, response) \
                 VALUES ($1, $2, 'null'::jsonb) ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(&key.key)
            .bind(&key.fingerprint)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                let response = self.stored_response(key).await?.ok_or_else(|| {
                    EventStoreError::IdempotencyKeyReused {
                        key: key.key.clone(),
                    }
                })?;
                return Ok(AppendOutcome::AlreadyHandled { response });
            }
        }
        let receipt = append_in(&mut tx, appends, metadata).await?;
        let response = respond(&receipt);
        if let Some(key) = idempotency {
            sqlx::query(
                "UPDATE event_store.idempotency_keys SET response = $2 WHERE idempotency_key = $1",
            )
            .bind(&key.key)
            .bind(&response)
            .execute(&mut *tx)
            .await?;
        }
        if receipt.last_position > 0 {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(APPENDED_CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        tracing::debug!(last_position = receipt.last_position, "events appended");
        Ok(AppendOutcome::Appended { receipt, response })
    }

    /// Appends inside a transaction the caller owns and commits, for work that
    /// must commit atomically with the events. Notifies tailers at commit.
    pub async fn append_in_transaction(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        appends: Vec<StreamAppend>,
        metadata: &EventMetadata,
    ) -> Result<AppendReceipt, EventStoreError> {
        let receipt = append_in(tx, appends, metadata).await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(APPENDED_CHANNEL)
            .execute(&mut **tx)
            .await?;
        Ok(receipt)
    }

    /// The answer stored with `key`, if a request carrying it was handled;
    /// `IdempotencyKeyReused` when that request was a different one.
    pub async fn stored_response(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<serde_json::Value>, EventStoreError> {
        let row = sqlx::query(
            "SELECT request_fingerprint, response FROM event_store.idempotency_keys WHERE idempotency_key = $1",
        )
        .bind(&key.key)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let fingerprint: String = row.try_get("request_fingerprint")?;
                if fingerprint != key.fingerprint {
                    return Err(EventStoreError::IdempotencyKeyReused {
                        key: key.key.clone(),
                    });
                }
                Ok(Some(row.try_get("response")?))
            }
        }
    }

    /// Every event of one stream, in version order.
    #[instrument(skip(self))]
    pub async fn load_stream(
        &self,
        stream_id: &str,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_EVENT} WHERE aggregate_id = $1 ORDER BY version"
        ))
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_row).collect()
    }

    /// The current version of a stream, 0 when it does not exist.
    pub async fn stream_version(&self, stream_id: &str) -> Result<i64, EventStoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM event_store.streams WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    /// The next events after `after`, in the order they became final, limited
    /// to aggregate types `types` when given. Only events of transactions older
    /// than every transaction still running are returned: a slower transaction
    /// that commits later always sorts after what was already read, so a tailer
    /// never skips one.
    #[instrument(skip(self, types))]
    pub async fn read_after(
        &self,
        after: GlobalCheckpoint,
        limit: i64,
        types: Option<&[String]>,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_EVENT} \
             WHERE (transaction_id, position) > ($1::text::xid8, $2) \
               AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
               AND ($4::text[] IS NULL OR aggregate_type = ANY($4)) \
             ORDER BY transaction_id, position \
             LIMIT $3"
        ))
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(limit)
        .bind(types)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_row).collect()
    }

    /// Where the named reader got to, or the start of the log.
    pub async fn checkpoint(&self, name: &str) -> Result<GlobalCheckpoint, EventStoreError> {
        let row = sqlx::query(
            "SELECT transaction_id::text::bigint AS transaction_id, position FROM event_store.checkpoints WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => GlobalCheckpoint {
                transaction_id: row.try_get("transaction_id")?,
                position: row.try_get("position")?,
            },
            None => GlobalCheckpoint::default(),
        })
    }

    pub async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: GlobalCheckpoint,
    ) -> Result<(), EventStoreError> {
        sqlx::query(
            "INSERT INTO event_store.checkpoints (name, transaction_id, position) VALUES ($1, $2::text::xid8, $3) \
             ON CONFLICT (name) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, \
             position = EXCLUDED.position, updated_at = now()",
        )
        .bind(name)
        .bind(checkpoint.transaction_id.to_string())
        .bind(checkpoint.position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

async fn append_in(
    tx: &mut Transaction<'_, Postgres>,
    mut appends: Vec<StreamAppend>,
    metadata: &EventMetadata,
) -> Result<AppendReceipt, EventStoreError> {
    // One lock order for every writer, so multi-stream appends cannot deadlock.
    appends.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
    let metadata = serde_json::to_value(metadata).expect("metadata serializes");
    let mut receipt = AppendReceipt {
        versions: Vec::with_capacity(appends.len()),
        last_position: 0,
    };
    for append in appends {
        let new_version = append.expected_version + append.events.len() as i64;
        claim_version(tx, &append, new_version).await?;
        if !append.events.is_empty() {
            let count = append.events.len();
            let mut event_ids = Vec::with_capacity(count);
            let mut versions = Vec::with_capacity(count);
            let mut types = Vec::with_capacity(count);
            let mut schema_versions = Vec::with_capacity(count);
            let mut payloads = Vec::with_capacity(count);
            for (offset, event) in append.events.into_iter().enumerate() {
                event_ids.push(event.event_id);
                versions.push(append.expected_version + offset as i64 + 1);
                types.push(event.event_type);
                schema_versions.push(event.schema_version);
                payloads.push(event.payload);
            }
            let last: i64 = sqlx::query_scalar(
                "WITH inserted AS ( \
                   INSERT INTO event_store.events \
                     (event_id, aggregate_type, aggregate_id, version, event_type, schema_version, payload, metadata) \
                   SELECT e.event_id, $1, $2, e.version, e.event_type, e.schema_version, e.payload, $3 \
                   FROM UNNEST($4::uuid[], $5::bigint[], $6::text[], $7::int[], $8::jsonb[]) \
                     AS e(event_id, version, event_type, schema_version, payload) \
                   ORDER BY e.version \
                   RETURNING position) \
                 SELECT max(position) FROM inserted",
            )
            .bind(&append.aggregate_type)
            .bind(&append.stream_id)
            .bind(&metadata)
            .bind(&event_ids)
            .bind(&versions)
            .bind(&types)
            .bind(&schema_versions)
            .bind(&payloads)
            .fetch_one(&mut **tx)
            .await?;
            receipt.last_position = receipt.last_position.max(last);
        }
        receipt.versions.push((append.stream_id, new_version));
    }
    Ok(receipt)
}

/// Moves the stream from its expected version to `new_version`, or reports
/// the version it really has. Concurrent writers queue on the stream's row, and
/// the later one re-reads it after the first commits.
async fn claim_version(
    tx: &mut Transaction<'_, Postgres>,
    append: &StreamAppend,
    new_version: i64,
) -> Result<(), EventStoreError> {
    let changed = if append.events.is_empty() {
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM event_store.streams WHERE stream_id = $1 FOR SHARE",
        )
        .bind(&append.stream_id)
        .fetch_optional(&mut **tx)
        .await?;
        u64::from(current.unwrap_or(0) == append.expected_version)
    } else if append.expected_version == 0 {
        sqlx::query(
            "INSERT INTO event_store.streams (stream_id, aggregate_type, version) VALUES ($1, $2, $3) \
             ON CONFLICT (stream_id) DO NOTHING",
        )
        .bind(&append.stream_id)
        .bind(&append.aggregate_type)
        .bind(new_version)
        .execute(&mut **tx)
        .await?
        .rows_affected()
    } else {
        sqlx::query(
            "UPDATE event_store.streams SET version = $3, updated_at = now() \
             WHERE stream_id = $1 AND version = $2",
        )
        .bind(&append.stream_id)
        .bind(append.expected_version)
        .bind(new_version)
        .execute(&mut **tx)
        .await?
        .rows_affected()
    };
    if changed == 1 {
        return Ok(());
    }
    let actual: Option<i64> =
        sqlx::query_scalar("SELECT version FROM event_store.streams WHERE stream_id = $1")
            .bind(&append.stream_id)
            .fetch_optional(&mut **tx)
            .await?;
    Err(EventStoreError::VersionConflict {
        stream_id: append.stream_id.clone(),
        expected: append.expected_version,
        actual: actual.unwrap_or(0),
    })
}

fn decode_row(row: &PgRow) -> Result<RecordedEvent, EventStoreError> {
    let event_id = row.try_get("event_id")?;
    let metadata: serde_json::Value = row.try_get("metadata")?;
    let metadata: EventMetadata =
        serde_json::from_value(metadata).map_err(|e| EventStoreError::Undecodable {
            event_id,
            reason: e.to_string(),
        })?;
    Ok(RecordedEvent {
        position: row.try_get("position")?,
        transaction_id: row.try_get("transaction_id")?,
        event_id,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        version: row.try_get("version")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        payload: row.try_get("payload")?,
        metadata,
        recorded_at: row.try_get("recorded_at")?,
    })
}
