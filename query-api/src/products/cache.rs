//! [`ProductCache`] over Redis: `GET {prefix}product:{id}`, a JSON
//! [`CachedProduct`]. The connection is made on first use (and retried on a
//! later use when that fails), so the API starts and serves from PostgreSQL
//! while Redis is down. Short timeouts keep a dead Redis from slowing reads.

use std::time::Duration;

use infrastructure::settings::RedisSettings;
use infrastructure::views::{product_cache_key, CachedProduct};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::ProductCache;
use crate::error::StoreError;
use crate::BoxFuture;

const STORE: &str = "redis";
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);

pub struct RedisProductCache {
    client: redis::Client,
    key_prefix: String,
    connection: OnceCell<ConnectionManager>,
}

impl RedisProductCache {
    /// Checks the URL; does not connect yet.
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let client =
            redis::Client::open(settings.url.as_str()).map_err(|e| StoreError::failed(STORE, e))?;
        Ok(Self {
            client,
            key_prefix: settings.key_prefix.clone(),
            connection: OnceCell::new(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        self.connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(RESPONSE_TIMEOUT)
                    .set_number_of_retries(2)
                    .set_max_delay(500);
                let manager = ConnectionManager::new_with_config(self.client.clone(), config)
                    .await
                    .map_err(classify)?;
                tracing::info!("redis connected");
                Ok(manager)
            })
            .await
            .cloned()
    }

    #[tracing::instrument(name = "redis_get_product", skip(self), fields(product_id = %id))]
    async fn fetch(&self, id: Uuid) -> Result<Option<CachedProduct>, StoreError> {
        let key = product_cache_key(&self.key_prefix, id);
        let mut connection = self.connection().await?;
        let value: Option<String> = connection.get(&key).await.map_err(classify)?;
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
            let mut connection = self.connection().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
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
