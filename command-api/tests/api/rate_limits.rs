//! Rate limits on the command API, on the real Redis: per client address
//! for commands, per account for logins.

use infrastructure::rate_limit::Limit;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn commands_past_the_limit_are_429_with_retry_after_and_the_draft_headers() {
    let app = TestApp::spawn_with(|s| {
        s.rate_limits.write = Limit {
            limit: 2,
            window_seconds: 60,
        }
    })
    .await;
    for (n, remaining) in [(0, 1), (1, 0)] {
        let response = app
            .post(
                "/v1/categories",
                &json!({ "name": format!("C{n}"), "slug": format!("c-{n}") }),
            )
            .await;
        assert_eq!(response.headers()["ratelimit-policy"], "\"write\";q=2;w=60");
        let standing = response.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            standing.starts_with(&format!("\"write\";r={remaining};t=")),
            "{standing}"
        );
        created_id(response).await;
    }
    let before = app.event_count().await;
    let refused = app
        .post("/v1/categories", &json!({ "name": "C2", "slug": "c-2" }))
        .await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(refused.headers()["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with("\"write\";r=0;"));
    problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
    assert_eq!(
        app.event_count().await,
        before,
        "a limited command does nothing"
    );
}

#[tokio::test]
async fn logins_to_one_account_are_limited_whatever_their_outcome() {
    let app = TestApp::spawn_with(|s| {
        s.rate_limits.login_per_account = Limit {
            limit: 3,
            window_seconds: 900,
        }
    })
    .await;
    let (_, _) = app.customer("somchai@example.com").await;
    // The customer's own login was the first attempt.
    for _ in 0..2 {
        problem(
            app.try_log_in("somchai@example.com", "guessing, guessing")
                .await,
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
        )
        .await;
    }
    let limited = app
        .try_log_in("SOMCHAI@example.com", CUSTOMER_PASSWORD)
        .await;
    assert!(limited.headers().contains_key("retry-after"));
    problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
    // Another account is not held back.
    ok_body(
        app.try_log_in(ADMIN_EMAIL, ADMIN_PASSWORD).await,
        StatusCode::CREATED,
    )
    .await;
}

#[tokio::test]
async fn without_redis_commands_go_on_but_logins_are_refused() {
    let app = TestApp::spawn().await;
    let mut settings = app.settings.clone();
    settings.redis.url = "redis://127.0.0.1:1".into();
    let down = command_api::Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", down.port());
    tokio::spawn(down.run_until(std::future::pending()));
    // A guest's registration needs no session: the limiter lets it through.
    let registered = app
        .anonymous
        .post(format!("{base}/v1/users"))
        .json(&json!({
            "email": "malee@example.com",
            "password": CUSTOMER_PASSWORD,
            "first_name": "Malee",
            "last_name": "Sukjai",
        }))
        .send()
        .await
        .unwrap();
    assert!(registered.headers().get("ratelimit").is_none());
    created_id(registered).await;
    let login = app
        .anonymous
        .post(format!("{base}/v1/sessions"))
        .json(&json!({ "email": "malee@example.com", "password": CUSTOMER_PASSWORD }))
        .send()
        .await
        .unwrap();
    problem(
        login,
        StatusCode::SERVICE_UNAVAILABLE,
        "service-unavailable",
    )
    .await;
}
