//! The orders tables (the seed's `orders` and `order_items`) against real
//! PostgreSQL, fed directly one batch at a time, and through Kafka by a live
//! worker, from order events appended as the command API appends them (the
//! placement's addresses sealed under the customer's key): every seed
//! column, the lifecycle, payment and note events, redelivery, an order that
//! arrives before its customer's or products' rows, an erased customer, and
//! rebuilds in place and blue/green.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::catalog::ProductEvent;
use domain::order::{OrderStatus, PaymentChange, PaymentStatus};
use domain::user::{UserEvent, UserStatus};
use domain::values::{Price, Sku};
use infrastructure::consistency::ORDERS_TABLES;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use projectors::projections::catalog_tables::CatalogTables;
use projectors::projections::orders_tables::{self, OrdersTables};
use projectors::projections::users_tables::UsersTables;
use projectors::runtime::rebuild::rebuild_beside_live;
use projectors::runtime::{DeadLetters, Projection, WorkerStats};
use serde_json::{json, Value};
use support::adapters::{adapter_named, rebuilt_from_scratch};
use support::live::Live;
use support::orders::*;
use support::users::at;
use support::*;
use uuid::Uuid;

fn projection(h: &Harness) -> OrdersTables {
    OrdersTables::new(h.db.pool.clone(), Upcasters::default(), h.personal())
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

/// Brings the parents' read models (the users and catalog tables, which
/// other projections keep) up to the event store, as their workers would.
async fn project_parents(h: &Harness) {
    let catalog = CatalogTables::new(h.db.pool.clone(), Upcasters::default());
    let users = UsersTables::new(h.db.pool.clone(), Upcasters::default(), h.personal());
    for parent in [&catalog as &dyn Projection, &users] {
        apply(parent, &events_for(h, parent).await).await;
    }
}

/// A customer, two products and a variant of the first, recorded (not
/// projected): (customer, products, variant).
async fn record_parents(h: &Harness) -> (Uuid, Vec<Uuid>, Uuid) {
    let (_, _, products) = h.seed_catalog(2).await;
    let customer = h.seed_users(1).await[0];
    let variant = Uuid::now_v7();
    h.append(
        "product",
        &products[0].to_string(),
        1,
        &[ProductEvent::ProductVariantAdded {
            product_id: products[0],
            variant_id: variant,
            sku: Sku::parse("SKU-0-BLK").unwrap(),
            name: Some("Black".into()),
            price: Price::new("1000".parse().unwrap()).unwrap(),
            stock_quantity: 3,
            attributes: [("colour".to_owned(), "black".to_owned())].into(),
            is_active: true,
            at: Utc::now(),
        }],
    )
    .await;
    (customer, products, variant)
}

/// The two lines of the orders here: the first product's black variant at
/// 1,000.00, and three of the second at 250.50.
fn two_lines(products: &[Uuid], variant: Uuid) -> Vec<domain::order::OrderLine> {
    vec![
        line(products[0], Some(variant), "SKU-0-BLK", "1000", 1),
        line(products[1], None, "SKU-1", "250.50", 3),
    ]
}

/// The order's row, its decimals as text (with their scale).
async fn order_row(h: &Harness, id: Uuid) -> Option<Value> {
    sqlx::query_scalar(
        "SELECT to_jsonb(o) || jsonb_build_object('subtotal', o.subtotal::text, \
         'tax_amount', o.tax_amount::text, 'shipping_amount', o.shipping_amount::text, \
         'discount_amount', o.discount_amount::text, 'total_amount', o.total_amount::text) \
         FROM read_model.orders o WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&h.db.pool)
    .await
    .unwrap()
}

/// The order's items, by id, their decimals as text.
async fn item_rows(h: &Harness, order: Uuid) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT to_jsonb(i) || jsonb_build_object('unit_price', i.unit_price::text, \
         'total_price', i.total_price::text) \
         FROM read_model.order_items i WHERE order_id = $1 ORDER BY id",
    )
    .bind(order)
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
         WHERE projection = 'orders-tables' ORDER BY aggregate_id, version",
    )
    .fetch_all(&h.db.pool)
    .await
    .unwrap()
}

async fn dead_letters(h: &Harness) -> i64 {
    count(
        h,
        "SELECT count(*) FROM read_model.dead_letters WHERE projection = 'orders-tables'",
    )
    .await
}

