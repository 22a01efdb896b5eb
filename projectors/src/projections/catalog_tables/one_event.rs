//! The statements of one event, for the event-by-event path: each either
//! writes its rows or says which row it waits for.

use domain::catalog::{BrandEvent, CategoryEvent, ProductEvent};
use domain::inventory::InventoryEvent;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Outcome;
use crate::projections::product_state::stock_fact;

async fn exists(conn: &mut PgConnection, table: &str, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1)"
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

pub(super) fn slug_release(kind: &str, previous: &str, current: &str) -> Vec<String> {
    if previous == current {
        vec![]
    } else {
        vec![format!("{kind}_slug:{previous}")]
    }
}

pub(super) async fn apply_category(
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
                "INSERT INTO categories (id, parent_id, name, slug, description, image_url, meta_title, \
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
                "UPDATE categories SET name = $2, slug = $3, description = $4, image_url = $5, \
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
            sqlx::query("UPDATE categories SET parent_id = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1")
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
    sqlx::query(&format!(
        "UPDATE {table} SET is_active = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1"
    ))
    .bind(id)
    .bind(active)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(Outcome::Applied(vec![]))
}

pub(super) async fn apply_brand(
    conn: &mut PgConnection,
    event: BrandEvent,
) -> Result<Outcome, sqlx::Error> {
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
                "INSERT INTO brands (id, name, slug, description, logo_url, website_url, is_active, \
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
                "UPDATE brands SET name = $2, slug = $3, description = $4, logo_url = $5, \
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

pub(super) fn decimal<T: Into<Decimal>>(value: Option<T>) -> Option<Decimal> {
    value.map(Into::into)
}

pub(super) async fn apply_product(
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
                "INSERT INTO products (id, sku, name, slug, description, short_description, category_id, \
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
                "UPDATE products SET name = $2, slug = $3, description = $4, short_description = $5, \
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
                "UPDATE products SET regular_price = $2, sale_price = $3, cost_price = $4, updated_at = GREATEST(updated_at, $5) \
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
                "UPDATE products SET status = $2, published_at = $3, featured = $4, updated_at = GREATEST(updated_at, $5) \
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
                "INSERT INTO product_images (id, product_id, url, alt_text, is_primary, sort_order, created_at) \
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
            sqlx::query("DELETE FROM product_images WHERE id = $1")
                .bind(image_id)
                .execute(&mut *conn)
                .await?;
            if let Some(primary) = new_primary_image_id {
                sqlx::query(
                    "UPDATE product_images SET is_primary = (id = $2) WHERE product_id = $1",
                )
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
            sqlx::query("UPDATE product_images SET is_primary = (id = $2) WHERE product_id = $1")
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
                sqlx::query("UPDATE product_images SET sort_order = $2 WHERE id = $1")
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
                "INSERT INTO product_attributes (id, product_id, name, value, sort_order, created_at) \
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
            sqlx::query("DELETE FROM product_attributes WHERE id = $1")
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
                "INSERT INTO product_variants (id, product_id, sku, name, price, stock_quantity, attributes, \
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
                "UPDATE product_variants SET sku = $2, name = $3, price = $4, attributes = $5, updated_at = GREATEST(updated_at, $6) \
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
    sqlx::query("UPDATE products SET updated_at = GREATEST(updated_at, $2) WHERE id = $1")
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
    sqlx::query(
        "UPDATE products SET featured = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1",
    )
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
    sqlx::query("UPDATE product_variants SET is_active = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1")
        .bind(variant_id)
        .bind(active)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    touch(conn, product_id, at).await
}

/// Stock levels land on the product row, or on the variant row for a
/// variant's sku, once that row exists.
pub(super) async fn apply_inventory(
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
            "UPDATE products SET stock_quantity = COALESCE($2, stock_quantity), \
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
            "UPDATE product_variants SET stock_quantity = $2, \
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

pub(super) use crate::projections::product_state::inventory_event_time;
