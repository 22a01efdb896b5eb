//! Contract of the event store, run against the real PostgreSQL adapter.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use infrastructure::event_store::{
    AppendOutcome, EventStoreError, GlobalCheckpoint, IdempotencyKey, PgEventStore,
};
use infrastructure::testing::TestDatabase;
use serde_json::json;
use uuid::Uuid;

mod support;
use support::{append, metadata};

async fn event_count(store: &PgEventStore) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM event_store.events")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn appends_under_expected_version_and_loads_in_order() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let meta = metadata();
    let outcome = store
        .append(vec![append("s-1", 0, 2)], &meta, None, |_| json!(null))
        .await
        .unwrap();
    let AppendOutcome::Appended { receipt, .. } = outcome else {
        panic!("expected a fresh append")
    };
    assert_eq!(receipt.version_of("s-1"), Some(2));
    assert!(receipt.last_position > 0);
    store
        .append(vec![append("s-1", 2, 1)], &meta, None, |_| json!(null))
        .await
        .unwrap();
    let events = store.load_stream("s-1").await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(events[0].metadata, meta);
    assert_eq!(events[2].payload, json!({ "n": 3 }));
    assert_eq!(store.stream_version("s-1").await.unwrap(), 3);
    assert_eq!(store.stream_version("missing").await.unwrap(), 0);
}

#[tokio::test]
async fn a_stale_expected_version_is_a_typed_conflict_and_appends_nothing() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    store
        .append(vec![append("s-1", 0, 1)], &metadata(), None, |_| {
            json!(null)
        })
        .await
        .unwrap();
    for (expected, stream) in [(0, "s-1"), (5, "s-1"), (1, "never-written")] {
        let error = store
            .append(vec![append(stream, expected, 1)], &metadata(), None, |_| {
                json!(null)
            })
            .await
            .unwrap_err();
        assert!(
            matches!(error, EventStoreError::VersionConflict { ref stream_id, expected: e, .. } if stream_id == stream && e == expected),
            "{error:?}"
        );
    }
    assert_eq!(event_count(&store).await, 1);
}

#[tokio::test]
async fn a_multi_stream_append_is_all_or_nothing() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    store
        .append(vec![append("taken", 0, 1)], &metadata(), None, |_| {
            json!(null)
        })
        .await
        .unwrap();
    let error = store
        .append(
            vec![
                append("order-1", 0, 2),
                append("taken", 0, 1),
                append("stock-1", 0, 1),
            ],
            &metadata(),
            None,
            |_| json!(null),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, EventStoreError::VersionConflict { .. }));
    assert_eq!(event_count(&store).await, 1);
    assert_eq!(store.stream_version("order-1").await.unwrap(), 0);

    let outcome = store
        .append(
            vec![
                append("order-1", 0, 2),
                append("stock-1", 0, 1),
                append("taken", 1, 0),
            ],
            &metadata(),
            None,
            |_| json!(null),
        )
        .await
        .unwrap();
    let AppendOutcome::Appended { receipt, .. } = outcome else {
        panic!("expected a fresh append")
    };
    assert_eq!(receipt.version_of("order-1"), Some(2));
    assert_eq!(receipt.version_of("stock-1"), Some(1));
    assert_eq!(receipt.version_of("taken"), Some(1));
    assert_eq!(event_count(&store).await, 4);
}

