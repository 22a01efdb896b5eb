//! [`PromotionsReadModel`] over PostgreSQL's `read_model` schema. The seed's
//! nullable columns read as their defaults (`is_active` true,
//! `applicable_to` `all`, `usage_count` 0, a missing timestamp as the other
//! one or the epoch), so a row always makes a complete view.
//!
//! The listing's SQL holds only the filters asked for, each as a plain
//! predicate on its column, so that the seed's indexes can serve them:
//! `idx_promotions_is_active`, `idx_promotions_type`, and
//! `idx_promotions_dates` for `valid_at`, the order and the page's key.

use std::collections::BTreeMap;

use domain::values::CouponCode;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{
    ApplicableTo, CouponRecord, CouponView, PromotionDetail, PromotionFilter, PromotionKey,
    PromotionType, PromotionView, PromotionsReadModel,
};
use crate::catalog::postgres::classify;
use crate::catalog::{Listed, Page};
use crate::error::StoreError;
use crate::BoxFuture;

/// The columns of `p` (a `read_model.promotions` row) and what the other
/// tables hold about it.
const PROMOTION_COLUMNS: &str = "p.id, p.name, p.description, p.type, p.value, \
    p.minimum_amount, p.maximum_discount, p.usage_limit, p.usage_limit_per_user, \
    p.starts_at, p.ends_at, \
    COALESCE(p.is_active, TRUE) AS is_active, \
    COALESCE(p.applicable_to, 'all') AS applicable_to, \
    COALESCE(p.created_at, p.updated_at, 'epoch') AS created_at, \
    COALESCE(p.updated_at, p.created_at, 'epoch') AS updated_at, \
    COALESCE((SELECT array_agg(t.target_id ORDER BY t.target_id) \
        FROM read_model.promotion_targets t WHERE t.promotion_id = p.id), '{}') AS targets, \
    COALESCE((SELECT u.usage_count FROM read_model.promotion_usage u \
        WHERE u.promotion_id = p.id), 0) AS usage_count, \
    (SELECT count(*) FROM read_model.coupons c WHERE c.promotion_id = p.id) AS coupon_count";

const COUPON_COLUMNS: &str = "c.id, c.code, COALESCE(c.usage_count, 0) AS usage_count, \
    COALESCE(c.is_active, TRUE) AS is_active, \
    COALESCE(c.created_at, 'epoch') AS created_at";

#[derive(Clone)]
pub struct PgPromotionsReadModel {
    pool: PgPool,
}

