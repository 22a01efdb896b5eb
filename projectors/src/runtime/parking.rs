//! Parking for the PostgreSQL projections (`parked_events`): an
//! event that needs a row another aggregate has not written yet waits under a
//! key (`category:{id}`, a slug, ...), and the later events of its aggregate
//! queue behind it (`aggregate:{id}`) in version order.
//!
//! Parking and releasing a key take a transaction-scoped advisory lock on it,
//! so two workers cannot park behind a head the other has just released.
//! Parking is bounded: an event parked for longer than the projection's
//! maximum age is dead-lettered, and so is everything that waits on it: the
//! events queued behind it, and the events waiting for the aggregate it would
//! have created. A parked envelope that no longer decodes is dead-lettered
//! too; nothing waits forever and nothing vanishes.

use std::time::Duration;

use infrastructure::event_store::RecordedEvent;
use sqlx::PgConnection;

use super::dead_letters::{self, DeadLetter};

#[derive(Debug, Clone, Copy)]
pub struct Parking {
    projection: &'static str,
}

impl Parking {
    pub fn new(projection: &'static str) -> Self {
        Self { projection }
    }

    /// Serializes parking on `key` with releasing it, across workers, until
    /// the transaction ends.
    pub async fn lock_key(&self, conn: &mut PgConnection, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("{}/{key}", self.projection))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// `lock_key` for several keys in one statement, in a fixed order, so
    /// that two workers locking overlapping sets cannot deadlock.
    pub async fn lock_keys(
        &self,
        conn: &mut PgConnection,
        keys: &[String],
    ) -> Result<(), sqlx::Error> {
        let scoped: Vec<String> = keys
            .iter()
            .map(|key| format!("{}/{key}", self.projection))
            .collect();
        sqlx::query(
            "SELECT count(pg_advisory_xact_lock(h)) FROM \
             (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k ORDER BY h) AS sorted",
        )
        .bind(&scoped)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Those of `keys` that parked events wait for.
    pub async fn keys_with_waiters(
        &self,
        conn: &mut PgConnection,
        keys: &[String],
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT DISTINCT waiting_for FROM parked_events \
             WHERE projection = $1 AND waiting_for = ANY($2)",
        )
        .bind(self.projection)
        .bind(keys)
        .fetch_all(conn)
        .await
    }

