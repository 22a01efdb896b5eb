//! The orders' relational read model: `read_model.orders` and `order_items`,
//! exactly as the seed defines them, kept from the order aggregate's events
//! (and the erasures of the user topic, below). `OrderPlaced` writes the
//! order and one item per line, a snapshot later catalog changes do not
//! touch; the lifecycle, payment and note events set their columns.
//!
//! Each batch is one transaction, applied event by event, with each order's
//! last applied version (`projected_versions`) written in it, so a
//! redelivered or replayed event is a no-op.
//!
//! **Personal data.** `OrderPlaced`'s `billing_address` and
//! `shipping_address` arrive sealed under the key of the user who placed the
//! order (`infrastructure::personal_data`): they are opened on a copy of the
//! batch before decoding, and an erased person's open to the domain's
//! placeholder address. Parked and dead-lettered events are kept sealed, as
//! they were delivered. An erasure destroys the key, so a rebuild writes the
//! placeholders; the rows already projected are overwritten too, as the
//! users tables delete an erased person's addresses at once
//! (docs/personal-data.md): this projection also consumes the user topic, and
//! its only user event is `UserErased`, which rewrites both addresses of
//! every order of that user with the placeholders and records the user's
//! version. That record marks the customer erased: a placement of theirs
//! applied later (a partition behind the user topic, a parked order
//! released, its addresses opened before the key went) is written with the
//! placeholders too. The erasure and the placements of one customer take
//! the same lock (`customer:{id}`), so one always sees the other's commit.
//! `updated_at` stays the time of the order's own last event, which is what
//! a rebuild writes.
//!
//! **Foreign keys.** `orders.user_id` points at `users` (users-tables) and
//! `order_items.product_id` / `product_variant_id` at `products` /
//! `product_variants` (catalog-tables): rows of other projections, on other
//! topics, which may be written after the order arrives. A placement whose
//! customer, product or variant row is missing parks (`runtime::parking`)
//! under `user:{id}`, `product:{id}` or `product_variant:{id}`, with the
//! later events of its order queued behind it (`aggregate:{id}`). No write of
//! this projection creates those rows, so nothing here can release them on
//! write: the parked heads whose row exists by then are released and applied
//! at the start of every batch, and by [`OrdersTables::retry_parked`], which
//! the projectors process runs every [`DEFAULT_RETRY_PARKED_EVERY`] so that
//! an order waits no longer than that once its parents are there, even when
//! no other event arrives. A released order that still misses another parent
//! parks again under that one. An order parked for longer than
//! `parked_max_age` is dead-lettered with its queue, as everywhere: a parent
//! that is never written (its own event dead-lettered) never holds the order
//! up for good. The foreign keys are never dropped nor deferred.
//!
//! A blue/green rebuild of users-tables or catalog-tables re-points these
//! tables' foreign keys and keeps their rows; a rebuild of either in place
//! truncates its tables with CASCADE, which empties these too (the seed's
//! foreign keys), and calls for a rebuild of this projection afterwards
//! (docs/operations.md, "The orders read model").

