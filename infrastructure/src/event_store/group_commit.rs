//! Group commit: appends that arrive while a commit is under way wait for it
//! and then share one transaction, so that they share one disk flush, as
//! single-writer event stores do. Each append keeps its own expected-version
//! checks, its own idempotency key and its own outcome: a conflict in one
//! leaves the others of its group untouched. The whole group is written by
//! one call of `event_store.append_group`, whatever its size.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Row};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::postgres::APPENDED_CHANNEL;
use super::{
    AppendReceipt, ConsistencyToken, EventMetadata, EventStoreError, GlobalCheckpoint,
    IdempotencyKey, StreamAppend,
};

/// Builds the response stored with an idempotency key from the append's
/// receipt. Called once per commit attempt.
pub(crate) type Respond = Box<dyn Fn(&AppendReceipt) -> serde_json::Value + Send + Sync>;

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct GroupCommitSettings {
    /// Groups committing at the same time. More than one lets a group be
    /// written while the previous one waits for its flush.
    pub max_parallel_groups: usize,
    /// Events in one group at most; a larger single append still commits alone.
    pub max_group_events: usize,
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        Self {
            max_parallel_groups: 3,
            max_group_events: 4_000,
        }
    }
}

/// One append waiting to be committed.
pub(crate) struct Entry {
    appends: Vec<StreamAppend>,
    metadata: serde_json::Value,
    idempotency: Option<IdempotencyKey>,
    respond: Respond,
    events: usize,
}

impl Entry {
    pub(crate) fn new(
        mut appends: Vec<StreamAppend>,
        metadata: &EventMetadata,
        idempotency: Option<IdempotencyKey>,
        respond: Respond,
    ) -> Self {
        // One lock order for every writer, so that groups cannot deadlock.
        appends.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
        let events = appends.iter().map(|a| a.events.len()).sum();
        Self {
            appends,
            metadata: serde_json::to_value(metadata).expect("metadata serializes"),
            idempotency,
            respond,
            events,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub stream_id: String,
    pub expected: i64,
    pub actual: i64,
}

impl From<Conflict> for EventStoreError {
    fn from(c: Conflict) -> Self {
        EventStoreError::VersionConflict {
            stream_id: c.stream_id,
            expected: c.expected,
            actual: c.actual,
        }
    }
}

/// What became of one entry of a group.
#[derive(Debug, Clone)]
pub(crate) enum EntryResult {
    Appended {
        receipt: AppendReceipt,
        response: serde_json::Value,
    },
    Conflict(Conflict),
    /// Its key was taken by a request that committed first.
    KeyAlreadyUsed,
    /// An earlier entry of the group carries its key with another request.
    KeyReused,
    /// An earlier entry of the group is the same request (same key and
    /// fingerprint): this one's answer is that one's.
    SameRequestAs(Box<EntryResult>),
}

struct Waiting {
    entry: Entry,
    reply: oneshot::Sender<Result<EntryResult, EventStoreError>>,
    submitted: Instant,
}

struct Queue {
    waiting: VecDeque<Waiting>,
    running: usize,
}

pub(crate) struct GroupCommitter {
    pool: PgPool,
    settings: GroupCommitSettings,
    queue: Mutex<Queue>,
    /// A commit appended events that tailers have not been told of yet.
    wake_pending: AtomicBool,
    /// A task is sending the wake-up; commits meanwhile fold into its next.
    waking: AtomicBool,
    /// Counts commits that appended, for tailers in this process: they wake
    /// at once, without a round trip to PostgreSQL.
    appended: watch::Sender<u64>,
}

/// The shortest time between two NOTIFYs. Each is a transaction of its own
/// that PostgreSQL flushes to disk, so one per commit would double the
/// flushes of a busy log; tailers in this process are woken without it.
const NOTIFY_MIN_INTERVAL: Duration = Duration::from_millis(20);

impl GroupCommitter {
    pub(crate) fn new(pool: PgPool, settings: GroupCommitSettings) -> Arc<Self> {
        Arc::new(Self {
            pool,
            settings: GroupCommitSettings {
                max_parallel_groups: settings.max_parallel_groups.max(1),
                max_group_events: settings.max_group_events.max(1),
            },
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                running: 0,
            }),
            wake_pending: AtomicBool::new(false),
            waking: AtomicBool::new(false),
            appended: watch::channel(0).0,
        })
    }

