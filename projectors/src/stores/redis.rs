//! Generations of a Redis read model: every key of generation N lives under
//! `{prefix}gN:` (generation 0 under the bare prefix), a pointer key names
//! the live one, and readers read the pointer first. A blue/green rebuild
//! fills the next generation's prefix, moves the pointer, then deletes the
//! old generation's keys.
//!
//! The "initialized" marker holds the entries' layout and the `run_id` of
//! the Redis server the generation was built on: a restarted server
//! (restored from an older snapshot, or a promoted replica that missed
//! writes) has another run, and an upgrade may bring another layout, so
//! the generation is then rebuilt rather than trusted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use infrastructure::redis_connection::RedisConnection;
use infrastructure::views::product_cache_generation_prefix;
use redis::AsyncCommands;

use crate::runtime::ProjectionError;

/// One Redis read model's place: its connection, its prefix and pointer,
/// and the generation this instance writes.
pub struct Generations {
    redis: RedisConnection,
    /// The configured prefix, under which every generation lives.
    base: String,
    /// The key that names the live generation.
    pointer: String,
    projection: &'static str,
    layout: &'static str,
    generation: AtomicU64,
    /// The live generation must be read from the pointer before the next
    /// write: at start, and after another process swapped.
    stale: AtomicBool,
    /// A generation being built, whatever the pointer says.
    pinned: bool,
}

impl Generations {
    /// Follows the live generation. `pointer` is the key readers read it
    /// from; `layout` names the entries' shape (see the module docs).
    pub fn new(
        redis: RedisConnection,
        base: &str,
        pointer: String,
        projection: &'static str,
        layout: &'static str,
    ) -> Self {
        Self {
            redis,
            base: base.to_owned(),
            pointer,
            projection,
            layout,
            generation: AtomicU64::new(0),
            stale: AtomicBool::new(true),
            pinned: false,
        }
    }

    /// The same read model pinned to `generation`, whatever is live, on a
    /// connection of its own.
    pub fn at(&self, generation: u64) -> Self {
        Self {
            redis: self.redis.another(),
            base: self.base.clone(),
            pointer: self.pointer.clone(),
            projection: self.projection,
            layout: self.layout,
            generation: AtomicU64::new(generation),
            stale: AtomicBool::new(false),
            pinned: true,
        }
    }

    pub fn redis(&self) -> &RedisConnection {
        &self.redis
    }

    /// Runs `operation` bounded; a failure means the store is unavailable.
    pub async fn guarded<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, ProjectionError> {
        self.redis
            .guard(operation)
            .await
            .map_err(ProjectionError::unavailable)
    }

    /// The prefix of the generation this instance writes.
    pub fn prefix(&self) -> String {
        product_cache_generation_prefix(&self.base, self.generation.load(Ordering::SeqCst))
    }

    /// A bookkeeping key of the projection, in this generation.
    pub fn own_key(&self, suffix: &str) -> String {
        format!("{}projection:{}:{suffix}", self.prefix(), self.projection)
    }

    /// Reads which generation is live, when that may have changed.
    pub async fn follow_live(&self) -> Result<(), redis::RedisError> {
        if self.pinned || !self.stale.load(Ordering::SeqCst) {
            return Ok(());
        }
        let live = self.live().await?;
        self.generation.store(live, Ordering::SeqCst);
        self.stale.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Another process swapped generations: read the pointer again.
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::SeqCst);
    }

    /// The live generation, as the pointer names it.
    pub async fn live(&self) -> Result<u64, redis::RedisError> {
        let mut redis = self.redis.connection().await?;
        let live: Option<u64> = redis.get(&self.pointer).await?;
        Ok(live.unwrap_or(0))
    }

    /// False when the marker is missing (a flushed server) or names another
    /// layout or run of the server.
    pub async fn is_intact(&self) -> Result<bool, ProjectionError> {
        self.guarded(async {
            // Read the pointer afresh: right after another process swapped,
            // the generation this instance last wrote is gone, and must not
            // be taken for a lost read model.
            self.mark_stale();
            self.follow_live().await?;
            let mut redis = self.redis.connection().await?;
            let marker: Option<String> = redis.get(self.own_key("initialized")).await?;
            let Some(built_on) = marker else {
                return Ok(false);
            };
            let running = self.marker().await?;
            if built_on != running {
                tracing::warn!(
                    projection = self.projection,
                    built_on = %built_on,
                    running = %running,
                    "redis restarted or the layout changed since the generation was built"
                );
                return Ok(false);
            }
            Ok(true)
        })
        .await
    }

    /// Marks the generation complete and, unless pinned, points readers at
    /// it again: a flushed server lost the pointer with the rest.
    pub async fn mark_built(&self) -> Result<(), ProjectionError> {
        self.guarded(async {
            let marker = self.marker().await?;
            let mut redis = self.redis.connection().await?;
            redis
                .set::<_, _, ()>(self.own_key("initialized"), marker)
                .await?;
            if !self.pinned {
                self.point_readers_here().await?;
            }
            Ok(())
        })
        .await
    }

    pub async fn point_readers_here(&self) -> Result<(), redis::RedisError> {
        let mut redis = self.redis.connection().await?;
        redis
            .set::<_, _, ()>(&self.pointer, self.generation.load(Ordering::SeqCst))
            .await
    }

    /// Deletes the generation's `entries` (a pattern under its prefix, such
    /// as `product:*`) and its bookkeeping.
    pub async fn delete_generation(&self, entries: &str) -> Result<(), ProjectionError> {
        self.delete_matching(&format!("{}{entries}", self.prefix()))
            .await?;
        self.delete_matching(&format!(
            "{}projection:{}:*",
            self.prefix(),
            self.projection
        ))
        .await
    }

    /// Deletes every key matching `pattern`, a page of `SCAN` at a time,
    /// each page bounded on its own: a generation can hold millions of keys,
    /// far more than one operation's timeout allows.
    async fn delete_matching(&self, pattern: &str) -> Result<(), ProjectionError> {
        let mut cursor = 0u64;
        loop {
            let next = self
                .guarded(async {
                    let mut redis = self.redis.connection().await?;
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut redis)
                        .await?;
                    if !keys.is_empty() {
                        let _: () = redis.del(keys).await?;
                    }
                    Ok(next)
                })
                .await?;
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// What the marker holds for a generation built now: the layout and
    /// the server's `run_id`, which changes whenever it restarts.
    async fn marker(&self) -> Result<String, redis::RedisError> {
        let mut redis = self.redis.connection().await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut redis)
            .await?;
        let run_id = info
            .lines()
            .find_map(|line| line.strip_prefix("run_id:"))
            .map(|id| id.trim().to_owned())
            .ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::ResponseError,
                    "INFO server has no run_id",
                ))
            })?;
        Ok(format!("{}:{run_id}", self.layout))
    }
}
