//! Payment events for the projector tests, decided by the payment aggregate
//! itself (`Payment::decide`, then applied), so that every status, amount
//! and refund total is what the command side would append; the payments
//! tables read back; and the adapter the shared suites run them through.

use std::sync::Arc;

use cqrs_es::Aggregate;
use domain::payment::{Payment, PaymentCommand, PaymentEvent, ProviderOutcome, RefundOutcome};
use domain::values::{Currency, Money};
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::{PgEventStore, RecordedEvent};
use projectors::projections::orders_tables::OrdersTables;
use projectors::projections::payments_tables::PaymentsTables;
use projectors::runtime::worker::rebuild;
use projectors::runtime::{
    DeadLetter, DeadLetters, NextGeneration, Projection, ProjectionError, WorkerStats,
};
use serde_json::{json, Value};
use uuid::Uuid;

use super::adapters::{Adapter, WithParents};
use super::users::at;
use super::{worker_options, Harness};

pub fn money(raw: &str) -> Money {
    Money::new(raw.parse().unwrap()).unwrap()
}

/// What a provider answers about `transaction`: `outcome`, as its JSON body.
pub fn response(transaction: &str, outcome: ProviderOutcome) -> Value {
    json!({ "id": transaction, "status": outcome.to_string(), "livemode": false })
}

/// A payment's history as the aggregate decides it, one command at a time.
#[derive(Clone)]
pub struct Story {
    pub id: Uuid,
    pub order: Uuid,
    state: Payment,
    pub events: Vec<PaymentEvent>,
}

impl Story {
    /// A credit card payment of `amount` THB (the order's total) through the
    /// sandbox provider, initiated `when` minutes into the test day, whose
    /// transaction id is its own id.
    pub fn initiated(id: Uuid, order: Uuid, amount: &str, when: i64) -> Self {
        let story = Self {
            id,
            order,
            state: Payment::default(),
            events: Vec::new(),
        };
        story.decide(PaymentCommand::InitiatePayment {
            payment_id: id,
            order_id: order,
            order_total: money(amount),
            order_currency: Currency::thb(),
            amount: money(amount),
            currency: Currency::thb(),
            payment_method: "credit_card".into(),
            payment_provider: "sandbox".into(),
            transaction_id: Some(id.to_string()),
            has_active_payment_for_order: false,
            at: at(when),
        })
    }

    /// The provider reports `outcome` about `transaction`.
    pub fn report(self, transaction: &str, outcome: ProviderOutcome, when: i64) -> Self {
        self.decide(PaymentCommand::RecordProviderResult {
            provider_transaction_id: transaction.into(),
            outcome,
            provider_response: response(transaction, outcome),
            at: at(when),
        })
    }

    /// A refund of `amount` is asked for.
    pub fn refund(self, refund: Uuid, amount: &str, reason: Option<&str>, when: i64) -> Self {
        self.decide(PaymentCommand::RefundPayment {
            refund_id: refund,
            amount: money(amount),
            reason: reason.map(str::to_owned),
            at: at(when),
        })
    }

    /// The provider reports `outcome` about `refund`.
    pub fn refund_result(
        self,
        refund: Uuid,
        outcome: RefundOutcome,
        provider_refund: Option<&str>,
        when: i64,
    ) -> Self {
        self.decide(PaymentCommand::RecordRefundResult {
            refund_id: refund,
            outcome,
            provider_refund_id: provider_refund.map(str::to_owned),
            at: at(when),
        })
    }

    fn decide(mut self, command: PaymentCommand) -> Self {
        let decided = self.state.decide(command).expect("the payment decides");
        assert!(!decided.is_empty(), "the command appends something");
        for event in decided {
            self.state.apply(event.clone());
            self.events.push(event);
        }
        self
    }
}

impl Harness {
    /// Appends `events` to `payment`'s stream after `expected`, as the
    /// command API does.
    pub async fn append_payment(&self, payment: Uuid, expected: i64, events: &[PaymentEvent]) {
        self.append("payment", &payment.to_string(), expected, events)
            .await;
    }

    /// Appends the whole `story` to a new stream.
    pub async fn append_story(&self, story: &Story) {
        self.append_payment(story.id, 0, &story.events).await;
    }

    /// The total of `order`, as its placement recorded it.
    pub async fn order_total(&self, order: Uuid) -> String {
        let total: Value = sqlx::query_scalar(
            "SELECT payload->'OrderPlaced'->'total_amount' FROM event_store.events \
             WHERE aggregate_type = 'order' AND aggregate_id = $1 AND version = 1",
        )
        .bind(order.to_string())
        .fetch_one(&self.db.pool)
        .await
        .expect("the order's placement");
        serde_json::from_value::<Money>(total)
            .expect("a total")
            .to_string()
    }

