//! The whole read path on real servers: the outbox relay publishing to Kafka
//! (nisshi), projector workers consuming it into PostgreSQL, Elasticsearch
//! (osmem) and Redis, and what happens when a relay or a projector dies, a
//! store loses its data, a store is down, or a message cannot be decoded.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use infrastructure::kafka::base_config;
use infrastructure::relay::OutboxRelay;
use infrastructure::views::{product_cache_key, CachedProduct};
use projectors::projections::catalog_tables::CatalogTables;
use projectors::projections::product_cache::ProductCache;
use projectors::projections::product_search::ProductSearch;
use projectors::runtime::{DeadLetter, Projection, ProjectionError, Worker, WorkerOptions};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use redis::AsyncCommands;
use support::*;
use uuid::Uuid;

fn options() -> WorkerOptions {
    WorkerOptions {
        batch_size: 50,
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        intact_check_every: Duration::ZERO,
        ..worker_options()
    }
}

async fn worker(h: &Harness, projection: Arc<dyn Projection>) -> Worker {
    Worker::new(projection, &h.settings.kafka, h.store.clone(), options())
        .await
        .expect("kafka answers; start it with `scripts/services up`")
}

/// Steps `worker` until `done` holds.
async fn drain<F, Fut>(worker: &mut Worker, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        worker.run_once().await.expect("worker step");
    }
}

async fn product_count(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM read_model.products")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn prices_updated(pool: &sqlx::PgPool, price: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM read_model.products WHERE regular_price::text = $1")
        .bind(price)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_stream_and_restarted_still_delivers_every_event() {
    let mut h = harness().await;
    h.settings.relay.batch_size = 5;
    h.settings.relay.name = "relay-under-test".into();
    let (_, _, products) = h.seed_catalog(150).await;
    for id in &products {
        h.append(
            "product",
            &id.to_string(),
            1,
            &[price_changed(*id, 1000, 1200)],
        )
        .await;
    }
    let recorded = h.recorded().await;
    let last = recorded.last().unwrap().checkpoint();

    let relay = OutboxRelay::new(
        h.store.clone(),
        h.settings.kafka.clone(),
        h.settings.relay.clone(),
    )
    .unwrap();
    let running = tokio::spawn(relay.run(std::future::pending()));
    let at_kill = eventually("the relay to publish part of the log", || async {
        let checkpoint = h.store.checkpoint("relay-under-test").await.unwrap();
        (checkpoint.position > 0).then_some(checkpoint)
    })
    .await;
    running.abort();
    let _ = running.await;
    assert!(
        at_kill < last,
        "the relay was killed mid-stream ({at_kill:?} of {last:?})"
    );

    let restarted = OutboxRelay::new(
        h.store.clone(),
        h.settings.kafka.clone(),
        h.settings.relay.clone(),
    )
    .unwrap();
    let running = tokio::spawn(restarted.run(std::future::pending()));
    eventually(
        "the restarted relay to reach the end of the log",
        || async { (h.store.checkpoint("relay-under-test").await.unwrap() == last).then_some(()) },
    )
    .await;
    running.abort();

    // Read every topic from the start: each event at least once, and each
    // aggregate's events in version order once duplicates are dropped.
    let consumer: StreamConsumer = base_config(&h.settings.kafka)
        .set("group.id", format!("verify-{}", h.suffix))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let topics: Vec<String> = ["category", "brand", "product", "inventory"]
        .iter()
        .map(|t| h.settings.kafka.topic_for(t))
        .collect();
    consumer
        .subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    let expected: HashSet<Uuid> = recorded.iter().map(|e| e.event_id).collect();
    let mut seen = HashSet::new();
    let mut versions: HashMap<String, Vec<i64>> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !expected.is_subset(&seen) {
        assert!(
            std::time::Instant::now() < deadline,
            "saw {} of {} events",
            seen.len(),
            expected.len()
        );
        let Ok(message) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await
        else {
            continue;
        };
        let message = message.unwrap();
        let event: RecordedEvent = serde_json::from_slice(message.payload().unwrap()).unwrap();
        assert_eq!(
            message.key(),
            Some(event.aggregate_id.as_bytes()),
            "keyed by aggregate id"
        );
        if seen.insert(event.event_id) {
            versions
                .entry(event.aggregate_id.clone())
                .or_default()
                .push(event.version);
        }
    }
    for (aggregate, versions) in versions {
        let in_order: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(versions, in_order, "aggregate {aggregate} in order");
    }
}

/// Applies the first half of its first batch, then hangs: a process that
/// dies in the middle of a batch, after part of it reached the store.
struct DiesMidBatch {
    inner: CatalogTables,
}

