//! The global log's promises beyond a single append, against the real
//! PostgreSQL adapter: group commit keeps each append's own outcome, the
//! consistency token is monotonic and waitable, the log cannot be poisoned
//! silently, and checkpoints only move forward.

use std::collections::HashSet;
use std::sync::Arc;

use infrastructure::event_store::postgres::{advance_checkpoint, SkipOutcome};
use infrastructure::event_store::{
    AppendOutcome, ConsistencyToken, EventStoreError, GlobalCheckpoint, IdempotencyKey,
    PgEventStore, StreamAppend,
};
use infrastructure::testing::{wait_for, TestDatabase};
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

mod support;
use support::{append, metadata};

/// The first `count` events of the log, once all are final: transactions of
/// other tests on the same cluster may hold the tail back for a moment.
async fn read_final(
    store: &PgEventStore,
    count: usize,
) -> Vec<infrastructure::event_store::RecordedEvent> {
    wait_for(
        "the events to be final",
        Duration::from_secs(30),
        || async {
            let events = store
                .read_after(GlobalCheckpoint::default(), count as i64, None)
                .await
                .unwrap();
            (events.len() == count).then_some(events)
        },
    )
    .await
}

async fn appended(
    store: &PgEventStore,
    appends: Vec<StreamAppend>,
) -> Result<infrastructure::event_store::AppendReceipt, EventStoreError> {
    match store
        .append(appends, &metadata(), None, |_| json!(null))
        .await?
    {
        AppendOutcome::Appended { receipt, .. } => Ok(receipt),
        AppendOutcome::AlreadyHandled { .. } => panic!("no key was given"),
    }
}

/// 60 appends at once: 30 to streams of their own, 30 racing for version 1 of
/// one stream. They share transactions (fewer transaction ids than appends),
/// yet exactly one racer wins, every other racer gets its own conflict, and
/// every append to its own stream commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_keeps_each_appends_own_outcome() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = if i % 2 == 0 {
                format!("own-{i}")
            } else {
                "contended".into()
            };
            (i, appended(&store, vec![append(&stream, 0, 2)]).await)
        }));
    }
    let mut winners = 0;
    for task in tasks {
        let (i, result) = task.await.unwrap();
        match (i % 2 == 0, result) {
            (true, Ok(receipt)) => assert_eq!(receipt.version_of(&format!("own-{i}")), Some(2)),
            (false, Ok(_)) => winners += 1,
            (
                false,
                Err(EventStoreError::VersionConflict {
                    stream_id,
                    expected: 0,
                    actual: 2,
                }),
            ) => {
                assert_eq!(stream_id, "contended")
            }
            (_, other) => panic!("append {i}: unexpected {other:?}"),
        }
    }
    assert_eq!(winners, 1);
    let (events, transactions): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT transaction_id::text) FROM event_store.events",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(events, 62);
    assert!(
        transactions < 31,
        "31 appends committed in {transactions} transactions: no group commit"
    );
    assert_eq!(store.stream_version("contended").await.unwrap(), 2);
    let streams: i64 = sqlx::query_scalar("SELECT count(*) FROM event_store.streams")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        streams, 31,
        "no placeholder stream is left behind by a loser"
    );
}

/// Twins carrying one key in one group append once and get one answer; a
/// request reusing the key for something else is refused; a key whose append
/// lost its race can be used again by the retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys_hold_inside_a_group() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let key = IdempotencyKey {
        key: "twin".into(),
        fingerprint: "f1".into(),
    };
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (store, key) = (store.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    vec![append("twins", 0, 1)],
                    &metadata(),
                    Some(&key),
                    |r| json!({ "position": r.last_position }),
                )
                .await
        }));
    }
    let mut responses = HashSet::new();
    let mut fresh = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            AppendOutcome::Appended { response, .. } => {
                fresh += 1;
                responses.insert(response.to_string());
            }
            AppendOutcome::AlreadyHandled { response } => {
                responses.insert(response.to_string());
            }
        }
    }
    assert_eq!(fresh, 1);
    assert_eq!(
        responses.len(),
        1,
        "every twin gets the first answer: {responses:?}"
    );
    let other = IdempotencyKey {
        key: "twin".into(),
        fingerprint: "f2".into(),
    };
    let reused = store
        .append(
            vec![append("other", 0, 1)],
            &metadata(),
            Some(&other),
            |_| json!(null),
        )
        .await;
    assert!(
        matches!(reused, Err(EventStoreError::IdempotencyKeyReused { .. })),
        "{reused:?}"
    );

    let retry_key = IdempotencyKey {
        key: "retry".into(),
        fingerprint: "f".into(),
    };
    let lost = store
        .append(
            vec![append("twins", 0, 1)],
            &metadata(),
            Some(&retry_key),
            |_| json!(null),
        )
        .await;
    assert!(
        matches!(lost, Err(EventStoreError::VersionConflict { .. })),
        "{lost:?}"
    );
    let retried = store
        .append(
            vec![append("twins", 1, 1)],
            &metadata(),
            Some(&retry_key),
            |_| json!("ok"),
        )
        .await
        .unwrap();
    assert!(
        matches!(retried, AppendOutcome::Appended { .. }),
        "{retried:?}"
    );
}

