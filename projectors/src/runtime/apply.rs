//! Applying one batch until its store has taken every event of it, or has
//! refused one for good.
//!
//! A store that is down (its probe fails) delays the batch for as long as it
//! is down; nothing is skipped for that. A batch the store keeps refusing
//! while it answers its probe holds a poison event: after a bounded number of
//! attempts the batch is bisected until the refused event stands alone, and
//! that event is dead-lettered with the store's reason. The events that follow
//! it in its aggregate are dead-lettered with it, so that no read model holds
//! an aggregate with a hole in its history; the rest of the batch applies.
//!
//! While it waits between attempts, a live worker pauses its partitions and
//! keeps polling its consumer, so that it stays in its group however long the
//! wait lasts.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use infrastructure::event_store::RecordedEvent;
use infrastructure::relay::error_chain;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use uuid::Uuid;

use super::worker::{KafkaConsumer, WorkerOptions, WorkerStats};
use super::{DeadLetter, Projection, ProjectionError};

/// The store no longer holds the read model: the caller rebuilds it.
#[derive(Debug)]
pub(crate) struct Lost;

/// The first dead-lettered event of an aggregate.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub event_id: Option<Uuid>,
    pub reason: String,
}

impl Head {
    fn follower_reason(&self) -> String {
        match self.event_id {
            Some(id) => format!(
                "follows event {id} of the same aggregate, dead-lettered: {}",
                self.reason
            ),
            None => format!(
                "follows a dead-lettered message of the same aggregate: {}",
                self.reason
            ),
        }
    }
}

/// Aggregates, by `(aggregate type, aggregate id)`, that have a dead letter in
/// this projection: their later events are dead-lettered, not applied.
pub(crate) type Frozen = HashMap<(String, String), Head>;

fn aggregate_of(event: &RecordedEvent) -> (String, String) {
    (event.aggregate_type.clone(), event.aggregate_id.clone())
}

/// How to wait between two attempts.
pub(crate) enum Wait<'a> {
    /// A rebuild from the event store has no consumer to keep alive.
    Sleep,
    /// A live worker pauses its partitions and keeps polling: messages that
    /// were already on their way are kept for the next batch.
    Poll {
        consumer: &'a KafkaConsumer,
        carried: &'a mut Vec<OwnedMessage>,
        paused: bool,
    },
}

impl Wait<'_> {
    async fn wait(&mut self, pause: Duration) {
        let Wait::Poll {
            consumer,
            carried,
            paused,
        } = self
        else {
            tokio::time::sleep(pause).await;
            return;
        };
        if !*paused {
            if let Ok(assignment) = consumer.assignment() {
                if let Err(error) = consumer.pause(&assignment) {
                    tracing::warn!(%error, "cannot pause partitions while retrying");
                }
            }
            *paused = true;
        }
        let deadline = tokio::time::Instant::now() + pause;
        loop {
            let mut stream = consumer.stream();
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                received = stream.next() => match received {
                    Some(Ok(message)) => carried.push(message.detach()),
                    Some(Err(error)) => {
                        // Reported again at the next receive if it lasts;
                        // looping on it would spin.
                        tracing::warn!(%error, "kafka error while retrying a batch");
                        tokio::time::sleep_until(deadline).await;
                        return;
                    }
                    None => return,
                }
            }
        }
    }

    /// Resumes what `wait` paused. Partitions assigned since were never
    /// paused; resuming them changes nothing.
    pub(crate) fn resume(&mut self) {
        if let Wait::Poll {
            consumer, paused, ..
        } = self
        {
            if *paused {
                if let Ok(assignment) = consumer.assignment() {
                    if let Err(error) = consumer.resume(&assignment) {
                        tracing::warn!(%error, "cannot resume partitions after retrying");
                    }
                }
                *paused = false;
            }
        }
    }
}

pub(crate) struct Applier<'a> {
    pub projection: &'a dyn Projection,
    pub options: &'a WorkerOptions,
    pub stats: &'a WorkerStats,
}

