//! The global order survives a restore into another cluster (gap 1), and a
//! running relay follows an operator's reset of its checkpoint. Real servers:
//! the platform's PostgreSQL, a second cluster started by the test, pg_dump
//! and pg_restore, and the Kafka broker of `scripts/services`.

use std::collections::HashMap;
use std::time::Duration;

use infrastructure::event_store::PgEventStore;
use infrastructure::relay::{OutboxRelay, RelayError};
use infrastructure::testing::{
    append_new_streams, isolated_settings, read_topics, run, unique_suffix, wait_for,
    SecondCluster, TestDatabase,
};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

async fn current_xid(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Everything the relay can publish now, until it has nothing more.
async fn relay_all(relay: &mut OutboxRelay) {
    loop {
        match relay.relay_once().await {
            Ok(0) => return,
            Ok(_) => {}
            Err(RelayError::NotLeader) => panic!("no other relay runs in this test"),
            Err(error) => panic!("relay failed: {error}"),
        }
    }
}

/// Tried as a user would: 20 categories, the database dumped and restored
/// into a fresh cluster, the platform pointed at it, 10 more. Before epochs,
/// none of the 10 reached the tailer or Kafka: the new cluster numbers its
/// transactions below the stored checkpoint's.
#[tokio::test]
async fn events_appended_after_a_restore_into_another_cluster_are_read_and_published_once() {
    let db = TestDatabase::create().await;
    let suffix = unique_suffix();
    let settings = isolated_settings(&db.url, &suffix);
    let store = PgEventStore::new(db.pool.clone());
    let second = tokio::task::spawn_blocking(SecondCluster::start)
        .await
        .unwrap();
    // The platform's cluster must be ahead of a fresh one for the restore to
    // reuse ids; burning ids here is what a cluster that ran a while has done.
    let fresh_cluster_xid = {
        let pool = PgPoolOptions::new()
            .connect(&second.url("postgres"))
            .await
            .unwrap();
        current_xid(&pool).await
    };
    let mut burner = db.pool.acquire().await.unwrap();
    sqlx::raw_sql("SET synchronous_commit = off")
        .execute(&mut *burner)
        .await
        .unwrap();
    sqlx::raw_sql("DO $$ BEGIN WHILE pg_current_xact_id()::text::bigint < 20000 LOOP COMMIT; END LOOP; END $$")
        .execute(&mut *burner)
        .await
        .unwrap();
    drop(burner);
    let before = append_new_streams(&store, "category", "CategoryCreated", 20).await;

    // A tailer and the relay read everything, and keep their checkpoints.
    let mut tail = store
        .read_after(Default::default(), 1_000, None)
        .await
        .unwrap();
    assert_eq!(tail.len(), 20);
    let tailer_at = tail.pop().unwrap().checkpoint();
    store.save_checkpoint("analyst", tailer_at).await.unwrap();
    let mut relay = OutboxRelay::new(
        store.clone(),
        settings.kafka.clone(),
        settings.relay.clone(),
    )
    .unwrap();
    relay_all(&mut relay).await;
    drop(relay);
    assert_eq!(
        store.checkpoint(&settings.relay.name).await.unwrap(),
        tailer_at
    );

    // pg_dump, then pg_restore into the second cluster.
    let dump = std::env::temp_dir().join(format!("restore-{suffix}.dump"));
    let dump_path = dump.to_string_lossy().into_owned();
    let (source_url, target_url) = (db.url.clone(), second.url(&db.name));
    let (pg_dump, pg_restore, createdb) = (
        second.bin("pg_dump"),
        second.bin("pg_restore"),
        second.bin("createdb"),
    );
    let port = second.port.to_string();
    let name = db.name.clone();
    tokio::task::spawn_blocking(move || {
        run(
            &pg_dump.to_string_lossy(),
            &["-Fc", "-f", &dump_path, "-d", &source_url],
            None,
        );
        run(
            &createdb.to_string_lossy(),
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", &name],
            None,
        );
        run(
            &pg_restore.to_string_lossy(),
            &["--exit-on-error", "-d", &target_url, &dump_path],
            None,
        );
        let _ = std::fs::remove_file(&dump_path);
    })
    .await
    .unwrap();

    let restored_pool = PgPoolOptions::new()
        .max_connections(5)
        .connect(&second.url(&db.name))
        .await
        .unwrap();
    let restored = PgEventStore::new(restored_pool.clone());
    let restored_xid = current_xid(&restored_pool).await;
    assert!(
        restored_xid < tailer_at.transaction_id,
        "the restored cluster must number transactions below the old ids ({restored_xid} vs {}; fresh cluster began at {fresh_cluster_xid})",
        tailer_at.transaction_id
    );
    let after = append_new_streams(&restored, "category", "CategoryCreated", 10).await;

    // The tailer resumes from its old checkpoint: every new event, once.
    let resumed = restored
        .read_after(restored.checkpoint("analyst").await.unwrap(), 1_000, None)
        .await
        .unwrap();
    assert_eq!(
        resumed.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        after
    );
    assert!(resumed
        .iter()
        .all(|e| e.transaction_id < tailer_at.transaction_id));

    // The relay resumes from its restored checkpoint: Kafka then holds each
    // of the 30 events exactly once.
    let mut relay = OutboxRelay::new(
        restored.clone(),
        settings.kafka.clone(),
        settings.relay.clone(),
    )
    .unwrap();
    relay_all(&mut relay).await;
    let messages = read_topics(&settings, &["category"], 30, Duration::from_secs(60)).await;
    let mut counts: HashMap<Uuid, usize> = HashMap::new();
    for message in &messages {
        *counts
            .entry(message.event_id.expect("event id header"))
            .or_default() += 1;
    }
    for id in before.iter().chain(&after) {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "event {id} published {:?} times",
            counts.get(id)
        );
    }
    assert_eq!(messages.len(), 30);
    restored_pool.close().await;
    drop(second);
}

