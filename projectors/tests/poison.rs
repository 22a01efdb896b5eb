//! Poison events on real servers (PostgreSQL, nisshi): a store that keeps
//! refusing one event costs a bounded number of attempts, then that event and
//! the rest of its aggregate are dead-lettered and everything else applies; a
//! store that is down delays the batch without dead-lettering anything; and a
//! worker retrying for longer than `max.poll.interval.ms` keeps its partitions.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use infrastructure::event_store::RecordedEvent;
use projectors::runtime::{DeadLetter, Projection, ProjectionError, Worker, WorkerOptions};
use support::*;
use uuid::Uuid;

const POISON_ATTEMPTS: u32 = 3;

fn options(batch_size: usize) -> WorkerOptions {
    WorkerOptions {
        batch_size,
        poison_attempts: POISON_ATTEMPTS,
        ..worker_options()
    }
}

#[derive(Clone, Copy)]
enum Refusal {
    /// The store says the event is invalid (an Elasticsearch 400).
    Rejected,
    /// The store fails the batch while it answers its probe (a 500 on one
    /// document).
    Failing,
}

/// A product read model in memory that refuses every batch holding one of
/// its poison events, and answers nothing while it is down.
struct Fussy {
    poison: HashSet<Uuid>,
    refusal: Refusal,
    down: AtomicBool,
    attempts: AtomicU64,
    applied: Mutex<Vec<(String, i64)>>,
}

impl Fussy {
    fn new(poison: impl IntoIterator<Item = Uuid>, refusal: Refusal) -> Arc<Self> {
        Arc::new(Self {
            poison: poison.into_iter().collect(),
            refusal,
            down: AtomicBool::new(false),
            attempts: AtomicU64::new(0),
            applied: Mutex::new(Vec::new()),
        })
    }

    /// Versions applied per aggregate, in the order applied.
    fn applied(&self) -> BTreeMap<String, Vec<i64>> {
        let mut by_aggregate: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (aggregate, version) in self.applied.lock().unwrap().iter() {
            by_aggregate
                .entry(aggregate.clone())
                .or_default()
                .push(*version);
        }
        by_aggregate
    }

    fn applied_count(&self) -> usize {
        self.applied.lock().unwrap().len()
    }
}

#[async_trait]
impl Projection for Fussy {
    fn name(&self) -> &'static str {
        "fussy"
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["product"]
    }
    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        if self.down.load(Ordering::Relaxed) {
            return Err(ProjectionError::unavailable(anyhow::anyhow!(
                "connection refused"
            )));
        }
        if events.iter().any(|e| self.poison.contains(&e.event_id)) {
            return Err(match self.refusal {
                Refusal::Rejected => ProjectionError::rejected(anyhow::anyhow!(
                    "mapper_parsing_exception: field [a] cannot be both an object and a value"
                )),
                Refusal::Failing => ProjectionError::unavailable(anyhow::anyhow!(
                    "internal server error on one document"
                )),
            });
        }
        let mut applied = self.applied.lock().unwrap();
        for event in events {
            let entry = (event.aggregate_id.clone(), event.version);
            // Redelivered after a rebalance: applied once, as a real
            // projection's version check would.
            if !applied.contains(&entry) {
                applied.push(entry);
            }
        }
        Ok(Vec::new())
    }
    async fn probe(&self) -> Result<(), ProjectionError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(ProjectionError::unavailable(anyhow::anyhow!(
                "connection refused"
            )));
        }
        Ok(())
    }
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        Ok(true)
    }
    async fn reset(&self) -> Result<(), ProjectionError> {
        self.applied.lock().unwrap().clear();
        Ok(())
    }
}

async fn worker(h: &Harness, projection: Arc<Fussy>, options: WorkerOptions) -> Worker {
    Worker::new(projection, &h.settings.kafka, h.store.clone(), options)
        .await
        .expect("kafka answers; start it with `scripts/services up`")
}

