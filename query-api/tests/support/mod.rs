//! Test support shared by the contract and HTTP suites: one isolated slice of
//! every real server per test (its own database, Redis key prefix and index
//! alias), fixtures in the shapes of `infrastructure::views`, and clean-up of
//! what a test created, even when it fails.
#![allow(dead_code)]

mod carts;
mod notifications;
mod orders;
mod promotions;

// Not every test binary that includes this module reads carts.
#[allow(unused_imports)]
pub use carts::{guest_session, seed_cart, user_owner};
#[allow(unused_imports)]
pub use notifications::{
    account_notification, marked_read, notification_id, order_notification, read_mark_alone,
};
#[allow(unused_imports)]
pub use orders::{order_line, seed_order};
#[allow(unused_imports)]
pub use promotions::{coupon, far_future, promotion};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Url;
use elasticsearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesPutAliasParts, IndicesRefreshParts,
};
use elasticsearch::{BulkParts, Elasticsearch};
use infrastructure::sessions::Sessions;
use infrastructure::settings::Settings;
use infrastructure::testing::{isolated_settings, unique_suffix, TestDatabase};
use infrastructure::views::{
    product_cache_key, products_index_body, BrandView, CachedProduct, CategoryView, NamedRef,
    ProductView, SearchProduct,
};
use query_api::carts::{MongoCartDocuments, RedisCartCache};
use query_api::catalog::PgCatalogReadModel;
use query_api::notifications::MongoNotifications;
use query_api::orders::PgOrdersReadModel;
use query_api::products::{ElasticsearchProductSearch, RedisProductCache};
use query_api::promotions::PgPromotionsReadModel;
use query_api::users::PgUsersReadModel;
use query_api::{AppState, Application};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

/// An address nothing listens on: a store that is down.
pub const DEAD_REDIS: &str = "redis://127.0.0.1:1";
pub const DEAD_ELASTICSEARCH: &str = "http://127.0.0.1:1";
pub const DEAD_POSTGRES: &str = "postgres://postgres@127.0.0.1:1/nothing";
pub const DEAD_MONGO: &str = "mongodb://127.0.0.1:1/?directConnection=true";

pub fn es_client(url: &str) -> Elasticsearch {
    let transport = TransportBuilder::new(SingleNodeConnectionPool::new(
        Url::parse(url).expect("es url"),
    ))
    .disable_proxy()
    .build()
    .expect("es transport");
    Elasticsearch::new(transport)
}

/// One test's slice of the servers. Dropping it deletes the Elasticsearch
/// indexes and Redis keys it created and, when it wrote there, its Mongo
/// database, then the database.
pub struct TestContext {
    pub settings: Settings,
    pub suffix: String,
    created_indexes: Mutex<Vec<String>>,
    /// Whether the test wrote to its Mongo database, which `Drop` then drops.
    used_mongo: AtomicBool,
    // Dropped last, after the clean-up in `Drop`.
    pub db: TestDatabase,
}

impl TestContext {
    pub async fn new() -> Self {
        let db = TestDatabase::create().await;
        let suffix = unique_suffix();
        let settings = isolated_settings(&db.url, &suffix);
        Self {
            settings,
            suffix,
            created_indexes: Mutex::new(Vec::new()),
            used_mongo: AtomicBool::new(false),
            db,
        }
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.db.pool
    }

    pub fn alias(&self) -> &str {
        &self.settings.elasticsearch.products_alias
    }

    // ------------------------------------------------------------- PostgreSQL

