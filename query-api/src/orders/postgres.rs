//! [`OrdersReadModel`] over PostgreSQL's `read_model` schema. The seed's
//! nullable columns read as their defaults (`status` and `payment_status`
//! `pending`, `currency` `THB`, `product_options` `{}`, a missing timestamp
//! as the other one or the epoch), so a row always makes a complete view;
//! the filters treat a NULL status as `pending` too.
//!
//! The listing is one statement ([`PgOrdersReadModel::listing_query`]) that
//! holds only the filters asked for, each a plain predicate on its column,
//! so that the seed's indexes can serve them: `idx_orders_created_at` the
//! order, the page's key and `created_from`/`created_to`;
//! `idx_orders_user_id`, `idx_orders_status`, `idx_orders_payment_status`,
//! `idx_orders_total_amount` and `idx_orders_order_number` the others; and
//! `idx_order_items_order_id` the item count and the lines.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{
    OrderAddressView, OrderDetail, OrderFilter, OrderItemView, OrderKey, OrderStatus, OrderView,
    OrdersReadModel, PaymentStatus,
};
use crate::catalog::postgres::classify;
use crate::catalog::{Listed, Page};
use crate::error::StoreError;
use crate::BoxFuture;

/// The columns of `o` (a `read_model.orders` row), its raw `created_at`
/// (the listing's key) and the sum of its lines' quantities.
const ORDER_COLUMNS: &str = "o.id, o.order_number, o.user_id, \
    COALESCE(o.status, 'pending') AS status, \
    o.subtotal, o.tax_amount, o.shipping_amount, o.discount_amount, o.total_amount, \
    COALESCE(o.currency, 'THB') AS currency, \
    o.billing_address, o.shipping_address, \
    o.shipping_method, o.tracking_number, o.shipped_at, o.delivered_at, \
    COALESCE(o.payment_status, 'pending') AS payment_status, o.payment_method, \
    o.notes, o.admin_notes, \
    o.created_at AS listed_at, \
    COALESCE(o.created_at, o.updated_at, 'epoch') AS created_at, \
    COALESCE(o.updated_at, o.created_at, 'epoch') AS updated_at, \
    COALESCE((SELECT sum(i.quantity) FROM read_model.order_items i \
        WHERE i.order_id = o.id), 0)::bigint AS item_count";

const ITEM_COLUMNS: &str = "i.id, i.order_id, i.product_id, i.product_variant_id, \
    i.product_name, i.product_sku, i.product_image_url, i.unit_price, i.quantity, i.total_price, \
    COALESCE(i.product_options, '{}') AS product_options, i.created_at";

#[derive(Clone)]
pub struct PgOrdersReadModel {
    pool: PgPool,
}

impl PgOrdersReadModel {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The listing's statement for `filter` and `page`, after `prefix`:
    /// `orders` runs it with an empty one, and the contract suite EXPLAINs
    /// it to check that the seed's indexes serve each shape it takes.
    pub fn listing_query<'a>(
        prefix: &str,
        filter: &'a OrderFilter,
        page: &'a Page<OrderKey>,
    ) -> QueryBuilder<'a, Postgres> {
        let mut sql: QueryBuilder<'a, Postgres> = QueryBuilder::new(format!(
            "{prefix}SELECT {ORDER_COLUMNS} FROM read_model.orders o WHERE TRUE"
        ));
        if let Some(user_id) = filter.user_id {
            sql.push(" AND o.user_id = ").push_bind(user_id);
        }
        match filter.status {
            // NULL is the seed's default, pending.
            Some(OrderStatus::Pending) => {
                sql.push(" AND (o.status = 'pending' OR o.status IS NULL)");
            }
            Some(status) => {
                sql.push(" AND o.status = ").push_bind(status.as_str());
            }
            None => {}
        }
        match filter.payment_status {
            Some(PaymentStatus::Pending) => {
                sql.push(" AND (o.payment_status = 'pending' OR o.payment_status IS NULL)");
            }
            Some(status) => {
                sql.push(" AND o.payment_status = ")
                    .push_bind(status.as_str());
            }
            None => {}
        }
        if let Some(from) = filter.created_from {
            sql.push(" AND o.created_at >= ").push_bind(from);
        }
        if let Some(to) = filter.created_to {
            sql.push(" AND o.created_at < ").push_bind(to);
        }
        if let Some(min) = filter.min_total {
            sql.push(" AND o.total_amount >= ").push_bind(min);
        }
        if let Some(max) = filter.max_total {
            sql.push(" AND o.total_amount <= ").push_bind(max);
        }
        if let Some(number) = &filter.order_number {
            sql.push(" AND o.order_number = ")
                .push_bind(number.as_str());
        }
        match &page.after {
            // The first conjunct bounds the index range; the row compares the key.
            Some(OrderKey {
                created_at: Some(created_at),
                id,
            }) => {
                sql.push(" AND o.created_at <= ")
                    .push_bind(*created_at)
                    .push(" AND (o.created_at, o.id) < (")
                    .push_bind(*created_at)
                    .push(", ")
                    .push_bind(*id)
                    .push(")");
            }
            // Rows without a created_at come first (NULL sorts first when
            // descending): the rest of them, then every row that has one.
            Some(OrderKey {
                created_at: None,
                id,
            }) => {
                sql.push(" AND (o.created_at IS NOT NULL OR o.id < ")
                    .push_bind(*id)
                    .push(")");
            }
            None => {}
        }
        // One row past the page says whether another page follows.
        sql.push(" ORDER BY o.created_at DESC, o.id DESC LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        sql
    }

    #[tracing::instrument(name = "pg_orders", skip(self))]
    async fn fetch_orders(
        &self,
        filter: OrderFilter,
        page: Page<OrderKey>,
    ) -> Result<Listed<OrderView, OrderKey>, StoreError> {
        let rows = Self::listing_query("", &filter, &page)
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let mut listed = rows
            .iter()
            .map(|row| Ok((order_from(row)?, row.try_get("listed_at")?)))
            .collect::<Result<Vec<(OrderView, Option<DateTime<Utc>>)>, sqlx::Error>>()
            .map_err(classify)?;
        let more = listed.len() > page.limit as usize;
        listed.truncate(page.limit as usize);
        let next = listed
            .last()
            .filter(|_| more)
            .map(|(order, created_at)| OrderKey {
                created_at: *created_at,
                id: order.id,
            });
        Ok(Listed {
            items: listed.into_iter().map(|(order, _)| order).collect(),
            next,
        })
    }

    #[tracing::instrument(name = "pg_order", skip(self))]
    async fn fetch_order(&self, id: Uuid) -> Result<Option<OrderDetail>, StoreError> {
        // One snapshot: the lines are the ones of the row shown.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let Some(row) = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM read_model.orders o WHERE o.id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?
        else {
            return Ok(None);
        };
        let order = order_from(&row).map_err(classify)?;
        let items = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM read_model.order_items i WHERE i.order_id = $1 \
             ORDER BY i.created_at NULLS FIRST, i.id"
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?
        .iter()
        .map(|row| item_from(row, order.created_at))
        .collect::<Result<Vec<_>, _>>()
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(Some(OrderDetail { order, items }))
    }
}

