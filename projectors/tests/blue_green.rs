//! Blue/green rebuilds on real servers (PostgreSQL, nisshi, osmem-server,
//! SecantusDB): while `projectors replay` writes a new generation, readers
//! keep seeing the live one, which live workers go on updating; the swap
//! loses none of their writes; an interrupted rebuild never swaps and the
//! next one starts over.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use infrastructure::event_store::RecordedEvent;
use infrastructure::views::{product_cache_generation_key, product_cache_generation_prefix};
use projectors::projections::{
    activity_log, catalog_tables, orders_tables, payments_tables, product_cache, product_search,
    promotion_tables, users_tables,
};
use projectors::runtime::generations::BatchGuard;
use projectors::runtime::rebuild::rebuild_beside_live;
use projectors::runtime::{
    DeadLetter, DeadLetters, NextGeneration, Projection, ProjectionError, WorkerOptions,
    WorkerStats,
};
use redis::AsyncCommands;
use serde_json::Value;
use support::adapters::{adapter_named, rebuilt_from_scratch, Adapter};
use support::live::Live;
use support::*;
use uuid::Uuid;

fn options() -> WorkerOptions {
    WorkerOptions {
        // Several batches, so that readers are looked at mid-rebuild.
        replay_batch_size: 7,
        ..worker_options()
    }
}

/// Watches a rebuild from outside: before each batch written into the new
/// generation, reads what readers see and checks it is the live generation
/// as the live worker left it; at the first batch, live writes happen.
struct Watch {
    adapter: Arc<dyn Adapter>,
    live: Arc<Live>,
    expected: tokio::sync::Mutex<Value>,
    batches: AtomicUsize,
    /// The batch (counted from 1) at which the new generation's store
    /// "fails", to interrupt the rebuild.
    fail_at: Option<usize>,
    seen_wrong: Mutex<Vec<String>>,
}

impl Watch {
    async fn before_batch(&self) -> Result<(), ProjectionError> {
        let batch = self.batches.fetch_add(1, Ordering::SeqCst) + 1;
        let seen = self.adapter.snapshot().await;
        let mut expected = self.expected.lock().await;
        if seen != *expected {
            self.seen_wrong
                .lock()
                .unwrap()
                .push(format!("batch {batch}: readers saw {seen}"));
        }
        if batch == 1 {
            self.live.write().await;
            *expected = self.adapter.snapshot().await;
        }
        if self.fail_at == Some(batch) {
            return Err(ProjectionError::Lost);
        }
        Ok(())
    }
}

/// The projection under test, whose new generation is watched.
struct Watched {
    inner: Arc<dyn Projection>,
    watch: Arc<Watch>,
}

struct WatchedNext {
    inner: Box<dyn NextGeneration>,
    watch: Arc<Watch>,
}

#[async_trait]
impl Projection for Watched {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        self.inner.aggregate_types()
    }
    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        self.inner.apply(events).await
    }
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        self.inner.is_intact().await
    }
    async fn reset(&self) -> Result<(), ProjectionError> {
        self.inner.reset().await
    }
    async fn next_generation(&self) -> Result<Option<Box<dyn NextGeneration>>, ProjectionError> {
        Ok(self
            .inner
            .next_generation()
            .await?
            .map(|inner| -> Box<dyn NextGeneration> {
                Box::new(WatchedNext {
                    inner,
                    watch: self.watch.clone(),
                })
            }))
    }
}

#[async_trait]
impl Projection for WatchedNext {
    fn name(&self) -> &'static str {
        self.inner.projection().name()
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        self.inner.projection().aggregate_types()
    }
    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        self.watch.before_batch().await?;
        self.inner.projection().apply(events).await
    }
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        self.inner.projection().is_intact().await
    }
    async fn reset(&self) -> Result<(), ProjectionError> {
        self.inner.projection().reset().await
    }
}

#[async_trait]
impl NextGeneration for WatchedNext {
    fn projection(&self) -> &dyn Projection {
        self
    }
    async fn swap(self: Box<Self>) -> Result<(), ProjectionError> {
        self.inner.swap().await
    }
}

async fn live_generation(h: &Harness, name: &str) -> (i64, Option<i64>) {
    sqlx::query_as("SELECT live, building FROM read_model.generations WHERE projection = $1")
        .bind(name)
        .fetch_optional(&h.db.pool)
        .await
        .unwrap()
        .unwrap_or((0, None))
}

