//! One-time codes over real HTTP: the verification code a registration and
//! an email change issue, its check, expiry, single use and replacement;
//! password resets that never tell whether an email has an account; and the
//! per-account limit on codes. The codes are read from the event store,
//! opened with the test's keys, as the mail worker would read them (the
//! mail itself is the projectors' tests' business).

use std::time::Duration;

use infrastructure::rate_limit::Limit;
use infrastructure::testing::wait_for;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

const NEW_PASSWORD: &str = "a freshly reset long passphrase";

/// The code of the latest `event_type` on `user`'s stream, opened.
async fn latest_code(app: &TestApp, user: Uuid, event_type: &str) -> String {
    let events = app.opened_events(&user.to_string()).await;
    let event = events
        .iter()
        .rev()
        .find(|e| e.event_type == event_type)
        .unwrap_or_else(|| panic!("no {event_type} in {:?}", event_types(&events)));
    event.payload[event_type]["code"]
        .as_str()
        .expect("an opened code")
        .to_owned()
}

/// A code that is not `code`.
fn other_than(code: &str) -> String {
    let first = if code.starts_with('9') { '0' } else { '9' };
    format!("{first}{}", &code[1..])
}

/// Confirms `email` with `code`, as a guest: the code is the proof.
async fn verify(app: &TestApp, email: &str, code: &str) -> reqwest::Response {
    app.anonymous
        .post(format!("{}/v1/email-verifications/confirm", app.base))
        .json(&json!({ "email": email, "code": code }))
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn registration_sends_a_code_that_verifies_the_email_once() {
    let app = TestApp::spawn().await;
    let (_, id) = app.customer("verify-me@example.com").await;
    let code = latest_code(&app, id, "UserEmailVerificationRequested").await;
    assert_eq!(code.len(), 8);

    // Only the digest is in the clear: the stored event holds the code sealed.
    let stored = app.events(&id.to_string()).await;
    let raw = serde_json::to_string(&stored).unwrap();
    assert!(!raw.contains(&code), "the code is in the clear: {raw}");

    let wrong = verify(&app, "verify-me@example.com", &other_than(&code)).await;
    problem(wrong, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
    ok_body(
        verify(&app, "Verify-Me@example.com", &code).await,
        StatusCode::OK,
    )
    .await;
    let events = app.events(&id.to_string()).await;
    assert_eq!(
        event_types(&events).last(),
        Some(&"UserEmailVerified"),
        "{:?}",
        event_types(&events)
    );
    let again = verify(&app, "verify-me@example.com", &code).await;
    problem(again, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
}

#[tokio::test]
async fn a_malformed_code_is_a_bad_request() {
    let app = TestApp::spawn().await;
    app.customer("malformed-code@example.com").await;
    for code in ["12ab5678", "123", ""] {
        let response = verify(&app, "malformed-code@example.com", code).await;
        let body = problem(response, StatusCode::BAD_REQUEST, "validation").await;
        assert!(!body.to_string().contains("12ab5678"), "{body}");
    }
}

#[tokio::test]
async fn a_new_code_replaces_the_last_one() {
    let app = TestApp::spawn().await;
    let (somchai, id) = app.customer("twice@example.com").await;
    let first = latest_code(&app, id, "UserEmailVerificationRequested").await;
    let response = app
        .send_as(&somchai, Method::POST, "/v1/me/email/verification", None)
        .await;
    ok_body(response, StatusCode::OK).await;
    let second = latest_code(&app, id, "UserEmailVerificationRequested").await;
    if first != second {
        let stale = verify(&app, "twice@example.com", &first).await;
        problem(stale, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
    }
    ok_body(
        verify(&app, "twice@example.com", &second).await,
        StatusCode::OK,
    )
    .await;
    // Verified: no more codes are sent.
    let response = app
        .send_as(&somchai, Method::POST, "/v1/me/email/verification", None)
        .await;
    problem(response, StatusCode::UNPROCESSABLE_ENTITY, "account-rule").await;
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let app = TestApp::spawn_with(|s| s.accounts.code_ttl_seconds = 0).await;
    let (_, id) = app.customer("late@example.com").await;
    let code = latest_code(&app, id, "UserEmailVerificationRequested").await;
    problem(
        verify(&app, "late@example.com", &code).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-code",
    )
    .await;
    let events = app.events(&id.to_string()).await;
    assert!(!event_types(&events).contains(&"UserEmailVerified"));
}

#[tokio::test]
async fn an_email_change_sends_a_code_to_the_new_address() {
    let app = TestApp::spawn().await;
    let (somchai, id) = app.customer("old-address@example.com").await;
    let old_code = latest_code(&app, id, "UserEmailVerificationRequested").await;
    let response = app
        .send_as(
            &somchai,
            Method::PUT,
            "/v1/me/email",
            Some(&json!({ "email": "new-address@example.com", "current_password": CUSTOMER_PASSWORD })),
        )
        .await;
    ok_body(response, StatusCode::OK).await;
    let events = app.opened_events(&id.to_string()).await;
    let requested: Vec<&Value> = events
        .iter()
        .filter(|e| e.event_type == "UserEmailVerificationRequested")
        .map(|e| &e.payload["UserEmailVerificationRequested"])
        .collect();
    assert_eq!(requested.len(), 2);
    assert_eq!(requested[1]["email"], "new-address@example.com");
    let new_code = requested[1]["code"].as_str().unwrap().to_owned();

    // The old address is no account's any more; the new one's old code is void.
    let old = verify(&app, "old-address@example.com", &old_code).await;
    problem(old, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
    if old_code != new_code {
        let stale = verify(&app, "new-address@example.com", &old_code).await;
        problem(stale, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
    }
    ok_body(
        verify(&app, "new-address@example.com", &new_code).await,
        StatusCode::OK,
    )
    .await;
}

async fn request_reset(app: &TestApp, email: &str) -> reqwest::Response {
    app.anonymous
        .post(format!("{}/v1/password-resets", app.base))
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("request sent")
}

async fn confirm_reset(app: &TestApp, email: &str, code: &str) -> reqwest::Response {
    app.anonymous
        .post(format!("{}/v1/password-resets/confirm", app.base))
        .json(&json!({ "email": email, "code": code, "new_password": NEW_PASSWORD }))
        .send()
        .await
        .expect("request sent")
}

async fn reset_code(app: &TestApp, user: Uuid) -> String {
    wait_for(
        "the reset code to be issued",
        Duration::from_secs(10),
        || async {
            app.opened_events(&user.to_string())
                .await
                .iter()
                .rev()
                .find(|e| e.event_type == "UserPasswordResetRequested")
                .map(|e| {
                    e.payload["UserPasswordResetRequested"]["code"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
        },
    )
    .await
}

#[tokio::test]
async fn a_reset_code_sets_a_new_password_once_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let (somchai, id) = app.customer("forgetful@example.com").await;
    let response = request_reset(&app, "Forgetful@Example.com").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let code = reset_code(&app, id).await;

    let wrong = confirm_reset(&app, "forgetful@example.com", &other_than(&code)).await;
    problem(wrong, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
    ok_body(
        confirm_reset(&app, "forgetful@example.com", &code).await,
        StatusCode::OK,
    )
    .await;

    let events = app.events(&id.to_string()).await;
    assert_eq!(event_types(&events).last(), Some(&"UserPasswordReset"));
    let response = app
        .send_as(
            &somchai,
            Method::PATCH,
            "/v1/me",
            Some(&json!({ "bio": "still here?" })),
        )
        .await;
    problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let old = app
        .try_log_in("forgetful@example.com", CUSTOMER_PASSWORD)
        .await;
    problem(old, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    log_in(
        &app.anonymous,
        &app.base,
        "forgetful@example.com",
        NEW_PASSWORD,
    )
    .await;

    let reused = confirm_reset(&app, "forgetful@example.com", &code).await;
    problem(reused, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
}

#[tokio::test]
async fn a_reset_tells_nothing_about_whether_an_email_has_an_account() {
    let app = TestApp::spawn().await;
    let (_, id) = app.customer("known@example.com").await;
    let before = app.event_count().await;
    let unknown = request_reset(&app, "nobody@example.com").await;
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    let known = request_reset(&app, "known@example.com").await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    let (unknown_body, known_body) = (unknown.text().await.unwrap(), known.text().await.unwrap());
    assert_eq!(unknown_body, known_body);
    reset_code(&app, id).await;
    // The known email's request is the only event either request appended.
    assert_eq!(app.event_count().await, before + 1);

    let unknown = confirm_reset(&app, "nobody@example.com", "12345678").await;
    let known = confirm_reset(&app, "known@example.com", "12345678").await;
    let unknown = problem(unknown, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
    let known = problem(known, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
    assert_eq!(unknown["detail"], known["detail"]);

    let malformed = request_reset(&app, "not an email").await;
    problem(malformed, StatusCode::BAD_REQUEST, "validation").await;
}

#[tokio::test]
async fn a_verification_tells_nothing_about_whether_an_email_has_an_account() {
    let app = TestApp::spawn().await;
    app.customer("verified-known@example.com").await;
    let unknown = verify(&app, "verified-nobody@example.com", "12345678").await;
    let known = verify(&app, "verified-known@example.com", "12345678").await;
    let unknown = problem(unknown, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
    let known = problem(known, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
    assert_eq!(unknown["detail"], known["detail"]);
}

#[tokio::test]
async fn a_suspended_account_cannot_reset_its_password() {
    let app = TestApp::spawn().await;
    let (_, id) = app.customer("suspended-reset@example.com").await;
    request_reset(&app, "suspended-reset@example.com").await;
    let code = reset_code(&app, id).await;
    let response = app
        .put(
            &format!("/v1/users/{id}/status"),
            &json!({ "status": "suspended", "reason": "chargebacks" }),
        )
        .await;
    ok_body(response, StatusCode::OK).await;
    let refused = confirm_reset(&app, "suspended-reset@example.com", &code).await;
    problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
}

#[tokio::test]
async fn code_attempts_are_limited_per_account() {
    let app = TestApp::spawn_with(|s| {
        s.rate_limits.codes_per_account = Limit {
            limit: 2,
            window_seconds: 600,
        }
    })
    .await;
    let (_, id) = app.customer("guesser@example.com").await;
    let code = latest_code(&app, id, "UserEmailVerificationRequested").await;
    for _ in 0..2 {
        let wrong = verify(&app, "guesser@example.com", &other_than(&code)).await;
        problem(wrong, StatusCode::UNPROCESSABLE_ENTITY, "invalid-code").await;
    }
    // The right code, past the limit, is refused too: the limit is on
    // attempts, not failures.
    let limited = verify(&app, "guesser@example.com", &code).await;
    assert!(limited.headers().contains_key("retry-after"));
    problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
}
