//! Events, appends and metadata shared by the event store's test files.

use infrastructure::event_store::{EventMetadata, NewEvent, StreamAppend};
use serde_json::json;
use uuid::Uuid;

pub fn event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "ThingHappened".into(),
        schema_version: 1,
        payload: json!({ "n": n }),
    }
}

pub fn append(stream: &str, expected: i64, count: i64) -> StreamAppend {
    StreamAppend {
        stream_id: stream.into(),
        aggregate_type: "thing".into(),
        expected_version: expected,
        events: (0..count).map(|i| event(expected + i + 1)).collect(),
    }
}

pub fn metadata() -> EventMetadata {
    EventMetadata {
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        user_id: Some("user-1".into()),
        client_ip: Some("127.0.0.1".into()),
        user_agent: Some("contract-test".into()),
    }
}
