//! An account's whole first day, over real HTTP against real servers: a
//! shopper registers, receives the verification code by SMTP (the local
//! aiosmtpd's Maildir), verifies, logs in, fills in the profile and two
//! addresses, moves the default, logs out and logs in again. Then the seed's
//! `users`, `user_profiles` and `user_addresses` rows in PostgreSQL, the
//! `session:` entry in Redis and the `notifications` document in MongoDB
//! must show exactly that.

mod support;

use std::time::Duration;

use futures::TryStreamExt;
use infrastructure::sessions::SessionToken;
use infrastructure::testing::{code_after, mail_to, wait_for};
use mongodb::bson::{doc, Document};
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;

const PASSWORD: &str = "somchai's long passphrase";

struct Platform {
    commands: String,
    queries: String,
}

async fn start(h: &Harness) -> Platform {
    let mut settings = h.settings.clone();
    settings.relay.enabled = true;
    let commands = command_api::Application::build(settings.clone())
        .await
        .expect("command api starts");
    let command_port = commands.port();
    tokio::spawn(commands.run_until_stopped());
    let projectors = projectors::app::Application::build(settings.clone())
        .await
        .expect("projectors start; the servers come from `scripts/services up`");
    tokio::spawn(projectors.run_until(std::future::pending()));
    let queries = query_api::Application::build(settings)
        .await
        .expect("query api starts");
    let query_port = queries.port();
    tokio::spawn(queries.run_until_stopped(std::future::pending()));
    Platform {
        commands: format!("http://127.0.0.1:{command_port}"),
        queries: format!("http://127.0.0.1:{query_port}"),
    }
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
    expected: StatusCode,
) -> Value {
    let mut request = client.request(method, url.clone());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, expected, "{url}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn log_in(p: &Platform, client: &reqwest::Client, email: &str) -> Value {
    send(
        client,
        reqwest::Method::POST,
        format!("{}/v1/sessions", p.commands),
        None,
        Some(json!({ "email": email, "password": PASSWORD })),
        StatusCode::CREATED,
    )
    .await
}

fn address(street: &str, city: &str) -> Value {
    json!({
        "first_name": "Somchai",
        "last_name": "Jaidee",
        "street_address_1": street,
        "city": city,
        "state_province": city,
        "postal_code": "10110",
    })
}

