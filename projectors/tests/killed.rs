//! Real `projectors` processes (PostgreSQL, nisshi): killed with SIGKILL (a
//! live worker mid-load, a replay before its swap and a replay in the middle
//! of its swap), and two live workers with a replay running beside them.
//! Once the processes settle, the catalog tables equal a fresh rebuild from
//! the event store, compared row by row.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::relay::OutboxRelay;
use projectors::projections::catalog_tables::{self, CatalogTables};
use projectors::runtime::generations::BatchGuard;
use projectors::runtime::worker::rebuild;
use projectors::runtime::{DeadLetters, WorkerStats};
use support::*;
use uuid::Uuid;

/// Child processes, killed when the test ends however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn projectors(h: &Harness, args: &[&str]) -> Child {
    let s = &h.settings;
    Command::new(env!("CARGO_BIN_EXE_projectors"))
        .args(args)
        .env("APP__POSTGRES__URL", &s.postgres.url)
        .env("APP__KAFKA__TOPIC_PREFIX", &s.kafka.topic_prefix)
        .env("APP__KAFKA__GROUP_PREFIX", &s.kafka.group_prefix)
        .env("APP__KAFKA__PARTITIONS", s.kafka.partitions.to_string())
        .env("APP__PROJECTORS__ONLY", catalog_tables::NAME)
        .env("APP__PROJECTORS__HEALTH_PORT", "0")
        .env("APP__PROJECTORS__SESSION_TIMEOUT_MS", "6000")
        .env("APP__PROJECTORS__BATCH_WAIT_MS", "20")
        .env("APP__PROJECTORS__REPLAY_BATCH_SIZE", "50")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the projectors binary starts")
}

fn sigkill(child: &mut Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
}

async fn count(h: &Harness, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&h.db.pool)
        .await
        .unwrap_or(0)
}

/// The catalog tables rebuilt in place from the event store, as rows.
async fn fresh_rebuild(h: &Harness) -> Vec<serde_json::Value> {
    rebuild(
        &CatalogTables::new(h.db.pool.clone(), Upcasters::default()),
        &h.store,
        &DeadLetters::new(h.db.pool.clone()),
        &worker_options(),
        &WorkerStats::new(),
    )
    .await
    .unwrap();
    dump_catalog(&h.db.pool).await
}

async fn generation(h: &Harness) -> (i64, Option<i64>) {
    sqlx::query_as("SELECT live, building FROM read_model.generations WHERE projection = $1")
        .bind(catalog_tables::NAME)
        .fetch_optional(&h.db.pool)
        .await
        .unwrap()
        .unwrap_or((0, None))
}

/// The server ends a killed client's session only once it next talks to it,
/// so its lease outlives the process by a moment.
async fn killed_sessions_gone(h: &Harness) {
    eventually("the killed replay's session to end", || async {
        let held = count(
            h,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .await;
        (held == 0).then_some(())
    })
    .await;
}

/// Which tables readers see: the same oids mean the same generation.
async fn live_tables(h: &Harness) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT c.oid::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'read_model' AND c.relname = ANY($1) ORDER BY c.relname",
    )
    .bind([
        "categories",
        "brands",
        "products",
        "product_attributes",
        "product_images",
        "product_variants",
    ])
    .fetch_all(&h.db.pool)
    .await
    .unwrap()
}

async fn shadow_schemas(h: &Harness) -> i64 {
    count(
        h,
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'read_model_%'",
    )
    .await
}

/// The case seen in review: the projectors killed 8 s into a load of 300
/// product creates and 300 price changes, then restarted. Every product must
/// arrive, with its last price, and the tables equal a fresh rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_under_load_and_restarted_ends_equal_to_a_fresh_rebuild() {
    let h = Arc::new(harness().await);
    let (category, brand, _) = h.seed_catalog(0).await;
    let mut processes = Processes(vec![projectors(&h, &["run"])]);

    let (stop, relaying) = relay_in_background(&h);
    let loading = load(&h, category, brand);
    eventually("the projector to be part-way through the load", || async {
        (count(&h, "SELECT count(*) FROM read_model.products").await >= 30).then_some(())
    })
    .await;
    sigkill(&mut processes.0[0]);
    loading.await.unwrap();
    processes.0.push(projectors(&h, &["run"]));

    wait_for_all_prices(&h).await;
    stop.send(true).unwrap();
    relaying.await.unwrap();
    let settled = dump_catalog(&h.db.pool).await;
    drop(processes);
    assert_eq!(fresh_rebuild(&h).await, settled);
}

