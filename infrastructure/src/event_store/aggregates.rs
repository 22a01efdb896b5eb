//! Bridges `cqrs_es` aggregates and the event store: loading an aggregate from
//! its stream (upcasting old event versions on the way), running a command
//! against it, and turning the resulting events into a `StreamAppend`.

use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use uuid::Uuid;

use super::{EventStoreError, NewEvent, PgEventStore, RecordedEvent, StreamAppend};
use crate::personal_data::PersonalData;

/// The upcasters of every event type whose shape changed. An event stored at
/// an older schema version is rewritten, in memory, to the current one before
/// it is deserialized; the stored row never changes.
#[derive(Clone, Default)]
pub struct Upcasters(Arc<Vec<Box<dyn EventUpcaster>>>);

impl Upcasters {
    pub fn new(upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        Self(Arc::new(upcasters))
    }

    /// The payload of `event` at its type's current schema version.
    pub fn upcast(&self, event: &RecordedEvent) -> (i32, serde_json::Value) {
        let mut serialized = SerializedEvent {
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.version as usize,
            aggregate_type: event.aggregate_type.clone(),
            event_type: event.event_type.clone(),
            event_version: event.schema_version.to_string(),
            payload: event.payload.clone(),
            metadata: serde_json::Value::Null,
        };
        for upcaster in self.0.iter() {
            if upcaster.can_upcast(&serialized.event_type, &serialized.event_version) {
                serialized = upcaster.upcast(serialized);
            }
        }
        let version = serialized
            .event_version
            .parse()
            .unwrap_or(event.schema_version);
        (version, serialized.payload)
    }

    /// The domain event a stored event holds, after upcasting.
    pub fn decode<E: DomainEvent>(&self, event: &RecordedEvent) -> Result<E, EventStoreError> {
        let (_, payload) = self.upcast(event);
        serde_json::from_value(payload).map_err(|e| EventStoreError::Undecodable {
            event_id: event.event_id,
            reason: e.to_string(),
        })
    }
}

/// An aggregate rebuilt from its stream, with the version it was read at.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub stream_id: String,
    pub aggregate: A,
    pub version: i64,
}

impl<A: Aggregate + Clone> Loaded<A> {
    /// Runs `command` against a copy of the aggregate: the events it decided,
    /// or its rejection. Nothing is stored.
    pub async fn decide(
        &self,
        command: A::Command,
        services: &A::Services,
    ) -> Result<Vec<A::Event>, A::Error> {
        let sink = EventSink::default();
        let mut aggregate = self.aggregate.clone();
        aggregate.handle(command, services, &sink).await?;
        Ok(sink.collect().await)
    }

    /// `events` as an append to this stream, expected at the version it was read at.
    pub fn append(&self, events: &[A::Event]) -> StreamAppend {
        StreamAppend {
            stream_id: self.stream_id.clone(),
            aggregate_type: A::TYPE.to_owned(),
            expected_version: self.version,
            events: new_events(events),
        }
    }
}

/// Reads a stream and replays it into a fresh aggregate.
pub async fn load<A: Aggregate>(
    store: &PgEventStore,
    upcasters: &Upcasters,
    stream_id: &str,
) -> Result<Loaded<A>, EventStoreError> {
    let recorded = store.load_stream(stream_id).await?;
    apply_all(recorded, upcasters, stream_id)
}

/// [`load`] for an aggregate whose events hold sealed personal data, opened
/// before they are decoded.
pub async fn load_opening<A: Aggregate>(
    store: &PgEventStore,
    upcasters: &Upcasters,
    personal: &PersonalData,
    stream_id: &str,
) -> Result<Loaded<A>, EventStoreError> {
    let mut recorded = store.load_stream(stream_id).await?;
    personal
        .open(&mut recorded)
        .await
        .map_err(|error| EventStoreError::PersonalData(error.to_string()))?;
    apply_all(recorded, upcasters, stream_id)
}

fn apply_all<A: Aggregate>(
    recorded: Vec<RecordedEvent>,
    upcasters: &Upcasters,
    stream_id: &str,
) -> Result<Loaded<A>, EventStoreError> {
    let mut aggregate = A::default();
    let mut version = 0;
    for event in &recorded {
        aggregate.apply(upcasters.decode::<A::Event>(event)?);
        version = event.version;
    }
    Ok(Loaded {
        stream_id: stream_id.to_owned(),
        aggregate,
        version,
    })
}

/// Domain events ready to store, each with a fresh, time-ordered id.
pub fn new_events<E: DomainEvent>(events: &[E]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|event| NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event.event_type(),
            schema_version: event.event_version().parse().unwrap_or(1),
            payload: serde_json::to_value(event).expect("domain events serialize to JSON"),
        })
        .collect()
}
