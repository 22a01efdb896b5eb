//! [`CartCache`] over Redis: the live generation's pointer, then
//! `GET {prefix}cart:{userId}` (or `cart:guest:{sessionId}`) under that
//! generation's prefix, a JSON [`CachedCart`]. Connected on first use and
//! remade after any failure, with short timeouts, as the product cache is:
//! a Redis that is down costs a cart read its cache, not the read.

use std::time::Duration;

use infrastructure::redis_connection::{RedisConnection, RedisTimeouts};
use infrastructure::settings::RedisSettings;
use infrastructure::views::carts::{
    cart_cache_generation_key, cart_cache_generation_prefix, cart_cache_key, CachedCart,
    CartOwnerView,
};
use redis::AsyncCommands;

use super::CartCache;
use crate::error::StoreError;
use crate::BoxFuture;

const STORE: &str = "redis";
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);

pub struct RedisCartCache {
    redis: RedisConnection,
    key_prefix: String,
}

impl RedisCartCache {
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

    #[tracing::instrument(name = "redis_get_cart", skip_all)]
    async fn fetch(&self, owner: &CartOwnerView) -> Result<Option<CachedCart>, StoreError> {
        // The live generation first: a rebuild fills the next one beside it
        // and then moves this pointer.
        let (key, value): (String, Option<String>) = self
            .redis
            .guard(async {
                let mut connection = self.redis.connection().await?;
                let generation: Option<u64> = connection
                    .get(cart_cache_generation_key(&self.key_prefix))
                    .await?;
                let prefix =
                    cart_cache_generation_prefix(&self.key_prefix, generation.unwrap_or(0));
                let key = cart_cache_key(&prefix, owner);
                let value = connection.get(&key).await?;
                Ok((key, value))
            })
            .await
            .map_err(classify)?;
        let Some(value) = value else {
            return Ok(None);
        };
        let cached = serde_json::from_str::<CachedCart>(&value).map_err(|e| {
            StoreError::failed(
                STORE,
                anyhow::Error::new(e).context(format!("cache entry {key} is not a cached cart")),
            )
        })?;
        Ok(Some(cached))
    }
}

impl CartCache for RedisCartCache {
    fn get<'a>(
        &'a self,
        owner: &'a CartOwnerView,
    ) -> BoxFuture<'a, Result<Option<CachedCart>, StoreError>> {
        Box::pin(self.fetch(owner))
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