    pub async fn any_parked(&self, conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM parked_events WHERE projection = $1)")
            .bind(self.projection)
            .fetch_one(conn)
            .await
    }

    /// Whether any of `aggregates` (ids) has a parked event.
    pub async fn any_of_aggregates(
        &self,
        conn: &mut PgConnection,
        aggregates: &[&str],
    ) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM parked_events \
             WHERE projection = $1 AND aggregate_id = ANY($2))",
        )
        .bind(self.projection)
        .bind(aggregates)
        .fetch_one(conn)
        .await
    }

    /// Whether an earlier event of `event`'s aggregate is parked: it then
    /// queues behind that one.
    pub async fn behind_parked(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM parked_events \
             WHERE projection = $1 AND aggregate_id = $2 AND version < $3)",
        )
        .bind(self.projection)
        .bind(&event.aggregate_id)
        .bind(event.version)
        .fetch_one(conn)
        .await
    }

    pub async fn park(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
        key: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO parked_events (projection, aggregate_id, version, waiting_for, envelope) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (projection, aggregate_id, version) DO NOTHING",
        )
        .bind(self.projection)
        .bind(&event.aggregate_id)
        .bind(event.version)
        .bind(key)
        .bind(serde_json::to_value(event).expect("recorded events serialize"))
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Takes the events waiting for `key`, each followed by the events queued
    /// behind it, in version order; an envelope that no longer decodes comes
    /// back as a dead letter, already recorded.
    pub async fn release(
        &self,
        conn: &mut PgConnection,
        key: &str,
    ) -> Result<(Vec<RecordedEvent>, Vec<DeadLetter>), sqlx::Error> {
        let envelopes = self.take_waiters(conn, key).await?;
        let mut events = Vec::with_capacity(envelopes.len());
        let mut undecodable = Vec::new();
        for envelope in envelopes {
            match serde_json::from_value::<RecordedEvent>(envelope.clone()) {
                Ok(event) => events.push(event),
                Err(error) => undecodable.push(letter_for_envelope(
                    &envelope,
                    key,
                    format!("parked envelope no longer decodes: {error}"),
                )),
            }
        }
        dead_letters::write(&mut *conn, self.projection, &undecodable).await?;
        Ok((events, undecodable))
    }

    /// Dead-letters, with `reason`, every event waiting for `key` and,
    /// transitively, everything waiting on those: the events queued behind
    /// them, and the events waiting for an aggregate one of them would have
    /// created. Returns the letters, already recorded.
    pub async fn dead_letter_waiters(
        &self,
        conn: &mut PgConnection,
        key: &str,
        reason: &str,
    ) -> Result<Vec<DeadLetter>, sqlx::Error> {
        let mut letters = Vec::new();
        let mut keys = vec![key.to_owned()];
        while let Some(key) = keys.pop() {
            for envelope in self.take_waiters(conn, &key).await? {
                keys.extend(dependent_keys(&envelope));
                letters.push(letter_for_envelope(&envelope, &key, reason.to_owned()));
            }
        }
        dead_letters::write(&mut *conn, self.projection, &letters).await?;
        Ok(letters)
    }

    /// Dead-letters the events parked for longer than `max_age`, with what
    /// waits on them. Returns the letters, already recorded.
    pub async fn expire(
        &self,
        conn: &mut PgConnection,
        max_age: Duration,
    ) -> Result<Vec<DeadLetter>, sqlx::Error> {
        let expired: Vec<(String, String, serde_json::Value)> = sqlx::query_as(
            "DELETE FROM parked_events \
             WHERE projection = $1 AND parked_at < now() - make_interval(secs => $2) \
             AND waiting_for NOT LIKE 'aggregate:%' \
             RETURNING aggregate_id, waiting_for, envelope",
        )
        .bind(self.projection)
        .bind(max_age.as_secs_f64())
        .fetch_all(&mut *conn)
        .await?;
        let mut letters = Vec::new();
        for (_, waiting_for, envelope) in &expired {
            let reason = format!(
                "parked for longer than {} s waiting for {waiting_for}",
                max_age.as_secs()
            );
            letters.push(letter_for_envelope(envelope, waiting_for, reason.clone()));
            dead_letters::write(&mut *conn, self.projection, &letters[letters.len() - 1..]).await?;
            for key in dependent_keys(envelope) {
                let reason = format!("waits on an event dead-lettered: {reason}");
                letters.extend(self.dead_letter_waiters(conn, &key, &reason).await?);
            }
        }
        Ok(letters)
    }

    /// The heads waiting for `key`, each followed by its aggregate's queue.
    async fn take_waiters(
        &self,
        conn: &mut PgConnection,
        key: &str,
    ) -> Result<Vec<serde_json::Value>, sqlx::Error> {
        self.lock_key(conn, key).await?;
        let heads: Vec<(String, serde_json::Value)> = sqlx::query_as(
            "DELETE FROM parked_events WHERE projection = $1 AND waiting_for = $2 \
             RETURNING aggregate_id, envelope",
        )
        .bind(self.projection)
        .bind(key)
        .fetch_all(&mut *conn)
        .await?;
        let mut taken = Vec::new();
        for (aggregate_id, envelope) in heads {
            taken.push(envelope);
            let queue = format!("aggregate:{aggregate_id}");
            self.lock_key(conn, &queue).await?;
            let mut followers: Vec<(i64, serde_json::Value)> = sqlx::query_as(
                "DELETE FROM parked_events WHERE projection = $1 AND waiting_for = $2 \
                 RETURNING version, envelope",
            )
            .bind(self.projection)
            .bind(&queue)
            .fetch_all(&mut *conn)
            .await?;
            followers.sort_by_key(|(version, _)| *version);
            taken.extend(followers.into_iter().map(|(_, envelope)| envelope));
        }
        Ok(taken)
    }
}

/// The keys other events may wait on because of this one: the events of its
/// aggregate queued behind it, and (for a creation) the aggregate itself.
pub fn dependent_keys(envelope: &serde_json::Value) -> Vec<String> {
    let Some(aggregate_id) = envelope["aggregate_id"].as_str() else {
        return Vec::new();
    };
    let mut keys = vec![format!("aggregate:{aggregate_id}")];
    if envelope["version"].as_i64() == Some(1) {
        if let Some(kind) = envelope["aggregate_type"].as_str() {
            keys.push(format!("{kind}:{aggregate_id}"));
        }
    }
    keys
}

fn letter_for_envelope(envelope: &serde_json::Value, key: &str, reason: String) -> DeadLetter {
    DeadLetter {
        event_id: envelope["event_id"].as_str().and_then(|id| id.parse().ok()),
        aggregate_type: envelope["aggregate_type"].as_str().map(str::to_owned),
        aggregate_id: envelope["aggregate_id"].as_str().map(str::to_owned),
        version: envelope["version"].as_i64(),
        source: match envelope["position"].as_i64() {
            Some(position) => format!("position:{position}"),
            None => format!("parked:{key}"),
        },
        reason,
        raw_message: envelope.to_string(),
    }
}
