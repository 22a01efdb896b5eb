//! What an operator needs to know about the relay, read from the database so
//! that every process's `/health` can tell it, whichever process leads: the
//! lag (events and seconds), who holds the lease, an undecodable event that
//! stops the log, and a stall: events already committed that no tailer may
//! read yet because an older transaction somewhere in the cluster is still
//! running (the price of the gap-free read), with that transaction's pid and
//! age.

use serde::Serialize;
use sqlx::postgres::PgPool;
use sqlx::Row;

use super::lease_name;
use crate::event_store::postgres::{read_after, read_checkpoint};
use crate::event_store::{EventStoreError, GlobalCheckpoint};
use crate::settings::RelaySettings;

/// Pending events are counted up to this many; past it the lag is "at least".
const LAG_COUNT_LIMIT: i64 = 100_000;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RelayStatus {
    pub checkpoint: GlobalCheckpoint,
    /// Events after the checkpoint not yet published (at most `LAG_COUNT_LIMIT`).
    pub lag_events: i64,
    /// Age of the oldest event not yet published.
    pub lag_seconds: f64,
    pub leader: Option<Leader>,
    /// Committed events after the checkpoint that the read must still hold back.
    pub held_back_events: i64,
    /// The oldest running transaction with a transaction id: the one holding
    /// the log back.
    pub oldest_transaction: Option<Transaction>,
    /// Set when held-back events have waited past `stall_degraded_after_seconds`.
    pub stalled: bool,
    pub poisoned: Option<PoisonedEvent>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Leader {
    pub pid: i32,
    pub application_name: String,
    pub client_addr: Option<String>,
    pub since: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Transaction {
    /// None for a prepared (two-phase) transaction, which has no backend.
    pub pid: Option<i32>,
    pub application_name: Option<String>,
    pub state: Option<String>,
    pub age_seconds: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoisonedEvent {
    pub position: i64,
    pub event_id: uuid::Uuid,
    pub reason: String,
}

impl RelayStatus {
    /// True when an operator must act: a stall past its bound, or a poisoned log.
    pub fn is_degraded(&self) -> bool {
        self.stalled || self.poisoned.is_some()
    }

    /// Reads the status of the relay named in `settings`, and publishes it
    /// as gauges.
    pub async fn read(pool: &PgPool, settings: &RelaySettings) -> Result<Self, EventStoreError> {
        let checkpoint = read_checkpoint(pool, &settings.name).await?;
        let lag = sqlx::query(
            "WITH pending AS ( \
               SELECT e.recorded_at, e.epoch, e.transaction_id FROM event_store.events e \
               WHERE (e.epoch, e.transaction_id, e.position) > ($1, $2::text::xid8, $3) \
                 AND NOT EXISTS (SELECT 1 FROM event_store.skipped_events s WHERE s.position = e.position) \
               ORDER BY e.epoch, e.transaction_id, e.position LIMIT $4) \
             SELECT count(*) AS events, \
                    coalesce(extract(epoch FROM now() - min(recorded_at))::float8, 0) AS seconds, \
                    count(*) FILTER (WHERE epoch = (SELECT coalesce(event_store.epoch_here(), 0)) \
                                     AND transaction_id >= pg_snapshot_xmin(pg_current_snapshot())) AS held_back \
             FROM pending",
        )
        .bind(checkpoint.epoch)
        .bind(checkpoint.transaction_id.to_string())
        .bind(checkpoint.position)
        .bind(LAG_COUNT_LIMIT)
        .fetch_one(pool)
        .await?;
        let lag_events: i64 = lag.try_get("events")?;
        let lag_seconds: f64 = lag.try_get("seconds")?;
        let held_back_events: i64 = lag.try_get("held_back")?;

        let leader = sqlx::query(
            "SELECT a.pid, coalesce(a.application_name, '') AS application_name, \
                    a.client_addr::text AS client_addr, a.backend_start \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid, \
                  (SELECT hashtextextended($1, 0) AS k) key \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND l.classid = ((key.k >> 32) & 4294967295)::oid \
               AND l.objid = (key.k & 4294967295)::oid",
        )
        .bind(lease_name(&settings.name))
        .fetch_optional(pool)
        .await?
        .map(|row| {
            Ok::<_, sqlx::Error>(Leader {
                pid: row.try_get("pid")?,
                application_name: row.try_get("application_name")?,
                client_addr: row.try_get("client_addr")?,
                since: row.try_get("backend_start")?,
            })
        })
        .transpose()?;

        let oldest_transaction = sqlx::query(
            "SELECT pid, application_name, state, age_seconds FROM ( \
               SELECT pid, application_name, state, backend_xid AS xid, \
                      extract(epoch FROM now() - xact_start)::float8 AS age_seconds \
               FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() \
               UNION ALL \
               SELECT NULL, gid, 'prepared', transaction, extract(epoch FROM now() - prepared)::float8 \
               FROM pg_prepared_xacts) t \
             ORDER BY age(xid) DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await?
        .map(|row| {
            Ok::<_, sqlx::Error>(Transaction {
                pid: row.try_get("pid")?,
                application_name: row.try_get("application_name")?,
                state: row.try_get("state")?,
                age_seconds: row.try_get("age_seconds")?,
            })
        })
        .transpose()?;

        let poisoned = match read_after(pool, checkpoint, 1, None).await {
            Err(EventStoreError::PoisonedLog {
                position,
                event_id,
                reason,
            }) => Some(PoisonedEvent {
                position,
                event_id,
                reason,
            }),
            Err(other) => return Err(other),
            Ok(_) => None,
        };

        let holder_age = oldest_transaction.as_ref().map_or(0.0, |t| t.age_seconds);
        let stalled =
            held_back_events > 0 && holder_age >= settings.stall_degraded_after_seconds as f64;
        metrics::gauge!("relay_lag_events").set(lag_events as f64);
        metrics::gauge!("relay_lag_seconds").set(lag_seconds);
        metrics::gauge!("relay_stall_seconds").set(if held_back_events > 0 {
            holder_age
        } else {
            0.0
        });
        Ok(Self {
            checkpoint,
            lag_events,
            lag_seconds,
            leader,
            held_back_events,
            oldest_transaction,
            stalled,
            poisoned,
        })
    }
}
