//! The catalog's relational read model: `read_model.categories`, `brands`,
//! `products`, `product_images`, `product_attributes` and `product_variants`,
//! exactly as the seed defines them, kept from category, brand, product and
//! inventory events.
//!
//! Each batch is one transaction, with each aggregate's last applied version
//! (`projected_versions`) written in it, so a redelivered event is a no-op.
//! A batch is written set-based, a statement per table (`batched`), unless
//! it needs the care of the event-by-event path (`one_event` and the
//! parking below): something parked, a row it refers to missing, a write the
//! database refuses. Both paths leave the same rows.
//! The seed's foreign keys hold although related aggregates travel on
//! different partitions: an event whose parent row is not there yet (a product
//! before its category, stock before its product) is parked, with the later
//! events of its aggregate queued behind it in version order, and released the
//! moment the parent row is written. A slug still held by another row (a
//! rename not projected yet) parks the same way until it is freed. Parking
//! itself (locks, bounds, cascades) is `runtime::parking`.

mod batched;
mod generation;
mod one_event;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use domain::catalog::{BrandEvent, CategoryEvent, ProductEvent};
use domain::inventory::InventoryEvent;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};

use crate::runtime::parking::Parking;
use crate::runtime::{dead_letters, DeadLetter, NextGeneration, Projection, ProjectionError};
use crate::stores::postgres::PgReadModel;
use crate::stores::postgres::{pool_in_schema, LIVE_SCHEMA};

pub const NAME: &str = "catalog-tables";

const READ_MODEL: PgReadModel = PgReadModel {
    projection: NAME,
    probe_table: "products",
    truncate: "TRUNCATE product_variants, product_images, product_attributes, \
         products, brands, categories CASCADE",
};
const TYPES: &[&str] = &["category", "brand", "product", "inventory"];

/// How long an event may stay parked before it is dead-lettered, unless
/// configured otherwise.
pub const DEFAULT_PARKED_MAX_AGE: Duration = Duration::from_secs(3600);

pub struct CatalogTables {
    pool: PgPool,
    upcasters: Upcasters,
    parking: Parking,
    parked_max_age: Duration,
    set_based: bool,
    set_based_batches: AtomicU64,
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

impl CatalogTables {
    /// Writes the live generation, in `read_model`, through connections of
    /// its own made like `pool`'s.
    pub fn new(pool: PgPool, upcasters: Upcasters) -> Self {
        Self {
            pool: pool_in_schema(&pool, LIVE_SCHEMA),
            upcasters,
            parking: Parking::new(NAME),
            parked_max_age: DEFAULT_PARKED_MAX_AGE,
            set_based: true,
            set_based_batches: AtomicU64::new(0),
        }
    }

    /// Writes every batch event by event: the reference the set-based path
    /// is compared with, in tests and in the replay benchmark.
    pub fn event_by_event(mut self) -> Self {
        self.set_based = false;
        self
    }

    /// How many batches were written set-based so far.
    pub fn set_based_batches(&self) -> u64 {
        self.set_based_batches.load(Ordering::Relaxed)
    }

