//! The promotions' relational read model: the seed's `read_model.promotions`
//! and `coupons`, exactly as the seed defines them, and three tables beside
//! them that the seed's columns cannot hold (migration
//! 20261204000001_promotion_tables.sql): `promotion_targets` (the ids a
//! targeted promotion is limited to), `promotion_usage` (the promotion-wide
//! use counter) and `coupon_redemptions` (which order redeemed a coupon, for
//! which user). Kept from the promotion and coupon events.
//!
//! Each batch is one transaction, applied event by event, with each
//! aggregate's last applied version (`projected_versions`) written in it, so
//! a redelivered or replayed event is a no-op. The counters are written as
//! the events carry them, absolute (`usage_count`), never incremented, so
//! even a write applied twice leaves them exact.
//!
//! A coupon and its promotion are two aggregates, on different partitions:
//! a coupon's issue may arrive before its promotion's row is written. It then
//! parks (`runtime::parking`) under `promotion:{id}`, with the later events of
//! the coupon queued behind it in version order, and is released the moment
//! the promotion's creation is applied, as the catalog tables park a product
//! that arrives before its category.

mod generation;
mod one_event;

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use domain::promotion::{CouponEvent, PromotionEvent};
use infrastructure::consistency::PROMOTION_TABLES;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};

use crate::runtime::parking::Parking;
use crate::runtime::{dead_letters, DeadLetter, NextGeneration, Projection, ProjectionError};
use crate::stores::postgres::PgReadModel;
use crate::stores::postgres::{pool_in_schema, LIVE_SCHEMA};

pub const NAME: &str = PROMOTION_TABLES.projection;

const READ_MODEL: PgReadModel = PgReadModel {
    projection: NAME,
    probe_table: "promotions",
    // No CASCADE: nothing outside the set points at these tables, and a
    // table that one day does must not be emptied by this reset unseen.
    truncate: "TRUNCATE coupon_redemptions, promotion_usage, promotion_targets, coupons, \
         promotions",
};
const TYPES: &[&str] = PROMOTION_TABLES.aggregate_types;

/// How long an event may stay parked before it is dead-lettered, unless
/// configured otherwise.
pub const DEFAULT_PARKED_MAX_AGE: Duration = Duration::from_secs(3600);

pub struct PromotionTables {
    pool: PgPool,
    upcasters: Upcasters,
    parking: Parking,
    parked_max_age: Duration,
}

/// What applying one event came to.
enum Outcome {
    /// Written; the keys whose parked events may now go ahead.
    Applied(Vec<String>),
    /// Needs `key` to exist first.
    Waiting(String),
    /// Can never apply.
    Rejected(String),
}

enum Decoded {
    Promotion(PromotionEvent),
    Coupon(CouponEvent),
}

impl PromotionTables {
    /// Writes the live generation, in `read_model`, through connections of
    /// its own made like `pool`'s.
    pub fn new(pool: PgPool, upcasters: Upcasters) -> Self {
        Self {
            pool: pool_in_schema(&pool, LIVE_SCHEMA),
            upcasters,
            parking: Parking::new(NAME),
            parked_max_age: DEFAULT_PARKED_MAX_AGE,
        }
    }

    /// Dead-letters events parked for longer than `max_age`.
    pub fn with_parked_max_age(mut self, max_age: Duration) -> Self {
        self.parked_max_age = max_age;
        self
    }

