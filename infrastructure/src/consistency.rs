//! Read-your-writes across the log's two hops: from the event store to Kafka
//! (the relay) and from Kafka to each read model (the projectors).
//!
//! With each batch it publishes, the relay records a watermark: the batch's
//! last place in the global order and, for every topic partition, the offset
//! of the last message it has published there up to that place. Each
//! projection records, per partition, the next offset it will apply, once its
//! store has accepted a batch and before Kafka is told. A projection has
//! applied a consistency token when, at the first watermark at or past the
//! token, every partition of its topics has been applied past the
//! watermark's offset. Both records only ever understate: a watermark covers
//! at least the token, and an applied offset is written after the store.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::event_store::{ConsistencyToken, GlobalCheckpoint};
use crate::settings::KafkaSettings;

/// An offset per (topic, partition).
pub type PartitionOffsets = BTreeMap<(String, i32), i64>;

/// A read model as readers depend on it: the projection that feeds it and the
/// aggregate types (one topic each) it consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadModel {
    pub projection: &'static str,
    pub aggregate_types: &'static [&'static str],
}

pub const CATALOG_TABLES: ReadModel = ReadModel {
    projection: "catalog-tables",
    aggregate_types: &["category", "brand", "product", "inventory"],
};
pub const USERS_TABLES: ReadModel = ReadModel {
    projection: "users-tables",
    aggregate_types: &["user"],
};
pub const PRODUCT_CACHE: ReadModel = ReadModel {
    projection: "product-cache",
    aggregate_types: &["product", "inventory"],
};
pub const CART_DOCUMENTS: ReadModel = ReadModel {
    projection: "cart-documents",
    aggregate_types: &["cart"],
};
pub const CART_CACHE: ReadModel = ReadModel {
    projection: "cart-cache",
    aggregate_types: &["cart"],
};
pub const PROMOTION_TABLES: ReadModel = ReadModel {
    projection: "promotion-tables",
    aggregate_types: &["promotion", "coupon"],
};
pub const ORDERS_TABLES: ReadModel = ReadModel {
    projection: "orders-tables",
    aggregate_types: &["order", "user"],
};
pub const PAYMENTS_TABLES: ReadModel = ReadModel {
    projection: "payments-tables",
    aggregate_types: &["payment"],
};
/// The order and payment notifications in Mongo `notifications`: written
/// as they are delivered, and marked read from the notification streams.
pub const ORDER_NOTIFICATIONS: ReadModel = ReadModel {
    projection: "order-notifications",
    aggregate_types: &["order", "payment", "notification"],
};
/// The account messages (email verification, password reset) in Mongo
/// `notifications`.
pub const ACCOUNT_MAIL: ReadModel = ReadModel {
    projection: "account-mail",
    aggregate_types: &["user"],
};
pub const PRODUCT_SEARCH: ReadModel = ReadModel {
    projection: "product-search",
    aggregate_types: &["category", "brand", "product", "inventory"],
};

fn key(topic: &str, partition: i32) -> String {
    // Kafka topic names cannot hold '/'.
    format!("{topic}/{partition}")
}

fn to_json(offsets: &PartitionOffsets) -> serde_json::Value {
    offsets
        .iter()
        .map(|((topic, partition), offset)| (key(topic, *partition), (*offset).into()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Records that everything up to `place` is published, with the last offset
/// of every partition the relay has written to.
pub async fn record_watermark(
    conn: &mut PgConnection,
    relay: &str,
    place: GlobalCheckpoint,
    offsets: &PartitionOffsets,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO event_store.relay_watermarks (relay, epoch, transaction_id, position, offsets) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (relay, epoch, transaction_id, position) DO UPDATE SET offsets = EXCLUDED.offsets",
    )
    .bind(relay)
    .bind(place.epoch)
    .bind(place.transaction_id)
    .bind(place.position)
    .bind(to_json(offsets))
    .execute(conn)
    .await?;
    Ok(())
}

/// The offsets of the relay's latest watermark, which a new leader carries on.
pub async fn latest_watermark(
    conn: &mut PgConnection,
    relay: &str,
) -> Result<PartitionOffsets, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT o.key, o.value::text::bigint FROM ( \
             SELECT offsets FROM event_store.relay_watermarks WHERE relay = $1 \
             ORDER BY epoch DESC, transaction_id DESC, position DESC LIMIT 1) w, \
         jsonb_each(w.offsets) o",
    )
    .bind(relay)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(key, offset)| {
            let (topic, partition) = key.rsplit_once('/')?;
            Some(((topic.to_owned(), partition.parse().ok()?), offset))
        })
        .collect())
}

