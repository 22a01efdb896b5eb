//! The set-based path of the catalog tables: a whole batch in a bounded
//! number of statements, whatever its size.
//!
//! The events of each aggregate are folded in memory: a creation and the
//! changes after it become one row to insert; changes to a row already stored
//! become one change per column group (details, price, status, ...). Each
//! table is then written by one statement over the batch, its rows passed as
//! one JSON array (`jsonb_to_recordset`). Images, attributes and variants are
//! rarer and depend on their order, so their events are written one by one,
//! in log order, inside the same path.
//!
//! Its statements are planned afresh for every batch (`persistent(false)`):
//! a plan cached while the tables were small (a seq scan of an empty table,
//! early in a replay) would otherwise stay for the connection's life and
//! cost more with every row the replay adds.
//!
//! The path only takes a batch that needs none of the exact path's care:
//! none of its aggregates parked, every event decodable, every row it refers to stored or
//! created in the batch. Anything else, and any statement the database
//! refuses (a slug still held by a row not renamed yet, an SKU taken), sends
//! the batch to the event-by-event path, which parks, waits or dead-letters
//! each event exactly; what this path wrote is rolled back first, so both
//! paths leave the same rows.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use domain::catalog::{BrandEvent, CategoryEvent, ProductEvent};
use domain::inventory::InventoryEvent;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::one_event::{self, decimal, inventory_event_time, slug_release};
use super::{Outcome, NAME};
use crate::projections::product_state::stock_fact;
use crate::runtime::parking::Parking;

/// What the set-based path made of a batch.
pub(super) enum Applied {
    /// Written. The keys listed have parked events waiting for them, which
    /// the caller releases through the exact path.
    Done { keys_with_waiters: Vec<String> },
    /// Nothing written: the batch needs the exact path.
    Exact(&'static str),
}

/// PostgreSQL keeps microseconds and rounds the rest when it parses text;
/// the exact path binds timestamps, which truncates. Truncating here keeps
/// both paths' rows equal.
fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

fn later(current: Option<DateTime<Utc>>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let at = micros(at);
    Some(current.map_or(at, |c| c.max(at)))
}

#[derive(Serialize)]
struct CategoryRow {
    id: Uuid,
    parent_id: Option<Uuid>,
    name: String,
    slug: String,
    description: Option<String>,
    image_url: Option<String>,
    meta_title: Option<String>,
    meta_description: Option<String>,
    meta_keywords: Vec<String>,
    sort_order: i32,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize, Default)]
struct CategoryChange {
    id: Uuid,
    set_details: bool,
    name: Option<String>,
    slug: Option<String>,
    description: Option<String>,
    image_url: Option<String>,
    meta_title: Option<String>,
    meta_description: Option<String>,
    meta_keywords: Option<Vec<String>>,
    sort_order: Option<i32>,
    set_parent: bool,
    parent_id: Option<Uuid>,
    is_active: Option<bool>,
    at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct BrandRow {
    id: Uuid,
    name: String,
    slug: String,
    description: Option<String>,
    logo_url: Option<String>,
    website_url: Option<String>,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize, Default)]
struct BrandChange {
    id: Uuid,
    set_details: bool,
    name: Option<String>,
    slug: Option<String>,
    description: Option<String>,
    logo_url: Option<String>,
    website_url: Option<String>,
    is_active: Option<bool>,
    at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct ProductRow {
    id: Uuid,
    sku: String,
    name: String,
    slug: String,
    description: Option<String>,
    short_description: Option<String>,
    category_id: Option<Uuid>,
    brand_id: Option<Uuid>,
    regular_price: Decimal,
    sale_price: Option<Decimal>,
    cost_price: Option<Decimal>,
    currency: String,
    track_inventory: bool,
    stock_quantity: i32,
    low_stock_threshold: i32,
    weight: Option<Decimal>,
    length: Option<Decimal>,
    width: Option<Decimal>,
    height: Option<Decimal>,
    meta_title: Option<String>,
    meta_description: Option<String>,
    meta_keywords: Vec<String>,
    status: String,
    featured: bool,
    published_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize, Default)]
