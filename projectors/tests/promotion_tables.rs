//! The promotion tables (the seed's `promotions` and `coupons`, with
//! `promotion_targets`, `promotion_usage` and `coupon_redemptions`) against
//! real PostgreSQL, fed directly one batch at a time, and through Kafka by a
//! live worker: the seed's columns, updates, activation, coupons and their
//! exact counts, redelivery, a coupon that arrives before its promotion,
//! and rebuilds in place and blue/green.

mod support;

use std::sync::Arc;

use domain::promotion::{Applicability, PromotionEvent, PromotionKind, PromotionTerms};
use infrastructure::consistency::PROMOTION_TABLES;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use projectors::projections::promotion_tables::{self, PromotionTables};
use projectors::runtime::rebuild::rebuild_beside_live;
use projectors::runtime::{DeadLetters, Projection, WorkerStats};
use serde_json::{json, Value};
use support::adapters::{adapter_named, rebuilt_from_scratch};
use support::live::Live;
use support::promotions::*;
use support::users::at;
use support::*;
use uuid::Uuid;

fn projection(h: &Harness) -> PromotionTables {
    PromotionTables::new(h.db.pool.clone(), Upcasters::default())
}

/// The promotion and coupon events recorded so far, in log order.
async fn promotion_events(h: &Harness) -> Vec<RecordedEvent> {
    h.recorded()
        .await
        .into_iter()
        .filter(|e| {
            PROMOTION_TABLES
                .aggregate_types
                .contains(&e.aggregate_type.as_str())
        })
        .collect()
}

/// The events of `aggregate` after `version`.
async fn events_of(h: &Harness, aggregate: Uuid, after: i64) -> Vec<RecordedEvent> {
    promotion_events(h)
        .await
        .into_iter()
        .filter(|e| e.aggregate_id == aggregate.to_string() && e.version > after)
        .collect()
}

/// Applies `events` as one batch, which must dead-letter nothing.
async fn apply(tables: &PromotionTables, events: &[RecordedEvent]) {
    let letters = tables.apply(events).await.unwrap();
    assert!(letters.is_empty(), "dead letters: {letters:?}");
}

/// Applies each of `events` as a batch of its own.
async fn apply_each(tables: &PromotionTables, events: &[RecordedEvent]) {
    for event in events {
        apply(tables, std::slice::from_ref(event)).await;
    }
}

/// The promotion's row, its decimals as text (with their scale).
async fn promotion_row(h: &Harness, id: Uuid) -> Option<Value> {
    sqlx::query_scalar(
        "SELECT to_jsonb(p) || jsonb_build_object('value', p.value::text, \
         'minimum_amount', p.minimum_amount::text, 'maximum_discount', p.maximum_discount::text) \
         FROM read_model.promotions p WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&h.db.pool)
    .await
    .unwrap()
}

async fn coupon_row(h: &Harness, id: Uuid) -> Option<Value> {
    sqlx::query_scalar("SELECT to_jsonb(c) FROM read_model.coupons c WHERE id = $1")
        .bind(id)
        .fetch_optional(&h.db.pool)
        .await
        .unwrap()
}

async fn targets(h: &Harness, promotion: Uuid) -> Vec<Uuid> {
    sqlx::query_scalar(
        "SELECT target_id FROM read_model.promotion_targets WHERE promotion_id = $1 ORDER BY target_id",
    )
    .bind(promotion)
    .fetch_all(&h.db.pool)
    .await
    .unwrap()
}

async fn usage(h: &Harness, promotion: Uuid) -> Option<i32> {
    sqlx::query_scalar("SELECT usage_count FROM read_model.promotion_usage WHERE promotion_id = $1")
        .bind(promotion)
        .fetch_optional(&h.db.pool)
        .await
        .unwrap()
}

/// The coupon's redemptions: (order, user, redeemed at), by order.
async fn redemptions(h: &Harness, coupon: Uuid) -> Vec<(Uuid, Option<Uuid>, Value)> {
    sqlx::query_as(
        "SELECT order_id, user_id, to_jsonb(redeemed_at) FROM read_model.coupon_redemptions \
         WHERE coupon_id = $1 ORDER BY order_id",
    )
    .bind(coupon)
    .fetch_all(&h.db.pool)
    .await
    .unwrap()
}

async fn count(h: &Harness, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&h.db.pool).await.unwrap()
}