    pub async fn insert_category(&self, category: &CategoryView) {
        sqlx::query(
            "INSERT INTO read_model.categories (id, parent_id, name, slug, description, image_url, \
             meta_title, meta_description, meta_keywords, sort_order, is_active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(category.id)
        .bind(category.parent_id)
        .bind(&category.name)
        .bind(&category.slug)
        .bind(&category.description)
        .bind(&category.image_url)
        .bind(&category.meta_title)
        .bind(&category.meta_description)
        .bind(&category.meta_keywords)
        .bind(category.sort_order)
        .bind(category.is_active)
        .bind(category.created_at)
        .bind(category.updated_at)
        .execute(self.pool())
        .await
        .expect("insert category");
    }

    pub async fn insert_brand(&self, brand: &BrandView) {
        sqlx::query(
            "INSERT INTO read_model.brands (id, name, slug, description, logo_url, website_url, \
             is_active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(brand.id)
        .bind(&brand.name)
        .bind(&brand.slug)
        .bind(&brand.description)
        .bind(&brand.logo_url)
        .bind(&brand.website_url)
        .bind(brand.is_active)
        .bind(brand.created_at)
        .bind(brand.updated_at)
        .execute(self.pool())
        .await
        .expect("insert brand");
    }

    /// Inserts the product row, with an internal cost price the API must not expose.
    pub async fn insert_product(&self, product: &ProductView) {
        sqlx::query(
            "INSERT INTO read_model.products (id, sku, name, slug, description, short_description, \
             category_id, brand_id, regular_price, sale_price, cost_price, currency, track_inventory, \
             stock_quantity, low_stock_threshold, weight, length, width, height, meta_title, \
             meta_description, meta_keywords, status, featured, created_at, updated_at, published_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)",
        )
        .bind(product.id)
        .bind(&product.sku)
        .bind(&product.name)
        .bind(&product.slug)
        .bind(&product.description)
        .bind(&product.short_description)
        .bind(product.category_id)
        .bind(product.brand_id)
        .bind(product.regular_price)
        .bind(product.sale_price)
        .bind(Decimal::new(100, 2))
        .bind(&product.currency)
        .bind(product.track_inventory)
        .bind(product.stock_quantity)
        .bind(product.low_stock_threshold)
        .bind(product.weight)
        .bind(product.length)
        .bind(product.width)
        .bind(product.height)
        .bind(&product.meta_title)
        .bind(&product.meta_description)
        .bind(&product.meta_keywords)
        .bind(&product.status)
        .bind(product.featured)
        .bind(product.created_at)
        .bind(product.updated_at)
        .bind(product.published_at)
        .execute(self.pool())
        .await
        .expect("insert product");
        // Children last first: the read model, not the insertion, orders them.
        for image in product.images.iter().rev() {
            sqlx::query(
                "INSERT INTO read_model.product_images (id, product_id, url, alt_text, is_primary, sort_order) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(image.id)
            .bind(product.id)
            .bind(&image.url)
            .bind(&image.alt_text)
            .bind(image.is_primary)
            .bind(image.sort_order)
            .execute(self.pool())
            .await
            .expect("insert image");
        }
        for attribute in product.attributes.iter().rev() {
            sqlx::query(
                "INSERT INTO read_model.product_attributes (id, product_id, name, value, sort_order) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(attribute.id)
            .bind(product.id)
            .bind(&attribute.name)
            .bind(&attribute.value)
            .bind(attribute.sort_order)
            .execute(self.pool())
            .await
            .expect("insert attribute");
        }
        for variant in product.variants.iter().rev() {
            sqlx::query(
                "INSERT INTO read_model.product_variants (id, product_id, sku, name, price, stock_quantity, \
                 attributes, is_active) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(variant.id)
            .bind(product.id)
            .bind(&variant.sku)
            .bind(&variant.name)
            .bind(variant.price)
            .bind(variant.stock_quantity)
            .bind(serde_json::to_value(&variant.attributes).unwrap())
            .bind(variant.is_active)
            .execute(self.pool())
            .await
            .expect("insert variant");
        }
    }

    // ------------------------------------------------------------------ Redis

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.settings.redis.url.as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis is reachable; start it with `scripts/services up`")
    }

    pub fn cache_key(&self, id: Uuid) -> String {
        product_cache_key(&self.settings.redis.key_prefix, id)
    }

    /// Writes the entry as the cache projector does.
    pub async fn cache_put(&self, product: &ProductView) -> CachedProduct {
        let entry = CachedProduct::new(product.clone(), Utc::now());
        self.cache_put_raw(product.id, &serde_json::to_string(&entry).unwrap())
            .await;
        entry
    }

    pub async fn cache_put_raw(&self, id: Uuid, value: &str) {
        let mut redis = self.redis().await;
        redis::cmd("SET")
            .arg(self.cache_key(id))
            .arg(value)
            .query_async::<()>(&mut redis)
            .await
            .expect("redis set");
    }

    // ---------------------------------------------------------- Elasticsearch

    pub fn es(&self) -> Elasticsearch {
        es_client(&self.settings.elasticsearch.url)
    }

    /// Creates `{alias}-v1` with the products mapping and points the alias at it.
    pub async fn create_search_index(&self) -> String {
        let index = format!("{}-v1", self.alias());
        let es = self.es();
        let response = es
            .indices()
            .create(IndicesCreateParts::Index(&index))
            .body(products_index_body())
            .send()
            .await
            .expect("elasticsearch is reachable; start it with `scripts/services up`");
        assert!(
            response.status_code().is_success(),
            "create index: {}",
            response.text().await.unwrap_or_default()
        );
        self.created_indexes.lock().unwrap().push(index.clone());
        let response = es
            .indices()
            .put_alias(IndicesPutAliasParts::IndexName(&[&index], self.alias()))
            .send()
            .await
            .expect("put alias");
        assert!(response.status_code().is_success(), "put alias");
        index
    }

    /// Bulk-indexes the documents through the alias (creating the index on
    /// first use), then refreshes so that they are searchable.
    pub async fn index_products(&self, docs: &[SearchProduct]) {
        if self.created_indexes.lock().unwrap().is_empty() {
            self.create_search_index().await;
        }
        let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(docs.len() * 2);
        for doc in docs {
            body.push(json!({ "index": { "_id": doc.id.to_string() } }).into());
            body.push(serde_json::to_value(doc).unwrap().into());
        }
        let es = self.es();
        let response = es
            .bulk(BulkParts::Index(self.alias()))
            .body(body)
            .send()
            .await
            .expect("bulk");
        let answer: Value = response.json().await.expect("bulk answer");
        assert_eq!(answer["errors"], json!(false), "bulk failed: {answer}");
        let response = es
            .indices()
            .refresh(IndicesRefreshParts::Index(&[self.alias()]))
            .send()
            .await
            .expect("refresh");
        assert!(response.status_code().is_success(), "refresh");
    }

    // -------------------------------------------------------------------- app

    /// The real adapters over this context's stores.
    pub fn state(&self) -> AppState {
        AppState {
            read_model: Arc::new(PgCatalogReadModel::new(self.pool().clone())),
            applied: Arc::new(query_api::consistency::PgAppliedTokens::new(
                self.pool().clone(),
                self.settings.kafka.clone(),
                self.settings.relay.name.clone(),
            )),
            consistency: query_api::consistency::ConsistencyWait::from_settings(
                &self.settings.consistency,
            ),
            cache: Arc::new(RedisProductCache::new(&self.settings.redis).expect("redis adapter")),
            search: Arc::new(
                ElasticsearchProductSearch::new(&self.settings.elasticsearch)
                    .expect("elasticsearch adapter"),
            ),
            users: Arc::new(PgUsersReadModel::new(self.pool().clone())),
            sessions: Arc::new(self.sessions()),
            limiter: Arc::new(
                infrastructure::rate_limit::RateLimiter::new(
                    &self.settings.redis.url,
                    &self.settings.redis.key_prefix,
                )
                .expect("rate limiter"),
            ),
            rate_limits: self.settings.rate_limits.clone(),
            trusted_proxies: Arc::new(self.settings.http.trusted_proxies.clone()),
            cart_cache: Arc::new(RedisCartCache::new(&self.settings.redis).expect("redis adapter")),
            cart_documents: Arc::new(MongoCartDocuments::new(&self.settings.mongo)),
            promotions: Arc::new(PgPromotionsReadModel::new(self.pool().clone())),
            orders: Arc::new(PgOrdersReadModel::new(self.pool().clone())),
            notifications: Arc::new(MongoNotifications::new(&self.settings.mongo)),
        }
    }

    /// The session store of this context's Redis prefix.
    pub fn sessions(&self) -> Sessions {
        Sessions::new(
            &self.settings.redis.url,
            &self.settings.redis.key_prefix,
            std::time::Duration::from_secs(3600),
        )
        .expect("session store")
    }

    /// A client holding a live session of `role` for user `user_id`, opened
    /// in the real Redis as a login would.
    pub async fn client_as(&self, user_id: Uuid, role: &str) -> reqwest::Client {
        let (token, _) = self
            .sessions()
            .open(user_id, &format!("{user_id}@shop.test"), role, Utc::now())
            .await
            .expect("Redis answers; start it with `scripts/services up`");
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", token.expose_secret()).parse().unwrap(),
        );
        reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .build()
            .expect("http client")
    }

    /// The application on 127.0.0.1:0 over the given adapters.
    pub async fn spawn_app_with(&self, state: AppState) -> TestApp {
        TestApp::spawn(
            Application::with_state(&self.settings, state)
                .await
                .expect("application binds"),
        )
    }

    /// The real application, read by an admin (who sees every status).
    pub async fn spawn_admin_app(&self) -> TestApp {
        let mut app = self.spawn_app().await;
        app.client = self.client_as(Uuid::now_v7(), "admin").await;
        app
    }

    /// The real application on 127.0.0.1:0 over this context's stores.
    pub async fn spawn_app(&self) -> TestApp {
        TestApp::spawn(
            Application::build(self.settings.clone())
                .await
                .expect("application builds"),
        )
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        let indexes = std::mem::take(&mut *self.created_indexes.lock().unwrap());
        let es_url = self.settings.elasticsearch.url.clone();
        let redis_url = self.settings.redis.url.clone();
        let pattern = format!("{}*", self.settings.redis.key_prefix);
        let mongo = self.used_mongo.load(Ordering::SeqCst).then(|| {
            (
                self.settings.mongo.url.clone(),
                self.settings.mongo.database.clone(),
            )
        });
        // Drop cannot await: a helper thread with its own runtime cleans up.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                if let Some((url, database)) = mongo {
                    if let Ok(client) = mongodb::Client::with_uri_str(&url).await {
                        let _ = client.database(&database).drop().await;
                    }
                }
                let es = es_client(&es_url);
                for index in &indexes {
                    let _ = es
                        .indices()
                        .delete(IndicesDeleteParts::Index(&[index]))
                        .send()
                        .await;
                }
                let mut redis = redis::Client::open(redis_url.as_str())
                    .ok()?
                    .get_multiplexed_async_connection()
                    .await
                    .ok()?;
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut redis)
                        .await
                        .ok()?;
                    if !keys.is_empty() {
                        redis::cmd("DEL")
                            .arg(&keys)
                            .query_async::<()>(&mut redis)
                            .await
                            .ok()?;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                Some(())
            })
        })
        .join();
    }
}