/// `timestamptz` as `to_jsonb` writes it.
fn ts(minutes: i64) -> Value {
    json!(at(minutes).format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
}

fn address_json(first_name: &str, street: &str) -> Value {
    json!({
        "first_name": first_name,
        "last_name": "Jaidee",
        "company": "Jaidee Co.",
        "street_address_1": street,
        "street_address_2": null,
        "city": "Bangkok",
        "state_province": "Bangkok",
        "postal_code": "10110",
        "country": "TH",
        "phone": "+66812223333",
    })
}

fn placeholder_address() -> Value {
    json!({
        "first_name": "Erased",
        "last_name": "Erased",
        "company": null,
        "street_address_1": "Erased",
        "street_address_2": null,
        "city": "Erased",
        "state_province": "Erased",
        "postal_code": "00000",
        "country": "TH",
        "phone": null,
    })
}

fn erased(user: Uuid) -> UserEvent {
    UserEvent::UserErased {
        user_id: user,
        previous_status: UserStatus::Active,
        status: UserStatus::Inactive,
        at: at(500),
    }
}

#[tokio::test]
async fn the_projection_is_registered_under_its_read_models_name() {
    let h = harness().await;
    assert_eq!(orders_tables::NAME, "orders-tables");
    assert!(projectors::app::PROJECTIONS.contains(&orders_tables::NAME));
    let built = projectors::app::build_projection(orders_tables::NAME, &h.settings, &h.store)
        .await
        .unwrap();
    assert_eq!(built.name(), ORDERS_TABLES.projection);
    for kind in ORDERS_TABLES.aggregate_types {
        assert!(built.aggregate_types().contains(kind), "consumes {kind}");
    }
    assert!(
        built.aggregate_types().contains(&"user"),
        "consumes the user topic, for the erasures"
    );
    let recorded: Option<bool> = sqlx::query_scalar(
        "SELECT finished_at IS NOT NULL FROM read_model.rebuilds WHERE projection = $1",
    )
    .bind(orders_tables::NAME)
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
async fn a_placement_writes_every_seed_column_with_the_addresses_opened() {
    let h = harness().await;
    let tables = projection(&h);
    let (customer, products, variant) = record_parents(&h).await;
    project_parents(&h).await;
    let order = Uuid::now_v7();
    let lines = two_lines(&products, variant);
    h.append_order(
        order,
        0,
        &[placed(order, Some(customer), lines.clone(), 10)],
    )
    .await;
    // A placement written before `payment_method` existed: the key is absent.
    let older = Uuid::now_v7();
    h.append_order_edited(
        older,
        0,
        &[placed(
            older,
            Some(customer),
            vec![line(products[1], None, "SKU-1", "99.99", 1)],
            11,
        )],
        |payload| {
            payload["OrderPlaced"]
                .as_object_mut()
                .unwrap()
                .remove("payment_method");
        },
    )
    .await;
    let events = events_for(&h, &tables).await;
    let body = &events_of(&h, order, 0).await[0].payload["OrderPlaced"];
    for field in ["billing_address", "shipping_address"] {
        assert!(
            body[field].as_str().is_some_and(|v| v.starts_with("pd1.")),
            "{field} is sealed in the log: {}",
            body[field]
        );
    }
    assert!(!body.to_string().contains("Sukhumvit"));

    apply(&tables, &events).await;

    assert_eq!(
        order_row(&h, order).await,
        Some(json!({
            "id": order,
            "order_number": number_of(order),
            "user_id": customer,
            "status": "pending",
            "subtotal": "1751.50",
            "tax_amount": "7.00",
            "shipping_amount": "40.00",
            "discount_amount": "50.00",
            "total_amount": "1748.50",
            "currency": "THB",
            "billing_address": address_json("Somchai", "1 Sukhumvit Rd"),
            "shipping_address": address_json("Somying", "9 Silom Rd"),
            "shipping_method": "standard",
            "tracking_number": null,
            "shipped_at": null,
            "delivered_at": null,
            "payment_status": "pending",
            "payment_method": "credit_card",
            "notes": "Leave it at the door",
            "admin_notes": null,
            "created_at": ts(10),
            "updated_at": ts(10),
        }))
    );
    let mut expected_items: Vec<Value> = lines
        .iter()
        .map(|l| {
            json!({
                "id": l.order_item_id,
                "order_id": order,
                "product_id": l.product_id,
                "product_variant_id": l.product_variant_id,
                "product_name": l.product_name,
                "product_sku": l.product_sku.as_str(),
                "product_image_url": l.product_image_url.as_ref().map(|u| u.as_str()),
                "unit_price": l.unit_price.amount().to_string(),
                "quantity": l.quantity.get(),
                "total_price": l.total_price.amount().to_string(),
                "product_options": l.product_options,
                "created_at": ts(10),
            })
        })
        .collect();
    expected_items.sort_by_key(|i| i["id"].as_str().unwrap().to_owned());
    assert_eq!(item_rows(&h, order).await, expected_items);
    assert_eq!(expected_items[0]["unit_price"], "1000.00");
    assert_eq!(
        item_rows(&h, order)
            .await
            .iter()
            .map(|i| (i["quantity"].clone(), i["total_price"].clone()))
            .collect::<Vec<_>>(),
        vec![(json!(1), json!("1000.00")), (json!(3), json!("751.50"))]
    );
    assert_eq!(
        item_rows(&h, order).await[0]["product_options"],
        json!({"colour": "black"})
    );

    let older_row = order_row(&h, older).await.unwrap();
    assert_eq!(
        older_row["payment_method"],
        Value::Null,
        "absent reads as none"
    );
    assert_eq!(older_row["total_amount"], "96.99");
    let version: i64 = sqlx::query_scalar(
        "SELECT version FROM read_model.projected_versions WHERE projection = $1 AND aggregate_id = $2",
    )
    .bind(orders_tables::NAME)
    .bind(order.to_string())
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(version, 1);
    assert_eq!(dead_letters(&h).await, 0);
}

#[tokio::test]
async fn each_lifecycle_event_sets_its_columns_and_updated_at_never_moves_back() {
    let h = harness().await;
    let tables = projection(&h);
    let (customer, products, variant) = record_parents(&h).await;
    project_parents(&h).await;
    let (fulfilled, cancelled_order) = (Uuid::now_v7(), Uuid::now_v7());
    h.append_order(
        fulfilled,
        0,
        &[placed(
            fulfilled,
            Some(customer),
            two_lines(&products, variant),
            10,
        )],
    )
    .await;
    let state = |row: Value| {
        json!([
            row["status"],
            row["tracking_number"],
            row["shipped_at"],
            row["delivered_at"],
            row["updated_at"]
        ])
    };
    apply(&tables, &events_of(&h, fulfilled, 0).await).await;
    let steps = [
        (
            confirmed(fulfilled, 20),
            json!(["confirmed", null, null, null, ts(20)]),
        ),
        (
            processing(fulfilled, 30),
            json!(["processing", null, null, null, ts(30)]),
        ),
        (
            shipped(fulfilled, "TH123456789", 40),
            json!(["shipped", "TH123456789", ts(40), null, ts(40)]),
        ),
        (
            delivered(fulfilled, 50),
            json!(["delivered", "TH123456789", ts(40), ts(50), ts(50)]),
        ),
        (
            refunded(fulfilled, OrderStatus::Delivered, "1748.50", 60),
            json!(["refunded", "TH123456789", ts(40), ts(50), ts(60)]),
        ),
    ];
    for (version, (event, expected)) in steps.into_iter().enumerate() {
        h.append_order(fulfilled, version as i64 + 1, &[event])
            .await;
        apply(&tables, &events_of(&h, fulfilled, version as i64 + 1).await).await;
        assert_eq!(state(order_row(&h, fulfilled).await.unwrap()), expected);
    }
    // An event stamped earlier than the row's last change (a clock behind)
    // changes its column, never `updated_at` back.
    h.append_order(fulfilled, 6, &[admin_note(fulfilled, "Late", "Late", 55)])
        .await;
    apply(&tables, &events_of(&h, fulfilled, 6).await).await;
    let row = order_row(&h, fulfilled).await.unwrap();
    assert_eq!(row["admin_notes"], "Late");
    assert_eq!(row["updated_at"], ts(60));
    assert_eq!(row["created_at"], ts(10));

    h.append_order(
        cancelled_order,
        0,
        &[
            placed(
                cancelled_order,
                Some(customer),
                two_lines(&products, variant),
                10,
            ),
            confirmed(cancelled_order, 11),
            cancelled(cancelled_order, OrderStatus::Confirmed, 12),
        ],
    )
    .await;
    apply(&tables, &events_of(&h, cancelled_order, 0).await).await;
    assert_eq!(
        state(order_row(&h, cancelled_order).await.unwrap()),
        json!(["cancelled", null, null, null, ts(12)])
    );
    assert_eq!(dead_letters(&h).await, 0);
}

#[tokio::test]
async fn payment_changes_set_the_payment_status_and_notes_keep_the_whole_text() {
    let h = harness().await;
    let tables = projection(&h);
    let (customer, products, variant) = record_parents(&h).await;
    project_parents(&h).await;
    let order = Uuid::now_v7();
    h.append_order(
        order,
        0,
        &[placed(
            order,
            Some(customer),
            two_lines(&products, variant),
            10,
        )],
    )
    .await;
    apply(&tables, &events_of(&h, order, 0).await).await;
    use PaymentStatus::*;
    let changes = [
        (
            payment(
                order,
                PaymentChange::Failed,
                (Pending, Failed),
                ("0", "0", "0"),
                20,
            ),
            "failed",
        ),
        (
            payment(
                order,
                PaymentChange::Captured,
                (Failed, Paid),
                ("1748.50", "1748.50", "0"),
                21,
            ),
            "paid",
        ),
        (
            payment(
                order,
                PaymentChange::RefundCompleted,
                (Paid, PartiallyRefunded),
                ("100", "1748.50", "100"),
                22,
            ),
            "partially_refunded",
        ),
        (
            payment(
                order,
                PaymentChange::RefundCompleted,
                (PartiallyRefunded, Refunded),
                ("1648.50", "1748.50", "1748.50"),
                23,
            ),
            "refunded",
        ),
    ];
    for (n, (event, expected)) in changes.into_iter().enumerate() {
        h.append_order(order, n as i64 + 1, &[event]).await;
        apply(&tables, &events_of(&h, order, n as i64 + 1).await).await;
        let row = order_row(&h, order).await.unwrap();
        assert_eq!(row["payment_status"], expected);
        assert_eq!(row["updated_at"], ts(20 + n as i64));
        assert_eq!(row["status"], "pending", "the order's status is its own");
    }
    h.append_order(
        order,
        5,
        &[
            admin_note(order, "Called the customer", "Called the customer", 30),
            admin_note(order, "Refund sent", "Called the customer\nRefund sent", 31),
        ],
    )
    .await;
    apply(&tables, &events_of(&h, order, 5).await).await;
    let row = order_row(&h, order).await.unwrap();
    assert_eq!(row["admin_notes"], "Called the customer\nRefund sent");
    assert_eq!(
        row["notes"], "Leave it at the door",
        "the customer's note stays"
    );
    assert_eq!(row["updated_at"], ts(31));
}

#[tokio::test]
async fn the_same_events_delivered_again_are_a_no_op() {
    let h = harness().await;
    let tables = projection(&h);
    let (customer, products, variant) = record_parents(&h).await;
    project_parents(&h).await;
    let users = vec![customer];
    h.seed_orders(&users, &products).await;
    let order = Uuid::now_v7();
    h.append_order(
        order,
        0,
        &[
            placed(order, Some(customer), two_lines(&products, variant), 10),
            confirmed(order, 20),
            shipped(order, "TH1", 30),
        ],
    )
    .await;
    let events = events_for(&h, &tables).await;
    for event in &events {
        apply(&tables, std::slice::from_ref(event)).await;
    }
    let first = dump_orders(&h.db.pool).await;
    apply(&tables, &events).await;
    apply(&tables, &events[..events.len() / 2]).await;
    // A placement delivered again after its order moved on.
    apply(&tables, &events_of(&h, order, 0).await[..1]).await;
    assert_eq!(dump_orders(&h.db.pool).await, first);
    assert_eq!(
        count(&h, "SELECT count(*) FROM read_model.order_items").await,
        4
    );
    assert_eq!(dead_letters(&h).await, 0);
}

#[tokio::test]
async fn an_order_before_its_customer_and_products_waits_and_lands_once_they_exist() {
    let h = harness().await;
    let tables = projection(&h);
    let (customer, products, variant) = record_parents(&h).await;
    let order = Uuid::now_v7();
    h.append_order(
        order,
        0,
        &[
            placed(order, Some(customer), two_lines(&products, variant), 10),
            confirmed(order, 20),
        ],
    )
    .await;
    let order_events = events_of(&h, order, 0).await;

    // The order's partition runs ahead of the users' and the catalog's
    // projections, one event per batch.
    for event in &order_events {
        apply(&tables, std::slice::from_ref(event)).await;
    }
    assert_eq!(order_row(&h, order).await, None, "held back");
    assert_eq!(
        parked(&h).await,
        vec![
            (format!("user:{customer}"), order.to_string(), 1),
            (format!("aggregate:{order}"), order.to_string(), 2),
        ]
    );

    // The customer's row is written by users-tables; the next look at the
    // parked orders finds the products missing still: it waits for those.
    let users = UsersTables::new(h.db.pool.clone(), Upcasters::default(), h.personal());
    apply(&users, &events_for(&h, &users).await).await;
    assert!(tables.retry_parked().await.unwrap().is_empty());
    assert_eq!(order_row(&h, order).await, None);
    let waiting: Vec<String> = parked(&h).await.into_iter().map(|p| p.0).collect();
    assert_eq!(
        waiting,
        vec![
            format!("product:{}", products.iter().min().unwrap()),
            format!("aggregate:{order}")
        ]
    );

    // The catalog arrives, variant included; the next batch of the orders
    // tables, about anything else, lets the order in first.
    let catalog = CatalogTables::new(h.db.pool.clone(), Upcasters::default());
    apply(&catalog, &events_for(&h, &catalog).await).await;
    let other = Uuid::now_v7();
    h.append_order(
        other,
        0,
        &[placed(
            other,
            Some(customer),
            vec![line(products[1], None, "SKU-1", "10", 1)],
            30,
        )],
    )
    .await;
    apply(&tables, &events_of(&h, other, 0).await).await;

    let row = order_row(&h, order)
        .await
        .expect("released once its parents exist");
    assert_eq!(row["status"], "confirmed", "its queued event followed");
    assert_eq!(row["updated_at"], ts(20));
    assert_eq!(item_rows(&h, order).await.len(), 2);
    assert!(order_row(&h, other).await.is_some());
    assert_eq!(parked(&h).await, vec![]);
    assert_eq!(dead_letters(&h).await, 0);

    // A redelivery changes nothing; a rebuild, in log order with every
    // parent there, needs no parking and ends the same.
    let live = dump_orders(&h.db.pool).await;
    apply(&tables, &order_events).await;
    assert_eq!(dump_orders(&h.db.pool).await, live);
    let adapter = adapter_named(&h, orders_tables::NAME).await;
    assert_eq!(
        rebuilt_from_scratch(&h, adapter.as_ref()).await,
        Value::Array(live)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_retry_lets_a_parked_order_in_without_any_other_event() {
    let h = harness().await;
    let tables = Arc::new(projection(&h));
    let (customer, products, variant) = record_parents(&h).await;
    let order = Uuid::now_v7();
    h.append_order(
        order,
        0,
        &[placed(
            order,
            Some(customer),
            two_lines(&products, variant),
            10,
        )],
    )
    .await;
    apply(tables.as_ref(), &events_of(&h, order, 0).await).await;
    assert_eq!(parked(&h).await.len(), 1);

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let retrying = tokio::spawn(tables.clone().retry_parked_every(
        h.db.pool.clone(),
        Duration::from_millis(20),
        async move {
            let _ = stopped.await;
        },
    ));
    project_parents(&h).await;
    eventually("the parked order to land", || async {
        order_row(&h, order).await
    })
    .await;
    assert_eq!(parked(&h).await, vec![]);
    stop.send(()).unwrap();
    retrying.await.unwrap();
}

#[tokio::test]
async fn an_order_whose_parents_never_come_is_dead_lettered_with_its_queue() {
    let h = harness().await;
    let tables = projection(&h).with_parked_max_age(Duration::ZERO);
    let (_, products, variant) = record_parents(&h).await;
    project_parents(&h).await;
    let (order, ghost) = (Uuid::now_v7(), Uuid::now_v7());
    h.append_order(
        order,
        0,
        &[
            placed(order, Some(ghost), two_lines(&products, variant), 10),
            confirmed(order, 20),
        ],
    )
    .await;
    apply(&tables, &events_of(&h, order, 0).await).await;
    assert_eq!(
        parked(&h).await.len(),
        2,
        "waiting for a user nobody projects"
    );

    let letters = tables.retry_parked().await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters[0]
        .reason
        .contains(&format!("waiting for user:{ghost}")));
    assert!(letters[1]
        .reason
        .contains("waits on an event dead-lettered"));
    assert_eq!(parked(&h).await, vec![]);
    assert_eq!(dead_letters(&h).await, 2);
    assert_eq!(order_row(&h, order).await, None);
}

#[tokio::test]
async fn an_erased_customers_orders_hold_the_placeholders_live_and_rebuilt() {
    let h = harness().await;
    let tables = projection(&h);
    let (customer, products, variant) = record_parents(&h).await;
    project_parents(&h).await;
    let (before, late) = (Uuid::now_v7(), Uuid::now_v7());
    let mut history = vec![placed(
        before,
        Some(customer),
        two_lines(&products, variant),
        10,
    )];
    history.extend(shipped_after_confirmation(before));
    h.append_order(before, 0, &history).await;
    apply(&tables, &events_for(&h, &tables).await).await;
    let row = order_row(&h, before).await.unwrap();
    assert_eq!(
        row["billing_address"],
        address_json("Somchai", "1 Sukhumvit Rd")
    );

    // A second order, placed before the erasure, whose partition runs behind
    // the user topic: it is opened while the key still exists (the command
    // side destroys it just after appending the erasure).
    h.append_order(
        late,
        0,
        &[placed(
            late,
            Some(customer),
            two_lines(&products, variant),
            40,
        )],
    )
    .await;
    h.append_user(customer, 3, &[erased(customer)]).await;
    let erasure = events_of(&h, customer, 3).await;
    apply(&tables, &erasure).await;
    let row = order_row(&h, before).await.unwrap();
    assert_eq!(row["billing_address"], placeholder_address());
    assert_eq!(row["shipping_address"], placeholder_address());
    assert_eq!(row["updated_at"], ts(30), "the order's own last event");
    assert_eq!(row["status"], "shipped", "the order stays, for the books");
    assert_eq!(row["user_id"], json!(customer));

    apply(&tables, &events_of(&h, late, 0).await).await;
    let row = order_row(&h, late).await.unwrap();
    assert_eq!(
        (
            row["billing_address"].clone(),
            row["shipping_address"].clone()
        ),
        (placeholder_address(), placeholder_address()),
        "a placement applied after the erasure never writes the person"
    );

    assert!(h.personal().erase(customer).await.unwrap());
    // Redelivered, the erasure changes nothing more.
    apply(&tables, &erasure).await;
    let live = dump_orders(&h.db.pool).await;
    let text = serde_json::to_string(&live).unwrap();
    for clear in [
        "Somchai",
        "Somying",
        "Sukhumvit",
        "Silom",
        "+66812223333",
        "Jaidee",
    ] {
        assert!(!text.contains(clear), "the orders still hold {clear}");
    }
    assert_eq!(count(&h, "SELECT count(*) FROM read_model.orders").await, 2);
    let adapter = adapter_named(&h, orders_tables::NAME).await;
    assert_eq!(
        rebuilt_from_scratch(&h, adapter.as_ref()).await,
        Value::Array(live),
        "a rebuild, whose addresses open to the placeholders, ends the same"
    );
    assert_eq!(dead_letters(&h).await, 0);
}

fn shipped_after_confirmation(order: Uuid) -> Vec<domain::order::OrderEvent> {
    vec![
        confirmed(order, 20),
        processing(order, 25),
        shipped(order, "TH9", 30),
    ]
}

#[tokio::test]
async fn a_blue_green_rebuild_ends_in_the_same_rows() {
    let h = harness().await;
    let tables = projection(&h);
    let (_, products, _) = record_parents(&h).await;
    let users = h.seed_users(3).await;
    h.seed_orders(&users, &products).await;
    // The live tables were built out of order: every order before its
    // customer and products, so each parked and was let in later.
    let events = events_for(&h, &tables).await;
    apply(&tables, &events).await;
    assert_eq!(
        parked(&h).await.iter().filter(|p| p.2 == 1).count(),
        3,
        "every placement waits"
    );
    project_parents(&h).await;
    assert!(tables.retry_parked().await.unwrap().is_empty());
    assert_eq!(parked(&h).await, vec![]);
    let live = dump_orders(&h.db.pool).await;
    assert_eq!(count(&h, "SELECT count(*) FROM read_model.orders").await, 3);
    assert_eq!(
        count(&h, "SELECT count(*) FROM read_model.order_items").await,
        6
    );

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

    assert_eq!(dump_orders(&h.db.pool).await, live);
    let generation: (i64, Option<i64>) =
        sqlx::query_as("SELECT live, building FROM read_model.generations WHERE projection = $1")
            .bind(orders_tables::NAME)
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
    // The swapped-in tables kept the seed's foreign keys on the live
    // parents.
    let foreign_keys: Vec<String> = sqlx::query_scalar(
        "SELECT format('%s -> %s', conrelid::regclass, confrelid::regclass) FROM pg_constraint \
         WHERE contype = 'f' AND conrelid IN ('read_model.orders'::regclass, \
         'read_model.order_items'::regclass) ORDER BY 1",
    )
    .fetch_all(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(
        foreign_keys,
        vec![
            "read_model.order_items -> read_model.orders",
            "read_model.order_items -> read_model.product_variants",
            "read_model.order_items -> read_model.products",
            "read_model.orders -> read_model.users",
        ]
    );
    // The swapped-in generation's bookkeeping came along: a redelivery is
    // still a no-op.
    apply(&tables, &events_for(&h, &tables).await).await;
    assert_eq!(dump_orders(&h.db.pool).await, live);
    assert_eq!(dead_letters(&h).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_fed_through_kafka_keeps_the_tables_a_rebuild_would_build() {
    let h = Arc::new(harness().await);
    let (_, _, products) = h.seed_catalog(3).await;
    let users = h.seed_users(2).await;
    let orders = h.seed_orders(&users, &products).await;
    // The parents are rebuilt with the orders' reset (see
    // `support::adapters::WithParents`).
    let adapter = adapter_named(&h, orders_tables::NAME).await;
    adapter.projection().reset().await.unwrap();
    adapter.projection().mark_rebuilt().await.unwrap();

    // Relays everything and lets the worker apply it all: the order and
    // user topics, in whatever order their partitions come.
    let live = Live::start(h.clone(), adapter.projection(), products[0]).await;
    for order in &orders {
        let row = order_row(&h, *order).await.unwrap();
        assert_eq!(row["status"], "confirmed");
        assert_eq!(row["payment_status"], "paid");
        assert_eq!(row["admin_notes"], "Gift wrap");
        assert_eq!(row["billing_address"]["first_name"], "Somchai");
        assert_eq!(item_rows(&h, *order).await.len(), 2);
    }

    // The first customer is erased: the user topic brings it.
    h.append_user(users[0], 3, &[erased(users[0])]).await;
    assert!(h.personal().erase(users[0]).await.unwrap());
    live.catch_up().await;
    let row = order_row(&h, orders[0]).await.unwrap();
    assert_eq!(row["shipping_address"], placeholder_address());
    let row = order_row(&h, orders[1]).await.unwrap();
    assert_eq!(
        row["shipping_address"],
        address_json("Somying", "9 Silom Rd")
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

#[tokio::test]
async fn an_order_the_tables_refuse_is_dead_lettered_and_the_rest_applies() {
    let h = harness().await;
    let tables = projection(&h);
    let (customer, products, variant) = record_parents(&h).await;
    project_parents(&h).await;
    let (first, copy) = (Uuid::now_v7(), Uuid::now_v7());
    h.append_order(
        first,
        0,
        &[placed(
            first,
            Some(customer),
            two_lines(&products, variant),
            10,
        )],
    )
    .await;
    // A second order under the first one's number: the seed keeps order
    // numbers unique.
    let number = number_of(first);
    h.append_order_edited(
        copy,
        0,
        &[placed(
            copy,
            Some(customer),
            two_lines(&products, variant),
            11,
        )],
        move |payload| payload["OrderPlaced"]["order_number"] = json!(number),
    )
    .await;
    let letters = tables.apply(&events_for(&h, &tables).await).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        letters[0].aggregate_id.as_deref(),
        Some(copy.to_string().as_str())
    );
    assert!(
        letters[0].reason.contains("orders_order_number_key"),
        "{}",
        letters[0].reason
    );
    assert!(
        !letters[0].reason.contains("Sukhumvit"),
        "no personal value in the reason"
    );
    assert!(order_row(&h, first).await.is_some());
    assert_eq!(order_row(&h, copy).await, None);
    assert_eq!(dead_letters(&h).await, 1);
}
