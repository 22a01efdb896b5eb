//! Rebuilds on real servers (PostgreSQL, nisshi): one interrupted half-way is
//! started over rather than taken for complete, and only one process at a
//! time rebuilds a projection.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use projectors::projections::catalog_tables::CatalogTables;
use projectors::runtime::rebuild::{
    rebuild, rebuild_if_still_needed, rebuild_unfinished, RebuildInProgress, RebuildLease,
};
use projectors::runtime::{
    DeadLetter, DeadLetters, Projection, ProjectionError, Worker, WorkerOptions, WorkerStats,
};
use support::*;

fn options() -> WorkerOptions {
    WorkerOptions {
        poll_wait: Duration::from_millis(200),
        intact_check_every: Duration::ZERO,
        ..worker_options()
    }
}

/// The catalog tables, whose store goes away half-way through the first
/// batch it is given: a rebuild that dies part-way.
struct StopsMidRebuild {
    inner: CatalogTables,
}

#[async_trait]
impl Projection for StopsMidRebuild {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        self.inner.aggregate_types()
    }
    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        self.inner.apply(&events[..events.len() / 2]).await?;
        Err(ProjectionError::Lost)
    }
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        self.inner.is_intact().await
    }
    async fn reset(&self) -> Result<(), ProjectionError> {
        self.inner.reset().await
    }
}

fn catalog_tables(h: &Harness) -> CatalogTables {
    CatalogTables::new(h.db.pool.clone(), Upcasters::default())
}

async fn products_in_table(h: &Harness) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM read_model.products")
        .fetch_one(&h.db.pool)
        .await
        .unwrap()
}

async fn rebuild_now(h: &Harness, projection: &dyn Projection) -> anyhow::Result<u64> {
    rebuild(
        projection,
        &h.store,
        &DeadLetters::new(h.db.pool.clone()),
        &options(),
        &WorkerStats::new(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rebuild_is_started_over_rather_than_taken_for_complete() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(20).await;
    h.recorded().await;

    let dying = StopsMidRebuild {
        inner: catalog_tables(&h),
    };
    let failed = rebuild_now(&h, &dying).await;
    assert!(failed.is_err(), "the rebuild died half-way");
    assert!(products_in_table(&h).await < products.len() as i64);
    assert!(rebuild_unfinished(&h.db.pool, "catalog-tables")
        .await
        .unwrap());

    // Nothing is on Kafka: only a rebuild can complete the tables.
    let mut worker = Worker::new(
        Arc::new(catalog_tables(&h)),
        &h.settings.kafka,
        h.store.clone(),
        options(),
    )
    .await
    .expect("kafka answers; start it with `scripts/services up`");
    worker.run_once().await.expect("a step");

    assert_eq!(products_in_table(&h).await, products.len() as i64);
    assert!(!rebuild_unfinished(&h.db.pool, "catalog-tables")
        .await
        .unwrap());
    let after_restart = dump_catalog(&h.db.pool).await;
    rebuild_now(&h, &catalog_tables(&h)).await.unwrap();
    assert_eq!(dump_catalog(&h.db.pool).await, after_restart);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_process_at_a_time_rebuilds_a_projection() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(5).await;
    h.recorded().await;

    let lease = RebuildLease::try_take(&h.db.pool, "catalog-tables")
        .await
        .unwrap()
        .expect("the lease is free");
    assert!(
        RebuildLease::try_take(&h.db.pool, "catalog-tables")
            .await
            .unwrap()
            .is_none(),
        "taken once"
    );
    let refused = rebuild_now(&h, &catalog_tables(&h)).await.unwrap_err();
    assert!(refused.is::<RebuildInProgress>(), "{refused}");
    assert_eq!(
        products_in_table(&h).await,
        0,
        "nothing was reset or written"
    );

    lease.release().await.unwrap();
    let count = rebuild_now(&h, &catalog_tables(&h)).await.unwrap();
    assert!(count > 0);
    assert_eq!(products_in_table(&h).await, products.len() as i64);
}

async fn rebuild_started_at(h: &Harness) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar(
        "SELECT started_at FROM read_model.rebuilds WHERE projection = 'catalog-tables'",
    )
    .fetch_one(&h.db.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_gets_the_lease_after_another_rebuilt_does_not_reset_again() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(5).await;
    h.recorded().await;
    // Two workers found the read model incomplete; the first rebuilt it.
    rebuild_now(&h, &catalog_tables(&h)).await.unwrap();
    let rebuilt_at = rebuild_started_at(&h).await;

    let projection = catalog_tables(&h);
    let dead_letters = DeadLetters::new(h.db.pool.clone());
    let second = rebuild_if_still_needed(
        &projection,
        &h.store,
        &dead_letters,
        &options(),
        &WorkerStats::new(),
    )
    .await
    .unwrap();
    assert_eq!(second, None, "the second finds it complete under the lease");
    assert_eq!(
        rebuild_started_at(&h).await,
        rebuilt_at,
        "no second rebuild started"
    );
    assert_eq!(products_in_table(&h).await, products.len() as i64);

    // An unfinished rebuild is still started over.
    sqlx::query("UPDATE read_model.rebuilds SET finished_at = NULL")
        .execute(&h.db.pool)
        .await
        .unwrap();
    let again = rebuild_if_still_needed(
        &projection,
        &h.store,
        &dead_letters,
        &options(),
        &WorkerStats::new(),
    )
    .await
    .unwrap();
    assert!(again.is_some_and(|count| count > 0));
    assert_eq!(products_in_table(&h).await, products.len() as i64);
}
