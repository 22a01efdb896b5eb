//! The payments tables (the seed's `payments` and `payment_refunds`) against
//! real PostgreSQL, fed directly one batch at a time, and through Kafka by a
//! live worker, from payment events the payment aggregate decided: every
//! seed column, each status, partial and full refunds, redelivery, a payment
//! that arrives before its order's row, a refused event, and rebuilds in
//! place and blue/green.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::payment::{PaymentEvent, PaymentStatus, ProviderOutcome, RefundOutcome};
use infrastructure::consistency::PAYMENTS_TABLES;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use projectors::projections::orders_tables::OrdersTables;
use projectors::projections::payments_tables::{self, PaymentsTables};
use projectors::runtime::rebuild::rebuild_beside_live;
use projectors::runtime::{DeadLetters, Projection, WorkerStats};
use serde_json::{json, Value};
use support::adapters::{adapter_named, rebuilt_from_scratch};
use support::live::Live;
use support::payments::*;
use support::users::at;
use support::*;
use uuid::Uuid;

fn projection(h: &Harness) -> PaymentsTables {
    PaymentsTables::new(h.db.pool.clone(), Upcasters::default())
}

/// The recorded events `projection` consumes, in log order.
async fn events_for(h: &Harness, projection: &dyn Projection) -> Vec<RecordedEvent> {
    let types = projection.aggregate_types();
    h.recorded()
        .await
        .into_iter()
        .filter(|e| types.contains(&e.aggregate_type.as_str()))
        .collect()
}

/// The events of `aggregate` after `version`.
async fn events_of(h: &Harness, aggregate: Uuid, after: i64) -> Vec<RecordedEvent> {
    h.recorded()
        .await
        .into_iter()
        .filter(|e| e.aggregate_id == aggregate.to_string() && e.version > after)
        .collect()
}

/// Applies `events` as one batch, which must dead-letter nothing.
async fn apply(tables: &dyn Projection, events: &[RecordedEvent]) {
    let letters = tables.apply(events).await.unwrap();
    assert!(letters.is_empty(), "dead letters: {letters:?}");
}

/// Orders for the payments here, projected as orders-tables (and its
/// parents) would have projected them: returns (order, its total) for each
/// of `count` customers.
async fn projected_orders(h: &Harness, count: usize) -> Vec<(Uuid, String)> {
    let (_, _, products) = h.seed_catalog(2).await;
    let users = h.seed_users(count).await;
    let orders = h.seed_orders(&users, &products).await;
    // The orders adapter rebuilds the orders' parents with its reset; the
    // rebuild replays what the log lets it read, once it is all readable.
    h.recorded().await;
    let adapter = adapter_named(h, "orders-tables").await;
    rebuilt_from_scratch(h, adapter.as_ref()).await;
    let mut with_totals = Vec::new();
    for order in orders {
        with_totals.push((order, h.order_total(order).await));
    }
    with_totals
}

/// The payment's row, its amount as text (with its scale).
async fn payment_row(h: &Harness, id: Uuid) -> Option<Value> {
    sqlx::query_scalar(
        "SELECT to_jsonb(p) || jsonb_build_object('amount', p.amount::text) \
         FROM read_model.payments p WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&h.db.pool)
    .await
    .unwrap()
}

/// The payment's refunds, by creation, their amounts as text.
async fn refund_rows(h: &Harness, payment: Uuid) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT to_jsonb(r) || jsonb_build_object('amount', r.amount::text) \
         FROM read_model.payment_refunds r WHERE payment_id = $1 ORDER BY created_at, id",
    )
    .bind(payment)
    .fetch_all(&h.db.pool)
    .await
    .unwrap()
}

async fn count(h: &Harness, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&h.db.pool).await.unwrap()
}

/// The parked events: (waiting for, aggregate, version), by version.
async fn parked(h: &Harness) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "SELECT waiting_for, aggregate_id, version FROM read_model.parked_events \
         WHERE projection = 'payments-tables' ORDER BY aggregate_id, version",
    )
    .fetch_all(&h.db.pool)
    .await
    .unwrap()
}

