//! The command API over HTTP, against real PostgreSQL: each test runs the
//! real application on an ephemeral port with its own database.

mod accounts;
mod admin_users;
mod authorization;
mod brands;
mod carts;
mod categories;
mod checkout;
mod codes;
mod control_characters;
mod errors;
mod idempotency;
mod inventory;
mod me;
mod notifications;
mod openapi;
mod orders;
mod payments;
mod preconditions;
mod product_parts;
mod products;
mod promotions;
mod rate_limits;
mod relay;
mod support;
