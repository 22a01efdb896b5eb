//! A store that lost its data while a live worker ran (a restarted Redis
//! that kept nothing, a deleted index, a dropped collection, a dropped
//! read-model schema): the worker notices, rebuilds from the event store, and
//! goes on with the writes that arrived meanwhile. What readers then see equals a fresh rebuild, compared
//! in full.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::Document;
use projectors::projections::{
    activity_log, catalog_tables, orders_tables, payments_tables, product_cache, product_search,
    promotion_tables, users_tables,
};
use projectors::runtime::WorkerOptions;
use redis::AsyncCommands;
use support::adapters::{adapter_named, rebuilt_from_scratch, Adapter};
use support::live::Live;
use support::*;

/// Loses the store's data as the server would, and checks it is gone.
async fn lose(h: &Harness, adapter: &dyn Adapter, name: &str) {
    let s = &h.settings;
    let before = adapter.snapshot().await;
    match name {
        catalog_tables::NAME
        | users_tables::NAME
        | promotion_tables::NAME
        | orders_tables::NAME
        | payments_tables::NAME => {
            // Every projection's bookkeeping goes with it.
            sqlx::query("DROP SCHEMA read_model CASCADE")
                .execute(&h.db.pool)
                .await
                .unwrap();
            let gone: bool = sqlx::query_scalar("SELECT to_regnamespace('read_model') IS NULL")
                .fetch_one(&h.db.pool)
                .await
                .unwrap();
            assert!(gone, "the schema is gone");
            return;
        }
        product_cache::NAME => {
            // What FLUSHALL does to this test's keys, pointer and marker
            // included, without touching other tests' keys.
            let mut redis = h.redis().await;
            let keys: Vec<String> = redis
                .keys(format!("{}*", s.redis.key_prefix))
                .await
                .unwrap();
            let _: () = redis.del(keys).await.unwrap();
        }
        product_search::NAME => {
            reqwest::Client::new()
                .delete(format!(
                    "{}/{}-*",
                    s.elasticsearch.url, s.elasticsearch.products_alias
                ))
                .send()
                .await
                .unwrap();
        }
        activity_log::NAME => {
            mongodb::Client::with_uri_str(&s.mongo.url)
                .await
                .unwrap()
                .database(&s.mongo.database)
                .collection::<Document>(activity_log::COLLECTION)
                .drop()
                .await
                .unwrap();
        }
        other => panic!("no way to lose {other}"),
    }
    assert_ne!(adapter.snapshot().await, before, "{name}: the data is gone");
}

async fn a_store_that_lost_its_data_ends_equal_to_a_fresh_rebuild(name: &str) {
    let h = Arc::new(harness().await);
    let (_, _, products) = h.seed_catalog(8).await;
    let users = h.seed_users(3).await;
    h.seed_promotions(2).await;
    let orders = h.seed_orders(&users, &products).await;
    h.seed_payments(&orders).await;
    let adapter = adapter_named(&h, name).await;
    adapter.projection().reset().await.unwrap();
    adapter.projection().mark_rebuilt().await.unwrap();
    let options = WorkerOptions {
        intact_check_every: Duration::ZERO,
        ..worker_options()
    };
    let live = Live::start_with(h.clone(), adapter.projection(), products[0], options).await;
    let before = adapter.snapshot().await;

    lose(&h, adapter.as_ref(), name).await;
    live.write().await;

    let after = adapter.snapshot().await;
    assert!(
        live.worker
            .lock()
            .await
            .stats()
            .rebuilds
            .load(Ordering::Relaxed)
            >= 1,
        "{name}: rebuilt"
    );
    assert_ne!(after, before, "{name}: the writes made meanwhile are there");
    assert_eq!(
        rebuilt_from_scratch(&h, adapter.as_ref()).await,
        after,
        "{name}: equal to a fresh rebuild"
    );
    adapter.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_read_model_schema_ends_equal_to_a_fresh_rebuild() {
    a_store_that_lost_its_data_ends_equal_to_a_fresh_rebuild(catalog_tables::NAME).await;
}

/// The users tables are recorded as a read model kept in the schema
/// (migration 20261203000004): a reinstalled schema rebuilds them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_read_model_schema_rebuilds_the_users_tables_too() {
    a_store_that_lost_its_data_ends_equal_to_a_fresh_rebuild(users_tables::NAME).await;
}

/// The promotion tables are recorded as a read model kept in the schema
/// (migration 20261204000001): a reinstalled schema rebuilds them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_read_model_schema_rebuilds_the_promotion_tables_too() {
    a_store_that_lost_its_data_ends_equal_to_a_fresh_rebuild(promotion_tables::NAME).await;
}

/// The orders tables are recorded as a read model kept in the schema
/// (migration 20261204000003): a reinstalled schema rebuilds them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_read_model_schema_rebuilds_the_orders_tables_too() {
    a_store_that_lost_its_data_ends_equal_to_a_fresh_rebuild(orders_tables::NAME).await;
}

/// The payments tables are recorded as a read model kept in the schema
/// (migration 20261204000005): a reinstalled schema rebuilds them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_read_model_schema_rebuilds_the_payments_tables_too() {
    a_store_that_lost_its_data_ends_equal_to_a_fresh_rebuild(payments_tables::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_product_cache_ends_equal_to_a_fresh_rebuild() {
    a_store_that_lost_its_data_ends_equal_to_a_fresh_rebuild(product_cache::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_search_index_ends_equal_to_a_fresh_rebuild() {
    a_store_that_lost_its_data_ends_equal_to_a_fresh_rebuild(product_search::NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_activity_collection_ends_equal_to_a_fresh_rebuild() {
    a_store_that_lost_its_data_ends_equal_to_a_fresh_rebuild(activity_log::NAME).await;
}
