//! One module per aggregate: the request bodies, their validation into domain
//! commands, and the load-decide plans that `command::execute` appends.

pub mod brands;
pub mod categories;
pub mod products;