impl PgPromotionsReadModel {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    #[tracing::instrument(name = "pg_promotions", skip(self))]
    async fn fetch_promotions(
        &self,
        filter: PromotionFilter,
        page: Page<PromotionKey>,
    ) -> Result<Listed<PromotionView, PromotionKey>, StoreError> {
        let mut sql: QueryBuilder<'_, Postgres> = QueryBuilder::new(format!(
            "SELECT {PROMOTION_COLUMNS} FROM read_model.promotions p WHERE TRUE"
        ));
        match filter.is_active {
            // NULL is the seed's default, true.
            Some(true) => {
                sql.push(" AND (p.is_active OR p.is_active IS NULL)");
            }
            Some(false) => {
                sql.push(" AND p.is_active = FALSE");
            }
            None => {}
        }
        if let Some(kind) = filter.kind {
            sql.push(" AND p.type = ").push_bind(kind.as_str());
        }
        match filter.applicable_to {
            Some(ApplicableTo::All) => {
                sql.push(" AND (p.applicable_to = 'all' OR p.applicable_to IS NULL)");
            }
            Some(to) => {
                sql.push(" AND p.applicable_to = ").push_bind(to.as_str());
            }
            None => {}
        }
        if let Some(at) = filter.valid_at {
            sql.push(" AND p.starts_at <= ")
                .push_bind(at)
                .push(" AND p.ends_at > ")
                .push_bind(at);
        }
        if let Some(after) = &page.after {
            // The first conjunct bounds the index range; the row compares the key.
            sql.push(" AND p.starts_at <= ")
                .push_bind(after.starts_at)
                .push(" AND (p.starts_at, p.ends_at, p.id) < (")
                .push_bind(after.starts_at)
                .push(", ")
                .push_bind(after.ends_at)
                .push(", ")
                .push_bind(after.id)
                .push(")");
        }
        // One row past the page says whether another page follows.
        sql.push(" ORDER BY p.starts_at DESC, p.ends_at DESC, p.id DESC LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        let rows = sql.build().fetch_all(&self.pool).await.map_err(classify)?;
        let mut items = rows
            .iter()
            .map(promotion_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?;
        let more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        let next = items.last().filter(|_| more).map(|promotion| PromotionKey {
            starts_at: promotion.starts_at,
            ends_at: promotion.ends_at,
            id: promotion.id,
        });
        Ok(Listed { items, next })
    }

    #[tracing::instrument(name = "pg_promotion", skip(self))]
    async fn fetch_promotion(&self, id: Uuid) -> Result<Option<PromotionDetail>, StoreError> {
        // One snapshot: the coupons are the ones of the row shown.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let Some(row) = sqlx::query(&format!(
            "SELECT {PROMOTION_COLUMNS} FROM read_model.promotions p WHERE p.id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?
        else {
            return Ok(None);
        };
        let promotion = promotion_from(&row).map_err(classify)?;
        let coupons = sqlx::query(&format!(
            "SELECT {COUPON_COLUMNS} FROM read_model.coupons c WHERE c.promotion_id = $1 \
             ORDER BY c.created_at NULLS FIRST, c.code"
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?
        .iter()
        .map(coupon_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(Some(PromotionDetail { promotion, coupons }))
    }

    #[tracing::instrument(name = "pg_coupon", skip_all, fields(code = %code.as_str()))]
    async fn fetch_coupon(
        &self,
        code: &CouponCode,
        user_id: Option<Uuid>,
    ) -> Result<Option<CouponRecord>, StoreError> {
        // One snapshot: the count of uses is the one of the row shown.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        // Codes are stored upper-cased, as `CouponCode` is: an exact match.
        let Some(row) = sqlx::query(&format!(
            "SELECT {COUPON_COLUMNS}, c.promotion_id FROM read_model.coupons c WHERE c.code = $1"
        ))
        .bind(code.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?
        else {
            return Ok(None);
        };
        let coupon = coupon_from(&row).map_err(classify)?;
        let promotion_id: Uuid = row.try_get("promotion_id").map_err(classify)?;
        let promotion = sqlx::query(&format!(
            "SELECT {PROMOTION_COLUMNS} FROM read_model.promotions p WHERE p.id = $1"
        ))
        .bind(promotion_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        let promotion = promotion_from(&promotion).map_err(classify)?;
        let user_redemptions = match user_id {
            None => 0,
            Some(user_id) => {
                let count: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM read_model.coupon_redemptions r \
                     JOIN read_model.coupons c ON c.id = r.coupon_id \
                     WHERE c.promotion_id = $1 AND r.user_id = $2",
                )
                .bind(promotion_id)
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
                u32::try_from(count).unwrap_or(u32::MAX)
            }
        };
        tx.commit().await.map_err(classify)?;
        Ok(Some(CouponRecord {
            coupon,
            promotion,
            user_redemptions,
        }))
    }

    #[tracing::instrument(name = "pg_product_categories", skip_all, fields(count = product_ids.len()))]
    async fn fetch_product_categories(
        &self,
        product_ids: &[Uuid],
    ) -> Result<BTreeMap<Uuid, Option<Uuid>>, StoreError> {
        if product_ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
            "SELECT id, category_id FROM read_model.products WHERE id = ANY($1::uuid[])",
        )
        .bind(product_ids)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows.into_iter().collect())
    }
}

impl PromotionsReadModel for PgPromotionsReadModel {
    fn promotions(
        &self,
        filter: PromotionFilter,
        page: Page<PromotionKey>,
    ) -> BoxFuture<'_, Result<Listed<PromotionView, PromotionKey>, StoreError>> {
        Box::pin(self.fetch_promotions(filter, page))
    }

    fn promotion(&self, id: Uuid) -> BoxFuture<'_, Result<Option<PromotionDetail>, StoreError>> {
        Box::pin(self.fetch_promotion(id))
    }

    fn coupon<'a>(
        &'a self,
        code: &'a CouponCode,
        user_id: Option<Uuid>,
    ) -> BoxFuture<'a, Result<Option<CouponRecord>, StoreError>> {
        Box::pin(self.fetch_coupon(code, user_id))
    }

    fn product_categories<'a>(
        &'a self,
        product_ids: &'a [Uuid],
    ) -> BoxFuture<'a, Result<BTreeMap<Uuid, Option<Uuid>>, StoreError>> {
        Box::pin(self.fetch_product_categories(product_ids))
    }
}

/// A column whose text is not one of the seed's values: a failure of the
/// read model, not a default.
fn decode_error(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("{value:?} is not one of the seed's values").into(),
    }
}

fn money(row: &PgRow, column: &str) -> Result<Option<rust_decimal::Decimal>, sqlx::Error> {
    let amount: Option<rust_decimal::Decimal> = row.try_get(column)?;
    Ok(amount.map(|mut amount| {
        amount.rescale(2);
        amount
    }))
}

fn promotion_from(row: &PgRow) -> Result<PromotionView, sqlx::Error> {
    let kind: String = row.try_get("type")?;
    let applicable_to: String = row.try_get("applicable_to")?;
    Ok(PromotionView {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        kind: PromotionType::parse(&kind).ok_or_else(|| decode_error("type", &kind))?,
        value: money(row, "value")?.unwrap_or_default(),
        minimum_amount: money(row, "minimum_amount")?,
        maximum_discount: money(row, "maximum_discount")?,
        usage_limit: row.try_get("usage_limit")?,
        usage_limit_per_user: row.try_get("usage_limit_per_user")?,
        starts_at: row.try_get("starts_at")?,
        ends_at: row.try_get("ends_at")?,
        is_active: row.try_get("is_active")?,
        applicable_to: ApplicableTo::parse(&applicable_to)
            .ok_or_else(|| decode_error("applicable_to", &applicable_to))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        targets: row.try_get("targets")?,
        usage_count: row.try_get("usage_count")?,
        coupon_count: row.try_get("coupon_count")?,
    })
}

fn coupon_from(row: &PgRow) -> Result<CouponView, sqlx::Error> {
    Ok(CouponView {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        usage_count: row.try_get("usage_count")?,
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
    })
}
