//! The Redis product cache: `{prefix}product:{id}`, the seed's shape around the
//! full product representation, refreshed on product and stock events.
//!
//! A batch takes two round trips: one pipeline reads every entry, early
//! stock and stream version it folds onto, the events are folded in memory
//! per product, and one pipeline writes each product through a Lua script
//! that checks that nothing it read has changed. A product whose check fails
//! (a concurrent writer) has its events applied one by one, each through a
//! script that checks the stream's last applied version and both values the
//! fold read (the entry and the stock that arrived before it). Either way a
//! redelivered or older event changes nothing and a concurrent writer forces
//! a re-read instead of a lost update.
//!
//! The script's keys share one Redis Cluster slot: the bookkeeping keys of a
//! product carry the product's own key as their hash tag,
//! `{prefix}projection:product-cache:{{prefix}product:{id}}:…`, and the
//! product key keeps the seed's shape (so the prefix must hold no braces).
//!
//! Generations: the cache is written under the prefix of its live
//! generation, named by a pointer key that readers read first. A blue/green
//! rebuild fills the next generation's prefix, moves the pointer, then
//! deletes the old generation's keys; a reader that read the pointer just
//! before the move at worst misses and reads PostgreSQL.
//!
//! The "initialized" marker holds the entries' layout and the `run_id` of
//! the Redis server that the cache was built on. A restarted server
//! (restored from an older snapshot, or a promoted replica that missed
//! writes) has another run, and an upgrade may bring another layout, so the
//! cache is then rebuilt from the event store rather than trusted.
//!
//! Beside each entry, the stock record keeps the latest level inventory
//! gave for the product and for each of its variants (`EarlyStock`): stock
//! events travel on another topic and can arrive before the product or
//! variant they concern, which then starts from them.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use domain::catalog::ProductEvent;
use domain::inventory::InventoryEvent;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use infrastructure::redis_connection::{RedisConnection, RedisTimeouts};
use infrastructure::views::{
    product_cache_generation_key, product_cache_key, CachedProduct, ProductView,
};
use redis::Script;
use uuid::Uuid;

use super::product_state::{fold_product, stock_fact, EarlyStock, StockFact};
use crate::runtime::{DeadLetter, NextGeneration, Projection, ProjectionError};
use crate::stores::redis::Generations;

pub const NAME: &str = "product-cache";

/// The version of the entries' layout. 2: the product's images, attributes
/// and variants, and a stock record holding each variant's level too.
const ENTRY_LAYOUT: &str = "layout-2";

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
    place: Generations,
    upcasters: Upcasters,
    script: Script,
    batch_script: Script,
    batched: bool,
}