/// An operator resets the relay's checkpoint to an earlier event: the running
/// relay follows it and publishes again from there, instead of keeping its
/// own idea of where it was.
#[tokio::test]
async fn a_running_relay_follows_a_reset_of_its_checkpoint() {
    let db = TestDatabase::create().await;
    let settings = isolated_settings(&db.url, &unique_suffix());
    let store = PgEventStore::new(db.pool.clone());
    let ids = append_new_streams(&store, "category", "CategoryCreated", 10).await;
    let relay = OutboxRelay::new(
        store.clone(),
        settings.kafka.clone(),
        settings.relay.clone(),
    )
    .unwrap();
    let running = tokio::spawn(relay.run(std::future::pending()));
    let head = store.head().await.unwrap();
    wait_for(
        "the relay to publish everything",
        Duration::from_secs(60),
        || async {
            (store.checkpoint(&settings.relay.name).await.unwrap() == head.place()).then_some(())
        },
    )
    .await;
    let sixth = store
        .read_after(Default::default(), 10, None)
        .await
        .unwrap()[5]
        .position;
    let reset_to = store.place_before(sixth).await.unwrap().unwrap();
    store
        .reset_checkpoint(&settings.relay.name, reset_to)
        .await
        .unwrap();
    // The five events from the sixth on come again: 15 messages in all.
    let messages = read_topics(&settings, &["category"], 15, Duration::from_secs(60)).await;
    running.abort();
    let mut counts: HashMap<Uuid, usize> = HashMap::new();
    for message in &messages {
        *counts.entry(message.event_id.unwrap()).or_default() += 1;
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(counts[id], if i >= 5 { 2 } else { 1 }, "event {i}");
    }
    assert_eq!(
        store.checkpoint(&settings.relay.name).await.unwrap(),
        head.place()
    );
}
