//! Contract suites of the query API's ports, each run against its real
//! adapter on the real server: what any implementation of the port must do.

#[path = "../support/mod.rs"]
mod support;

mod cart_cache;
mod cart_documents;
mod catalog_read_model;
mod notifications;
mod orders;
mod product_cache;
mod product_search;
mod promotions;
