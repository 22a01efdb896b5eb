//! The real application on 127.0.0.1:0 against its own fresh database, and
//! helpers to call it and inspect the event store.

use command_api::Application;
use infrastructure::event_store::{PgEventStore, RecordedEvent};
use infrastructure::settings::Settings;
use infrastructure::testing::{isolated_settings, unique_suffix, TestDatabase};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

pub const PROBLEM_JSON: &str = "application/problem+json";

pub struct TestApp {
    pub base: String,
    /// The relay's checkpoint name.
    pub relay_name: String,
    pub store: PgEventStore,
    pub client: reqwest::Client,
    // Dropped last: drops the database.
    pub db: TestDatabase,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDatabase::create().await;
        let mut settings = isolated_settings(&db.url, &unique_suffix());
        settings.relay.enabled = false;
        settings.postgres.max_connections = 5;
        configure(&mut settings);
        let relay_name = settings.relay.name.clone();
        let app = Application::build(settings).await.expect("the app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until(std::future::pending()));
        Self {
            base,
            relay_name,
            store: PgEventStore::new(db.pool.clone()),
            client: reqwest::Client::new(),
            db,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.base, path))
    }

    pub async fn send(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send(Method::POST, path, body).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Response {
        self.send(Method::PATCH, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.send(Method::PUT, path, body).await
    }

    /// Rows in `event_store.events`.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM event_store.events")
            .fetch_one(&self.db.pool)
            .await
            .expect("events counted")
    }

    pub async fn events(&self, stream_id: &str) -> Vec<RecordedEvent> {
        self.store
            .load_stream(stream_id)
            .await
            .expect("stream loads")
    }

    /// Creates a category and returns its id.
    pub async fn category(&self, slug: &str) -> Uuid {
        let response = self
            .post("/v1/categories", &json!({ "name": slug, "slug": slug }))
            .await;
        created_id(response).await
    }

    /// Creates a brand and returns its id.
    pub async fn brand(&self, slug: &str) -> Uuid {
        let response = self
            .post("/v1/brands", &json!({ "name": slug, "slug": slug }))
            .await;
        created_id(response).await
    }

    /// Creates a product from `body` and returns its id.
    pub async fn product(&self, body: &Value) -> Uuid {
        created_id(self.post("/v1/products", body).await).await
    }
}

/// The smallest valid product body.
pub fn product_body(sku: &str, slug: &str) -> Value {
    json!({
        "sku": sku,
        "name": format!("Product {sku}"),
        "slug": slug,
        "regular_price": "39900.00",
    })
}

/// Asserts a 201 and returns the created id.
pub async fn created_id(response: Response) -> Uuid {
    let status = response.status();
    let body: Value = response.json().await.expect("json body");
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").parse().expect("uuid id")
}

/// Asserts a success status and returns the body.
pub async fn ok_body(response: Response, expected: StatusCode) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json body");
    assert_eq!(status, expected, "{body}");
    body
}

/// Asserts a problem document of `status` and `kind`, and returns it.
pub async fn problem(response: Response, status: StatusCode, kind: &str) -> Value {
    let actual = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        response.headers().contains_key("x-request-id"),
        "every response carries X-Request-Id"
    );
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "{text}");
    assert_eq!(content_type.as_deref(), Some(PROBLEM_JSON), "{text}");
    let body: Value = serde_json::from_str(&text).expect("problem is json");
    assert_eq!(
        body["type"],
        format!("https://errors.ecommerce.local/{kind}"),
        "{body}"
    );
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(body["title"].is_string(), "{body}");
    assert!(body["detail"].is_string(), "{body}");
    assert!(body["instance"].is_string(), "{body}");
    body
}

pub fn event_types(events: &[RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}
