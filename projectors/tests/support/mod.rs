//! Shared set-up of the projector tests: an isolated database and names on
//! the real servers, catalog events (and, in `users`, sealed user events;
//! in `promotions`, promotion and coupon events; in `orders`, order events
//! with sealed addresses; in `payments`, payment events the aggregate
//! decided) appended through the real event store, and bounded waits.
#![allow(dead_code)]

pub mod adapters;
pub mod carts;
pub mod live;
pub mod orders;
pub mod payments;
pub mod platform;
pub mod promotions;
pub mod users;

use std::time::Duration;

use chrono::Utc;
use cqrs_es::DomainEvent;
use domain::catalog::{BrandEvent, CategoryEvent, ProductEvent, ProductStatus};
use domain::inventory::InventoryEvent;
use domain::values::{Currency, Price, Sku, Slug};
use infrastructure::event_store::aggregates::new_events;
use infrastructure::event_store::{EventMetadata, PgEventStore, RecordedEvent, StreamAppend};
use infrastructure::relay::OutboxRelay;
use infrastructure::settings::Settings;
use infrastructure::testing::{isolated_settings, unique_suffix, wait_for, TestDatabase};
use projectors::runtime::WorkerOptions;
use rust_decimal::Decimal;
use uuid::Uuid;

pub struct Harness {
    pub db: TestDatabase,
    pub settings: Settings,
    pub store: PgEventStore,
    pub suffix: String,
}

pub async fn harness() -> Harness {
    let db = TestDatabase::create().await;
    let suffix = unique_suffix();
    let settings = isolated_settings(&db.url, &suffix);
    let store = PgEventStore::new(db.pool.clone());
    Harness {
        db,
        settings,
        store,
        suffix,
    }
}

/// Worker options for tests: small batches, short waits and retries, no
/// periodic check for a lost store. Tests change what they exercise with
/// `WorkerOptions { field, ..worker_options() }`.
pub fn worker_options() -> WorkerOptions {
    WorkerOptions {
        batch_size: 100,
        batch_wait: Duration::from_millis(50),
        poll_wait: Duration::from_millis(500),
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(100),
        intact_check_every: Duration::from_secs(3600),
        poison_attempts: 5,
        session_timeout: Duration::from_secs(10),
        max_poll_interval: Duration::from_secs(300),
        shutdown_grace: Duration::from_secs(10),
        replay_batch_size: 500,
    }
}

pub fn metadata() -> EventMetadata {
    EventMetadata {
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        user_id: Some("admin-1".into()),
        client_ip: Some("127.0.0.1".into()),
        user_agent: Some("projector-test".into()),
    }
}

impl Harness {
    /// Appends `events` to `stream` after `expected`, as the command side would.
    pub async fn append<E: DomainEvent>(
        &self,
        aggregate_type: &str,
        stream: &str,
        expected: i64,
        events: &[E],
    ) {
        self.store
            .append(
                vec![StreamAppend {
                    stream_id: stream.to_owned(),
                    aggregate_type: aggregate_type.to_owned(),
                    expected_version: expected,
                    events: new_events(events),
                }],
                &metadata(),
                None,
                |_| serde_json::Value::Null,
            )
            .await
            .expect("append");
    }

    /// A connection to the test's Redis.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.settings.redis.url.as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis answers; start it with `scripts/services up`")
    }

    /// Everything recorded so far, in log order. The tailing read holds back
    /// events while any older transaction of the cluster (another test's) is
    /// still open, so this waits until the whole log is readable.
    pub async fn recorded(&self) -> Vec<RecordedEvent> {
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM event_store.events")
            .fetch_one(&self.db.pool)
            .await
            .expect("count events");
        eventually("the whole log to be readable", || async {
            let events = self
                .store
                .read_after(Default::default(), 100_000, None)
                .await
                .expect("read log");
            (events.len() as i64 == total).then_some(events)
        })
        .await
    }

    /// Publishes every recorded event to Kafka. The relay holds back events
    /// while an older transaction of the cluster is open, so this goes on until
    /// its checkpoint covers the whole log.
    pub async fn relay_all(&self) {
        let mut relay = OutboxRelay::new(
            self.store.clone(),
            self.settings.kafka.clone(),
            self.settings.relay.clone(),
        )
        .expect("relay");
        let name = self.settings.relay.name.clone();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            while relay.relay_once().await.expect("relay batch") > 0 {}
            let checkpoint = self.store.checkpoint(&name).await.expect("checkpoint");
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM event_store.events WHERE (transaction_id, position) > ($1::text::xid8, $2)",
            )
            .bind(checkpoint.transaction_id.to_string())
            .bind(checkpoint.position)
            .fetch_one(&self.db.pool)
            .await
            .expect("count unpublished");
            if behind == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{behind} events still unpublished"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates a category, a brand and `products` products in them; returns
    /// (category, brand, product ids).
    pub async fn seed_catalog(&self, products: usize) -> (Uuid, Uuid, Vec<Uuid>) {
        let category = Uuid::now_v7();
        let brand = Uuid::now_v7();
        self.append(
            "category",
            &category.to_string(),
            0,
            &[category_created(category, "Phones", "phones")],
        )
        .await;
        self.append(
            "brand",
            &brand.to_string(),
            0,
            &[brand_created(brand, "Apple", "apple")],
        )
        .await;
        let mut ids = Vec::new();
        for n in 0..products {
            let id = Uuid::now_v7();
            let sku = format!("SKU-{n}");
            self.append(
                "product",
                &id.to_string(),
                0,
                &[product_created(
                    id,
                    &sku,
                    &format!("phone-{n}"),
                    Some(category),
                    Some(brand),
                    1000 + n as i64,
                    10,
                )],
            )
            .await;
            self.append(
                "inventory",
                &format!("inventory:{sku}"),
                0,
                &[stock_initialized(id, &sku, 10)],
            )
            .await;
            ids.push(id);
        }
        (category, brand, ids)
    }
}

