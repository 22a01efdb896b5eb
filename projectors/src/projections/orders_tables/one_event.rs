//! The statements of one order event, with its addresses opened, and of a
//! customer's erasure; and the parent rows an order waits for.
//!
//! Every order event moves `orders.updated_at` to its own time, never back
//! (`GREATEST`), so the row ends the same whatever order a redelivery or a
//! released parking applies its events in.

use chrono::{DateTime, Utc};
use domain::order::{OrderEvent, OrderLine, PaymentStatus};
use domain::values::PostalAddress;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// The parents of an order, kept by other projections in `read_model`
/// (users-tables, catalog-tables): named with their schema, since a new
/// generation of the orders tables is built in a schema of its own and still
/// points at the live parents.
const USERS: &str = "read_model.users";
const PRODUCTS: &str = "read_model.products";
const VARIANTS: &str = "read_model.product_variants";

/// The keys an order waits under for a parent row: `user:{id}`,
/// `product:{id}`, `product_variant:{id}`.
pub(super) fn user_key(user: Uuid) -> String {
    format!("user:{user}")
}

fn product_key(product: Uuid) -> String {
    format!("product:{product}")
}

fn variant_key(variant: Uuid) -> String {
    format!("product_variant:{variant}")
}

/// The table a parking key names a row of, and the row's id.
fn parent_of(key: &str) -> Option<(&'static str, Uuid)> {
    let (kind, id) = key.split_once(':')?;
    let table = match kind {
        "user" => USERS,
        "product" => PRODUCTS,
        "product_variant" => VARIANTS,
        _ => return None,
    };
    Some((table, id.parse().ok()?))
}

/// The first of `ids` that `table` has no row for.
async fn first_missing(
    conn: &mut PgConnection,
    table: &str,
    ids: &[Uuid],
) -> Result<Option<Uuid>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(None);
    }
    sqlx::query_scalar(&format!(
        "SELECT wanted FROM unnest($1::uuid[]) AS wanted \
         WHERE NOT EXISTS (SELECT 1 FROM {table} p WHERE p.id = wanted) ORDER BY wanted LIMIT 1"
    ))
    .bind(ids)
    .fetch_optional(conn)
    .await
}

/// The first parent row `event` needs that is not written yet, as the key
/// it waits under: its customer, then its products, then their variants.
/// Only a placement refers to parents.
pub(super) async fn missing_parent(
    conn: &mut PgConnection,
    event: &OrderEvent,
) -> Result<Option<String>, sqlx::Error> {
    let OrderEvent::OrderPlaced { user_id, items, .. } = event else {
        return Ok(None);
    };
    if let Some(user) = user_id {
        if first_missing(conn, USERS, &[*user]).await?.is_some() {
            return Ok(Some(user_key(*user)));
        }
    }
    let products: Vec<Uuid> = items.iter().map(|line| line.product_id).collect();
    if let Some(product) = first_missing(conn, PRODUCTS, &products).await? {
        return Ok(Some(product_key(product)));
    }
    let variants: Vec<Uuid> = items
        .iter()
        .filter_map(|line| line.product_variant_id)
        .collect();
    if let Some(variant) = first_missing(conn, VARIANTS, &variants).await? {
        return Ok(Some(variant_key(variant)));
    }
    Ok(None)
}

/// Of `keys`, the parent rows that are written now.
pub(super) async fn present(
    conn: &mut PgConnection,
    keys: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    let mut ready = Vec::new();
    for table in [USERS, PRODUCTS, VARIANTS] {
        let ids: Vec<Uuid> = keys
            .iter()
            .filter_map(|key| parent_of(key))
            .filter(|(of, _)| *of == table)
            .map(|(_, id)| id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let found: Vec<Uuid> =
            sqlx::query_scalar(&format!("SELECT id FROM {table} WHERE id = ANY($1)"))
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await?;
        ready.extend(
            keys.iter()
                .filter(|key| {
                    parent_of(key).is_some_and(|(of, id)| of == table && found.contains(&id))
                })
                .cloned(),
        );
    }
    Ok(ready)
}

/// An address as the event carries it: the domain's `PostalAddress`, in its
/// JSON form.
fn address_json(address: &PostalAddress) -> Value {
    serde_json::to_value(address).expect("a postal address serializes")
}

/// What the order's `field` (`billing_address`, `shipping_address`) reads as
/// once `customer` is erased: the domain's placeholder, in the same JSON form
/// as a real address, so that a row erased live equals one rebuilt from the
/// events, whose addresses then open to that placeholder.
pub(super) fn erased_address(field: &str, customer: Uuid) -> Value {
    let placeholder = domain::personal::erased_value("order", "OrderPlaced", field, customer);
    match serde_json::from_value::<PostalAddress>(placeholder.clone()) {
        Ok(address) => address_json(&address),
        Err(_) => placeholder,
    }
}

fn payment_status(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Pending => "pending",
        PaymentStatus::Paid => "paid",
        PaymentStatus::Failed => "failed",
        PaymentStatus::Refunded => "refunded",
        PaymentStatus::PartiallyRefunded => "partially_refunded",
    }
}

