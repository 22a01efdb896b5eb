//! The PostgreSQL adapter of the event store (`event_store` schema, see
//! `migrations/`): atomic multi-stream appends under expected versions,
//! committed in groups (`group_commit`), idempotency keys, stream loads, the
//! gap-free tailing read in (epoch, transaction id, position) order,
//! checkpoints that only move forward, and the operator's skip of a stored
//! event that cannot be decoded.

use std::sync::Arc;

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgExecutor, Postgres, Row, Transaction};
use tracing::instrument;

use super::group_commit::{write_group, Entry, EntryResult, GroupCommitter, Respond};
use super::{
    AppendOutcome, AppendReceipt, ConsistencyToken, EventMetadata, EventStoreError,
    GlobalCheckpoint, IdempotencyKey, RecordedEvent, StreamAppend,
};

pub use super::group_commit::GroupCommitSettings;

/// The channel notified after each commit that appended events, so tailers
/// wake without polling.
pub const APPENDED_CHANNEL: &str = "event_store_appended";

const EVENT_COLUMNS: &str =
    "e.position, e.epoch, e.transaction_id::text::bigint AS transaction_id, \
     e.event_id, e.aggregate_type, e.aggregate_id, e.version, e.event_type, e.schema_version, \
     e.payload, e.metadata, e.recorded_at";

#[derive(Clone)]
pub struct PgEventStore {
    pool: PgPool,
    committer: Arc<GroupCommitter>,
}

impl std::fmt::Debug for PgEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEventStore").finish_non_exhaustive()
    }
}

impl PgEventStore {
    pub fn new(pool: PgPool) -> Self {
        Self::with_group_commit(pool, GroupCommitSettings::default())
    }

    pub fn with_group_commit(pool: PgPool, settings: GroupCommitSettings) -> Self {
        Self {
            committer: GroupCommitter::new(pool.clone(), settings),
            pool,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Changes after every commit of this store (this process) that appended
    /// events: a tailer here waits on it instead of a NOTIFY.
    pub fn appended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committer.appended()
    }

    /// Appends to every stream in one transaction, each under its expected
    /// version; all or nothing. Concurrent appends share a transaction and its
    /// flush (group commit), each keeping its own checks and its own outcome.
    /// With an idempotency key, a key already used by the same request returns
    /// its first response and appends nothing. `respond` builds the response
    /// stored with the key (and returned).
    #[instrument(skip_all, fields(streams = appends.len(), idempotency_key = idempotency.as_ref().map(|k| k.key.as_str())))]
    pub async fn append(
        &self,
        appends: Vec<StreamAppend>,
        metadata: &EventMetadata,
        idempotency: Option<&IdempotencyKey>,
        respond: impl Fn(&AppendReceipt) -> serde_json::Value + Send + Sync + 'static,
    ) -> Result<AppendOutcome, EventStoreError> {
        if let Some(key) = idempotency {
            if let Some(response) = self.stored_response(key).await? {
                return Ok(AppendOutcome::AlreadyHandled { response });
            }
        }
        let entry = Entry::new(appends, metadata, idempotency.cloned(), Box::new(respond));
        let result = self.committer.submit(entry).await?;
        self.outcome(result, idempotency).await
    }

    /// Appends inside a transaction the caller owns and commits, for work that
    /// must commit atomically with the events. Tailers are notified by the
    /// next group commit or their idle poll.
    pub async fn append_in_transaction(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        appends: Vec<StreamAppend>,
        metadata: &EventMetadata,
    ) -> Result<AppendReceipt, EventStoreError> {
        let respond: Respond = Box::new(|_| serde_json::Value::Null);
        let entry = Entry::new(appends, metadata, None, respond);
        let mut results = write_group(tx, std::slice::from_ref(&entry)).await?;
        match results.pop() {
            Some(EntryResult::Appended { receipt, .. }) => Ok(receipt),
            Some(EntryResult::Conflict(conflict)) => Err(conflict.into()),
            _ => unreachable!("an entry without a key always appends or conflicts"),
        }
    }

    async fn outcome(
        &self,
        result: EntryResult,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<AppendOutcome, EventStoreError> {
        match result {
            EntryResult::Appended { receipt, response } => {
                Ok(AppendOutcome::Appended { receipt, response })
            }
            EntryResult::Conflict(conflict) => Err(conflict.into()),
            EntryResult::KeyAlreadyUsed => {
                let key = idempotency.expect("only keyed entries find their key used");
                // The other request committed before our group took the key.
                let response = self.stored_response(key).await?.ok_or_else(|| {
                    EventStoreError::IdempotencyKeyReused {
                        key: key.key.clone(),
                    }
                })?;
                Ok(AppendOutcome::AlreadyHandled { response })
            }
            EntryResult::KeyReused => Err(EventStoreError::IdempotencyKeyReused {
                key: idempotency.map(|k| k.key.clone()).unwrap_or_default(),
            }),
            EntryResult::SameRequestAs(first) => match *first {
                EntryResult::Appended { response, .. } => {
                    Ok(AppendOutcome::AlreadyHandled { response })
                }
                other => Box::pin(self.outcome(other, idempotency)).await,
            },
        }
    }

    /// Deletes the idempotency keys recorded before `before`, a bounded
    /// batch at a time so that no statement holds many locks; returns how
    /// many went. A key is kept at least until then, and goes at the next
    /// cleanup after.
    pub async fn prune_idempotency_keys(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, EventStoreError> {
        const BATCH: i64 = 5_000;
        let mut pruned = 0;
        loop {
            let deleted = sqlx::query(
                "DELETE FROM event_store.idempotency_keys WHERE idempotency_key IN ( \
                 SELECT idempotency_key FROM event_store.idempotency_keys \
                 WHERE created_at < $1 LIMIT $2)",
            )
            .bind(before)
            .bind(BATCH)
            .execute(&self.pool)
            .await?
            .rows_affected();
            pruned += deleted;
            if deleted < BATCH as u64 {
                return Ok(pruned);
            }
        }
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
                let response: serde_json::Value = row.try_get("response")?;
                // 'null' marks a key whose transaction is still running.
                Ok((!response.is_null()).then_some(response))
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
            "SELECT {EVENT_COLUMNS} FROM event_store.events e WHERE e.aggregate_id = $1 ORDER BY e.version"
        ))
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                decode_row(row).or_else(|error| match error {
                    // Deciding needs the payload only; the global log is where
                    // an undecodable row is reported and skipped.
                    EventStoreError::PoisonedLog { position, .. } => {
                        tracing::warn!(
                            position,
                            stream_id,
                            "loading a stream past undecodable metadata"
                        );
                        decode_row_lenient(row)
                    }
                    other => Err(other),
                })
            })
            .collect()
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
    /// to aggregate types `types` when given. See [`read_after`].
    pub async fn read_after(
        &self,
        after: GlobalCheckpoint,
        limit: i64,
        types: Option<&[String]>,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        read_after(&self.pool, after, limit, types).await
    }

