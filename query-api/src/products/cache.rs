//! [`ProductCache`] over Redis: the live generation's pointer, then
//! `GET {prefix}product:{id}` under that generation's prefix, a JSON
//! [`CachedProduct`]. The connection is made on first use and remade after
//! any failure (`RedisConnection`), so the API starts and serves from
//! PostgreSQL while Redis is down, and uses Redis again once it is back.
//! Short timeouts keep a dead Redis from slowing reads.

use std::time::Duration;

use infrastructure::redis_connection::{RedisConnection, RedisTimeouts};
use infrastructure::settings::RedisSettings;
use infrastructure::views::{
    product_cache_generation_key, product_cache_generation_prefix, product_cache_key, CachedProduct,
};
use redis::AsyncCommands;
use uuid::Uuid;

use super::ProductCache;
use crate::error::StoreError;
use crate::BoxFuture;

const STORE: &str = "redis";
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);

pub struct RedisProductCache {
    redis: RedisConnection,
    key_prefix: String,
}

impl RedisProductCache {
    /// Checks the URL; does not connect yet.
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let timeouts = RedisTimeouts {
            connect: CONNECT_TIMEOUT,
            response: RESPONSE_TIMEOUT,
            operation: RESPONSE_TIMEOUT * 2,
        };
        let redis = RedisConnection::new(settings.url.as_str(), timeouts)
            .map_err(|e| StoreError::failed(STORE, e))?;
        Ok(Self {
            redis,
            key_prefix: settings.key_prefix.clone(),
        })
    }

    #[tracing::instrument(name = "redis_get_product", skip(self), fields(product_id = %id))]
    async fn fetch(&self, id: Uuid) -> Result<Option<CachedProduct>, StoreError> {
        // The live generation first: a rebuild fills the next one beside it
        // and then moves this pointer.
        let (key, value): (String, Option<String>) = self
            .redis
            .guard(async {
                let mut connection = self.redis.connection().await?;
                let generation: Option<u64> = connection
                    .get(product_cache_generation_key(&self.key_prefix))
                    .await?;
                let prefix =
                    product_cache_generation_prefix(&self.key_prefix, generation.unwrap_or(0));
                let key = product_cache_key(&prefix, id);
                let value = connection.get(&key).await?;
                Ok((key, value))
            })
            .await
            .map_err(classify)?;
        let Some(value) = value else {
            return Ok(None);
        };
        let cached = serde_json::from_str::<CachedProduct>(&value).map_err(|e| {
            StoreError::failed(
                STORE,
                anyhow::Error::new(e).context(format!("cache entry {key} is not a cached product")),
            )
        })?;
        Ok(Some(cached))
    }
}

impl ProductCache for RedisProductCache {
    fn get(&self, id: Uuid) -> BoxFuture<'_, Result<Option<CachedProduct>, StoreError>> {
        Box::pin(self.fetch(id))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.redis
                .guard(async {
                    let mut connection = self.redis.connection().await?;
                    redis::cmd("PING")
                        .query_async::<String>(&mut connection)
                        .await
                })
                .await
                .map(|_| ())
                .map_err(classify)
        })
    }
}

fn classify(error: redis::RedisError) -> StoreError {
    if error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_unrecoverable_error()
    {
        StoreError::unavailable(STORE, error)
    } else {
        StoreError::failed(STORE, error)
    }
}
