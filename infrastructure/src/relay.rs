//! The transactional outbox relay: tails the event store in the order events
//! become final and produces each one to Kafka, keyed by aggregate id. Its
//! checkpoint moves only past events the broker acknowledged, so a crash or a
//! broker outage loses nothing; it may publish an event twice, which every
//! consumer tolerates.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgListener;
use tracing::instrument;

use crate::event_store::postgres::APPENDED_CHANNEL;
use crate::event_store::{EventStoreError, GlobalCheckpoint, PgEventStore, RecordedEvent};
use crate::kafka::{ensure_topics, event_headers, producer_config};
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
    #[error("listening for appends failed")]
    Listen(#[from] sqlx::Error),
}

pub struct OutboxRelay {
    store: PgEventStore,
    producer: FutureProducer,
    kafka: KafkaSettings,
    settings: RelaySettings,
    ensured_topics: HashSet<String>,
    /// The stored checkpoint, read once and then kept as it is saved.
    checkpoint: Option<GlobalCheckpoint>,
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
            checkpoint: None,
        })
    }

    /// Publishes the next batch after the checkpoint and moves the checkpoint
    /// past it once every event is acknowledged. Returns how many it published.
    #[instrument(skip(self), fields(relay = %self.settings.name))]
    pub async fn relay_once(&mut self) -> Result<usize, RelayError> {
        let checkpoint = match self.checkpoint {
            Some(checkpoint) => checkpoint,
            None => self.store.checkpoint(&self.settings.name).await?,
        };
        let batch = self
            .store
            .read_after(checkpoint, self.settings.batch_size, None)
            .await?;
        let Some(last) = batch.last() else {
            return Ok(0);
        };
        self.ensure_topics_for(&batch).await?;
        let payloads: Vec<(String, Vec<u8>)> = batch
            .iter()
            .map(|event| {
                let topic = self.kafka.topic_for(&event.aggregate_type);
                (
                    topic,
                    serde_json::to_vec(event).expect("recorded events serialize"),
                )
            })
            .collect();
        let deliveries = batch
            .iter()
            .zip(&payloads)
            .map(|(event, (topic, payload))| {
                let record = FutureRecord::to(topic)
                    .key(event.aggregate_id.as_str())
                    .payload(payload.as_slice())
                    .headers(event_headers(event));
                let position = event.position;
                let send = self.producer.send(record, Duration::from_secs(5));
                async move {
                    send.await
                        .map(|_| ())
                        .map_err(|(source, _)| RelayError::Publish { position, source })
                }
            });
        // Sent together, so the broker's round trip is paid once per batch;
        // the idempotent producer keeps each partition in send order.
        for result in join_all(deliveries).await {
            result?;
        }
        self.store
            .save_checkpoint(&self.settings.name, last.checkpoint())
            .await?;
        self.checkpoint = Some(last.checkpoint());
        tracing::debug!(
            count = batch.len(),
            position = last.position,
            "events relayed"
        );
        Ok(batch.len())
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

    /// Relays until `shutdown` resolves: at once after each append (the store
    /// notifies), and every `idle_poll_ms` regardless, which also picks up events
    /// held back behind a transaction that was still running. Failures are
    /// retried with capped exponential backoff, from the same checkpoint.
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
        let mut backoff = Duration::from_millis(100);
        let mut listener = None;
        loop {
            if listener.is_none() {
                listener = match PgListener::connect_with(self.store.pool()).await {
                    Ok(mut l) => match l.listen(APPENDED_CHANNEL).await {
                        Ok(()) => Some(l),
                        Err(error) => {
                            tracing::warn!(%error, "relay cannot listen for appends, polling");
                            None
                        }
                    },
                    Err(error) => {
                        tracing::warn!(%error, "relay cannot listen for appends, polling");
                        None
                    }
                };
            }
            match self.relay_once().await {
                Ok(count) => {
                    backoff = Duration::from_millis(100);
                    if count as i64 >= self.settings.batch_size {
                        continue;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), retry_in_ms = backoff.as_millis() as u64, "relay batch failed");
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(idle) => {}
                notified = wait_for_append(&mut listener) => {
                    if notified.is_err() {
                        listener = None;
                    }
                }
            }
        }
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