struct ProductChange {
    id: Uuid,
    set_details: bool,
    name: Option<String>,
    slug: Option<String>,
    description: Option<String>,
    short_description: Option<String>,
    category_id: Option<Uuid>,
    brand_id: Option<Uuid>,
    weight: Option<Decimal>,
    length: Option<Decimal>,
    width: Option<Decimal>,
    height: Option<Decimal>,
    meta_title: Option<String>,
    meta_description: Option<String>,
    meta_keywords: Option<Vec<String>>,
    set_price: bool,
    regular_price: Option<Decimal>,
    sale_price: Option<Decimal>,
    cost_price: Option<Decimal>,
    set_status: bool,
    status: Option<String>,
    published_at: Option<DateTime<Utc>>,
    featured: Option<bool>,
    stock_quantity: Option<i32>,
    track_inventory: Option<bool>,
    low_stock_threshold: Option<i32>,
    at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct VariantStock {
    id: Uuid,
    stock_quantity: i32,
    at: DateTime<Utc>,
}

/// A row created in the batch, or changes to a stored one.
enum Fold<Row, Change> {
    Created(Row),
    Changed(Change),
}

/// The batch folded per row, in the order the statements run.
#[derive(Default)]
struct Plan {
    categories: BTreeMap<Uuid, Fold<CategoryRow, CategoryChange>>,
    brands: BTreeMap<Uuid, Fold<BrandRow, BrandChange>>,
    products: BTreeMap<Uuid, Fold<ProductRow, ProductChange>>,
    /// Stock lands on a product row after it is written, whatever the order
    /// of the two aggregates in the log, as parking would have it.
    product_stock: BTreeMap<Uuid, ProductChange>,
    /// Image, attribute and variant events, in log order.
    children: Vec<ProductEvent>,
    variant_stock: BTreeMap<Uuid, VariantStock>,
    /// Rows the batch needs stored: (kind, id).
    needs: HashSet<(&'static str, Uuid)>,
    /// Rows the batch creates: (kind, id).
    creates: HashSet<(&'static str, Uuid)>,
    /// Keys whose parked events may go ahead once the batch is written.
    releases: Vec<String>,
    /// The last version of each aggregate the batch applies.
    versions: BTreeMap<String, i64>,
}

impl Plan {
    fn need(&mut self, kind: &'static str, id: Option<Uuid>) {
        if let Some(id) = id {
            self.needs.insert((kind, id));
        }
    }

    fn created(&mut self, kind: &'static str, id: Uuid) {
        self.creates.insert((kind, id));
        self.releases.push(format!("{kind}:{id}"));
    }

    /// Needed rows that the batch does not create, by kind.
    fn needed_elsewhere(&self, kind: &str) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .needs
            .iter()
            .filter(|(k, id)| *k == kind && !self.creates.contains(&(*k, *id)))
            .map(|(_, id)| *id)
            .collect();
        ids.sort();
        ids
    }

    fn category(&mut self, event: CategoryEvent) -> Result<(), &'static str> {
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
                self.need("category", parent_id);
                self.created("category", category_id);
                let at = micros(at);
                let row = CategoryRow {
                    id: category_id,
                    parent_id,
                    name,
                    slug: slug.as_str().to_owned(),
                    description,
                    image_url: image_url.map(|u| u.as_str().to_owned()),
                    meta_title,
                    meta_description,
                    meta_keywords,
                    sort_order,
                    is_active,
                    created_at: at,
                    updated_at: at,
                };
                if self.categories.contains_key(&category_id) {
                    return Err("a category created twice");
                }
                self.categories.insert(category_id, Fold::Created(row));
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
                self.releases.extend(slug_release(
                    "category",
                    previous_slug.as_str(),
                    slug.as_str(),
                ));
                let slug = slug.as_str().to_owned();
                let image_url = image_url.map(|u| u.as_str().to_owned());
                match self.category_fold(category_id) {
                    Fold::Created(row) => {
                        row.name = name;
                        row.slug = slug;
                        row.description = description;
                        row.image_url = image_url;
                        row.meta_title = meta_title;
                        row.meta_description = meta_description;
                        row.meta_keywords = meta_keywords;
                        row.sort_order = sort_order;
                        row.updated_at = row.updated_at.max(micros(at));
                    }
                    Fold::Changed(change) => {
                        change.set_details = true;
                        change.name = Some(name);
                        change.slug = Some(slug);
                        change.description = description;
                        change.image_url = image_url;
                        change.meta_title = meta_title;
                        change.meta_description = meta_description;
                        change.meta_keywords = Some(meta_keywords);
                        change.sort_order = Some(sort_order);
                        change.at = later(change.at, at);
                    }
                }
            }
            CategoryEvent::CategoryMoved {
                category_id,
                parent_id,
                at,
                ..
            } => {
                self.need("category", parent_id);
                match self.category_fold(category_id) {
                    Fold::Created(row) => {
                        row.parent_id = parent_id;
                        row.updated_at = row.updated_at.max(micros(at));
                    }
                    Fold::Changed(change) => {
                        change.set_parent = true;
                        change.parent_id = parent_id;
                        change.at = later(change.at, at);
                    }
                }
            }
            CategoryEvent::CategoryActivated { category_id, at } => {
                self.category_active(category_id, true, at)
            }
            CategoryEvent::CategoryDeactivated { category_id, at } => {
                self.category_active(category_id, false, at)
            }
        }
        Ok(())
    }

    fn category_fold(&mut self, id: Uuid) -> &mut Fold<CategoryRow, CategoryChange> {
        self.categories.entry(id).or_insert_with(|| {
            Fold::Changed(CategoryChange {
                id,
                ..Default::default()
            })
        })
    }

    fn category_active(&mut self, id: Uuid, active: bool, at: DateTime<Utc>) {
        match self.category_fold(id) {
            Fold::Created(row) => {
                row.is_active = active;
                row.updated_at = row.updated_at.max(micros(at));
            }
            Fold::Changed(change) => {
                change.is_active = Some(active);
                change.at = later(change.at, at);
            }
        }
    }

    fn brand(&mut self, event: BrandEvent) -> Result<(), &'static str> {
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
                self.created("brand", brand_id);
                if self.brands.contains_key(&brand_id) {
                    return Err("a brand created twice");
                }
                let at = micros(at);
                self.brands.insert(
                    brand_id,
                    Fold::Created(BrandRow {
                        id: brand_id,
                        name,
                        slug: slug.as_str().to_owned(),
                        description,
                        logo_url: logo_url.map(|u| u.as_str().to_owned()),
                        website_url: website_url.map(|u| u.as_str().to_owned()),
                        is_active,
                        created_at: at,
                        updated_at: at,
                    }),
                );
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
                self.releases
                    .extend(slug_release("brand", previous_slug.as_str(), slug.as_str()));
                let slug = slug.as_str().to_owned();
                let logo_url = logo_url.map(|u| u.as_str().to_owned());
                let website_url = website_url.map(|u| u.as_str().to_owned());
                match self.brand_fold(brand_id) {
                    Fold::Created(row) => {
                        row.name = name;
                        row.slug = slug;
                        row.description = description;
                        row.logo_url = logo_url;
                        row.website_url = website_url;
                        row.updated_at = row.updated_at.max(micros(at));
                    }
                    Fold::Changed(change) => {
                        change.set_details = true;
                        change.name = Some(name);
                        change.slug = Some(slug);
                        change.description = description;
                        change.logo_url = logo_url;
                        change.website_url = website_url;
                        change.at = later(change.at, at);
                    }
                }
            }
            BrandEvent::BrandActivated { brand_id, at } => self.brand_active(brand_id, true, at),
            BrandEvent::BrandDeactivated { brand_id, at } => self.brand_active(brand_id, false, at),
        }
        Ok(())
    }

    fn brand_fold(&mut self, id: Uuid) -> &mut Fold<BrandRow, BrandChange> {
        self.brands.entry(id).or_insert_with(|| {
            Fold::Changed(BrandChange {
                id,
                ..Default::default()
            })
        })
    }

    fn brand_active(&mut self, id: Uuid, active: bool, at: DateTime<Utc>) {
        match self.brand_fold(id) {
            Fold::Created(row) => {
                row.is_active = active;
                row.updated_at = row.updated_at.max(micros(at));
            }
            Fold::Changed(change) => {
                change.is_active = Some(active);
                change.at = later(change.at, at);
            }
        }
    }

    fn product_fold(&mut self, id: Uuid) -> &mut Fold<ProductRow, ProductChange> {
        self.products.entry(id).or_insert_with(|| {
            Fold::Changed(ProductChange {
                id,
                ..Default::default()
            })
        })
    }

    /// Records that `at` changed the product row, as the child events do.
    fn product_touched(&mut self, id: Uuid, at: DateTime<Utc>) {
        match self.product_fold(id) {
            Fold::Created(row) => row.updated_at = row.updated_at.max(micros(at)),
            Fold::Changed(change) => change.at = later(change.at, at),
        }
    }

    fn product(&mut self, event: ProductEvent) -> Result<(), &'static str> {
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
                self.need("category", category_id);
                self.need("brand", brand_id);
                self.created("product", product_id);
                if self.products.contains_key(&product_id) {
                    return Err("a product created twice");
                }
                let at = micros(at);
                self.products.insert(
                    product_id,
                    Fold::Created(ProductRow {
                        id: product_id,
                        sku: sku.as_str().to_owned(),
                        name,
                        slug: slug.as_str().to_owned(),
                        description,
                        short_description,
                        category_id,
                        brand_id,
                        regular_price: regular_price.amount(),
                        sale_price: decimal(sale_price),
                        cost_price: decimal(cost_price),
                        currency: currency.as_str().to_owned(),
                        track_inventory,
                        stock_quantity,
                        low_stock_threshold,
                        weight: decimal(weight),
                        length: decimal(length),
                        width: decimal(width),
                        height: decimal(height),
                        meta_title,
                        meta_description,
                        meta_keywords,
                        status: status.as_str().to_owned(),
                        featured,
                        published_at: None,
                        created_at: at,
                        updated_at: at,
                    }),
                );
            }
            ProductEvent::ProductDetailsUpdated {
                product_id,
                details,
                previous_slug,
                at,
            } => {
                self.need("category", details.category_id);
                self.need("brand", details.brand_id);
                self.releases.extend(slug_release(
                    "product",
                    previous_slug.as_str(),
                    details.slug.as_str(),
                ));
                let d = details;
                match self.product_fold(product_id) {
                    Fold::Created(row) => {
                        row.name = d.name;
                        row.slug = d.slug.as_str().to_owned();
                        row.description = d.description;
                        row.short_description = d.short_description;
                        row.category_id = d.category_id;
                        row.brand_id = d.brand_id;
                        row.weight = decimal(d.weight);
                        row.length = decimal(d.length);
                        row.width = decimal(d.width);
                        row.height = decimal(d.height);
                        row.meta_title = d.meta_title;
                        row.meta_description = d.meta_description;
                        row.meta_keywords = d.meta_keywords;
                        row.updated_at = row.updated_at.max(micros(at));
                    }
                    Fold::Changed(change) => {
                        change.set_details = true;
                        change.name = Some(d.name);
                        change.slug = Some(d.slug.as_str().to_owned());
                        change.description = d.description;
                        change.short_description = d.short_description;
                        change.category_id = d.category_id;
                        change.brand_id = d.brand_id;
                        change.weight = decimal(d.weight);
                        change.length = decimal(d.length);
                        change.width = decimal(d.width);
                        change.height = decimal(d.height);
                        change.meta_title = d.meta_title;
                        change.meta_description = d.meta_description;
                        change.meta_keywords = Some(d.meta_keywords);
                        change.at = later(change.at, at);
                    }
                }
            }
            ProductEvent::ProductPriceChanged {
                product_id,
                regular_price,
                sale_price,
                cost_price,
                at,
                ..
            } => match self.product_fold(product_id) {
                Fold::Created(row) => {
                    row.regular_price = regular_price.amount();
                    row.sale_price = decimal(sale_price);
                    row.cost_price = decimal(cost_price);
                    row.updated_at = row.updated_at.max(micros(at));
                }
                Fold::Changed(change) => {
                    change.set_price = true;
                    change.regular_price = Some(regular_price.amount());
                    change.sale_price = decimal(sale_price);
                    change.cost_price = decimal(cost_price);
                    change.at = later(change.at, at);
                }
            },
            ProductEvent::ProductStatusChanged {
                product_id,
                status,
                published_at,
                featured,
                at,
                ..
            } => match self.product_fold(product_id) {
                Fold::Created(row) => {
                    row.status = status.as_str().to_owned();
                    row.published_at = published_at.map(micros);
                    row.featured = featured;
                    row.updated_at = row.updated_at.max(micros(at));
                }
                Fold::Changed(change) => {
                    change.set_status = true;
                    change.status = Some(status.as_str().to_owned());
                    change.published_at = published_at.map(micros);
                    change.featured = Some(featured);
                    change.at = later(change.at, at);
                }
            },
            ProductEvent::ProductFeatured { product_id, at } => {
                self.product_featured(product_id, true, at)
            }
            ProductEvent::ProductUnfeatured { product_id, at } => {
                self.product_featured(product_id, false, at)
            }
            child => {
                let (product_id, at) = child_of(&child);
                if let ProductEvent::ProductVariantAdded { variant_id, .. } = &child {
                    self.created("variant", *variant_id);
                }
                self.product_touched(product_id, at);
                self.children.push(child);
            }
        }
        Ok(())
    }

    fn product_featured(&mut self, id: Uuid, featured: bool, at: DateTime<Utc>) {
        match self.product_fold(id) {
            Fold::Created(row) => {
                row.featured = featured;
                row.updated_at = row.updated_at.max(micros(at));
            }
            Fold::Changed(change) => {
                change.featured = Some(featured);
                change.at = later(change.at, at);
            }
        }
    }

    fn inventory(&mut self, event: InventoryEvent) {
        let Some(fact) = stock_fact(&event) else {
            return;
        };
        let at = inventory_event_time(&event);
        match fact.variant_id {
            None => {
                self.need("product", Some(fact.product_id));
                let change = self
                    .product_stock
                    .entry(fact.product_id)
                    .or_insert_with(|| ProductChange {
                        id: fact.product_id,
                        ..Default::default()
                    });
                change.stock_quantity = fact.available.or(change.stock_quantity);
                change.track_inventory = fact.track_inventory.or(change.track_inventory);
                change.low_stock_threshold =
                    fact.low_stock_threshold.or(change.low_stock_threshold);
                change.at = later(change.at, at);
            }
            Some(variant_id) => {
                self.need("variant", Some(variant_id));
                if let Some(available) = fact.available {
                    let at = micros(at);
                    let stock = self
                        .variant_stock
                        .entry(variant_id)
                        .or_insert(VariantStock {
                            id: variant_id,
                            stock_quantity: available,
                            at,
                        });
                    stock.stock_quantity = available;
                    stock.at = stock.at.max(at);
                }
            }
        }
    }
}

