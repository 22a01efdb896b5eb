//! The statements of one promotion or coupon event: each either writes its
//! rows or says which row it waits for.
//!
//! `promotions.updated_at` moves with every promotion event's time, never
//! back. The use counters (`promotion_usage.usage_count`,
//! `coupons.usage_count`) are set to the count the event carries.

use chrono::{DateTime, Utc};
use domain::promotion::{CouponEvent, PromotionEvent, PromotionTerms, PromotionType};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Outcome;

/// The key the events waiting for `promotion`'s row park under: the one
/// `runtime::parking` gives the aggregate a creation makes.
pub(super) fn promotion_key(promotion: Uuid) -> String {
    format!("promotion:{promotion}")
}

/// The seed's `promotions.type`.
fn promotion_type(terms: &PromotionTerms) -> &'static str {
    match terms.kind.promotion_type() {
        PromotionType::Percentage => "percentage",
        PromotionType::FixedAmount => "fixed_amount",
        PromotionType::FreeShipping => "free_shipping",
    }
}

/// Binds the terms' columns, from `name` to `applicable_to`, less
/// `is_active`: name, description, type, value, minimum amount, maximum
/// discount, usage limit, usage limit per user, starts at, ends at,
/// applicable to. The limits are bound as they are (`u32`, which may exceed
/// the seed's INTEGER: the database then refuses the event, which can never
/// apply).
trait BindTerms<'q> {
    fn bind_terms(self, terms: &'q PromotionTerms) -> Self;
}

impl<'q> BindTerms<'q> for sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    fn bind_terms(self, terms: &'q PromotionTerms) -> Self {
        self.bind(terms.name.as_str())
            .bind(terms.description.as_deref())
            .bind(promotion_type(terms))
            .bind(terms.kind.value())
            .bind(terms.minimum_amount.map(|m| m.amount()))
            .bind(terms.maximum_discount.map(|m| m.amount()))
            .bind(terms.usage_limit.map(i64::from))
            .bind(terms.usage_limit_per_user.map(i64::from))
            .bind(terms.starts_at)
            .bind(terms.ends_at)
            .bind(terms.applicable_to.applicable_to().to_string())
    }
}