    /// Payments of every kind for `orders`, in turn: captured, then partly
    /// refunded; captured, then wholly refunded (with a failed refund
    /// first); failed, then paid by a second attempt. Returns their ids.
    pub async fn seed_payments(&self, orders: &[Uuid]) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for (n, order) in orders.iter().enumerate() {
            let total = self.order_total(*order).await;
            let id = Uuid::now_v7();
            let transaction = format!("pi_{}", id.simple());
            let captured = Story::initiated(id, *order, &total, 20)
                .report(&transaction, ProviderOutcome::Processing, 21)
                .report(&transaction, ProviderOutcome::Completed, 22);
            let story = match n % 3 {
                0 => {
                    let refund = Uuid::now_v7();
                    captured
                        .refund(refund, "100.25", Some("One item returned"), 30)
                        .refund_result(refund, RefundOutcome::Completed, Some("re_1"), 31)
                }
                1 => {
                    let (failed, whole) = (Uuid::now_v7(), Uuid::now_v7());
                    captured
                        .refund(failed, &total, None, 30)
                        .refund_result(failed, RefundOutcome::Failed, None, 31)
                        .refund(whole, &total, Some("Order returned"), 32)
                        .refund_result(whole, RefundOutcome::Completed, Some("re_2"), 33)
                }
                _ => {
                    let first = Uuid::now_v7();
                    let attempt = Story::initiated(first, *order, &total, 15).report(
                        &format!("pi_{}", first.simple()),
                        ProviderOutcome::Failed,
                        16,
                    );
                    self.append_story(&attempt).await;
                    ids.push(first);
                    captured
                }
            };
            self.append_story(&story).await;
            ids.push(id);
        }
        ids
    }
}

/// Rows of the payments tables as JSON, in a stable order, for comparing two
/// read models.
pub async fn dump_payments(pool: &sqlx::PgPool) -> Vec<Value> {
    let mut rows = Vec::new();
    for table in ["payments", "payment_refunds"] {
        let json: Vec<Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t) FROM read_model.{table} t ORDER BY id"
        ))
        .fetch_all(pool)
        .await
        .expect("dump table");
        rows.push(json!({ table: json }));
    }
    rows
}

/// The payments tables, whose rows point at the orders': in production
/// orders-tables writes those beside it; in the shared suites, where only
/// the projection under test runs, a reset of the payments tables first
/// rebuilds the orders from the event store (with their own parents, see
/// `WithParents`), so that the payments find them. Everything else is the
/// payments tables' own.
pub struct WithOrders {
    pub payments: Arc<PaymentsTables>,
    orders: Arc<WithParents>,
    store: PgEventStore,
}

impl WithOrders {
    pub fn new(h: &Harness, payments: PaymentsTables) -> Self {
        Self {
            payments: Arc::new(payments),
            orders: Arc::new(WithParents::new(
                h,
                OrdersTables::new(h.db.pool.clone(), Upcasters::default(), h.personal()),
            )),
            store: h.store.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Projection for WithOrders {
    fn name(&self) -> &'static str {
        self.payments.name()
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        self.payments.aggregate_types()
    }
    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        self.payments.apply(events).await
    }
    async fn probe(&self) -> Result<(), ProjectionError> {
        self.payments.probe().await
    }
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        self.payments.is_intact().await
    }
    async fn reset(&self) -> Result<(), ProjectionError> {
        // The orders first: their reset empties these tables too (the
        // seed's ON DELETE CASCADE). A rebuild replays what the log lets it
        // read, which another test's open transaction may hold back: waited
        // for, so that every order recorded so far gets its row.
        whole_log_readable(&self.store).await;
        rebuild(
            self.orders.as_ref(),
            &self.store,
            &DeadLetters::new(self.store.pool().clone()),
            &worker_options(),
            &WorkerStats::new(),
        )
        .await
        .map_err(ProjectionError::Unavailable)?;
        self.payments.reset().await
    }
    async fn mark_rebuilt(&self) -> Result<(), ProjectionError> {
        self.payments.mark_rebuilt().await
    }
    async fn forget_applied(
        &self,
        aggregate_id: &str,
        version: i64,
    ) -> Result<(), ProjectionError> {
        self.payments.forget_applied(aggregate_id, version).await
    }
    async fn next_generation(&self) -> Result<Option<Box<dyn NextGeneration>>, ProjectionError> {
        self.payments.next_generation().await
    }
}

/// Until the tailing read returns every event recorded so far (as
/// `Harness::recorded`).
async fn whole_log_readable(store: &PgEventStore) {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM event_store.events")
        .fetch_one(store.pool())
        .await
        .expect("count events");
    super::eventually("the whole log to be readable", || async {
        let events = store
            .read_after(Default::default(), 100_000, None)
            .await
            .expect("read log");
        (events.len() as i64 == total).then_some(())
    })
    .await;
}

pub struct Payments(pub Arc<WithOrders>, pub sqlx::PgPool);

#[async_trait::async_trait]
impl Adapter for Payments {
    fn projection(&self) -> Arc<dyn Projection> {
        self.0.clone()
    }
    async fn snapshot(&self) -> Value {
        Value::Array(dump_payments(&self.1).await)
    }
}

/// The adapter of the payments tables for the shared suites.
pub fn adapter(h: &Harness) -> Arc<dyn Adapter> {
    Arc::new(Payments(
        Arc::new(WithOrders::new(
            h,
            PaymentsTables::new(h.db.pool.clone(), Upcasters::default()),
        )),
        h.db.pool.clone(),
    ))
}