    /// How many events the log holds, of the given aggregate types or of all:
    /// the length of a replay, for its progress.
    pub async fn count_events(&self, types: Option<&[String]>) -> Result<u64, EventStoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM event_store.events WHERE $1::text[] IS NULL OR aggregate_type = ANY($1)",
        )
        .bind(types)
        .fetch_one(&self.pool)
        .await?;
        Ok(count as u64)
    }

    /// Where the named reader got to, or the start of the log.
    pub async fn checkpoint(&self, name: &str) -> Result<GlobalCheckpoint, EventStoreError> {
        read_checkpoint(&self.pool, name).await
    }

    /// Moves the named checkpoint forward to `to`; a checkpoint already at or
    /// past `to` is left where it is.
    pub async fn save_checkpoint(
        &self,
        name: &str,
        to: GlobalCheckpoint,
    ) -> Result<(), EventStoreError> {
        sqlx::query(
            "INSERT INTO event_store.checkpoints AS c (name, epoch, transaction_id, position) \
             VALUES ($1, $2, $3::text::xid8, $4) \
             ON CONFLICT (name) DO UPDATE SET epoch = EXCLUDED.epoch, \
               transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position, updated_at = now() \
             WHERE (c.epoch, c.transaction_id, c.position) < (EXCLUDED.epoch, EXCLUDED.transaction_id, EXCLUDED.position)",
        )
        .bind(name)
        .bind(to.epoch)
        .bind(to.transaction_id.to_string())
        .bind(to.position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The operator's reset: puts the named checkpoint at `to`, backwards if
    /// need be. A running relay follows it on its next batch.
    pub async fn reset_checkpoint(
        &self,
        name: &str,
        to: GlobalCheckpoint,
    ) -> Result<(), EventStoreError> {
        sqlx::query(
            "INSERT INTO event_store.checkpoints (name, epoch, transaction_id, position) \
             VALUES ($1, $2, $3::text::xid8, $4) \
             ON CONFLICT (name) DO UPDATE SET epoch = EXCLUDED.epoch, \
               transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position, updated_at = now()",
        )
        .bind(name)
        .bind(to.epoch)
        .bind(to.transaction_id.to_string())
        .bind(to.position)
        .execute(&self.pool)
        .await?;
        tracing::warn!(
            name,
            epoch = to.epoch,
            position = to.position,
            "checkpoint reset by an operator"
        );
        Ok(())
    }

    /// The place just before the event at `position`, for resetting a
    /// checkpoint so that reading resumes with that event.
    pub async fn place_before(
        &self,
        position: i64,
    ) -> Result<Option<GlobalCheckpoint>, EventStoreError> {
        let row = sqlx::query(
            "SELECT epoch, transaction_id::text::bigint AS transaction_id FROM event_store.events WHERE position = $1",
        )
        .bind(position)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(GlobalCheckpoint {
                epoch: row.try_get("epoch")?,
                transaction_id: row.try_get("transaction_id")?,
                position: position - 1,
            })
        })
        .transpose()
    }

    /// The last event of the log, as a token: what a reader must reach to
    /// have seen every event committed so far.
    pub async fn head(&self) -> Result<ConsistencyToken, EventStoreError> {
        log_head(&self.pool).await
    }

    /// Records that the stored event at `position` is skipped by every reader
    /// of the global log, with the operator's reason. Refused unless the event
    /// really cannot be decoded.
    pub async fn skip_undecodable(
        &self,
        position: i64,
        reason: &str,
        skipped_by: &str,
    ) -> Result<SkipOutcome, EventStoreError> {
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM event_store.events e WHERE e.position = $1"
        ))
        .bind(position)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(SkipOutcome::NoSuchEvent);
        };
        match decode_row(&row) {
            Ok(_) => Ok(SkipOutcome::Decodable),
            Err(EventStoreError::PoisonedLog { event_id, .. }) => {
                let inserted = sqlx::query(
                    "INSERT INTO event_store.skipped_events (position, event_id, reason, skipped_by) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (position) DO NOTHING",
                )
                .bind(position)
                .bind(event_id)
                .bind(reason)
                .bind(skipped_by)
                .execute(&self.pool)
                .await?
                .rows_affected();
                tracing::warn!(position, %event_id, reason, skipped_by, "undecodable event skipped");
                Ok(if inserted == 1 {
                    SkipOutcome::Skipped { event_id }
                } else {
                    SkipOutcome::AlreadySkipped
                })
            }
            Err(other) => Err(other),
        }
    }
}

