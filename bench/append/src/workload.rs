//! What one measured run does: W writers on a pool of W connections, each
//! appending E events at a time to aggregates of its own through one of the
//! two stores, and the throughput and latency histogram that come out of it;
//! also PostgreSQL's own ceiling, bulk inserts of the same payload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::Aggregate;
use domain::catalog::Product;
use hdrhistogram::Histogram;
use infrastructure::event_store::{EventMetadata, NewEvent, PgEventStore, StreamAppend};
use postgres_es::PostgresEventRepository;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::task::JoinSet;
use uuid::Uuid;

pub const PAYLOAD_BYTES: usize = 474;
const EVENT_TYPE: &str = "ProductDetailsUpdated";
const EVENT_VERSION: &str = "1.0";
/// An append slower than this means the server is stuck, not slow.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Latencies are recorded in microseconds, up to the append timeout.
const LATENCY_MAX_MICROS: u64 = 30_000_000;
const MAX_CEILING_BATCHES: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Ours,
    PostgresEs,
}

impl StoreKind {
    pub fn label(self) -> &'static str {
        match self {
            StoreKind::Ours => "this store",
            StoreKind::PostgresEs => "postgres-es",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct RunSpec {
    pub store: StoreKind,
    pub writers: u32,
    pub events_per_append: u32,
    pub aggregates_per_writer: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub max_appends_per_writer: u64,
}

/// What the writers did between the end of the warm-up and the deadline.
pub struct Measurement {
    pub appends: u64,
    pub events: u64,
    /// From the end of the warm-up to the last measured append's return.
    pub elapsed: Duration,
    /// Append latency in microseconds.
    pub latency: Histogram<u64>,
}

impl Measurement {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// A product-details event of exactly `PAYLOAD_BYTES` bytes of compact JSON,
/// shaped like the platform's own events, so both stores parse and store the
/// same document.
pub fn payload() -> Value {
    let mut value = json!({
        "product_id": "01938f4e-7c2a-7b3e-9d41-6a0c52e8f1b7",
        "sku": "BENCH-SKU-000001",
        "name": "Bench product with a plausible name",
        "slug": "bench-product-with-a-plausible-name",
        "short_description": "A product used to measure the write path.",
        "description": "",
        "regular_price": "1290.00",
        "sale_price": "990.00",
        "currency": "EUR",
        "weight_grams": 1200,
        "category_ids": ["01938f4e-7c2a-7b3e-9d41-6a0c52e8f1c0"],
        "tags": ["bench", "write-path"],
    });
    let filler = PAYLOAD_BYTES.saturating_sub(value.to_string().len());
    value["description"] = Value::String(
        "Plain ASCII text needs no JSON escaping, so one char is one byte. "
            .chars()
            .cycle()
            .take(filler)
            .collect(),
    );
    value
}

enum Store {
    Ours {
        store: PgEventStore,
        metadata: EventMetadata,
    },
    PostgresEs {
        repository: PostgresEventRepository,
        metadata: Value,
    },
}

impl Store {
    /// One append of `count` events after `expected_version`, under the
    /// store's own optimistic check: the stream row's version for ours, the
    /// (aggregate, sequence) primary key for postgres-es.
    async fn append(
        &self,
        stream_id: &str,
        expected_version: i64,
        count: u32,
        payload: &Value,
    ) -> anyhow::Result<()> {
        match self {
            Store::Ours { store, metadata } => {
                let events = (0..count)
                    .map(|_| NewEvent {
                        event_id: Uuid::now_v7(),
                        event_type: EVENT_TYPE.to_owned(),
                        schema_version: 1,
                        payload: payload.clone(),
                    })
                    .collect();
                let append = StreamAppend {
                    stream_id: stream_id.to_owned(),
                    aggregate_type: Product::TYPE.to_owned(),
                    expected_version,
                    events,
                };
                store
                    .append(vec![append], metadata, None, |_receipt| Value::Null)
                    .await?;
            }
            Store::PostgresEs {
                repository,
                metadata,
            } => {
                let events: Vec<SerializedEvent> = (0..count)
                    .map(|offset| {
                        SerializedEvent::new(
                            stream_id.to_owned(),
                            (expected_version + i64::from(offset) + 1) as usize,
                            Product::TYPE.to_owned(),
                            EVENT_TYPE.to_owned(),
                            EVENT_VERSION.to_owned(),
                            payload.clone(),
                            metadata.clone(),
                        )
                    })
                    .collect();
                repository.persist::<Product>(&events, None).await?;
            }
        }
        Ok(())
    }
}

/// Runs `spec` on a fresh pool of `spec.writers` connections, all opened
/// before the clock starts.
pub async fn measure(
    options: &PgConnectOptions,
    spec: RunSpec,
    metadata: &EventMetadata,
    payload: &Value,
) -> anyhow::Result<Measurement> {
    let pool = PgPoolOptions::new()
        .max_connections(spec.writers)
        .acquire_timeout(APPEND_TIMEOUT)
        .connect_with(options.clone())
        .await?;
    let opened = futures::future::try_join_all((0..spec.writers).map(|_| pool.acquire())).await?;
    drop(opened);

    let store = Arc::new(match spec.store {
        StoreKind::Ours => Store::Ours {
            store: PgEventStore::new(pool.clone()),
            metadata: metadata.clone(),
        },
        StoreKind::PostgresEs => Store::PostgresEs {
            repository: PostgresEventRepository::new(pool.clone()),
            metadata: serde_json::to_value(metadata)?,
        },
    });
    let payload = Arc::new(payload.clone());
    let measure_from = Instant::now() + spec.warmup;
    let until = measure_from + spec.duration;

    let mut writers = JoinSet::new();
    for _ in 0..spec.writers {
        writers.spawn(write(
            store.clone(),
            payload.clone(),
            spec,
            measure_from,
            until,
        ));
    }
    let mut total = Measurement {
        appends: 0,
        events: 0,
        elapsed: Duration::ZERO,
        latency: latency_histogram()?,
    };
    // Returning early drops the set, which aborts the other writers.
    while let Some(joined) = writers.join_next().await {
        let part = joined??;
        total.appends += part.appends;
        total.events += part.events;
        total.elapsed = total.elapsed.max(part.elapsed);
        total.latency.add(&part.latency)?;
    }
    pool.close().await;
    if total.appends == 0 {
        bail!(
            "{} with {} writers appended nothing after the warm-up: raise --max-appends or shorten --warmup",
            spec.store.label(),
            spec.writers
        );
    }
    Ok(total)
}

/// One writer: cycles over aggregates only it writes to, so every append's
/// expected version is the one it last wrote and a conflict is a bug.
async fn write(
    store: Arc<Store>,
    payload: Arc<Value>,
    spec: RunSpec,
    measure_from: Instant,
    until: Instant,
) -> anyhow::Result<Measurement> {
    let mut aggregates: Vec<(String, i64)> = (0..spec.aggregates_per_writer)
        .map(|_| (Uuid::now_v7().to_string(), 0))
        .collect();
    let mut tally = Measurement {
        appends: 0,
        events: 0,
        elapsed: Duration::ZERO,
        latency: latency_histogram()?,
    };
    let owned = u64::from(spec.aggregates_per_writer);
    for n in 0..spec.max_appends_per_writer {
        let started = Instant::now();
        if started >= until {
            break;
        }
        let (stream_id, version) = &mut aggregates[(n % owned) as usize];
        tokio::time::timeout(
            APPEND_TIMEOUT,
            store.append(stream_id, *version, spec.events_per_append, &payload),
        )
        .await
        .with_context(|| format!("{} append timed out", spec.store.label()))?
        .with_context(|| {
            format!(
                "{} append to {stream_id} at version {version}",
                spec.store.label()
            )
        })?;
        let finished = Instant::now();
        *version += i64::from(spec.events_per_append);
        if started >= measure_from {
            tally
                .latency
                .saturating_record((finished - started).as_micros() as u64);
            tally.appends += 1;
            tally.events += u64::from(spec.events_per_append);
            tally.elapsed = finished - measure_from;
        }
    }
    Ok(tally)
}

fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, LATENCY_MAX_MICROS, 3)?)
}

pub const CEILING_SCHEMA: &str = "CREATE TABLE bench_ceiling (payload jsonb NOT NULL)";

/// Rows per second of `rows`-row UNNEST inserts of `payload` from one
/// connection into an unindexed table: what PostgreSQL itself can take here,
/// with none of either store's checks. One untimed batch warms it up.
pub async fn ceiling(
    pool: &PgPool,
    rows: usize,
    duration: Duration,
    payload: &Value,
) -> anyhow::Result<f64> {
    let batch = vec![payload.clone(); rows];
    let insert = |batch| {
        sqlx::query("INSERT INTO bench_ceiling (payload) SELECT * FROM UNNEST($1::jsonb[])")
            .bind(batch)
            .execute(pool)
    };
    insert(&batch).await?;
    let started = Instant::now();
    let mut inserted = 0;
    for _ in 0..MAX_CEILING_BATCHES {
        if started.elapsed() >= duration {
            break;
        }
        inserted += insert(&batch).await?.rows_affected();
    }
    Ok(inserted as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_exactly_the_advertised_size() {
        assert_eq!(payload().to_string().len(), PAYLOAD_BYTES);
    }
}