// ------------------------------------------------------------------ fixtures

pub fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, day, 10, 30, 0).unwrap()
}

pub fn money(text: &str) -> Decimal {
    text.parse().expect("amount")
}

pub fn category(name: &str, sort_order: i32) -> CategoryView {
    CategoryView {
        id: Uuid::new_v4(),
        parent_id: None,
        name: name.into(),
        slug: format!(
            "{}-{}",
            name.to_lowercase().replace(' ', "-"),
            unique_suffix()
        ),
        description: Some(format!("All about {name}")),
        image_url: None,
        meta_title: None,
        meta_description: None,
        meta_keywords: vec![name.to_lowercase()],
        sort_order,
        is_active: true,
        created_at: at(1),
        updated_at: at(2),
    }
}

pub fn brand(name: &str) -> BrandView {
    BrandView {
        id: Uuid::new_v4(),
        name: name.into(),
        slug: format!(
            "{}-{}",
            name.to_lowercase().replace(' ', "-"),
            unique_suffix()
        ),
        description: None,
        logo_url: Some(format!(
            "https://cdn.example.com/{}.png",
            name.to_lowercase()
        )),
        website_url: None,
        is_active: true,
        created_at: at(1),
        updated_at: at(1),
    }
}

pub fn product(name: &str) -> ProductView {
    let slug = format!(
        "{}-{}",
        name.to_lowercase().replace(' ', "-"),
        unique_suffix()
    );
    ProductView {
        id: Uuid::new_v4(),
        sku: slug.to_uppercase(),
        name: name.into(),
        slug,
        description: Some(format!("{name}, the full story")),
        short_description: Some(name.into()),
        category_id: None,
        brand_id: None,
        regular_price: money("39900.00"),
        sale_price: Some(money("35900.00")),
        currency: "THB".into(),
        track_inventory: true,
        stock_quantity: 45,
        low_stock_threshold: 5,
        weight: Some(money("0.19")),
        length: None,
        width: None,
        height: None,
        meta_title: Some(name.into()),
        meta_description: None,
        meta_keywords: vec!["phone".into()],
        status: "active".into(),
        featured: false,
        created_at: at(1),
        updated_at: at(2),
        published_at: Some(at(2)),
        images: vec![],
        attributes: vec![],
        variants: vec![],
    }
}