    /// Changes after every commit that appended events.
    pub(crate) fn appended(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A committer that panicked leaves the queue consistent: every change
        // to it is a single push, pop or count.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `entry` and waits for the commit of the group it joins. Groups
    /// are written by spawned tasks, so a caller that gives up does not
    /// abandon the others of its group mid-transaction.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        entry: Entry,
    ) -> Result<EntryResult, EventStoreError> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push_back(Waiting {
                entry,
                reply,
                submitted: Instant::now(),
            });
            let start = queue.running < self.settings.max_parallel_groups;
            if start {
                queue.running += 1;
            }
            start
        };
        if start {
            let committer = Arc::clone(self);
            tokio::spawn(async move { committer.drain().await });
        }
        answer.await.map_err(|_| EventStoreError::Interrupted)?
    }

    /// Commits groups until nothing waits.
    async fn drain(self: Arc<Self>) {
        let mut running = RunningGuard(Some(&self));
        loop {
            let group = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.running -= 1;
                    running.0 = None;
                    return;
                }
                let mut group = Vec::new();
                let mut events = 0;
                while let Some(next) = queue.waiting.front() {
                    if !group.is_empty()
                        && events + next.entry.events > self.settings.max_group_events
                    {
                        break;
                    }
                    events += next.entry.events;
                    group.push(queue.waiting.pop_front().expect("front exists"));
                }
                group
            };
            self.commit(group).await;
        }
    }

    async fn commit(self: &Arc<Self>, group: Vec<Waiting>) {
        let started = Instant::now();
        let (entries, waiters): (Vec<Entry>, Vec<_>) = group
            .into_iter()
            .map(|w| (w.entry, (w.reply, w.submitted)))
            .unzip();
        let events: usize = entries.iter().map(|e| e.events).sum();
        metrics::histogram!("event_store_append_group_size").record(entries.len() as f64);
        let results = self.commit_with_fallback(&entries).await;
        let appended = results
            .iter()
            .zip(&entries)
            .filter(|(r, _)| matches!(r, Ok(EntryResult::Appended { .. })))
            .map(|(_, e)| e.events)
            .sum::<usize>();
        for (result, (reply, submitted)) in results.into_iter().zip(waiters) {
            metrics::histogram!("event_store_append_duration_seconds")
                .record(submitted.elapsed().as_secs_f64());
            let _ = reply.send(result);
        }
        if appended > 0 {
            metrics::counter!("event_store_events_appended_total").increment(appended as u64);
            self.wake_tailers();
        }
        tracing::debug!(
            appends = entries.len(),
            events,
            appended,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "group committed"
        );
    }

    /// Commits the group; when a statement fails on one entry's data, commits
    /// each entry alone so that only the culprit fails.
    async fn commit_with_fallback(
        &self,
        entries: &[Entry],
    ) -> Vec<Result<EntryResult, EventStoreError>> {
        match self.commit_retrying(entries).await {
            Ok(results) => results.into_iter().map(Ok).collect(),
            Err(error) if entries.len() > 1 && is_data_error(&error) => {
                tracing::warn!(%error, appends = entries.len(), "group refused, committing its appends one by one");
                let mut results = Vec::with_capacity(entries.len());
                for entry in entries {
                    results.push(
                        self.commit_retrying(std::slice::from_ref(entry))
                            .await
                            .map(|mut r| r.pop().expect("one result per entry"))
                            .map_err(EventStoreError::from),
                    );
                }
                results
            }
            Err(error) => {
                tracing::error!(error = %error, appends = entries.len(), "group commit failed");
                entries.iter().map(|_| Err(copy_error(&error))).collect()
            }
        }
    }

    /// Deadlocks between groups (two first writers of the same new streams)
    /// are resolved by PostgreSQL aborting one; it is retried.
    async fn commit_retrying(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, sqlx::Error> {
        let mut attempt = 0;
        loop {
            let result = async {
                let mut connection = self.pool.acquire().await?;
                if entries.iter().all(|e| e.idempotency.is_none()) {
                    // A single statement, in its own implicit transaction:
                    // the group is one round trip.
                    return write_group(&mut connection, entries)
                        .await
                        .map_err(into_sqlx);
                }
                let mut tx = connection.begin().await?;
                let results = write_group(&mut tx, entries).await.map_err(into_sqlx)?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(results)
            }
            .await;
            match result {
                Err(error) if attempt < 5 && is_transient(&error) => {
                    attempt += 1;
                    tracing::info!(%error, attempt, "group commit retried");
                    tokio::time::sleep(Duration::from_millis(2 * attempt)).await;
                }
                other => return other,
            }
        }
    }
}

