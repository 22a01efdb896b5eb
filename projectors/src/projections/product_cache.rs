//! The Redis product cache: `{prefix}product:{id}`, the seed's shape around the
//! full product representation, refreshed on product and stock events.
//!
//! Every write goes through one Lua script that checks the stream's last
//! applied version (`{prefix}projection:product-cache:version:{stream}`) and
//! the document it read, so a redelivered or older event changes nothing and a
//! concurrent writer forces a re-read instead of a lost update. Redis keeps
//! nothing on disk here: a missing marker key means the cache was flushed,
//! and it is rebuilt from the event store.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use domain::catalog::ProductEvent;
use domain::inventory::InventoryEvent;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use infrastructure::redis_connection::{RedisConnection, RedisTimeouts};
use infrastructure::views::{product_cache_key, CachedProduct, ProductView};
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use super::product_state::{fold_product, stock_fact, StockFact};
use crate::runtime::{DeadLetter, Projection, ProjectionError};

pub const NAME: &str = "product-cache";

/// The cache entry stored under `key`, or why it cannot be folded onto: an
/// entry that does not decode is reported, never treated as absent (which
/// would drop the event, or rebuild the entry from this one event alone).
fn stored_entry(key: &str, json: Option<&str>) -> Result<Option<CachedProduct>, String> {
    json.map(|json| {
        serde_json::from_str::<CachedProduct>(json)
            .map_err(|error| format!("stored cache entry {key} cannot be decoded: {error}"))
    })
    .transpose()
}
/// The longest one event's writes may take before the store counts as down.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
const TYPES: &[&str] = &["product", "inventory"];

/// Applied = 1, stale (already applied) = 0, the document changed under us = -1.
const GUARDED_WRITE: &str = r"
local applied = tonumber(redis.call('GET', KEYS[1]) or '0')
if applied >= tonumber(ARGV[1]) then return 0 end
local current = redis.call('GET', KEYS[2]) or ''
if current ~= ARGV[2] then return -1 end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3]) end
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4]) end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

pub struct ProductCache {
    redis: RedisConnection,
    prefix: String,
    upcasters: Upcasters,
    script: Script,
}

impl ProductCache {
    pub async fn connect(url: &str, prefix: &str, upcasters: Upcasters) -> anyhow::Result<Self> {
        let timeouts = RedisTimeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(5),
            operation: OPERATION_TIMEOUT,
        };
        let cache = Self {
            redis: RedisConnection::new(url, timeouts)?,
            prefix: prefix.to_owned(),
            upcasters,
            script: Script::new(GUARDED_WRITE),
        };
        cache.redis.connection().await?;
        Ok(cache)
    }

    /// Runs `operation` bounded; a failure means the store is unavailable.
    async fn guarded<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, ProjectionError> {
        self.redis
            .guard(operation)
            .await
            .map_err(ProjectionError::unavailable)
    }

    fn own_key(&self, suffix: &str) -> String {
        format!("{}projection:{NAME}:{suffix}", self.prefix)
    }

    async fn apply_event(
        &self,
        event: &RecordedEvent,
    ) -> Result<Option<DeadLetter>, redis::RedisError> {
        match event.aggregate_type.as_str() {
            "product" => match self.upcasters.decode::<ProductEvent>(event) {
                Ok(decoded) => {
                    let product_id = product_id_of(&decoded);
                    let refused = self
                        .write_product(event, product_id, |view, stock| {
                            fold_product(view, &decoded, stock)
                        })
                        .await?;
                    Ok(refused.map(|reason| DeadLetter::for_event(event, reason)))
                }
                Err(error) => Ok(Some(DeadLetter::for_event(event, error.to_string()))),
            },
            "inventory" => match self.upcasters.decode::<InventoryEvent>(event) {
                Ok(decoded) => {
                    let Some(fact) = stock_fact(&decoded).filter(StockFact::is_product_level)
                    else {
                        return Ok(None);
                    };
                    let refused = self.write_stock(event, fact).await?;
                    Ok(refused.map(|reason| DeadLetter::for_event(event, reason)))
                }
                Err(error) => Ok(Some(DeadLetter::for_event(event, error.to_string()))),
            },
            other => Ok(Some(DeadLetter::for_event(
                event,
                format!("unexpected aggregate type {other}"),
            ))),
        }
    }

    async fn write_product(
        &self,
        event: &RecordedEvent,
        product_id: Uuid,
        fold: impl Fn(Option<ProductView>, Option<i32>) -> Option<ProductView>,
    ) -> Result<Option<String>, redis::RedisError> {
        let mut redis = self.redis.connection().await?;
        let product_key = product_cache_key(&self.prefix, product_id);
        let stock_key = self.own_key(&format!("stock:{product_id}"));
        loop {
            let current: Option<String> = redis.get(&product_key).await?;
            let stock: Option<i32> = redis.get(&stock_key).await?;
            let view = match stored_entry(&product_key, current.as_deref()) {
                Ok(cached) => cached.map(|cached| cached.product),
                Err(reason) => return Ok(Some(reason)),
            };
            let next = fold(view, stock)
                .map(|view| {
                    serde_json::to_string(&CachedProduct::new(view, Utc::now()))
                        .expect("cache entry serializes")
                })
                .unwrap_or_default();
            let outcome = self
                .guarded_write(
                    event,
                    &product_key,
                    &stock_key,
                    current.as_deref(),
                    &next,
                    "",
                )
                .await?;
            if outcome != -1 {
                return Ok(None);
            }
        }
    }

    async fn write_stock(
        &self,
        event: &RecordedEvent,
        fact: StockFact,
    ) -> Result<Option<String>, redis::RedisError> {
        let mut redis = self.redis.connection().await?;
        let product_key = product_cache_key(&self.prefix, fact.product_id);
        let stock_key = self.own_key(&format!("stock:{}", fact.product_id));
        loop {
            let current: Option<String> = redis.get(&product_key).await?;
            let cached = match stored_entry(&product_key, current.as_deref()) {
                Ok(cached) => cached,
                Err(reason) => return Ok(Some(reason)),
            };
            let next = cached
                .map(|cached| {
                    let mut view = cached.product;
                    fact.apply_to(&mut view);
                    serde_json::to_string(&CachedProduct::new(view, Utc::now()))
                        .expect("cache entry serializes")
                })
                .unwrap_or_default();
            let stock = fact.available.map(|a| a.to_string()).unwrap_or_default();
            let outcome = self
                .guarded_write(
                    event,
                    &product_key,
                    &stock_key,
                    current.as_deref(),
                    &next,
                    &stock,
                )
                .await?;
            if outcome != -1 {
                return Ok(None);
            }
        }
    }

    async fn guarded_write(
        &self,
        event: &RecordedEvent,
        product_key: &str,
        stock_key: &str,
        expected: Option<&str>,
        product_json: &str,
        stock: &str,
    ) -> Result<i32, redis::RedisError> {
        let mut redis = self.redis.connection().await?;
        self.script
            .key(self.own_key(&format!("version:{}", event.aggregate_id)))
            .key(product_key)
            .key(stock_key)
            .arg(event.version)
            .arg(expected.unwrap_or(""))
            .arg(product_json)
            .arg(stock)
            .invoke_async(&mut redis)
            .await
    }

    async fn delete_matching(&self, pattern: &str) -> Result<(), redis::RedisError> {
        let mut redis = self.redis.connection().await?;
        let keys: Vec<String> = {
            let mut iter = redis.scan_match::<_, String>(pattern).await?;
            let mut keys = Vec::new();
            while let Some(key) = futures::StreamExt::next(&mut iter).await {
                keys.push(key);
            }
            keys
        };
        let mut redis = self.redis.connection().await?;
        for chunk in keys.chunks(500) {
            let _: () = redis.del(chunk).await?;
        }
        Ok(())
    }
}