/// The product and time of an image, attribute or variant event.
fn child_of(event: &ProductEvent) -> (Uuid, DateTime<Utc>) {
    match event {
        ProductEvent::ProductImageAdded { product_id, at, .. }
        | ProductEvent::ProductImageRemoved { product_id, at, .. }
        | ProductEvent::ProductPrimaryImageChanged { product_id, at, .. }
        | ProductEvent::ProductImagesReordered { product_id, at, .. }
        | ProductEvent::ProductAttributeSet { product_id, at, .. }
        | ProductEvent::ProductAttributeRemoved { product_id, at, .. }
        | ProductEvent::ProductVariantAdded { product_id, at, .. }
        | ProductEvent::ProductVariantUpdated { product_id, at, .. }
        | ProductEvent::ProductVariantDeactivated { product_id, at, .. }
        | ProductEvent::ProductVariantActivated { product_id, at, .. }
        | ProductEvent::ProductCreated { product_id, at, .. }
        | ProductEvent::ProductDetailsUpdated { product_id, at, .. }
        | ProductEvent::ProductPriceChanged { product_id, at, .. }
        | ProductEvent::ProductStatusChanged { product_id, at, .. }
        | ProductEvent::ProductFeatured { product_id, at }
        | ProductEvent::ProductUnfeatured { product_id, at } => (*product_id, *at),
    }
}