impl ProductCache {
    pub async fn connect(url: &str, prefix: &str, upcasters: Upcasters) -> anyhow::Result<Self> {
        let timeouts = RedisTimeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(5),
            operation: OPERATION_TIMEOUT,
        };
        let cache = Self {
            place: Generations::new(
                RedisConnection::new(url, timeouts)?,
                prefix,
                product_cache_generation_key(prefix),
                NAME,
                ENTRY_LAYOUT,
            ),
            upcasters,
            script: Script::new(GUARDED_WRITE),
            batch_script: Script::new(BATCH_WRITE),
            batched: true,
        };
        // No connection yet: Redis down at boot holds back this projection
        // (its worker waits for the store), not the process.
        Ok(cache)
    }

    /// Applies every event on its own, one script call each: the reference
    /// the batched path is compared with.
    pub fn one_event_at_a_time(mut self) -> Self {
        self.batched = false;
        self
    }

    async fn guarded<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, ProjectionError> {
        self.place.guarded(operation).await
    }

    /// The prefix of the generation this instance writes.
    fn prefix(&self) -> String {
        self.place.prefix()
    }

    fn own_key(&self, suffix: &str) -> String {
        self.place.own_key(suffix)
    }

    /// A bookkeeping key of one product, in its entry's cluster slot.
    fn product_own_key(&self, product_id: Uuid, suffix: &str) -> String {
        let entry = product_cache_key(&self.prefix(), product_id);
        self.own_key(&format!("{{{entry}}}:{suffix}"))
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
                    let Some(fact) = stock_fact(&decoded) else {
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
        fold: impl Fn(Option<ProductView>, &EarlyStock) -> Option<ProductView>,
    ) -> Result<Option<String>, redis::RedisError> {
        let mut redis = self.place.redis().connection().await?;
        let product_key = product_cache_key(&self.prefix(), product_id);
        let stock_key = self.product_own_key(product_id, "stock");
        loop {
            let (current, stock_read): (Option<String>, Option<String>) = redis::pipe()
                .get(&product_key)
                .get(&stock_key)
                .query_async(&mut redis)
                .await?;
            let stock = EarlyStock::parse(stock_read.as_deref());
            let view = match stored_entry(&product_key, current.as_deref()) {
                Ok(cached) => cached.map(|cached| cached.product),
                Err(reason) => return Ok(Some(reason)),
            };
            let next = fold(view, &stock)
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
        let mut redis = self.place.redis().connection().await?;
        let product_key = product_cache_key(&self.prefix(), fact.product_id);
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
                    fact.apply_to_row(&mut view);
                    serde_json::to_string(&CachedProduct::new(view, Utc::now()))
                        .expect("cache entry serializes")
                })
                .unwrap_or_default();
            let mut early = EarlyStock::parse(stock_read.as_deref());
            let stock = if early.record(&fact) {
                early.encode()
            } else {
                String::new()
            };
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
        let mut redis = self.place.redis().connection().await?;
        self.script
            .key(self.product_own_key(product_id, &format!("version:{}", event.aggregate_id)))
            .key(product_cache_key(&self.prefix(), product_id))
            .key(self.product_own_key(product_id, "stock"))
            .arg(event.version)
            .arg(read.entry.unwrap_or(""))
            .arg(read.stock.unwrap_or(""))
            .arg(product_json)
            .arg(stock)
            .invoke_async(&mut redis)
            .await
    }

    /// The whole batch in two round trips: one pipeline reads every entry,
    /// stock and version it folds onto; the events are folded in memory per
    /// product; one pipeline writes each product with a script that checks
    /// nothing it read has changed. Returns the dead letters and the events
    /// of products whose check failed, to be applied one by one.
    async fn apply_batch<'e>(
        &self,
        events: &'e [RecordedEvent],
    ) -> Result<(Vec<DeadLetter>, Vec<&'e RecordedEvent>), redis::RedisError> {
        let mut letters = Vec::new();
        let mut products: BTreeMap<Uuid, Vec<(&RecordedEvent, Change)>> = BTreeMap::new();
        for event in events {
            match self.change_of(event) {
                Ok(Some((product_id, change))) => products
                    .entry(product_id)
                    .or_default()
                    .push((event, change)),
                Ok(None) => {}
                Err(reason) => letters.push(DeadLetter::for_event(event, reason)),
            }
        }
        if products.is_empty() {
            return Ok((letters, Vec::new()));
        }
        let mut redis = self.place.redis().connection().await?;
        let mut reads = redis::pipe();
        let mut folds = Vec::with_capacity(products.len());
        for (product_id, changes) in products {
            let mut aggregates: Vec<String> = changes
                .iter()
                .map(|(e, _)| e.aggregate_id.clone())
                .collect();
            aggregates.sort();
            aggregates.dedup();
            let fold = ProductFold {
                entry_key: product_cache_key(&self.prefix(), product_id),
                stock_key: self.product_own_key(product_id, "stock"),
                version_keys: aggregates
                    .iter()
                    .map(|a| self.product_own_key(product_id, &format!("version:{a}")))
                    .collect(),
                aggregates,
                changes,
            };
            reads.get(&fold.entry_key).get(&fold.stock_key);
            for key in &fold.version_keys {
                reads.get(key);
            }
            folds.push(fold);
        }
        let read: Vec<Option<String>> = reads.query_async(&mut redis).await?;
        let mut read = read.into_iter();
        let mut writes = redis::pipe();
        writes.cmd("SCRIPT").arg("LOAD").arg(BATCH_WRITE).ignore();
        let mut written = Vec::new();
        for fold in folds {
            let entry = read.next().flatten();
            let stock = read.next().flatten();
            let versions: Vec<Option<String>> = fold
                .version_keys
                .iter()
                .map(|_| read.next().flatten())
                .collect();
            match fold.fold(entry.as_deref(), stock.as_deref(), &versions) {
                Folded::Refused(reason) => letters.extend(
                    fold.changes
                        .iter()
                        .map(|(event, _)| DeadLetter::for_event(event, reason.clone())),
                ),
                Folded::Unchanged => {}
                Folded::Write {
                    entry: next_entry,
                    stock: next_stock,
                    versions: next_versions,
                } => {
                    let command = writes.cmd("EVALSHA").arg(self.batch_script.get_hash());
                    command.arg(2 + fold.version_keys.len());
                    command.arg(&fold.entry_key).arg(&fold.stock_key);
                    for key in &fold.version_keys {
                        command.arg(key);
                    }
                    command
                        .arg(entry.as_deref().unwrap_or(""))
                        .arg(stock.as_deref().unwrap_or(""))
                        .arg(fold.version_keys.len());
                    for version in &versions {
                        command.arg(version.as_deref().unwrap_or(""));
                    }
                    command.arg(next_entry).arg(next_stock);
                    for version in next_versions {
                        command.arg(version);
                    }
                    written.push(fold.changes);
                }
            }
        }
        if written.is_empty() {
            return Ok((letters, Vec::new()));
        }
        let outcomes: Vec<i32> = writes.query_async(&mut redis).await?;
        let contended = written
            .into_iter()
            .zip(outcomes)
            .filter(|(_, outcome)| *outcome == -1)
            .flat_map(|(changes, _)| changes.into_iter().map(|(event, _)| event))
            .collect();
        Ok((letters, contended))
    }

    /// The product an event folds onto and how, `None` when it changes
    /// nothing cached, or why it cannot be applied.
    fn change_of(&self, event: &RecordedEvent) -> Result<Option<(Uuid, Change)>, String> {
        match event.aggregate_type.as_str() {
            "product" => {
                let decoded = self
                    .upcasters
                    .decode::<ProductEvent>(event)
                    .map_err(|e| e.to_string())?;
                Ok(Some((
                    product_id_of(&decoded),
                    Change::Product(Box::new(decoded)),
                )))
            }
            "inventory" => {
                let decoded = self
                    .upcasters
                    .decode::<InventoryEvent>(event)
                    .map_err(|e| e.to_string())?;
                Ok(stock_fact(&decoded).map(|fact| (fact.product_id, Change::Stock(fact))))
            }
            other => Err(format!("unexpected aggregate type {other}")),
        }
    }
}