/// A search document with the given name and price.
pub fn search_doc(name: &str, price: f64) -> SearchProduct {
    let slug = format!(
        "{}-{}",
        name.to_lowercase().replace(' ', "-"),
        unique_suffix()
    );
    SearchProduct {
        id: Uuid::new_v4(),
        sku: slug.to_uppercase(),
        slug,
        name: name.into(),
        description: Some(format!("{name} description")),
        short_description: None,
        category: None,
        brand: None,
        price,
        regular_price: price,
        sale_price: None,
        currency: "THB".into(),
        stock: 10,
        rating: Some(4.5),
        tags: vec![],
        attributes: Default::default(),
        attribute_filters: vec![],
        status: "active".into(),
        featured: false,
        created_at: at(1),
        updated_at: at(1),
    }
}

pub fn named(id: Uuid, name: &str) -> Option<NamedRef> {
    Some(NamedRef {
        id,
        name: Some(name.into()),
    })
}

// ----------------------------------------------------------------- HTTP app

pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl TestApp {
    pub fn spawn(application: Application) -> Self {
        let base_url = format!("http://127.0.0.1:{}", application.port());
        let server = tokio::spawn(async move {
            application
                .run_until_stopped(std::future::pending())
                .await
                .expect("server runs");
        });
        Self {
            base_url,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("http client"),
            server,
        }
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.base_url, path_and_query))
            .send()
            .await
            .expect("request is answered")
    }

    pub async fn get_with_header(
        &self,
        path_and_query: &str,
        name: &str,
        value: &str,
    ) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.base_url, path_and_query))
            .header(name, value)
            .send()
            .await
            .expect("request is answered")
    }

    /// GET, expecting `status`; answers the JSON body.
    pub async fn get_json(&self, path_and_query: &str, status: u16) -> Value {
        let response = self.get(path_and_query).await;
        let actual = response.status().as_u16();
        let body = response.text().await.expect("body");
        assert_eq!(
            actual, status,
            "GET {path_and_query} answered {actual}: {body}"
        );
        serde_json::from_str(&body).expect("json body")
    }

    /// GET, expecting a problem+json answer with `status`; answers the problem.
    pub async fn get_problem(&self, path_and_query: &str, status: u16) -> Value {
        let response = self.get(path_and_query).await;
        assert_eq!(response.status().as_u16(), status, "GET {path_and_query}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "GET {path_and_query}"
        );
        let problem: Value = response.json().await.expect("problem body");
        assert_eq!(problem["status"], status);
        assert!(problem["title"].is_string());
        problem
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A small search catalog with known answers: two categories, two brands,
/// five products of different prices, dates and statuses.
pub struct SearchCatalog {
    pub phones: Uuid,
    pub laptops: Uuid,
    pub apple: Uuid,
    pub samsung: Uuid,
    pub iphone: SearchProduct,
    pub galaxy_phone: SearchProduct,
    pub macbook: SearchProduct,
    pub galaxy_book: SearchProduct,
    pub airpods: SearchProduct,
}

impl SearchCatalog {
    pub fn new() -> Self {
        let (phones, laptops, apple, samsung) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let doc = |name: &str,
                   price: f64,
                   category: Option<(Uuid, &str)>,
                   brand: (Uuid, &str),
                   day: u32| {
            let mut doc = search_doc(name, price);
            doc.category = category.and_then(|(id, name)| named(id, name));
            doc.brand = named(brand.0, brand.1);
            doc.created_at = at(day);
            doc.updated_at = at(day);
            doc
        };
        let mut iphone = doc(
            "iPhone 15 Pro",
            35900.0,
            Some((phones, "Phones")),
            (apple, "Apple"),
            5,
        );
        iphone.regular_price = 39900.0;
        iphone.sale_price = Some(35900.0);
        iphone.tags = vec!["ios".into(), "flagship".into()];
        let mut galaxy_phone = doc(
            "Galaxy S24",
            29900.5,
            Some((phones, "Phones")),
            (samsung, "Samsung"),
            3,
        );
        galaxy_phone.tags = vec!["android".into()];
        let mut macbook = doc(
            "MacBook Air",
            42900.99,
            Some((laptops, "Laptops")),
            (apple, "Apple"),
            4,
        );
        macbook.description = Some("A thin and light laptop".into());
        let mut galaxy_book = doc(
            "Galaxy Book",
            31900.0,
            Some((laptops, "Laptops")),
            (samsung, "Samsung"),
            1,
        );
        galaxy_book.status = "draft".into();
        let mut airpods = doc("AirPods Pro", 7990.0, None, (apple, "Apple"), 2);
        airpods.regular_price = 8990.0;
        airpods.sale_price = Some(7990.0);
        airpods.status = "inactive".into();
        Self {
            phones,
            laptops,
            apple,
            samsung,
            iphone,
            galaxy_phone,
            macbook,
            galaxy_book,
            airpods,
        }
    }

    pub fn all(&self) -> Vec<SearchProduct> {
        vec![
            self.iphone.clone(),
            self.galaxy_phone.clone(),
            self.macbook.clone(),
            self.galaxy_book.clone(),
            self.airpods.clone(),
        ]
    }
}
