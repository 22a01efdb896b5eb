//! [`CatalogReadModel`] over PostgreSQL's `read_model` schema. The seed's
//! columns are mostly nullable with defaults; NULLs read as those defaults so
//! that a row always makes a complete view. `cost_price` is never selected.

use infrastructure::views::{BrandView, CategoryView, ProductView};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;
use uuid::Uuid;

use super::{BrandFilter, BrandKey, CatalogReadModel, CategoryFilter, CategoryKey, Listed, Page};
use crate::error::StoreError;
use crate::BoxFuture;

const STORE: &str = "postgresql";

const PRODUCT_COLUMNS: &str = "id, sku, name, slug, description, short_description, \
    category_id, brand_id, regular_price, sale_price, \
    COALESCE(currency, 'THB') AS currency, \
    COALESCE(track_inventory, TRUE) AS track_inventory, \
    COALESCE(stock_quantity, 0) AS stock_quantity, \
    COALESCE(low_stock_threshold, 5) AS low_stock_threshold, \
    weight, length, width, height, meta_title, meta_description, \
    COALESCE(meta_keywords, '{}') AS meta_keywords, \
    COALESCE(status, 'draft') AS status, \
    COALESCE(featured, FALSE) AS featured, \
    COALESCE(created_at, updated_at, 'epoch') AS created_at, \
    COALESCE(updated_at, created_at, 'epoch') AS updated_at, \
    published_at";

/// The child rows of `p`, each as one JSON array in the order every store
/// serves them (`ProductView::sort_children`); the price as text, so that
/// no float stands between the column and the decimal.
const PRODUCT_CHILDREN: &str = "\
    (SELECT COALESCE(json_agg(json_build_object('id', i.id, 'url', i.url, 'alt_text', i.alt_text, \
        'is_primary', COALESCE(i.is_primary, FALSE), 'sort_order', COALESCE(i.sort_order, 0)) \
        ORDER BY COALESCE(i.sort_order, 0), i.id), '[]') \
     FROM read_model.product_images i WHERE i.product_id = p.id) AS images, \
    (SELECT COALESCE(json_agg(json_build_object('id', a.id, 'name', a.name, 'value', a.value, \
        'sort_order', COALESCE(a.sort_order, 0)) \
        ORDER BY COALESCE(a.sort_order, 0), a.name COLLATE \"C\"), '[]') \
     FROM read_model.product_attributes a WHERE a.product_id = p.id) AS attributes, \
    (SELECT COALESCE(json_agg(json_build_object('id', v.id, 'sku', v.sku, 'name', v.name, \
        'price', COALESCE(v.price, 0)::text, 'stock_quantity', COALESCE(v.stock_quantity, 0), \
        'attributes', COALESCE(v.attributes, '{}'), 'is_active', COALESCE(v.is_active, TRUE)) \
        ORDER BY v.sku COLLATE \"C\"), '[]') \
     FROM read_model.product_variants v WHERE v.product_id = p.id) AS variants";

const CATEGORY_COLUMNS: &str = "id, parent_id, name, slug, description, image_url, \
    meta_title, meta_description, \
    COALESCE(meta_keywords, '{}') AS meta_keywords, \
    COALESCE(sort_order, 0) AS sort_order, \
    COALESCE(is_active, TRUE) AS is_active, \
    COALESCE(created_at, updated_at, 'epoch') AS created_at, \
    COALESCE(updated_at, created_at, 'epoch') AS updated_at";

const BRAND_COLUMNS: &str = "id, name, slug, description, logo_url, website_url, \
    COALESCE(is_active, TRUE) AS is_active, \
    COALESCE(created_at, updated_at, 'epoch') AS created_at, \
    COALESCE(updated_at, created_at, 'epoch') AS updated_at";

#[derive(Clone)]
pub struct PgCatalogReadModel {
    pool: PgPool,
}

impl PgCatalogReadModel {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    #[tracing::instrument(name = "pg_product", skip(self), fields(product_id = %id))]
    async fn fetch_product(&self, id: Uuid) -> Result<Option<ProductView>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PRODUCT_COLUMNS}, {PRODUCT_CHILDREN} FROM read_model.products p WHERE p.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        let product = row
            .as_ref()
            .map(product_from)
            .transpose()
            .map_err(classify)?;
        tracing::debug!(found = product.is_some(), "product read");
        Ok(product)
    }

    #[tracing::instrument(name = "pg_categories", skip(self))]
    async fn fetch_categories(
        &self,
        filter: CategoryFilter,
        page: Page<CategoryKey>,
    ) -> Result<Listed<CategoryView, CategoryKey>, StoreError> {
        let after = page.after.as_ref();
        // One row past the page says whether another page follows.
        let rows = sqlx::query(&format!(
            "SELECT {CATEGORY_COLUMNS} FROM read_model.categories \
             WHERE ($1::boolean IS NULL OR COALESCE(is_active, TRUE) = $1) \
               AND ($2::uuid IS NULL OR parent_id = $2) \
               AND ($3::int IS NULL OR (COALESCE(sort_order, 0), name, id) > ($3, $4::text, $5::uuid)) \
             ORDER BY COALESCE(sort_order, 0), name, id LIMIT $6"
        ))
        .bind(filter.is_active)
        .bind(filter.parent_id)
        .bind(after.map(|k| k.sort_order))
        .bind(after.map(|k| k.name.clone()))
        .bind(after.map(|k| k.id))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let items: Vec<CategoryView> = rows
            .iter()
            .map(category_from)
            .collect::<Result<_, _>>()
            .map_err(classify)?;
        Ok(paged(items, page.limit, |c| CategoryKey {
            sort_order: c.sort_order,
            name: c.name.clone(),
            id: c.id,
        }))
    }

    #[tracing::instrument(name = "pg_brands", skip(self))]
    async fn fetch_brands(
        &self,
        filter: BrandFilter,
        page: Page<BrandKey>,
    ) -> Result<Listed<BrandView, BrandKey>, StoreError> {
        let after = page.after.as_ref();
        let rows = sqlx::query(&format!(
            "SELECT {BRAND_COLUMNS} FROM read_model.brands \
             WHERE ($1::boolean IS NULL OR COALESCE(is_active, TRUE) = $1) \
               AND ($2::text IS NULL OR (name, id) > ($2, $3::uuid)) \
             ORDER BY name, id LIMIT $4"
        ))
        .bind(filter.is_active)
        .bind(after.map(|k| k.name.clone()))
        .bind(after.map(|k| k.id))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let items: Vec<BrandView> = rows
            .iter()
            .map(brand_from)
            .collect::<Result<_, _>>()
            .map_err(classify)?;
        Ok(paged(items, page.limit, |b| BrandKey {
            name: b.name.clone(),
            id: b.id,
        }))
    }
}

