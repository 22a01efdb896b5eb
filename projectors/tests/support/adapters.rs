//! Every real projection adapter behind one interface, with a way to read
//! back all it stored as readers see it, for the contract and rebuild tests.

use std::sync::Arc;

use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::{PgEventStore, RecordedEvent};
use infrastructure::settings::Settings;
use infrastructure::views::{product_cache_generation_key, product_cache_generation_prefix};
use mongodb::bson::{doc, Document};
use projectors::projections::activity_log::ActivityLog;
use projectors::projections::catalog_tables::CatalogTables;
use projectors::projections::orders_tables::OrdersTables;
use projectors::projections::product_cache::ProductCache;
use projectors::projections::product_search::ProductSearch;
use projectors::projections::promotion_tables::PromotionTables;
use projectors::projections::users_tables::UsersTables;
use projectors::runtime::worker::rebuild;
use projectors::runtime::{
    DeadLetter, DeadLetters, NextGeneration, Projection, ProjectionError, WorkerStats,
};
use redis::AsyncCommands;
use serde_json::Value;

use super::orders::dump_orders;
use super::promotions::dump_promotions;
use super::users::dump_users;
use super::{dump_catalog, worker_options, Harness};
use infrastructure::testing::wait_for;

/// A real adapter and a way to read back everything it stored.
#[async_trait::async_trait]
pub trait Adapter: Send + Sync {
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

struct Users(Arc<UsersTables>, sqlx::PgPool);

#[async_trait::async_trait]
impl Adapter for Users {
    fn projection(&self) -> Arc<dyn Projection> {
        self.0.clone()
    }
    async fn snapshot(&self) -> Value {
        Value::Array(dump_users(&self.1).await)
    }
}

struct Promotions(Arc<PromotionTables>, sqlx::PgPool);

#[async_trait::async_trait]
impl Adapter for Promotions {
    fn projection(&self) -> Arc<dyn Projection> {
        self.0.clone()
    }
    async fn snapshot(&self) -> Value {
        Value::Array(dump_promotions(&self.1).await)
    }
}

/// The orders tables, whose rows point at the users' and the catalog's:
/// in production their projections write those parents beside it; in the
/// shared suites, where only the projection under test runs, a reset of the
/// orders tables rebuilds the parents from the event store first, so that
/// the orders find them. Everything else is the orders tables' own.
pub struct WithParents {
    pub orders: Arc<OrdersTables>,
    parents: Vec<Arc<dyn Projection>>,
    store: PgEventStore,
}

impl WithParents {
    pub fn new(h: &Harness, orders: OrdersTables) -> Self {
        Self {
            orders: Arc::new(orders),
            parents: vec![
                Arc::new(CatalogTables::new(h.db.pool.clone(), Upcasters::default())),
                Arc::new(UsersTables::new(
                    h.db.pool.clone(),
                    Upcasters::default(),
                    h.personal(),
                )),
            ],
            store: h.store.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Projection for WithParents {
    fn name(&self) -> &'static str {
        self.orders.name()
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        self.orders.aggregate_types()
    }
    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        self.orders.apply(events).await
    }
    async fn probe(&self) -> Result<(), ProjectionError> {
        self.orders.probe().await
    }
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        self.orders.is_intact().await
    }
    async fn reset(&self) -> Result<(), ProjectionError> {
        self.orders.reset().await?;
        for parent in &self.parents {
            let types: Vec<String> = parent
                .aggregate_types()
                .iter()
                .map(|t| t.to_string())
                .collect();
            // The log's tailing read holds back events while an older
            // transaction of the cluster (another test's) is open: rebuilt
            // until the rebuild has seen every event of the parent's.
            wait_for(
                "the parents' rebuild to see the whole log",
                std::time::Duration::from_secs(60),
                || async {
                    let total: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM event_store.events WHERE aggregate_type = ANY($1)",
                    )
                    .bind(&types)
                    .fetch_one(self.store.pool())
                    .await
                    .expect("count the parent's events");
                    let replayed = rebuild(
                        parent.as_ref(),
                        &self.store,
                        &DeadLetters::new(self.store.pool().clone()),
                        &worker_options(),
                        &WorkerStats::new(),
                    )
                    .await
                    .expect("a rebuild of the parent");
                    (replayed as i64 >= total).then_some(())
                },
            )
            .await;
        }
        Ok(())
    }
    async fn mark_rebuilt(&self) -> Result<(), ProjectionError> {
        self.orders.mark_rebuilt().await
    }
    async fn forget_applied(
        &self,
        aggregate_id: &str,
        version: i64,
    ) -> Result<(), ProjectionError> {
        self.orders.forget_applied(aggregate_id, version).await
    }
    async fn next_generation(&self) -> Result<Option<Box<dyn NextGeneration>>, ProjectionError> {
        self.orders.next_generation().await
    }
}

