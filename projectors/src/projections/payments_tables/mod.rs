//! The payments' relational read model: `read_model.payments` and
//! `payment_refunds`, exactly as the seed defines them, kept from the
//! payment aggregate's events (one stream per payment, on the `payment`
//! topic). `PaymentInitiated` writes the payment's row; the provider's
//! reports move its status and record the provider's references; each
//! refund request writes a refund row, which its result settles; a refund
//! that completes the capture makes the payment `refunded`. Column by
//! column in `one_event`.
//!
//! Each batch is one transaction, applied event by event, with each
//! payment's last applied version (`projected_versions`) written in it, so a
//! redelivered or replayed event is a no-op. Amounts are written as the
//! events carry them (`Money`, two decimals) into the seed's DECIMAL(10,2).
//! An event the tables refuse (a value out of a column's range) is
//! dead-lettered in the transaction that records it handled, and the later
//! events of its payment in the same batch follow it into the dead letters,
//! so a payment never shows a hole in its history.
//!
//! **The order's row.** `payments.order_id` references `orders(id)`, which
//! orders-tables writes from the order topic: a payment may arrive before
//! its order's row. The foreign key is never dropped nor deferred; instead
//! an initiation whose order row is missing parks (`runtime::parking`) under
//! `order:{id}`, with the later events of its payment queued behind it
//! (`aggregate:{id}`), as orders-tables parks an order that arrives before
//! its customer or products. No write of this projection creates an order
//! row, so nothing here can release on write: the parked payments whose
//! order row exists by then are released and applied at the start of every
//! batch, and by [`PaymentsTables::retry_parked`], which the projectors
//! process runs every [`DEFAULT_RETRY_PARKED_EVERY`] under the projection's
//! batch guard, so that a payment waits no longer than that once its order
//! is there, even when no other payment event arrives. A payment parked for
//! longer than `parked_max_age` is dead-lettered with its queue, as
//! everywhere: an order that is never written (its placement dead-lettered)
//! never holds the payment up for good.
//!
//! A new generation (blue/green, `read_model_next_payments`) points at the
//! live orders, in `read_model`. A rebuild in place of orders-tables (or of
//! users-tables, whose truncation cascades to the orders) truncates the
//! orders with CASCADE, which empties these tables too (the seed's
//! `ON DELETE CASCADE`); payments-tables must then be rebuilt
//! (`projectors replay payments-tables`). A blue/green rebuild of
//! orders-tables re-points the payments' foreign key and keeps their rows.

mod generation;
mod one_event;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::payment::PaymentEvent;
use infrastructure::consistency::PAYMENTS_TABLES;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use sqlx::{Connection, PgPool, Postgres, Transaction};

use crate::runtime::parking::Parking;
use crate::runtime::{
    dead_letters, BatchGuard, DeadLetter, NextGeneration, Projection, ProjectionError,
};
use crate::stores::postgres::PgReadModel;
use crate::stores::postgres::{pool_in_schema, LIVE_SCHEMA};

pub const NAME: &str = PAYMENTS_TABLES.projection;

const READ_MODEL: PgReadModel = PgReadModel {
    projection: NAME,
    probe_table: "payments",
    // No CASCADE: nothing outside the set points at these tables, and a
    // table that one day does must not be emptied by this reset unseen.
    truncate: "TRUNCATE payment_refunds, payments",
};
const TYPES: &[&str] = PAYMENTS_TABLES.aggregate_types;

/// How long an event may stay parked before it is dead-lettered, unless
/// configured otherwise.
pub const DEFAULT_PARKED_MAX_AGE: Duration = Duration::from_secs(3600);

/// How often the projectors process looks for parked payments whose order
/// rows have been written.
pub const DEFAULT_RETRY_PARKED_EVERY: Duration = Duration::from_secs(5);

pub struct PaymentsTables {
    pool: PgPool,
    upcasters: Upcasters,
    parking: Parking,
    parked_max_age: Duration,
    /// One batch or retry of parked payments at a time in this process, so
    /// the periodic retry never contends with the worker's batch for locks.
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// What applying one payment event came to.
enum Outcome {
    Applied,
    /// Needs the order row `key` names.
    Waiting(String),
    /// Can never apply.
    Rejected(String),
}

/// The payments dead-lettered in this transaction, by aggregate id, with the
/// id of the event that was refused and why: their later events follow it.
type Refused = HashMap<String, (uuid::Uuid, String)>;

impl PaymentsTables {
    /// Writes the live generation, in `read_model`, through connections of
    /// its own made like `pool`'s.
    pub fn new(pool: PgPool, upcasters: Upcasters) -> Self {
        Self {
            pool: pool_in_schema(&pool, LIVE_SCHEMA),
            upcasters,
            parking: Parking::new(NAME),
            parked_max_age: DEFAULT_PARKED_MAX_AGE,
            gate: Arc::default(),
        }
    }