    /// Dead-letters events parked for longer than `max_age`.
    pub fn with_parked_max_age(mut self, max_age: Duration) -> Self {
        self.parked_max_age = max_age;
        self
    }

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
                    // What waits for the row this event would have created
                    // would wait forever.
                    if event.version == 1 && *any_parked {
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

    /// Applies, event by event, what other workers parked behind keys a
    /// set-based batch has just written.
    async fn release_waiters(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        keys: &[String],
        letters: &mut Vec<DeadLetter>,
    ) -> Result<(), sqlx::Error> {
        let mut any_parked = true;
        for key in keys {
            let (released, undecodable) = self.parking.release(tx, key).await?;
            letters.extend(undecodable);
            for event in released {
                self.project(tx, &event, letters, &mut any_parked).await?;
            }
        }
        Ok(())
    }

    /// One try at applying `event` in a savepoint of `tx`, kept only when
    /// the event applied.
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
                let reason = error.message().to_owned();
                // Only the slug's own constraint means "wait for its holder
                // to free it"; any other conflict (an SKU taken) never heals.
                let waits_for_slug = error.code().as_deref() == Some("23505")
                    && error.constraint() == slug_constraint(&event.aggregate_type);
                savepoint.rollback().await?;
                savepoint = tx.begin().await?;
                match waits_for_slug.then(|| self.slug_key(event)).flatten() {
                    Some(key) => Outcome::Waiting(key),
                    None => Outcome::Rejected(reason),
                }
            }
            Err(other) => return Err(other),
        };
        match outcome {
            Outcome::Applied(_) => savepoint.commit().await?,
            _ => savepoint.rollback().await?,
        }
        Ok(outcome)
    }

    /// The key a slug conflict waits on: the slug being freed by its holder.
    fn slug_key(&self, event: &RecordedEvent) -> Option<String> {
        let body = event.payload.as_object()?.values().next()?;
        let slug = body
            .get("slug")
            .or_else(|| body.get("details")?.get("slug"))?
            .as_str()?;
        let scope = match event.aggregate_type.as_str() {
            "product" => "product_slug",
            "category" => "category_slug",
            "brand" => "brand_slug",
            _ => return None,
        };
        Some(format!("{scope}:{slug}"))
    }

    async fn apply_one(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<Outcome, sqlx::Error> {
        let decoded = match event.aggregate_type.as_str() {
            "category" => self.upcasters.decode(event).map(Decoded::Category),
            "brand" => self.upcasters.decode(event).map(Decoded::Brand),
            "product" => self
                .upcasters
                .decode(event)
                .map(|e| Decoded::Product(Box::new(e))),
            "inventory" => self.upcasters.decode(event).map(Decoded::Inventory),
            other => {
                return Ok(Outcome::Rejected(format!(
                    "unexpected aggregate type {other}"
                )))
            }
        };
        match decoded {
            Err(error) => Ok(Outcome::Rejected(error.to_string())),
            Ok(Decoded::Category(e)) => one_event::apply_category(conn, e).await,
            Ok(Decoded::Brand(e)) => one_event::apply_brand(conn, e).await,
            Ok(Decoded::Product(e)) => one_event::apply_product(conn, *e).await,
            Ok(Decoded::Inventory(e)) => one_event::apply_inventory(conn, e).await,
        }
    }
}

enum Decoded {
    Category(CategoryEvent),
    Brand(BrandEvent),
    Product(Box<ProductEvent>),
    Inventory(InventoryEvent),
}

#[async_trait]
impl Projection for CatalogTables {
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
        let exact = if !self.set_based {
            Some("set-based writes are off")
        } else {
            match batched::apply(&mut tx, &self.upcasters, &self.parking, events, any_parked)
                .await
                .map_err(ProjectionError::unavailable)?
            {
                batched::Applied::Done { keys_with_waiters } => {
                    self.release_waiters(&mut tx, &keys_with_waiters, &mut letters)
                        .await
                        .map_err(ProjectionError::unavailable)?;
                    self.set_based_batches.fetch_add(1, Ordering::Relaxed);
                    None
                }
                batched::Applied::Exact(reason) => Some(reason),
            }
        };
        let path = if exact.is_some() { "exact" } else { "set" };
        metrics::counter!("projector_batch_path_total", "projection" => NAME, "path" => path)
            .increment(1);
        if let Some(reason) = exact {
            tracing::debug!(
                projection = NAME,
                events = events.len(),
                reason,
                "applying event by event"
            );
            for event in events {
                self.project(&mut tx, event, &mut letters, &mut any_parked)
                    .await
                    .map_err(ProjectionError::unavailable)?;
            }
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

/// The unique constraint on the slug of an aggregate type's table.
fn slug_constraint(aggregate_type: &str) -> Option<&'static str> {
    match aggregate_type {
        "product" => Some("products_slug_key"),
        "category" => Some("categories_slug_key"),
        "brand" => Some("brands_slug_key"),
        _ => None,
    }
}
