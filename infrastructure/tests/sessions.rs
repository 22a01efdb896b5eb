//! Contract of the session store, against the real Redis.

use std::time::Duration;

use chrono::Utc;
use infrastructure::sessions::{SessionToken, Sessions};
use infrastructure::testing::unique_suffix;
use redis::AsyncCommands;
use uuid::Uuid;

const REDIS_URL: &str = "redis://127.0.0.1:6379";

fn sessions(prefix: &str) -> Sessions {
    Sessions::new(REDIS_URL, prefix, Duration::from_secs(3600)).unwrap()
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers on 127.0.0.1:6379; start it with `scripts/services up`")
}

#[tokio::test]
async fn a_session_is_stored_as_the_seed_entry_under_a_hash_of_its_token() {
    let prefix = format!("test-{}:", unique_suffix());
    let store = sessions(&prefix);
    let user = Uuid::now_v7();
    let at = Utc::now();
    let (token, session) = store
        .open(user, "somchai@example.com", "customer", at)
        .await
        .unwrap();

    let mut redis = redis().await;
    let keys: Vec<String> = redis.keys(format!("{prefix}session:*")).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        !keys[0].contains(token.expose_secret()),
        "keyed by a hash, never the token"
    );
    let stored: String = redis.get(&keys[0]).await.unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let fields: Vec<&str> = stored
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["userId", "email", "role", "loginAt", "expiresAt"]);
    assert_eq!(stored["userId"], user.to_string());
    let ttl: i64 = redis.ttl(&keys[0]).await.unwrap();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    assert_eq!(
        session.expires_at - session.login_at,
        chrono::Duration::hours(1)
    );

    assert_eq!(store.find(&token).await.unwrap(), Some(session));
    let stranger = SessionToken::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    assert_eq!(store.find(&stranger).await.unwrap(), None);
    assert!(SessionToken::parse("not-a-token").is_none());
    assert!(!format!("{token:?}").contains(token.expose_secret()));
}

#[tokio::test]
async fn logging_out_ends_one_session_and_a_revoke_ends_them_all() {
    let prefix = format!("test-{}:", unique_suffix());
    let store = sessions(&prefix);
    let user = Uuid::now_v7();
    let other = Uuid::now_v7();
    let (first, _) = store
        .open(user, "a@example.com", "customer", Utc::now())
        .await
        .unwrap();
    let (second, _) = store
        .open(user, "a@example.com", "customer", Utc::now())
        .await
        .unwrap();
    let (third, _) = store
        .open(user, "a@example.com", "customer", Utc::now())
        .await
        .unwrap();
    let (others, _) = store
        .open(other, "b@example.com", "admin", Utc::now())
        .await
        .unwrap();

    store.close(&first, user).await.unwrap();
    assert_eq!(store.find(&first).await.unwrap(), None);
    assert!(store.find(&second).await.unwrap().is_some());

    assert_eq!(store.close_all(user).await.unwrap(), 2);
    assert_eq!(store.find(&second).await.unwrap(), None);
    assert_eq!(store.find(&third).await.unwrap(), None);
    assert!(
        store.find(&others).await.unwrap().is_some(),
        "other users keep theirs"
    );
    assert_eq!(store.close_all(user).await.unwrap(), 0);
}

#[tokio::test]
async fn an_unreachable_store_is_an_error_not_a_missing_session() {
    let store = Sessions::new("redis://127.0.0.1:1", "x:", Duration::from_secs(60)).unwrap();
    let token = SessionToken::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    assert!(store.find(&token).await.is_err());
}
