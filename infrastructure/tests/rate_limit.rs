//! Contract of the rate limiter, against the real Redis.

use chrono::{TimeZone, Utc};
use infrastructure::rate_limit::{headers, Limit, RateLimiter};
use infrastructure::testing::unique_suffix;
use redis::AsyncCommands;

const REDIS_URL: &str = "redis://127.0.0.1:6379";
const FIVE_A_MINUTE: Limit = Limit {
    limit: 5,
    window_seconds: 60,
};

#[tokio::test]
async fn a_window_counts_every_request_and_keeps_the_seed_shape() {
    let prefix = format!("test-{}:", unique_suffix());
    let limiter = RateLimiter::new(REDIS_URL, &prefix).unwrap();
    let key = limiter.client_key("api", "192.168.1.1");
    assert_eq!(key, format!("{prefix}rate_limit:api:192.168.1.1"));
    let now = Utc.with_ymd_and_hms(2030, 1, 15, 10, 30, 10).unwrap();
    // Concurrent requests: none lost, each gets its own count.
    let counts: Vec<u64> =
        futures::future::join_all((0..7).map(|_| limiter.count(&key, FIVE_A_MINUTE, now)))
            .await
            .into_iter()
            .map(|standing| standing.unwrap().count)
            .collect();
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=7).collect::<Vec<_>>());

    let standing = limiter.count(&key, FIVE_A_MINUTE, now).await.unwrap();
    assert_eq!(standing.count, 8);
    assert!(!standing.allowed());
    assert_eq!(standing.remaining(), 0);
    assert_eq!(standing.reset_after(now), 50);
    assert_eq!(
        headers("api", &standing, now),
        ("\"api\";q=5;w=60".to_owned(), "\"api\";r=0;t=50".to_owned())
    );

    let mut redis = redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: String = redis.get(&key).await.unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["count"], 8);
    assert_eq!(stored["resetAt"], "2030-01-15T10:31:00Z");
    let ttl: i64 = redis.pttl(&key).await.unwrap();
    assert!(ttl > 0, "the entry expires with its window");
    // Its window lies in the future: it would stay until then.
    let _: () = redis.del(&key).await.unwrap();
}

#[tokio::test]
async fn the_next_window_starts_over() {
    let prefix = format!("test-{}:", unique_suffix());
    let limiter = RateLimiter::new(REDIS_URL, &prefix).unwrap();
    let key = limiter.login_key("ab12");
    let now = Utc.with_ymd_and_hms(2030, 1, 15, 10, 30, 59).unwrap();
    for _ in 0..6 {
        limiter.count(&key, FIVE_A_MINUTE, now).await.unwrap();
    }
    assert!(!limiter
        .count(&key, FIVE_A_MINUTE, now)
        .await
        .unwrap()
        .allowed());
    let next = Utc.with_ymd_and_hms(2030, 1, 15, 10, 31, 0).unwrap();
    let standing = limiter.count(&key, FIVE_A_MINUTE, next).await.unwrap();
    assert_eq!(standing.count, 1);
    assert!(standing.allowed());
    assert_eq!(standing.remaining(), 4);
    let mut redis = redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis.del(&key).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_for_the_caller_to_decide() {
    let limiter = RateLimiter::new("redis://127.0.0.1:1", "x:").unwrap();
    assert!(limiter
        .count("x:rate_limit:api:1", FIVE_A_MINUTE, Utc::now())
        .await
        .is_err());
}
