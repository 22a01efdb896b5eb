//! Contract of `PromotionsReadModel`, run against `PgPromotionsReadModel`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use domain::values::CouponCode;
use query_api::catalog::Page;
use query_api::promotions::{
    ApplicableTo, CouponView, PgPromotionsReadModel, PromotionFilter, PromotionKey, PromotionType,
    PromotionView, PromotionsReadModel,
};
use uuid::Uuid;

use crate::support::{self, TestContext};

pub(crate) trait PromotionsHarness: Sized {
    type ReadModel: PromotionsReadModel;
    async fn start() -> Self;
    fn read_model(&self) -> &Self::ReadModel;
    fn unreachable(&self) -> Self::ReadModel;
    async fn put_promotion(&self, promotion: &PromotionView);
    async fn put_coupon(&self, promotion_id: Uuid, coupon: &CouponView);
    async fn put_redemption(&self, coupon_id: Uuid, user_id: Option<Uuid>);
    async fn put_product(&self, product_id: Uuid, category_id: Option<Uuid>);
}

fn code(text: &str) -> CouponCode {
    CouponCode::parse(text).unwrap()
}

fn day(day: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, day, 0, 0, 0).unwrap()
}

/// A promotion valid from `from` to `to` (days of March 2025).
fn window(name: &str, from: u32, to: u32) -> PromotionView {
    let mut promotion = support::promotion(name);
    promotion.starts_at = day(from);
    promotion.ends_at = day(to);
    promotion
}

async fn list<H: PromotionsHarness>(harness: &H, filter: PromotionFilter) -> Vec<Uuid> {
    harness
        .read_model()
        .promotions(filter, Page::first())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|promotion| promotion.id)
        .collect()
}

pub(crate) async fn unknown_promotions_and_codes_are_none<H: PromotionsHarness>() {
    let harness = H::start().await;
    let read_model = harness.read_model();
    assert_eq!(read_model.promotion(Uuid::now_v7()).await.unwrap(), None);
    assert_eq!(read_model.coupon(&code("NOPE"), None).await.unwrap(), None);
    assert!(read_model
        .promotions(PromotionFilter::default(), Page::first())
        .await
        .unwrap()
        .items
        .is_empty());
}

pub(crate) async fn a_promotion_reads_back_whole_with_its_coupons<H: PromotionsHarness>() {
    let harness = H::start().await;
    let mut promotion = support::promotion("Phones week");
    promotion.kind = PromotionType::FixedAmount;
    promotion.value = support::money("250.50");
    promotion.minimum_amount = Some(support::money("1000.00"));
    promotion.maximum_discount = Some(support::money("250.50"));
    promotion.usage_limit = Some(100);
    promotion.usage_limit_per_user = Some(2);
    promotion.applicable_to = ApplicableTo::Categories;
    promotion.targets = vec![Uuid::from_u128(3), Uuid::from_u128(1), Uuid::from_u128(2)];
    promotion.usage_count = 7;
    harness.put_promotion(&promotion).await;
    harness.put_promotion(&support::promotion("Another")).await;
    let mut later = support::coupon("phones-b");
    later.created_at = support::at(5);
    later.usage_count = 4;
    let mut first = support::coupon("PHONES-Z");
    first.created_at = support::at(4);
    first.is_active = false;
    let mut tied = support::coupon("PHONES-A");
    tied.created_at = support::at(5);
    for coupon in [&later, &first, &tied] {
        harness.put_coupon(promotion.id, coupon).await;
    }

    let mut expected = promotion.clone();
    expected.targets.sort();
    expected.coupon_count = 3;
    let detail = harness
        .read_model()
        .promotion(promotion.id)
        .await
        .unwrap()
        .expect("the promotion");
    assert_eq!(detail.promotion, expected);
    // By created_at, then code.
    assert_eq!(detail.coupons, vec![first, tied, later]);

    let listed = harness
        .read_model()
        .promotions(
            PromotionFilter {
                kind: Some(PromotionType::FixedAmount),
                ..PromotionFilter::default()
            },
            Page::first(),
        )
        .await
        .unwrap();
    assert_eq!(listed.items, vec![expected]);
    assert_eq!(listed.next, None);
}