async fn replay(
    h: &Harness,
    projection: &dyn Projection,
    options: &WorkerOptions,
) -> anyhow::Result<u64> {
    rebuild_beside_live(
        projection,
        &h.store,
        &DeadLetters::new(h.db.pool.clone()),
        options,
        &WorkerStats::new(),
    )
    .await
}

async fn set_up(name: &str, fail_at: Option<usize>) -> (Arc<Harness>, Arc<Watch>, Watched) {
    let h = Arc::new(harness().await);
    let (_, _, products) = h.seed_catalog(12).await;
    let users = h.seed_users(6).await;
    h.seed_promotions(3).await;
    let orders = h.seed_orders(&users, &products).await;
    h.seed_payments(&orders).await;
    let adapter = adapter_named(&h, name).await;
    adapter.projection().reset().await.unwrap();
    adapter.projection().mark_rebuilt().await.unwrap();
    let live = Arc::new(Live::start(h.clone(), adapter.projection(), products[0]).await);
    let before = adapter.snapshot().await;
    assert_ne!(before, Value::Null);
    let watch = Arc::new(Watch {
        adapter: adapter.clone(),
        live,
        expected: tokio::sync::Mutex::new(before),
        batches: AtomicUsize::new(0),
        fail_at,
        seen_wrong: Mutex::new(Vec::new()),
    });
    let watched = Watched {
        inner: adapter.projection(),
        watch: watch.clone(),
    };
    (h, watch, watched)
}