impl GroupCommitter {
    /// Wakes tailers: those of this process at once, the others with a
    /// NOTIFY after the commit, in its own statement (a NOTIFY inside the
    /// transaction holds a cluster-wide lock across the commit's flush and
    /// serializes every writer behind it). At most one NOTIFY is in flight,
    /// at most one per `NOTIFY_MIN_INTERVAL`; the commits made meanwhile
    /// share the next. Not awaited: the next group need not wait for it.
    fn wake_tailers(self: &Arc<Self>) {
        self.appended
            .send_modify(|commits| *commits = commits.wrapping_add(1));
        self.wake_pending.store(true, Ordering::SeqCst);
        if self.waking.swap(true, Ordering::SeqCst) {
            return;
        }
        let committer = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                while committer.wake_pending.swap(false, Ordering::SeqCst) {
                    if let Err(error) = sqlx::query("SELECT pg_notify($1, '')")
                        .bind(APPENDED_CHANNEL)
                        .execute(&committer.pool)
                        .await
                    {
                        tracing::debug!(%error, "append notification not sent; tailers poll");
                    }
                    tokio::time::sleep(NOTIFY_MIN_INTERVAL).await;
                }
                committer.waking.store(false, Ordering::SeqCst);
                // A commit that came between the last swap and the store above
                // found `waking` still set: take its wake-up here.
                if !committer.wake_pending.load(Ordering::SeqCst)
                    || committer.waking.swap(true, Ordering::SeqCst)
                {
                    return;
                }
            }
        });
    }
}

/// Gives the running slot back when a committer task ends abnormally.
struct RunningGuard<'a>(Option<&'a GroupCommitter>);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        if let Some(committer) = self.0.take() {
            committer.lock().running -= 1;
        }
    }
}

