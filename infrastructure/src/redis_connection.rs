//! A Redis connection that heals itself. `redis`'s `ConnectionManager` can get
//! stuck after its server went away mid-request (seen here behind a proxy
//! that cut connections): requests then hang past their timeouts and never
//! recover. This wrapper bounds every operation, and after any failure throws
//! the manager away, so the next attempt connects afresh.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisError;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Copy)]
pub struct RedisTimeouts {
    pub connect: Duration,
    pub response: Duration,
    /// The longest a whole operation (several commands) may take.
    pub operation: Duration,
}

pub struct RedisConnection {
    client: redis::Client,
    timeouts: RedisTimeouts,
    manager: Mutex<Option<ConnectionManager>>,
}

impl RedisConnection {
    /// Checks the URL; connects on first use.
    pub fn new(url: &str, timeouts: RedisTimeouts) -> Result<Self, RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            timeouts,
            manager: Mutex::new(None),
        })
    }

    /// Another connection to the same server, under the same bounds.
    pub fn another(&self) -> Self {
        Self {
            client: self.client.clone(),
            timeouts: self.timeouts,
            manager: Mutex::new(None),
        }
    }

    /// The current connection, or a new one.
    pub async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let mut slot = self.manager.lock().await;
        if let Some(manager) = slot.as_ref() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeouts.connect)
            .set_response_timeout(self.timeouts.response)
            .set_number_of_retries(1);
        let connect = ConnectionManager::new_with_config(self.client.clone(), config);
        let manager = tokio::time::timeout(self.timeouts.connect * 2, connect)
            .await
            .map_err(|_| timed_out("connecting"))??;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    /// Runs `operation` within the operation timeout; on any failure the
    /// connection is discarded and the error returned.
    pub async fn guard<T>(
        &self,
        operation: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, RedisError> {
        let result = match tokio::time::timeout(self.timeouts.operation, operation).await {
            Ok(result) => result,
            Err(_) => Err(timed_out("an operation")),
        };
        if result.is_err() {
            self.manager.lock().await.take();
        }
        result
    }
}

fn timed_out(what: &str) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("redis timed out {what}"),
    ))
}