/// Folds the events the store does not hold yet. `applied` is each
/// aggregate's stored version.
fn plan(
    upcasters: &Upcasters,
    events: &[RecordedEvent],
    applied: &HashMap<String, i64>,
) -> Result<Plan, &'static str> {
    let mut plan = Plan::default();
    for event in events {
        let held = plan
            .versions
            .get(&event.aggregate_id)
            .or_else(|| applied.get(&event.aggregate_id))
            .copied();
        if held.is_some_and(|v| v >= event.version) {
            continue;
        }
        plan.versions
            .insert(event.aggregate_id.clone(), event.version);
        let undecodable = "an event that does not decode";
        match event.aggregate_type.as_str() {
            "category" => plan.category(upcasters.decode(event).map_err(|_| undecodable)?)?,
            "brand" => plan.brand(upcasters.decode(event).map_err(|_| undecodable)?)?,
            "product" => plan.product(upcasters.decode(event).map_err(|_| undecodable)?)?,
            "inventory" => plan.inventory(upcasters.decode(event).map_err(|_| undecodable)?),
            _ => return Err("an unexpected aggregate type"),
        }
    }
    Ok(plan)
}

/// Writes `events` set-based inside `tx`, or writes nothing and says why
/// the exact path must take them.
/// `any_parked` says whether the projection has parked events at all.
pub(super) async fn apply(
    conn: &mut PgConnection,
    upcasters: &Upcasters,
    parking: &Parking,
    events: &[RecordedEvent],
    any_parked: bool,
) -> Result<Applied, sqlx::Error> {
    let mut aggregates: Vec<&str> = events.iter().map(|e| e.aggregate_id.as_str()).collect();
    aggregates.sort_unstable();
    aggregates.dedup();
    // Later events of an aggregate with a parked one queue behind it, which
    // only the exact path does.
    if any_parked && parking.any_of_aggregates(&mut *conn, &aggregates).await? {
        return Ok(Applied::Exact("an event of its aggregates is parked"));
    }
    // In sorted order, so two workers locking overlapping batches cannot
    // deadlock on each other.
    let applied: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT aggregate_id, version FROM projected_versions \
         WHERE projection = $1 AND aggregate_id = ANY($2) ORDER BY aggregate_id FOR UPDATE",
    )
    .bind(NAME)
    .bind(&aggregates)
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let plan = match plan(upcasters, events, &applied) {
        Ok(plan) => plan,
        Err(reason) => return Ok(Applied::Exact(reason)),
    };
    if plan.versions.is_empty() {
        return Ok(Applied::Done {
            keys_with_waiters: Vec::new(),
        });
    }
    if any_missing(conn, &plan).await? {
        return Ok(Applied::Exact("a row it refers to is not stored yet"));
    }
    let mut savepoint = conn.begin().await?;
    let refused = match write(&mut savepoint, &plan).await {
        Ok(None) => None,
        Ok(Some(reason)) => Some(reason),
        Err(sqlx::Error::Database(error))
            if error
                .code()
                .is_some_and(|c| c.starts_with("22") || c.starts_with("23")) =>
        {
            tracing::debug!(projection = NAME, reason = %error.message(), "set-based write refused, taking the exact path");
            Some("the database refused a set-based write")
        }
        Err(other) => return Err(other),
    };
    if let Some(reason) = refused {
        savepoint.rollback().await?;
        return Ok(Applied::Exact(reason));
    }
    let keys_with_waiters = waiting_keys(&mut savepoint, parking, &plan.releases).await?;
    savepoint.commit().await?;
    Ok(Applied::Done { keys_with_waiters })
}