#[tokio::test]
async fn register_verify_by_mail_log_in_fill_the_account_log_out_and_in_again() {
    let h = harness().await;
    let p = start(&h).await;
    let http = reqwest::Client::new();
    let email = format!("somchai-{}@example.com", h.suffix);
    use reqwest::Method;

    // Register.
    let registered = send(
        &http,
        Method::POST,
        format!("{}/v1/users", p.commands),
        None,
        Some(json!({
            "email": email,
            "password": PASSWORD,
            "first_name": "Somchai",
            "last_name": "Jaidee",
            "phone": "+66812345678",
            "date_of_birth": "1990-05-20",
            "gender": "male",
        })),
        StatusCode::CREATED,
    )
    .await;
    let user_id = registered["id"].as_str().unwrap().to_owned();

    // The verification code arrives by SMTP, through the relay, Kafka and
    // the account mail worker.
    let mail = wait_for("the verification mail", Duration::from_secs(60), || async {
        mail_to(&email).into_iter().next()
    })
    .await;
    assert!(mail.contains("Subject: Your verification code"), "{mail}");
    let code = code_after(&mail, "verification code is", 8).expect("a code in the mail");

    // Verify, then log in.
    send(
        &http,
        Method::POST,
        format!("{}/v1/email-verifications/confirm", p.commands),
        None,
        Some(json!({ "email": email, "code": code })),
        StatusCode::OK,
    )
    .await;
    let session = log_in(&p, &http, &email).await;
    let token = session["token"].as_str().unwrap().to_owned();

    // Profile and two addresses; the second becomes the default.
    send(
        &http,
        Method::PATCH,
        format!("{}/v1/me", p.commands),
        Some(&token),
        Some(
            json!({ "bio": "Coffee and phones", "preferences": {"notifications": {"sms": false}} }),
        ),
        StatusCode::OK,
    )
    .await;
    let home = uuid::Uuid::now_v7();
    let office = uuid::Uuid::now_v7();
    for (id, street, city) in [
        (home, "1 Sukhumvit Rd", "Bangkok"),
        (office, "9 Nimman Rd", "Chiang Mai"),
    ] {
        let mut body = address(street, city);
        body["address_id"] = json!(id);
        send(
            &http,
            Method::POST,
            format!("{}/v1/me/addresses", p.commands),
            Some(&token),
            Some(body),
            StatusCode::CREATED,
        )
        .await;
    }
    let moved = send(
        &http,
        Method::PUT,
        format!("{}/v1/me/addresses/{office}/default", p.commands),
        Some(&token),
        None,
        StatusCode::OK,
    )
    .await;

    // Log out: the token stops working. Log in again.
    send(
        &http,
        Method::DELETE,
        format!("{}/v1/sessions/current", p.commands),
        Some(&token),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    send(
        &http,
        Method::PATCH,
        format!("{}/v1/me", p.commands),
        Some(&token),
        Some(json!({ "bio": "still here?" })),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let again = log_in(&p, &http, &email).await;
    let token = again["token"].as_str().unwrap().to_owned();

    // The query API shows the account once the read models hold the default
    // move (its consistency token).
    let me = wait_for(
        "the account in the query API",
        Duration::from_secs(60),
        || {
            let (http, p, token, consistency) =
                (&http, &p, &token, moved["consistency_token"].clone());
            async move {
                let response = http
                    .get(format!("{}/v1/me", p.queries))
                    .bearer_auth(token)
                    .header(
                        "Consistency-Token",
                        consistency.as_str().unwrap_or_default(),
                    )
                    .send()
                    .await
                    .ok()?;
                if response.status() != StatusCode::OK {
                    return None;
                }
                let body: Value = response.json().await.ok()?;
                (body["addresses"].as_array()?.len() == 2).then_some(body)
            }
        },
    )
    .await;
    assert_eq!(me["email"], email.as_str());

    // PostgreSQL: the seed's rows.
    let pool = &h.db.pool;
    let user: Value =
        sqlx::query_scalar("SELECT to_jsonb(u) FROM read_model.users u WHERE id = $1::uuid")
            .bind(&user_id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["phone"], "+66812345678");
    assert_eq!(user["status"], "active");
    assert!(user["last_login_at"].is_string(), "{user}");
    assert!(user["password_hash"]
        .as_str()
        .unwrap()
        .starts_with("$argon2id$"));
    let profile: Value = sqlx::query_scalar(
        "SELECT to_jsonb(p) FROM read_model.user_profiles p WHERE user_id = $1::uuid",
    )
    .bind(&user_id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(profile["bio"], "Coffee and phones");
    assert_eq!(
        profile["preferences"],
        json!({"notifications": {"sms": false}})
    );
    let addresses: Vec<(uuid::Uuid, bool, String)> = sqlx::query_as(
        "SELECT id, is_default, city FROM read_model.user_addresses WHERE user_id = $1::uuid ORDER BY created_at",
    )
    .bind(&user_id)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        addresses,
        vec![
            (home, false, "Bangkok".to_owned()),
            (office, true, "Chiang Mai".to_owned())
        ]
    );

    // Redis: the second login's session, keyed by the token's digest.
    let mut redis = h.redis().await;
    let key = format!(
        "{}session:{}",
        h.settings.redis.key_prefix,
        SessionToken::parse(&token).unwrap().digest()
    );
    let stored: String = redis.get(&key).await.unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["userId"], user_id.as_str());
    assert_eq!(stored["email"], email.as_str());
    assert_eq!(stored["role"], "customer");
    assert!(
        stored["loginAt"].is_string() && stored["expiresAt"].is_string(),
        "{stored}"
    );
    let ttl: i64 = redis.ttl(&key).await.unwrap();
    assert!(ttl > 0, "the session has a TTL: {ttl}");
    let first_key = format!(
        "{}session:{}",
        h.settings.redis.key_prefix,
        SessionToken::parse(session["token"].as_str().unwrap())
            .unwrap()
            .digest()
    );
    let gone: Option<String> = redis.get(&first_key).await.unwrap();
    assert_eq!(gone, None, "the logged-out session is gone");

    // MongoDB: the notification that recorded the mail.
    let mongo = mongodb::Client::with_uri_str(&h.settings.mongo.url)
        .await
        .unwrap();
    let database = mongo.database(&h.settings.mongo.database);
    let notes: Vec<Document> = database
        .collection::<Document>("notifications")
        .find(doc! { "userId": &user_id })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let note = &notes[0];
    assert_eq!(note.get_str("type").unwrap(), "email_verification");
    assert_eq!(note.get_str("title").unwrap(), "Verify your email address");
    let channel = note
        .get_document("channels")
        .unwrap()
        .get_document("email")
        .unwrap();
    assert!(channel.get_bool("sent").unwrap());
    assert!(channel.get_datetime("sentAt").is_ok());
    assert!(!note.to_string().contains(&code));

    // What this test wrote outside its own database.
    let keys: Vec<String> = redis
        .keys(format!("{}*", h.settings.redis.key_prefix))
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis.del(keys).await.unwrap();
    }
    database.drop().await.unwrap();
}