async fn parked(h: &Harness) -> i64 {
    count(
        h,
        "SELECT count(*) FROM read_model.parked_events WHERE projection = 'promotion-tables'",
    )
    .await
}

async fn dead_letters(h: &Harness) -> i64 {
    count(
        h,
        "SELECT count(*) FROM read_model.dead_letters WHERE projection = 'promotion-tables'",
    )
    .await
}

/// `timestamptz` as `to_jsonb` writes it.
fn ts(minutes: i64) -> Value {
    json!(at(minutes).format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

#[tokio::test]
async fn the_projection_is_registered_under_its_read_models_name() {
    let h = harness().await;
    assert_eq!(promotion_tables::NAME, "promotion-tables");
    assert!(projectors::app::PROJECTIONS.contains(&promotion_tables::NAME));
    let built = projectors::app::build_projection(promotion_tables::NAME, &h.settings, &h.store)
        .await
        .unwrap();
    assert_eq!(built.name(), PROMOTION_TABLES.projection);
    assert_eq!(built.aggregate_types(), PROMOTION_TABLES.aggregate_types);
    let recorded: Option<bool> = sqlx::query_scalar(
        "SELECT finished_at IS NOT NULL FROM read_model.rebuilds WHERE projection = $1",
    )
    .bind(promotion_tables::NAME)
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
async fn a_creation_writes_the_seeds_columns_and_the_targets() {
    let h = harness().await;
    let tables = projection(&h);
    tables.reset().await.unwrap();
    let (percentage, fixed_off, shipping) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (phones, cases, product) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    h.append_promotion(
        percentage,
        0,
        &[created(
            percentage,
            PromotionTerms {
                applicable_to: categories(&[phones, cases]),
                ..terms()
            },
            0,
        )],
    )
    .await;
    h.append_promotion(
        fixed_off,
        0,
        &[created(
            fixed_off,
            PromotionTerms {
                name: "Flat 150".into(),
                description: None,
                kind: fixed("150"),
                minimum_amount: None,
                maximum_discount: None,
                usage_limit: None,
                usage_limit_per_user: None,
                ..terms()
            },
            1,
        )],
    )
    .await;
    h.append_promotion(
        shipping,
        0,
        &[PromotionEvent::PromotionCreated {
            promotion_id: shipping,
            terms: PromotionTerms {
                name: "Free shipping".into(),
                kind: PromotionKind::FreeShipping,
                maximum_discount: Some(money("80")),
                applicable_to: products(&[product]),
                ..terms()
            },
            is_active: false,
            usage_count: 0,
            created_at: at(2),
        }],
    )
    .await;
    let events = promotion_events(&h).await;
    assert_eq!(events[0].payload["PromotionCreated"]["type"], "percentage");
    apply(&tables, &events).await;

    assert_eq!(
        promotion_row(&h, percentage).await,
        Some(json!({
            "id": percentage,
            "name": "New year",
            "description": "Ten percent off",
            "type": "percentage",
            "value": "10.00",
            "minimum_amount": "500.00",
            "maximum_discount": "200.00",
            "usage_limit": 100,
            "usage_limit_per_user": 2,
            "starts_at": ts(0),
            "ends_at": ts(60 * 24 * 31),
            "is_active": true,
            "applicable_to": "categories",
            "created_at": ts(0),
            "updated_at": ts(0),
        }))
    );
    assert_eq!(targets(&h, percentage).await, sorted(vec![phones, cases]));
    assert_eq!(
        promotion_row(&h, fixed_off).await,
        Some(json!({
            "id": fixed_off,
            "name": "Flat 150",
            "description": null,
            "type": "fixed_amount",
            "value": "150.00",
            "minimum_amount": null,
            "maximum_discount": null,
            "usage_limit": null,
            "usage_limit_per_user": null,
            "starts_at": ts(0),
            "ends_at": ts(60 * 24 * 31),
            "is_active": true,
            "applicable_to": "all",
            "created_at": ts(1),
            "updated_at": ts(1),
        }))
    );
    assert!(
        targets(&h, fixed_off).await.is_empty(),
        "'all' has no targets"
    );
    let free = promotion_row(&h, shipping).await.unwrap();
    assert_eq!(free["type"], "free_shipping");
    assert_eq!(free["value"], "0.00", "free shipping carries no value");
    assert_eq!(free["maximum_discount"], "80.00");
    assert_eq!(free["is_active"], false);
    assert_eq!(free["applicable_to"], "products");
    assert_eq!(targets(&h, shipping).await, vec![product]);
    for promotion in [percentage, fixed_off, shipping] {
        assert_eq!(usage(&h, promotion).await, Some(0));
    }
    let version: i64 = sqlx::query_scalar(
        "SELECT version FROM read_model.projected_versions WHERE projection = $1 AND aggregate_id = $2",
    )
    .bind(promotion_tables::NAME)
    .bind(percentage.to_string())
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(version, 1);
}

#[tokio::test]
async fn an_update_replaces_the_terms_and_the_targets_and_moves_updated_at() {
    let h = harness().await;
    let tables = projection(&h);
    tables.reset().await.unwrap();
    let promotion = Uuid::now_v7();
    let (kept, dropped, added) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    h.append_promotion(
        promotion,
        0,
        &[created(
            promotion,
            PromotionTerms {
                applicable_to: products(&[kept, dropped]),
                ..terms()
            },
            0,
        )],
    )
    .await;
    apply(&tables, &promotion_events(&h).await).await;
    assert_eq!(targets(&h, promotion).await, sorted(vec![kept, dropped]));

    let new_terms = PromotionTerms {
        name: "Spring".into(),
        description: None,
        kind: fixed("50"),
        minimum_amount: Some(money("99.50")),
        usage_limit: None,
        starts_at: at(10),
        ends_at: at(20),
        applicable_to: products(&[kept, added]),
        ..terms()
    };
    h.append_promotion(promotion, 1, &[updated(promotion, new_terms, 5)])
        .await;
    apply(&tables, &events_of(&h, promotion, 1).await).await;
    assert_eq!(
        promotion_row(&h, promotion).await,
        Some(json!({
            "id": promotion,
            "name": "Spring",
            "description": null,
            "type": "fixed_amount",
            "value": "50.00",
            "minimum_amount": "99.50",
            "maximum_discount": "200.00",
            "usage_limit": null,
            "usage_limit_per_user": 2,
            "starts_at": ts(10),
            "ends_at": ts(20),
            "is_active": true,
            "applicable_to": "products",
            "created_at": ts(0),
            "updated_at": ts(5),
        }))
    );
    assert_eq!(targets(&h, promotion).await, sorted(vec![kept, added]));

    // Targets of another kind replace the products; 'all' has none.
    let users = Uuid::now_v7();
    h.append_promotion(
        promotion,
        2,
        &[
            updated(
                promotion,
                PromotionTerms {
                    applicable_to: Applicability::Users {
                        ids: [users].into(),
                    },
                    ..terms()
                },
                6,
            ),
            updated(promotion, terms(), 7),
        ],
    )
    .await;
    let later = events_of(&h, promotion, 2).await;
    apply(&tables, &later[..1]).await;
    assert_eq!(targets(&h, promotion).await, vec![users]);
    assert_eq!(
        promotion_row(&h, promotion).await.unwrap()["applicable_to"],
        "users"
    );
    apply(&tables, &later[1..]).await;
    let row = promotion_row(&h, promotion).await.unwrap();
    assert_eq!(row["applicable_to"], "all");
    assert_eq!(row["type"], "percentage");
    assert_eq!(row["updated_at"], ts(7));
    assert!(targets(&h, promotion).await.is_empty());
}

#[tokio::test]
async fn activation_and_usage_move_the_flag_the_counter_and_updated_at() {
    let h = harness().await;
    let tables = projection(&h);
    tables.reset().await.unwrap();
    let promotion = Uuid::now_v7();
    let order = Uuid::now_v7();
    h.append_promotion(
        promotion,
        0,
        &[
            created(promotion, terms(), 0),
            PromotionEvent::PromotionDeactivated {
                promotion_id: promotion,
                at: at(3),
            },
            PromotionEvent::PromotionActivated {
                promotion_id: promotion,
                at: at(4),
            },
            usage_recorded(promotion, None, order, 1, 5),
            usage_reverted(promotion, order, 0, 6),
        ],
    )
    .await;
    let events = promotion_events(&h).await;
    apply(&tables, &events[..1]).await;

    let expected = [
        (false, Some(0), ts(3)),
        (true, Some(0), ts(4)),
        (true, Some(1), ts(5)),
        (true, Some(0), ts(6)),
    ];
    for (event, (active, used, updated_at)) in events[1..].iter().zip(expected) {
        apply(&tables, std::slice::from_ref(event)).await;
        let row = promotion_row(&h, promotion).await.unwrap();
        assert_eq!(row["is_active"], active, "after {}", event.event_type);
        assert_eq!(row["updated_at"], updated_at, "after {}", event.event_type);
        assert_eq!(row["created_at"], ts(0));
        assert_eq!(
            usage(&h, promotion).await,
            used,
            "after {}",
            event.event_type
        );
    }
}

#[tokio::test]
async fn coupon_redemptions_and_their_reversal_are_counted_exactly() {
    let h = harness().await;
    let tables = projection(&h);
    tables.reset().await.unwrap();
    let (promotion, coupon) = (Uuid::now_v7(), Uuid::now_v7());
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let customer = Uuid::now_v7();
    h.append_promotion(
        promotion,
        0,
        &[
            created(promotion, terms(), 0),
            usage_recorded(promotion, Some(coupon), first, 1, 2),
            usage_recorded(promotion, Some(coupon), second, 2, 3),
            usage_reverted(promotion, first, 1, 4),
        ],
    )
    .await;
    let redemption = |order, user, count, when| Redemption {
        coupon,
        code: "save-10",
        promotion,
        order,
        user,
        count,
        when,
    };
    h.append_coupon(
        coupon,
        0,
        &[
            issued(coupon, "save-10", promotion, 1),
            redemption(first, Some(customer), 1, 2).redeemed(),
            // A guest's order.
            redemption(second, None, 2, 3).redeemed(),
            redemption(first, Some(customer), 1, 4).reverted(),
            coupon_deactivated(coupon, "save-10", 5),
        ],
    )
    .await;
    apply(&tables, &events_of(&h, promotion, 0).await[..1]).await;
    let coupon_events = events_of(&h, coupon, 0).await;

    apply(&tables, &coupon_events[..1]).await;
    assert_eq!(
        coupon_row(&h, coupon).await,
        Some(json!({
            "id": coupon,
            "code": "SAVE-10",
            "promotion_id": promotion,
            "usage_count": 0,
            "is_active": true,
            "created_at": ts(1),
        }))
    );
    assert!(redemptions(&h, coupon).await.is_empty());

    apply(&tables, &coupon_events[1..3]).await;
    assert_eq!(coupon_row(&h, coupon).await.unwrap()["usage_count"], 2);
    assert_eq!(
        redemptions(&h, coupon).await,
        sorted_redemptions(vec![(first, Some(customer), ts(2)), (second, None, ts(3))])
    );

    apply(&tables, &coupon_events[3..4]).await;
    assert_eq!(coupon_row(&h, coupon).await.unwrap()["usage_count"], 1);
    assert_eq!(redemptions(&h, coupon).await, vec![(second, None, ts(3))]);

    apply(&tables, &coupon_events[4..]).await;
    let row = coupon_row(&h, coupon).await.unwrap();
    assert_eq!(row["is_active"], false);
    assert_eq!(row["usage_count"], 1, "deactivation keeps the count");
    assert_eq!(redemptions(&h, coupon).await.len(), 1);

    // The promotion-wide counter comes from the promotion's own events.
    assert_eq!(usage(&h, promotion).await, Some(0));
    apply(&tables, &events_of(&h, promotion, 1).await).await;
    assert_eq!(usage(&h, promotion).await, Some(1));
    assert_eq!(
        promotion_row(&h, promotion).await.unwrap()["updated_at"],
        ts(4),
        "the coupon's events leave the promotion's updated_at alone"
    );
}

fn sorted_redemptions(
    mut rows: Vec<(Uuid, Option<Uuid>, Value)>,
) -> Vec<(Uuid, Option<Uuid>, Value)> {
    rows.sort_by_key(|(order, _, _)| *order);
    rows
}

#[tokio::test]
async fn the_same_event_delivered_twice_is_a_no_op() {
    let h = harness().await;
    let tables = projection(&h);
    tables.reset().await.unwrap();
    let seeded = h.seed_promotions(2).await;
    let events = promotion_events(&h).await;
    apply(&tables, &events).await;
    let first = dump_promotions(&h.db.pool).await;
    let (promotion, coupon) = seeded[0];
    assert_eq!(usage(&h, promotion).await, Some(1));
    assert_eq!(coupon_row(&h, coupon).await.unwrap()["usage_count"], 1);
    assert_eq!(redemptions(&h, coupon).await.len(), 1);

    // Everything again, an older part, and each event on its own.
    apply(&tables, &events).await;
    apply(&tables, &events[..events.len() / 2]).await;
    apply_each(&tables, &events).await;
    assert_eq!(dump_promotions(&h.db.pool).await, first);

    // Even past the version guard (a dead letter's retry lets a stream's
    // events apply again), the counts are the events' own, not increments.
    tables.forget_applied(&coupon.to_string(), 2).await.unwrap();
    tables
        .forget_applied(&promotion.to_string(), 2)
        .await
        .unwrap();
    apply(&tables, &events_of(&h, coupon, 1).await).await;
    apply(&tables, &events_of(&h, promotion, 1).await).await;
    assert_eq!(dump_promotions(&h.db.pool).await, first);
}

#[tokio::test]
async fn a_coupon_before_its_promotion_waits_for_it_and_keeps_its_order() {
    let h = harness().await;
    let tables = projection(&h);
    tables.reset().await.unwrap();
    let (promotion, coupon, order) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    h.append_promotion(
        promotion,
        0,
        &[
            created(promotion, terms(), 0),
            usage_recorded(promotion, Some(coupon), order, 1, 2),
        ],
    )
    .await;
    let redemption = Redemption {
        coupon,
        code: "early",
        promotion,
        order,
        user: None,
        count: 1,
        when: 2,
    };
    h.append_coupon(
        coupon,
        0,
        &[issued(coupon, "early", promotion, 1), redemption.redeemed()],
    )
    .await;

    // The coupon's partition runs ahead of the promotion's, one event per
    // batch.
    apply_each(&tables, &events_of(&h, coupon, 0).await).await;
    assert_eq!(coupon_row(&h, coupon).await, None, "held back");
    let waiting: Vec<(String, i64)> = sqlx::query_as(
        "SELECT waiting_for, version FROM read_model.parked_events \
         WHERE projection = 'promotion-tables' ORDER BY version",
    )
    .fetch_all(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(
        waiting,
        vec![
            (format!("promotion:{promotion}"), 1),
            (format!("aggregate:{coupon}"), 2),
        ]
    );

    apply(&tables, &events_of(&h, promotion, 0).await[..1]).await;
    let row = coupon_row(&h, coupon)
        .await
        .expect("released once the promotion exists");
    assert_eq!(row["code"], "EARLY");
    assert_eq!(row["usage_count"], 1);
    assert_eq!(redemptions(&h, coupon).await, vec![(order, None, ts(2))]);
    assert_eq!(parked(&h).await, 0);
    apply(&tables, &events_of(&h, promotion, 1).await).await;
    assert_eq!(usage(&h, promotion).await, Some(1));
    assert_eq!(dead_letters(&h).await, 0);

    // A redelivery of the coupon's events changes nothing.
    let live = dump_promotions(&h.db.pool).await;
    apply(&tables, &events_of(&h, coupon, 0).await).await;
    assert_eq!(dump_promotions(&h.db.pool).await, live);

    // A rebuild, in log order, needs no parking and ends the same.
    let adapter = adapter_named(&h, promotion_tables::NAME).await;
    let live = adapter.snapshot().await;
    assert_eq!(rebuilt_from_scratch(&h, adapter.as_ref()).await, live);
}

#[tokio::test]
async fn coupons_waiting_for_a_promotion_that_can_never_be_created_are_dead_lettered_with_it() {
    let h = harness().await;
    let tables = projection(&h);
    tables.reset().await.unwrap();
    let (promotion, coupon, order) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    h.append_promotion(promotion, 0, &[created(promotion, terms(), 0)])
        .await;
    let redemption = Redemption {
        coupon,
        code: "ORPHAN",
        promotion,
        order,
        user: None,
        count: 1,
        when: 2,
    };
    h.append_coupon(
        coupon,
        0,
        &[
            issued(coupon, "ORPHAN", promotion, 1),
            redemption.redeemed(),
        ],
    )
    .await;
    apply(&tables, &events_of(&h, coupon, 0).await).await;
    assert_eq!(parked(&h).await, 2, "they wait for the promotion");

    // The promotion's creation can never apply: what waits for it never could.
    let mut creation = events_of(&h, promotion, 0).await;
    creation[0].payload["PromotionCreated"]["type"] = json!("buy_one_get_one");
    let letters = tables.apply(&creation).await.unwrap();

    assert_eq!(parked(&h).await, 0, "nothing waits forever");
    assert_eq!(letters.len(), 3, "{letters:?}");
    assert_eq!(dead_letters(&h).await, 3);
    assert!(letters
        .iter()
        .filter(|l| l.aggregate_id.as_deref() != Some(promotion.to_string().as_str()))
        .all(|l| l.reason.starts_with("waits on an event dead-lettered")));
    assert_eq!(promotion_row(&h, promotion).await, None);
    assert_eq!(coupon_row(&h, coupon).await, None);
}

#[tokio::test]
async fn a_blue_green_rebuild_ends_in_the_same_rows() {
    let h = harness().await;
    let tables = projection(&h);
    tables.reset().await.unwrap();
    h.seed_promotions(3).await;
    // The live tables were built out of order: every coupon before its
    // promotion, so each coupon parked and was released.
    let (promotions, coupons): (Vec<_>, Vec<_>) = promotion_events(&h)
        .await
        .into_iter()
        .partition(|e| e.aggregate_type == "promotion");
    apply(&tables, &coupons).await;
    assert_eq!(parked(&h).await, coupons.len() as i64);
    apply(&tables, &promotions).await;
    assert_eq!(parked(&h).await, 0);
    let live = dump_promotions(&h.db.pool).await;
    assert_eq!(
        count(&h, "SELECT count(*) FROM read_model.coupons").await,
        3
    );
    assert_eq!(
        count(&h, "SELECT count(*) FROM read_model.coupon_redemptions").await,
        3
    );
    assert_eq!(
        count(&h, "SELECT count(*) FROM read_model.promotion_targets").await,
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
    assert_eq!(replayed, (promotions.len() + coupons.len()) as u64);

    assert_eq!(dump_promotions(&h.db.pool).await, live);
    let generation: (i64, Option<i64>) =
        sqlx::query_as("SELECT live, building FROM read_model.generations WHERE projection = $1")
            .bind(promotion_tables::NAME)
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
    // The swapped-in generation's bookkeeping came along: a redelivery is
    // still a no-op.
    apply(&tables, &promotion_events(&h).await).await;
    assert_eq!(dump_promotions(&h.db.pool).await, live);
    assert_eq!(dead_letters(&h).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_fed_through_kafka_keeps_the_tables_a_rebuild_would_build() {
    let h = Arc::new(harness().await);
    let tables = Arc::new(projection(&h));
    tables.reset().await.unwrap();
    tables.mark_rebuilt().await.unwrap();
    let seeded = h.seed_promotions(2).await;

    // Relays everything and lets the worker apply it all: the promotion and
    // coupon topics, in whatever order their partitions come.
    let live = Live::start(h.clone(), tables.clone(), Uuid::nil()).await;
    for (promotion, coupon) in &seeded {
        assert_eq!(usage(&h, *promotion).await, Some(1));
        assert_eq!(coupon_row(&h, *coupon).await.unwrap()["usage_count"], 1);
        assert_eq!(redemptions(&h, *coupon).await.len(), 1);
        assert_eq!(targets(&h, *promotion).await.len(), 2);
    }
    assert_eq!(parked(&h).await, 0);
    assert_eq!(dead_letters(&h).await, 0);
    drop(live);

    let adapter = adapter_named(&h, promotion_tables::NAME).await;
    let through_kafka = adapter.snapshot().await;
    assert_eq!(
        rebuilt_from_scratch(&h, adapter.as_ref()).await,
        through_kafka
    );
}
