//! Promotion fixtures: promotions and coupons in the shapes the query API
//! answers, written into the read-model tables as the `promotion-tables`
//! projection writes them.

use chrono::{DateTime, TimeZone, Utc};
use query_api::promotions::{ApplicableTo, CouponView, PromotionType, PromotionView};
use uuid::Uuid;

use super::{at, money, TestContext};

/// Far enough ahead for any test run.
pub fn far_future() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap()
}

/// 10% off everything, no conditions or limits, valid from 2024-01-01 to
/// 2099 (so valid now), active, unused and without coupons.
pub fn promotion(name: &str) -> PromotionView {
    PromotionView {
        id: Uuid::now_v7(),
        name: name.into(),
        description: Some(format!("{name}, for everyone")),
        kind: PromotionType::Percentage,
        value: money("10.00"),
        minimum_amount: None,
        maximum_discount: None,
        usage_limit: None,
        usage_limit_per_user: None,
        starts_at: at(1),
        ends_at: far_future(),
        is_active: true,
        applicable_to: ApplicableTo::All,
        created_at: at(1),
        updated_at: at(2),
        targets: vec![],
        usage_count: 0,
        coupon_count: 0,
    }
}

/// An active, unused coupon of `code` (upper-cased, as the projection
/// stores codes).
pub fn coupon(code: &str) -> CouponView {
    CouponView {
        id: Uuid::now_v7(),
        code: code.to_uppercase(),
        usage_count: 0,
        is_active: true,
        created_at: at(3),
    }
}

impl TestContext {
    /// The promotion's row, its targets and its use count (`coupon_count`
    /// is what `insert_coupon` adds).
    pub async fn insert_promotion(&self, promotion: &PromotionView) {
        sqlx::query(
            "INSERT INTO read_model.promotions (id, name, description, type, value, minimum_amount, \
             maximum_discount, usage_limit, usage_limit_per_user, starts_at, ends_at, is_active, \
             applicable_to, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(promotion.id)
        .bind(&promotion.name)
        .bind(&promotion.description)
        .bind(promotion.kind.as_str())
        .bind(promotion.value)
        .bind(promotion.minimum_amount)
        .bind(promotion.maximum_discount)
        .bind(promotion.usage_limit)
        .bind(promotion.usage_limit_per_user)
        .bind(promotion.starts_at)
        .bind(promotion.ends_at)
        .bind(promotion.is_active)
        .bind(promotion.applicable_to.as_str())
        .bind(promotion.created_at)
        .bind(promotion.updated_at)
        .execute(self.pool())
        .await
        .expect("insert promotion");
        // Last first: the read model, not the insertion, orders them.
        for target in promotion.targets.iter().rev() {
            sqlx::query(
                "INSERT INTO read_model.promotion_targets (promotion_id, target_id) VALUES ($1, $2)",
            )
            .bind(promotion.id)
            .bind(target)
            .execute(self.pool())
            .await
            .expect("insert promotion target");
        }
        if promotion.usage_count > 0 {
            sqlx::query(
                "INSERT INTO read_model.promotion_usage (promotion_id, usage_count) VALUES ($1, $2)",
            )
            .bind(promotion.id)
            .bind(promotion.usage_count)
            .execute(self.pool())
            .await
            .expect("insert promotion usage");
        }
    }

    pub async fn insert_coupon(&self, promotion_id: Uuid, coupon: &CouponView) {
        sqlx::query(
            "INSERT INTO read_model.coupons (id, code, promotion_id, usage_count, is_active, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(coupon.id)
        .bind(&coupon.code)
        .bind(promotion_id)
        .bind(coupon.usage_count)
        .bind(coupon.is_active)
        .bind(coupon.created_at)
        .execute(self.pool())
        .await
        .expect("insert coupon");
    }

    /// The promotion and one coupon of `code` for it; answers the
    /// promotion as the API reads it back (with its coupon counted).
    pub async fn insert_promotion_with_coupon(
        &self,
        promotion: &PromotionView,
        code: &str,
    ) -> (PromotionView, CouponView) {
        self.insert_promotion(promotion).await;
        let coupon = coupon(code);
        self.insert_coupon(promotion.id, &coupon).await;
        let mut promotion = promotion.clone();
        promotion.coupon_count += 1;
        (promotion, coupon)
    }

    /// One redemption of the coupon by an order of `user_id` (None: a guest).
    pub async fn insert_redemption(&self, coupon_id: Uuid, user_id: Option<Uuid>) {
        sqlx::query(
            "INSERT INTO read_model.coupon_redemptions (coupon_id, order_id, user_id, redeemed_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(coupon_id)
        .bind(Uuid::now_v7())
        .bind(user_id)
        .bind(at(4))
        .execute(self.pool())
        .await
        .expect("insert coupon redemption");
    }

    /// A catalog row for `product_id` in `category_id` (the category row
    /// is made too), as the coupon check reads a cart line's category.
    pub async fn insert_product_in_category(&self, product_id: Uuid, category_id: Option<Uuid>) {
        let mut product = super::product("Promo phone");
        product.id = product_id;
        if let Some(category_id) = category_id {
            let mut category = super::category("Promo phones", 1);
            category.id = category_id;
            self.insert_category(&category).await;
        }
        product.category_id = category_id;
        self.insert_product(&product).await;
    }
}
