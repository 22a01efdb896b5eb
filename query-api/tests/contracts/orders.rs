//! Contract of `OrdersReadModel`, run against `PgOrdersReadModel`.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use query_api::catalog::Page;
use query_api::orders::{
    OrderDetail, OrderFilter, OrderKey, OrderStatus, OrdersReadModel, PaymentStatus,
    PgOrdersReadModel,
};
use uuid::Uuid;

use crate::support::{self, TestContext};

pub(crate) trait OrdersHarness: Sized {
    type ReadModel: OrdersReadModel;
    async fn start() -> Self;
    fn read_model(&self) -> &Self::ReadModel;
    fn unreachable(&self) -> Self::ReadModel;
    async fn put_order(&self, order: &OrderDetail);
}

fn day(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, day, 0, 0, 0).unwrap()
}

/// The seed's order of `user_id`, placed on `on` (a day of March 2025),
/// totalling `total`.
fn order(user_id: Uuid, on: u32, total: &str) -> OrderDetail {
    let mut order = support::seed_order(user_id);
    order.order.created_at = day(on);
    order.order.updated_at = day(on);
    order.order.total_amount = support::money(total);
    for item in &mut order.items {
        item.created_at = day(on);
    }
    order
}

async fn list<H: OrdersHarness>(harness: &H, filter: OrderFilter) -> Vec<Uuid> {
    harness
        .read_model()
        .orders(filter, Page::first())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|order| order.id)
        .collect()
}

pub(crate) async fn unknown_orders_are_none<H: OrdersHarness>() {
    let harness = H::start().await;
    let read_model = harness.read_model();
    assert_eq!(read_model.order(Uuid::now_v7()).await.unwrap(), None);
    let listed = read_model
        .orders(OrderFilter::default(), Page::first())
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    assert_eq!(listed.next, None);
}

pub(crate) async fn an_order_reads_back_whole_with_its_lines<H: OrdersHarness>() {
    let harness = H::start().await;
    let user = Uuid::now_v7();
    let mut placed = support::seed_order(user);
    placed.order.status = OrderStatus::Shipped;
    placed.order.payment_status = PaymentStatus::Paid;
    placed.order.discount_amount = support::money("500.5");
    placed.order.tracking_number = Some("TH123456789".into());
    placed.order.shipped_at = Some(support::at(16));
    placed.order.delivered_at = Some(support::at(18));
    placed.order.billing_address.company = Some("Jaidee Co.".into());
    placed.order.shipping_address.street_address_2 = None;
    placed.order.shipping_address.city = "Chiang Mai".into();
    // A later line, and one of the same moment whose id sorts first.
    let mut case = support::order_line(placed.order.id, "Phone case", "990.00", 1);
    case.created_at = support::at(16);
    let mut cable = support::order_line(placed.order.id, "Cable", "290", 3);
    cable.id = Uuid::nil();
    cable.product_id = None;
    placed.items.push(case);
    placed.items.push(cable);
    placed.order.item_count = 6;
    harness.put_order(&placed).await;
    harness.put_order(&support::seed_order(user)).await;

    let found = harness
        .read_model()
        .order(placed.order.id)
        .await
        .unwrap()
        .expect("the order");
    let mut expected = placed.clone();
    // By created_at, then id.
    expected.items = vec![
        placed.items[2].clone(),
        placed.items[0].clone(),
        placed.items[1].clone(),
    ];
    assert_eq!(found, expected);
    // Money has two decimals.
    assert_eq!(found.order.discount_amount.to_string(), "500.50");
    assert_eq!(found.items[0].unit_price.to_string(), "290.00");
    assert_eq!(found.items[0].total_price.to_string(), "870.00");

    // The listing has the order without its lines.
    let listed = harness
        .read_model()
        .orders(
            OrderFilter {
                status: Some(OrderStatus::Shipped),
                ..OrderFilter::default()
            },
            Page::first(),
        )
        .await
        .unwrap();
    assert_eq!(listed.items, vec![expected.order]);
    assert_eq!(listed.next, None);
}

