//! One projection's worker: its Kafka consumer group, the batch loop, the
//! retry while the store is down, the offset commit after the store accepted,
//! and the rebuild from the event store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use infrastructure::consistency::{record_applied, PartitionOffsets};
use infrastructure::event_store::{GlobalCheckpoint, PgEventStore, RecordedEvent};
use infrastructure::kafka::{base_config, ensure_topics};
use infrastructure::relay::error_chain;
use infrastructure::settings::{KafkaSettings, ProjectorSettings};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use super::batch::{gather, Gathered};
use super::{DeadLetter, DeadLetters, Projection, ProjectionError};

const REPLAY_BATCH: i64 = 500;

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub batch_size: usize,
    /// How long a batch waits for more messages once it has one.
    pub batch_wait: Duration,
    /// How long `run_once` waits for a first message before returning empty.
    pub poll_wait: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How often the store is checked for lost data.
    pub intact_check_every: Duration,
}

impl WorkerOptions {
    pub fn from_settings(settings: &ProjectorSettings) -> Self {
        Self {
            batch_size: settings.batch_size,
            batch_wait: Duration::from_millis(settings.batch_wait_ms),
            poll_wait: Duration::from_secs(1),
            retry_initial: Duration::from_millis(settings.retry_initial_ms),
            retry_max: Duration::from_millis(settings.retry_max_ms),
            intact_check_every: Duration::from_secs(5),
        }
    }
}

/// Counters a health endpoint reports.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub batches: AtomicU64,
    pub events: AtomicU64,
    pub dead_letters: AtomicU64,
    pub retries: AtomicU64,
    pub rebuilds: AtomicU64,
    /// Partitions this worker held after its last step.
    pub assigned_partitions: AtomicU64,
    /// When the worker last finished a step (ms since the Unix epoch); 0
    /// until its first.
    pub last_step_unix_ms: AtomicU64,
    /// When the worker started, for the time before its first step.
    pub started_unix_ms: AtomicU64,
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl WorkerStats {
    fn new() -> Self {
        let stats = Self::default();
        stats
            .started_unix_ms
            .store(now_unix_ms(), Ordering::Relaxed);
        stats
    }

    fn step_finished(&self) {
        self.last_step_unix_ms
            .store(now_unix_ms(), Ordering::Relaxed);
    }

    /// Since the last finished step, or since the start before the first.
    pub fn since_last_step(&self) -> Duration {
        let last = match self.last_step_unix_ms.load(Ordering::Relaxed) {
            0 => self.started_unix_ms.load(Ordering::Relaxed),
            at => at,
        };
        Duration::from_millis(now_unix_ms().saturating_sub(last))
    }
}

pub struct Worker {
    projection: Arc<dyn Projection>,
    consumer: StreamConsumer,
    store: PgEventStore,
    dead_letters: DeadLetters,
    options: WorkerOptions,
    last_intact_check: Option<Instant>,
    stats: Arc<WorkerStats>,
}

impl Worker {
    /// Joins the projection's consumer group (`{group_prefix}.{name}`) on the
    /// topics of its aggregate types, creating them first when configured to.
    pub async fn new(
        projection: Arc<dyn Projection>,
        kafka: &KafkaSettings,
        store: PgEventStore,
        options: WorkerOptions,
    ) -> anyhow::Result<Self> {
        if kafka.create_topics {
            ensure_topics(kafka, projection.aggregate_types()).await?;
        }
        let consumer: StreamConsumer = base_config(kafka)
            .set("group.id", kafka.group_for(projection.name()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            .create()?;
        let topics: Vec<String> = projection
            .aggregate_types()
            .iter()
            .map(|t| kafka.topic_for(t))
            .collect();
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topic_refs)?;
        let dead_letters = DeadLetters::new(store.pool().clone());
        Ok(Self {
            projection,
            consumer,
            store,
            dead_letters,
            options,
            last_intact_check: None,
            stats: Arc::new(WorkerStats::new()),
        })
    }

    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    pub fn projection_name(&self) -> &'static str {
        self.projection.name()
    }

