//! One module per aggregate: the request bodies, their validation into domain
//! commands, and the load-decide plans that `command::execute` appends.
//! Catalog writes take an [`Admin`](crate::auth::Admin): they are the
//! admins' alone.

pub mod accounts;
pub mod brands;
pub mod categories;
pub mod products;