/// The relay, run as command-api runs it (woken by appends, polling
/// otherwise), until told to stop.
fn relay_in_background(
    h: &Arc<Harness>,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let relay = OutboxRelay::new(
        h.store.clone(),
        h.settings.kafka.clone(),
        h.settings.relay.clone(),
    )
    .expect("relay");
    let relaying = tokio::spawn(relay.run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    (stop, relaying)
}

/// 300 product creates, each followed by a price change.
fn load(h: &Arc<Harness>, category: Uuid, brand: Uuid) -> tokio::task::JoinHandle<()> {
    let h = h.clone();
    tokio::spawn(async move {
        for n in 0..300 {
            let id = Uuid::now_v7();
            h.append(
                "product",
                &id.to_string(),
                0,
                &[product_created(
                    id,
                    &format!("LOAD-{n}"),
                    &format!("load-{n}"),
                    Some(category),
                    Some(brand),
                    1000,
                    5,
                )],
            )
            .await;
            h.append(
                "product",
                &id.to_string(),
                1,
                &[price_changed(id, 1000, 1500)],
            )
            .await;
        }
    })
}

async fn wait_for_all_prices(h: &Harness) {
    infrastructure::testing::wait_for(
        "every product with its last price after the restart",
        Duration::from_secs(120),
        || async {
            let done = count(
                h,
                "SELECT count(*) FROM read_model.products WHERE regular_price = 1500.00",
            )
            .await;
            (done == 300).then_some(())
        },
    )
    .await;
}

/// A catalog built live, and what it holds.
async fn live_catalog(h: &Harness) -> Vec<serde_json::Value> {
    h.seed_catalog(40).await;
    h.recorded().await;
    fresh_rebuild(h).await
}

/// A replay after the killed one: it starts the new generation over and
/// swaps every table, and the tables hold what they held.
async fn the_next_replay_swaps(h: &Harness, tables: &[i64], live: &[serde_json::Value]) {
    killed_sessions_gone(h).await;
    let mut again = projectors(h, &["replay", catalog_tables::NAME]);
    let replayed = tokio::task::spawn_blocking(move || again.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(replayed.success());
    let swapped = live_tables(h).await;
    assert!(
        swapped.iter().all(|t| !tables.contains(t)),
        "every table swapped"
    );
    assert_eq!(generation(h).await.1, None);
    assert_eq!(dump_catalog(&h.db.pool).await, live);
    assert_eq!(shadow_schemas(h).await, 0, "no generation left behind");
    assert_eq!(fresh_rebuild(h).await, live);
}

/// Killed after the replay filled the new generation, while it waits for a
/// live batch to end before swapping: readers keep the live generation and
/// the next replay starts over and swaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_killed_before_its_swap_leaves_the_live_tables_and_the_next_one_swaps() {
    let h = harness().await;
    let live = live_catalog(&h).await;
    let tables = live_tables(&h).await;
    let in_batch = BatchGuard::enter(&h.db.pool, catalog_tables::NAME)
        .await
        .unwrap();
    let mut processes = Processes(vec![projectors(&h, &["replay", catalog_tables::NAME])]);
    eventually("the replay to wait for the live batch", || async {
        let waiting = count(
            &h,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .await;
        (waiting > 0).then_some(())
    })
    .await;
    assert_eq!(
        count(&h, "SELECT count(*) FROM read_model_next_catalog.products").await,
        40,
        "the new generation was filled"
    );
    sigkill(&mut processes.0[0]);
    in_batch.leave().await.unwrap();

    assert_eq!(
        dump_catalog(&h.db.pool).await,
        live,
        "readers kept the live tables"
    );
    assert_eq!(live_tables(&h).await, tables, "not one table swapped");
    assert_eq!(generation(&h).await, (0, Some(1)), "nothing swapped");

    the_next_replay_swaps(&h, &tables, &live).await;
    assert_eq!(generation(&h).await, (1, None));
}

/// Killed inside the swap's transaction, held there by a reader's lock on
/// `product_images`, which it moves after four other tables: the
/// transaction never commits, readers keep every live table, and the next
/// replay swaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_killed_mid_swap_leaves_the_live_tables_and_the_next_one_swaps() {
    let h = harness().await;
    let live = live_catalog(&h).await;
    let tables = live_tables(&h).await;
    let mut reader = h.db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE read_model.product_images IN ACCESS SHARE MODE")
        .execute(&mut *reader)
        .await
        .unwrap();
    let mut processes = Processes(vec![projectors(&h, &["replay", catalog_tables::NAME])]);
    eventually("the swap to wait for the reader", || async {
        let waiting = count(
            &h,
            "SELECT count(*) FROM pg_locks WHERE relation = 'read_model.product_images'::regclass AND NOT granted",
        )
        .await;
        (waiting > 0).then_some(())
    })
    .await;
    sigkill(&mut processes.0[0]);
    reader.rollback().await.unwrap();

    assert_eq!(
        dump_catalog(&h.db.pool).await,
        live,
        "readers kept the live tables"
    );
    assert_eq!(live_tables(&h).await, tables, "not one table swapped");
    the_next_replay_swaps(&h, &tables, &live).await;
}

/// Two live projector processes in one group share the load while a third
/// replays the projection beside them: the tables end equal to a fresh
/// rebuild, and the replay swapped once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projector_processes_and_a_replay_beside_them_end_equal_to_a_fresh_rebuild() {
    let h = Arc::new(harness().await);
    let (category, brand, _) = h.seed_catalog(0).await;
    let processes = Processes(vec![projectors(&h, &["run"]), projectors(&h, &["run"])]);
    let (stop, relaying) = relay_in_background(&h);
    let loading = load(&h, category, brand);
    eventually(
        "the live workers to be part-way through the load",
        || async {
            (count(&h, "SELECT count(*) FROM read_model.products").await >= 60).then_some(())
        },
    )
    .await;
    let mut replay = projectors(&h, &["replay", catalog_tables::NAME]);
    let replayed = tokio::task::spawn_blocking(move || replay.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        replayed.success(),
        "the replay beside the live workers succeeded"
    );
    loading.await.unwrap();

    wait_for_all_prices(&h).await;
    stop.send(true).unwrap();
    relaying.await.unwrap();
    let settled = dump_catalog(&h.db.pool).await;
    drop(processes);
    assert_eq!(generation(&h).await, (1, None));
    assert_eq!(shadow_schemas(&h).await, 0);
    assert_eq!(fresh_rebuild(&h).await, settled);
}
