//! The catalog's relational read model: `read_model.categories`, `brands`,
//! `products`, `product_images`, `product_attributes` and `product_variants`,
//! exactly as the seed defines them, kept from category, brand, product and
//! inventory events.
//!
//! Each batch is one transaction, with each aggregate's last applied version
//! (`projected_versions`) written in it, so a redelivered event is a no-op.
//! The seed's foreign keys hold although related aggregates travel on
//! different partitions: an event whose parent row is not there yet (a product
//! before its category, stock before its product) is parked, with the later
//! events of its aggregate queued behind it in version order, and released the
//! moment the parent row is written. A slug still held by another row (a
//! rename not projected yet) parks the same way until it is freed. Parking
//! itself (locks, bounds, cascades) is `runtime::parking`.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use domain::catalog::{BrandEvent, CategoryEvent, ProductEvent};
use domain::inventory::InventoryEvent;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use rust_decimal::Decimal;
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::product_state::stock_fact;
use crate::runtime::parking::Parking;
use crate::runtime::{dead_letters, DeadLetter, Projection, ProjectionError};

pub const NAME: &str = "catalog-tables";
const TYPES: &[&str] = &["category", "brand", "product", "inventory"];

/// How long an event may stay parked before it is dead-lettered, unless
/// configured otherwise.
pub const DEFAULT_PARKED_MAX_AGE: Duration = Duration::from_secs(3600);

pub struct CatalogTables {
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

impl CatalogTables {
    pub fn new(pool: PgPool, upcasters: Upcasters) -> Self {
        Self {
            pool,
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
                "SELECT version FROM read_model.projected_versions \
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
                    record_version(tx, &event).await?;
                }
                Outcome::Applied(releases) => {
                    record_version(tx, &event).await?;
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
            Ok(Decoded::Category(e)) => apply_category(conn, e).await,
            Ok(Decoded::Brand(e)) => apply_brand(conn, e).await,
            Ok(Decoded::Product(e)) => apply_product(conn, *e).await,
            Ok(Decoded::Inventory(e)) => apply_inventory(conn, e).await,
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
        for event in events {
            self.project(&mut tx, event, &mut letters, &mut any_parked)
                .await
                .map_err(ProjectionError::unavailable)?;
        }
        tx.commit().await.map_err(ProjectionError::unavailable)?;
        Ok(letters)
    }

    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        // The tables live beside the event store and come from migrations.
        Ok(true)
    }