fn into_sqlx(error: EventStoreError) -> sqlx::Error {
    match error {
        EventStoreError::Database(e) => e,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(e) => e.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn is_transient(error: &sqlx::Error) -> bool {
    matches!(sqlstate(error).as_deref(), Some("40P01") | Some("40001"))
}

/// Refusals of the data itself (class 22, or a constraint of class 23), as
/// opposed to a server or connection failure.
fn is_data_error(error: &sqlx::Error) -> bool {
    sqlstate(error).is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
}

/// The group's one failure, for each of its appends (`sqlx::Error` is not
/// `Clone`); pool exhaustion keeps its kind, so it can be answered as such.
fn copy_error(error: &sqlx::Error) -> EventStoreError {
    EventStoreError::Database(match error {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(other.to_string()),
    })
}

/// Writes a group with one call of `event_store.append_group` (see its
/// migration), then stores the responses of the keyed appends. Without
/// idempotency keys the call may run on its own, in autocommit: the group is
/// then one round trip.
pub(crate) async fn write_group(
    conn: &mut PgConnection,
    entries: &[Entry],
) -> Result<Vec<EntryResult>, EventStoreError> {
    // Twins within the group (a key carried twice) are decided here and not
    // written: the first carrier of a key writes it.
    let mut owners: HashMap<&str, usize> = HashMap::new();
    let mut twins: Vec<Option<EntryResult>> = vec![None; entries.len()];
    for (index, entry) in entries.iter().enumerate() {
        let Some(key) = &entry.idempotency else {
            continue;
        };
        match owners.get(key.key.as_str()) {
            Some(&first) => {
                let same = entries[first].idempotency.as_ref().map(|k| &k.fingerprint)
                    == Some(&key.fingerprint);
                twins[index] = Some(if same {
                    EntryResult::KeyAlreadyUsed
                } else {
                    EntryResult::KeyReused
                });
            }
            None => {
                owners.insert(key.key.as_str(), index);
            }
        }
    }
    let written: Vec<usize> = (0..entries.len()).filter(|&i| twins[i].is_none()).collect();
    let group = GroupArrays::new(written.iter().map(|&i| &entries[i]));

    let rows = sqlx::query(
        "SELECT entry, outcome, conflict_append, actual_version, last_position, \
                token_epoch, token_transaction_id, token_position \
         FROM event_store.append_group($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&group.entry_keys)
    .bind(&group.entry_fingerprints)
    .bind(&group.entry_metadata)
    .bind(&group.entry_appends)
    .bind(&group.append_stream)
    .bind(&group.append_expected)
    .bind(&group.append_events)
    .bind(&group.stream_ids)
    .bind(&group.stream_types)
    .bind(&group.stream_starts)
    .bind(&group.event_append)
    .bind(&group.event_ids)
    .bind(&group.event_types)
    .bind(&group.event_schema_versions)
    .bind(&group.event_payloads)
    .bind(&group.event_versions)
    .fetch_all(&mut *conn)
    .await?;

    let mut results: Vec<Option<EntryResult>> = twins;
    let mut answered_keys: Vec<&str> = Vec::new();
    let mut answers: Vec<serde_json::Value> = Vec::new();
    for row in rows {
        let position: i32 = row.try_get("entry")?;
        let index = written[position as usize - 1];
        let entry = &entries[index];
        let outcome: String = row.try_get("outcome")?;
        results[index] = Some(match outcome.as_str() {
            "appended" => {
                let receipt = AppendReceipt {
                    versions: entry
                        .appends
                        .iter()
                        .map(|a| {
                            (
                                a.stream_id.clone(),
                                a.expected_version + a.events.len() as i64,
                            )
                        })
                        .collect(),
                    last_position: row.try_get("last_position")?,
                    token: ConsistencyToken::new(GlobalCheckpoint {
                        epoch: row.try_get("token_epoch")?,
                        transaction_id: row.try_get("token_transaction_id")?,
                        position: row.try_get("token_position")?,
                    }),
                };
                let response = (entry.respond)(&receipt);
                if let Some(key) = &entry.idempotency {
                    answered_keys.push(&key.key);
                    answers.push(response.clone());
                }
                EntryResult::Appended { receipt, response }
            }
            "conflict" => {
                let failed: i32 = row.try_get("conflict_append")?;
                let append = group.appends[failed as usize - 1];
                EntryResult::Conflict(Conflict {
                    stream_id: append.stream_id.clone(),
                    expected: append.expected_version,
                    actual: row.try_get("actual_version")?,
                })
            }
            "key_taken" => EntryResult::KeyAlreadyUsed,
            other => {
                return Err(EventStoreError::Database(sqlx::Error::Protocol(format!(
                    "append_group answered an unknown outcome {other:?}"
                ))))
            }
        });
    }
    if !answered_keys.is_empty() {
        sqlx::query(
            "UPDATE event_store.idempotency_keys k SET response = u.r \
             FROM UNNEST($1::text[], $2::jsonb[]) AS u(key, r) WHERE k.idempotency_key = u.key",
        )
        .bind(&answered_keys)
        .bind(&answers)
        .execute(&mut *conn)
        .await?;
    }

    // Twins take the outcome of their key's first carrier.
    let mut resolved: Vec<EntryResult> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let result = results[index].take().ok_or_else(|| {
            EventStoreError::Database(sqlx::Error::Protocol(
                "append_group left an append undecided".into(),
            ))
        })?;
        let twin_of = entry
            .idempotency
            .as_ref()
            .and_then(|k| owners.get(k.key.as_str()))
            .filter(|&&owner| owner != index);
        resolved.push(match (twin_of, result) {
            (Some(&owner), EntryResult::KeyAlreadyUsed) => {
                EntryResult::SameRequestAs(Box::new(resolved[owner].clone()))
            }
            (_, result) => result,
        });
    }
    Ok(resolved)
}

/// A group flattened into the arrays `event_store.append_group` takes: one
/// element per entry, per stream append, per distinct stream and per event.
struct GroupArrays<'a> {
    entry_keys: Vec<Option<&'a str>>,
    entry_fingerprints: Vec<Option<&'a str>>,
    entry_metadata: Vec<&'a serde_json::Value>,
    entry_appends: Vec<i32>,
    appends: Vec<&'a StreamAppend>,
    append_stream: Vec<i32>,
    append_expected: Vec<i64>,
    append_events: Vec<i32>,
    stream_ids: Vec<&'a str>,
    stream_types: Vec<&'a str>,
    stream_starts: Vec<bool>,
    event_append: Vec<i32>,
    event_ids: Vec<Uuid>,
    event_types: Vec<&'a str>,
    event_schema_versions: Vec<i32>,
    event_payloads: Vec<&'a serde_json::Value>,
    event_versions: Vec<i64>,
}

impl<'a> GroupArrays<'a> {
    fn new(entries: impl Iterator<Item = &'a Entry> + Clone) -> Self {
        // Streams sorted, so that the placeholders and locks of every group
        // are taken in one order.
        let mut streams: Vec<(&str, &str)> = entries
            .clone()
            .flat_map(|e| &e.appends)
            .map(|a| (a.stream_id.as_str(), a.aggregate_type.as_str()))
            .collect();
        streams.sort_unstable_by(|a, b| a.0.cmp(b.0));
        streams.dedup_by(|a, b| a.0 == b.0);
        let index_of: HashMap<&str, usize> =
            streams.iter().enumerate().map(|(i, s)| (s.0, i)).collect();
        let mut group = Self {
            entry_keys: Vec::new(),
            entry_fingerprints: Vec::new(),
            entry_metadata: Vec::new(),
            entry_appends: Vec::new(),
            appends: Vec::new(),
            append_stream: Vec::new(),
            append_expected: Vec::new(),
            append_events: Vec::new(),
            stream_ids: streams.iter().map(|s| s.0).collect(),
            stream_types: streams.iter().map(|s| s.1).collect(),
            stream_starts: vec![false; streams.len()],
            event_append: Vec::new(),
            event_ids: Vec::new(),
            event_types: Vec::new(),
            event_schema_versions: Vec::new(),
            event_payloads: Vec::new(),
            event_versions: Vec::new(),
        };
        for entry in entries {
            group
                .entry_keys
                .push(entry.idempotency.as_ref().map(|k| k.key.as_str()));
            group
                .entry_fingerprints
                .push(entry.idempotency.as_ref().map(|k| k.fingerprint.as_str()));
            group.entry_metadata.push(&entry.metadata);
            group.entry_appends.push(entry.appends.len() as i32);
            for append in &entry.appends {
                let stream = index_of[append.stream_id.as_str()];
                if append.expected_version == 0 && !append.events.is_empty() {
                    group.stream_starts[stream] = true;
                }
                group.appends.push(append);
                group.append_stream.push(stream as i32 + 1);
                group.append_expected.push(append.expected_version);
                group.append_events.push(append.events.len() as i32);
                let append_number = group.appends.len() as i32;
                for (offset, event) in append.events.iter().enumerate() {
                    group.event_append.push(append_number);
                    group.event_ids.push(event.event_id);
                    group.event_types.push(&event.event_type);
                    group.event_schema_versions.push(event.schema_version);
                    group.event_payloads.push(&event.payload);
                    group
                        .event_versions
                        .push(append.expected_version + offset as i64 + 1);
                }
            }
        }
        group
    }
}