pub(crate) async fn the_listing_is_latest_first_and_filters_each_way<H: PromotionsHarness>() {
    let harness = H::start().await;
    let march = window("March", 1, 31);
    let mut early = window("Early March", 1, 10);
    early.kind = PromotionType::FreeShipping;
    early.value = support::money("0.00");
    let mut paused = window("Paused", 5, 20);
    paused.is_active = false;
    paused.applicable_to = ApplicableTo::Products;
    paused.targets = vec![Uuid::now_v7()];
    let mut late = window("Late March", 20, 31);
    late.kind = PromotionType::FixedAmount;
    late.value = support::money("100.00");
    late.applicable_to = ApplicableTo::Users;
    late.targets = vec![Uuid::now_v7()];
    for promotion in [&march, &early, &paused, &late] {
        harness.put_promotion(promotion).await;
    }
    let filter = PromotionFilter::default;

    // starts_at descending, then ends_at descending.
    assert_eq!(
        list(&harness, filter()).await,
        vec![late.id, paused.id, march.id, early.id]
    );
    assert_eq!(
        list(
            &harness,
            PromotionFilter {
                is_active: Some(true),
                ..filter()
            }
        )
        .await,
        vec![late.id, march.id, early.id]
    );
    assert_eq!(
        list(
            &harness,
            PromotionFilter {
                is_active: Some(false),
                ..filter()
            }
        )
        .await,
        vec![paused.id]
    );
    for (kind, expected) in [
        (PromotionType::Percentage, vec![paused.id, march.id]),
        (PromotionType::FixedAmount, vec![late.id]),
        (PromotionType::FreeShipping, vec![early.id]),
    ] {
        let found = list(
            &harness,
            PromotionFilter {
                kind: Some(kind),
                ..filter()
            },
        )
        .await;
        assert_eq!(found, expected, "{kind:?}");
    }
    for (to, expected) in [
        (ApplicableTo::All, vec![march.id, early.id]),
        (ApplicableTo::Products, vec![paused.id]),
        (ApplicableTo::Users, vec![late.id]),
        (ApplicableTo::Categories, vec![]),
    ] {
        let found = list(
            &harness,
            PromotionFilter {
                applicable_to: Some(to),
                ..filter()
            },
        )
        .await;
        assert_eq!(found, expected, "{to:?}");
    }
    // starts_at <= t < ends_at: the start counts, the end does not.
    for (at, expected) in [
        (day(10), vec![paused.id, march.id]),
        (day(9), vec![paused.id, march.id, early.id]),
        (day(1), vec![march.id, early.id]),
        (day(20), vec![late.id, march.id]),
        (day(31), vec![]),
    ] {
        let found = list(
            &harness,
            PromotionFilter {
                valid_at: Some(at),
                ..filter()
            },
        )
        .await;
        assert_eq!(found, expected, "valid at {at}");
    }
    // Filters combine.
    assert_eq!(
        list(
            &harness,
            PromotionFilter {
                is_active: Some(true),
                kind: Some(PromotionType::Percentage),
                applicable_to: Some(ApplicableTo::All),
                valid_at: Some(day(15)),
            }
        )
        .await,
        vec![march.id]
    );
}

