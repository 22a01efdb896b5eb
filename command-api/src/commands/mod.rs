//! One module per aggregate: the request bodies, their validation into domain
//! commands, and the load-decide plans that `command::execute` appends.
//! Catalog, inventory and promotion writes and `users` take an [`Admin`](crate::auth::Admin): they
//! are the admins' alone; `me` takes a [`SignedIn`](crate::auth::SignedIn)
//! user, on their own account.

pub mod accounts;
pub mod brands;
pub mod carts;
pub mod categories;
pub mod checkout;
pub mod codes;
pub mod inventory;
pub mod me;
pub mod notifications;
pub mod orders;
pub mod payments;
pub mod product_parts;
pub mod products;
pub mod promotions;
pub mod users;
