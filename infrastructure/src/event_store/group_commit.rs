//! Group commit: appends that arrive while a commit is under way wait for it
//! and then share one transaction, so that they share one disk flush, as
//! single-writer event stores do. Each append keeps its own expected-version
//! checks, its own idempotency key and its own outcome: a conflict in one
//! leaves the others of its group untouched. The whole group is written with a
//! fixed number of set-based statements, whatever its size.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Row};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::postgres::{log_head, APPENDED_CHANNEL};
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
}

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
        })
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

    async fn commit(&self, group: Vec<Waiting>) {
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
            // Not awaited: the next group need not wait for tailers' wake-up.
            tokio::spawn(notify(self.pool.clone()));
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

/// Wakes tailers. Sent after the commit, in its own statement: a NOTIFY
/// inside the transaction holds a cluster-wide lock across the commit's flush
/// and serializes every writer behind it.
async fn notify(pool: PgPool) {
    if let Err(error) = sqlx::query("SELECT pg_notify($1, '')")
        .bind(APPENDED_CHANNEL)
        .execute(&pool)
        .await
    {
        tracing::debug!(%error, "append notification not sent; tailers poll");
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

/// Writes every entry of a group inside the caller's transaction.
pub(crate) async fn write_group(
    conn: &mut PgConnection,
    entries: &[Entry],
) -> Result<Vec<EntryResult>, EventStoreError> {
    let mut results: Vec<Option<EntryResult>> = vec![None; entries.len()];

    // 1. Idempotency keys, taken first: a concurrent twin waits on our row,
    //    then finds our answer instead of racing our appends.
    let mut owners: HashMap<&str, usize> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let Some(key) = &entry.idempotency else {
            continue;
        };
        if let Some(&first) = owners.get(key.key.as_str()) {
            let same = entries[first].idempotency.as_ref().map(|k| &k.fingerprint)
                == Some(&key.fingerprint);
            // Resolved once the first is; marked so it is not written.
            results[index] = Some(if same {
                EntryResult::KeyAlreadyUsed
            } else {
                EntryResult::KeyReused
            });
        } else {
            owners.insert(key.key.as_str(), index);
        }
    }
    if !owners.is_empty() {
        let mut keyed: Vec<(&str, &str)> = owners
            .keys()
            .map(|k| {
                let entry = &entries[owners[k]];
                (
                    *k,
                    entry
                        .idempotency
                        .as_ref()
                        .expect("keyed")
                        .fingerprint
                        .as_str(),
                )
            })
            .collect();
        keyed.sort_unstable();
        let (keys, fingerprints): (Vec<&str>, Vec<&str>) = keyed.into_iter().unzip();
        let taken: Vec<String> = sqlx::query_scalar(
            "INSERT INTO event_store.idempotency_keys (idempotency_key, request_fingerprint, response) \
             SELECT k, f, 'null'::jsonb FROM UNNEST($1::text[], $2::text[]) AS t(k, f) ORDER BY k \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
        )
        .bind(&keys)
        .bind(&fingerprints)
        .fetch_all(&mut *conn)
        .await?;
        let taken: HashSet<String> = taken.into_iter().collect();
        for (key, &index) in &owners {
            if !taken.contains(*key) {
                results[index] = Some(EntryResult::KeyAlreadyUsed);
            }
        }
    }

    // 2. Stream rows: placeholders for streams this group starts, then every
    //    stream of the group locked in one order.
    let mut kinds_of: HashMap<&str, &str> = HashMap::new();
    let mut starting: HashSet<&str> = HashSet::new();
    for (index, entry) in entries.iter().enumerate() {
        if results[index].is_some() {
            continue;
        }
        for append in &entry.appends {
            kinds_of.insert(&append.stream_id, &append.aggregate_type);
            if append.expected_version == 0 && !append.events.is_empty() {
                starting.insert(&append.stream_id);
            }
        }
    }
    let mut starting: Vec<(&str, &str)> =
        starting.into_iter().map(|id| (id, kinds_of[id])).collect();
    starting.sort_unstable();
    let mut placeholders: HashSet<String> = HashSet::new();
    if !starting.is_empty() {
        let (ids, kinds): (Vec<&str>, Vec<&str>) = starting.into_iter().unzip();
        let created: Vec<String> = sqlx::query_scalar(
            "INSERT INTO event_store.streams (stream_id, aggregate_type, version) \
             SELECT s, t, 0 FROM UNNEST($1::text[], $2::text[]) AS u(s, t) ORDER BY s \
             ON CONFLICT (stream_id) DO NOTHING RETURNING stream_id",
        )
        .bind(&ids)
        .bind(&kinds)
        .fetch_all(&mut *conn)
        .await?;
        placeholders.extend(created);
    }
    let mut stream_ids: Vec<&str> = kinds_of.keys().copied().collect();
    stream_ids.sort_unstable();
    let mut versions: HashMap<String, i64> = HashMap::with_capacity(stream_ids.len());
    if !stream_ids.is_empty() {
        let rows = sqlx::query(
            "SELECT stream_id, version FROM event_store.streams WHERE stream_id = ANY($1) \
             ORDER BY stream_id FOR UPDATE",
        )
        .bind(&stream_ids)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            versions.insert(row.try_get("stream_id")?, row.try_get("version")?);
        }
    }
    let started_with: HashMap<String, i64> = versions.clone();

    // 3. Decide each entry in order against the versions the group has
    //    reached so far: a later append may extend an earlier one's stream.
    struct Planned<'a> {
        entry: usize,
        append: &'a StreamAppend,
    }
    let mut planned: Vec<Planned> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if results[index].is_some() {
            continue;
        }
        let conflict = entry.appends.iter().find_map(|append| {
            let actual = versions.get(&append.stream_id).copied().unwrap_or(0);
            (actual != append.expected_version).then(|| Conflict {
                stream_id: append.stream_id.clone(),
                expected: append.expected_version,
                actual,
            })
        });
        if let Some(conflict) = conflict {
            results[index] = Some(EntryResult::Conflict(conflict));
            continue;
        }
        for append in &entry.appends {
            if !append.events.is_empty() {
                versions.insert(
                    append.stream_id.clone(),
                    append.expected_version + append.events.len() as i64,
                );
                planned.push(Planned {
                    entry: index,
                    append,
                });
            }
        }
    }

    // 4. Streams to their new versions; placeholders nobody wrote go again.
    let mut moved: Vec<(&str, i64)> = versions
        .iter()
        .filter(|(id, v)| started_with.get(*id) != Some(v) && **v > 0)
        .map(|(id, v)| (id.as_str(), *v))
        .collect();
    moved.sort_unstable();
    if !moved.is_empty() {
        let (ids, new_versions): (Vec<&str>, Vec<i64>) = moved.into_iter().unzip();
        sqlx::query(
            "UPDATE event_store.streams s SET version = u.v, updated_at = now() \
             FROM UNNEST($1::text[], $2::bigint[]) AS u(id, v) WHERE s.stream_id = u.id",
        )
        .bind(&ids)
        .bind(&new_versions)
        .execute(&mut *conn)
        .await?;
    }
    let unused: Vec<&str> = placeholders
        .iter()
        .filter(|id| versions.get(id.as_str()).copied().unwrap_or(0) == 0)
        .map(String::as_str)
        .collect();
    if !unused.is_empty() {
        sqlx::query("DELETE FROM event_store.streams WHERE stream_id = ANY($1) AND version = 0")
            .bind(&unused)
            .execute(&mut *conn)
            .await?;
    }

    // 5. Every event of the group in one insert, in entry order, so that each
    //    entry's events are contiguous and each stream's are in version order.
    let mut receipts: Vec<AppendReceipt> = entries
        .iter()
        .map(|_| AppendReceipt {
            versions: Vec::new(),
            last_position: 0,
            token: ConsistencyToken::default(),
        })
        .collect();
    let mut place: Option<(i64, i64)> = None;
    if !planned.is_empty() {
        let count: usize = planned.iter().map(|p| p.append.events.len()).sum();
        let mut event_ids: Vec<Uuid> = Vec::with_capacity(count);
        let mut kinds: Vec<&str> = Vec::with_capacity(count);
        let mut streams: Vec<&str> = Vec::with_capacity(count);
        let mut event_versions: Vec<i64> = Vec::with_capacity(count);
        let mut types: Vec<&str> = Vec::with_capacity(count);
        let mut schema_versions: Vec<i32> = Vec::with_capacity(count);
        let mut payloads: Vec<&serde_json::Value> = Vec::with_capacity(count);
        let mut metadata: Vec<&serde_json::Value> = Vec::with_capacity(count);
        for p in &planned {
            for (offset, event) in p.append.events.iter().enumerate() {
                event_ids.push(event.event_id);
                kinds.push(&p.append.aggregate_type);
                streams.push(&p.append.stream_id);
                event_versions.push(p.append.expected_version + offset as i64 + 1);
                types.push(&event.event_type);
                schema_versions.push(event.schema_version);
                payloads.push(&event.payload);
                metadata.push(&entries[p.entry].metadata);
            }
        }
        let rows = sqlx::query(
            "INSERT INTO event_store.events \
               (epoch, event_id, aggregate_type, aggregate_id, version, event_type, schema_version, payload, metadata) \
             SELECT (SELECT event_store.writing_epoch()), e.event_id, e.aggregate_type, e.aggregate_id, e.version, \
                    e.event_type, e.schema_version, e.payload, e.metadata \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::int[], $7::jsonb[], $8::jsonb[]) \
               WITH ORDINALITY AS e(event_id, aggregate_type, aggregate_id, version, event_type, schema_version, payload, metadata, n) \
             ORDER BY e.n \
             RETURNING position, aggregate_id, version, epoch, transaction_id::text::bigint AS transaction_id",
        )
        .bind(&event_ids)
        .bind(&kinds)
        .bind(&streams)
        .bind(&event_versions)
        .bind(&types)
        .bind(&schema_versions)
        .bind(&payloads)
        .bind(&metadata)
        .fetch_all(&mut *conn)
        .await?;
        let mut positions: HashMap<(String, i64), i64> = HashMap::with_capacity(rows.len());
        for row in &rows {
            positions.insert(
                (row.try_get("aggregate_id")?, row.try_get("version")?),
                row.try_get("position")?,
            );
            place = Some((row.try_get("epoch")?, row.try_get("transaction_id")?));
        }
        let (epoch, transaction_id) = place.expect("rows were inserted");
        for p in &planned {
            let last = positions[&(
                p.append.stream_id.clone(),
                p.append.expected_version + p.append.events.len() as i64,
            )];
            let receipt = &mut receipts[p.entry];
            receipt.last_position = receipt.last_position.max(last);
            receipt.token = ConsistencyToken::new(GlobalCheckpoint {
                epoch,
                transaction_id,
                position: receipt.last_position,
            });
        }
    }

    // 6. Receipts, responses, and the answers stored with the keys.
    let mut head: Option<ConsistencyToken> = None;
    let mut answered_keys: Vec<&str> = Vec::new();
    let mut answers: Vec<serde_json::Value> = Vec::new();
    let mut released_keys: Vec<&str> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        match &results[index] {
            None => {
                let receipt = &mut receipts[index];
                receipt.versions = entry
                    .appends
                    .iter()
                    .map(|a| {
                        (
                            a.stream_id.clone(),
                            a.expected_version + a.events.len() as i64,
                        )
                    })
                    .collect();
                if receipt.last_position == 0 {
                    // Nothing appended: a reader is consistent with this
                    // command once it has read what the command could see.
                    if head.is_none() {
                        head = Some(log_head(&mut *conn).await?);
                    }
                    receipt.token = head.expect("just read");
                }
                let response = (entry.respond)(receipt);
                if let Some(key) = &entry.idempotency {
                    answered_keys.push(&key.key);
                    answers.push(response.clone());
                }
                results[index] = Some(EntryResult::Appended {
                    receipt: receipt.clone(),
                    response,
                });
            }
            Some(EntryResult::Conflict(_)) => {
                // The key goes back, so that the client's retry can use it.
                if let Some(key) = &entry.idempotency {
                    if owners.get(key.key.as_str()) == Some(&index) {
                        released_keys.push(&key.key);
                    }
                }
            }
            Some(_) => {}
        }
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
    if !released_keys.is_empty() {
        sqlx::query("DELETE FROM event_store.idempotency_keys WHERE idempotency_key = ANY($1)")
            .bind(&released_keys)
            .execute(&mut *conn)
            .await?;
    }

    // Twins within the group take the first one's outcome.
    let mut resolved: Vec<EntryResult> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let result = results[index].take().expect("every entry decided");
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
