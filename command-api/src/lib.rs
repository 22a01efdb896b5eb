//! The command side's HTTP API: each request is validated into a domain
//! command, decided against aggregates loaded from the event store, and
//! appended atomically (with the unique-key and inventory streams it touches),
//! carrying the request's metadata. See `docs/command-api.md`.

pub mod app;
pub mod auth;
pub mod cart_expiry;
pub mod command;
pub mod commands;
pub mod error;
pub mod health;
pub mod input;
pub mod openapi;
pub mod operator;
pub mod payments;
pub mod rate_limit;
pub mod request;

pub use app::Application;
pub use error::ApiError;
