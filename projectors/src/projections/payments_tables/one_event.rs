//! The statements of one payment event, and the order row a payment waits
//! for.
//!
//! Column by column (`payments`):
//! - `id`, `order_id`, `payment_method`, `payment_provider`, `amount`,
//!   `currency`, `transaction_id`, `created_at`: `PaymentInitiated`, which
//!   writes `status` (`pending`) too and leaves the provider's columns NULL.
//! - `status`: the `status` of each provider report
//!   (`PaymentProcessingStarted`, `PaymentCompleted`, `PaymentFailed`,
//!   `PaymentCancelled`), then the `payment_status` of each
//!   `RefundCompleted`: `refunded` once the completed refunds add up to the
//!   capture, `completed` still after a partial one (the seed has no partial
//!   state; the order's `payment_status` tells the two apart).
//! - `provider_transaction_id`: the first report's, kept after it, as the
//!   aggregate keeps it (`Payment::provider_transaction_id`, what refunds are
//!   drawn against).
//! - `provider_response`, `processed_at`: the latest report's response and
//!   time, the report that set the provider's status.
//! - `updated_at`: the time of the payment's latest event, refunds included,
//!   never moved back (`GREATEST`).
//!
//! `payment_refunds`: one row per `RefundRequested` (`id` is the refund's id,
//! `status` `pending`, `created_at` the request's time); `RefundCompleted` or
//! `RefundFailed` sets its `status`, `provider_refund_id` and `processed_at`.

use chrono::{DateTime, Utc};
use domain::payment::PaymentEvent;
use sqlx::PgConnection;
use uuid::Uuid;

/// The parent of a payment, kept by orders-tables in `read_model`: named
/// with its schema, since a new generation of the payments tables is built
/// in a schema of its own and still points at the live orders.
const ORDERS: &str = "read_model.orders";

/// The key a payment waits under for its order's row.
pub(super) fn order_key(order: Uuid) -> String {
    format!("order:{order}")
}

/// The order a parking key names.
fn order_of(key: &str) -> Option<Uuid> {
    key.strip_prefix("order:")?.parse().ok()
}

/// The order row `event` needs that is not written yet, as the key it waits
/// under. Only an initiation refers to the order; the later events of the
/// payment refer to its own row, written by the initiation.
pub(super) async fn missing_parent(
    conn: &mut PgConnection,
    event: &PaymentEvent,
) -> Result<Option<String>, sqlx::Error> {
    let PaymentEvent::PaymentInitiated { order_id, .. } = event else {
        return Ok(None);
    };
    let present: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {ORDERS} WHERE id = $1)"
    ))
    .bind(order_id)
    .fetch_one(conn)
    .await?;
    Ok((!present).then(|| order_key(*order_id)))
}

/// Of `keys`, the ones whose order row is written now.
pub(super) async fn present(
    conn: &mut PgConnection,
    keys: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    let ids: Vec<Uuid> = keys.iter().filter_map(|key| order_of(key)).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<Uuid> =
        sqlx::query_scalar(&format!("SELECT id FROM {ORDERS} WHERE id = ANY($1)"))
            .bind(&ids)
            .fetch_all(conn)
            .await?;
    Ok(keys
        .iter()
        .filter(|key| order_of(key).is_some_and(|id| found.contains(&id)))
        .cloned()
        .collect())
}