/// KEYS: the entry, the early stock, then the version of each aggregate the
/// batch folded. ARGV: the entry and the stock as read, the number of
/// version keys N, the N versions as read, the entry and the stock to write
/// ('' = leave), the N versions to write ('' = leave). Written = 1; anything
/// changed since the read = -1, and nothing is written.
const BATCH_WRITE: &str = r"
local n = tonumber(ARGV[3])
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return -1 end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then return -1 end
for i = 1, n do
  if (redis.call('GET', KEYS[2 + i]) or '') ~= ARGV[3 + i] then return -1 end
end
if ARGV[4 + n] ~= '' then redis.call('SET', KEYS[1], ARGV[4 + n]) end
if ARGV[5 + n] ~= '' then redis.call('SET', KEYS[2], ARGV[5 + n]) end
for i = 1, n do
  if ARGV[5 + n + i] ~= '' then redis.call('SET', KEYS[2 + i], ARGV[5 + n + i]) end
end
return 1
";

/// How one event changes a product's cache entry.
enum Change {
    Product(Box<ProductEvent>),
    Stock(StockFact),
}

/// One product's events in a batch, with the keys they fold onto.
struct ProductFold<'e> {
    entry_key: String,
    stock_key: String,
    aggregates: Vec<String>,
    version_keys: Vec<String>,
    changes: Vec<(&'e RecordedEvent, Change)>,
}

enum Folded {
    /// The stored entry does not decode: every event folding onto it is
    /// dead-lettered and the entry left alone.
    Refused(String),
    /// Nothing to write: every event was applied already or wrote nothing.
    Unchanged,
    /// What to write, '' where a value stays as it is.
    Write {
        entry: String,
        stock: String,
        versions: Vec<String>,
    },
}