    /// One step: checks the store for lost data when due, then takes one batch
    /// from Kafka, applies it (retrying while the store is down), records its
    /// dead letters and commits its offsets. Returns the number of messages.
    pub async fn run_once(&mut self) -> anyhow::Result<usize> {
        self.rebuild_if_lost().await?;
        let Gathered { messages, error } = self.next_batch().await;
        if let Ok(assignment) = self.consumer.assignment() {
            self.stats
                .assigned_partitions
                .store(assignment.count() as u64, Ordering::Relaxed);
        }
        if let Some(error) = error {
            if messages.is_empty() {
                return Err(error.into());
            }
            // What was received is applied and committed below; the error
            // comes back with the next receive if it lasts.
            tracing::warn!(
                projection = self.projection.name(),
                %error,
                received = messages.len(),
                "kafka error ended the batch early"
            );
        }
        if messages.is_empty() {
            self.stats.step_finished();
            return Ok(0);
        }
        let mut events = Vec::with_capacity(messages.len());
        let mut letters = Vec::new();
        for message in &messages {
            match decode(message) {
                Ok(event) => events.push(event),
                Err(letter) => letters.push(*letter),
            }
        }
        letters.extend(self.apply_until_accepted(&events).await);
        self.record_dead_letters(&letters).await;
        let next = next_offsets(&messages);
        // Before Kafka is told, so that a reader waiting on a token is never
        // told more than the store holds (see `infrastructure::consistency`).
        record_applied(self.store.pool(), self.projection.name(), &next).await?;
        self.commit(next)?;
        self.stats.step_finished();
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .events
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        tracing::debug!(
            projection = self.projection.name(),
            count = messages.len(),
            "batch projected"
        );
        Ok(messages.len())
    }

    /// Runs batches until `shutdown` resolves. A step that fails outright
    /// (Kafka unreachable) is retried after a pause; nothing is skipped.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = self.options.retry_initial;
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                result = self.run_once() => match result {
                    Ok(_) => backoff = self.options.retry_initial,
                    Err(error) => {
                        tracing::warn!(projection = self.projection.name(), error = %error_chain(error.as_ref()), "projector step failed");
                        tokio::select! {
                            _ = &mut shutdown => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(self.options.retry_max);
                    }
                }
            }
        }
    }

    async fn next_batch(&self) -> Gathered<OwnedMessage> {
        let mut stream = self
            .consumer
            .stream()
            .map(|received| received.map(|message| message.detach()));
        gather(
            &mut stream,
            self.options.poll_wait,
            self.options.batch_wait,
            self.options.batch_size,
        )
        .await
    }

    /// Applies until the store accepts: a store that is down delays the batch,
    /// never skips it.
    async fn apply_until_accepted(&self, events: &[RecordedEvent]) -> Vec<DeadLetter> {
        let mut backoff = self.options.retry_initial;
        loop {
            match self.projection.apply(events).await {
                Ok(letters) => return letters,
                Err(ProjectionError::Lost) => {
                    tracing::warn!(
                        projection = self.projection.name(),
                        "read model lost mid-batch, rebuilding"
                    );
                    if let Err(error) = self.rebuild().await {
                        tracing::warn!(projection = self.projection.name(), error = %error_chain(error.as_ref()), "rebuild failed, retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.options.retry_max);
                    }
                }
                Err(ProjectionError::Unavailable(error)) => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        projection = self.projection.name(),
                        error = %error_chain(error.as_ref()),
                        retry_in_ms = backoff.as_millis() as u64,
                        "store unavailable, retrying batch"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.options.retry_max);
                }
            }
        }
    }

    async fn record_dead_letters(&self, letters: &[DeadLetter]) {
        if letters.is_empty() {
            return;
        }
        let mut backoff = self.options.retry_initial;
        while let Err(error) = self
            .dead_letters
            .record(self.projection.name(), letters)
            .await
        {
            tracing::warn!(projection = self.projection.name(), %error, "dead letters not recorded yet, retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.options.retry_max);
        }
        self.stats
            .dead_letters
            .fetch_add(letters.len() as u64, Ordering::Relaxed);
    }

    fn commit(&self, next: PartitionOffsets) -> anyhow::Result<()> {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            list.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        }
        // Asynchronous: a synchronous commit blocks a runtime thread for the
        // broker's round trip. A commit lost in a crash only redelivers
        // events the store has already applied, which change nothing.
        self.consumer.commit(&list, CommitMode::Async)?;
        Ok(())
    }

    async fn rebuild_if_lost(&mut self) -> anyhow::Result<()> {
        let due = self
            .last_intact_check
            .is_none_or(|at| at.elapsed() >= self.options.intact_check_every);
        if !due {
            return Ok(());
        }
        match self.projection.is_intact().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    projection = self.projection.name(),
                    "read model lost its data, rebuilding"
                );
                self.rebuild().await?;
            }
            Err(error) => {
                // The store is down; the batch's own retry will wait for it.
                tracing::warn!(projection = self.projection.name(), %error, "cannot check read model");
                return Ok(());
            }
        }
        self.last_intact_check = Some(Instant::now());
        Ok(())
    }

    /// Empties the read model and replays the whole event history into it.
    pub async fn rebuild(&self) -> anyhow::Result<u64> {
        let count = rebuild(
            self.projection.as_ref(),
            &self.store,
            &self.dead_letters,
            &self.options,
        )
        .await?;
        self.stats.rebuilds.fetch_add(1, Ordering::Relaxed);
        Ok(count)
    }
}