/// A provider report: the status it moves the payment to, the first
/// report's transaction id kept, the latest response and time.
async fn provider_report(
    conn: &mut PgConnection,
    payment_id: Uuid,
    status: &str,
    provider_transaction_id: &str,
    provider_response: &serde_json::Value,
    processed_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payments SET status = $2, \
         provider_transaction_id = COALESCE(provider_transaction_id, $3), \
         provider_response = $4, processed_at = $5, updated_at = GREATEST(updated_at, $5) \
         WHERE id = $1",
    )
    .bind(payment_id)
    .bind(status)
    .bind(provider_transaction_id)
    .bind(provider_response)
    .bind(processed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A refund's result: its status, the provider's id of it and its time.
async fn settle_refund(
    conn: &mut PgConnection,
    payment_id: Uuid,
    refund_id: Uuid,
    status: &str,
    provider_refund_id: Option<&str>,
    processed_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payment_refunds SET status = $3, provider_refund_id = $4, processed_at = $5 \
         WHERE id = $1 AND payment_id = $2",
    )
    .bind(refund_id)
    .bind(payment_id)
    .bind(status)
    .bind(provider_refund_id)
    .bind(processed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the payment's `updated_at` to `at`, unless it is later already.
async fn touch(
    conn: &mut PgConnection,
    payment_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE payments SET updated_at = GREATEST(updated_at, $2) WHERE id = $1")
        .bind(payment_id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes `event`.
pub(super) async fn apply(
    conn: &mut PgConnection,
    event: &PaymentEvent,
) -> Result<(), sqlx::Error> {
    match event {
        PaymentEvent::PaymentInitiated {
            payment_id,
            order_id,
            amount,
            currency,
            payment_method,
            payment_provider,
            transaction_id,
            status,
            created_at,
        } => {
            sqlx::query(
                "INSERT INTO payments (id, order_id, payment_method, payment_provider, amount, \
                 currency, status, transaction_id, provider_transaction_id, provider_response, \
                 processed_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL, $9, $9)",
            )
            .bind(payment_id)
            .bind(order_id)
            .bind(payment_method)
            .bind(payment_provider)
            .bind(amount.amount())
            .bind(currency.as_str())
            .bind(status.as_str())
            .bind(transaction_id.as_deref())
            .bind(created_at)
            .execute(conn)
            .await?;
            Ok(())
        }
        PaymentEvent::PaymentProcessingStarted {
            payment_id,
            provider_transaction_id,
            provider_response,
            status,
            processed_at,
            ..
        }
        | PaymentEvent::PaymentCompleted {
            payment_id,
            provider_transaction_id,
            provider_response,
            status,
            processed_at,
            ..
        }
        | PaymentEvent::PaymentFailed {
            payment_id,
            provider_transaction_id,
            provider_response,
            status,
            processed_at,
            ..
        }
        | PaymentEvent::PaymentCancelled {
            payment_id,
            provider_transaction_id,
            provider_response,
            status,
            processed_at,
            ..
        } => {
            provider_report(
                conn,
                *payment_id,
                status.as_str(),
                provider_transaction_id,
                provider_response,
                *processed_at,
            )
            .await
        }
        PaymentEvent::RefundRequested {
            payment_id,
            refund_id,
            amount,
            reason,
            status,
            created_at,
            ..
        } => {
            sqlx::query(
                "INSERT INTO payment_refunds (id, payment_id, amount, reason, status, \
                 provider_refund_id, processed_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6)",
            )
            .bind(refund_id)
            .bind(payment_id)
            .bind(amount.amount())
            .bind(reason.as_deref())
            .bind(status.as_str())
            .bind(created_at)
            .execute(&mut *conn)
            .await?;
            touch(conn, *payment_id, *created_at).await
        }
        PaymentEvent::RefundCompleted {
            payment_id,
            refund_id,
            provider_refund_id,
            status,
            payment_status,
            processed_at,
            ..
        } => {
            settle_refund(
                conn,
                *payment_id,
                *refund_id,
                status.as_str(),
                provider_refund_id.as_deref(),
                *processed_at,
            )
            .await?;
            sqlx::query(
                "UPDATE payments SET status = $2, updated_at = GREATEST(updated_at, $3) \
                 WHERE id = $1",
            )
            .bind(payment_id)
            .bind(payment_status.as_str())
            .bind(processed_at)
            .execute(conn)
            .await?;
            Ok(())
        }
        PaymentEvent::RefundFailed {
            payment_id,
            refund_id,
            provider_refund_id,
            status,
            processed_at,
            ..
        } => {
            settle_refund(
                conn,
                *payment_id,
                *refund_id,
                status.as_str(),
                provider_refund_id.as_deref(),
                *processed_at,
            )
            .await?;
            touch(conn, *payment_id, *processed_at).await
        }
    }
}
