//! The real application on 127.0.0.1:0 against its own fresh database, and
//! helpers to call it and inspect the event store.

use command_api::Application;
use infrastructure::event_store::{PgEventStore, RecordedEvent};
use infrastructure::personal_data::PersonalData;
use infrastructure::settings::Settings;
use infrastructure::testing::{isolated_settings, unique_suffix, TestDatabase};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

pub const PROBLEM_JSON: &str = "application/problem+json";
pub const ADMIN_EMAIL: &str = "admin@shop.test";
pub const ADMIN_PASSWORD: &str = "an admin's long passphrase";
/// The password of every account [`TestApp::customer`] registers.
pub const CUSTOMER_PASSWORD: &str = "a customer's long passphrase";

pub struct TestApp {
    pub base: String,
    /// The relay's checkpoint name.
    pub relay_name: String,
    pub settings: Settings,
    pub store: PgEventStore,
    /// Sends every request as the admin that `spawn` creates.
    pub client: reqwest::Client,
    /// Sends no credentials.
    pub anonymous: reqwest::Client,
    pub admin_id: Uuid,
    /// The events the admin's registration and login appended.
    pub setup_events: i64,
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
        let app = Application::build(settings.clone())
            .await
            .expect("the app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until(std::future::pending()));
        command_api::operator::create_admin(
            &settings,
            ADMIN_EMAIL,
            "Admin",
            "User",
            ADMIN_PASSWORD.into(),
        )
        .await
        .expect("the first admin is created");
        let anonymous = reqwest::Client::new();
        let session = log_in(&anonymous, &base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let admin_id = session["user_id"].as_str().unwrap().parse().unwrap();
        let setup_events = sqlx::query_scalar("SELECT count(*) FROM event_store.events")
            .fetch_one(&db.pool)
            .await
            .expect("events counted");
        Self {
            base,
            relay_name,
            settings,
            store: PgEventStore::new(db.pool.clone()),
            client: bearer_client(&session),
            anonymous,
            admin_id,
            setup_events,
            db,
        }
    }

    /// Registers a customer and returns a client logged in as them, with
    /// their id.
    pub async fn customer(&self, email: &str) -> (reqwest::Client, Uuid) {
        let password = CUSTOMER_PASSWORD;
        let response = self
            .anonymous
            .post(format!("{}/v1/users", self.base))
            .json(&json!({
                "email": email,
                "password": password,
                "first_name": "Somchai",
                "last_name": "Jaidee",
            }))
            .send()
            .await
            .expect("request sent");
        let id = created_id(response).await;
        let session = log_in(&self.anonymous, &self.base, email, password).await;
        (bearer_client(&session), id)
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

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path)
            .send()
            .await
            .expect("request sent")
    }

    /// Sends `body` (none when `None`) to `path` as `client`'s user.
    pub async fn send_as(
        &self,
        client: &reqwest::Client,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        let request = client.request(method, format!("{}{}", self.base, path));
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        request.send().await.expect("request sent")
    }

    /// The answer to a login, whatever it is.
    pub async fn try_log_in(&self, email: &str, password: &str) -> Response {
        self.anonymous
            .post(format!("{}/v1/sessions", self.base))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("request sent")
    }

    /// Rows in `event_store.events` appended since the set-up.
    pub async fn event_count(&self) -> i64 {
        let all: i64 = sqlx::query_scalar("SELECT count(*) FROM event_store.events")
            .fetch_one(&self.db.pool)
            .await
            .expect("events counted");
        all - self.setup_events
    }

    pub async fn events(&self, stream_id: &str) -> Vec<RecordedEvent> {
        self.store
            .load_stream(stream_id)
            .await
            .expect("stream loads")
    }

    /// The stream's events with their personal data opened, as the
    /// projections see them.
    pub async fn opened_events(&self, stream_id: &str) -> Vec<RecordedEvent> {
        let mut events = self.events(stream_id).await;
        PersonalData::new(
            self.db.pool.clone(),
            &self.settings.personal_data,
            domain::personal::personal_fields,
            domain::personal::erased_value,
        )
        .unwrap()
        .open(&mut events)
        .await
        .expect("personal data opens");
        events
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

/// Logs in and returns the session answer (`token`, `user_id`, ...).
pub async fn log_in(client: &reqwest::Client, base: &str, email: &str, password: &str) -> Value {
    let response = client
        .post(format!("{base}/v1/sessions"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("request sent");
    ok_body(response, StatusCode::CREATED).await
}

/// A client that sends the session's bearer token with every request.
pub fn bearer_client(session: &Value) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let token = format!("Bearer {}", session["token"].as_str().expect("a token"));
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&token).unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("http client")
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
