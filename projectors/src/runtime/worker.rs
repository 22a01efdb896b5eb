//! One projection's worker: its Kafka consumer group, the batch loop, the
//! offset commit after the store accepted, and the rebuild from the event
//! store. How a batch is retried and a poison event isolated is `apply`'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use infrastructure::consistency::{record_applied, PartitionOffsets};
use infrastructure::database::{names_a_missing_relation, reinstall_read_model_if_dropped};
use infrastructure::event_store::{PgEventStore, RecordedEvent};
use infrastructure::kafka::{base_config, ensure_topics};
use infrastructure::relay::error_chain;
use infrastructure::settings::{KafkaSettings, ProjectorSettings};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use super::apply::{Applier, Frozen, Lost, Wait};
use super::batch::{gather, Gathered};
pub use super::rebuild::{rebuild, rebuild_beside_live, rebuild_if_still_needed};
use super::rebuild::{rebuild_unfinished, RebuildInProgress};
use super::{BatchGuard, DeadLetter, DeadLetters, Projection};

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
    /// Attempts a batch gets while the store refuses it (and answers its
    /// probe) before the refused event is isolated and dead-lettered.
    pub poison_attempts: u32,
    /// The consumer's `session.timeout.ms`.
    pub session_timeout: Duration,
    /// The consumer's `max.poll.interval.ms`: a worker that polls less often
    /// leaves its group.
    pub max_poll_interval: Duration,
    /// How long a shutdown waits for the batch in hand to be applied and
    /// committed before it drops it (to be redelivered).
    pub shutdown_grace: Duration,
    /// Events read from the event store per batch of a rebuild.
    pub replay_batch_size: usize,
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
            poison_attempts: settings.poison_attempts,
            session_timeout: Duration::from_millis(settings.session_timeout_ms),
            max_poll_interval: Duration::from_millis(settings.max_poll_interval_ms),
            shutdown_grace: Duration::from_millis(settings.shutdown_grace_ms),
            replay_batch_size: settings.replay_batch_size.max(1),
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
    /// Partitions assigned to, and revoked from, this worker's consumer.
    pub partitions_assigned: AtomicU64,
    pub partitions_revoked: AtomicU64,
    /// Messages on the assigned partitions not applied yet, after the last
    /// step.
    pub events_behind: AtomicU64,
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl WorkerStats {
    pub fn new() -> Self {
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

/// Counts the consumer's rebalances, for `/health`, `/metrics` and the tests
/// that check a worker keeps its partitions while it retries.
pub struct WorkerContext {
    projection: &'static str,
    stats: Arc<WorkerStats>,
}

impl ClientContext for WorkerContext {}

impl ConsumerContext for WorkerContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                let count = partitions.count() as u64;
                self.stats
                    .partitions_revoked
                    .fetch_add(count, Ordering::Relaxed);
                metrics::counter!("projector_partitions_revoked_total", "projection" => self.projection)
                    .increment(count);
                tracing::info!(projection = self.projection, count, "partitions revoked");
            }
            Rebalance::Assign(partitions) => {
                let count = partitions.count() as u64;
                self.stats
                    .partitions_assigned
                    .fetch_add(count, Ordering::Relaxed);
                metrics::counter!("projector_partitions_assigned_total", "projection" => self.projection)
                    .increment(count);
                tracing::info!(projection = self.projection, count, "partitions assigned");
            }
            Rebalance::Error(error) => {
                tracing::warn!(projection = self.projection, %error, "rebalance failed")
            }
        }
    }
}

pub type KafkaConsumer = StreamConsumer<WorkerContext>;