async fn insert_line(
    conn: &mut PgConnection,
    order_id: Uuid,
    line: &OrderLine,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let options = serde_json::to_value(&line.product_options).expect("options serialize");
    sqlx::query(
        "INSERT INTO order_items (id, order_id, product_id, product_variant_id, product_name, \
         product_sku, product_image_url, unit_price, quantity, total_price, product_options, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(line.order_item_id)
    .bind(order_id)
    .bind(line.product_id)
    .bind(line.product_variant_id)
    .bind(&line.product_name)
    .bind(line.product_sku.as_str())
    .bind(line.product_image_url.as_ref().map(|url| url.as_str()))
    .bind(line.unit_price.amount())
    // A quantity is at most 1,000,000: it fits the seed's INTEGER.
    .bind(line.quantity.get() as i32)
    .bind(line.total_price.amount())
    .bind(options)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets `column` of the order's row to `value` and moves `updated_at` to
/// `at` unless it is later already.
async fn update(
    conn: &mut PgConnection,
    order_id: Uuid,
    column: &str,
    value: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE orders SET {column} = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1"
    ))
    .bind(order_id)
    .bind(value)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes `event`. `erased`: the customer of a placement is erased already
/// (this projection applied their erasure), so its addresses are written as
/// the placeholders whatever they opened to.
pub(super) async fn apply(
    conn: &mut PgConnection,
    event: &OrderEvent,
    erased: bool,
) -> Result<(), sqlx::Error> {
    match event {
        OrderEvent::OrderPlaced {
            order_id,
            order_number,
            user_id,
            status,
            payment_status: payment,
            items,
            subtotal,
            discount_amount,
            shipping_amount,
            tax_amount,
            total_amount,
            currency,
            billing_address,
            shipping_address,
            shipping_method,
            payment_method,
            notes,
            created_at,
            ..
        } => {
            let (billing, shipping) = match (erased, user_id) {
                (true, Some(customer)) => (
                    erased_address("billing_address", *customer),
                    erased_address("shipping_address", *customer),
                ),
                _ => (address_json(billing_address), address_json(shipping_address)),
            };
            sqlx::query(
                "INSERT INTO orders (id, order_number, user_id, status, subtotal, tax_amount, \
                 shipping_amount, discount_amount, total_amount, currency, billing_address, \
                 shipping_address, shipping_method, tracking_number, shipped_at, delivered_at, \
                 payment_status, payment_method, notes, admin_notes, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, NULL, \
                 NULL, $14, $15, $16, NULL, $17, $17)",
            )
            .bind(order_id)
            .bind(order_number.as_str())
            .bind(user_id)
            .bind(status.to_string())
            .bind(subtotal.amount())
            .bind(tax_amount.amount())
            .bind(shipping_amount.amount())
            .bind(discount_amount.amount())
            .bind(total_amount.amount())
            .bind(currency.as_str())
            .bind(billing)
            .bind(shipping)
            .bind(shipping_method.as_str())
            .bind(payment_status(*payment))
            .bind(payment_method.as_ref().map(|m| m.as_str()))
            .bind(notes.as_ref().map(|n| n.as_str()))
            .bind(created_at)
            .execute(&mut *conn)
            .await?;
            for line in items {
                insert_line(conn, *order_id, line, *created_at).await?;
            }
            Ok(())
        }
        OrderEvent::OrderConfirmed {
            order_id,
            status,
            at,
            ..
        }
        | OrderEvent::OrderProcessingStarted {
            order_id,
            status,
            at,
            ..
        }
        // The reason of a cancellation and the amount of a refund have no
        // seed column.
        | OrderEvent::OrderCancelled {
            order_id,
            status,
            at,
            ..
        }
        | OrderEvent::OrderRefunded {
            order_id,
            status,
            at,
            ..
        } => update(conn, *order_id, "status", &status.to_string(), *at).await,
        OrderEvent::OrderShipped {
            order_id,
            status,
            tracking_number,
            shipped_at,
            ..
        } => {
            sqlx::query(
                "UPDATE orders SET status = $2, tracking_number = $3, shipped_at = $4, \
                 updated_at = GREATEST(updated_at, $4) WHERE id = $1",
            )
            .bind(order_id)
            .bind(status.to_string())
            .bind(tracking_number.as_str())
            .bind(shipped_at)
            .execute(conn)
            .await?;
            Ok(())
        }
        OrderEvent::OrderDelivered {
            order_id,
            status,
            delivered_at,
            ..
        } => {
            sqlx::query(
                "UPDATE orders SET status = $2, delivered_at = $3, \
                 updated_at = GREATEST(updated_at, $3) WHERE id = $1",
            )
            .bind(order_id)
            .bind(status.to_string())
            .bind(delivered_at)
            .execute(conn)
            .await?;
            Ok(())
        }
        OrderEvent::OrderPaymentStatusChanged {
            order_id,
            payment_status: status,
            at,
            ..
        } => {
            update(
                conn,
                *order_id,
                "payment_status",
                payment_status(*status),
                *at,
            )
            .await
        }
        // The event carries the whole text, the new note appended.
        OrderEvent::OrderAdminNoteAdded {
            order_id,
            admin_notes,
            at,
            ..
        } => update(conn, *order_id, "admin_notes", admin_notes, *at).await,
    }
}

/// Overwrites the addresses of every order of `customer` with the
/// placeholders. `updated_at` stays: it is the time of the order's own last
/// event, which a rebuild (where the addresses open to the placeholders)
/// writes too.
pub(super) async fn erase_customer(
    conn: &mut PgConnection,
    customer: Uuid,
) -> Result<u64, sqlx::Error> {
    let erased = sqlx::query(
        "UPDATE orders SET billing_address = $2, shipping_address = $3 \
         WHERE user_id = $1 AND (billing_address <> $2 OR shipping_address <> $3)",
    )
    .bind(customer)
    .bind(erased_address("billing_address", customer))
    .bind(erased_address("shipping_address", customer))
    .execute(conn)
    .await?;
    Ok(erased.rows_affected())
}