async fn any_missing(conn: &mut PgConnection, plan: &Plan) -> Result<bool, sqlx::Error> {
    let categories = plan.needed_elsewhere("category");
    let brands = plan.needed_elsewhere("brand");
    let products = plan.needed_elsewhere("product");
    let variants = plan.needed_elsewhere("variant");
    if categories.is_empty() && brands.is_empty() && products.is_empty() && variants.is_empty() {
        return Ok(false);
    }
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM unnest($1::uuid[]) n(id) WHERE NOT EXISTS (SELECT 1 FROM categories t WHERE t.id = n.id)) \
         OR EXISTS (SELECT 1 FROM unnest($2::uuid[]) n(id) WHERE NOT EXISTS (SELECT 1 FROM brands t WHERE t.id = n.id)) \
         OR EXISTS (SELECT 1 FROM unnest($3::uuid[]) n(id) WHERE NOT EXISTS (SELECT 1 FROM products t WHERE t.id = n.id)) \
         OR EXISTS (SELECT 1 FROM unnest($4::uuid[]) n(id) WHERE NOT EXISTS (SELECT 1 FROM product_variants t WHERE t.id = n.id))",
    )
    .bind(&categories)
    .bind(&brands)
    .bind(&products)
    .bind(&variants)
    .persistent(false)
    .fetch_one(conn)
    .await
}

