//! The Redis product cache: `{prefix}product:{id}`, the seed's shape around the
//! full product representation, refreshed on product and stock events.
//!
//! Every write goes through one Lua script that checks the stream's last
//! applied version and both values the fold read (the entry and the stock
//! that arrived before it), so a redelivered or older event changes nothing
//! and a concurrent writer forces a re-read instead of a lost update.
//!
//! The script's keys share one Redis Cluster slot: the bookkeeping keys of a
//! product carry the product's own key as their hash tag,
//! `{prefix}projection:product-cache:{{prefix}product:{id}}:…`, and the
//! product key keeps the seed's shape (so the prefix must hold no braces).
//!
//! The "initialized" marker holds the `run_id` of the Redis server that the
//! cache was built on. A restarted server (restored from an older snapshot,
//! or a promoted replica that missed writes) has another, so the cache is
//! rebuilt from the event store rather than trusted.

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

/// KEYS: the stream's version, the entry, the early stock. ARGV: the event's
/// version, the entry and the stock as read, the entry and stock to write
/// ('' = leave). Applied = 1, stale (already applied) = 0, the entry or the
/// stock changed under us = -1. An event that writes nothing records no
/// version: a creation replayed later must still apply.
const GUARDED_WRITE: &str = r"
local applied = tonumber(redis.call('GET', KEYS[1]) or '0')
if applied >= tonumber(ARGV[1]) then return 0 end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then return -1 end
if (redis.call('GET', KEYS[3]) or '') ~= ARGV[3] then return -1 end
if ARGV[4] == '' and ARGV[5] == '' then return 1 end
if ARGV[4] ~= '' then redis.call('SET', KEYS[2], ARGV[4]) end
if ARGV[5] ~= '' then redis.call('SET', KEYS[3], ARGV[5]) end
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
        // No connection yet: Redis down at boot holds back this projection
        // (its worker waits for the store), not the process.
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

    /// A bookkeeping key of one product, in its entry's cluster slot.
    fn product_own_key(&self, product_id: Uuid, suffix: &str) -> String {
        let entry = product_cache_key(&self.prefix, product_id);
        self.own_key(&format!("{{{entry}}}:{suffix}"))
    }

    /// The server's `run_id`, which changes whenever it restarts.
    async fn server_run_id(&self) -> Result<String, redis::RedisError> {
        let mut redis = self.redis.connection().await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut redis)
            .await?;
        info.lines()
            .find_map(|line| line.strip_prefix("run_id:"))
            .map(|id| id.trim().to_owned())
            .ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::ResponseError,
                    "INFO server has no run_id",
                ))
            })
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
        let stock_key = self.product_own_key(product_id, "stock");
        loop {
            let (current, stock_read): (Option<String>, Option<String>) = redis::pipe()
                .get(&product_key)
                .get(&stock_key)
                .query_async(&mut redis)
                .await?;
            let stock = stock_read.as_deref().and_then(|s| s.parse::<i32>().ok());
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
                    product_id,
                    Read {
                        entry: current.as_deref(),
                        stock: stock_read.as_deref(),
                    },
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
        let stock_key = self.product_own_key(fact.product_id, "stock");
        loop {
            let (current, stock_read): (Option<String>, Option<String>) = redis::pipe()
                .get(&product_key)
                .get(&stock_key)
                .query_async(&mut redis)
                .await?;
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
                    fact.product_id,
                    Read {
                        entry: current.as_deref(),
                        stock: stock_read.as_deref(),
                    },
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
        product_id: Uuid,
        read: Read<'_>,
        product_json: &str,
        stock: &str,
    ) -> Result<i32, redis::RedisError> {
        let mut redis = self.redis.connection().await?;
        self.script
            .key(self.product_own_key(product_id, &format!("version:{}", event.aggregate_id)))
            .key(product_cache_key(&self.prefix, product_id))
            .key(self.product_own_key(product_id, "stock"))
            .arg(event.version)
            .arg(read.entry.unwrap_or(""))
            .arg(read.stock.unwrap_or(""))
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

/// What a fold read, which the write checks is still there.
#[derive(Clone, Copy)]
struct Read<'a> {
    entry: Option<&'a str>,
    stock: Option<&'a str>,
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

    /// False when the marker is missing (a flushed cache) or was written by
    /// another run of the server (a restart that may have lost writes).
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        self.guarded(async {
            let mut redis = self.redis.connection().await?;
            let marker: Option<String> = redis.get(self.own_key("initialized")).await?;
            let Some(built_on) = marker else {
                return Ok(false);
            };
            let running = self.server_run_id().await?;
            if built_on != running {
                tracing::warn!(
                    projection = NAME,
                    built_on = %built_on,
                    running = %running,
                    "redis restarted since the cache was built"
                );
                return Ok(false);
            }
            Ok(true)
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
            let running = self.server_run_id().await?;
            let mut redis = self.redis.connection().await?;
            redis
                .set::<_, _, ()>(self.own_key("initialized"), running)
                .await
        })
        .await
    }
}
