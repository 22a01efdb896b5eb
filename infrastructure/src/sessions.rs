//! Login sessions in Redis, shared by the command API and the query API so
//! that both check a bearer token the same way.
//!
//! A session is the seed's `session:` entry, `{userId, email, role, loginAt,
//! expiresAt}`, with a TTL. It is keyed by the SHA-256 of its token, never by
//! the token: whoever reads Redis cannot act as anyone. Each user's token
//! hashes are also kept in a set, so that a password change, an email change,
//! a suspension or an erasure can end every session of that user.
//!
//! Every command touches one key, so the store works on a Redis cluster
//! without hash tags. The set is written before the session, so a session
//! that exists is always in its user's set and is always revoked with it.

use std::time::Duration;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::redis_connection::{RedisConnection, RedisTimeouts};

/// What a session knows of its user, as the seed stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub user_id: Uuid,
    pub email: String,
    /// `customer` or `admin`.
    pub role: String,
    pub login_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An opaque bearer token: 256 random bits, base64url. Never logged.
#[derive(Clone)]
pub struct SessionToken(SecretString);

impl SessionToken {
    /// 256 random bits, base64url: a session's bearer token, or a guest's
    /// cart session.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A token as a client sent it; `None` unless it has the shape of ours.
    pub fn parse(raw: &str) -> Option<Self> {
        let decoded = URL_SAFE_NO_PAD.decode(raw).ok()?;
        (decoded.len() == 32).then(|| Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// The session's key part: the token's SHA-256, in hex.
    pub fn digest(&self) -> String {
        Sha256::digest(self.0.expose_secret().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the session store is unreachable: {0}")]
    Unavailable(#[from] redis::RedisError),
    #[error("a stored session does not decode: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// The Redis key of a session.
pub fn session_key(prefix: &str, token_digest: &str) -> String {
    format!("{prefix}session:{token_digest}")
}

/// The Redis key of the set of a user's session digests.
pub fn user_sessions_key(prefix: &str, user_id: Uuid) -> String {
    format!("{prefix}user_sessions:{user_id}")
}

pub struct Sessions {
    redis: RedisConnection,
    prefix: String,
    ttl: Duration,
}

impl Sessions {
    pub fn new(url: &str, prefix: &str, ttl: Duration) -> Result<Self, redis::RedisError> {
        let timeouts = RedisTimeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(2),
            operation: Duration::from_secs(3),
        };
        Ok(Self {
            redis: RedisConnection::new(url, timeouts)?,
            prefix: prefix.to_owned(),
            ttl,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Opens a session for `user_id` and returns its token and what it
    /// stores.
    pub async fn open(
        &self,
        user_id: Uuid,
        email: &str,
        role: &str,
        at: DateTime<Utc>,
    ) -> Result<(SessionToken, Session), SessionError> {
        let token = SessionToken::generate();
        let session = Session {
            user_id,
            email: email.to_owned(),
            role: role.to_owned(),
            login_at: at,
            expires_at: at + chrono::Duration::from_std(self.ttl).unwrap_or_default(),
        };
        let value = serde_json::to_string(&session)?;
        let digest = token.digest();
        let seconds = self.ttl.as_secs().max(1);
        let user_key = user_sessions_key(&self.prefix, user_id);
        let key = session_key(&self.prefix, &digest);
        self.redis
            .guard(async {
                let mut redis = self.redis.connection().await?;
                let _: () = redis.sadd(&user_key, &digest).await?;
                // The set lives as long as its newest session.
                let _: () = redis.expire(&user_key, seconds as i64).await?;
                let _: () = redis.set_ex(&key, value, seconds).await?;
                Ok(())
            })
            .await?;
        metrics::counter!("sessions_opened_total").increment(1);
        Ok((token, session))
    }

    /// The live session of `token`, if any.
    pub async fn find(&self, token: &SessionToken) -> Result<Option<Session>, SessionError> {
        let key = session_key(&self.prefix, &token.digest());
        let stored: Option<String> = self
            .redis
            .guard(async {
                let mut redis = self.redis.connection().await?;
                redis.get(&key).await
            })
            .await?;
        match stored {
            Some(json) => Ok(Some(serde_json::from_str(&json)?)),
            None => Ok(None),
        }
    }

    /// Ends the session of `token` (a logout).
    pub async fn close(&self, token: &SessionToken, user_id: Uuid) -> Result<(), SessionError> {
        let digest = token.digest();
        let key = session_key(&self.prefix, &digest);
        let user_key = user_sessions_key(&self.prefix, user_id);
        self.redis
            .guard(async {
                let mut redis = self.redis.connection().await?;
                let _: () = redis.del(&key).await?;
                let _: () = redis.srem(&user_key, &digest).await?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Ends every session of `user_id`, and returns how many were open.
    pub async fn close_all(&self, user_id: Uuid) -> Result<usize, SessionError> {
        let user_key = user_sessions_key(&self.prefix, user_id);
        let closed = self
            .redis
            .guard(async {
                let mut redis = self.redis.connection().await?;
                let digests: Vec<String> = redis.smembers(&user_key).await?;
                let mut closed = 0usize;
                for digest in &digests {
                    let removed: usize = redis.del(session_key(&self.prefix, digest)).await?;
                    closed += removed;
                }
                // Only the digests read above: a session opened meanwhile
                // stays in the set (and alive), as a login after the revoke.
                if !digests.is_empty() {
                    let _: () = redis.srem(&user_key, &digests).await?;
                }
                Ok(closed)
            })
            .await?;
        if closed > 0 {
            tracing::info!(%user_id, sessions = closed, "sessions revoked");
        }
        Ok(closed)
    }
}

/// Why a request's credentials do not name a session.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticationError {
    /// Not `Bearer <token>`, not a token of ours, unknown, or expired.
    #[error("{0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Store(#[from] SessionError),
}

impl Sessions {
    /// The session a request's `Authorization` header names: `None` without
    /// the header (a guest). The one check both APIs run on every request.
    pub async fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
        now: DateTime<Utc>,
    ) -> Result<Option<(SessionToken, Session)>, AuthenticationError> {
        let Some(authorization) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Ok(None);
        };
        let authorization = authorization.to_str().map_err(|_| {
            AuthenticationError::Invalid("the Authorization header must be `Bearer <token>`")
        })?;
        let (scheme, credentials) =
            authorization
                .trim()
                .split_once(' ')
                .ok_or(AuthenticationError::Invalid(
                    "the Authorization header must be `Bearer <token>`",
                ))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthenticationError::Invalid(
                "the Authorization header must be `Bearer <token>`",
            ));
        }
        let token = SessionToken::parse(credentials.trim()).ok_or(AuthenticationError::Invalid(
            "the bearer token is not one this server issued",
        ))?;
        match self.find(&token).await? {
            // Redis expires the key; the stored expiry also holds against a
            // key whose TTL was lost (a restore, a copy).
            Some(session) if session.expires_at > now => Ok(Some((token, session))),
            _ => Err(AuthenticationError::Invalid(
                "the session has ended or never existed; log in again",
            )),
        }
    }
}
