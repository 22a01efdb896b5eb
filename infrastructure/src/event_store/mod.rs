//! The event store: what an append, a recorded event, a place in the global
//! log and a consistency token are, and the PostgreSQL adapter that keeps them
//! (`postgres`, with its group commit in `group_commit`). Aggregates of
//! `cqrs_es` are loaded from it and their decisions turned into appends by
//! `aggregates`.

pub mod aggregates;
mod group_commit;
pub mod postgres;
mod token;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use postgres::{GroupCommitSettings, PgEventStore};
pub use token::{ConsistencyToken, InvalidToken};

/// Who and what caused an append. Stored with every event, copied into Kafka
/// headers and into the projections (activity logs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Shared by everything that follows from one original request.
    pub correlation_id: Uuid,
    /// The request or event that directly caused this one.
    pub causation_id: Uuid,
    pub user_id: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
}

/// The events for one stream, and the version the writer saw when it decided
/// them. An empty `events` still asserts the version (a read it depended on).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    pub stream_id: String,
    pub aggregate_type: String,
    pub expected_version: i64,
    pub events: Vec<NewEvent>,
}

/// An `Idempotency-Key` with a fingerprint of the request that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub fingerprint: String,
}

/// What a successful append produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReceipt {
    /// Each stream with its version after the append.
    pub versions: Vec<(String, i64)>,
    /// Global position of the last event appended; 0 when nothing was.
    pub last_position: i64,
    /// The place in the global log at which this append's events are final:
    /// its last event, or the log's head when it appended none.
    pub token: ConsistencyToken,
}

impl AppendReceipt {
    pub fn version_of(&self, stream_id: &str) -> Option<i64> {
        self.versions
            .iter()
            .find(|(id, _)| id == stream_id)
            .map(|(_, v)| *v)
    }
}

/// The result of an idempotent append: new, or the answer the key got first.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    Appended {
        receipt: AppendReceipt,
        response: serde_json::Value,
    },
    AlreadyHandled {
        response: serde_json::Value,
    },
}

impl AppendOutcome {
    pub fn response(&self) -> &serde_json::Value {
        match self {
            AppendOutcome::Appended { response, .. }
            | AppendOutcome::AlreadyHandled { response } => response,
        }
    }
}

/// An event as stored, with its place in its stream and in the global log.
/// It is also the message the relay publishes and projectors consume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: i64,
    /// Published before epochs existed: those events are all of epoch 1.
    #[serde(default = "first_epoch")]
    pub epoch: i64,
    pub transaction_id: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    pub fn checkpoint(&self) -> GlobalCheckpoint {
        GlobalCheckpoint {
            epoch: self.epoch,
            transaction_id: self.transaction_id,
            position: self.position,
        }
    }
}

fn first_epoch() -> i64 {
    1
}

/// A place in the global log. The log is read in (epoch, transaction id,
/// position) order, which is the order in which events become final: the
/// epoch changes with the cluster or timeline (a restore, a promotion), and
/// within one epoch a transaction's events follow every older transaction's.
/// The derived order is that order (fields compare in declaration order).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct GlobalCheckpoint {
    pub epoch: i64,
    pub transaction_id: i64,
    pub position: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    #[error("stream {stream_id} is at version {actual}, not the expected {expected}")]
    VersionConflict {
        stream_id: String,
        expected: i64,
        actual: i64,
    },
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyKeyReused { key: String },
    #[error("stored event {event_id} cannot be decoded: {reason}")]
    Undecodable { event_id: Uuid, reason: String },
    /// A row of the global log that readers cannot decode. The log stops
    /// here until an operator skips it (`command-api skip-event`).
    #[error("the event at position {position} ({event_id}) cannot be decoded: {reason}; skip it with `command-api skip-event --position {position}`")]
    PoisonedLog {
        position: i64,
        event_id: Uuid,
        reason: String,
    },
    /// The group committer stopped before answering; the append's outcome is
    /// unknown (it may have committed).
    #[error("the append was interrupted and its outcome is unknown")]
    Interrupted,
    /// Sealed personal data that could not be opened (its key does not
    /// unwrap, or a value was tampered with).
    #[error("personal data could not be opened: {0}")]
    PersonalData(String),
    #[error("event store database error")]
    Database(#[from] sqlx::Error),
}