    async fn probe(&self) -> Result<(), ProjectionError> {
        // Through a table the projection writes: a dropped read-model schema
        // is a store that is down, which delays batches, rather than a store
        // refusing every event, which would dead-letter them.
        sqlx::query("SELECT 1 FROM read_model.products LIMIT 0")
            .execute(&self.pool)
            .await
            .map_err(ProjectionError::unavailable)?;
        Ok(())
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(ProjectionError::unavailable)?;
        for statement in [
            "TRUNCATE read_model.product_variants, read_model.product_images, read_model.product_attributes, \
             read_model.products, read_model.brands, read_model.categories CASCADE",
            "DELETE FROM read_model.projected_versions WHERE projection = 'catalog-tables'",
            "DELETE FROM read_model.parked_events WHERE projection = 'catalog-tables'",
        ] {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(ProjectionError::unavailable)?;
        }
        tx.commit().await.map_err(ProjectionError::unavailable)?;
        Ok(())
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

async fn record_version(
    tx: &mut Transaction<'_, Postgres>,
    event: &RecordedEvent,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO read_model.projected_versions (projection, aggregate_id, version) VALUES ($1, $2, $3) \
         ON CONFLICT (projection, aggregate_id) DO UPDATE SET version = EXCLUDED.version",
    )
    .bind(NAME)
    .bind(&event.aggregate_id)
    .bind(event.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn exists(conn: &mut PgConnection, table: &str, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM read_model.{table} WHERE id = $1)"
    ))
    .bind(id)
    .fetch_one(conn)
    .await
}

/// The first reference of `refs` whose row is missing, as a parking key.
async fn missing(
    conn: &mut PgConnection,
    refs: &[(&str, &str, Option<Uuid>)],
) -> Result<Option<String>, sqlx::Error> {
    for (table, kind, id) in refs {
        if let Some(id) = id {
            if !exists(conn, table, *id).await? {
                return Ok(Some(format!("{kind}:{id}")));
            }
        }
    }
    Ok(None)
}

fn slug_release(kind: &str, previous: &str, current: &str) -> Vec<String> {
    if previous == current {
        vec![]
    } else {
        vec![format!("{kind}_slug:{previous}")]
    }
}

async fn apply_category(
    conn: &mut PgConnection,
    event: CategoryEvent,
) -> Result<Outcome, sqlx::Error> {
    match event {
        CategoryEvent::CategoryCreated {
            category_id,
            parent_id,
            name,
            slug,
            description,
            image_url,
            meta_title,
            meta_description,
            meta_keywords,
            sort_order,
            is_active,
            at,
        } => {
            if let Some(key) = missing(conn, &[("categories", "category", parent_id)]).await? {
                return Ok(Outcome::Waiting(key));
            }
            sqlx::query(
                "INSERT INTO read_model.categories (id, parent_id, name, slug, description, image_url, meta_title, \
                 meta_description, meta_keywords, sort_order, is_active, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
            )
            .bind(category_id)
            .bind(parent_id)
            .bind(name)
            .bind(slug.as_str())
            .bind(description)
            .bind(image_url.as_ref().map(|u| u.as_str()))
            .bind(meta_title)
            .bind(meta_description)
            .bind(meta_keywords)
            .bind(sort_order)
            .bind(is_active)
            .bind(at)
            .execute(conn)
            .await?;
            Ok(Outcome::Applied(vec![format!("category:{category_id}")]))
        }
        CategoryEvent::CategoryUpdated {
            category_id,
            name,
            slug,
            description,
            image_url,
            meta_title,
            meta_description,
            meta_keywords,
            sort_order,
            previous_slug,
            at,
        } => {
            sqlx::query(
                "UPDATE read_model.categories SET name = $2, slug = $3, description = $4, image_url = $5, \
                 meta_title = $6, meta_description = $7, meta_keywords = $8, sort_order = $9, updated_at = GREATEST(updated_at, $10) \
                 WHERE id = $1",
            )
            .bind(category_id)
            .bind(name)
            .bind(slug.as_str())
            .bind(description)
            .bind(image_url.as_ref().map(|u| u.as_str()))
            .bind(meta_title)
            .bind(meta_description)
            .bind(meta_keywords)
            .bind(sort_order)
            .bind(at)
            .execute(conn)
            .await?;
            Ok(Outcome::Applied(slug_release(
                "category",
                previous_slug.as_str(),
                slug.as_str(),
            )))
        }
        CategoryEvent::CategoryMoved {
            category_id,
            parent_id,
            at,
            ..
        } => {
            if let Some(key) = missing(conn, &[("categories", "category", parent_id)]).await? {
                return Ok(Outcome::Waiting(key));
            }
            sqlx::query("UPDATE read_model.categories SET parent_id = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1")
                .bind(category_id)
                .bind(parent_id)
                .bind(at)
                .execute(conn)
                .await?;
            Ok(Outcome::Applied(vec![]))
        }
        CategoryEvent::CategoryActivated { category_id, at } => {
            set_active(conn, "categories", category_id, true, at).await
        }
        CategoryEvent::CategoryDeactivated { category_id, at } => {
            set_active(conn, "categories", category_id, false, at).await
        }
    }
}

async fn set_active(
    conn: &mut PgConnection,
    table: &str,
    id: Uuid,
    active: bool,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Outcome, sqlx::Error> {
    sqlx::query(&format!("UPDATE read_model.{table} SET is_active = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1"))
        .bind(id)
        .bind(active)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(Outcome::Applied(vec![]))
}

async fn apply_brand(conn: &mut PgConnection, event: BrandEvent) -> Result<Outcome, sqlx::Error> {
    match event {
        BrandEvent::BrandCreated {
            brand_id,
            name,
            slug,
            description,
            logo_url,
            website_url,
            is_active,
            at,
        } => {
            sqlx::query(
                "INSERT INTO read_model.brands (id, name, slug, description, logo_url, website_url, is_active, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(brand_id)
            .bind(name)
            .bind(slug.as_str())
            .bind(description)
            .bind(logo_url.as_ref().map(|u| u.as_str()))
            .bind(website_url.as_ref().map(|u| u.as_str()))
            .bind(is_active)
            .bind(at)
            .execute(conn)
            .await?;
            Ok(Outcome::Applied(vec![format!("brand:{brand_id}")]))
        }
        BrandEvent::BrandUpdated {
            brand_id,
            name,
            slug,
            description,
            logo_url,
            website_url,
            previous_slug,
            at,
        } => {
            sqlx::query(
                "UPDATE read_model.brands SET name = $2, slug = $3, description = $4, logo_url = $5, \
                 website_url = $6, updated_at = GREATEST(updated_at, $7) WHERE id = $1",
            )
            .bind(brand_id)
            .bind(name)
            .bind(slug.as_str())
            .bind(description)
            .bind(logo_url.as_ref().map(|u| u.as_str()))
            .bind(website_url.as_ref().map(|u| u.as_str()))
            .bind(at)
            .execute(conn)
            .await?;
            Ok(Outcome::Applied(slug_release(
                "brand",
                previous_slug.as_str(),
                slug.as_str(),
            )))
        }
        BrandEvent::BrandActivated { brand_id, at } => {
            set_active(conn, "brands", brand_id, true, at).await
        }
        BrandEvent::BrandDeactivated { brand_id, at } => {
            set_active(conn, "brands", brand_id, false, at).await
        }
    }
}

fn decimal<T: Into<Decimal>>(value: Option<T>) -> Option<Decimal> {
    value.map(Into::into)
}

async fn apply_product(
    conn: &mut PgConnection,
    event: ProductEvent,
) -> Result<Outcome, sqlx::Error> {
    match event {
        ProductEvent::ProductCreated {
            product_id,
            sku,
            name,
            slug,
            description,
            short_description,
            category_id,
            brand_id,
            regular_price,
            sale_price,
            cost_price,
            currency,
            track_inventory,
            stock_quantity,
            low_stock_threshold,
            weight,
            length,
            width,
            height,
            meta_title,
            meta_description,
            meta_keywords,
            status,
            featured,
            at,
        } => {
            let refs = [
                ("categories", "category", category_id),
                ("brands", "brand", brand_id),
            ];
            if let Some(key) = missing(conn, &refs).await? {
                return Ok(Outcome::Waiting(key));
            }
            sqlx::query(
                "INSERT INTO read_model.products (id, sku, name, slug, description, short_description, category_id, \
                 brand_id, regular_price, sale_price, cost_price, currency, track_inventory, stock_quantity, \
                 low_stock_threshold, weight, length, width, height, meta_title, meta_description, meta_keywords, \
                 status, featured, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                 $21, $22, $23, $24, $25, $25)",
            )
            .bind(product_id)
            .bind(sku.as_str())
            .bind(name)
            .bind(slug.as_str())
            .bind(description)
            .bind(short_description)
            .bind(category_id)
            .bind(brand_id)
            .bind(regular_price.amount())
            .bind(decimal(sale_price))
            .bind(decimal(cost_price))
            .bind(currency.as_str())
            .bind(track_inventory)
            .bind(stock_quantity)
            .bind(low_stock_threshold)
            .bind(decimal(weight))
            .bind(decimal(length))
            .bind(decimal(width))
            .bind(decimal(height))
            .bind(meta_title)
            .bind(meta_description)
            .bind(meta_keywords)
            .bind(status.as_str())
            .bind(featured)
            .bind(at)
            .execute(conn)
            .await?;
            Ok(Outcome::Applied(vec![format!("product:{product_id}")]))
        }
        ProductEvent::ProductDetailsUpdated {
            product_id,
            details,
            previous_slug,
            at,
        } => {
            let refs = [
                ("categories", "category", details.category_id),
                ("brands", "brand", details.brand_id),
            ];
            if let Some(key) = missing(conn, &refs).await? {
                return Ok(Outcome::Waiting(key));
            }
            sqlx::query(
                "UPDATE read_model.products SET name = $2, slug = $3, description = $4, short_description = $5, \
                 category_id = $6, brand_id = $7, weight = $8, length = $9, width = $10, height = $11, \
                 meta_title = $12, meta_description = $13, meta_keywords = $14, updated_at = GREATEST(updated_at, $15) WHERE id = $1",
            )
            .bind(product_id)
            .bind(&details.name)
            .bind(details.slug.as_str())
            .bind(&details.description)
            .bind(&details.short_description)
            .bind(details.category_id)
            .bind(details.brand_id)
            .bind(decimal(details.weight))
            .bind(decimal(details.length))
            .bind(decimal(details.width))
            .bind(decimal(details.height))
            .bind(&details.meta_title)
            .bind(&details.meta_description)
            .bind(&details.meta_keywords)
            .bind(at)
            .execute(conn)
            .await?;
            Ok(Outcome::Applied(slug_release(
                "product",
                previous_slug.as_str(),
                details.slug.as_str(),
            )))
        }
        ProductEvent::ProductPriceChanged {
            product_id,
            regular_price,
            sale_price,
            cost_price,
            at,
            ..
        } => {
            sqlx::query(
                "UPDATE read_model.products SET regular_price = $2, sale_price = $3, cost_price = $4, updated_at = GREATEST(updated_at, $5) \
                 WHERE id = $1",
            )
            .bind(product_id)
            .bind(regular_price.amount())
            .bind(decimal(sale_price))
            .bind(decimal(cost_price))
            .bind(at)
            .execute(conn)
            .await?;
            Ok(Outcome::Applied(vec![]))
        }
        ProductEvent::ProductStatusChanged {
            product_id,
            status,
            published_at,
            featured,
            at,
            ..
        } => {
            sqlx::query(
                "UPDATE read_model.products SET status = $2, published_at = $3, featured = $4, updated_at = GREATEST(updated_at, $5) \
                 WHERE id = $1",
            )
            .bind(product_id)
            .bind(status.as_str())
            .bind(published_at)
            .bind(featured)
            .bind(at)
            .execute(conn)
            .await?;
            Ok(Outcome::Applied(vec![]))
        }
        ProductEvent::ProductFeatured { product_id, at } => {
            set_featured(conn, product_id, true, at).await
        }
        ProductEvent::ProductUnfeatured { product_id, at } => {
            set_featured(conn, product_id, false, at).await
        }
        ProductEvent::ProductImageAdded {
            product_id,
            image_id,
            url,
            alt_text,
            sort_order,
            is_primary,
            at,
        } => {
            sqlx::query(
                "INSERT INTO read_model.product_images (id, product_id, url, alt_text, is_primary, sort_order, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(image_id)
            .bind(product_id)
            .bind(url.as_str())
            .bind(alt_text)
            .bind(is_primary)
            .bind(sort_order)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            touch(conn, product_id, at).await
        }
        ProductEvent::ProductImageRemoved {
            product_id,
            image_id,
            new_primary_image_id,
            at,
        } => {
            sqlx::query("DELETE FROM read_model.product_images WHERE id = $1")
                .bind(image_id)
                .execute(&mut *conn)
                .await?;
            if let Some(primary) = new_primary_image_id {
                sqlx::query("UPDATE read_model.product_images SET is_primary = (id = $2) WHERE product_id = $1")
                    .bind(product_id)
                    .bind(primary)
                    .execute(&mut *conn)
                    .await?;
            }
            touch(conn, product_id, at).await
        }
        ProductEvent::ProductPrimaryImageChanged {
            product_id,
            image_id,
            at,
            ..
        } => {
            sqlx::query(
                "UPDATE read_model.product_images SET is_primary = (id = $2) WHERE product_id = $1",
            )
            .bind(product_id)
            .bind(image_id)
            .execute(&mut *conn)
            .await?;
            touch(conn, product_id, at).await
        }
        ProductEvent::ProductImagesReordered {
            product_id,
            images,
            at,
        } => {
            for image in images {
                sqlx::query("UPDATE read_model.product_images SET sort_order = $2 WHERE id = $1")
                    .bind(image.image_id)
                    .bind(image.sort_order)
                    .execute(&mut *conn)
                    .await?;
            }
            touch(conn, product_id, at).await
        }
        ProductEvent::ProductAttributeSet {
            product_id,
            attribute_id,
            name,
            value,
            sort_order,
            at,
        } => {
            sqlx::query(
                "INSERT INTO read_model.product_attributes (id, product_id, name, value, sort_order, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, value = EXCLUDED.value, sort_order = EXCLUDED.sort_order",
            )
            .bind(attribute_id)
            .bind(product_id)
            .bind(name)
            .bind(value)
            .bind(sort_order)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            touch(conn, product_id, at).await
        }
        ProductEvent::ProductAttributeRemoved {
            product_id,
            attribute_id,
            at,
            ..
        } => {
            sqlx::query("DELETE FROM read_model.product_attributes WHERE id = $1")
                .bind(attribute_id)
                .execute(&mut *conn)
                .await?;
            touch(conn, product_id, at).await
        }
        ProductEvent::ProductVariantAdded {
            product_id,
            variant_id,
            sku,
            name,
            price,
            stock_quantity,
            attributes,
            is_active,
            at,
        } => {
            sqlx::query(
                "INSERT INTO read_model.product_variants (id, product_id, sku, name, price, stock_quantity, attributes, \
                 is_active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(variant_id)
            .bind(product_id)
            .bind(sku.as_str())
            .bind(name)
            .bind(price.amount())
            .bind(stock_quantity)
            .bind(serde_json::to_value(attributes).expect("attributes serialize"))
            .bind(is_active)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            touch(conn, product_id, at).await?;
            Ok(Outcome::Applied(vec![format!("variant:{variant_id}")]))
        }
        ProductEvent::ProductVariantUpdated {
            product_id,
            variant_id,
            sku,
            name,
            price,
            attributes,
            at,
        } => {
            sqlx::query(
                "UPDATE read_model.product_variants SET sku = $2, name = $3, price = $4, attributes = $5, updated_at = GREATEST(updated_at, $6) \
                 WHERE id = $1",
            )
            .bind(variant_id)
            .bind(sku.as_str())
            .bind(name)
            .bind(price.amount())
            .bind(serde_json::to_value(attributes).expect("attributes serialize"))
            .bind(at)
            .execute(&mut *conn)
            .await?;
            touch(conn, product_id, at).await
        }
        ProductEvent::ProductVariantDeactivated {
            product_id,
            variant_id,
            at,
            ..
        } => set_variant_active(conn, product_id, variant_id, false, at).await,
        ProductEvent::ProductVariantActivated {
            product_id,
            variant_id,
            at,
            ..
        } => set_variant_active(conn, product_id, variant_id, true, at).await,
    }
}

async fn touch(
    conn: &mut PgConnection,
    product_id: Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Outcome, sqlx::Error> {
    sqlx::query(
        "UPDATE read_model.products SET updated_at = GREATEST(updated_at, $2) WHERE id = $1",
    )
    .bind(product_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(Outcome::Applied(vec![]))
}

async fn set_featured(
    conn: &mut PgConnection,
    product_id: Uuid,
    featured: bool,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Outcome, sqlx::Error> {
    sqlx::query("UPDATE read_model.products SET featured = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1")
        .bind(product_id)
        .bind(featured)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(Outcome::Applied(vec![]))
}

async fn set_variant_active(
    conn: &mut PgConnection,
    product_id: Uuid,
    variant_id: Uuid,
    active: bool,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Outcome, sqlx::Error> {
    sqlx::query("UPDATE read_model.product_variants SET is_active = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1")
        .bind(variant_id)
        .bind(active)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    touch(conn, product_id, at).await
}

/// Stock levels land on the product row, or on the variant row for a
/// variant's sku, once that row exists.
async fn apply_inventory(
    conn: &mut PgConnection,
    event: InventoryEvent,
) -> Result<Outcome, sqlx::Error> {
    let Some(fact) = stock_fact(&event) else {
        // Threshold crossings are notifications; the levels came with the
        // events that caused them.
        return Ok(Outcome::Applied(vec![]));
    };
    let at = inventory_event_time(&event);
    let target = match fact.variant_id {
        Some(id) => ("product_variants", "variant", id),
        None => ("products", "product", fact.product_id),
    };
    if let Some(key) = missing(conn, &[(target.0, target.1, Some(target.2))]).await? {
        return Ok(Outcome::Waiting(key));
    }
    if fact.is_product_level() {
        sqlx::query(
            "UPDATE read_model.products SET stock_quantity = COALESCE($2, stock_quantity), \
             track_inventory = COALESCE($3, track_inventory), \
             low_stock_threshold = COALESCE($4, low_stock_threshold), \
             updated_at = GREATEST(updated_at, $5) WHERE id = $1",
        )
        .bind(fact.product_id)
        .bind(fact.available)
        .bind(fact.track_inventory)
        .bind(fact.low_stock_threshold)
        .bind(at)
        .execute(conn)
        .await?;
    } else if let Some(available) = fact.available {
        sqlx::query(
            "UPDATE read_model.product_variants SET stock_quantity = $2, \
             updated_at = GREATEST(updated_at, $3) WHERE id = $1",
        )
        .bind(target.2)
        .bind(available)
        .bind(at)
        .execute(conn)
        .await?;
    }
    Ok(Outcome::Applied(vec![]))
}

fn inventory_event_time(event: &InventoryEvent) -> chrono::DateTime<chrono::Utc> {
    match event {
        InventoryEvent::StockInitialized { at, .. }
        | InventoryEvent::StockAdjusted { at, .. }
        | InventoryEvent::LowStockThresholdSet { at, .. }
        | InventoryEvent::InventoryTrackingChanged { at, .. }
        | InventoryEvent::StockReserved { at, .. }
        | InventoryEvent::StockReleased { at, .. }
        | InventoryEvent::LowStockReached { at, .. }
        | InventoryEvent::OutOfStock { at, .. }
        | InventoryEvent::BackInStock { at, .. } => *at,
    }
}