mod generation;
mod one_event;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::order::OrderEvent;
use domain::user::UserEvent;
use infrastructure::consistency::ORDERS_TABLES;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use infrastructure::personal_data::{PersonalData, PersonalDataError, ERASURE_EVENT_TYPE};
use sqlx::{Connection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::runtime::parking::Parking;
use crate::runtime::{
    dead_letters, BatchGuard, DeadLetter, NextGeneration, Projection, ProjectionError,
};
use crate::stores::postgres::PgReadModel;
use crate::stores::postgres::{pool_in_schema, LIVE_SCHEMA};

pub const NAME: &str = ORDERS_TABLES.projection;

const READ_MODEL: PgReadModel = PgReadModel {
    projection: NAME,
    probe_table: "orders",
    // CASCADE: the seed's payments point at orders (nothing projects them
    // yet); without it the truncation is refused.
    truncate: "TRUNCATE order_items, orders CASCADE",
};

/// The order topic, and the user topic for the erasures.
const TYPES: &[&str] = &["order", "user"];

/// How long an event may stay parked before it is dead-lettered, unless
/// configured otherwise.
pub const DEFAULT_PARKED_MAX_AGE: Duration = Duration::from_secs(3600);

/// How often the projectors process looks for parked orders whose parent
/// rows have been written.
pub const DEFAULT_RETRY_PARKED_EVERY: Duration = Duration::from_secs(5);

pub struct OrdersTables {
    pool: PgPool,
    upcasters: Upcasters,
    personal: PersonalData,
    parking: Parking,
    parked_max_age: Duration,
    /// One batch or retry of parked orders at a time in this process, so the
    /// periodic retry never contends with the worker's batch for locks.
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// What applying one order event came to.
enum Outcome {
    Applied,
    /// Needs the parent row `key` names.
    Waiting(String),
    /// Can never apply.
    Rejected(String),
}

/// An event of the batch with its personal fields opened, or why they do not
/// open.
type Opened = Result<RecordedEvent, String>;

/// The lock a customer's erasure and placements take.
fn customer_key(customer: Uuid) -> String {
    format!("customer:{customer}")
}

impl OrdersTables {
    /// Writes the live generation, in `read_model`, through connections of
    /// its own made like `pool`'s.
    pub fn new(pool: PgPool, upcasters: Upcasters, personal: PersonalData) -> Self {
        Self {
            pool: pool_in_schema(&pool, LIVE_SCHEMA),
            upcasters,
            personal,
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

    /// Expires what has waited too long, then applies the parked orders
    /// whose parent rows are written now; returns the dead letters, already
    /// recorded. What a batch does first, for when no batch comes.
    pub async fn retry_parked(&self) -> Result<Vec<DeadLetter>, ProjectionError> {
        let _gate = self.gate.lock().await;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(ProjectionError::unavailable)?;
        let mut letters = Vec::new();
        if self.expire_and_release(&mut tx, &mut letters).await? {
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
                    tracing::warn!(projection = NAME, %error, "cannot enter the batch guard to retry parked orders");
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
                        "parked orders dead-lettered"
                    );
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(projection = NAME, %error, "parked orders not retried")
                }
            }
        }
    }

    /// When anything is parked: dead-letters what waited too long, then
    /// releases and applies the orders whose parent rows exist. Returns
    /// whether anything was parked.
    async fn expire_and_release(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        letters: &mut Vec<DeadLetter>,
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
                // Opened now: it was parked sealed.
                self.project(tx, &event, None, letters, &mut any_parked)
                    .await?;
            }
        }
        Ok(true)
    }

    /// Copies of `events` with the personal fields of placements opened, in
    /// one key lookup; when a value does not open, event by event, so that
    /// only the events holding such a value are refused. The other events
    /// are passed on as they came.
    async fn open(&self, events: &[RecordedEvent]) -> Result<Vec<Opened>, ProjectionError> {
        let sealed = |e: &RecordedEvent| {
            e.aggregate_type == "order"
                && self
                    .personal
                    .has_personal_fields(&e.aggregate_type, &e.event_type)
        };
        let mut opened: Vec<RecordedEvent> = events.iter().filter(|e| sealed(e)).cloned().collect();
        match self.personal.open(&mut opened).await {
            Ok(()) => {
                let mut opened = opened.into_iter();
                return Ok(events
                    .iter()
                    .map(|e| match sealed(e) {
                        true => Ok(opened.next().expect("one opened copy per sealed event")),
                        false => Ok(e.clone()),
                    })
                    .collect());
            }
            Err(PersonalDataError::Corrupt { .. }) => {}
            Err(error) => return Err(ProjectionError::unavailable(error)),
        }
        let mut each = Vec::with_capacity(events.len());
        for event in events {
            each.push(match sealed(event) {
                true => self.open_one(event).await?,
                false => Ok(event.clone()),
            });
        }
        Ok(each)
    }

    async fn open_one(&self, event: &RecordedEvent) -> Result<Opened, ProjectionError> {
        let mut opened = [event.clone()];
        match self.personal.open(&mut opened).await {
            Ok(()) => Ok(Ok(opened.into_iter().next().expect("one event"))),
            Err(error @ PersonalDataError::Corrupt { .. }) => Ok(Err(error.to_string())),
            Err(error) => Err(ProjectionError::unavailable(error)),
        }
    }

    /// Applies `event` (as delivered, sealed); `opened` is its opened copy,
    /// `None` for an event released from parking, opened here.
    async fn project(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: &RecordedEvent,
        opened: Option<Opened>,
        letters: &mut Vec<DeadLetter>,
        any_parked: &mut bool,
    ) -> Result<(), ProjectionError> {
        if event.aggregate_type == "user" {
            return self.project_user(tx, event, letters).await;
        }
        if self.applied(tx, event).await? {
            return Ok(());
        }
        // Only an order with a parked earlier event queues behind it; with
        // nothing parked at all, the lookup is skipped.
        if *any_parked && self.behind_parked(tx, event).await? {
            return Ok(());
        }
        let opened = match opened {
            Some(opened) => opened,
            None => self.open_one(event).await?,
        };
        let outcome = self.try_apply(tx, &opened).await?;
        let result: Result<(), sqlx::Error> = async {
            match outcome {
                Outcome::Waiting(key) => {
                    tracing::debug!(aggregate_id = %event.aggregate_id, version = event.version, waiting_for = %key, "order parked");
                    self.parking.park(tx, event, &key).await?;
                    *any_parked = true;
                }
                Outcome::Rejected(reason) => {
                    // In the transaction that marks the event handled: a
                    // crash cannot keep one without the other.
                    let letter = DeadLetter::for_event(event, reason);
                    dead_letters::write(&mut **tx, NAME, std::slice::from_ref(&letter)).await?;
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

    /// Whether `event`'s aggregate is applied up to its version already.
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

    /// The user topic: only an erasure changes anything here. Its version is
    /// recorded, and marks the customer erased; the user's other events are
    /// not recorded at all.
    async fn project_user(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: &RecordedEvent,
        letters: &mut Vec<DeadLetter>,
    ) -> Result<(), ProjectionError> {
        if event.event_type != ERASURE_EVENT_TYPE || self.applied(tx, event).await? {
            return Ok(());
        }
        let result: Result<(), sqlx::Error> = async {
            match self.upcasters.decode::<UserEvent>(event) {
                Ok(UserEvent::UserErased { user_id, .. }) => {
                    self.parking.lock_key(tx, &customer_key(user_id)).await?;
                    let erased = one_event::erase_customer(tx, user_id).await?;
                    tracing::debug!(%user_id, orders = erased, "erased customer's order addresses");
                }
                Ok(_) => {
                    let letter = DeadLetter::for_event(event, "not an erasure");
                    dead_letters::write(&mut **tx, NAME, std::slice::from_ref(&letter)).await?;
                    letters.push(letter);
                }
                Err(error) => {
                    let letter = DeadLetter::for_event(event, error.to_string());
                    dead_letters::write(&mut **tx, NAME, std::slice::from_ref(&letter)).await?;
                    letters.push(letter);
                }
            }
            READ_MODEL
                .record_version(tx, &event.aggregate_id, event.version)
                .await
        }
        .await;
        result.map_err(ProjectionError::unavailable)
    }

    /// Whether an earlier event of `event`'s order is parked; if so, `event`
    /// is parked behind it.
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

    /// One try at applying `opened` in a savepoint of `tx`, kept only when
    /// the event applied.
    async fn try_apply(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        opened: &Opened,
    ) -> Result<Outcome, ProjectionError> {
        let event = match opened {
            Ok(event) => event,
            Err(reason) => return Ok(Outcome::Rejected(reason.clone())),
        };
        let (_, payload) = self.upcasters.upcast(event);
        let decoded: OrderEvent = match serde_json::from_value(payload) {
            Ok(decoded) => decoded,
            Err(error) => {
                return Ok(Outcome::Rejected(undecodable(
                    &self.personal,
                    event,
                    &error,
                )))
            }
        };
        let result = async {
            if let Some(key) = one_event::missing_parent(tx, &decoded).await? {
                return Ok(Outcome::Waiting(key));
            }
            let erased = match &decoded {
                OrderEvent::OrderPlaced {
                    user_id: Some(customer),
                    ..
                } => self.customer_erased(tx, *customer).await?,
                _ => false,
            };
            let mut savepoint = tx.begin().await?;
            match one_event::apply(&mut savepoint, &decoded, erased).await {
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
                        // A parent present a moment ago is gone (its tables
                        // were emptied for a rebuild): wait for it again.
                        return match one_event::missing_parent(tx, &decoded).await? {
                            Some(key) => Ok(Outcome::Waiting(key)),
                            None => Err(sqlx::Error::Database(error)),
                        };
                    }
                    Ok(Outcome::Rejected(error.message().to_owned()))
                }
                Err(other) => Err(other),
            }
        };
        result.await.map_err(ProjectionError::unavailable)
    }

    /// Whether this projection applied `customer`'s erasure, under the lock
    /// the erasure takes, held until the transaction ends.
    async fn customer_erased(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        customer: Uuid,
    ) -> Result<bool, sqlx::Error> {
        self.parking.lock_key(tx, &customer_key(customer)).await?;
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM projected_versions \
             WHERE projection = $1 AND aggregate_id = $2)",
        )
        .bind(NAME)
        .bind(customer.to_string())
        .fetch_one(&mut **tx)
        .await
    }
}

/// Why an event does not decode. The decoder's message may quote the
/// values it refused, which for a placement are the customer's addresses,
/// in the clear: it is then withheld from the dead letter.
fn undecodable(
    personal: &PersonalData,
    event: &RecordedEvent,
    error: &serde_json::Error,
) -> String {
    let what = format!(
        "{} (schema version {}) does not decode as an order event",
        event.event_type, event.schema_version
    );
    if personal.has_personal_fields(&event.aggregate_type, &event.event_type) {
        format!("{what}; the decoder's message is withheld, as it may quote personal values")
    } else {
        format!("{what}: {error}")
    }
}

#[async_trait]
impl Projection for OrdersTables {
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
        let opened = self.open(events).await?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(ProjectionError::unavailable)?;
        let mut letters = Vec::new();
        let mut any_parked = self.expire_and_release(&mut tx, &mut letters).await?;
        for (event, opened) in events.iter().zip(opened) {
            self.project(&mut tx, event, Some(opened), &mut letters, &mut any_parked)
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