/// Steps `worker` until `projection` has applied `count` events.
async fn drain(worker: &mut Worker, projection: &Fussy, count: usize) {
    step_until(worker, &format!("{count} events applied"), || async {
        projection.applied_count() >= count
    })
    .await;
}

/// Steps `worker` until `done` holds.
async fn step_until<F, Fut>(worker: &mut Worker, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !done().await {
        // A step that never returns (a batch retried forever) fails the
        // test at the deadline too.
        tokio::time::timeout_at(deadline, worker.run_once())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("worker step");
    }
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Letter {
    aggregate_id: Option<String>,
    version: Option<i64>,
    event_id: Option<Uuid>,
    reason: String,
}

async fn letters(h: &Harness) -> Vec<Letter> {
    sqlx::query_as(
        "SELECT aggregate_id, version, event_id, reason FROM read_model.dead_letters \
         WHERE projection = 'fussy' ORDER BY aggregate_id, version",
    )
    .fetch_all(&h.db.pool)
    .await
    .expect("read dead letters")
}

/// The product events recorded so far, in log order.
async fn product_events(h: &Harness) -> Vec<RecordedEvent> {
    h.recorded()
        .await
        .into_iter()
        .filter(|e| e.aggregate_type == "product")
        .collect()
}

/// Every product but `poisoned` holds its versions 1..=`versions`, in order;
/// `poisoned` holds none.
fn assert_applied_except(projection: &Fussy, products: &[Uuid], poisoned: Uuid, versions: i64) {
    let applied = projection.applied();
    let expected: BTreeMap<String, Vec<i64>> = products
        .iter()
        .filter(|id| **id != poisoned)
        .map(|id| (id.to_string(), (1..=versions).collect()))
        .collect();
    assert_eq!(applied, expected);
}

/// The poisoned product's two events are its only dead letters: the refused
/// creation, with the store's reason, and the price change behind it.
async fn assert_poisoned_product_dead_lettered(
    h: &Harness,
    poisoned: Uuid,
    created: Uuid,
    reason: &str,
) {
    let letters = letters(h).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0].aggregate_id, Some(poisoned.to_string()));
    assert_eq!(letters[0].version, Some(1));
    assert_eq!(letters[0].event_id, Some(created));
    assert!(letters[0].reason.contains(reason), "{}", letters[0].reason);
    assert_eq!(letters[1].aggregate_id, Some(poisoned.to_string()));
    assert_eq!(letters[1].version, Some(2));
    assert!(
        letters[1]
            .reason
            .starts_with(&format!("follows event {created} of the same aggregate")),
        "{}",
        letters[1].reason
    );
}

/// The creation of `product`, the event a test poisons.
async fn creation_of(h: &Harness, product: Uuid) -> Uuid {
    product_events(h)
        .await
        .into_iter()
        .find(|e| e.aggregate_id == product.to_string())
        .expect("the product's creation")
        .event_id
}

/// Steps until every product but the poisoned one holds both its events and
/// the poisoned one's two events are dead letters.
async fn step_until_settled(worker: &mut Worker, h: &Harness, fussy: &Fussy, products: usize) {
    step_until(worker, "every event applied or dead-lettered", || async {
        fussy.applied_count() == 2 * (products - 1) && letters(h).await.len() == 2
    })
    .await;
}