pub(crate) async fn the_listing_is_newest_first_and_filters_each_way<H: OrdersHarness>() {
    let harness = H::start().await;
    let (me, you) = (Uuid::now_v7(), Uuid::now_v7());
    let first = order(me, 1, "100.00");
    let mut shipped = order(me, 5, "250.50");
    shipped.order.status = OrderStatus::Shipped;
    shipped.order.payment_status = PaymentStatus::Paid;
    let mut refunded = order(you, 10, "999.99");
    refunded.order.status = OrderStatus::Refunded;
    refunded.order.payment_status = PaymentStatus::PartiallyRefunded;
    let mut latest = order(you, 20, "76876.00");
    latest.order.payment_status = PaymentStatus::Paid;
    for order in [&first, &shipped, &refunded, &latest] {
        harness.put_order(order).await;
    }
    let ids = |orders: &[&OrderDetail]| orders.iter().map(|o| o.order.id).collect::<Vec<_>>();
    let filter = OrderFilter::default;

    assert_eq!(
        list(&harness, filter()).await,
        ids(&[&latest, &refunded, &shipped, &first])
    );
    assert_eq!(
        list(
            &harness,
            OrderFilter {
                user_id: Some(me),
                ..filter()
            }
        )
        .await,
        ids(&[&shipped, &first])
    );
    for (status, expected) in [
        (OrderStatus::Pending, ids(&[&latest, &first])),
        (OrderStatus::Shipped, ids(&[&shipped])),
        (OrderStatus::Refunded, ids(&[&refunded])),
        (OrderStatus::Cancelled, vec![]),
    ] {
        let found = list(
            &harness,
            OrderFilter {
                status: Some(status),
                ..filter()
            },
        )
        .await;
        assert_eq!(found, expected, "{status:?}");
    }
    for (status, expected) in [
        (PaymentStatus::Pending, ids(&[&first])),
        (PaymentStatus::Paid, ids(&[&latest, &shipped])),
        (PaymentStatus::PartiallyRefunded, ids(&[&refunded])),
        (PaymentStatus::Failed, vec![]),
    ] {
        let found = list(
            &harness,
            OrderFilter {
                payment_status: Some(status),
                ..filter()
            },
        )
        .await;
        assert_eq!(found, expected, "{status:?}");
    }
    // created_from <= created_at < created_to.
    for (from, to, expected) in [
        (Some(day(5)), None, ids(&[&latest, &refunded, &shipped])),
        (None, Some(day(5)), ids(&[&first])),
        (Some(day(5)), Some(day(10)), ids(&[&shipped])),
        (Some(day(2)), Some(day(4)), vec![]),
    ] {
        let found = list(
            &harness,
            OrderFilter {
                created_from: from,
                created_to: to,
                ..filter()
            },
        )
        .await;
        assert_eq!(found, expected, "from {from:?} to {to:?}");
    }
    // min_total <= total_amount <= max_total.
    for (min, max, expected) in [
        (Some("250.50"), None, ids(&[&latest, &refunded, &shipped])),
        (None, Some("250.50"), ids(&[&shipped, &first])),
        (
            Some("100"),
            Some("999.99"),
            ids(&[&refunded, &shipped, &first]),
        ),
        (Some("250.51"), Some("999.98"), vec![]),
    ] {
        let found = list(
            &harness,
            OrderFilter {
                min_total: min.map(support::money),
                max_total: max.map(support::money),
                ..filter()
            },
        )
        .await;
        assert_eq!(found, expected, "{min:?}..={max:?}");
    }
    assert_eq!(
        list(
            &harness,
            OrderFilter {
                order_number: Some(refunded.order.order_number.clone()),
                ..filter()
            }
        )
        .await,
        ids(&[&refunded])
    );
    // Filters combine.
    assert_eq!(
        list(
            &harness,
            OrderFilter {
                user_id: Some(you),
                payment_status: Some(PaymentStatus::Paid),
                created_from: Some(day(10)),
                min_total: Some(support::money("1000")),
                ..filter()
            }
        )
        .await,
        ids(&[&latest])
    );
    assert_eq!(
        list(
            &harness,
            OrderFilter {
                user_id: Some(me),
                order_number: Some(refunded.order.order_number.clone()),
                ..filter()
            }
        )
        .await,
        Vec::<Uuid>::new()
    );
}