impl ProductFold<'_> {
    /// Folds the events in order, as the one-by-one path would: an event at
    /// or below its aggregate's version is skipped, and one that writes
    /// nothing records no version.
    fn fold(
        &self,
        entry: Option<&str>,
        stock: Option<&str>,
        versions: &[Option<String>],
    ) -> Folded {
        let mut view = match stored_entry(&self.entry_key, entry) {
            Ok(cached) => cached.map(|cached| cached.product),
            Err(reason) => return Folded::Refused(reason),
        };
        let mut early = EarlyStock::parse(stock);
        let mut applied: Vec<i64> = versions
            .iter()
            .map(|v| v.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0))
            .collect();
        let mut written_versions: Vec<Option<i64>> = vec![None; applied.len()];
        let (mut entry_changed, mut stock_changed) = (false, false);
        for (event, change) in &self.changes {
            let slot = self
                .aggregates
                .iter()
                .position(|a| *a == event.aggregate_id)
                .expect("every aggregate of the fold has a slot");
            if applied[slot] >= event.version {
                continue;
            }
            let wrote = match change {
                Change::Product(decoded) => match fold_product(view.clone(), decoded, &early) {
                    Some(next) => {
                        view = Some(next);
                        entry_changed = true;
                        true
                    }
                    None => false,
                },
                Change::Stock(fact) => {
                    let mut wrote = false;
                    if let Some(current) = view.as_mut() {
                        fact.apply_to_row(current);
                        entry_changed = true;
                        wrote = true;
                    }
                    if early.record(fact) {
                        stock_changed = true;
                        wrote = true;
                    }
                    wrote
                }
            };
            if wrote {
                applied[slot] = event.version;
                written_versions[slot] = Some(event.version);
            }
        }
        if !entry_changed && !stock_changed {
            return Folded::Unchanged;
        }
        let entry = match (entry_changed, view) {
            (true, Some(view)) => serde_json::to_string(&CachedProduct::new(view, Utc::now()))
                .expect("cache entry serializes"),
            _ => String::new(),
        };
        let stock = if stock_changed {
            early.encode()
        } else {
            String::new()
        };
        Folded::Write {
            entry,
            stock,
            versions: written_versions
                .into_iter()
                .map(|v| v.map(|v| v.to_string()).unwrap_or_default())
                .collect(),
        }
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
        self.guarded(self.place.follow_live()).await?;
        let (mut letters, contended) = if self.batched {
            self.guarded(self.apply_batch(events)).await?
        } else {
            (Vec::new(), events.iter().collect())
        };
        // Entries another writer changed between the batch's read and its
        // write: their events go one by one, each re-reading until it wins.
        for event in contended {
            if let Some(letter) = self.guarded(self.apply_event(event)).await? {
                letters.push(letter);
            }
        }
        Ok(letters)
    }

    /// False when the marker is missing (a flushed cache) or was written by
    /// another run of the server (a restart that may have lost writes).
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        self.place.is_intact().await
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.guarded(self.place.follow_live()).await?;
        self.delete_generation().await
    }

    /// Marks the generation complete and, for the live instance, points
    /// readers at it again: a flushed server lost the pointer with the rest.
    async fn mark_rebuilt(&self) -> Result<(), ProjectionError> {
        self.place.mark_built().await
    }

    async fn next_generation(&self) -> Result<Option<Box<dyn NextGeneration>>, ProjectionError> {
        let live = self.guarded(self.place.live()).await?;
        let next = self.at_generation(live + 1);
        // What an interrupted rebuild left under that prefix.
        next.delete_generation().await?;
        Ok(Some(Box::new(NextCache {
            cache: next,
            old: live,
        })))
    }

    fn generation_swapped(&self) {
        self.place.mark_stale();
    }
}

impl ProductCache {
    /// The cache under the prefix of `generation`, whatever is live.
    fn at_generation(&self, generation: u64) -> ProductCache {
        ProductCache {
            place: self.place.at(generation),
            upcasters: self.upcasters.clone(),
            script: Script::new(GUARDED_WRITE),
            batch_script: Script::new(BATCH_WRITE),
            batched: self.batched,
        }
    }

    async fn delete_generation(&self) -> Result<(), ProjectionError> {
        self.place.delete_generation("product:*").await
    }
}

struct NextCache {
    cache: ProductCache,
    old: u64,
}

#[async_trait]
impl NextGeneration for NextCache {
    fn projection(&self) -> &dyn Projection {
        &self.cache
    }

    async fn swap(self: Box<Self>) -> Result<(), ProjectionError> {
        let cache = &self.cache;
        cache.guarded(cache.place.point_readers_here()).await?;
        cache.at_generation(self.old).delete_generation().await
    }
}