fn split<Row, Change>(folds: &BTreeMap<Uuid, Fold<Row, Change>>) -> (Vec<&Row>, Vec<&Change>) {
    let mut rows = Vec::new();
    let mut changes = Vec::new();
    for fold in folds.values() {
        match fold {
            Fold::Created(row) => rows.push(row),
            Fold::Changed(change) => changes.push(change),
        }
    }
    (rows, changes)
}

async fn execute<T: Serialize + Sync>(
    conn: &mut PgConnection,
    statement: &str,
    rows: &[T],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(statement)
        .bind(Json(rows))
        .execute(conn)
        .await?;
    Ok(())
}

const INSERT_CATEGORIES: &str = "INSERT INTO categories (id, parent_id, name, slug, description, image_url, \
     meta_title, meta_description, meta_keywords, sort_order, is_active, created_at, updated_at) \
     SELECT id, parent_id, name, slug, description, image_url, meta_title, meta_description, meta_keywords, \
     sort_order, is_active, created_at, updated_at FROM jsonb_to_recordset($1) AS r(id uuid, parent_id uuid, \
     name text, slug text, description text, image_url text, meta_title text, meta_description text, \
     meta_keywords text[], sort_order int, is_active bool, created_at timestamptz, updated_at timestamptz)";

const UPDATE_CATEGORIES: &str = "UPDATE categories c SET \
     name = CASE WHEN u.set_details THEN u.name ELSE c.name END, \
     slug = CASE WHEN u.set_details THEN u.slug ELSE c.slug END, \
     description = CASE WHEN u.set_details THEN u.description ELSE c.description END, \
     image_url = CASE WHEN u.set_details THEN u.image_url ELSE c.image_url END, \
     meta_title = CASE WHEN u.set_details THEN u.meta_title ELSE c.meta_title END, \
     meta_description = CASE WHEN u.set_details THEN u.meta_description ELSE c.meta_description END, \
     meta_keywords = CASE WHEN u.set_details THEN u.meta_keywords ELSE c.meta_keywords END, \
     sort_order = CASE WHEN u.set_details THEN u.sort_order ELSE c.sort_order END, \
     parent_id = CASE WHEN u.set_parent THEN u.parent_id ELSE c.parent_id END, \
     is_active = COALESCE(u.is_active, c.is_active), \
     updated_at = GREATEST(c.updated_at, u.at) \
     FROM jsonb_to_recordset($1) AS u(id uuid, set_details bool, name text, slug text, description text, \
     image_url text, meta_title text, meta_description text, meta_keywords text[], sort_order int, \
     set_parent bool, parent_id uuid, is_active bool, at timestamptz) WHERE c.id = u.id";