#[async_trait]
impl Projection for DiesMidBatch {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        self.inner.aggregate_types()
    }
    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        self.inner.apply(&events[..events.len() / 2]).await?;
        std::future::pending().await
    }
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        Ok(true)
    }
    async fn reset(&self) -> Result<(), ProjectionError> {
        self.inner.reset().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_restarted_mid_batch_ends_equal_to_a_rebuild_from_scratch() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(40).await;
    for id in &products {
        h.append(
            "product",
            &id.to_string(),
            1,
            &[price_changed(*id, 1000, 1500)],
        )
        .await;
    }
    h.relay_all().await;

    let dying = Arc::new(DiesMidBatch {
        inner: CatalogTables::new(h.db.pool.clone(), Upcasters::default()),
    });
    let mut doomed = worker(&h, dying).await;
    // Steps until a batch arrives (joining the group may take a few empty
    // polls); its apply then hangs half-way, as a process killed mid-batch.
    let step = tokio::spawn(async move {
        loop {
            doomed.run_once().await.expect("a step");
        }
    });
    eventually("part of a batch to reach the store", || async {
        let touched: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM read_model.projected_versions) + (SELECT count(*) FROM read_model.parked_events)",
        )
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
        (touched > 0).then_some(())
    })
    .await;
    step.abort();
    let _ = step.await;
    assert!(
        prices_updated(&h.db.pool, "1500.00").await < products.len() as i64,
        "killed mid-way"
    );

    let mut restarted = worker(
        &h,
        Arc::new(CatalogTables::new(h.db.pool.clone(), Upcasters::default())),
    )
    .await;
    drain(&mut restarted, "every price change", || async {
        prices_updated(&h.db.pool, "1500.00").await == products.len() as i64
    })
    .await;
    let after_restart = dump_catalog(&h.db.pool).await;

    restarted.rebuild().await.unwrap();
    assert_eq!(
        dump_catalog(&h.db.pool).await,
        after_restart,
        "equal to a read model built from scratch"
    );
}

