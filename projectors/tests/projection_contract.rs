//! The contract every `Projection` adapter keeps, run against each real one:
//! applying a batch again, or an older part of it, changes nothing; a reset
//! empties the read model; a rebuild leaves it intact and equal to what the
//! live path built.

mod support;

use projectors::runtime::worker::rebuild;
use projectors::runtime::{DeadLetters, WorkerOptions, WorkerStats};
use serde_json::Value;
use support::adapters::adapters;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_projection_is_idempotent_resettable_and_rebuildable() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(4).await;
    let users = h.seed_users(2).await;
    h.append_user(
        users[0],
        3,
        &[support::users::address_added(
            users[0],
            uuid::Uuid::now_v7(),
            support::users::postal("Somying", "9 Silom Rd"),
            true,
            4,
        )],
    )
    .await;
    for id in &products {
        h.append(
            "product",
            &id.to_string(),
            1,
            &[price_changed(*id, 1000, 1234)],
        )
        .await;
    }
    h.seed_promotions(2).await;
    let orders = h.seed_orders(&users, &products).await;
    h.seed_payments(&orders).await;
    // Carts of every kind, for the cart projections.
    support::carts::seed_carts(&h).await;
    let events = h.recorded().await;
    let options = WorkerOptions::from_settings(&h.settings.projectors);
    let dead_letters = DeadLetters::new(h.db.pool.clone());
    let mut all = adapters(&h).await;
    all.extend(support::carts::adapters(&h).await);
    for adapter in all {
        let projection = adapter.projection();
        let name = projection.name();
        projection.reset().await.unwrap();
        projection.mark_rebuilt().await.unwrap();
        assert!(
            projection.is_intact().await.unwrap(),
            "{name}: intact after a reset"
        );
        let empty = adapter.snapshot().await;

        for event in &events {
            let relevant = projection
                .aggregate_types()
                .contains(&event.aggregate_type.as_str());
            if relevant {
                assert!(
                    projection
                        .apply(std::slice::from_ref(event))
                        .await
                        .unwrap()
                        .is_empty(),
                    "{name}"
                );
            }
        }
        let live = adapter.snapshot().await;
        assert_ne!(live, empty, "{name}: the events were stored");

        let relevant: Vec<_> = events
            .iter()
            .filter(|e| {
                projection
                    .aggregate_types()
                    .contains(&e.aggregate_type.as_str())
            })
            .cloned()
            .collect();
        projection.apply(&relevant).await.unwrap();
        projection
            .apply(&relevant[..relevant.len() / 2])
            .await
            .unwrap();
        assert_eq!(
            adapter.snapshot().await,
            live,
            "{name}: redelivery changes nothing"
        );

        rebuild(
            projection.as_ref(),
            &h.store,
            &dead_letters,
            &options,
            &WorkerStats::new(),
        )
        .await
        .unwrap();
        assert!(
            projection.is_intact().await.unwrap(),
            "{name}: intact after a rebuild"
        );
        let rebuilt = adapter.snapshot().await;
        assert_eq!(
            strip_volatile(rebuilt),
            strip_volatile(live),
            "{name}: a rebuild equals the live read model"
        );

        projection.reset().await.unwrap();
        assert_eq!(
            adapter.snapshot().await,
            empty,
            "{name}: a reset empties the read model"
        );
        adapter.cleanup().await;
    }
}

/// Write times (the cache's `cachedAt`) differ between two builds by nature.
fn strip_volatile(mut value: Value) -> Value {
    if let Value::Object(entries) = &mut value {
        for entry in entries.values_mut() {
            if let Value::Object(fields) = entry {
                fields.remove("cachedAt");
            }
        }
    }
    value
}
