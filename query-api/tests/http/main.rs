//! The query API over HTTP: the real application on 127.0.0.1:0, driven with
//! reqwest, over real PostgreSQL, Redis and Elasticsearch.

#[path = "../support/mod.rs"]
mod support;

mod authorization;
mod carts;
mod catalog;
mod notifications;
mod openapi;
mod orders;
mod products;
mod promotions;
mod rate_limits;
mod search;
mod service;
mod users;
mod visibility;
