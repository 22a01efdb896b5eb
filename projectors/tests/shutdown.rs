//! Stopping a worker in the middle of a batch (real PostgreSQL and nisshi):
//! the batch in hand is finished and its progress recorded before the worker
//! returns, rather than cancelled half-way.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use infrastructure::event_store::RecordedEvent;
use projectors::runtime::{DeadLetter, Projection, ProjectionError, Worker, WorkerOptions};
use support::*;
use tokio::sync::{oneshot, Notify};

/// Holds each batch until the test releases it.
struct Gated {
    started: Notify,
    release: Notify,
    applied: AtomicUsize,
}

#[async_trait]
impl Projection for Gated {
    fn name(&self) -> &'static str {
        "gated"
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["product"]
    }
    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        self.started.notify_one();
        self.release.notified().await;
        self.applied.fetch_add(events.len(), Ordering::Relaxed);
        Ok(Vec::new())
    }
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        Ok(true)
    }
    async fn reset(&self) -> Result<(), ProjectionError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_mid_batch_finishes_the_batch_and_records_its_offsets() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(4).await;
    h.relay_all().await;
    let gated = Arc::new(Gated {
        started: Notify::new(),
        release: Notify::new(),
        applied: AtomicUsize::new(0),
    });
    let options = WorkerOptions {
        batch_size: 500,
        shutdown_grace: Duration::from_secs(30),
        ..worker_options()
    };
    let worker = Worker::new(gated.clone(), &h.settings.kafka, h.store.clone(), options)
        .await
        .expect("kafka answers; start it with `scripts/services up`");
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));

    tokio::time::timeout(Duration::from_secs(60), gated.started.notified())
        .await
        .expect("a batch reaches the projection");
    stop.send(()).unwrap();
    // The worker has been told to stop while its batch is in the store's
    // hands; the store then answers.
    gated.release.notify_one();
    tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the worker stops once its batch is done")
        .unwrap();

    let applied = gated.applied.load(Ordering::Relaxed);
    assert!(applied > 0, "the batch in hand was applied");
    let recorded: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(next_offset), 0)::bigint FROM read_model.projection_offsets \
         WHERE projection = 'gated'",
    )
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(
        recorded, applied as i64,
        "the offsets of the finished batch were recorded"
    );
    assert!(applied <= products.len());
}
