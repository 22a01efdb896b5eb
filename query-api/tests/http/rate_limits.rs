//! The read limit per client address, on the real Redis.

use std::sync::Arc;
use std::time::Duration;

use infrastructure::rate_limit::{Limit, RateLimiter};
use infrastructure::testing::wait_for;

use crate::support::{TestContext, DEAD_REDIS};

async fn limited_app(context: &TestContext, limit: Limit) -> crate::support::TestApp {
    let mut state = context.state();
    state.rate_limits.read = limit;
    context.spawn_app_with(state).await
}

#[tokio::test]
async fn past_the_limit_a_read_is_429_with_retry_after_and_the_draft_headers() {
    let context = TestContext::new().await;
    let app = limited_app(
        &context,
        Limit {
            limit: 3,
            window_seconds: 60,
        },
    )
    .await;
    for remaining in [2, 1, 0] {
        let response = app.get("/v1/brands").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-policy"], "\"read\";q=3;w=60");
        let standing = response.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            standing.starts_with(&format!("\"read\";r={remaining};t=")),
            "{standing}"
        );
    }
    let response = app.get("/v1/brands").await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(response.headers()["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with("\"read\";r=0;t="));
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://errors.ecommerce.local/rate-limited"
    );
    assert_eq!(problem["status"], 429);
}

#[tokio::test]
async fn a_new_window_lets_the_client_in_again() {
    let context = TestContext::new().await;
    let app = limited_app(
        &context,
        Limit {
            limit: 1,
            window_seconds: 1,
        },
    )
    .await;
    // Until one is refused: the first may fall at the end of a window.
    wait_for("a refused read", Duration::from_secs(5), || async {
        (app.get("/v1/brands").await.status() == 429).then_some(())
    })
    .await;
    // The window is one second: the next one starts within it, counting
    // from one again.
    let standing = wait_for(
        "a read in the next window",
        Duration::from_secs(3),
        || async {
            let response = app.get("/v1/brands").await;
            (response.status() == 200)
                .then(|| response.headers()["ratelimit"].to_str().unwrap().to_owned())
        },
    )
    .await;
    assert!(standing.starts_with("\"read\";r=0;"), "{standing}");
}

#[tokio::test]
async fn without_redis_reads_go_on_unlimited() {
    let context = TestContext::new().await;
    let mut state = context.state();
    state.rate_limits.read = Limit {
        limit: 1,
        window_seconds: 60,
    };
    state.limiter = Arc::new(RateLimiter::new(DEAD_REDIS, "x:").unwrap());
    let app = context.spawn_app_with(state).await;
    for _ in 0..3 {
        let response = app.get("/v1/brands").await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("ratelimit").is_none());
    }
}