#[tokio::test]
async fn an_empty_append_still_asserts_the_version_it_read() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    store
        .append(vec![append("claim", 0, 1)], &metadata(), None, |_| {
            json!(null)
        })
        .await
        .unwrap();
    let error = store
        .append(
            vec![append("order-1", 0, 1), append("claim", 0, 0)],
            &metadata(),
            None,
            |_| json!(null),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, EventStoreError::VersionConflict { ref stream_id, .. } if stream_id == "claim")
    );
    assert_eq!(event_count(&store).await, 1);
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_answer_and_appends_once() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let key = IdempotencyKey {
        key: "key-1".into(),
        fingerprint: "POST /things {a}".into(),
    };
    let first = store
        .append(
            vec![append("s-1", 0, 1)],
            &metadata(),
            Some(&key),
            |r| json!({ "position": r.last_position }),
        )
        .await
        .unwrap();
    // The retry decided against a stale version; the stored answer wins anyway.
    let second = store
        .append(vec![append("s-1", 0, 1)], &metadata(), Some(&key), |_| {
            json!("unused")
        })
        .await
        .unwrap();
    assert!(matches!(second, AppendOutcome::AlreadyHandled { .. }));
    assert_eq!(first.response(), second.response());
    assert_eq!(event_count(&store).await, 1);

    let reused = store
        .append(
            vec![append("s-2", 0, 1)],
            &metadata(),
            Some(&IdempotencyKey {
                key: "key-1".into(),
                fingerprint: "POST /things {b}".into(),
            }),
            |_| json!(null),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        reused,
        EventStoreError::IdempotencyKeyReused { .. }
    ));
    assert_eq!(event_count(&store).await, 1);
}

#[tokio::test]
async fn idempotency_keys_past_their_retention_are_pruned_and_usable_again() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let key = |name: &str| IdempotencyKey {
        key: name.into(),
        fingerprint: format!("POST /things {name}"),
    };
    for (n, name) in ["old-1", "old-2", "fresh"].into_iter().enumerate() {
        store
            .append(
                vec![append(&format!("s-{n}"), 0, 1)],
                &metadata(),
                Some(&key(name)),
                move |_| json!({ "n": n }),
            )
            .await
            .unwrap();
    }
    sqlx::query(
        "UPDATE event_store.idempotency_keys SET created_at = now() - interval '25 hours' \
         WHERE idempotency_key LIKE 'old-%'",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let pruned = store
        .prune_idempotency_keys(chrono::Utc::now() - chrono::Duration::hours(24))
        .await
        .unwrap();
    assert_eq!(pruned, 2);
    assert!(store
        .stored_response(&key("old-1"))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .stored_response(&key("fresh"))
        .await
        .unwrap()
        .is_some());
    // A pruned key names a new request again.
    let again = store
        .append(
            vec![append("s-9", 0, 1)],
            &metadata(),
            Some(&key("old-1")),
            |_| json!("second life"),
        )
        .await
        .unwrap();
    assert!(matches!(again, AppendOutcome::Appended { .. }));
}

#[tokio::test]
async fn concurrent_duplicates_with_one_key_append_once() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let key = IdempotencyKey {
        key: "key-race".into(),
        fingerprint: "same".into(),
    };
    let attempts = (0..8).map(|_| {
        let store = store.clone();
        let key = key.clone();
        tokio::spawn(async move {
            store
                .append(vec![append("s-race", 0, 1)], &metadata(), Some(&key), |r| {
                    json!(r.last_position)
                })
                .await
        })
    });
    let responses: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap().response().clone())
        .collect();
    assert!(responses.windows(2).all(|w| w[0] == w[1]), "{responses:?}");
    assert_eq!(event_count(&store).await, 1);
}

#[tokio::test]
async fn events_are_append_only() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    store
        .append(vec![append("s-1", 0, 1)], &metadata(), None, |_| {
            json!(null)
        })
        .await
        .unwrap();
    assert!(sqlx::query("UPDATE event_store.events SET payload = '{}'")
        .execute(store.pool())
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM event_store.events")
        .execute(store.pool())
        .await
        .is_err());
}

