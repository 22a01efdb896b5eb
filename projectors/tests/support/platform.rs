//! The whole platform on real servers, as the end-to-end tests drive it:
//! the command API (with its relay), the projectors and the query API on
//! ephemeral ports over one harness's isolated names, the first admin, and
//! the cleanup of what the stores keep outside the test's database.

use redis::AsyncCommands;
use serde_json::{json, Value};

use super::Harness;

pub struct Platform {
    pub commands: String,
    pub queries: String,
    pub projectors: String,
    /// Sends every request as the admin `start` creates.
    pub admin: reqwest::Client,
    pub admin_id: String,
}

pub const ADMIN_EMAIL: &str = "admin@shop.test";
pub const ADMIN_PASSWORD: &str = "an admin's long passphrase";

/// The first admin, created as an operator would, and a client logged in as
/// them.
pub async fn admin_of(
    settings: &infrastructure::settings::Settings,
    commands: &str,
) -> (reqwest::Client, String) {
    command_api::operator::create_admin(
        settings,
        ADMIN_EMAIL,
        "Admin",
        "User",
        ADMIN_PASSWORD.into(),
    )
    .await
    .expect("the first admin is created");
    let session: Value = reqwest::Client::new()
        .post(format!("{commands}/v1/sessions"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", session["token"].as_str().expect("a token"))
            .parse()
            .unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    (client, session["user_id"].as_str().unwrap().to_owned())
}

pub async fn start(h: &Harness) -> Platform {
    start_with_payments(h).await.0
}

/// The platform with a sandbox payment service of its own, its webhooks
/// going back to this platform's command API; the sandbox's address and
/// handle (dropping it stops the sandbox).
pub async fn start_with_payments(
    h: &Harness,
) -> (
    Platform,
    String,
    command_api::payments::sandbox::SandboxHandle,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = h.settings.clone();
    settings.relay.enabled = true;
    settings.payments.sandbox.url = sandbox.clone();
    let commands = command_api::Application::build(settings.clone())
        .await
        .expect("command api starts");
    let command_port = commands.port();
    tokio::spawn(commands.run_until_stopped());
    let mut payments = settings.payments.sandbox.clone();
    payments.webhook_url = format!("http://127.0.0.1:{command_port}/v1/payments/webhooks/sandbox");
    let (_, handle) = command_api::payments::sandbox::SandboxServer::start_on(listener, payments)
        .expect("the sandbox starts");
    let projectors = projectors::app::Application::build(settings.clone())
        .await
        .expect("projectors start; the servers come from `scripts/services up`");
    let projector_port = projectors.port();
    tokio::spawn(projectors.run_until(std::future::pending()));
    let queries = query_api::Application::build(settings.clone())
        .await
        .expect("query api starts");
    let query_port = queries.port();
    tokio::spawn(queries.run_until_stopped(std::future::pending()));
    let commands = format!("http://127.0.0.1:{command_port}");
    let (admin, admin_id) = admin_of(&settings, &commands).await;
    let platform = Platform {
        commands,
        queries: format!("http://127.0.0.1:{query_port}"),
        projectors: format!("http://127.0.0.1:{projector_port}"),
        admin,
        admin_id,
    };
    (platform, sandbox, handle)
}

pub async fn post(client: &reqwest::Client, url: String, correlation: &str, body: Value) -> Value {
    let response = client
        .post(url)
        .header("X-Correlation-Id", correlation)
        .header("User-Agent", "e2e-test/1.0")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    response.json().await.unwrap()
}

pub async fn cleanup(h: &Harness) {
    let client = reqwest::Client::new();
    let alias = &h.settings.elasticsearch.products_alias;
    if let Ok(response) = client
        .get(format!(
            "http://127.0.0.1:9200/_cat/indices/{alias}*?format=json"
        ))
        .send()
        .await
    {
        let indices: Value = response.json().await.unwrap_or_default();
        for index in indices.as_array().into_iter().flatten() {
            let name = index["index"].as_str().unwrap_or_default();
            let _ = client
                .delete(format!("http://127.0.0.1:9200/{name}"))
                .send()
                .await;
        }
    }
    let mut redis = redis::Client::open(h.settings.redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis
        .keys(format!("{}*", h.settings.redis.key_prefix))
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis.del(keys).await.unwrap();
    }
    let mongo = mongodb::Client::with_uri_str(&h.settings.mongo.url)
        .await
        .unwrap();
    mongo
        .database(&h.settings.mongo.database)
        .drop()
        .await
        .unwrap();
}

/// Sends a command and checks its status; the answer and its consistency token.
pub async fn command(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Value,
    status: u16,
) -> (Value, String) {
    let response = client
        .request(method, url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let token = response
        .headers()
        .get("consistency-token")
        .map(|t| t.to_str().unwrap().to_owned());
    let code = response.status().as_u16();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(code, status, "{answer}");
    (answer, token.expect("a command answers with a token"))
}