/// One append whose payload PostgreSQL refuses (a NUL in JSONB text) fails
/// alone; the appends it shared a group with commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_payload_fails_only_its_own_append() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let mut tasks = Vec::new();
    for i in 0..30 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut a = append(&format!("s-{i}"), 0, 1);
            if i == 7 {
                a.events[0].payload = json!({ "name": "bad\u{0000}name" });
            }
            (i, appended(&store, vec![a]).await)
        }));
    }
    for task in tasks {
        let (i, result) = task.await.unwrap();
        assert_eq!(result.is_err(), i == 7, "append {i}: {result:?}");
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_store.events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(events, 29);
}

/// Tokens grow with every command, and a tailer reading one event at a time
/// reaches a command's token exactly when it has read that command's events.
#[tokio::test]
async fn the_consistency_token_is_monotonic_and_waitable() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let mut commands: Vec<(ConsistencyToken, Vec<Uuid>)> = Vec::new();
    for i in 0..12 {
        let a = append(&format!("t-{}", i % 3), i / 3 * 2, 2);
        let ids = a.events.iter().map(|e| e.event_id).collect();
        let receipt = appended(&store, vec![a]).await.unwrap();
        let token: ConsistencyToken = receipt.token.to_string().parse().unwrap();
        assert_eq!(
            token, receipt.token,
            "the token round-trips through its text"
        );
        if let Some((previous, _)) = commands.last() {
            assert!(token > *previous, "tokens are monotonic");
        }
        commands.push((token, ids));
    }
    // A command that appends nothing answers the log's head.
    let nothing = appended(
        &store,
        vec![StreamAppend {
            stream_id: "t-0".into(),
            aggregate_type: "thing".into(),
            expected_version: 8,
            events: vec![],
        }],
    )
    .await
    .unwrap();
    assert_eq!(nothing.token, commands.last().unwrap().0);

    let mut seen: HashSet<Uuid> = HashSet::new();
    let mut checkpoint = GlobalCheckpoint::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 24 {
        assert!(Instant::now() < deadline, "the tail stayed held back");
        let batch = store.read_after(checkpoint, 1, None).await.unwrap();
        let Some(event) = batch.first() else {
            // Held back by another test's transaction still running.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        seen.insert(event.event_id);
        checkpoint = event.checkpoint();
        for (token, ids) in &commands {
            let all_read = ids.iter().all(|id| seen.contains(id));
            assert_eq!(
                token.is_reached_by(checkpoint),
                all_read,
                "token {token} at checkpoint {checkpoint:?}"
            );
        }
    }
    assert_eq!(seen.len(), 24);
}

/// Gap 4: `events.metadata` defaulted to `'{}'`, which readers cannot decode,
/// and one such row made every tailing read fail. Now the column has no
/// default and must carry the ids readers need.
#[tokio::test]
async fn metadata_readers_cannot_decode_is_refused_at_insert() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    appended(&store, vec![append("m", 0, 1)]).await.unwrap();
    for metadata in [
        None,
        Some(json!({})),
        Some(json!({"correlation_id": 1, "causation_id": "x"})),
    ] {
        let inserted = sqlx::query(
            "INSERT INTO event_store.events (event_id, aggregate_type, aggregate_id, version, event_type, schema_version, payload, metadata) \
             VALUES ($1, 'thing', 'm', 2, 'ThingHappened', 1, '{}', $2)",
        )
        .bind(Uuid::now_v7())
        .bind(metadata.clone())
        .execute(&db.pool)
        .await;
        assert!(inserted.is_err(), "metadata {metadata:?} was stored");
    }
    let without_column = sqlx::query(
        "INSERT INTO event_store.events (event_id, aggregate_type, aggregate_id, version, event_type, schema_version, payload) \
         VALUES ($1, 'thing', 'm', 2, 'ThingHappened', 1, '{}')",
    )
    .bind(Uuid::now_v7())
    .execute(&db.pool)
    .await;
    assert!(
        without_column.is_err(),
        "an event without metadata was stored"
    );
}