struct Orders(Arc<WithParents>, sqlx::PgPool);

#[async_trait::async_trait]
impl Adapter for Orders {
    fn projection(&self) -> Arc<dyn Projection> {
        self.0.clone()
    }
    async fn snapshot(&self) -> Value {
        Value::Array(dump_orders(&self.1).await)
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
        // As readers see it: the live generation's entries, by the seed's
        // key shape, without the time each was written.
        let base = &self.1.redis.key_prefix;
        let live: Option<u64> = redis.get(product_cache_generation_key(base)).await.unwrap();
        let prefix = product_cache_generation_prefix(base, live.unwrap_or(0));
        let mut keys: Vec<String> = redis.keys(format!("{prefix}product:*")).await.unwrap();
        keys.sort();
        let mut entries = serde_json::Map::new();
        for key in keys {
            let value: String = redis.get(&key).await.unwrap();
            let mut entry: Value = serde_json::from_str(&value).unwrap();
            if let Value::Object(fields) = &mut entry {
                fields.remove("cachedAt");
            }
            entries.insert(key[prefix.len()..].to_owned(), entry);
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

pub async fn adapters(h: &Harness) -> Vec<Arc<dyn Adapter>> {
    let s = &h.settings;
    let mongo = mongodb::Client::with_uri_str(&s.mongo.url).await.unwrap();
    vec![
        Arc::new(Tables(
            Arc::new(CatalogTables::new(h.db.pool.clone(), Upcasters::default())),
            h.db.pool.clone(),
        )),
        Arc::new(Search(
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
        Arc::new(Cache(
            Arc::new(
                ProductCache::connect(&s.redis.url, &s.redis.key_prefix, Upcasters::default())
                    .await
                    .unwrap(),
            ),
            s.clone(),
        )),
        Arc::new(Log(
            Arc::new(
                ActivityLog::connect(
                    &s.mongo.url,
                    &s.mongo.database,
                    projectors::app::personal_data(s, &h.store).unwrap(),
                )
                .await
                .unwrap(),
            ),
            mongo.database(&s.mongo.database),
        )),
        Arc::new(Users(
            Arc::new(UsersTables::new(
                h.db.pool.clone(),
                Upcasters::default(),
                h.personal(),
            )),
            h.db.pool.clone(),
        )),
        Arc::new(Promotions(
            Arc::new(PromotionTables::new(
                h.db.pool.clone(),
                Upcasters::default(),
            )),
            h.db.pool.clone(),
        )),
        Arc::new(Orders(
            Arc::new(WithParents::new(
                h,
                OrdersTables::new(h.db.pool.clone(), Upcasters::default(), h.personal()),
            )),
            h.db.pool.clone(),
        )),
        super::payments::adapter(h),
    ]
}

/// The real adapter of the projection `name`.
pub async fn adapter_named(h: &Harness, name: &str) -> Arc<dyn Adapter> {
    adapters(h)
        .await
        .into_iter()
        .find(|a| a.projection().name() == name)
        .expect("an adapter of that name")
}

/// What the adapter's store holds after a rebuild from scratch, in place:
/// what every generation and every recovery must equal.
pub async fn rebuilt_from_scratch(h: &Harness, adapter: &dyn Adapter) -> Value {
    rebuild(
        adapter.projection().as_ref(),
        &h.store,
        &DeadLetters::new(h.db.pool.clone()),
        &worker_options(),
        &WorkerStats::new(),
    )
    .await
    .expect("a rebuild from the event store");
    adapter.snapshot().await
}