/// Keyset pages walk the listing in its order, each promotion once, ties
/// on both dates included; the last page gives no key.
pub(crate) async fn listings_page_by_key_to_the_end<H: PromotionsHarness>() {
    let harness = H::start().await;
    for n in 0..8u32 {
        // Equal windows, so that the key's later parts count.
        harness
            .put_promotion(&window(&format!("P{n}"), 1 + n % 2, 20 + n % 3))
            .await;
    }
    let read_model = harness.read_model();
    let whole = read_model
        .promotions(
            PromotionFilter::default(),
            Page {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(whole.items.len(), 8);
    assert_eq!(whole.next, None);
    let mut walked = Vec::new();
    let mut after: Option<PromotionKey> = None;
    loop {
        let page = read_model
            .promotions(PromotionFilter::default(), Page { limit: 3, after })
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        walked.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(walked, whole.items);
    // A filtered listing pages the same way.
    let filter = PromotionFilter {
        valid_at: Some(day(1)),
        ..PromotionFilter::default()
    };
    let first = read_model
        .promotions(
            filter.clone(),
            Page {
                limit: 2,
                after: None,
            },
        )
        .await
        .unwrap();
    let rest = read_model
        .promotions(
            filter,
            Page {
                limit: 2,
                after: first.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len() + rest.items.len(), 4);
    assert_eq!(rest.next, None);
    assert!(first
        .items
        .iter()
        .chain(&rest.items)
        .all(|p| p.starts_at == day(1)));
}

pub(crate) async fn a_coupon_comes_with_its_promotion_and_the_users_redemptions<
    H: PromotionsHarness,
>() {
    let harness = H::start().await;
    let mut promotion = support::promotion("Once each");
    promotion.usage_limit_per_user = Some(2);
    promotion.usage_count = 3;
    harness.put_promotion(&promotion).await;
    let welcome = support::coupon("WELCOME10");
    let again = support::coupon("AGAIN10");
    harness.put_coupon(promotion.id, &welcome).await;
    harness.put_coupon(promotion.id, &again).await;
    let other_promotion = support::promotion("Other");
    harness.put_promotion(&other_promotion).await;
    let elsewhere = support::coupon("ELSEWHERE");
    harness.put_coupon(other_promotion.id, &elsewhere).await;
    let (me, someone) = (Uuid::now_v7(), Uuid::now_v7());
    // Mine through both of the promotion's coupons; not the others'.
    harness.put_redemption(welcome.id, Some(me)).await;
    harness.put_redemption(again.id, Some(me)).await;
    harness.put_redemption(welcome.id, Some(someone)).await;
    harness.put_redemption(welcome.id, None).await;
    harness.put_redemption(elsewhere.id, Some(me)).await;

    let read_model = harness.read_model();
    let found = read_model
        .coupon(&code("welcome10"), Some(me))
        .await
        .unwrap()
        .expect("the coupon");
    assert_eq!(found.coupon, welcome);
    let mut expected = promotion.clone();
    expected.coupon_count = 2;
    assert_eq!(found.promotion, expected);
    assert_eq!(found.user_redemptions, 2);
    let for_someone = read_model
        .coupon(&code("WELCOME10"), Some(someone))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(for_someone.user_redemptions, 1);
    let for_a_stranger = read_model
        .coupon(&code("Again10"), Some(Uuid::now_v7()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(for_a_stranger.coupon, again);
    assert_eq!(for_a_stranger.user_redemptions, 0);
    let for_a_guest = read_model
        .coupon(&code("WELCOME10"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(for_a_guest.user_redemptions, 0);
    let other = read_model
        .coupon(&code("ELSEWHERE"), Some(me))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.promotion.id, other_promotion.id);
    assert_eq!(other.user_redemptions, 1);
}

pub(crate) async fn products_have_their_catalog_categories<H: PromotionsHarness>() {
    let harness = H::start().await;
    let (phone, loose, unknown) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let phones = Uuid::now_v7();
    harness.put_product(phone, Some(phones)).await;
    harness.put_product(loose, None).await;
    let read_model = harness.read_model();
    let found = read_model
        .product_categories(&[phone, loose, unknown])
        .await
        .unwrap();
    assert_eq!(
        found,
        BTreeMap::from([(phone, Some(phones)), (loose, None)])
    );
    assert!(read_model.product_categories(&[]).await.unwrap().is_empty());
}

pub(crate) async fn a_store_that_is_down_is_unavailable<H: PromotionsHarness>() {
    let harness = H::start().await;
    let read_model = harness.unreachable();
    let started = Instant::now();
    let error = read_model
        .promotions(PromotionFilter::default(), Page::first())
        .await
        .expect_err("down");
    assert!(error.is_unavailable(), "{error:?}");
    let error = read_model
        .promotion(Uuid::now_v7())
        .await
        .expect_err("down");
    assert!(error.is_unavailable(), "{error:?}");
    let error = read_model
        .coupon(&code("WELCOME10"), None)
        .await
        .expect_err("down");
    assert!(error.is_unavailable(), "{error:?}");
    let error = read_model
        .product_categories(&[Uuid::now_v7()])
        .await
        .expect_err("down");
    assert!(error.is_unavailable(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

macro_rules! promotions_read_model_contract {
    ($harness:ty) => {
        #[tokio::test]
        async fn unknown_promotions_and_codes_are_none() {
            super::unknown_promotions_and_codes_are_none::<$harness>().await;
        }
        #[tokio::test]
        async fn a_promotion_reads_back_whole_with_its_coupons() {
            super::a_promotion_reads_back_whole_with_its_coupons::<$harness>().await;
        }
        #[tokio::test]
        async fn the_listing_is_latest_first_and_filters_each_way() {
            super::the_listing_is_latest_first_and_filters_each_way::<$harness>().await;
        }
        #[tokio::test]
        async fn listings_page_by_key_to_the_end() {
            super::listings_page_by_key_to_the_end::<$harness>().await;
        }
        #[tokio::test]
        async fn a_coupon_comes_with_its_promotion_and_the_users_redemptions() {
            super::a_coupon_comes_with_its_promotion_and_the_users_redemptions::<$harness>().await;
        }
        #[tokio::test]
        async fn products_have_their_catalog_categories() {
            super::products_have_their_catalog_categories::<$harness>().await;
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
        read_model: PgPromotionsReadModel,
    }

    impl PromotionsHarness for PostgresHarness {
        type ReadModel = PgPromotionsReadModel;

        async fn start() -> Self {
            let context = TestContext::new().await;
            let read_model = PgPromotionsReadModel::new(context.pool().clone());
            Self {
                context,
                read_model,
            }
        }

        fn read_model(&self) -> &PgPromotionsReadModel {
            &self.read_model
        }

        fn unreachable(&self) -> PgPromotionsReadModel {
            let pool = PgPoolOptions::new()
                .acquire_timeout(Duration::from_secs(2))
                .connect_lazy_with(PgConnectOptions::from_str(support::DEAD_POSTGRES).unwrap());
            PgPromotionsReadModel::new(pool)
        }

        async fn put_promotion(&self, promotion: &PromotionView) {
            self.context.insert_promotion(promotion).await;
        }

        async fn put_coupon(&self, promotion_id: Uuid, coupon: &CouponView) {
            self.context.insert_coupon(promotion_id, coupon).await;
        }

        async fn put_redemption(&self, coupon_id: Uuid, user_id: Option<Uuid>) {
            self.context.insert_redemption(coupon_id, user_id).await;
        }

        async fn put_product(&self, product_id: Uuid, category_id: Option<Uuid>) {
            self.context
                .insert_product_in_category(product_id, category_id)
                .await;
        }
    }

    promotions_read_model_contract!(PostgresHarness);

    /// PostgreSQL-specific: the seed's nullable columns read as their
    /// defaults, so a bare row is still a complete view.
    #[tokio::test]
    async fn null_columns_read_as_their_defaults() {
        let harness = PostgresHarness::start().await;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO read_model.promotions (id, name, type, value, starts_at, ends_at, is_active, \
             applicable_to, created_at, updated_at) VALUES ($1, 'Bare', 'percentage', 5, \
             '2025-03-01T00:00:00Z', '2025-04-01T00:00:00Z', NULL, NULL, '2025-02-01T00:00:00Z', NULL)",
        )
        .bind(id)
        .execute(harness.context.pool())
        .await
        .unwrap();
        let coupon_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO read_model.coupons (id, code, promotion_id, usage_count, is_active, created_at) \
             VALUES ($1, 'BARE', $2, NULL, NULL, '2025-02-02T00:00:00Z')",
        )
        .bind(coupon_id)
        .bind(id)
        .execute(harness.context.pool())
        .await
        .unwrap();
        let detail = harness.read_model.promotion(id).await.unwrap().unwrap();
        let promotion = &detail.promotion;
        assert!(promotion.is_active);
        assert_eq!(promotion.applicable_to, ApplicableTo::All);
        assert_eq!(promotion.value.to_string(), "5.00");
        assert_eq!(promotion.updated_at, promotion.created_at);
        assert_eq!(promotion.usage_count, 0);
        assert!(promotion.targets.is_empty());
        assert_eq!(detail.coupons[0].usage_count, 0);
        assert!(detail.coupons[0].is_active);
        // NULL is active, and `all`, to the filters too.
        let found = harness
            .read_model
            .promotions(
                PromotionFilter {
                    is_active: Some(true),
                    applicable_to: Some(ApplicableTo::All),
                    ..PromotionFilter::default()
                },
                Page::first(),
            )
            .await
            .unwrap();
        assert_eq!(found.items.len(), 1);
    }

    /// PostgreSQL-specific: the filters are plain predicates that the
    /// seed's indexes serve (with sequential scans off, as a big table
    /// would plan).
    #[tokio::test]
    async fn the_seed_indexes_serve_the_listing() {
        let harness = PostgresHarness::start().await;
        let pool = harness.context.pool();
        let mut connection = pool.acquire().await.unwrap();
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *connection)
            .await
            .unwrap();
        async fn plan(connection: &mut sqlx::PgConnection, sql: &str) -> String {
            let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(connection).await.unwrap();
            rows.join("\n")
        }
        let by_dates = plan(
            &mut connection,
            "EXPLAIN SELECT id FROM read_model.promotions p \
             WHERE p.starts_at <= '2025-03-10' AND p.ends_at > '2025-03-10' \
             ORDER BY p.starts_at DESC, p.ends_at DESC, p.id DESC LIMIT 101",
        )
        .await;
        assert!(by_dates.contains("idx_promotions_dates"), "{by_dates}");
        let by_type = plan(
            &mut connection,
            "EXPLAIN SELECT id FROM read_model.promotions p WHERE p.type = 'percentage'",
        )
        .await;
        assert!(by_type.contains("idx_promotions_type"), "{by_type}");
        let by_activity = plan(
            &mut connection,
            "EXPLAIN SELECT id FROM read_model.promotions p WHERE p.is_active = FALSE",
        )
        .await;
        assert!(
            by_activity.contains("idx_promotions_is_active"),
            "{by_activity}"
        );
    }
}