async fn append_price_changes(h: &Harness, products: &[Uuid]) {
    for id in products {
        h.append(
            "product",
            &id.to_string(),
            1,
            &[price_changed(*id, 1000, 1500)],
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_event_is_dead_lettered_after_bounded_attempts_with_its_later_events() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(6).await;
    let poisoned = products[2];
    let created = creation_of(&h, poisoned).await;
    h.relay_all().await;
    let fussy = Fussy::new([created], Refusal::Rejected);
    let mut worker = worker(&h, fussy.clone(), options(3)).await;

    // The creations first, so that the price change of the poisoned product
    // arrives in a later batch than its refused creation.
    step_until(
        &mut worker,
        "the creations applied or dead-lettered",
        || async { fussy.applied_count() == products.len() - 1 && letters(&h).await.len() == 1 },
    )
    .await;
    append_price_changes(&h, &products).await;
    h.relay_all().await;
    step_until_settled(&mut worker, &h, &fussy, products.len()).await;

    assert_applied_except(&fussy, &products, poisoned, 2);
    assert_poisoned_product_dead_lettered(&h, poisoned, created, "mapper_parsing_exception").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_keeps_failing_while_the_store_answers_is_bisected_to_its_poison_event() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(8).await;
    append_price_changes(&h, &products).await;
    let poisoned = products[5];
    let created = creation_of(&h, poisoned).await;
    h.relay_all().await;
    let fussy = Fussy::new([created], Refusal::Failing);
    let mut worker = worker(&h, fussy.clone(), options(500)).await;

    step_until_settled(&mut worker, &h, &fussy, products.len()).await;

    assert_applied_except(&fussy, &products, poisoned, 2);
    assert_poisoned_product_dead_lettered(&h, poisoned, created, "internal server error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_delays_its_batch_and_dead_letters_nothing() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(4).await;
    h.relay_all().await;
    let fussy = Fussy::new([], Refusal::Rejected);
    fussy.down.store(true, Ordering::Relaxed);
    let mut worker = worker(&h, fussy.clone(), options(500)).await;

    let stepping = {
        let fussy = fussy.clone();
        let count = products.len();
        tokio::spawn(async move {
            drain(&mut worker, &fussy, count).await;
            worker
        })
    };
    let many = u64::from(POISON_ATTEMPTS) * 5;
    eventually("many attempts against the store that is down", || async {
        (fussy.attempts.load(Ordering::Relaxed) >= many).then_some(())
    })
    .await;
    assert!(letters(&h).await.is_empty(), "nothing dead-lettered");
    assert_eq!(fussy.applied_count(), 0);

    fussy.down.store(false, Ordering::Relaxed);
    let _worker = stepping.await.expect("worker task");
    assert_eq!(fussy.applied().len(), products.len());
    assert!(letters(&h).await.is_empty(), "nothing dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_retrying_past_its_max_poll_interval_keeps_its_partitions() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(3).await;
    h.relay_all().await;
    let fussy = Fussy::new([], Refusal::Rejected);
    let mut options = options(500);
    options.session_timeout = Duration::from_secs(6);
    options.max_poll_interval = Duration::from_secs(6);
    let mut worker = worker(&h, fussy.clone(), options.clone()).await;
    drain(&mut worker, &fussy, products.len()).await;
    let stats = worker.stats();
    let assigned = stats.partitions_assigned.load(Ordering::Relaxed);
    assert!(assigned > 0, "the worker holds partitions");

    fussy.down.store(true, Ordering::Relaxed);
    append_price_changes(&h, &products).await;
    h.relay_all().await;
    let stepping = {
        let fussy = fussy.clone();
        let count = 2 * products.len();
        tokio::spawn(async move {
            drain(&mut worker, &fussy, count).await;
            worker
        })
    };
    let down_since = Instant::now();
    let long_enough = options.max_poll_interval + Duration::from_secs(3);
    eventually("a retry longer than the max poll interval", || async {
        (down_since.elapsed() > long_enough && fussy.attempts.load(Ordering::Relaxed) > 1)
            .then_some(())
    })
    .await;
    fussy.down.store(false, Ordering::Relaxed);
    let _worker = stepping.await.expect("worker task");

    assert_eq!(
        stats.partitions_revoked.load(Ordering::Relaxed),
        0,
        "the worker kept its partitions while it retried"
    );
    assert_eq!(stats.partitions_assigned.load(Ordering::Relaxed), assigned);
    let applied = fussy.applied();
    assert!(applied.values().all(|v| v == &[1, 2]), "{applied:?}");
    assert!(letters(&h).await.is_empty());
}