pub fn category_created(id: Uuid, name: &str, slug: &str) -> CategoryEvent {
    CategoryEvent::CategoryCreated {
        category_id: id,
        parent_id: None,
        name: name.into(),
        slug: Slug::parse(slug).unwrap(),
        description: None,
        image_url: None,
        meta_title: None,
        meta_description: None,
        meta_keywords: vec![],
        sort_order: 0,
        is_active: true,
        at: Utc::now(),
    }
}

pub fn brand_created(id: Uuid, name: &str, slug: &str) -> BrandEvent {
    BrandEvent::BrandCreated {
        brand_id: id,
        name: name.into(),
        slug: Slug::parse(slug).unwrap(),
        description: None,
        logo_url: None,
        website_url: None,
        is_active: true,
        at: Utc::now(),
    }
}

pub fn product_created(
    id: Uuid,
    sku: &str,
    slug: &str,
    category: Option<Uuid>,
    brand: Option<Uuid>,
    price: i64,
    stock: i32,
) -> ProductEvent {
    ProductEvent::ProductCreated {
        product_id: id,
        sku: Sku::parse(sku).unwrap(),
        name: format!("Product {sku}"),
        slug: Slug::parse(slug).unwrap(),
        description: Some("A very good phone".into()),
        short_description: None,
        category_id: category,
        brand_id: brand,
        regular_price: Price::new(Decimal::new(price * 100, 2)).unwrap(),
        sale_price: None,
        cost_price: None,
        currency: Currency::thb(),
        track_inventory: true,
        stock_quantity: stock,
        low_stock_threshold: 5,
        weight: None,
        length: None,
        width: None,
        height: None,
        meta_title: None,
        meta_description: None,
        meta_keywords: vec!["phone".into()],
        status: ProductStatus::Draft,
        featured: false,
        at: Utc::now(),
    }
}

pub fn price_changed(id: Uuid, previous: i64, price: i64) -> ProductEvent {
    ProductEvent::ProductPriceChanged {
        product_id: id,
        previous_regular_price: Price::new(Decimal::new(previous * 100, 2)).unwrap(),
        previous_sale_price: None,
        regular_price: Price::new(Decimal::new(price * 100, 2)).unwrap(),
        sale_price: None,
        cost_price: None,
        at: Utc::now(),
    }
}

pub fn stock_initialized(product: Uuid, sku: &str, quantity: i32) -> InventoryEvent {
    InventoryEvent::StockInitialized {
        sku: Sku::parse(sku).unwrap(),
        product_id: product,
        variant_id: None,
        quantity,
        low_stock_threshold: 5,
        track_inventory: true,
        at: Utc::now(),
    }
}

/// Rows of the catalog tables as JSON, in a stable order, for comparing two
/// read models.
pub async fn dump_catalog(pool: &sqlx::PgPool) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for table in [
        "categories",
        "brands",
        "products",
        "product_images",
        "product_attributes",
        "product_variants",
    ] {
        let json: Vec<serde_json::Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t) FROM read_model.{table} t ORDER BY id"
        ))
        .fetch_all(pool)
        .await
        .expect("dump table");
        rows.push(serde_json::json!({ table: json }));
    }
    rows
}

pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_for(what, Duration::from_secs(60), check).await
}