const INSERT_BRANDS: &str = "INSERT INTO brands (id, name, slug, description, logo_url, website_url, \
     is_active, created_at, updated_at) \
     SELECT id, name, slug, description, logo_url, website_url, is_active, created_at, updated_at \
     FROM jsonb_to_recordset($1) AS r(id uuid, name text, slug text, description text, logo_url text, \
     website_url text, is_active bool, created_at timestamptz, updated_at timestamptz)";

const UPDATE_BRANDS: &str = "UPDATE brands b SET \
     name = CASE WHEN u.set_details THEN u.name ELSE b.name END, \
     slug = CASE WHEN u.set_details THEN u.slug ELSE b.slug END, \
     description = CASE WHEN u.set_details THEN u.description ELSE b.description END, \
     logo_url = CASE WHEN u.set_details THEN u.logo_url ELSE b.logo_url END, \
     website_url = CASE WHEN u.set_details THEN u.website_url ELSE b.website_url END, \
     is_active = COALESCE(u.is_active, b.is_active), \
     updated_at = GREATEST(b.updated_at, u.at) \
     FROM jsonb_to_recordset($1) AS u(id uuid, set_details bool, name text, slug text, description text, \
     logo_url text, website_url text, is_active bool, at timestamptz) WHERE b.id = u.id";

const INSERT_PRODUCTS: &str = "INSERT INTO products (id, sku, name, slug, description, short_description, \
     category_id, brand_id, regular_price, sale_price, cost_price, currency, track_inventory, stock_quantity, \
     low_stock_threshold, weight, length, width, height, meta_title, meta_description, meta_keywords, status, \
     featured, published_at, created_at, updated_at) \
     SELECT id, sku, name, slug, description, short_description, category_id, brand_id, regular_price, sale_price, \
     cost_price, currency, track_inventory, stock_quantity, low_stock_threshold, weight, length, width, height, \
     meta_title, meta_description, meta_keywords, status, featured, published_at, created_at, updated_at \
     FROM jsonb_to_recordset($1) AS r(id uuid, sku text, name text, slug text, description text, \
     short_description text, category_id uuid, brand_id uuid, regular_price numeric, sale_price numeric, \
     cost_price numeric, currency text, track_inventory bool, stock_quantity int, low_stock_threshold int, \
     weight numeric, length numeric, width numeric, height numeric, meta_title text, meta_description text, \
     meta_keywords text[], status text, featured bool, published_at timestamptz, created_at timestamptz, \
     updated_at timestamptz)";