/// Rebuilds `projection` from the event store: reset, then every event of its
/// aggregate types in log order, then marked complete. Events committed after
/// the replay's end arrive through Kafka as usual; those replayed and also
/// delivered by Kafka are no-ops.
pub async fn rebuild(
    projection: &dyn Projection,
    store: &PgEventStore,
    dead_letters: &DeadLetters,
    options: &WorkerOptions,
) -> anyhow::Result<u64> {
    projection.reset().await?;
    let types: Vec<String> = projection
        .aggregate_types()
        .iter()
        .map(|t| t.to_string())
        .collect();
    let mut checkpoint = GlobalCheckpoint::default();
    let mut count = 0u64;
    loop {
        let batch = store
            .read_after(checkpoint, REPLAY_BATCH, Some(&types))
            .await?;
        let Some(last) = batch.last() else { break };
        checkpoint = last.checkpoint();
        let mut backoff = options.retry_initial;
        let letters = loop {
            match projection.apply(&batch).await {
                Ok(letters) => break letters,
                Err(ProjectionError::Lost) => {
                    anyhow::bail!("read model lost again during its rebuild")
                }
                Err(ProjectionError::Unavailable(error)) => {
                    tracing::warn!(projection = projection.name(), error = %error_chain(error.as_ref()), "store unavailable during rebuild, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(options.retry_max);
                }
            }
        };
        dead_letters.record(projection.name(), &letters).await?;
        count += batch.len() as u64;
    }
    projection.mark_rebuilt().await?;
    tracing::info!(
        projection = projection.name(),
        events = count,
        "read model rebuilt"
    );
    Ok(count)
}

/// The offset after the last message of each partition in `messages`.
fn next_offsets(messages: &[OwnedMessage]) -> PartitionOffsets {
    let mut next = PartitionOffsets::new();
    for message in messages {
        let entry = next
            .entry((message.topic().to_owned(), message.partition()))
            .or_default();
        *entry = (*entry).max(message.offset() + 1);
    }
    next
}

fn decode(message: &OwnedMessage) -> Result<RecordedEvent, Box<DeadLetter>> {
    let source = format!(
        "kafka:{}/{}@{}",
        message.topic(),
        message.partition(),
        message.offset()
    );
    let raw = message.payload().unwrap_or_default();
    serde_json::from_slice::<RecordedEvent>(raw).map_err(|error| {
        Box::new(DeadLetter {
            event_id: None,
            aggregate_type: None,
            aggregate_id: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            version: None,
            source,
            reason: format!("undecodable message: {error}"),
            raw_message: String::from_utf8_lossy(raw).into_owned(),
        })
    })
}
