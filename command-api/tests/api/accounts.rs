//! Registration, login and logout over real HTTP, with the sessions in the
//! real Redis and the personal data sealed in the real event store; and who
//! may write the catalog.

use infrastructure::event_store::AppendOutcome;
use infrastructure::event_store::{NewEvent, StreamAppend};
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

fn registration(email: &str) -> Value {
    json!({
        "email": email,
        "password": "correct horse battery staple",
        "first_name": "Somchai",
        "last_name": "Jaidee",
        "phone": "+66812345678",
        "date_of_birth": "1990-05-20",
        "gender": "male",
    })
}

async fn register(app: &TestApp, body: &Value) -> reqwest::Response {
    app.anonymous
        .post(format!("{}/v1/users", app.base))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn log_in_as(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.anonymous
        .post(format!("{}/v1/sessions", app.base))
        .header("User-Agent", "Somchai's phone/1.0")
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

/// Every text the event store holds: stream ids, payloads and metadata.
async fn stored_text(app: &TestApp) -> String {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', aggregate_id, payload::text, metadata::text) FROM event_store.events",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    let streams: Vec<String> = sqlx::query_scalar("SELECT stream_id FROM event_store.streams")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    format!("{} {}", rows.join("\n"), streams.join("\n"))
}

#[tokio::test]
async fn a_registration_stores_no_personal_value_in_the_clear() {
    let app = TestApp::spawn().await;
    let response = register(&app, &registration("Somchai@Example.com")).await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let id = created_id(response).await;
    assert_eq!(location, format!("/v1/users/{id}"));
    log_in_as(&app, "somchai@example.com", "correct horse battery staple").await;

    let stored = stored_text(&app).await;
    for clear in [
        "somchai@example.com",
        "Somchai",
        "Jaidee",
        "+66812345678",
        "1990-05-20",
        "\"male\"",
        "argon2",
        "Somchai's phone",
        "127.0.0.1",
    ] {
        assert!(!stored.contains(clear), "{clear} stored in the clear");
    }

    let events = app.opened_events(&id.to_string()).await;
    assert_eq!(
        event_types(&events),
        [
            "UserRegistered",
            "UserEmailVerificationRequested",
            "UserLoggedIn"
        ]
    );
    let registered = &events[0].payload["UserRegistered"];
    assert_eq!(registered["email"], "somchai@example.com");
    assert_eq!(registered["first_name"], "Somchai");
    assert_eq!(registered["phone"], "+66812345678");
    assert!(registered["password_hash"]
        .as_str()
        .unwrap()
        .starts_with("$argon2id$"));
    let code = events[1].payload["UserEmailVerificationRequested"]["code"]
        .as_str()
        .unwrap();
    assert!(!stored.contains(code), "the code is stored in the clear");
    assert_eq!(
        events[2].payload["UserLoggedIn"]["user_agent"],
        "Somchai's phone/1.0"
    );
    assert_eq!(events[2].metadata.user_id, Some(id.to_string()));
}

#[tokio::test]
async fn an_email_or_a_phone_is_registered_once() {
    let app = TestApp::spawn().await;
    created_id(register(&app, &registration("somchai@example.com")).await).await;
    let before = app.event_count().await;

    let mut same_email = registration("SOMCHAI@example.COM");
    same_email["phone"] = json!("+66899999999");
    problem(
        register(&app, &same_email).await,
        StatusCode::CONFLICT,
        "email-taken",
    )
    .await;
    let same_phone = registration("another@example.com");
    problem(
        register(&app, &same_phone).await,
        StatusCode::CONFLICT,
        "phone-taken",
    )
    .await;
    assert_eq!(app.event_count().await, before, "nothing appended");
}

#[tokio::test]
async fn a_password_must_meet_the_policy() {
    let app = TestApp::spawn().await;
    for (password, why) in [
        ("short", "fewer than 8 characters"),
        ("password1", "a common password"),
        ("Password1", "a common password in any case"),
    ] {
        let mut body = registration("somchai@example.com");
        body["password"] = json!(password);
        let problem = problem(
            register(&app, &body).await,
            StatusCode::BAD_REQUEST,
            "validation",
        )
        .await;
        assert_eq!(
            problem["errors"][0]["field"], "password",
            "{why}: {problem}"
        );
        assert!(
            !problem.to_string().contains(password),
            "{why}: echoed {problem}"
        );
    }
    let mut body = registration("somchai@example.com");
    body["password"] = json!("x".repeat(129));
    problem(
        register(&app, &body).await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
}

#[tokio::test]
async fn a_login_opens_a_session_in_redis_keyed_by_a_hash_of_its_token() {
    let app = TestApp::spawn().await;
    let id = created_id(register(&app, &registration("somchai@example.com")).await).await;
    let response = log_in_as(&app, "Somchai@example.com", "correct horse battery staple").await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let session = ok_body(response, StatusCode::CREATED).await;
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["user_id"], id.to_string());
    assert_eq!(session["role"], "customer");
    let token = session["token"].as_str().unwrap();
    assert_eq!(token.len(), 43, "256 bits, base64url");

    let mut redis = redis::Client::open(app.settings.redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis
        .keys(format!("{}session:*", app.settings.redis.key_prefix))
        .await
        .unwrap();
    let stored: Vec<Value> = futures_of(&mut redis, &keys).await;
    let mine: Vec<&Value> = stored
        .iter()
        .filter(|s| s["userId"] == id.to_string())
        .collect();
    assert_eq!(mine.len(), 1, "{stored:?}");
    assert_eq!(mine[0]["email"], "somchai@example.com");
    assert_eq!(mine[0]["role"], "customer");
    assert!(keys.iter().all(|key| !key.contains(token)));
}

async fn futures_of(redis: &mut redis::aio::MultiplexedConnection, keys: &[String]) -> Vec<Value> {
    let mut values = Vec::new();
    for key in keys {
        let json: String = redis.get(key).await.unwrap();
        values.push(serde_json::from_str(&json).unwrap());
    }
    values
}

#[tokio::test]
async fn an_unknown_email_and_a_wrong_password_get_the_same_answer() {
    let app = TestApp::spawn().await;
    created_id(register(&app, &registration("somchai@example.com")).await).await;
    let wrong = problem(
        log_in_as(&app, "somchai@example.com", "not the password at all").await,
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
    )
    .await;
    let unknown = problem(
        log_in_as(&app, "nobody@example.com", "correct horse battery staple").await,
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
    )
    .await;
    assert_eq!(wrong["detail"], unknown["detail"]);
    assert_eq!(wrong["title"], unknown["title"]);
}

#[tokio::test]
async fn a_suspended_or_inactive_user_cannot_log_in() {
    let app = TestApp::spawn().await;
    for (n, event) in ["UserSuspended", "UserDeactivated"].into_iter().enumerate() {
        let email = format!("user{n}@example.com");
        let mut body = registration(&email);
        body["phone"] = Value::Null;
        let id = created_id(register(&app, &body).await).await;
        let status = json!({
            "user_id": id,
            "previous_status": "active",
            "status": if n == 0 { "suspended" } else { "inactive" },
            "at": "2026-12-01T00:00:00Z",
        });
        let mut payload = json!({ event: status });
        if n == 0 {
            payload[event]["reason"] = json!("chargebacks");
        }
        let appended = app
            .store
            .append(
                vec![StreamAppend {
                    stream_id: id.to_string(),
                    aggregate_type: "user".into(),
                    // Registered, with its verification code.
                    expected_version: 2,
                    events: vec![NewEvent {
                        event_id: Uuid::now_v7(),
                        event_type: event.into(),
                        schema_version: 1,
                        payload,
                    }],
                }],
                &app.opened_events(&id.to_string()).await[0].metadata,
                None,
                |_| Value::Null,
            )
            .await
            .unwrap();
        assert!(matches!(appended, AppendOutcome::Appended { .. }));
        problem(
            log_in_as(&app, &email, "correct horse battery staple").await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
}

#[tokio::test]
async fn only_an_admin_writes_the_catalog() {
    let app = TestApp::spawn().await;
    let body = json!({ "name": "Phones", "slug": "phones" });
    let guest = app
        .anonymous
        .post(format!("{}/v1/categories", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(guest.headers()["www-authenticate"], "Bearer");
    problem(guest, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    let (customer, _) = app.customer("somchai@example.com").await;
    let refused = customer
        .post(format!("{}/v1/categories", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(refused, StatusCode::FORBIDDEN, "forbidden").await;

    let forged = app
        .anonymous
        .post(format!("{}/v1/categories", app.base))
        .header(
            "Authorization",
            "Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(forged, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let other_scheme = app
        .anonymous
        .post(format!("{}/v1/categories", app.base))
        .header("Authorization", "Basic YWRtaW46YWRtaW4=")
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(other_scheme, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    created_id(app.post("/v1/categories", &body).await).await;
}

#[tokio::test]
async fn after_logging_out_the_token_opens_nothing() {
    let app = TestApp::spawn().await;
    let (customer, _) = app.customer("somchai@example.com").await;
    let logout = customer
        .delete(format!("{}/v1/sessions/current", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let again = customer
        .delete(format!("{}/v1/sessions/current", app.base))
        .send()
        .await
        .unwrap();
    problem(again, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let guest = app
        .anonymous
        .delete(format!("{}/v1/sessions/current", app.base))
        .send()
        .await
        .unwrap();
    problem(guest, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

#[tokio::test]
async fn sessions_that_cannot_be_checked_answer_503_never_a_guest() {
    let app = TestApp::spawn().await;
    // The same database, with Redis gone; the admin's token in hand.
    let mut settings = app.settings.clone();
    settings.redis.url = "redis://127.0.0.1:1".into();
    let down = command_api::Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", down.port());
    tokio::spawn(down.run_until(std::future::pending()));
    let response = app
        .client
        .post(format!("{base}/v1/categories"))
        .json(&json!({ "name": "A", "slug": "a" }))
        .send()
        .await
        .unwrap();
    problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service-unavailable",
    )
    .await;
    let login = app
        .anonymous
        .post(format!("{base}/v1/sessions"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
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
