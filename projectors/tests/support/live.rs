//! A live worker of a projection in a test, fed through Kafka as in
//! production, and the writes shoppers and admins make meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use infrastructure::event_store::RecordedEvent;
use projectors::runtime::{Projection, Worker, WorkerOptions};
use uuid::Uuid;

use super::orders::{confirmed, line, placed};
use super::payments::Story;
use super::promotions::{created, issued, terms};
use super::users::registered;
use super::{price_changed, product_created, worker_options, Harness};

/// A live worker of the projection, fed through Kafka as in production.
pub struct Live {
    pub h: Arc<Harness>,
    pub worker: tokio::sync::Mutex<Worker>,
    types: &'static [&'static str],
    /// A product whose price the live writes keep changing, and its version.
    product: Uuid,
    version: AtomicUsize,
}

impl Live {
    pub async fn start(h: Arc<Harness>, projection: Arc<dyn Projection>, product: Uuid) -> Self {
        Self::start_with(h, projection, product, worker_options()).await
    }

    pub async fn start_with(
        h: Arc<Harness>,
        projection: Arc<dyn Projection>,
        product: Uuid,
        options: WorkerOptions,
    ) -> Self {
        let types = projection.aggregate_types();
        let worker = Worker::new(projection, &h.settings.kafka, h.store.clone(), options)
            .await
            .expect("kafka answers; start it with `scripts/services up`");
        let live = Self {
            h,
            worker: tokio::sync::Mutex::new(worker),
            types,
            product,
            version: AtomicUsize::new(1),
        };
        live.catch_up().await;
        live
    }

    pub fn relevant(&self, events: &[RecordedEvent]) -> usize {
        events
            .iter()
            .filter(|e| self.types.contains(&e.aggregate_type.as_str()))
            .count()
    }

    /// Relays everything and lets the worker apply it all.
    pub async fn catch_up(&self) {
        self.h.relay_all().await;
        let wanted = self.relevant(&self.h.recorded().await) as u64;
        let mut worker = self.worker.lock().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while worker.stats().events.load(Ordering::Relaxed) < wanted {
            assert!(
                std::time::Instant::now() < deadline,
                "the live worker did not catch up"
            );
            worker.run_once().await.expect("a live batch");
        }
    }

    /// What shoppers and admins do meanwhile: a new product, a price change
    /// of an existing one, a new account, a new promotion with a coupon, an
    /// order of the first customer (when there is one) for the existing
    /// product, confirmed, a failed payment attempt for the first order
    /// (when there is one), all applied by the live worker.
    pub async fn write(&self) {
        let (category, brand) = self.parents().await;
        let id = Uuid::now_v7();
        let sku = format!("LIVE-{}", &id.simple().to_string()[20..]);
        self.h
            .append(
                "product",
                &id.to_string(),
                0,
                &[product_created(
                    id,
                    &sku,
                    &format!("live-{}", &id.simple().to_string()[20..]),
                    Some(category),
                    Some(brand),
                    500,
                    3,
                )],
            )
            .await;
        let version = self.version.fetch_add(1, Ordering::SeqCst) as i64;
        self.h
            .append(
                "product",
                &self.product.to_string(),
                version,
                &[price_changed(self.product, 1000 + version, 1001 + version)],
            )
            .await;
        let user = Uuid::now_v7();
        self.h
            .append_user(
                user,
                0,
                &[registered(
                    user,
                    &format!("live-{user}@example.com"),
                    None,
                    0,
                )],
            )
            .await;
        let (promotion, coupon) = (Uuid::now_v7(), Uuid::now_v7());
        self.h
            .append_promotion(promotion, 0, &[created(promotion, terms(), 0)])
            .await;
        let code = format!("LIVE-{}", &coupon.simple().to_string()[20..]);
        self.h
            .append_coupon(coupon, 0, &[issued(coupon, &code, promotion, 1)])
            .await;
        if let Some(customer) = self.first_customer().await {
            let order = Uuid::now_v7();
            let lines = vec![line(self.product, None, "LIVE-ORDER", "99.50", 2)];
            self.h
                .append_order(
                    order,
                    0,
                    &[
                        placed(order, Some(customer), lines, 20),
                        confirmed(order, 21),
                    ],
                )
                .await;
        }
        if let Some(order) = self.first_order().await {
            let payment = Uuid::now_v7();
            let attempt = Story::initiated(payment, order, &self.h.order_total(order).await, 40)
                .report(
                    &format!("pi_live_{}", payment.simple()),
                    domain::payment::ProviderOutcome::Failed,
                    41,
                );
            self.h.append_story(&attempt).await;
        }
        self.catch_up().await;
    }

    /// The order placed first, whose row a rebuild of the orders tables
    /// before the live writes holds.
    async fn first_order(&self) -> Option<Uuid> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT aggregate_id FROM event_store.events \
             WHERE aggregate_type = 'order' AND event_type = 'OrderPlaced' \
             ORDER BY position LIMIT 1",
        )
        .fetch_optional(&self.h.db.pool)
        .await
        .unwrap();
        id.map(|id| id.parse().unwrap())
    }

    /// The user registered first, whose row a rebuild of the users tables
    /// before the live writes holds.
    async fn first_customer(&self) -> Option<Uuid> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT aggregate_id FROM event_store.events \
             WHERE aggregate_type = 'user' AND event_type = 'UserRegistered' \
             ORDER BY position LIMIT 1",
        )
        .fetch_optional(&self.h.db.pool)
        .await
        .unwrap();
        id.map(|id| id.parse().unwrap())
    }

    async fn parents(&self) -> (Uuid, Uuid) {
        let of = |t: &'static str| async move {
            let id: String = sqlx::query_scalar(
                "SELECT aggregate_id FROM event_store.events WHERE aggregate_type = $1 LIMIT 1",
            )
            .bind(t)
            .fetch_one(&self.h.db.pool)
            .await
            .unwrap();
            id.parse::<Uuid>().unwrap()
        };
        (of("category").await, of("brand").await)
    }
}
