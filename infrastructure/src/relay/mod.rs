//! The transactional outbox relay: tails the event store in the order events
//! become final and produces each one to Kafka, keyed by aggregate id.
//!
//! Any number of processes may run it; exactly one publishes at a time. The
//! leader holds a PostgreSQL advisory lock on a dedicated connection, and
//! reads, checks and moves its checkpoint on that same connection, so a
//! leader whose session is gone can neither read nor save. A killed leader's
//! session ends with its socket, the lock with it, and a follower takes over
//! from the durable checkpoint. The checkpoint moves only forward, by
//! compare-and-set, and only past events the broker acknowledged: a crash or
//! an outage loses nothing, and a takeover may publish the last batch of the
//! previous term again, which every consumer tolerates. Each message names the
//! term that published it (`relay_term` header).
//!
//! `status` reads lag, leadership and stalls from the database, for any
//! process's `/health`.

pub mod status;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::message::Header;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener};
use sqlx::ConnectOptions;
use tracing::instrument;
use uuid::Uuid;

use crate::consistency::{self, latest_watermark, prune_watermarks, PartitionOffsets};
use crate::event_store::postgres::{
    advance_checkpoint, read_after, read_checkpoint, APPENDED_CHANNEL,
};
use crate::event_store::{EventStoreError, GlobalCheckpoint, PgEventStore, RecordedEvent};
use crate::kafka::{ensure_topics, event_headers, headers, producer_config};
use crate::settings::{KafkaSettings, RelaySettings};

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("reading the event store failed")]
    Store(#[from] EventStoreError),
    #[error("kafka refused or did not acknowledge event at position {position}")]
    Publish {
        position: i64,
        #[source]
        source: KafkaError,
    },
    #[error("kafka client error")]
    Kafka(#[from] KafkaError),
    #[error("the relay's database session failed")]
    Session(#[from] sqlx::Error),
    /// Another process leads; this one waits to take over.
    #[error("another relay holds the lease")]
    NotLeader,
}

/// The advisory lock of the relay named `name`, as the text PostgreSQL hashes.
/// Watermarks are pruned every this many batches, down to those younger than
/// `WATERMARK_KEEP` and the latest.
const WATERMARK_PRUNE_EVERY: u32 = 200;
const WATERMARK_KEEP: Duration = Duration::from_secs(900);

pub fn lease_name(name: &str) -> String {
    format!("event_store.relay/{name}")
}

/// The dedicated session of this process's relay: a follower's, or the
/// leader's holding the lease.
struct Session {
    connection: PgConnection,
    leader: bool,
}

pub struct OutboxRelay {
    store: PgEventStore,
    producer: FutureProducer,
    kafka: KafkaSettings,
    settings: RelaySettings,
    ensured_topics: HashSet<String>,
    session: Option<Session>,
    /// Identifies this process's current leadership term in every message.
    term: Uuid,
    last_status: Option<Instant>,
    /// The last offset published per partition, as of the term that
    /// published it; a new term reloads it from the latest watermark.
    published: Option<(Uuid, PartitionOffsets)>,
    batches_since_prune: u32,
}

impl OutboxRelay {
    pub fn new(
        store: PgEventStore,
        kafka: KafkaSettings,
        settings: RelaySettings,
    ) -> Result<Self, RelayError> {
        let producer = producer_config(&kafka).create()?;
        Ok(Self {
            store,
            producer,
            kafka,
            settings,
            ensured_topics: HashSet::new(),
            session: None,
            term: Uuid::now_v7(),
            published: None,
            batches_since_prune: 0,
            last_status: None,
        })
    }

    /// Whether this relay holds the lease now.
    pub fn is_leader(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.leader)
    }

    /// The current term, as published in the `relay_term` header.
    pub fn term(&self) -> Uuid {
        self.term
    }

    /// Takes the lease when it is free. `NotLeader` while another process
    /// holds it.
    async fn lead(&mut self) -> Result<&mut PgConnection, RelayError> {
        if self.session.is_none() {
            let options: PgConnectOptions = (*self.store.pool().connect_options()).clone();
            // A leader cut off by the network is noticed by the server within
            // seconds, and its lease freed for a follower.
            let connection = options
                .application_name(&format!(
                    "outbox relay {} pid {}",
                    self.settings.name,
                    std::process::id()
                ))
                .options([
                    ("tcp_keepalives_idle", "5"),
                    ("tcp_keepalives_interval", "2"),
                    ("tcp_keepalives_count", "3"),
                ])
                .connect()
                .await?;
            self.session = Some(Session {
                connection,
                leader: false,
            });
        }
        let session = self.session.as_mut().expect("just opened");
        if !session.leader {
            let acquired: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(lease_name(&self.settings.name))
                    .fetch_one(&mut session.connection)
                    .await?;
            if !acquired {
                metrics::gauge!("relay_is_leader").set(0.0);
                return Err(RelayError::NotLeader);
            }
            session.leader = true;
            self.term = Uuid::now_v7();
            metrics::gauge!("relay_is_leader").set(1.0);
            tracing::info!(relay = %self.settings.name, term = %self.term, "relay lease acquired, publishing");
        }
        Ok(&mut session.connection)
    }

    /// Drops the session: a leader's lease ends with it.
    fn step_down(&mut self, why: &RelayError) {
        if let Some(session) = self.session.take() {
            if session.leader {
                metrics::gauge!("relay_is_leader").set(0.0);
                tracing::warn!(relay = %self.settings.name, term = %self.term, error = %error_chain(why), "relay lease given up");
            }
        }
    }

    /// As leader, publishes the next batch after the stored checkpoint and
    /// moves the checkpoint past it once every event is acknowledged. Returns
    /// how many it published; `NotLeader` when another process leads.
    #[instrument(skip(self), fields(relay = %self.settings.name))]
    pub async fn relay_once(&mut self) -> Result<usize, RelayError> {
        match self.publish_next().await {
            Err(
                error @ (RelayError::Session(_) | RelayError::Store(EventStoreError::Database(_))),
            ) => {
                self.step_down(&error);
                Err(error)
            }
            other => other,
        }
    }

    async fn publish_next(&mut self) -> Result<usize, RelayError> {
        let name = self.settings.name.clone();
        let batch_size = self.settings.batch_size;
        let connection = self.lead().await?;
        // Read every time, so that an operator's reset is followed at once.
        let checkpoint = read_checkpoint(&mut *connection, &name).await?;
        let batch = read_after(&mut *connection, checkpoint, batch_size, None).await?;
        let Some(last) = batch.last().map(RecordedEvent::checkpoint) else {
            return Ok(0);
        };
        self.ensure_topics_for(&batch).await?;
        let delivered = match self.publish(&batch).await {
            Ok(delivered) => delivered,
            Err(error) => {
                metrics::counter!("relay_publish_errors_total").increment(1);
                self.rebuild_producer_if_fatal();
                return Err(error);
            }
        };
        let connection = self.lead().await?;
        if !advance_checkpoint(&mut *connection, &name, checkpoint, last).await? {
            tracing::warn!(relay = %name, "checkpoint moved by someone else during the batch, following it");
        }
        self.record_watermark(last, delivered).await?;
        metrics::counter!("relay_events_published_total").increment(batch.len() as u64);
        tracing::debug!(
            count = batch.len(),
            position = last.position,
            "events relayed"
        );
        Ok(batch.len())
    }

    /// Records that everything up to `last` is published, with the last
    /// offset of every partition written to (see `consistency`).
    async fn record_watermark(
        &mut self,
        last: GlobalCheckpoint,
        delivered: Vec<(String, i32, i64)>,
    ) -> Result<(), RelayError> {
        let name = self.settings.name.clone();
        self.lead().await?;
        let term = self.term;
        let mut offsets = match self.published.take() {
            Some((published_in, offsets)) if published_in == term => offsets,
            // Another leader may have published since: carry on from its
            // watermark, never from an older map, which would understate.
            _ => latest_watermark(self.lead().await?, &name).await?,
        };
        for (topic, partition, offset) in delivered {
            let last_offset = offsets.entry((topic, partition)).or_insert(offset);
            *last_offset = (*last_offset).max(offset);
        }
        self.batches_since_prune += 1;
        let prune = self.batches_since_prune >= WATERMARK_PRUNE_EVERY;
        if prune {
            self.batches_since_prune = 0;
        }
        let connection = self.lead().await?;
        consistency::record_watermark(&mut *connection, &name, last, &offsets).await?;
        if prune {
            prune_watermarks(&mut *connection, &name, WATERMARK_KEEP).await?;
        }
        self.published = Some((term, offsets));
        Ok(())
    }

    /// Publishes `batch`; answers where each message went (topic, partition,
    /// offset).
    async fn publish(
        &self,
        batch: &[RecordedEvent],
    ) -> Result<Vec<(String, i32, i64)>, RelayError> {
        let term = self.term.to_string();
        let payloads: Vec<(String, Vec<u8>)> = batch
            .iter()
            .map(|event| {
                (
                    self.kafka.topic_for(&event.aggregate_type),
                    serde_json::to_vec(event).expect("recorded events serialize"),
                )
            })
            .collect();
        let timeout = Duration::from_millis(self.kafka.message_timeout_ms);
        let deliveries = batch
            .iter()
            .zip(&payloads)
            .map(|(event, (topic, payload))| {
                let record = FutureRecord::to(topic)
                    .key(event.aggregate_id.as_str())
                    .payload(payload.as_slice())
                    .headers(event_headers(event).insert(Header {
                        key: headers::RELAY_TERM,
                        value: Some(term.as_bytes()),
                    }));
                let position = event.position;
                let send = self.producer.send(record, timeout);
                async move {
                    send.await
                        .map(|delivery| (topic.clone(), delivery.partition, delivery.offset))
                        .map_err(|(source, _)| RelayError::Publish { position, source })
                }
            });
        // Sent together, so the broker's round trip is paid once per batch;
        // the idempotent producer keeps each partition in send order.
        join_all(deliveries).await.into_iter().collect()
    }

    /// An idempotent producer that hit a fatal error refuses every send from
    /// then on; only a new one can publish again.
    fn rebuild_producer_if_fatal(&mut self) {
        let Some((code, reason)) = self.producer.client().fatal_error() else {
            return;
        };
        tracing::error!(%code, reason, "kafka producer failed fatally, rebuilding it");
        match producer_config(&self.kafka).create() {
            Ok(producer) => self.producer = producer,
            Err(error) => tracing::error!(%error, "kafka producer could not be rebuilt"),
        }
    }

    async fn ensure_topics_for(&mut self, batch: &[RecordedEvent]) -> Result<(), RelayError> {
        if !self.kafka.create_topics {
            return Ok(());
        }
        let missing: Vec<&str> = batch
            .iter()
            .map(|e| e.aggregate_type.as_str())
            .filter(|t| !self.ensured_topics.contains(*t))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            ensure_topics(&self.kafka, &missing).await?;
            self.ensured_topics
                .extend(missing.iter().map(|t| t.to_string()));
        }
        Ok(())
    }

    /// Refreshes the lag and stall gauges now and then while leading, so they
    /// stay current without a `/health` call.
    async fn refresh_status(&mut self) {
        let due = self
            .last_status
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(5));
        if !due {
            return;
        }
        self.last_status = Some(Instant::now());
        if let Err(error) = status::RelayStatus::read(self.store.pool(), &self.settings).await {
            tracing::debug!(%error, "relay status not refreshed");
        }
    }

    /// Relays until `shutdown` resolves. A follower retries the lease every
    /// `lease_retry_ms`; the leader publishes at once after each append (the
    /// store notifies) and every `idle_poll_ms` regardless, which also picks
    /// up events held back behind a transaction that was still running.
    /// Failures are retried with capped exponential backoff, from the stored
    /// checkpoint.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        // Topics exist from the start, so consumers can subscribe before the
        // first event; a broker that is not up yet is retried lazily per batch.
        match ensure_all_topics(&self.kafka).await {
            Ok(()) if self.kafka.create_topics => {
                self.ensured_topics
                    .extend(crate::kafka::AGGREGATE_TYPES.iter().map(|t| t.to_string()));
            }
            Ok(()) => {}
            Err(error) => {
                tracing::warn!(%error, "topics not created at start, will retry per batch")
            }
        }
        let idle = Duration::from_millis(self.settings.idle_poll_ms);
        let lease_retry = Duration::from_millis(self.settings.lease_retry_ms);
        let mut backoff = Duration::from_millis(100);
        let mut listener = None;
        let mut appended_here = self.store.appended();
        loop {
            let wait = match self.relay_once().await {
                Ok(count) => {
                    backoff = Duration::from_millis(100);
                    self.refresh_status().await;
                    if count as i64 >= self.settings.batch_size {
                        continue;
                    }
                    if listener.is_none() {
                        listener = listen(&self.store).await;
                    }
                    idle
                }
                Err(RelayError::NotLeader) => {
                    listener = None;
                    lease_retry
                }
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), retry_in_ms = backoff.as_millis() as u64, "relay batch failed");
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    wait
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait) => {}
                notified = wait_for_append(&mut listener) => {
                    if notified.is_err() {
                        listener = None;
                    }
                }
                _ = appended_in_process(&mut appended_here) => {}
            }
        }
    }
}

async fn listen(store: &PgEventStore) -> Option<PgListener> {
    let result = async {
        let mut listener = PgListener::connect_with(store.pool()).await?;
        listener.listen(APPENDED_CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    }
    .await;
    match result {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "relay cannot listen for appends, polling");
            None
        }
    }
}

/// A commit of this process's store; never, once the store is gone.
async fn appended_in_process(commits: &mut tokio::sync::watch::Receiver<u64>) {
    if commits.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn wait_for_append(listener: &mut Option<PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(l) => l.recv().await.map(|_| ()),
        None => std::future::pending().await,
    }
}

/// `error: cause: cause`, for one log line per failure.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Ensures every known topic exists, for processes that start before any event.
pub async fn ensure_all_topics(kafka: &KafkaSettings) -> Result<(), KafkaError> {
    if kafka.create_topics {
        ensure_topics(kafka, crate::kafka::AGGREGATE_TYPES).await?;
    }
    Ok(())
}
