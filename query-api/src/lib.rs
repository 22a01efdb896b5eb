//! The query side of the platform: reads that the projectors' stores answer.
//!
//! - `GET /v1/products/{id}`: the Redis cache, then the PostgreSQL read model
//! - `GET /v1/products`: search on the Elasticsearch products alias
//! - `GET /v1/categories`, `GET /v1/brands`: the PostgreSQL read model
//! - `GET /v1/me`, `GET /v1/users`, `GET /v1/users/{id}`: the accounts
//!   read model, for the logged-in user and for admins
//! - `GET /v1/carts/{id}`: the Redis cart cache, then the Mongo cart
//!   documents, for the cart's owner only
//! - `GET /v1/promotions`, `GET /v1/promotions/{id}`: the promotions read
//!   model, for admins; `GET /v1/coupons/{code}`: a customer's check of a
//!   coupon code, alone or against their own cart
//! - `GET /v1/me/orders`, `GET /v1/orders/{id}`, `GET /v1/orders`: the
//!   orders read model, for the customer who placed an order, and all of
//!   them for admins
//! - `GET /v1/me/notifications`: the Mongo notifications, the signed-in
//!   user's own, unread first
//! - `GET /health`
//!
//! Public reads show only active products, categories and brands; an admin's
//! session ([`auth`]) sees them all.
//!
//! Each store sits behind a port ([`catalog::CatalogReadModel`],
//! [`products::ProductCache`], [`products::ProductSearch`],
//! [`carts::CartCache`], [`carts::CartDocuments`],
//! [`promotions::PromotionsReadModel`], [`orders::OrdersReadModel`],
//! [`notifications::NotificationsReadModel`]) next to the handlers that use
//! it; [`startup::Application`] wires the real adapters.
//!
//! Every read accepts the consistency token of a command and waits until the
//! read models it reads have applied it ([`consistency`]).

pub mod auth;
pub mod carts;
pub mod catalog;
pub mod consistency;
pub mod correlation;
pub mod cursor;
pub mod error;
pub mod extract;
pub mod health;
pub mod money;
pub mod notifications;
pub mod openapi;
pub mod orders;
pub mod products;
pub mod promotions;
pub mod rate_limit;
pub mod startup;
pub mod users;

pub use startup::{AppState, Application};

/// What the ports' methods return: a boxed future, so that the ports can be
/// used as trait objects (`Arc<dyn ProductCache>`) without a macro crate.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