impl OrdersReadModel for PgOrdersReadModel {
    fn orders(
        &self,
        filter: OrderFilter,
        page: Page<OrderKey>,
    ) -> BoxFuture<'_, Result<Listed<OrderView, OrderKey>, StoreError>> {
        Box::pin(self.fetch_orders(filter, page))
    }

    fn order(&self, id: Uuid) -> BoxFuture<'_, Result<Option<OrderDetail>, StoreError>> {
        Box::pin(self.fetch_order(id))
    }
}

/// A column whose value is not one of the seed's: a failure of the read
/// model, not a default.
fn decode_error(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("{value:?} is not one of the seed's values").into(),
    }
}

/// An amount with the API's two decimals.
fn money(row: &PgRow, column: &str) -> Result<Decimal, sqlx::Error> {
    let mut amount: Decimal = row.try_get(column)?;
    amount.rescale(2);
    Ok(amount)
}

fn address(row: &PgRow, column: &str) -> Result<OrderAddressView, sqlx::Error> {
    let Json(address) = row.try_get::<Json<OrderAddressView>, _>(column)?;
    Ok(address)
}

fn order_from(row: &PgRow) -> Result<OrderView, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let payment_status: String = row.try_get("payment_status")?;
    Ok(OrderView {
        id: row.try_get("id")?,
        order_number: row.try_get("order_number")?,
        user_id: row.try_get("user_id")?,
        status: OrderStatus::parse(&status).ok_or_else(|| decode_error("status", &status))?,
        subtotal: money(row, "subtotal")?,
        tax_amount: money(row, "tax_amount")?,
        shipping_amount: money(row, "shipping_amount")?,
        discount_amount: money(row, "discount_amount")?,
        total_amount: money(row, "total_amount")?,
        currency: row.try_get("currency")?,
        billing_address: address(row, "billing_address")?,
        shipping_address: address(row, "shipping_address")?,
        shipping_method: row.try_get("shipping_method")?,
        tracking_number: row.try_get("tracking_number")?,
        shipped_at: row.try_get("shipped_at")?,
        delivered_at: row.try_get("delivered_at")?,
        payment_status: PaymentStatus::parse(&payment_status)
            .ok_or_else(|| decode_error("payment_status", &payment_status))?,
        payment_method: row.try_get("payment_method")?,
        notes: row.try_get("notes")?,
        admin_notes: row.try_get("admin_notes")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        item_count: row.try_get("item_count")?,
    })
}

/// A line; one without a `created_at` reads as created with its order.
fn item_from(row: &PgRow, order_created_at: DateTime<Utc>) -> Result<OrderItemView, sqlx::Error> {
    let Json(product_options) =
        row.try_get::<Json<BTreeMap<String, String>>, _>("product_options")?;
    let created_at: Option<DateTime<Utc>> = row.try_get("created_at")?;
    Ok(OrderItemView {
        id: row.try_get("id")?,
        order_id: row.try_get("order_id")?,
        product_id: row.try_get("product_id")?,
        product_variant_id: row.try_get("product_variant_id")?,
        product_name: row.try_get("product_name")?,
        product_sku: row.try_get("product_sku")?,
        product_image_url: row.try_get("product_image_url")?,
        unit_price: money(row, "unit_price")?,
        quantity: row.try_get("quantity")?,
        total_price: money(row, "total_price")?,
        product_options,
        created_at: created_at.unwrap_or(order_created_at),
    })
}