impl CatalogReadModel for PgCatalogReadModel {
    fn product(&self, id: Uuid) -> BoxFuture<'_, Result<Option<ProductView>, StoreError>> {
        Box::pin(self.fetch_product(id))
    }

    fn categories(
        &self,
        filter: CategoryFilter,
        page: Page<CategoryKey>,
    ) -> BoxFuture<'_, Result<Listed<CategoryView, CategoryKey>, StoreError>> {
        Box::pin(self.fetch_categories(filter, page))
    }

    fn brands(
        &self,
        filter: BrandFilter,
        page: Page<BrandKey>,
    ) -> BoxFuture<'_, Result<Listed<BrandView, BrandKey>, StoreError>> {
        Box::pin(self.fetch_brands(filter, page))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(classify)
        })
    }
}

/// `rows` cut to `limit`, with the key of the last one kept when a row past
/// it was there.
fn paged<T, K>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> Listed<T, K> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = rows.last().filter(|_| more).map(key);
    Listed { items: rows, next }
}

fn product_from(row: &PgRow) -> Result<ProductView, sqlx::Error> {
    Ok(ProductView {
        id: row.try_get("id")?,
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        description: row.try_get("description")?,
        short_description: row.try_get("short_description")?,
        category_id: row.try_get("category_id")?,
        brand_id: row.try_get("brand_id")?,
        regular_price: row.try_get("regular_price")?,
        sale_price: row.try_get("sale_price")?,
        currency: row.try_get("currency")?,
        track_inventory: row.try_get("track_inventory")?,
        stock_quantity: row.try_get("stock_quantity")?,
        low_stock_threshold: row.try_get("low_stock_threshold")?,
        weight: row.try_get("weight")?,
        length: row.try_get("length")?,
        width: row.try_get("width")?,
        height: row.try_get("height")?,
        meta_title: row.try_get("meta_title")?,
        meta_description: row.try_get("meta_description")?,
        meta_keywords: row.try_get("meta_keywords")?,
        status: row.try_get("status")?,
        featured: row.try_get("featured")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        published_at: row.try_get("published_at")?,
        images: json_column(row, "images")?,
        attributes: json_column(row, "attributes")?,
        variants: json_column(row, "variants")?,
    })
}

/// A JSON column decoded into `T`; a shape that does not decode is a
/// failure of the read model, not an empty list.
fn json_column<T: serde::de::DeserializeOwned>(row: &PgRow, name: &str) -> Result<T, sqlx::Error> {
    let value: serde_json::Value = row.try_get(name)?;
    serde_json::from_value(value).map_err(|error| sqlx::Error::ColumnDecode {
        index: name.to_owned(),
        source: Box::new(error),
    })
}

fn category_from(row: &PgRow) -> Result<CategoryView, sqlx::Error> {
    Ok(CategoryView {
        id: row.try_get("id")?,
        parent_id: row.try_get("parent_id")?,
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        description: row.try_get("description")?,
        image_url: row.try_get("image_url")?,
        meta_title: row.try_get("meta_title")?,
        meta_description: row.try_get("meta_description")?,
        meta_keywords: row.try_get("meta_keywords")?,
        sort_order: row.try_get("sort_order")?,
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn brand_from(row: &PgRow) -> Result<BrandView, sqlx::Error> {
    Ok(BrandView {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        description: row.try_get("description")?,
        logo_url: row.try_get("logo_url")?,
        website_url: row.try_get("website_url")?,
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A server that cannot be reached or refuses work for now is unavailable;
/// anything else (a bad query, an unexpected column type) is a failure.
pub(crate) fn classify(error: sqlx::Error) -> StoreError {
    let unavailable = match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // connection exceptions, too many connections, shutting down / starting up
            code.starts_with("08") || code == "53300" || code.starts_with("57P")
        }),
        _ => false,
    };
    if unavailable {
        StoreError::unavailable(STORE, error)
    } else {
        StoreError::failed(STORE, error)
    }
}