/// What an operator's skip did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipOutcome {
    Skipped {
        event_id: uuid::Uuid,
    },
    AlreadySkipped,
    /// The event decodes: nothing to skip.
    Decodable,
    NoSuchEvent,
}

/// The next events after `after`, in the order they became final.
///
/// Within the epoch of this cluster, only events of transactions older than
/// every transaction still running are returned: a slower transaction that
/// commits later always sorts after what was already read, so a tailer never
/// skips one. Events of earlier epochs (before a restore or a promotion) are
/// all final. Events an operator skipped are passed over. A row whose
/// metadata cannot be decoded ends the batch before it; as the first row it
/// is `PoisonedLog`, so the log stops visibly there, never silently.
#[instrument(skip(executor, types))]
pub async fn read_after<'e>(
    executor: impl PgExecutor<'e>,
    after: GlobalCheckpoint,
    limit: i64,
    types: Option<&[String]>,
) -> Result<Vec<RecordedEvent>, EventStoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM event_store.events e \
         WHERE (e.epoch, e.transaction_id, e.position) > ($1, $2::text::xid8, $3) \
           AND (e.epoch <> (SELECT coalesce(event_store.epoch_here(), 0)) \
                OR e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())) \
           AND ($5::text[] IS NULL OR e.aggregate_type = ANY($5)) \
           AND NOT EXISTS (SELECT 1 FROM event_store.skipped_events s WHERE s.position = e.position) \
         ORDER BY e.epoch, e.transaction_id, e.position \
         LIMIT $4"
    ))
    .bind(after.epoch)
    .bind(after.transaction_id.to_string())
    .bind(after.position)
    .bind(limit)
    .bind(types)
    .fetch_all(executor)
    .await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        match decode_row(row) {
            Ok(event) => events.push(event),
            Err(error @ EventStoreError::PoisonedLog { .. }) if events.is_empty() => {
                return Err(error)
            }
            Err(EventStoreError::PoisonedLog { .. }) => break,
            Err(other) => return Err(other),
        }
    }
    Ok(events)
}