/// Keyset pages walk the listing in its order, each order once, ties on
/// `created_at` included; the last page gives no key.
pub(crate) async fn listings_page_by_key_to_the_end<H: OrdersHarness>() {
    let harness = H::start().await;
    let me = Uuid::now_v7();
    for n in 0..8u32 {
        // Three share each day, so that the id counts.
        let mut placed = order(me, 1 + n / 3, "100");
        if n % 2 == 0 {
            placed.order.status = OrderStatus::Confirmed;
        }
        harness.put_order(&placed).await;
    }
    harness.put_order(&order(Uuid::now_v7(), 2, "100")).await;
    let read_model = harness.read_model();
    let walk = |filter: OrderFilter, limit: u32| async move {
        let mut walked = Vec::new();
        let mut after: Option<OrderKey> = None;
        loop {
            let page = read_model
                .orders(filter.clone(), Page { limit, after })
                .await
                .unwrap();
            assert!(page.items.len() <= limit as usize);
            walked.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => break walked,
            }
        }
    };
    let whole = read_model
        .orders(OrderFilter::default(), Page::first())
        .await
        .unwrap();
    assert_eq!(whole.items.len(), 9);
    assert_eq!(whole.next, None);
    assert!(whole
        .items
        .windows(2)
        .all(|pair| (pair[0].created_at, pair[0].id) > (pair[1].created_at, pair[1].id)));
    assert_eq!(walk(OrderFilter::default(), 2).await, whole.items);
    assert_eq!(walk(OrderFilter::default(), 3).await, whole.items);
    // A filtered listing pages the same way.
    let mine_confirmed = OrderFilter {
        user_id: Some(me),
        status: Some(OrderStatus::Confirmed),
        ..OrderFilter::default()
    };
    let expected: Vec<_> = whole
        .items
        .iter()
        .filter(|o| o.user_id == Some(me) && o.status == OrderStatus::Confirmed)
        .cloned()
        .collect();
    assert_eq!(expected.len(), 4);
    assert_eq!(walk(mine_confirmed, 3).await, expected);
}