pub struct Worker {
    projection: Arc<dyn Projection>,
    consumer: KafkaConsumer,
    store: PgEventStore,
    dead_letters: DeadLetters,
    options: WorkerOptions,
    last_intact_check: Option<Instant>,
    /// The read model's generation the last batch applied to.
    generation: Option<i64>,
    stats: Arc<WorkerStats>,
    /// Messages received while a batch was retried, for the next batch.
    carried: Vec<OwnedMessage>,
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
        let stats = Arc::new(WorkerStats::new());
        let context = WorkerContext {
            projection: projection.name(),
            stats: stats.clone(),
        };
        let consumer: KafkaConsumer = base_config(kafka)
            .set("group.id", kafka.group_for(projection.name()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set(
                "session.timeout.ms",
                options.session_timeout.as_millis().to_string(),
            )
            .set(
                "max.poll.interval.ms",
                options.max_poll_interval.as_millis().to_string(),
            )
            .create_with_context(context)?;
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
            generation: None,
            stats,
            carried: Vec::new(),
        })
    }

    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    pub fn projection_name(&self) -> &'static str {
        self.projection.name()
    }

    /// One step: checks the store for lost data when due, then takes one batch
    /// from Kafka, applies it (waiting while the store is down, isolating an
    /// event it keeps refusing), records its dead letters and commits its
    /// offsets. Returns the number of messages.
    pub async fn run_once(&mut self) -> anyhow::Result<usize> {
        self.rebuild_if_lost().await?;
        let Gathered { messages, error } = self.next_batch().await;
        if let Ok(assignment) = self.consumer.assignment() {
            let count = assignment.count();
            self.stats
                .assigned_partitions
                .store(count as u64, Ordering::Relaxed);
            metrics::gauge!("projector_assigned_partitions", "projection" => self.projection.name())
                .set(count as f64);
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
            // A poll that found nothing waiting: the projection is caught up.
            metrics::gauge!("projector_lag_seconds", "projection" => self.projection.name())
                .set(0.0);
            self.record_events_behind();
            self.stats.step_finished();
            return Ok(0);
        }
        let started = Instant::now();
        let mut events = Vec::with_capacity(messages.len());
        let mut letters = Vec::new();
        for message in &messages {
            match decode(message) {
                Ok(event) => events.push(event),
                Err(letter) => letters.push(*letter),
            }
        }
        let mut frozen = self.frozen_aggregates(&events).await;
        letters.extend(self.apply_until_done(&events, &mut frozen).await);
        self.record_dead_letters(&letters).await;
        let next = next_offsets(&messages);
        // Before Kafka is told, so that a reader waiting on a token is never
        // told more than the store holds (see `infrastructure::consistency`).
        record_applied(self.store.pool(), self.projection.name(), &next).await?;
        self.commit(next)?;
        self.record_events_behind();
        self.stats.step_finished();
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .events
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let name = self.projection.name();
        let now = chrono::Utc::now();
        for event in &events {
            // From the command's commit to its effect in this read model.
            let lag = (now - event.recorded_at).to_std().unwrap_or_default();
            metrics::histogram!("projector_event_lag_seconds", "projection" => name)
                .record(lag.as_secs_f64());
        }
        if let Some(newest) = events.iter().map(|e| e.recorded_at).max() {
            let behind = (now - newest).to_std().unwrap_or_default();
            metrics::gauge!("projector_lag_seconds", "projection" => name)
                .set(behind.as_secs_f64());
        }
        metrics::counter!("projector_batches_total", "projection" => name).increment(1);
        metrics::counter!("projector_events_total", "projection" => name)
            .increment(messages.len() as u64);
        metrics::histogram!("projector_batch_size", "projection" => name)
            .record(messages.len() as f64);
        metrics::histogram!("projector_batch_duration_seconds", "projection" => name)
            .record(started.elapsed().as_secs_f64());
        tracing::debug!(projection = name, count = messages.len(), "batch projected");
        Ok(messages.len())
    }

    /// Runs batches until `shutdown` resolves, then finishes the batch in
    /// hand (within `shutdown_grace`) so that what it applied is committed.
    /// A step that fails outright (Kafka unreachable) is retried after a
    /// pause; nothing is skipped.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = self.options.retry_initial;
        let name = self.projection.name();
        loop {
            let grace = self.options.shutdown_grace;
            let result = {
                let step = self.run_once();
                tokio::pin!(step);
                tokio::select! {
                    result = &mut step => result,
                    _ = &mut shutdown => {
                        match tokio::time::timeout(grace, step).await {
                            Ok(Ok(_)) => tracing::info!(projection = name, "batch finished, worker stopped"),
                            Ok(Err(error)) => tracing::warn!(projection = name, error = %error_chain(error.as_ref()), "last step failed, worker stopped"),
                            Err(_) => tracing::warn!(projection = name, grace_ms = grace.as_millis() as u64, "batch unfinished after the shutdown grace; it will be redelivered"),
                        }
                        return;
                    }
                }
            };
            match result {
                Ok(_) => backoff = self.options.retry_initial,
                Err(error) => {
                    tracing::warn!(projection = name, error = %error_chain(error.as_ref()), "projector step failed");
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.options.retry_max);
                }
            }
        }
    }

    /// The messages carried over from a retried batch, then what arrives.
    async fn next_batch(&mut self) -> Gathered<OwnedMessage> {
        let mut messages = std::mem::take(&mut self.carried);
        let room = self
            .options
            .batch_size
            .max(1)
            .saturating_sub(messages.len());
        if room == 0 {
            return Gathered {
                messages,
                error: None,
            };
        }
        let first_wait = if messages.is_empty() {
            self.options.poll_wait
        } else {
            Duration::ZERO
        };
        let mut stream = self
            .consumer
            .stream()
            .map(|received| received.map(|message| message.detach()));
        let gathered = gather(&mut stream, first_wait, self.options.batch_wait, room).await;
        messages.extend(gathered.messages);
        Gathered {
            messages,
            error: gathered.error,
        }
    }

    /// The aggregates of `events` that already have a dead letter here. A
    /// batch is never dropped for want of this answer: it is asked again.
    async fn frozen_aggregates(&self, events: &[RecordedEvent]) -> Frozen {
        let mut backoff = self.options.retry_initial;
        loop {
            match self
                .dead_letters
                .heads(self.projection.name(), events)
                .await
            {
                Ok(frozen) => return frozen,
                Err(error) => {
                    tracing::warn!(projection = self.projection.name(), %error, "cannot read dead letters yet, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.options.retry_max);
                }
            }
        }
    }

    /// Applies until every event is in the store or dead-lettered: a store
    /// that is down delays the batch, never skips it, and a lost read model
    /// is rebuilt first.
    async fn apply_until_done(
        &mut self,
        events: &[RecordedEvent],
        frozen: &mut Frozen,
    ) -> Vec<DeadLetter> {
        let mut backoff = self.options.retry_initial;
        loop {
            let guard = match BatchGuard::enter(self.store.pool(), self.projection.name()).await {
                Ok(guard) => guard,
                Err(error) if names_a_missing_relation(&error) => {
                    // The read-model schema was dropped: reinstall it, and
                    // rebuild at once what it held, before this batch.
                    tracing::warn!(projection = self.projection.name(), %error, "read-model schema missing");
                    self.last_intact_check = None;
                    if let Err(error) = self.rebuild_if_lost().await {
                        tracing::warn!(projection = self.projection.name(), error = %error_chain(error.as_ref()), "read-model schema not reinstalled, retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.options.retry_max);
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(projection = self.projection.name(), %error, "cannot enter the batch guard, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.options.retry_max);
                    continue;
                }
            };
            if self.generation.is_some_and(|seen| seen != guard.live) {
                tracing::info!(
                    projection = self.projection.name(),
                    generation = guard.live,
                    "read model swapped to a new generation"
                );
                self.projection.generation_swapped();
            }
            self.generation = Some(guard.live);
            let mut wait = Wait::Poll {
                consumer: &self.consumer,
                carried: &mut self.carried,
                paused: false,
            };
            let applier = Applier {
                projection: self.projection.as_ref(),
                options: &self.options,
                stats: &self.stats,
            };
            let applied = applier.apply(events, frozen, &mut wait).await;
            wait.resume();
            // Before any rebuild: a rebuilder waiting to swap holds the lease
            // this worker's rebuild would wait for.
            if let Err(error) = guard.leave().await {
                tracing::warn!(projection = self.projection.name(), %error, "batch guard ended with an error");
            }
            match applied {
                Ok(letters) => return letters,
                Err(Lost) => {
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
            }
        }
    }

    /// How many messages of the assigned partitions are not applied yet:
    /// each partition's high watermark, as of the consumer's last fetch (no
    /// broker round trip), less the position of the next message the worker
    /// will apply. Partitions whose watermark is not known yet count 0.
    fn record_events_behind(&self) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let mut behind = 0i64;
        for partition in positions.elements() {
            let Offset::Offset(position) = partition.offset() else {
                continue;
            };
            if let Some(high) =
                cached_high_watermark(&self.consumer, partition.topic(), partition.partition())
            {
                behind += (high - position).max(0);
            }
        }
        self.stats
            .events_behind
            .store(behind as u64, Ordering::Relaxed);
        metrics::gauge!("projector_lag_events", "projection" => self.projection.name())
            .set(behind as f64);
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
        metrics::counter!("projector_dead_letters_total", "projection" => self.projection.name())
            .increment(letters.len() as u64);
    }

    /// Commits the offsets of the partitions this worker still holds. A
    /// partition revoked during the batch belongs to another member now,
    /// which starts from the last committed offset and applies again what
    /// this batch applied: a no-op for an idempotent projection. Committing
    /// it here could move that member's position under it.
    fn commit(&self, next: PartitionOffsets) -> anyhow::Result<()> {
        let held = self.consumer.assignment()?;
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            if held.find_partition(&topic, partition).is_none() {
                tracing::info!(
                    projection = self.projection.name(),
                    topic,
                    partition,
                    "partition revoked mid-batch, its offset is left to its new owner"
                );
                continue;
            }
            list.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        }
        if list.count() == 0 {
            return Ok(());
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
        let name = self.projection.name();
        // Every projection keeps its bookkeeping there, whatever its store.
        reinstall_read_model_if_dropped(self.store.pool()).await?;
        let intact = match self.projection.is_intact().await {
            Ok(intact) => intact,
            Err(error) => {
                // The store is down; the batch's own retry will wait for it.
                tracing::warn!(projection = name, %error, "cannot check read model");
                return Ok(());
            }
        };
        let unfinished = rebuild_unfinished(self.store.pool(), name).await?;
        if !intact || unfinished {
            tracing::warn!(
                projection = name,
                lost = !intact,
                unfinished,
                "read model incomplete, rebuilding"
            );
            let outcome = rebuild_if_still_needed(
                self.projection.as_ref(),
                &self.store,
                &self.dead_letters,
                &self.options,
                &self.stats,
            )
            .await;
            match outcome {
                Ok(Some(_)) => {
                    self.stats.rebuilds.fetch_add(1, Ordering::Relaxed);
                }
                Ok(None) => {}
                // Another process holds the lease; its rebuild is checked
                // again at the next due check.
                Err(error) if error.is::<RebuildInProgress>() => {
                    tracing::info!(projection = name, "rebuild in progress elsewhere");
                }
                Err(error) => return Err(error),
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
            &self.stats,
        )
        .await?;
        self.stats.rebuilds.fetch_add(1, Ordering::Relaxed);
        Ok(count)
    }
}

/// The offset after the last message of each partition in `messages`.
/// The partition's high watermark as librdkafka last saw it in a fetch
/// response: `rd_kafka_get_watermark_offsets`, which the `rdkafka` crate does
/// not wrap. Unlike `fetch_watermarks` it asks no broker, so it costs nothing
/// per batch.
fn cached_high_watermark(consumer: &KafkaConsumer, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer lives as long as `consumer`, the topic is a
    // NUL-terminated string that outlives the call, and librdkafka only
    // writes the two integers it is given.
    let error = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

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