async fn readers_keep_the_live_generation_until_the_swap(name: &str) {
    let (h, watch, watched) = set_up(name, None).await;

    let replayed = replay(&h, &watched, &options()).await.unwrap();

    assert!(watch.batches.load(Ordering::SeqCst) > 2, "several batches");
    let wrong = watch.seen_wrong.lock().unwrap().clone();
    assert!(wrong.is_empty(), "{name}: readers saw {wrong:?}");
    assert_eq!(live_generation(&h, name).await, (1, None));
    assert!(
        replayed >= watch.live.relevant(&h.recorded().await) as u64,
        "the live writes were replayed too"
    );
    let swapped = watch.adapter.snapshot().await;
    assert_eq!(
        swapped,
        *watch.expected.lock().await,
        "{name}: the new generation holds what the live one held"
    );

    // The live worker goes on, now into the new generation.
    watch.live.write().await;
    let after = watch.adapter.snapshot().await;
    assert_ne!(
        after, swapped,
        "{name}: live writes reach the new generation"
    );
    assert_eq!(
        rebuilt_from_scratch(&h, watch.adapter.as_ref()).await,
        after
    );
    watch.adapter.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_tables_readers_keep_the_live_generation_until_the_swap() {
    readers_keep_the_live_generation_until_the_swap(catalog_tables::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_search_readers_keep_the_live_generation_until_the_swap() {
    readers_keep_the_live_generation_until_the_swap(product_search::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_cache_readers_keep_the_live_generation_until_the_swap() {
    readers_keep_the_live_generation_until_the_swap(product_cache::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_log_readers_keep_the_live_generation_until_the_swap() {
    readers_keep_the_live_generation_until_the_swap(activity_log::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_tables_readers_keep_the_live_generation_until_the_swap() {
    readers_keep_the_live_generation_until_the_swap(users_tables::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_tables_readers_keep_the_live_generation_until_the_swap() {
    readers_keep_the_live_generation_until_the_swap(promotion_tables::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_tables_readers_keep_the_live_generation_until_the_swap() {
    readers_keep_the_live_generation_until_the_swap(orders_tables::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_tables_readers_keep_the_live_generation_until_the_swap() {
    readers_keep_the_live_generation_until_the_swap(payments_tables::NAME).await;
}

async fn an_interrupted_rebuild_never_swaps_and_the_next_starts_over(name: &str) {
    let (h, watch, watched) = set_up(name, Some(2)).await;

    let failed = replay(&h, &watched, &options()).await;

    assert!(failed.is_err(), "{name}: the rebuild was interrupted");
    let live = watch.expected.lock().await.clone();
    assert_eq!(
        watch.adapter.snapshot().await,
        live,
        "{name}: nothing swapped"
    );
    assert_eq!(live_generation(&h, name).await, (0, Some(1)));

    replay(&h, watch.adapter.projection().as_ref(), &options())
        .await
        .unwrap();
    assert_eq!(live_generation(&h, name).await, (1, None));
    assert_eq!(watch.adapter.snapshot().await, live);
    assert_eq!(rebuilt_from_scratch(&h, watch.adapter.as_ref()).await, live);
    assert_eq!(
        leftovers(&h, name).await,
        Vec::<String>::new(),
        "{name}: no generation is left behind"
    );
    watch.adapter.cleanup().await;
}

/// Store objects of generations other than the live one.
async fn leftovers(h: &Harness, name: &str) -> Vec<String> {
    let s = &h.settings;
    match name {
        catalog_tables::NAME
        | users_tables::NAME
        | promotion_tables::NAME
        | orders_tables::NAME
        | payments_tables::NAME => sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'read_model_%'",
        )
        .fetch_all(&h.db.pool)
        .await
        .unwrap(),
        product_search::NAME => {
            let listed: Value = reqwest::get(format!(
                "{}/_cat/indices/{}-*?format=json",
                s.elasticsearch.url, s.elasticsearch.products_alias
            ))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
            let aliased: Value = reqwest::get(format!(
                "{}/_alias/{}",
                s.elasticsearch.url, s.elasticsearch.products_alias
            ))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
            let live = aliased.as_object().unwrap().keys().next().unwrap().clone();
            listed
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["index"].as_str().map(str::to_owned))
                .filter(|i| *i != live && *i != format!("{live}-lookups"))
                .collect()
        }
        product_cache::NAME => {
            let mut redis = h.redis().await;
            let base = &s.redis.key_prefix;
            let pointer = product_cache_generation_key(base);
            let live: Option<u64> = redis.get(&pointer).await.unwrap();
            let prefix = product_cache_generation_prefix(base, live.unwrap_or(0));
            let keys: Vec<String> = redis.keys(format!("{base}*")).await.unwrap();
            keys.into_iter()
                .filter(|k| *k != pointer && !k.starts_with(&prefix))
                .collect()
        }
        _ => {
            let client = mongodb::Client::with_uri_str(&s.mongo.url).await.unwrap();
            client
                .database(&s.mongo.database)
                .list_collection_names()
                .await
                .unwrap()
                .into_iter()
                .filter(|c| c != activity_log::COLLECTION)
                .collect()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_tables_interrupted_rebuild_never_swaps() {
    an_interrupted_rebuild_never_swaps_and_the_next_starts_over(catalog_tables::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_search_interrupted_rebuild_never_swaps() {
    an_interrupted_rebuild_never_swaps_and_the_next_starts_over(product_search::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_cache_interrupted_rebuild_never_swaps() {
    an_interrupted_rebuild_never_swaps_and_the_next_starts_over(product_cache::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_log_interrupted_rebuild_never_swaps() {
    an_interrupted_rebuild_never_swaps_and_the_next_starts_over(activity_log::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_tables_interrupted_rebuild_never_swaps() {
    an_interrupted_rebuild_never_swaps_and_the_next_starts_over(users_tables::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_tables_interrupted_rebuild_never_swaps() {
    an_interrupted_rebuild_never_swaps_and_the_next_starts_over(promotion_tables::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_tables_interrupted_rebuild_never_swaps() {
    an_interrupted_rebuild_never_swaps_and_the_next_starts_over(orders_tables::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_tables_interrupted_rebuild_never_swaps() {
    an_interrupted_rebuild_never_swaps_and_the_next_starts_over(payments_tables::NAME).await;
}

/// The swap waits for a batch a live worker is inside of: that batch's
/// effect is in the old generation only, and must be replayed into the new
/// one before readers and workers move there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_waits_for_the_batch_a_live_worker_is_applying() {
    let h = Arc::new(harness().await);
    h.seed_catalog(3).await;
    let adapter = adapter_named(&h, catalog_tables::NAME).await;
    adapter.projection().reset().await.unwrap();
    for event in h.recorded().await {
        adapter
            .projection()
            .apply(std::slice::from_ref(&event))
            .await
            .unwrap();
    }
    let in_batch = BatchGuard::enter(&h.db.pool, catalog_tables::NAME)
        .await
        .unwrap();
    assert_eq!(in_batch.live, 0);

    let rebuilding = {
        let h = h.clone();
        let projection = adapter.projection();
        tokio::spawn(async move { replay(&h, projection.as_ref(), &options()).await })
    };
    eventually("the rebuild to wait for the batch", || async {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
        )
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
        waiting.then_some(())
    })
    .await;
    // The batch in hand ends with an event the replay has not seen yet.
    let late = Uuid::now_v7();
    let (category, brand) = {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT aggregate_id FROM event_store.events WHERE aggregate_type IN ('category', 'brand') ORDER BY aggregate_type DESC",
        )
        .fetch_all(&h.db.pool)
        .await
        .unwrap();
        (ids[0].parse().unwrap(), ids[1].parse().unwrap())
    };
    h.append(
        "product",
        &late.to_string(),
        0,
        &[product_created(
            late,
            "LATE-1",
            "late-1",
            Some(category),
            Some(brand),
            900,
            1,
        )],
    )
    .await;
    let recorded = h.recorded().await;
    adapter
        .projection()
        .apply(std::slice::from_ref(recorded.last().unwrap()))
        .await
        .unwrap();
    assert_eq!(live_generation(&h, catalog_tables::NAME).await.0, 0);
    in_batch.leave().await.unwrap();

    rebuilding.await.unwrap().unwrap();
    assert_eq!(live_generation(&h, catalog_tables::NAME).await, (1, None));
    let swapped = adapter.snapshot().await;
    assert!(
        swapped.to_string().contains(&late.to_string()),
        "the late product reached the new generation"
    );
    assert_eq!(rebuilt_from_scratch(&h, adapter.as_ref()).await, swapped);
}

/// A worker that finds a new live generation tells its projection, which
/// forgets the old generation's names before its next batch.
async fn a_live_worker_follows_a_swap_made_by_another_process(name: &str) {
    let h = Arc::new(harness().await);
    let (_, _, products) = h.seed_catalog(4).await;
    // The customers of the live writes' orders, and an order their
    // payments are for.
    let users = h.seed_users(2).await;
    h.seed_orders(&users[..1], &products).await;
    let adapter = adapter_named(&h, name).await;
    adapter.projection().reset().await.unwrap();
    adapter.projection().mark_rebuilt().await.unwrap();
    // Checking for a lost store before every batch: right after the swap
    // the old generation is gone, and must not be taken for a lost one.
    let checking = WorkerOptions {
        intact_check_every: std::time::Duration::ZERO,
        ..worker_options()
    };
    let live = Live::start_with(h.clone(), adapter.projection(), products[0], checking).await;

    // Another process: its own projection instance, as `projectors replay`
    // builds it.
    let other = adapter_named(&h, name).await;
    replay(&h, other.projection().as_ref(), &options())
        .await
        .unwrap();
    let swapped = adapter.snapshot().await;

    live.write().await;
    let after = adapter.snapshot().await;
    assert_ne!(after, swapped, "the live write reached the new generation");
    assert_eq!(rebuilt_from_scratch(&h, adapter.as_ref()).await, after);
    assert_eq!(
        live.worker
            .lock()
            .await
            .stats()
            .rebuilds
            .load(Ordering::Relaxed),
        0,
        "the worker wrote the new generation, rather than rebuilding a read model it took for lost"
    );
    adapter.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_search_worker_follows_a_swap_made_by_another_process() {
    a_live_worker_follows_a_swap_made_by_another_process(product_search::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_cache_worker_follows_a_swap_made_by_another_process() {
    a_live_worker_follows_a_swap_made_by_another_process(product_cache::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_users_tables_worker_follows_a_swap_made_by_another_process() {
    a_live_worker_follows_a_swap_made_by_another_process(users_tables::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_promotion_tables_worker_follows_a_swap_made_by_another_process() {
    a_live_worker_follows_a_swap_made_by_another_process(promotion_tables::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_orders_tables_worker_follows_a_swap_made_by_another_process() {
    a_live_worker_follows_a_swap_made_by_another_process(orders_tables::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_payments_tables_worker_follows_a_swap_made_by_another_process() {
    a_live_worker_follows_a_swap_made_by_another_process(payments_tables::NAME).await;
}