const UPDATE_PRODUCTS: &str = "UPDATE products p SET \
     name = CASE WHEN u.set_details THEN u.name ELSE p.name END, \
     slug = CASE WHEN u.set_details THEN u.slug ELSE p.slug END, \
     description = CASE WHEN u.set_details THEN u.description ELSE p.description END, \
     short_description = CASE WHEN u.set_details THEN u.short_description ELSE p.short_description END, \
     category_id = CASE WHEN u.set_details THEN u.category_id ELSE p.category_id END, \
     brand_id = CASE WHEN u.set_details THEN u.brand_id ELSE p.brand_id END, \
     weight = CASE WHEN u.set_details THEN u.weight ELSE p.weight END, \
     length = CASE WHEN u.set_details THEN u.length ELSE p.length END, \
     width = CASE WHEN u.set_details THEN u.width ELSE p.width END, \
     height = CASE WHEN u.set_details THEN u.height ELSE p.height END, \
     meta_title = CASE WHEN u.set_details THEN u.meta_title ELSE p.meta_title END, \
     meta_description = CASE WHEN u.set_details THEN u.meta_description ELSE p.meta_description END, \
     meta_keywords = CASE WHEN u.set_details THEN u.meta_keywords ELSE p.meta_keywords END, \
     regular_price = CASE WHEN u.set_price THEN u.regular_price ELSE p.regular_price END, \
     sale_price = CASE WHEN u.set_price THEN u.sale_price ELSE p.sale_price END, \
     cost_price = CASE WHEN u.set_price THEN u.cost_price ELSE p.cost_price END, \
     status = CASE WHEN u.set_status THEN u.status ELSE p.status END, \
     published_at = CASE WHEN u.set_status THEN u.published_at ELSE p.published_at END, \
     featured = COALESCE(u.featured, p.featured), \
     stock_quantity = COALESCE(u.stock_quantity, p.stock_quantity), \
     track_inventory = COALESCE(u.track_inventory, p.track_inventory), \
     low_stock_threshold = COALESCE(u.low_stock_threshold, p.low_stock_threshold), \
     updated_at = GREATEST(p.updated_at, u.at) \
     FROM jsonb_to_recordset($1) AS u(id uuid, set_details bool, name text, slug text, description text, \
     short_description text, category_id uuid, brand_id uuid, weight numeric, length numeric, width numeric, \
     height numeric, meta_title text, meta_description text, meta_keywords text[], set_price bool, \
     regular_price numeric, sale_price numeric, cost_price numeric, set_status bool, status text, \
     published_at timestamptz, featured bool, stock_quantity int, track_inventory bool, \
     low_stock_threshold int, at timestamptz) WHERE p.id = u.id";

const UPDATE_VARIANT_STOCK: &str = "UPDATE product_variants v SET \
     stock_quantity = u.stock_quantity, updated_at = GREATEST(v.updated_at, u.at) \
     FROM jsonb_to_recordset($1) AS u(id uuid, stock_quantity int, at timestamptz) WHERE v.id = u.id";

/// The statements, parents before children: a row's inserts come before
/// the changes and child rows that need it. `Some(reason)` when a child
/// event needs the exact path.
async fn write(conn: &mut PgConnection, plan: &Plan) -> Result<Option<&'static str>, sqlx::Error> {
    let (rows, changes) = split(&plan.categories);
    execute(conn, INSERT_CATEGORIES, &rows).await?;
    execute(conn, UPDATE_CATEGORIES, &changes).await?;
    let (rows, changes) = split(&plan.brands);
    execute(conn, INSERT_BRANDS, &rows).await?;
    execute(conn, UPDATE_BRANDS, &changes).await?;
    let (rows, changes) = split(&plan.products);
    execute(conn, INSERT_PRODUCTS, &rows).await?;
    execute(conn, UPDATE_PRODUCTS, &changes).await?;
    let stock: Vec<&ProductChange> = plan.product_stock.values().collect();
    execute(conn, UPDATE_PRODUCTS, &stock).await?;
    for child in &plan.children {
        match one_event::apply_product(conn, child.clone()).await? {
            Outcome::Applied(_) => {}
            Outcome::Waiting(_) | Outcome::Rejected(_) => {
                return Ok(Some(
                    "an image, attribute or variant event waits or is rejected",
                ))
            }
        }
    }
    let variants: Vec<&VariantStock> = plan.variant_stock.values().collect();
    execute(conn, UPDATE_VARIANT_STOCK, &variants).await?;
    let (ids, versions): (Vec<&str>, Vec<i64>) = plan
        .versions
        .iter()
        .map(|(id, version)| (id.as_str(), *version))
        .unzip();
    sqlx::query(
        "INSERT INTO projected_versions (projection, aggregate_id, version) \
         SELECT $1, a, v FROM unnest($2::text[], $3::bigint[]) AS n(a, v) \
         ON CONFLICT (projection, aggregate_id) DO UPDATE \
         SET version = GREATEST(projected_versions.version, EXCLUDED.version)",
    )
    .bind(NAME)
    .bind(&ids)
    .bind(&versions)
    .persistent(false)
    .execute(conn)
    .await?;
    Ok(None)
}

/// The release keys that have parked events. Each key is locked first, as
/// parking locks it: an event parked by another worker before the lock is
/// seen here, and one parked after it finds this batch's rows committed.
async fn waiting_keys(
    conn: &mut PgConnection,
    parking: &Parking,
    releases: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    if releases.is_empty() {
        return Ok(Vec::new());
    }
    parking.lock_keys(&mut *conn, releases).await?;
    parking.keys_with_waiters(conn, releases).await
}
