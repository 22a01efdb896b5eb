//! Kafka plumbing shared by the relay and the projectors: client
//! configuration, topic creation, and the headers every event carries.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::event_store::RecordedEvent;
use crate::settings::KafkaSettings;

/// The aggregate types whose events are published, one topic each.
pub const AGGREGATE_TYPES: &[&str] = &[
    "category",
    "brand",
    "product",
    "inventory",
    "user",
    "cart",
    "order",
    "payment",
    "promotion",
    "coupon",
    "customer_usage",
    "review",
    "notification",
    "unique_key",
];

pub fn base_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("broker.address.family", "v4");
    config
}

/// An idempotent, all-replicas-acknowledged producer: a retried send is never
/// duplicated or reordered by the broker within a partition.
pub fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = base_config(settings);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            settings.message_timeout_ms.to_string(),
        );
    config
}

/// Creates the topics of `aggregate_types` that do not exist yet.
pub async fn ensure_topics(
    settings: &KafkaSettings,
    aggregate_types: &[&str],
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = base_config(settings).create()?;
    let names: Vec<String> = aggregate_types
        .iter()
        .map(|t| settings.topic_for(t))
        .collect();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&topics, &options).await? {
        match result {
            Ok(topic) => tracing::info!(topic, "kafka topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                tracing::error!(topic, %code, "kafka topic creation failed");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    Ok(())
}

/// Header names of a published event.
pub mod headers {
    pub const EVENT_ID: &str = "event_id";
    pub const EVENT_TYPE: &str = "event_type";
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const POSITION: &str = "position";
    pub const AGGREGATE_TYPE: &str = "aggregate_type";
    pub const AGGREGATE_ID: &str = "aggregate_id";
    pub const VERSION: &str = "version";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const CAUSATION_ID: &str = "causation_id";
    /// The relay leadership term that published the message.
    pub const RELAY_TERM: &str = "relay_term";
}

pub fn event_headers(event: &RecordedEvent) -> OwnedHeaders {
    let values = [
        (headers::EVENT_ID, event.event_id.to_string()),
        (headers::EVENT_TYPE, event.event_type.clone()),
        (headers::SCHEMA_VERSION, event.schema_version.to_string()),
        (headers::POSITION, event.position.to_string()),
        (headers::AGGREGATE_TYPE, event.aggregate_type.clone()),
        (headers::AGGREGATE_ID, event.aggregate_id.clone()),
        (headers::VERSION, event.version.to_string()),
        (
            headers::CORRELATION_ID,
            event.metadata.correlation_id.to_string(),
        ),
        (
            headers::CAUSATION_ID,
            event.metadata.causation_id.to_string(),
        ),
    ];
    values
        .iter()
        .fold(OwnedHeaders::new(), |acc, (key, value)| {
            acc.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        })
}