    /// Applies `event` and whatever its effect releases from parking.
    async fn project(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: &RecordedEvent,
        letters: &mut Vec<DeadLetter>,
        any_parked: &mut bool,
    ) -> Result<(), sqlx::Error> {
        let mut queue = VecDeque::from([event.clone()]);
        while let Some(event) = queue.pop_front() {
            let applied: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM projected_versions \
                 WHERE projection = $1 AND aggregate_id = $2 FOR UPDATE",
            )
            .bind(NAME)
            .bind(&event.aggregate_id)
            .fetch_optional(&mut **tx)
            .await?;
            if applied.is_some_and(|v| v >= event.version) {
                continue;
            }
            // Only an aggregate with a parked earlier event must queue behind
            // it; with nothing parked at all, the lookup is skipped.
            if *any_parked && self.parking.behind_parked(tx, &event).await? {
                let key = format!("aggregate:{}", event.aggregate_id);
                // Under the key's lock, the head may turn out released already
                // by another worker's committed transaction.
                self.parking.lock_key(tx, &key).await?;
                if self.parking.behind_parked(tx, &event).await? {
                    self.parking.park(tx, &event, &key).await?;
                    continue;
                }
            }

            let mut outcome = self.try_apply(tx, &event).await?;
            if let Outcome::Waiting(key) = &outcome {
                // Parking and releasing a key take its lock: a release that
                // committed before we got it is seen by this second try, and
                // one still to come waits for our commit and sees our row.
                let key = key.clone();
                self.parking.lock_key(tx, &key).await?;
                outcome = self.try_apply(tx, &event).await?;
            }
            match outcome {
                Outcome::Waiting(key) => {
                    tracing::debug!(aggregate_id = %event.aggregate_id, version = event.version, waiting_for = %key, "event parked");
                    self.parking.park(tx, &event, &key).await?;
                    *any_parked = true;
                }
                Outcome::Rejected(reason) => {
                    // In the transaction that marks the event handled: a crash
                    // cannot keep one without the other.
                    let letter = DeadLetter::for_event(&event, reason);
                    dead_letters::write(&mut **tx, NAME, std::slice::from_ref(&letter)).await?;
                    // The coupons waiting for the promotion this event would
                    // have created would wait forever. Looked up even with
                    // nothing parked when the batch began: a rejection is
                    // rare, and another worker may have parked since.
                    if event.version == 1 {
                        let waiting_for =
                            format!("{}:{}", event.aggregate_type, event.aggregate_id);
                        let reason = format!("waits on an event dead-lettered: {}", letter.reason);
                        letters.extend(
                            self.parking
                                .dead_letter_waiters(tx, &waiting_for, &reason)
                                .await?,
                        );
                    }
                    letters.push(letter);
                    READ_MODEL
                        .record_version(tx, &event.aggregate_id, event.version)
                        .await?;
                }
                Outcome::Applied(releases) => {
                    READ_MODEL
                        .record_version(tx, &event.aggregate_id, event.version)
                        .await?;
                    // Even with nothing parked when the batch began: another
                    // worker may have parked on the key since, and its lock
                    // makes this release wait for that park to commit.
                    for key in releases {
                        let (released, undecodable) = self.parking.release(tx, &key).await?;
                        letters.extend(undecodable);
                        queue.extend(released);
                    }
                }
            }
        }
        Ok(())
    }

    /// One try at applying `event` in a savepoint of `tx`, kept only when
    /// the event applied. A value the database refuses (a code another
    /// coupon holds, a number out of the column's range) can never apply.
    async fn try_apply(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: &RecordedEvent,
    ) -> Result<Outcome, sqlx::Error> {
        let mut savepoint = tx.begin().await?;
        let outcome = match self.apply_one(&mut savepoint, event).await {
            Ok(outcome) => outcome,
            Err(sqlx::Error::Database(error))
                if error
                    .code()
                    .is_some_and(|c| c.starts_with("22") || c.starts_with("23")) =>
            {
                Outcome::Rejected(error.message().to_owned())
            }
            Err(other) => return Err(other),
        };
        match outcome {
            Outcome::Applied(_) => savepoint.commit().await?,
            _ => savepoint.rollback().await?,
        }
        Ok(outcome)
    }

    async fn apply_one(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<Outcome, sqlx::Error> {
        let decoded = match event.aggregate_type.as_str() {
            "promotion" => self.upcasters.decode(event).map(Decoded::Promotion),
            "coupon" => self.upcasters.decode(event).map(Decoded::Coupon),
            other => {
                return Ok(Outcome::Rejected(format!(
                    "unexpected aggregate type {other}"
                )))
            }
        };
        match decoded {
            Err(error) => Ok(Outcome::Rejected(error.to_string())),
            Ok(Decoded::Promotion(e)) => one_event::apply_promotion(conn, e).await,
            Ok(Decoded::Coupon(e)) => one_event::apply_coupon(conn, e).await,
        }
    }
}

#[async_trait]
impl Projection for PromotionTables {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        TYPES
    }

    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(ProjectionError::unavailable)?;
        let mut any_parked = self
            .parking
            .any_parked(&mut tx)
            .await
            .map_err(ProjectionError::unavailable)?;
        let mut letters = Vec::new();
        if any_parked {
            letters = self
                .parking
                .expire(&mut tx, self.parked_max_age)
                .await
                .map_err(ProjectionError::unavailable)?;
        }
        for event in events {
            self.project(&mut tx, event, &mut letters, &mut any_parked)
                .await
                .map_err(ProjectionError::unavailable)?;
        }
        tx.commit().await.map_err(ProjectionError::unavailable)?;
        Ok(letters)
    }

    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        READ_MODEL.is_intact(&self.pool).await
    }

    async fn probe(&self) -> Result<(), ProjectionError> {
        READ_MODEL.probe(&self.pool).await
    }

    async fn next_generation(&self) -> Result<Option<Box<dyn NextGeneration>>, ProjectionError> {
        self.create_next_generation().await.map(Some)
    }

    async fn forget_applied(
        &self,
        aggregate_id: &str,
        version: i64,
    ) -> Result<(), ProjectionError> {
        READ_MODEL
            .forget_applied(&self.pool, aggregate_id, version)
            .await
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        READ_MODEL.reset(&self.pool).await
    }
}
