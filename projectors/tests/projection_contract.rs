//! The contract every `Projection` adapter keeps, run against each real one:
//! applying a batch again, or an older part of it, changes nothing; a reset
//! empties the read model; a rebuild leaves it intact and equal to what the
//! live path built.

mod support;

use std::sync::Arc;

use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::settings::Settings;
use mongodb::bson::{doc, Document};
use projectors::projections::activity_log::ActivityLog;
use projectors::projections::catalog_tables::CatalogTables;
use projectors::projections::product_cache::ProductCache;
use projectors::projections::product_search::ProductSearch;
use projectors::runtime::worker::rebuild;
use projectors::runtime::{DeadLetters, Projection, WorkerOptions, WorkerStats};
use redis::AsyncCommands;
use serde_json::Value;
use support::*;

/// A real adapter and a way to read back everything it stored.
#[async_trait::async_trait]
trait Adapter: Send + Sync {
    fn projection(&self) -> Arc<dyn Projection>;
    async fn snapshot(&self) -> Value;
    async fn cleanup(&self) {}
}

struct Tables(Arc<CatalogTables>, sqlx::PgPool);

#[async_trait::async_trait]
impl Adapter for Tables {
    fn projection(&self) -> Arc<dyn Projection> {
        self.0.clone()
    }
    async fn snapshot(&self) -> Value {
        Value::Array(dump_catalog(&self.1).await)
    }
}

struct Search(Arc<ProductSearch>, String);

#[async_trait::async_trait]
impl Adapter for Search {
    fn projection(&self) -> Arc<dyn Projection> {
        self.0.clone()
    }
    async fn snapshot(&self) -> Value {
        self.0.refresh().await.ok();
        let client = reqwest::Client::new();
        let Ok(response) = client
            .post(format!("http://127.0.0.1:9200/{}/_search", self.1))
            .json(&serde_json::json!({ "size": 1000, "sort": [{ "id": "asc" }] }))
            .send()
            .await
        else {
            return Value::Null;
        };
        let body: Value = response.json().await.unwrap_or_default();
        let hits: Vec<Value> = body["hits"]["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| serde_json::json!({ "id": h["_id"], "source": h["_source"] }))
            .collect();
        Value::Array(hits)
    }
    async fn cleanup(&self) {
        let client = reqwest::Client::new();
        for name in [format!("{}-*", self.1), format!("{}-lookups", self.1)] {
            let _ = client
                .delete(format!("http://127.0.0.1:9200/{name}"))
                .send()
                .await;
        }
    }
}

struct Cache(Arc<ProductCache>, Settings);

#[async_trait::async_trait]
impl Adapter for Cache {
    fn projection(&self) -> Arc<dyn Projection> {
        self.0.clone()
    }
    async fn snapshot(&self) -> Value {
        let mut redis = redis::Client::open(self.1.redis.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut keys: Vec<String> = redis
            .keys(format!("{}product:*", self.1.redis.key_prefix))
            .await
            .unwrap();
        keys.sort();
        let mut entries = serde_json::Map::new();
        for key in keys {
            let value: String = redis.get(&key).await.unwrap();
            entries.insert(key, serde_json::from_str(&value).unwrap());
        }
        Value::Object(entries)
    }
    async fn cleanup(&self) {
        let mut redis = redis::Client::open(self.1.redis.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let keys: Vec<String> = redis
            .keys(format!("{}*", self.1.redis.key_prefix))
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis.del(keys).await.unwrap();
        }
    }
}

struct Log(Arc<ActivityLog>, mongodb::Database);

#[async_trait::async_trait]
impl Adapter for Log {
    fn projection(&self) -> Arc<dyn Projection> {
        self.0.clone()
    }
    async fn snapshot(&self) -> Value {
        use futures::TryStreamExt;
        let docs: Vec<Document> = self
            .1
            .collection::<Document>("activity_logs")
            .find(doc! {})
            .projection(doc! { "_id": 0 })
            .sort(doc! { "eventId": 1 })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        serde_json::to_value(docs).unwrap()
    }
    async fn cleanup(&self) {
        self.1.drop().await.unwrap();
    }
}

async fn adapters(h: &Harness) -> Vec<Box<dyn Adapter>> {
    let s = &h.settings;
    let mongo = mongodb::Client::with_uri_str(&s.mongo.url).await.unwrap();
    vec![
        Box::new(Tables(
            Arc::new(CatalogTables::new(h.db.pool.clone(), Upcasters::default())),
            h.db.pool.clone(),
        )),
        Box::new(Search(
            Arc::new(
                ProductSearch::connect(
                    &s.elasticsearch.url,
                    &s.elasticsearch.products_alias,
                    Upcasters::default(),
                )
                .unwrap(),
            ),
            s.elasticsearch.products_alias.clone(),
        )),
        Box::new(Cache(
            Arc::new(
                ProductCache::connect(&s.redis.url, &s.redis.key_prefix, Upcasters::default())
                    .await
                    .unwrap(),
            ),
            s.clone(),
        )),
        Box::new(Log(
            Arc::new(
                ActivityLog::connect(&s.mongo.url, &s.mongo.database)
                    .await
                    .unwrap(),
            ),
            mongo.database(&s.mongo.database),
        )),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_projection_is_idempotent_resettable_and_rebuildable() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(4).await;
    for id in &products {
        h.append(
            "product",
            &id.to_string(),
            1,
            &[price_changed(*id, 1000, 1234)],
        )
        .await;
    }
    let events = h.recorded().await;
    let options = WorkerOptions::from_settings(&h.settings.projectors);
    let dead_letters = DeadLetters::new(h.db.pool.clone());
    for adapter in adapters(&h).await {
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