impl Applier<'_> {
    /// Applies `events` in order and returns the batch's dead letters: the
    /// projection's own, the events the store kept refusing, and the events
    /// of aggregates in `frozen`, which grows with each refused event.
    pub(crate) async fn apply(
        &self,
        events: &[RecordedEvent],
        frozen: &mut Frozen,
        wait: &mut Wait<'_>,
    ) -> Result<Vec<DeadLetter>, Lost> {
        let mut letters = Vec::new();
        let mut pending: VecDeque<Range<usize>> = VecDeque::new();
        pending.push_back(0..events.len());
        while let Some(range) = pending.pop_front() {
            let slice = &events[range.clone()];
            let owned: Vec<RecordedEvent>;
            let run: &[RecordedEvent] =
                if slice.iter().any(|e| frozen.contains_key(&aggregate_of(e))) {
                    let mut kept = Vec::with_capacity(slice.len());
                    for event in slice {
                        match frozen.get(&aggregate_of(event)) {
                            Some(head) => {
                                letters.push(DeadLetter::for_event(event, head.follower_reason()))
                            }
                            None => kept.push(event.clone()),
                        }
                    }
                    owned = kept;
                    &owned
                } else {
                    slice
                };
            if run.is_empty() {
                continue;
            }
            match self.until_accepted(run, wait).await? {
                Ok(own) => letters.extend(own),
                Err(reason) if run.len() == 1 => {
                    let event = &run[0];
                    frozen.insert(
                        aggregate_of(event),
                        Head {
                            event_id: Some(event.event_id),
                            reason: reason.clone(),
                        },
                    );
                    letters.push(DeadLetter::for_event(event, reason));
                }
                Err(_) => {
                    // Bisect: the halves go first, in order, so that events
                    // still apply in log order.
                    let middle = range.start + range.len() / 2;
                    pending.push_front(middle..range.end);
                    pending.push_front(range.start..middle);
                }
            }
        }
        Ok(letters)
    }

    /// Attempts `events` until the store takes them (`Ok(Ok(letters))`) or
    /// has refused them `poison_attempts` times while answering its probe
    /// (`Ok(Err(reason))`). A store that is down is waited for, however long.
    async fn until_accepted(
        &self,
        events: &[RecordedEvent],
        wait: &mut Wait<'_>,
    ) -> Result<Result<Vec<DeadLetter>, String>, Lost> {
        let name = self.projection.name();
        let mut backoff = self.options.retry_initial;
        let mut refusals = 0u32;
        loop {
            let (error, kind) = match self.projection.apply(events).await {
                Ok(letters) => return Ok(Ok(letters)),
                Err(ProjectionError::Lost) => return Err(Lost),
                Err(ProjectionError::Rejected(error)) => {
                    refusals += 1;
                    (error, "rejected")
                }
                Err(ProjectionError::Unavailable(error)) => match self.projection.probe().await {
                    // The store answers, yet this batch keeps failing.
                    Ok(()) => {
                        refusals += 1;
                        (error, "failing")
                    }
                    Err(ProjectionError::Lost) => return Err(Lost),
                    Err(_) => (error, "unavailable"),
                },
            };
            let reason = error_chain(error.as_ref());
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("projector_retries_total", "projection" => name, "kind" => kind)
                .increment(1);
            if refusals >= self.options.poison_attempts {
                tracing::warn!(
                    projection = name,
                    events = events.len(),
                    refusals,
                    %reason,
                    "store keeps refusing the events, isolating the refused one"
                );
                return Ok(Err(reason));
            }
            tracing::warn!(
                projection = name,
                events = events.len(),
                kind,
                refusals,
                %reason,
                retry_in_ms = backoff.as_millis() as u64,
                "batch not applied, retrying"
            );
            wait.wait(backoff).await;
            backoff = (backoff * 2).min(self.options.retry_max);
        }
    }
}
