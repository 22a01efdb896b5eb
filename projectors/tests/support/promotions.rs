//! Promotion and coupon events for the projector tests, appended the way the
//! command side appends them, and the promotion tables read back.

use std::collections::BTreeSet;

use domain::promotion::{
    Applicability, CouponEvent, Percentage, PromotionEvent, PromotionKind, PromotionTerms,
};
use domain::values::{CouponCode, Money, Price};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::users::at;
use super::Harness;

pub fn money(raw: &str) -> Money {
    Money::new(raw.parse().unwrap()).unwrap()
}

pub fn percent(raw: &str) -> PromotionKind {
    PromotionKind::Percentage {
        value: Percentage::new(raw.parse::<Decimal>().unwrap()).unwrap(),
    }
}

pub fn fixed(raw: &str) -> PromotionKind {
    PromotionKind::FixedAmount {
        value: Price::new(raw.parse::<Decimal>().unwrap()).unwrap(),
    }
}

pub fn categories(ids: &[Uuid]) -> Applicability {
    Applicability::Categories {
        ids: ids.iter().copied().collect::<BTreeSet<_>>(),
    }
}

pub fn products(ids: &[Uuid]) -> Applicability {
    Applicability::Products {
        ids: ids.iter().copied().collect::<BTreeSet<_>>(),
    }
}

/// Ten percent off everything, at least 500.00 spent, at most 200.00 off,
/// 100 uses, 2 per customer, through January 2026.
pub fn terms() -> PromotionTerms {
    PromotionTerms {
        name: "New year".into(),
        description: Some("Ten percent off".into()),
        kind: percent("10"),
        minimum_amount: Some(money("500")),
        maximum_discount: Some(money("200")),
        usage_limit: Some(100),
        usage_limit_per_user: Some(2),
        starts_at: at(0),
        ends_at: at(60 * 24 * 31),
        applicable_to: Applicability::All,
    }
}

pub fn created(promotion: Uuid, terms: PromotionTerms, when: i64) -> PromotionEvent {
    PromotionEvent::PromotionCreated {
        promotion_id: promotion,
        terms,
        is_active: true,
        usage_count: 0,
        created_at: at(when),
    }
}

pub fn updated(promotion: Uuid, terms: PromotionTerms, when: i64) -> PromotionEvent {
    PromotionEvent::PromotionUpdated {
        promotion_id: promotion,
        terms,
        updated_at: at(when),
    }
}

pub fn usage_recorded(
    promotion: Uuid,
    coupon: Option<Uuid>,
    order: Uuid,
    count: u32,
    when: i64,
) -> PromotionEvent {
    PromotionEvent::PromotionUsageRecorded {
        promotion_id: promotion,
        order_id: order,
        user_id: None,
        coupon_id: coupon,
        usage_count: count,
        at: at(when),
    }
}

pub fn usage_reverted(promotion: Uuid, order: Uuid, count: u32, when: i64) -> PromotionEvent {
    PromotionEvent::PromotionUsageReverted {
        promotion_id: promotion,
        order_id: order,
        usage_count: count,
        at: at(when),
    }
}

pub fn code(raw: &str) -> CouponCode {
    CouponCode::parse(raw).unwrap()
}

pub fn issued(coupon: Uuid, raw_code: &str, promotion: Uuid, when: i64) -> CouponEvent {
    CouponEvent::CouponIssued {
        coupon_id: coupon,
        code: code(raw_code),
        promotion_id: promotion,
        usage_count: 0,
        is_active: true,
        created_at: at(when),
    }
}

pub fn coupon_deactivated(coupon: Uuid, raw_code: &str, when: i64) -> CouponEvent {
    CouponEvent::CouponDeactivated {
        coupon_id: coupon,
        code: code(raw_code),
        at: at(when),
    }
}

/// One redemption, for `order` by `user`, bringing the coupon to `count`.
pub struct Redemption<'a> {
    pub coupon: Uuid,
    pub code: &'a str,
    pub promotion: Uuid,
    pub order: Uuid,
    pub user: Option<Uuid>,
    pub count: u32,
    pub when: i64,
}

impl Redemption<'_> {
    pub fn redeemed(&self) -> CouponEvent {
        CouponEvent::CouponRedeemed {
            coupon_id: self.coupon,
            code: code(self.code),
            promotion_id: self.promotion,
            order_id: self.order,
            user_id: self.user,
            usage_count: self.count,
            redeemed_at: at(self.when),
        }
    }

    pub fn reverted(&self) -> CouponEvent {
        CouponEvent::CouponRedemptionReverted {
            coupon_id: self.coupon,
            code: code(self.code),
            promotion_id: self.promotion,
            order_id: self.order,
            user_id: self.user,
            usage_count: self.count,
            reverted_at: at(self.when),
        }
    }
}

impl Harness {
    pub async fn append_promotion(
        &self,
        promotion: Uuid,
        expected: i64,
        events: &[PromotionEvent],
    ) {
        self.append("promotion", &promotion.to_string(), expected, events)
            .await;
    }

    pub async fn append_coupon(&self, coupon: Uuid, expected: i64, events: &[CouponEvent]) {
        self.append("coupon", &coupon.to_string(), expected, events)
            .await;
    }

    /// Creates `promotions` promotions, each with a coupon redeemed for two
    /// orders, one of them reverted, and the promotion's use counted the same
    /// way; returns (promotion, coupon) ids.
    pub async fn seed_promotions(&self, promotions: usize) -> Vec<(Uuid, Uuid)> {
        let mut ids = Vec::new();
        for n in 0..promotions {
            let (promotion, coupon) = (Uuid::now_v7(), Uuid::now_v7());
            let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
            let coupon_code = format!("SEED-{}", &coupon.simple().to_string()[20..]);
            let terms = PromotionTerms {
                name: format!("Seeded {n}"),
                applicable_to: products(&[Uuid::now_v7(), Uuid::now_v7()]),
                ..terms()
            };
            self.append_promotion(
                promotion,
                0,
                &[
                    created(promotion, terms, 0),
                    usage_recorded(promotion, Some(coupon), first, 1, 2),
                    usage_recorded(promotion, Some(coupon), second, 2, 3),
                    usage_reverted(promotion, first, 1, 4),
                ],
            )
            .await;
            let redemption = |order, count, when| Redemption {
                coupon,
                code: &coupon_code,
                promotion,
                order,
                user: Some(Uuid::from_u128(n as u128 + 1)),
                count,
                when,
            };
            self.append_coupon(
                coupon,
                0,
                &[
                    issued(coupon, &coupon_code, promotion, 1),
                    redemption(first, 1, 2).redeemed(),
                    redemption(second, 2, 3).redeemed(),
                    redemption(first, 1, 4).reverted(),
                ],
            )
            .await;
            ids.push((promotion, coupon));
        }
        ids
    }
}

/// Rows of the promotion tables as JSON, in a stable order, for comparing
/// two read models.
pub async fn dump_promotions(pool: &sqlx::PgPool) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for (table, order) in [
        ("promotions", "id"),
        ("coupons", "id"),
        ("promotion_targets", "promotion_id, target_id"),
        ("promotion_usage", "promotion_id"),
        ("coupon_redemptions", "coupon_id, order_id"),
    ] {
        let json: Vec<serde_json::Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t) FROM read_model.{table} t ORDER BY {order}"
        ))
        .fetch_all(pool)
        .await
        .expect("dump table");
        rows.push(serde_json::json!({ table: json }));
    }
    rows
}