async fn dead_letters(h: &Harness) -> i64 {
    count(
        h,
        "SELECT count(*) FROM read_model.dead_letters WHERE projection = 'payments-tables'",
    )
    .await
}

/// `timestamptz` as `to_jsonb` writes it.
fn ts(minutes: i64) -> Value {
    json!(at(minutes).format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
}

/// A customer's row and an order's row of theirs, written straight into the
/// tables users-tables and orders-tables keep, as those projections would
/// have written them.
async fn insert_order_row(h: &Harness, order: Uuid, total: &str) {
    let customer = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO read_model.users (id, email, password_hash, status) \
         VALUES ($1, $2, 'argon2id-hash', 'active')",
    )
    .bind(customer)
    .bind(format!("{customer}@example.com"))
    .execute(&h.db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO read_model.orders (id, order_number, user_id, status, subtotal, \
         total_amount, currency, billing_address, shipping_address, payment_status) \
         VALUES ($1, $2, $3, 'pending', $4::numeric, $4::numeric, 'THB', '{}', '{}', 'pending')",
    )
    .bind(order)
    .bind(support::orders::number_of(order))
    .bind(customer)
    .bind(total)
    .execute(&h.db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_projection_is_registered_under_its_read_models_name() {
    let h = harness().await;
    assert_eq!(payments_tables::NAME, "payments-tables");
    assert!(projectors::app::PROJECTIONS.contains(&payments_tables::NAME));
    let built = projectors::app::build_projection(payments_tables::NAME, &h.settings, &h.store)
        .await
        .unwrap();
    assert_eq!(built.name(), PAYMENTS_TABLES.projection);
    assert_eq!(built.aggregate_types(), &["payment"]);
    assert_eq!(PAYMENTS_TABLES.aggregate_types, &["payment"]);
    let recorded: Option<bool> = sqlx::query_scalar(
        "SELECT finished_at IS NOT NULL FROM read_model.rebuilds WHERE projection = $1",
    )
    .bind(payments_tables::NAME)
    .fetch_optional(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(
        recorded,
        Some(true),
        "recorded as a read model kept in the schema"
    );
}

#[tokio::test]
async fn an_initiation_writes_every_seed_column() {
    let h = harness().await;
    let tables = projection(&h);
    let (order, total) = projected_orders(&h, 1).await.remove(0);
    let payment = Uuid::now_v7();
    h.append_story(&Story::initiated(payment, order, &total, 20))
        .await;
    apply(&tables, &events_for(&h, &tables).await).await;

    let row = payment_row(&h, payment).await.expect("the payment's row");
    assert_eq!(
        row,
        json!({
            "id": payment,
            "order_id": order,
            "payment_method": "credit_card",
            "payment_provider": "sandbox",
            "amount": total,
            "currency": "THB",
            "status": "pending",
            "transaction_id": payment.to_string(),
            "provider_transaction_id": null,
            "provider_response": null,
            "processed_at": null,
            "created_at": ts(20),
            "updated_at": ts(20),
        })
    );
    assert_eq!(total, "1748.50", "two decimals, exact");
    assert_eq!(refund_rows(&h, payment).await, Vec::<Value>::new());
    assert_eq!(dead_letters(&h).await, 0);
}

#[tokio::test]
async fn each_provider_report_sets_the_status_and_the_providers_columns() {
    let h = harness().await;
    let tables = projection(&h);
    let orders = projected_orders(&h, 3).await;
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    let (pending, processing, completed) = (ids[0], ids[1], ids[2]);
    let cancelled = ids[3];
    h.append_story(&Story::initiated(pending, orders[0].0, &orders[0].1, 20))
        .await;
    // Processing, then completed under the same transaction, one batch each.
    let captured = Story::initiated(completed, orders[1].0, &orders[1].1, 20)
        .report("pi_1", ProviderOutcome::Processing, 21)
        .report("pi_1", ProviderOutcome::Completed, 22);
    h.append_payment(completed, 0, &captured.events[..2]).await;
    h.append_story(
        &Story::initiated(processing, orders[2].0, &orders[2].1, 20).report(
            "pi_2",
            ProviderOutcome::Processing,
            23,
        ),
    )
    .await;
    apply(&tables, &events_for(&h, &tables).await).await;

    let row = payment_row(&h, pending).await.unwrap();
    assert_eq!(row["status"], "pending");
    let row = payment_row(&h, processing).await.unwrap();
    assert_eq!(row["status"], "processing");
    assert_eq!(row["provider_transaction_id"], "pi_2");
    assert_eq!(
        row["provider_response"],
        response("pi_2", ProviderOutcome::Processing)
    );
    assert_eq!(row["processed_at"], ts(23));
    assert_eq!(row["updated_at"], ts(23));
    assert_eq!(
        payment_row(&h, completed).await.unwrap()["status"],
        "processing"
    );

    h.append_payment(completed, 2, &captured.events[2..]).await;
    apply(&tables, &events_of(&h, completed, 2).await).await;
    let row = payment_row(&h, completed).await.unwrap();
    assert_eq!(row["status"], "completed");
    assert_eq!(row["provider_transaction_id"], "pi_1");
    assert_eq!(
        row["provider_response"],
        response("pi_1", ProviderOutcome::Completed),
        "the latest report's response"
    );
    assert_eq!(row["processed_at"], ts(22));
    assert_eq!(row["updated_at"], ts(22));
    assert_eq!(row["created_at"], ts(20));

    // A failed attempt, then a cancelled one, for the same order: each
    // leaves the order payable again.
    let failed = Uuid::now_v7();
    h.append_story(
        &Story::initiated(failed, orders[0].0, &orders[0].1, 30).report(
            "pi_3",
            ProviderOutcome::Failed,
            31,
        ),
    )
    .await;
    h.append_story(
        &Story::initiated(cancelled, orders[0].0, &orders[0].1, 32)
            .report("pi_4", ProviderOutcome::Processing, 33)
            .report("pi_4", ProviderOutcome::Cancelled, 34),
    )
    .await;
    let mut later = events_of(&h, failed, 0).await;
    later.extend(events_of(&h, cancelled, 0).await);
    apply(&tables, &later).await;
    let row = payment_row(&h, failed).await.unwrap();
    assert_eq!(
        (
            &row["status"],
            &row["provider_transaction_id"],
            &row["processed_at"]
        ),
        (&json!("failed"), &json!("pi_3"), &ts(31))
    );
    let row = payment_row(&h, cancelled).await.unwrap();
    assert_eq!(
        (&row["status"], &row["processed_at"], &row["updated_at"]),
        (&json!("cancelled"), &ts(34), &ts(34))
    );
    assert_eq!(
        row["provider_response"],
        response("pi_4", ProviderOutcome::Cancelled)
    );

    // Every status the seed allows is written as the domain names it.
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT status FROM read_model.payments ORDER BY status")
            .fetch_all(&h.db.pool)
            .await
            .unwrap();
    assert_eq!(
        statuses,
        ["cancelled", "completed", "failed", "pending", "processing"]
    );
    assert_eq!(dead_letters(&h).await, 0);
}

#[tokio::test]
async fn a_partial_and_a_full_refund_write_their_rows_and_statuses() {
    let h = harness().await;
    let tables = projection(&h);
    let (order, total) = projected_orders(&h, 1).await.remove(0);
    let payment = Uuid::now_v7();
    let (partial, failed, rest) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let story = Story::initiated(payment, order, &total, 20)
        .report("pi_1", ProviderOutcome::Completed, 21)
        .refund(partial, "100.25", Some("  One item returned  "), 30);
    h.append_story(&story).await;
    apply(&tables, &events_for(&h, &tables).await).await;
    assert_eq!(
        refund_rows(&h, payment).await,
        vec![json!({
            "id": partial,
            "payment_id": payment,
            "amount": "100.25",
            "reason": "One item returned",
            "status": "pending",
            "provider_refund_id": null,
            "processed_at": null,
            "created_at": ts(30),
        })]
    );
    let row = payment_row(&h, payment).await.unwrap();
    assert_eq!(row["status"], "completed");
    assert_eq!(
        row["updated_at"],
        ts(30),
        "a refund request is the payment's latest event"
    );
    assert_eq!(
        row["processed_at"],
        ts(21),
        "the provider's report's time stays"
    );

    // The partial refund completes: the payment is still `completed`.
    let story = story.refund_result(partial, RefundOutcome::Completed, Some("re_1"), 31);
    h.append_payment(payment, 3, &story.events[3..]).await;
    apply(&tables, &events_of(&h, payment, 3).await).await;
    let refunds = refund_rows(&h, payment).await;
    assert_eq!(
        (
            &refunds[0]["status"],
            &refunds[0]["provider_refund_id"],
            &refunds[0]["processed_at"]
        ),
        (&json!("completed"), &json!("re_1"), &ts(31))
    );
    let row = payment_row(&h, payment).await.unwrap();
    assert_eq!(
        row["status"], "completed",
        "partly refunded stays completed"
    );
    assert_eq!(row["updated_at"], ts(31));

    // A refund of the rest fails, then succeeds on a second try: the
    // payment is refunded.
    let remaining = "1648.25";
    let story = story
        .refund(failed, remaining, None, 40)
        .refund_result(failed, RefundOutcome::Failed, Some("re_2"), 41)
        .refund(rest, remaining, Some("Order returned"), 42);
    h.append_payment(payment, 4, &story.events[4..]).await;
    apply(&tables, &events_of(&h, payment, 4).await).await;
    let refunds = refund_rows(&h, payment).await;
    assert_eq!(refunds.len(), 3);
    assert_eq!(
        (
            &refunds[1]["id"],
            &refunds[1]["amount"],
            &refunds[1]["reason"],
            &refunds[1]["status"],
            &refunds[1]["provider_refund_id"],
            &refunds[1]["processed_at"]
        ),
        (
            &json!(failed),
            &json!(remaining),
            &Value::Null,
            &json!("failed"),
            &json!("re_2"),
            &ts(41)
        )
    );
    assert_eq!(refunds[2]["status"], "pending");
    assert_eq!(
        payment_row(&h, payment).await.unwrap()["status"],
        "completed"
    );

    let story = story.refund_result(rest, RefundOutcome::Completed, Some("re_3"), 43);
    let PaymentEvent::RefundCompleted { payment_status, .. } = story.events.last().unwrap() else {
        panic!("a refund's completion");
    };
    assert_eq!(
        *payment_status,
        PaymentStatus::Refunded,
        "the domain says so"
    );
    h.append_payment(payment, 7, &story.events[7..]).await;
    apply(&tables, &events_of(&h, payment, 7).await).await;
    let row = payment_row(&h, payment).await.unwrap();
    assert_eq!(row["status"], "refunded");
    assert_eq!(row["updated_at"], ts(43));
    assert_eq!(
        row["amount"], total,
        "the payment's amount stays what was captured"
    );
    let refunds = refund_rows(&h, payment).await;
    assert_eq!(
        (
            &refunds[2]["status"],
            &refunds[2]["provider_refund_id"],
            &refunds[2]["processed_at"]
        ),
        (&json!("completed"), &json!("re_3"), &ts(43))
    );
    let refunded: String = sqlx::query_scalar(
        "SELECT sum(amount)::text FROM read_model.payment_refunds \
         WHERE payment_id = $1 AND status = 'completed'",
    )
    .bind(payment)
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(refunded, total, "exactly the capture, to the satang");
    assert_eq!(dead_letters(&h).await, 0);
}

#[tokio::test]
async fn the_same_events_delivered_again_are_a_no_op() {
    let h = harness().await;
    let tables = projection(&h);
    let orders: Vec<Uuid> = projected_orders(&h, 3)
        .await
        .into_iter()
        .map(|(order, _)| order)
        .collect();
    h.seed_payments(&orders).await;
    let events = events_for(&h, &tables).await;
    for event in &events {
        apply(&tables, std::slice::from_ref(event)).await;
    }
    let first = dump_payments(&h.db.pool).await;
    apply(&tables, &events).await;
    apply(&tables, &events[..events.len() / 2]).await;
    // A refund request delivered again after its refund completed.
    let request = events
        .iter()
        .find(|e| e.event_type == "RefundRequested")
        .unwrap();
    apply(&tables, std::slice::from_ref(request)).await;
    assert_eq!(dump_payments(&h.db.pool).await, first);
    assert_eq!(
        count(&h, "SELECT count(*) FROM read_model.payments").await,
        4
    );
    assert_eq!(
        count(&h, "SELECT count(*) FROM read_model.payment_refunds").await,
        3
    );
    assert_eq!(dead_letters(&h).await, 0);
}

#[tokio::test]
async fn a_payment_before_its_order_row_waits_and_lands_once_the_order_row_exists() {
    let h = harness().await;
    let tables = projection(&h);
    let (order, payment) = (Uuid::now_v7(), Uuid::now_v7());
    let refund = Uuid::now_v7();
    h.append_story(
        &Story::initiated(payment, order, "1748.50", 20)
            .report("pi_1", ProviderOutcome::Completed, 21)
            .refund(refund, "48.50", None, 30),
    )
    .await;
    let payment_events = events_of(&h, payment, 0).await;

    // The payment's partition runs ahead of the orders', one event per
    // batch.
    for event in &payment_events {
        apply(&tables, std::slice::from_ref(event)).await;
    }
    assert_eq!(payment_row(&h, payment).await, None, "held back");
    assert_eq!(
        parked(&h).await,
        vec![
            (format!("order:{order}"), payment.to_string(), 1),
            (format!("aggregate:{payment}"), payment.to_string(), 2),
            (format!("aggregate:{payment}"), payment.to_string(), 3),
        ]
    );
    // Still missing at the next look: it keeps waiting.
    assert!(tables.retry_parked().await.unwrap().is_empty());
    assert_eq!(parked(&h).await.len(), 3);

    // orders-tables writes the order's row (and users-tables its
    // customer's); the next batch of the payments tables, about anything
    // else, lets the payment in first.
    insert_order_row(&h, order, "1748.50").await;
    let other = Uuid::now_v7();
    insert_order_row(&h, other, "10.00").await;
    let second = Uuid::now_v7();
    h.append_story(&Story::initiated(second, other, "10.00", 40))
        .await;
    apply(&tables, &events_of(&h, second, 0).await).await;

    let row = payment_row(&h, payment)
        .await
        .expect("released once its order exists");
    assert_eq!(row["status"], "completed", "its queued events followed");
    assert_eq!(row["order_id"], json!(order));
    assert_eq!(row["updated_at"], ts(30));
    assert_eq!(refund_rows(&h, payment).await.len(), 1);
    assert!(payment_row(&h, second).await.is_some());
    assert_eq!(parked(&h).await, vec![]);
    assert_eq!(dead_letters(&h).await, 0);

    // A redelivery changes nothing.
    let live = dump_payments(&h.db.pool).await;
    apply(&tables, &payment_events).await;
    assert_eq!(dump_payments(&h.db.pool).await, live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_retry_lets_a_parked_payment_in_without_any_other_event() {
    let h = harness().await;
    let tables = Arc::new(projection(&h));
    let (order, payment) = (Uuid::now_v7(), Uuid::now_v7());
    h.append_story(&Story::initiated(payment, order, "99.00", 20))
        .await;
    apply(tables.as_ref(), &events_of(&h, payment, 0).await).await;
    assert_eq!(parked(&h).await.len(), 1);

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let retrying = tokio::spawn(tables.clone().retry_parked_every(
        h.db.pool.clone(),
        Duration::from_millis(20),
        async move {
            let _ = stopped.await;
        },
    ));
    insert_order_row(&h, order, "99.00").await;
    eventually("the parked payment to land", || async {
        payment_row(&h, payment).await
    })
    .await;
    assert_eq!(parked(&h).await, vec![]);
    stop.send(()).unwrap();
    retrying.await.unwrap();
}

#[tokio::test]
async fn a_payment_whose_order_never_comes_is_dead_lettered_with_its_queue() {
    let h = harness().await;
    let tables = projection(&h).with_parked_max_age(Duration::ZERO);
    let (ghost, payment) = (Uuid::now_v7(), Uuid::now_v7());
    h.append_story(&Story::initiated(payment, ghost, "99.00", 20).report(
        "pi_1",
        ProviderOutcome::Failed,
        21,
    ))
    .await;
    apply(&tables, &events_of(&h, payment, 0).await).await;
    assert_eq!(
        parked(&h).await.len(),
        2,
        "waiting for an order nobody projects"
    );

    let letters = tables.retry_parked().await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters[0]
        .reason
        .contains(&format!("waiting for order:{ghost}")));
    assert!(letters[1]
        .reason
        .contains("waits on an event dead-lettered"));
    assert_eq!(parked(&h).await, vec![]);
    assert_eq!(dead_letters(&h).await, 2);
    assert_eq!(payment_row(&h, payment).await, None);
}

#[tokio::test]
async fn a_payment_the_tables_refuse_is_dead_lettered_with_its_later_events_and_the_rest_applies() {
    let h = harness().await;
    let tables = projection(&h);
    let orders = projected_orders(&h, 2).await;
    let (refused, fine) = (Uuid::now_v7(), Uuid::now_v7());
    // An initiation as an older command side might have written it, with a
    // method longer than the seed's VARCHAR(50).
    h.append_payment(
        refused,
        0,
        &[PaymentEvent::PaymentInitiated {
            payment_id: refused,
            order_id: orders[0].0,
            amount: money(&orders[0].1),
            currency: domain::values::Currency::thb(),
            payment_method: "m".repeat(60),
            payment_provider: "sandbox".into(),
            transaction_id: None,
            status: PaymentStatus::Pending,
            created_at: Utc::now(),
        }],
    )
    .await;
    h.append_payment(
        refused,
        1,
        &Story::initiated(refused, orders[0].0, &orders[0].1, 20)
            .report("pi_1", ProviderOutcome::Completed, 21)
            .events[1..],
    )
    .await;
    h.append_story(
        &Story::initiated(fine, orders[1].0, &orders[1].1, 20).report(
            "pi_2",
            ProviderOutcome::Completed,
            21,
        ),
    )
    .await;
    let letters = tables.apply(&events_for(&h, &tables).await).await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters
        .iter()
        .all(|l| l.aggregate_id.as_deref() == Some(refused.to_string().as_str())));
    assert!(
        letters[0].reason.contains("too long"),
        "{}",
        letters[0].reason
    );
    assert!(
        letters[1].reason.contains("follows event"),
        "{}",
        letters[1].reason
    );
    assert_eq!(dead_letters(&h).await, 2);
    assert_eq!(payment_row(&h, refused).await, None);
    assert_eq!(payment_row(&h, fine).await.unwrap()["status"], "completed");
}

#[tokio::test]
async fn a_blue_green_rebuild_ends_in_the_same_rows() {
    let h = harness().await;
    let tables = projection(&h);
    let (_, _, products) = h.seed_catalog(2).await;
    let users = h.seed_users(3).await;
    let orders = h.seed_orders(&users, &products).await;
    h.seed_payments(&orders).await;
    // The live tables were built before the orders' rows existed: every
    // payment parked and was let in later.
    let events = events_for(&h, &tables).await;
    apply(&tables, &events).await;
    assert_eq!(
        parked(&h).await.iter().filter(|p| p.2 == 1).count(),
        4,
        "every initiation waits"
    );
    let adapter = adapter_named(&h, "orders-tables").await;
    rebuilt_from_scratch(&h, adapter.as_ref()).await;
    assert!(tables.retry_parked().await.unwrap().is_empty());
    assert_eq!(parked(&h).await, vec![]);
    let live = dump_payments(&h.db.pool).await;
    assert_eq!(
        count(&h, "SELECT count(*) FROM read_model.payments").await,
        4
    );
    assert_eq!(
        count(&h, "SELECT count(*) FROM read_model.payment_refunds").await,
        3
    );
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM read_model.payments ORDER BY status")
            .fetch_all(&h.db.pool)
            .await
            .unwrap();
    assert_eq!(statuses, ["completed", "completed", "failed", "refunded"]);

    let replayed = rebuild_beside_live(
        &tables,
        &h.store,
        &DeadLetters::new(h.db.pool.clone()),
        &worker_options(),
        &WorkerStats::new(),
    )
    .await
    .unwrap();
    assert_eq!(replayed, events.len() as u64);

    assert_eq!(dump_payments(&h.db.pool).await, live);
    let generation: (i64, Option<i64>) =
        sqlx::query_as("SELECT live, building FROM read_model.generations WHERE projection = $1")
            .bind(payments_tables::NAME)
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
    assert_eq!(generation, (1, None));
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'read_model_%'",
    )
    .fetch_all(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(left, Vec::<String>::new(), "no generation left behind");
    // The swapped-in tables kept the seed's foreign keys, on the live
    // orders, and the seed's indexes.
    let foreign_keys: Vec<String> = sqlx::query_scalar(
        "SELECT format('%s -> %s', conrelid::regclass, confrelid::regclass) FROM pg_constraint \
         WHERE contype = 'f' AND conrelid IN ('read_model.payments'::regclass, \
         'read_model.payment_refunds'::regclass) ORDER BY 1",
    )
    .fetch_all(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(
        foreign_keys,
        vec![
            "read_model.payment_refunds -> read_model.payments",
            "read_model.payments -> read_model.orders",
        ]
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'read_model' \
         AND tablename IN ('payments', 'payment_refunds') ORDER BY 1",
    )
    .fetch_all(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            "idx_payment_refunds_payment_id",
            "idx_payment_refunds_status",
            "idx_payments_created_at",
            "idx_payments_order_id",
            "idx_payments_status",
            "idx_payments_transaction_id",
            "payment_refunds_pkey",
            "payments_pkey",
        ]
    );
    // The swapped-in generation's bookkeeping came along: a redelivery is
    // still a no-op.
    apply(&tables, &events_for(&h, &tables).await).await;
    assert_eq!(dump_payments(&h.db.pool).await, live);
    assert_eq!(dead_letters(&h).await, 0);

    // A blue/green rebuild of the orders keeps the payments and points their
    // foreign key at the new orders.
    let orders_tables = OrdersTables::new(h.db.pool.clone(), Upcasters::default(), h.personal());
    rebuild_beside_live(
        &orders_tables,
        &h.store,
        &DeadLetters::new(h.db.pool.clone()),
        &worker_options(),
        &WorkerStats::new(),
    )
    .await
    .unwrap();
    assert_eq!(dump_payments(&h.db.pool).await, live);
    let points_at: String = sqlx::query_scalar(
        "SELECT confrelid::regclass::text FROM pg_constraint \
         WHERE contype = 'f' AND conrelid = 'read_model.payments'::regclass",
    )
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(points_at, "read_model.orders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_fed_through_kafka_keeps_the_tables_a_rebuild_would_build() {
    let h = Arc::new(harness().await);
    let (_, _, products) = h.seed_catalog(3).await;
    let users = h.seed_users(3).await;
    let orders = h.seed_orders(&users, &products).await;
    let payments = h.seed_payments(&orders).await;
    // The orders are rebuilt with the payments' reset (see
    // `support::payments::WithOrders`).
    let adapter = adapter_named(&h, payments_tables::NAME).await;
    adapter.projection().reset().await.unwrap();
    adapter.projection().mark_rebuilt().await.unwrap();

    // Relays everything and lets the worker apply it all.
    let live = Live::start(h.clone(), adapter.projection(), products[0]).await;
    let statuses: Vec<Value> = {
        let mut statuses = Vec::new();
        for payment in &payments {
            statuses.push(payment_row(&h, *payment).await.unwrap()["status"].clone());
        }
        statuses
    };
    assert_eq!(
        statuses,
        [
            json!("completed"),
            json!("refunded"),
            json!("failed"),
            json!("completed")
        ]
    );
    assert_eq!(refund_rows(&h, payments[0]).await.len(), 1);
    assert_eq!(refund_rows(&h, payments[1]).await.len(), 2);

    // Meanwhile: another attempt at the first order, through Kafka too.
    live.write().await;
    assert_eq!(
        count(&h, "SELECT count(*) FROM read_model.payments").await,
        5
    );
    assert_eq!(parked(&h).await, vec![]);
    assert_eq!(dead_letters(&h).await, 0);
    drop(live);

    let through_kafka = adapter.snapshot().await;
    assert_eq!(
        rebuilt_from_scratch(&h, adapter.as_ref()).await,
        through_kafka
    );
}