    /// Dead-letters events parked for longer than `max_age`.
    pub fn with_parked_max_age(mut self, max_age: Duration) -> Self {
        self.parked_max_age = max_age;
        self
    }

    /// Expires what has waited too long, then applies the parked payments
    /// whose order rows are written now; returns the dead letters, already
    /// recorded. What a batch does first, for when no batch comes.
    pub async fn retry_parked(&self) -> Result<Vec<DeadLetter>, ProjectionError> {
        let _gate = self.gate.lock().await;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(ProjectionError::unavailable)?;
        let mut letters = Vec::new();
        let mut refused = Refused::new();
        if self
            .expire_and_release(&mut tx, &mut letters, &mut refused)
            .await?
        {
            tx.commit().await.map_err(ProjectionError::unavailable)?;
        }
        Ok(letters)
    }

    /// Runs [`Self::retry_parked`] every `every` until `shutdown` resolves,
    /// each time under the projection's batch guard (taken on `guard_pool`,
    /// the event store's), as a worker's batch, so a blue/green swap never
    /// runs half-way through it.
    pub async fn retry_parked_every(
        self: Arc<Self>,
        guard_pool: PgPool,
        every: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(every) => {}
            }
            let guard = match BatchGuard::enter(&guard_pool, NAME).await {
                Ok(guard) => guard,
                Err(error) => {
                    tracing::warn!(projection = NAME, %error, "cannot enter the batch guard to retry parked payments");
                    continue;
                }
            };
            let retried = self.retry_parked().await;
            if let Err(error) = guard.leave().await {
                tracing::warn!(projection = NAME, %error, "batch guard ended with an error");
            }
            match retried {
                Ok(letters) if !letters.is_empty() => {
                    metrics::counter!("projector_dead_letters_total", "projection" => NAME)
                        .increment(letters.len() as u64);
                    tracing::warn!(
                        projection = NAME,
                        count = letters.len(),
                        "parked payments dead-lettered"
                    );
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(projection = NAME, %error, "parked payments not retried")
                }
            }
        }
    }

    /// When anything is parked: dead-letters what waited too long, then
    /// releases and applies the payments whose order rows exist. Returns
    /// whether anything was parked.
    async fn expire_and_release(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        letters: &mut Vec<DeadLetter>,
        refused: &mut Refused,
    ) -> Result<bool, ProjectionError> {
        let any_parked = self
            .parking
            .any_parked(tx)
            .await
            .map_err(ProjectionError::unavailable)?;
        if !any_parked {
            return Ok(false);
        }
        letters.extend(
            self.parking
                .expire(tx, self.parked_max_age)
                .await
                .map_err(ProjectionError::unavailable)?,
        );
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT waiting_for FROM parked_events \
             WHERE projection = $1 AND waiting_for NOT LIKE 'aggregate:%'",
        )
        .bind(NAME)
        .fetch_all(&mut **tx)
        .await
        .map_err(ProjectionError::unavailable)?;
        let ready = one_event::present(tx, &keys)
            .await
            .map_err(ProjectionError::unavailable)?;
        let mut any_parked = true;
        for key in ready {
            let (released, undecodable) = self
                .parking
                .release(tx, &key)
                .await
                .map_err(ProjectionError::unavailable)?;
            letters.extend(undecodable);
            for event in released {
                self.project(tx, &event, letters, refused, &mut any_parked)
                    .await?;
            }
        }
        Ok(true)
    }

    /// Applies `event`, parks it, or dead-letters it.
    async fn project(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: &RecordedEvent,
        letters: &mut Vec<DeadLetter>,
        refused: &mut Refused,
        any_parked: &mut bool,
    ) -> Result<(), ProjectionError> {
        if self.applied(tx, event).await? {
            return Ok(());
        }
        // Only a payment with a parked earlier event queues behind it; with
        // nothing parked at all, the lookup is skipped.
        if *any_parked && self.behind_parked(tx, event).await? {
            return Ok(());
        }
        let outcome = match refused.get(&event.aggregate_id) {
            Some((head, reason)) => Outcome::Rejected(format!(
                "follows event {head} of the same aggregate, dead-lettered: {reason}"
            )),
            None => self.try_apply(tx, event).await?,
        };
        let result: Result<(), sqlx::Error> = async {
            match outcome {
                Outcome::Waiting(key) => {
                    tracing::debug!(aggregate_id = %event.aggregate_id, version = event.version, waiting_for = %key, "payment parked");
                    self.parking.park(tx, event, &key).await?;
                    *any_parked = true;
                }
                Outcome::Rejected(reason) => {
                    // In the transaction that marks the event handled: a
                    // crash cannot keep one without the other.
                    let letter = DeadLetter::for_event(event, reason);
                    dead_letters::write(&mut **tx, NAME, std::slice::from_ref(&letter)).await?;
                    refused
                        .entry(event.aggregate_id.clone())
                        .or_insert_with(|| (event.event_id, letter.reason.clone()));
                    letters.push(letter);
                    READ_MODEL
                        .record_version(tx, &event.aggregate_id, event.version)
                        .await?;
                }
                Outcome::Applied => {
                    READ_MODEL
                        .record_version(tx, &event.aggregate_id, event.version)
                        .await?;
                }
            }
            Ok(())
        }
        .await;
        result.map_err(ProjectionError::unavailable)
    }

    /// Whether `event`'s payment is applied up to its version already.
    async fn applied(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: &RecordedEvent,
    ) -> Result<bool, ProjectionError> {
        let applied: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM projected_versions \
             WHERE projection = $1 AND aggregate_id = $2 FOR UPDATE",
        )
        .bind(NAME)
        .bind(&event.aggregate_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(ProjectionError::unavailable)?;
        Ok(applied.is_some_and(|v| v >= event.version))
    }

    /// Whether an earlier event of `event`'s payment is parked; if so,
    /// `event` is parked behind it.
    async fn behind_parked(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: &RecordedEvent,
    ) -> Result<bool, ProjectionError> {
        let queued = async {
            if !self.parking.behind_parked(tx, event).await? {
                return Ok(false);
            }
            let key = format!("aggregate:{}", event.aggregate_id);
            // Under the key's lock, the head may turn out released already
            // by another worker's committed transaction.
            self.parking.lock_key(tx, &key).await?;
            if !self.parking.behind_parked(tx, event).await? {
                return Ok(false);
            }
            self.parking.park(tx, event, &key).await?;
            Ok::<_, sqlx::Error>(true)
        };
        queued.await.map_err(ProjectionError::unavailable)
    }

    /// One try at applying `event` in a savepoint of `tx`, kept only when
    /// the event applied. A value the database refuses can never apply; a
    /// payment whose order row is missing waits for it.
    async fn try_apply(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: &RecordedEvent,
    ) -> Result<Outcome, ProjectionError> {
        if event.aggregate_type != "payment" {
            return Ok(Outcome::Rejected(format!(
                "unexpected aggregate type {}",
                event.aggregate_type
            )));
        }
        let decoded: PaymentEvent = match self.upcasters.decode(event) {
            Ok(decoded) => decoded,
            Err(error) => return Ok(Outcome::Rejected(error.to_string())),
        };
        let result = async {
            if let Some(key) = one_event::missing_parent(tx, &decoded).await? {
                return Ok(Outcome::Waiting(key));
            }
            let mut savepoint = tx.begin().await?;
            match one_event::apply(&mut savepoint, &decoded).await {
                Ok(()) => {
                    savepoint.commit().await?;
                    Ok(Outcome::Applied)
                }
                Err(sqlx::Error::Database(error))
                    if error
                        .code()
                        .is_some_and(|c| c.starts_with("22") || c.starts_with("23")) =>
                {
                    savepoint.rollback().await?;
                    if error.code().as_deref() == Some("23503") {
                        // An order row present a moment ago is gone (its
                        // tables were emptied for a rebuild): wait for it
                        // again.
                        if let Some(key) = one_event::missing_parent(tx, &decoded).await? {
                            return Ok(Outcome::Waiting(key));
                        }
                    }
                    Ok(Outcome::Rejected(error.message().to_owned()))
                }
                Err(other) => Err(other),
            }
        };
        result.await.map_err(ProjectionError::unavailable)
    }
}

#[async_trait]
impl Projection for PaymentsTables {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        TYPES
    }

    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let _gate = self.gate.lock().await;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(ProjectionError::unavailable)?;
        let mut letters = Vec::new();
        let mut refused = Refused::new();
        let mut any_parked = self
            .expire_and_release(&mut tx, &mut letters, &mut refused)
            .await?;
        for event in events {
            self.project(&mut tx, event, &mut letters, &mut refused, &mut any_parked)
                .await?;
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