pub(crate) async fn a_store_that_is_down_is_unavailable<H: OrdersHarness>() {
    let harness = H::start().await;
    let read_model = harness.unreachable();
    let started = Instant::now();
    let error = read_model
        .orders(OrderFilter::default(), Page::first())
        .await
        .expect_err("down");
    assert!(error.is_unavailable(), "{error:?}");
    let error = read_model.order(Uuid::now_v7()).await.expect_err("down");
    assert!(error.is_unavailable(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

macro_rules! orders_read_model_contract {
    ($harness:ty) => {
        #[tokio::test]
        async fn unknown_orders_are_none() {
            super::unknown_orders_are_none::<$harness>().await;
        }
        #[tokio::test]
        async fn an_order_reads_back_whole_with_its_lines() {
            super::an_order_reads_back_whole_with_its_lines::<$harness>().await;
        }
        #[tokio::test]
        async fn the_listing_is_newest_first_and_filters_each_way() {
            super::the_listing_is_newest_first_and_filters_each_way::<$harness>().await;
        }
        #[tokio::test]
        async fn listings_page_by_key_to_the_end() {
            super::listings_page_by_key_to_the_end::<$harness>().await;
        }
        #[tokio::test]
        async fn a_store_that_is_down_is_unavailable() {
            super::a_store_that_is_down_is_unavailable::<$harness>().await;
        }
    };
}

mod postgres_adapter {
    use std::str::FromStr;

    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use super::*;

    pub(crate) struct PostgresHarness {
        context: TestContext,
        read_model: PgOrdersReadModel,
    }

    impl OrdersHarness for PostgresHarness {
        type ReadModel = PgOrdersReadModel;

        async fn start() -> Self {
            let context = TestContext::new().await;
            let read_model = PgOrdersReadModel::new(context.pool().clone());
            Self {
                context,
                read_model,
            }
        }

        fn read_model(&self) -> &PgOrdersReadModel {
            &self.read_model
        }

        fn unreachable(&self) -> PgOrdersReadModel {
            let pool = PgPoolOptions::new()
                .acquire_timeout(Duration::from_secs(2))
                .connect_lazy_with(PgConnectOptions::from_str(support::DEAD_POSTGRES).unwrap());
            PgOrdersReadModel::new(pool)
        }

        async fn put_order(&self, order: &OrderDetail) {
            self.context.insert_order(order).await;
        }
    }

    orders_read_model_contract!(PostgresHarness);

    /// An order row with only what the seed requires, every nullable
    /// column NULL, and an erased address.
    async fn insert_bare_order(context: &TestContext, id: Uuid, number: &str, created_at: &str) {
        sqlx::query(
            "INSERT INTO read_model.orders (id, order_number, user_id, status, currency, \
             billing_address, shipping_address, payment_status, created_at, updated_at) \
             VALUES ($1, $2, NULL, NULL, NULL, $3, $3, NULL, $4::timestamptz, NULL)",
        )
        .bind(id)
        .bind(number)
        .bind(serde_json::json!({
            "type": "other", "first_name": "-", "last_name": "-", "company": null,
            "street_address_1": "-", "street_address_2": null, "city": "-",
            "state_province": "-", "postal_code": "00000", "country": "TH", "phone": null
        }))
        .bind(created_at)
        .execute(context.pool())
        .await
        .unwrap();
    }

    /// PostgreSQL-specific: the seed's nullable columns read as their
    /// defaults, so a bare row is still a complete view; the filters take
    /// a NULL status as `pending`, and rows without a `created_at` page
    /// like the others (first, as NULL sorts in a descending order).
    #[tokio::test]
    async fn null_columns_read_as_their_defaults() {
        let harness = PostgresHarness::start().await;
        let context = &harness.context;
        let (bare, undated, other_undated) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        insert_bare_order(context, bare, "ORD-2025-000001", "2025-03-01T00:00:00Z").await;
        sqlx::query(
            "INSERT INTO read_model.order_items (id, order_id, product_name, product_sku, \
             unit_price, quantity, total_price, product_options, created_at) \
             VALUES ($1, $2, 'Bare', 'BARE-1', 10, 3, 30, NULL, NULL)",
        )
        .bind(Uuid::now_v7())
        .bind(bare)
        .execute(context.pool())
        .await
        .unwrap();
        let detail = harness.read_model.order(bare).await.unwrap().unwrap();
        let order = &detail.order;
        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!(order.payment_status, PaymentStatus::Pending);
        assert_eq!(order.currency, "THB");
        assert_eq!(order.user_id, None);
        assert_eq!(order.updated_at, order.created_at);
        assert_eq!(order.subtotal.to_string(), "0.00");
        assert_eq!(order.item_count, 3);
        assert_eq!(order.billing_address.postal_code, "00000");
        assert_eq!(detail.items.len(), 1);
        assert!(detail.items[0].product_options.is_empty());
        assert_eq!(detail.items[0].created_at, order.created_at);
        assert_eq!(detail.items[0].total_price.to_string(), "30.00");
        // NULL is pending to the filters too.
        let pending = |status| OrderFilter {
            status: Some(OrderStatus::Pending),
            payment_status: Some(status),
            ..OrderFilter::default()
        };
        assert_eq!(
            list(&harness, pending(PaymentStatus::Pending)).await,
            [bare]
        );
        assert!(list(&harness, pending(PaymentStatus::Paid))
            .await
            .is_empty());

        // Without a created_at: first, by id, and in no creation range.
        for (id, number) in [
            (undated, "ORD-2025-000002"),
            (other_undated, "ORD-2025-000003"),
        ] {
            sqlx::query(
                "INSERT INTO read_model.orders (id, order_number, billing_address, \
                 shipping_address, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3, NULL, '2025-03-02T00:00:00Z')",
            )
            .bind(id)
            .bind(number)
            .bind(
                serde_json::to_value(&support::seed_order(Uuid::nil()).order.billing_address)
                    .unwrap(),
            )
            .execute(context.pool())
            .await
            .unwrap();
        }
        let newest_first = vec![other_undated, undated, bare];
        assert_eq!(list(&harness, OrderFilter::default()).await, newest_first);
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let page = harness
                .read_model
                .orders(OrderFilter::default(), Page { limit: 1, after })
                .await
                .unwrap();
            walked.extend(page.items.iter().map(|o| o.id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(walked, newest_first);
        let undated_order = harness.read_model.order(undated).await.unwrap().unwrap();
        assert_eq!(
            undated_order.order.created_at.to_rfc3339(),
            "2025-03-02T00:00:00+00:00"
        );
        assert_eq!(
            list(
                &harness,
                OrderFilter {
                    created_to: Some(day(31)),
                    ..OrderFilter::default()
                }
            )
            .await,
            [bare]
        );
    }

    /// The plan of the adapter's own listing statement for `filter` and
    /// `page`, with sequential scans off, as a big table would plan.
    async fn plan(
        connection: &mut sqlx::PgConnection,
        filter: OrderFilter,
        page: Page<OrderKey>,
    ) -> String {
        let rows: Vec<String> = PgOrdersReadModel::listing_query("EXPLAIN ", &filter, &page)
            .build_query_scalar()
            .fetch_all(connection)
            .await
            .unwrap();
        rows.join("\n")
    }

    /// PostgreSQL-specific: every shape of the listing's statement, each
    /// filter alone and together and the page's key, is served by the
    /// seed's indexes (never a sequential scan), and so are the item count
    /// and the lines.
    #[tokio::test]
    async fn the_seed_indexes_serve_the_listing() {
        let harness = PostgresHarness::start().await;
        let mut connection = harness.context.pool().acquire().await.unwrap();
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *connection)
            .await
            .unwrap();
        let filter = OrderFilter::default;
        let key = OrderKey {
            created_at: Some(day(10)),
            id: Uuid::now_v7(),
        };
        let shapes: Vec<(&str, OrderFilter, Option<OrderKey>, &str)> = vec![
            ("everything", filter(), None, "idx_orders_created_at"),
            (
                "a later page",
                filter(),
                Some(key.clone()),
                "idx_orders_created_at",
            ),
            (
                "a customer's",
                OrderFilter {
                    user_id: Some(Uuid::now_v7()),
                    ..filter()
                },
                None,
                "idx_orders_user_id",
            ),
            (
                "a customer's later page",
                OrderFilter {
                    user_id: Some(Uuid::now_v7()),
                    ..filter()
                },
                Some(key.clone()),
                "idx_orders_",
            ),
            (
                "by status",
                OrderFilter {
                    status: Some(OrderStatus::Shipped),
                    ..filter()
                },
                None,
                "idx_orders_status",
            ),
            (
                "pending (or NULL)",
                OrderFilter {
                    status: Some(OrderStatus::Pending),
                    ..filter()
                },
                None,
                "idx_orders_status",
            ),
            (
                "by payment status",
                OrderFilter {
                    payment_status: Some(PaymentStatus::Paid),
                    ..filter()
                },
                None,
                "idx_orders_payment_status",
            ),
            (
                "unpaid (or NULL)",
                OrderFilter {
                    payment_status: Some(PaymentStatus::Pending),
                    ..filter()
                },
                None,
                "idx_orders_payment_status",
            ),
            (
                "created in a range",
                OrderFilter {
                    created_from: Some(day(1)),
                    created_to: Some(day(31)),
                    ..filter()
                },
                None,
                "idx_orders_created_at",
            ),
            (
                "by total",
                OrderFilter {
                    min_total: Some(support::money("100")),
                    max_total: Some(support::money("200")),
                    ..filter()
                },
                None,
                "idx_orders_total_amount",
            ),
            (
                "by number",
                OrderFilter {
                    order_number: Some("ORD-2025-000001".into()),
                    ..filter()
                },
                None,
                "order_number",
            ),
            (
                "every filter",
                OrderFilter {
                    user_id: Some(Uuid::now_v7()),
                    status: Some(OrderStatus::Shipped),
                    payment_status: Some(PaymentStatus::Paid),
                    created_from: Some(day(1)),
                    created_to: Some(day(31)),
                    min_total: Some(support::money("100")),
                    max_total: Some(support::money("200")),
                    order_number: Some("ORD-2025-000001".into()),
                },
                Some(key.clone()),
                "idx_orders_",
            ),
        ];
        for (shape, filter, after, index) in shapes {
            let plan = plan(&mut connection, filter, Page { limit: 100, after }).await;
            assert!(plan.contains(index), "{shape} uses {index}:\n{plan}");
            assert!(!plan.contains("Seq Scan"), "{shape} scans:\n{plan}");
            // The item count of each row.
            assert!(
                plan.contains("idx_order_items_order_id"),
                "{shape} counts items by idx_order_items_order_id:\n{plan}"
            );
        }
    }
}
