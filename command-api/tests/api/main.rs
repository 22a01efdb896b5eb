//! The command API over HTTP, against real PostgreSQL: each test runs the
//! real application on an ephemeral port with its own database.

mod accounts;
mod brands;
mod categories;
mod control_characters;
mod errors;
mod idempotency;
mod preconditions;
mod products;
mod relay;
mod support;
