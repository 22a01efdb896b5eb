//! Adapters shared by the command API, the projectors and the query API:
//! configuration, telemetry, the PostgreSQL event store, the Kafka outbox
//! relay, database set-up, and (with the `testing` feature) the helpers that
//! give every integration test its own isolated slice of each real server.

pub mod client_address;
pub mod consistency;
pub mod database;
pub mod event_store;
pub mod http_limits;
pub mod kafka;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod passwords;
pub mod personal_data;
pub mod rate_limit;
pub mod redis_connection;
pub mod relay;
pub mod sessions;
pub mod settings;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod views;