/// Drops watermarks older than `keep`, except the latest. A token older than
/// every watermark kept is checked against a later one, which only waits a
/// little longer.
pub async fn prune_watermarks(
    conn: &mut PgConnection,
    relay: &str,
    keep: Duration,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM event_store.relay_watermarks w WHERE relay = $1 \
         AND recorded_at < now() - make_interval(secs => $2) \
         AND (epoch, transaction_id, position) < ( \
             SELECT epoch, transaction_id, position FROM event_store.relay_watermarks \
             WHERE relay = $1 ORDER BY epoch DESC, transaction_id DESC, position DESC LIMIT 1)",
    )
    .bind(relay)
    .bind(keep.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Records the next offset `projection` will apply per partition; an offset
/// never moves back.
pub async fn record_applied<'e>(
    executor: impl PgExecutor<'e>,
    projection: &str,
    next_offsets: &PartitionOffsets,
) -> Result<(), sqlx::Error> {
    if next_offsets.is_empty() {
        return Ok(());
    }
    let (topics, partitions, offsets): (Vec<&str>, Vec<i32>, Vec<i64>) = next_offsets
        .iter()
        .map(|((topic, partition), offset)| (topic.as_str(), *partition, *offset))
        .fold(
            (Vec::new(), Vec::new(), Vec::new()),
            |mut all, (t, p, o)| {
                all.0.push(t);
                all.1.push(p);
                all.2.push(o);
                all
            },
        );
    sqlx::query(
        "INSERT INTO read_model.projection_offsets (projection, topic, partition, next_offset) \
         SELECT $1, * FROM UNNEST($2::text[], $3::int[], $4::bigint[]) \
         ON CONFLICT (projection, topic, partition) DO UPDATE \
         SET next_offset = greatest(projection_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
    )
    .bind(projection)
    .bind(topics)
    .bind(partitions)
    .bind(offsets)
    .execute(executor)
    .await?;
    Ok(())
}

/// The projections among `read_models` that have not applied `token` yet.
pub async fn lagging(
    pool: &PgPool,
    kafka: &KafkaSettings,
    relay: &str,
    token: ConsistencyToken,
    read_models: &[ReadModel],
) -> Result<Vec<&'static str>, sqlx::Error> {
    if token == ConsistencyToken::default() || read_models.is_empty() {
        return Ok(Vec::new());
    }
    let mut projections = Vec::new();
    let mut topics = Vec::new();
    for model in read_models {
        for kind in model.aggregate_types {
            projections.push(model.projection);
            topics.push(kafka.topic_for(kind));
        }
    }
    let place = token.place();
    let behind: Vec<String> = sqlx::query_scalar(
        "WITH w AS ( \
             SELECT offsets FROM event_store.relay_watermarks \
             WHERE relay = $1 AND (epoch, transaction_id, position) >= ($2, $3, $4) \
             ORDER BY epoch, transaction_id, position LIMIT 1), \
         needed AS ( \
             SELECT split_part(o.key, '/', 1) AS topic, split_part(o.key, '/', 2)::int AS partition, \
                    o.value::text::bigint AS last_offset \
             FROM w, jsonb_each(w.offsets) o) \
         SELECT DISTINCT d.projection FROM UNNEST($5::text[], $6::text[]) AS d(projection, topic) \
         WHERE NOT EXISTS (SELECT 1 FROM w) \
            OR EXISTS ( \
                SELECT 1 FROM needed n \
                LEFT JOIN read_model.projection_offsets p \
                  ON p.projection = d.projection AND p.topic = n.topic AND p.partition = n.partition \
                WHERE n.topic = d.topic AND coalesce(p.next_offset, 0) <= n.last_offset)",
    )
    .bind(relay)
    .bind(place.epoch)
    .bind(place.transaction_id)
    .bind(place.position)
    .bind(&projections)
    .bind(&topics)
    .fetch_all(pool)
    .await?;
    let mut lagging: Vec<&'static str> = read_models
        .iter()
        .map(|m| m.projection)
        .filter(|p| behind.iter().any(|b| b == p))
        .collect();
    lagging.dedup();
    Ok(lagging)
}