/// A stored event that still cannot be decoded (here: ids that are not
/// UUIDs, as a row written before the constraint could hold) stops the log
/// at its position, visibly, until an operator skips it; nothing after it is
/// lost, and only an undecodable event can be skipped.
#[tokio::test]
async fn an_undecodable_event_stops_the_log_until_an_operator_skips_it() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    appended(&store, vec![append("p", 0, 2)]).await.unwrap();
    let bad: i64 = sqlx::query_scalar(
        "INSERT INTO event_store.events (event_id, aggregate_type, aggregate_id, version, event_type, schema_version, payload, metadata) \
         VALUES ($1, 'thing', 'p', 3, 'ThingHappened', 1, '{}', '{\"correlation_id\": \"not-a-uuid\", \"causation_id\": \"x\"}') \
         RETURNING position",
    )
    .bind(Uuid::now_v7())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE event_store.streams SET version = 3 WHERE stream_id = 'p'")
        .execute(&db.pool)
        .await
        .unwrap();
    appended(&store, vec![append("p", 3, 2)]).await.unwrap();

    let before = read_final(&store, 2).await;
    let stopped_at = wait_for(
        "the log to reach the bad event",
        Duration::from_secs(30),
        || async {
            match store.read_after(before[1].checkpoint(), 100, None).await {
                Err(EventStoreError::PoisonedLog { position, .. }) => Some(position),
                Ok(events) if events.is_empty() => None,
                other => panic!("expected the log to stop at {bad}: {other:?}"),
            }
        },
    )
    .await;
    assert_eq!(stopped_at, bad);
    assert_eq!(
        store
            .skip_undecodable(before[0].position, "test", "tester")
            .await
            .unwrap(),
        SkipOutcome::Decodable
    );
    assert_eq!(
        store
            .skip_undecodable(999_999, "test", "tester")
            .await
            .unwrap(),
        SkipOutcome::NoSuchEvent
    );
    assert!(matches!(
        store
            .skip_undecodable(bad, "ids are not uuids", "tester")
            .await
            .unwrap(),
        SkipOutcome::Skipped { .. }
    ));
    let after = wait_for(
        "the events after the skipped one",
        Duration::from_secs(30),
        || async {
            let events = store
                .read_after(before[1].checkpoint(), 100, None)
                .await
                .unwrap();
            (events.len() == 2).then_some(events)
        },
    )
    .await;
    assert_eq!(
        after.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![4, 5],
        "the log goes on past the skipped event"
    );
    let recorded: (String, String) = sqlx::query_as(
        "SELECT reason, skipped_by FROM event_store.skipped_events WHERE position = $1",
    )
    .bind(bad)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(recorded, ("ids are not uuids".into(), "tester".into()));
    // The aggregate still loads: deciding needs only the payload.
    assert_eq!(store.load_stream("p").await.unwrap().len(), 5);
}

/// Saves only move a checkpoint forward; a compare-and-set from a stale
/// place is refused, so a relay never overwrites an operator's reset.
#[tokio::test]
async fn checkpoints_only_move_forward() {
    let db = TestDatabase::create().await;
    let store = Arc::new(PgEventStore::new(db.pool.clone()));
    appended(&store, vec![append("c", 0, 3)]).await.unwrap();
    let events = read_final(&store, 3).await;
    let (first, second, third) = (
        events[0].checkpoint(),
        events[1].checkpoint(),
        events[2].checkpoint(),
    );
    store.save_checkpoint("r", second).await.unwrap();
    store.save_checkpoint("r", first).await.unwrap();
    assert_eq!(
        store.checkpoint("r").await.unwrap(),
        second,
        "a save never moves it back"
    );

    assert!(
        advance_checkpoint(&db.pool, "fresh", GlobalCheckpoint::default(), first)
            .await
            .unwrap()
    );
    assert!(
        !advance_checkpoint(&db.pool, "fresh", GlobalCheckpoint::default(), second)
            .await
            .unwrap()
    );
    assert!(advance_checkpoint(&db.pool, "fresh", first, third)
        .await
        .unwrap());
    store.reset_checkpoint("fresh", first).await.unwrap();
    assert!(
        !advance_checkpoint(
            &db.pool,
            "fresh",
            third,
            third.max(GlobalCheckpoint {
                position: third.position + 1,
                ..third
            })
        )
        .await
        .unwrap(),
        "a relay that missed the reset cannot overwrite it"
    );
    assert_eq!(store.checkpoint("fresh").await.unwrap(), first);
}
