//! The projector runtime every read model plugs into. A `Projection` applies
//! batches of recorded events idempotently to its store; the `Worker` feeds it
//! from its own Kafka consumer group, retries while the store is down, records
//! events that can never apply as dead letters, commits offsets only after the
//! store accepted the batch, and rebuilds the read model from the event store
//! when the store lost its data.

mod apply;
pub mod batch;
pub mod dead_letters;
pub mod generations;
pub mod parking;
mod progress;
pub mod rebuild;
pub mod redrive;
pub mod worker;

use async_trait::async_trait;
use infrastructure::event_store::RecordedEvent;

pub use dead_letters::{DeadLetter, DeadLetters};
pub use generations::BatchGuard;
pub use worker::{Worker, WorkerOptions, WorkerStats};

/// Why a batch did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The store is unreachable or refused for a passing reason: the same
    /// batch is retried, with backoff, for as long as the store's probe fails.
    /// A batch that keeps failing while the store answers its probe is
    /// treated as rejected.
    #[error("store unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The store refused what the batch holds (an Elasticsearch 400, a
    /// document MongoDB will not take): the worker retries a bounded number
    /// of times, then isolates the refused event and dead-letters it.
    #[error("store rejected the batch")]
    Rejected(#[source] anyhow::Error),
    /// The store no longer holds the read model (an in-memory server
    /// restarted mid-run): the worker rebuilds it, then retries the batch.
    #[error("read model lost")]
    Lost,
}

impl ProjectionError {
    pub fn unavailable(error: impl Into<anyhow::Error>) -> Self {
        ProjectionError::Unavailable(error.into())
    }

    pub fn rejected(error: impl Into<anyhow::Error>) -> Self {
        ProjectionError::Rejected(error.into())
    }
}

/// A read model fed by recorded events.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Names the consumer group and the projection's bookkeeping.
    fn name(&self) -> &'static str;

    /// The aggregate types (one Kafka topic each) it consumes.
    fn aggregate_types(&self) -> &'static [&'static str];

    /// Applies `events`, in order, idempotently: an event already applied, or
    /// older than what the store holds for its aggregate, changes nothing.
    /// Events that can never apply come back as dead letters; everything else
    /// is applied when this returns `Ok`.
    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError>;

    /// Succeeds when the store answers. A batch that keeps failing while the
    /// probe succeeds holds a poison event, which the worker isolates; while
    /// the probe fails, the store is down and the batch waits for it.
    async fn probe(&self) -> Result<(), ProjectionError> {
        match self.is_intact().await? {
            true => Ok(()),
            false => Err(ProjectionError::Lost),
        }
    }

    /// False when the store lost the read model (a restarted in-memory server,
    /// a flushed cache), which calls for a rebuild from the event store.
    async fn is_intact(&self) -> Result<bool, ProjectionError>;

    /// Empties the read model and prepares it to be rebuilt from scratch.
    async fn reset(&self) -> Result<(), ProjectionError>;

    /// Marks the read model complete after a rebuild, so `is_intact` holds.
    async fn mark_rebuilt(&self) -> Result<(), ProjectionError> {
        Ok(())
    }

    /// Lets the events of `aggregate_id` from `version` on apply again, for a
    /// retry of their dead letters: a store that records a dead-lettered
    /// event's version as handled (so that a redelivery is not refused
    /// twice) must forget it, or the retry would skip the event.
    async fn forget_applied(
        &self,
        _aggregate_id: &str,
        _version: i64,
    ) -> Result<(), ProjectionError> {
        Ok(())
    }

    /// A new, empty generation of the read model beside the live one, for a
    /// blue/green rebuild; whatever an interrupted rebuild left there is
    /// discarded. `None` for a store that holds one generation only, which
    /// is then rebuilt in place.
    async fn next_generation(&self) -> Result<Option<Box<dyn NextGeneration>>, ProjectionError> {
        Ok(None)
    }

    /// Another process swapped generations: forget anything that names the
    /// old one (a concrete index, a key prefix). Called before the first
    /// batch applied after the swap.
    fn generation_swapped(&self) {}
}

/// A generation being built beside the live one.
#[async_trait]
pub trait NextGeneration: Send + Sync {
    /// Writes into the new generation, which readers do not see yet.
    fn projection(&self) -> &dyn Projection;

    /// Makes the new generation the one readers see, in one atomic step, and
    /// drops the generation it replaces.
    async fn swap(self: Box<Self>) -> Result<(), ProjectionError>;
}