/// Many writers, some holding their transaction open for a while after they
/// took their positions, race a tailer. The tailer must see every event
/// exactly once, and every stream's versions in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tailer_never_skips_an_event_committed_late_by_a_slow_writer() {
    const WRITERS: usize = 12;
    const APPENDS_PER_WRITER: usize = 25;
    const STREAMS: usize = 8;
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());

    let writers = (0..WRITERS).map(|writer| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut appended = 0;
            let mut attempt = 0u64;
            while appended < APPENDS_PER_WRITER {
                attempt += 1;
                let stream = format!(
                    "stream-{}",
                    (writer + appended + attempt as usize) % STREAMS
                );
                let expected = store.stream_version(&stream).await.unwrap();
                let count = 1 + (attempt % 3) as i64;
                let mut tx = store.pool().begin().await.unwrap();
                match store
                    .append_in_transaction(
                        &mut tx,
                        vec![append(&stream, expected, count)],
                        &metadata(),
                    )
                    .await
                {
                    Ok(_) => {
                        // A slow writer: its positions are taken, its commit comes later.
                        if (writer + appended) % 4 == 0 {
                            let pause = 0.005 * ((writer + appended) % 5) as f64;
                            sqlx::query("SELECT pg_sleep($1)")
                                .bind(pause)
                                .execute(&mut *tx)
                                .await
                                .unwrap();
                        }
                        tx.commit().await.unwrap();
                        appended += 1;
                    }
                    Err(EventStoreError::VersionConflict { .. }) => tx.rollback().await.unwrap(),
                    Err(other) => panic!("append failed: {other:?}"),
                }
            }
        })
    });
    let writers = futures::future::join_all(writers);
    let writers_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let tailer = {
        let store = store.clone();
        let writers_done = writers_done.clone();
        tokio::spawn(async move {
            let mut checkpoint = GlobalCheckpoint::default();
            let mut seen = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let batch = store.read_after(checkpoint, 37, None).await.unwrap();
                if let Some(last) = batch.last() {
                    checkpoint = last.checkpoint();
                }
                let empty = batch.is_empty();
                seen.extend(batch);
                // Read before counting: once the writers are done, the count is final.
                let done = writers_done.load(std::sync::atomic::Ordering::SeqCst);
                let total = event_count(&store).await;
                if done && empty && seen.len() as i64 == total {
                    return seen;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "tailer did not catch up: saw {} of {total}",
                    seen.len()
                );
                tokio::task::yield_now().await;
            }
        })
    };
    writers.await.into_iter().for_each(|r| r.unwrap());
    writers_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = tailer.await.unwrap();

    let total: i64 = event_count(&store).await;
    assert_eq!(
        store_appends(&store).await,
        (WRITERS * APPENDS_PER_WRITER) as i64,
        "every writer committed all its appends"
    );
    assert_eq!(
        seen.len() as i64,
        total,
        "the tailer saw every committed event"
    );
    let unique: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(unique.len(), seen.len(), "no event was seen twice");
    let mut last_version: HashMap<&str, i64> = HashMap::new();
    for event in &seen {
        let previous = last_version
            .insert(&event.aggregate_id, event.version)
            .unwrap_or(0);
        assert_eq!(
            event.version,
            previous + 1,
            "stream {} out of order",
            event.aggregate_id
        );
    }
    for window in seen.windows(2) {
        assert!(
            window[0].checkpoint() < window[1].checkpoint(),
            "read order is strictly increasing"
        );
    }
}

async fn store_appends(store: &PgEventStore) -> i64 {
    sqlx::query_scalar("SELECT count(DISTINCT transaction_id::text) FROM event_store.events")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn processes_starting_together_all_find_their_database() {
    let name = format!("race_{}", infrastructure::testing::unique_suffix());
    let url = format!(
        "{}/{name}",
        infrastructure::testing::admin_url()
            .rsplit_once('/')
            .unwrap()
            .0
    );
    let attempts = (0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(
            async move { infrastructure::database::create_database_if_missing(&url).await },
        )
    });
    for result in futures::future::join_all(attempts).await {
        result.unwrap().expect("every racing process succeeds");
    }
    let admin = sqlx::PgPool::connect(&infrastructure::testing::admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
}
