//! Fixed-window rate limits in Redis, shared by both APIs.
//!
//! A client's window is an entry shaped like the seed's
//! `rate_limit:api:{ip}`, `{count, resetAt}`, one per class of route
//! (`rate_limit:api:{ip}` for reads, the seed's, then `rate_limit:write:{ip}`
//! and `rate_limit:auth:{ip}`, so that each limit counts only its own
//! requests), counted by one Lua script, so concurrent requests on
//! any number of API processes never lose a count. Windows are aligned on the
//! clock (every `window` seconds since the epoch), so all processes agree on
//! when one resets. Stricter limits per account (logins) use
//! `rate_limit:login:{blind index}`, which never names the account in the
//! clear.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use redis::Script;
use serde::Deserialize;

use crate::redis_connection::{RedisConnection, RedisTimeouts};

/// One limit: at most `limit` requests per `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Limit {
    pub limit: u64,
    pub window_seconds: u64,
}

/// The limits of each class of route.
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// Reads of the query API, per client address.
    pub read: Limit,
    /// Commands, per client address.
    pub write: Limit,
    /// Registration and login, per client address.
    pub auth: Limit,
    /// Logins per account, whatever address they come from.
    pub login_per_account: Limit,
    /// One-time code requests and attempts per account: what bounds the
    /// guesses against a code, and the mail sent to one address.
    pub codes_per_account: Limit,
}

/// Where a request stands in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub limit: Limit,
    /// Requests counted in this window, this one included.
    pub count: u64,
    pub reset_at: DateTime<Utc>,
}

impl Standing {
    pub fn allowed(&self) -> bool {
        self.count <= self.limit.limit
    }

    pub fn remaining(&self) -> u64 {
        self.limit.limit.saturating_sub(self.count)
    }

    /// Whole seconds until the window resets, at least 1.
    pub fn reset_after(&self, now: DateTime<Utc>) -> u64 {
        let millis = (self.reset_at - now).num_milliseconds().max(0) as u64;
        millis.div_ceil(1000).max(1)
    }
}

/// Counts a request in its window and keeps the seed's JSON shape. The
/// window is named by its reset time: an entry from an earlier window
/// starts over at 1. The key expires when its window does.
const COUNT: &str = r#"
local stored = redis.call('GET', KEYS[1])
local count = 0
if stored then
  local ok, entry = pcall(cjson.decode, stored)
  if ok and type(entry) == 'table' and entry.resetAt == ARGV[1] then
    count = tonumber(entry.count) or 0
  end
end
count = count + 1
redis.call('SET', KEYS[1], cjson.encode({count = count, resetAt = ARGV[1]}), 'PXAT', ARGV[2])
return count
"#;

pub struct RateLimiter {
    redis: RedisConnection,
    prefix: String,
    script: Script,
}

impl RateLimiter {
    pub fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        // Tight bounds: a limiter that waits long on Redis slows every
        // request it guards.
        let timeouts = RedisTimeouts {
            connect: Duration::from_millis(500),
            response: Duration::from_millis(500),
            operation: Duration::from_millis(800),
        };
        Ok(Self {
            redis: RedisConnection::new(url, timeouts)?,
            prefix: prefix.to_owned(),
            script: Script::new(COUNT),
        })
    }

    /// The key of a client address's window for `class` of route. Reads
    /// are the seed's `api` class.
    pub fn client_key(&self, class: &str, ip: &str) -> String {
        format!("{}rate_limit:{class}:{ip}", self.prefix)
    }

    /// The key of an account's login window.
    pub fn login_key(&self, account_index: &str) -> String {
        format!("{}rate_limit:login:{account_index}", self.prefix)
    }

    /// The key of an account's one-time code window.
    pub fn code_key(&self, account_index: &str) -> String {
        format!("{}rate_limit:code:{account_index}", self.prefix)
    }

    /// Counts one request against `key` under `limit`.
    pub async fn count(
        &self,
        key: &str,
        limit: Limit,
        now: DateTime<Utc>,
    ) -> Result<Standing, redis::RedisError> {
        let window_ms = (limit.window_seconds.max(1) * 1000) as i64;
        let now_ms = now.timestamp_millis();
        let reset_ms = (now_ms / window_ms + 1) * window_ms;
        let reset_at = Utc.timestamp_millis_opt(reset_ms).single().unwrap_or(now);
        let reset_text = reset_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let count: u64 = self
            .redis
            .guard(async {
                let mut redis = self.redis.connection().await?;
                self.script
                    .key(key)
                    .arg(&reset_text)
                    .arg(reset_ms)
                    .invoke_async(&mut redis)
                    .await
            })
            .await?;
        Ok(Standing {
            limit,
            count,
            reset_at,
        })
    }
}

/// The `RateLimit-Policy` and `RateLimit` header values of the IETF draft
/// (draft-ietf-httpapi-ratelimit-headers): `"api";q=100;w=60` and
/// `"api";r=42;t=17`.
pub fn headers(policy: &str, standing: &Standing, now: DateTime<Utc>) -> (String, String) {
    (
        format!(
            "\"{policy}\";q={};w={}",
            standing.limit.limit, standing.limit.window_seconds
        ),
        format!(
            "\"{policy}\";r={};t={}",
            standing.remaining(),
            standing.reset_after(now)
        ),
    )
}

/// [`headers`] as the response headers both APIs add.
pub fn header_pairs(
    policy: &str,
    standing: &Standing,
    now: DateTime<Utc>,
) -> Vec<(axum::http::HeaderName, axum::http::HeaderValue)> {
    let (policy, remaining) = headers(policy, standing, now);
    [("ratelimit-policy", policy), ("ratelimit", remaining)]
        .into_iter()
        .filter_map(|(name, value)| {
            Some((
                axum::http::HeaderName::from_static(name),
                axum::http::HeaderValue::from_str(&value).ok()?,
            ))
        })
        .collect()
}