pub fn product_id_of(event: &ProductEvent) -> Uuid {
    match event {
        ProductEvent::ProductCreated { product_id, .. }
        | ProductEvent::ProductDetailsUpdated { product_id, .. }
        | ProductEvent::ProductPriceChanged { product_id, .. }
        | ProductEvent::ProductStatusChanged { product_id, .. }
        | ProductEvent::ProductFeatured { product_id, .. }
        | ProductEvent::ProductUnfeatured { product_id, .. }
        | ProductEvent::ProductImageAdded { product_id, .. }
        | ProductEvent::ProductImageRemoved { product_id, .. }
        | ProductEvent::ProductPrimaryImageChanged { product_id, .. }
        | ProductEvent::ProductImagesReordered { product_id, .. }
        | ProductEvent::ProductAttributeSet { product_id, .. }
        | ProductEvent::ProductAttributeRemoved { product_id, .. }
        | ProductEvent::ProductVariantAdded { product_id, .. }
        | ProductEvent::ProductVariantUpdated { product_id, .. }
        | ProductEvent::ProductVariantDeactivated { product_id, .. }
        | ProductEvent::ProductVariantActivated { product_id, .. } => *product_id,
    }
}

#[async_trait]
impl Projection for ProductCache {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        TYPES
    }

    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        let mut letters = Vec::new();
        for event in events {
            if let Some(letter) = self.guarded(self.apply_event(event)).await? {
                letters.push(letter);
            }
        }
        Ok(letters)
    }

    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        self.guarded(async {
            let mut redis = self.redis.connection().await?;
            redis.exists(self.own_key("initialized")).await
        })
        .await
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.guarded(async {
            self.delete_matching(&format!("{}product:*", self.prefix))
                .await?;
            self.delete_matching(&format!("{}projection:{NAME}:*", self.prefix))
                .await
        })
        .await
    }

    async fn mark_rebuilt(&self) -> Result<(), ProjectionError> {
        self.guarded(async {
            let mut redis = self.redis.connection().await?;
            redis
                .set::<_, _, ()>(self.own_key("initialized"), Utc::now().to_rfc3339())
                .await
        })
        .await
    }
}