/// Makes the promotion's targets exactly the terms' ids (none for `all`).
async fn replace_targets(
    conn: &mut PgConnection,
    promotion_id: Uuid,
    terms: &PromotionTerms,
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = terms
        .applicable_to
        .ids()
        .map(|ids| ids.iter().copied().collect())
        .unwrap_or_default();
    sqlx::query("DELETE FROM promotion_targets WHERE promotion_id = $1 AND target_id <> ALL($2)")
        .bind(promotion_id)
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO promotion_targets (promotion_id, target_id) \
         SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING",
    )
    .bind(promotion_id)
    .bind(&ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the promotion's `updated_at` to `at`, unless it is later already.
async fn touch(
    conn: &mut PgConnection,
    promotion_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE promotions SET updated_at = GREATEST(updated_at, $2) WHERE id = $1")
        .bind(promotion_id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

async fn set_usage(
    conn: &mut PgConnection,
    promotion_id: Uuid,
    usage_count: u32,
    at: DateTime<Utc>,
) -> Result<Outcome, sqlx::Error> {
    sqlx::query("UPDATE promotion_usage SET usage_count = $2 WHERE promotion_id = $1")
        .bind(promotion_id)
        .bind(i64::from(usage_count))
        .execute(&mut *conn)
        .await?;
    touch(conn, promotion_id, at).await?;
    Ok(Outcome::Applied(vec![]))
}

async fn set_active(
    conn: &mut PgConnection,
    promotion_id: Uuid,
    active: bool,
    at: DateTime<Utc>,
) -> Result<Outcome, sqlx::Error> {
    sqlx::query(
        "UPDATE promotions SET is_active = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1",
    )
    .bind(promotion_id)
    .bind(active)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(Outcome::Applied(vec![]))
}

pub(super) async fn apply_promotion(
    conn: &mut PgConnection,
    event: PromotionEvent,
) -> Result<Outcome, sqlx::Error> {
    match event {
        PromotionEvent::PromotionCreated {
            promotion_id,
            terms,
            is_active,
            usage_count,
            created_at,
        } => {
            sqlx::query(
                "INSERT INTO promotions (id, name, description, type, value, minimum_amount, \
                 maximum_discount, usage_limit, usage_limit_per_user, starts_at, ends_at, \
                 applicable_to, is_active, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
            )
            .bind(promotion_id)
            .bind_terms(&terms)
            .bind(is_active)
            .bind(created_at)
            .execute(&mut *conn)
            .await?;
            replace_targets(conn, promotion_id, &terms).await?;
            sqlx::query("INSERT INTO promotion_usage (promotion_id, usage_count) VALUES ($1, $2)")
                .bind(promotion_id)
                .bind(i64::from(usage_count))
                .execute(&mut *conn)
                .await?;
            Ok(Outcome::Applied(vec![promotion_key(promotion_id)]))
        }
        PromotionEvent::PromotionUpdated {
            promotion_id,
            terms,
            updated_at,
        } => {
            sqlx::query(
                "UPDATE promotions SET name = $2, description = $3, type = $4, value = $5, \
                 minimum_amount = $6, maximum_discount = $7, usage_limit = $8, \
                 usage_limit_per_user = $9, starts_at = $10, ends_at = $11, applicable_to = $12, \
                 updated_at = GREATEST(updated_at, $13) WHERE id = $1",
            )
            .bind(promotion_id)
            .bind_terms(&terms)
            .bind(updated_at)
            .execute(&mut *conn)
            .await?;
            replace_targets(conn, promotion_id, &terms).await?;
            Ok(Outcome::Applied(vec![]))
        }
        PromotionEvent::PromotionActivated { promotion_id, at } => {
            set_active(conn, promotion_id, true, at).await
        }
        PromotionEvent::PromotionDeactivated { promotion_id, at } => {
            set_active(conn, promotion_id, false, at).await
        }
        PromotionEvent::PromotionUsageRecorded {
            promotion_id,
            usage_count,
            at,
            ..
        }
        | PromotionEvent::PromotionUsageReverted {
            promotion_id,
            usage_count,
            at,
            ..
        } => set_usage(conn, promotion_id, usage_count, at).await,
    }
}

async fn set_coupon_usage(
    conn: &mut PgConnection,
    coupon_id: Uuid,
    usage_count: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE coupons SET usage_count = $2 WHERE id = $1")
        .bind(coupon_id)
        .bind(i64::from(usage_count))
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn apply_coupon(
    conn: &mut PgConnection,
    event: CouponEvent,
) -> Result<Outcome, sqlx::Error> {
    match event {
        CouponEvent::CouponIssued {
            coupon_id,
            code,
            promotion_id,
            usage_count,
            is_active,
            created_at,
        } => {
            let present: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM promotions WHERE id = $1)")
                    .bind(promotion_id)
                    .fetch_one(&mut *conn)
                    .await?;
            if !present {
                return Ok(Outcome::Waiting(promotion_key(promotion_id)));
            }
            // `CouponCode` is upper-cased already: codes are case-insensitive.
            sqlx::query(
                "INSERT INTO coupons (id, code, promotion_id, usage_count, is_active, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(coupon_id)
            .bind(code.as_str())
            .bind(promotion_id)
            .bind(i64::from(usage_count))
            .bind(is_active)
            .bind(created_at)
            .execute(conn)
            .await?;
            // Nothing waits for a coupon's row but its own later events,
            // which queue behind its issue.
            Ok(Outcome::Applied(vec![]))
        }
        CouponEvent::CouponDeactivated { coupon_id, .. } => {
            // The seed's coupons have no `updated_at`.
            sqlx::query("UPDATE coupons SET is_active = FALSE WHERE id = $1")
                .bind(coupon_id)
                .execute(conn)
                .await?;
            Ok(Outcome::Applied(vec![]))
        }
        CouponEvent::CouponRedeemed {
            coupon_id,
            order_id,
            user_id,
            usage_count,
            redeemed_at,
            ..
        } => {
            set_coupon_usage(conn, coupon_id, usage_count).await?;
            sqlx::query(
                "INSERT INTO coupon_redemptions (coupon_id, order_id, user_id, redeemed_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (coupon_id, order_id) DO UPDATE \
                 SET user_id = EXCLUDED.user_id, redeemed_at = EXCLUDED.redeemed_at",
            )
            .bind(coupon_id)
            .bind(order_id)
            .bind(user_id)
            .bind(redeemed_at)
            .execute(conn)
            .await?;
            Ok(Outcome::Applied(vec![]))
        }
        CouponEvent::CouponRedemptionReverted {
            coupon_id,
            order_id,
            usage_count,
            ..
        } => {
            set_coupon_usage(conn, coupon_id, usage_count).await?;
            sqlx::query("DELETE FROM coupon_redemptions WHERE coupon_id = $1 AND order_id = $2")
                .bind(coupon_id)
                .bind(order_id)
                .execute(conn)
                .await?;
            Ok(Outcome::Applied(vec![]))
        }
    }
}