async fn search_count(alias: &str) -> Option<i64> {
    let client = reqwest::Client::new();
    client
        .post(format!("http://127.0.0.1:9200/{alias}/_refresh"))
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = client
        .get(format!("http://127.0.0.1:9200/{alias}/_count"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["count"].as_i64()
}

async fn delete_indexes(prefix: &str) {
    let client = reqwest::Client::new();
    let indices: serde_json::Value = client
        .get(format!(
            "http://127.0.0.1:9200/_cat/indices/{prefix}*?format=json"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for index in indices.as_array().into_iter().flatten() {
        let name = index["index"].as_str().unwrap();
        client
            .delete(format!("http://127.0.0.1:9200/{name}"))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_index_lost_by_the_server_is_noticed_and_rebuilt() {
    let h = harness().await;
    let alias = h.settings.elasticsearch.products_alias.clone();
    let (_, _, products) = h.seed_catalog(12).await;
    h.relay_all().await;
    let search = Arc::new(
        ProductSearch::connect(&h.settings.elasticsearch.url, &alias, Upcasters::default())
            .unwrap(),
    );
    let mut worker = worker(&h, search.clone()).await;
    drain(&mut worker, "every product indexed", || async {
        search_count(&alias).await == Some(products.len() as i64)
    })
    .await;

    // osmem-server restarted: every index is gone.
    delete_indexes(&alias).await;
    assert_eq!(search_count(&alias).await, None);
    worker.run_once().await.unwrap();
    assert_eq!(
        search_count(&alias).await,
        Some(products.len() as i64),
        "rebuilt from the event store"
    );
    assert!(worker.stats().rebuilds.load(Ordering::Relaxed) >= 1);
    delete_indexes(&alias).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_product_cache_is_noticed_and_rebuilt() {
    let h = harness().await;
    let prefix = h.settings.redis.key_prefix.clone();
    let (_, _, products) = h.seed_catalog(5).await;
    h.append(
        "product",
        &products[0].to_string(),
        1,
        &[price_changed(products[0], 1000, 990)],
    )
    .await;
    h.relay_all().await;
    let cache = Arc::new(
        ProductCache::connect(&h.settings.redis.url, &prefix, Upcasters::default())
            .await
            .expect("redis answers"),
    );
    let mut redis = redis::Client::open(h.settings.redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut worker = worker(&h, cache.clone()).await;
    let key = product_cache_key(&prefix, products[0]);
    drain(&mut worker, "the repriced product cached", || {
        let mut redis = redis.clone();
        let key = key.clone();
        async move {
            let json: Option<String> = redis.get(&key).await.unwrap();
            json.and_then(|j| serde_json::from_str::<CachedProduct>(&j).ok())
                .is_some_and(|c| c.price == 990.0 && c.stock == 10)
        }
    })
    .await;

    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    let _: () = redis.del(keys).await.unwrap();
    worker.run_once().await.unwrap();
    let cached: String = redis.get(&key).await.unwrap();
    let cached: CachedProduct = serde_json::from_str(&cached).unwrap();
    assert_eq!(
        (cached.price, cached.stock, cached.product.name.as_str()),
        (990.0, 10, "Product SKU-0")
    );
    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    let _: () = redis.del(keys).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_is_dead_lettered_and_the_stream_goes_on() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(1).await;
    h.relay_all().await;
    let producer: FutureProducer = base_config(&h.settings.kafka).create().unwrap();
    producer
        .send(
            FutureRecord::to(&h.settings.kafka.topic_for("product"))
                .key("garbage")
                .payload("{not json"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    h.append(
        "product",
        &products[0].to_string(),
        1,
        &[price_changed(products[0], 1000, 777)],
    )
    .await;
    h.relay_all().await;
    let mut worker = worker(
        &h,
        Arc::new(CatalogTables::new(h.db.pool.clone(), Upcasters::default())),
    )
    .await;
    drain(&mut worker, "the event after the garbage", || async {
        prices_updated(&h.db.pool, "777.00").await == 1
    })
    .await;
    let (source, reason, raw): (String, String, String) = sqlx::query_as(
        "SELECT source, reason, raw_message FROM read_model.dead_letters WHERE projection = 'catalog-tables'",
    )
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    assert!(
        source.starts_with(&format!("kafka:{}", h.settings.kafka.topic_for("product"))),
        "{source}"
    );
    assert!(reason.starts_with("undecodable message"), "{reason}");
    assert_eq!(raw, "{not json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn projector_processes_in_one_group_share_the_partitions() {
    let h = harness().await;
    let first = worker(
        &h,
        Arc::new(CatalogTables::new(h.db.pool.clone(), Upcasters::default())),
    )
    .await;
    let second = worker(
        &h,
        Arc::new(CatalogTables::new(h.db.pool.clone(), Upcasters::default())),
    )
    .await;
    let (first_stats, second_stats) = (first.stats(), second.stats());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run = |w: Worker| {
        let mut stopped = stopped.clone();
        tokio::spawn(w.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
    };
    let handles = [run(first), run(second)];
    eventually("both processes to hold partitions", || async {
        let (a, b) = (
            first_stats.assigned_partitions.load(Ordering::Relaxed),
            second_stats.assigned_partitions.load(Ordering::Relaxed),
        );
        (a > 0 && b > 0 && a + b == 12).then_some(())
    })
    .await;
    let (_, _, products) = h.seed_catalog(30).await;
    h.relay_all().await;
    eventually("every product projected", || async {
        (product_count(&h.db.pool).await == products.len() as i64).then_some(())
    })
    .await;
    stop.send(true).unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
    assert!(first_stats.events.load(Ordering::Relaxed) > 0);
    assert!(second_stats.events.load(Ordering::Relaxed) > 0);
}

/// The lag in events: what the assigned partitions hold beyond the worker's
/// position, more than zero while a backlog waits, zero once applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reports_how_many_events_it_is_behind() {
    let h = harness().await;
    h.seed_catalog(40).await;
    let total = h.recorded().await.len() as u64;
    h.relay_all().await;
    let mut worker = Worker::new(
        Arc::new(CatalogTables::new(h.db.pool.clone(), Upcasters::default())),
        &h.settings.kafka,
        h.store.clone(),
        WorkerOptions {
            batch_size: 10,
            ..options()
        },
    )
    .await
    .expect("kafka answers; start it with `scripts/services up`");
    let stats = worker.stats();
    drain(&mut worker, "a first batch", || async {
        stats.events.load(Ordering::Relaxed) > 0
    })
    .await;
    let applied = stats.events.load(Ordering::Relaxed);
    assert!(applied < total, "a backlog is left");
    assert!(
        stats.events_behind.load(Ordering::Relaxed) > 0,
        "{} behind after {applied} of {total}",
        stats.events_behind.load(Ordering::Relaxed)
    );
    drain(&mut worker, "the whole backlog", || async {
        stats.events.load(Ordering::Relaxed) == total
    })
    .await;
    assert_eq!(stats.events_behind.load(Ordering::Relaxed), 0);
}