/// Where the named reader got to, or the start of the log.
pub async fn read_checkpoint<'e>(
    executor: impl PgExecutor<'e>,
    name: &str,
) -> Result<GlobalCheckpoint, EventStoreError> {
    let row = sqlx::query(
        "SELECT epoch, transaction_id::text::bigint AS transaction_id, position \
         FROM event_store.checkpoints WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(executor)
    .await?;
    Ok(match row {
        Some(row) => GlobalCheckpoint {
            epoch: row.try_get("epoch")?,
            transaction_id: row.try_get("transaction_id")?,
            position: row.try_get("position")?,
        },
        None => GlobalCheckpoint::default(),
    })
}

/// Compare-and-set: moves the named checkpoint from `from` to `to` (later in
/// the log). False when the stored checkpoint is no longer `from`: someone
/// else moved it (an operator's reset, another relay), and the caller must
/// re-read it rather than overwrite it.
pub async fn advance_checkpoint<'e>(
    executor: impl PgExecutor<'e>,
    name: &str,
    from: GlobalCheckpoint,
    to: GlobalCheckpoint,
) -> Result<bool, EventStoreError> {
    debug_assert!(to > from, "a checkpoint only moves forward");
    let changed = sqlx::query(
        "WITH updated AS ( \
           UPDATE event_store.checkpoints SET epoch = $5, transaction_id = $6::text::xid8, position = $7, updated_at = now() \
           WHERE name = $1 AND (epoch, transaction_id, position) = ($2, $3::text::xid8, $4) \
           RETURNING 1), \
         inserted AS ( \
           INSERT INTO event_store.checkpoints (name, epoch, transaction_id, position) \
           SELECT $1, $5, $6::text::xid8, $7 \
           WHERE ($2, $3, $4) = (0::bigint, '0', 0::bigint) \
             AND NOT EXISTS (SELECT 1 FROM event_store.checkpoints WHERE name = $1) \
           ON CONFLICT (name) DO NOTHING \
           RETURNING 1) \
         SELECT (SELECT count(*) FROM updated) + (SELECT count(*) FROM inserted)",
    )
    .bind(name)
    .bind(from.epoch)
    .bind(from.transaction_id.to_string())
    .bind(from.position)
    .bind(to.epoch)
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .fetch_one(executor)
    .await
    .map(|row: PgRow| row.get::<i64, _>(0))?;
    Ok(changed == 1)
}

/// The token of the last event in the log; the start of the log when empty.
pub async fn log_head<'e>(
    executor: impl PgExecutor<'e>,
) -> Result<ConsistencyToken, EventStoreError> {
    let row = sqlx::query(
        "SELECT epoch, transaction_id::text::bigint AS transaction_id, position FROM event_store.events \
         ORDER BY epoch DESC, transaction_id DESC, position DESC LIMIT 1",
    )
    .fetch_optional(executor)
    .await?;
    Ok(ConsistencyToken::new(match row {
        Some(row) => GlobalCheckpoint {
            epoch: row.try_get("epoch")?,
            transaction_id: row.try_get("transaction_id")?,
            position: row.try_get("position")?,
        },
        None => GlobalCheckpoint::default(),
    }))
}

fn decode_row(row: &PgRow) -> Result<RecordedEvent, EventStoreError> {
    let event_id = row.try_get("event_id")?;
    let position = row.try_get("position")?;
    let metadata: serde_json::Value = row.try_get("metadata")?;
    let metadata: EventMetadata =
        serde_json::from_value(metadata).map_err(|e| EventStoreError::PoisonedLog {
            position,
            event_id,
            reason: format!("metadata: {e}"),
        })?;
    recorded(row, metadata)
}

fn decode_row_lenient(row: &PgRow) -> Result<RecordedEvent, EventStoreError> {
    recorded(row, EventMetadata::default())
}

fn recorded(row: &PgRow, metadata: EventMetadata) -> Result<RecordedEvent, EventStoreError> {
    Ok(RecordedEvent {
        position: row.try_get("position")?,
        epoch: row.try_get("epoch")?,
        transaction_id: row.try_get("transaction_id")?,
        event_id: row.try_get("event_id")?,
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
