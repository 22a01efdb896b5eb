//! Promotions and coupons (`read_model.promotions`, `coupons`,
//! `promotion_targets`, `promotion_usage`, `coupon_redemptions`, kept by the
//! `promotion-tables` projection) and their reads: `GET /v1/promotions` and
//! `GET /v1/promotions/{id}` for admins, and `GET /v1/coupons/{code}`, a
//! customer's check of a code, alone or against their own cart
//! ([`coupons`]).

pub mod coupons;
pub(crate) mod postgres;

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use domain::values::CouponCode;
use infrastructure::consistency::PROMOTION_TABLES;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use coupons::{
    check_coupon, CouponCheck, CouponOnCart, CouponParams, CouponTerms, NotApplying,
};
pub use postgres::PgPromotionsReadModel;

use crate::auth::Admin;
use crate::catalog::{page_of, Items, Listed, Page};
use crate::consistency::ReadAfter;
use crate::error::{ApiError, StoreError};
use crate::extract::{ApiPath, ApiQuery};
use crate::openapi::{Forbidden, NotFound};
use crate::startup::AppState;
use crate::BoxFuture;

/// The seed's `promotions.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromotionType {
    Percentage,
    FixedAmount,
    FreeShipping,
}

impl PromotionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Percentage => "percentage",
            Self::FixedAmount => "fixed_amount",
            Self::FreeShipping => "free_shipping",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Percentage, Self::FixedAmount, Self::FreeShipping]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// The seed's `promotions.applicable_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplicableTo {
    All,
    Categories,
    Products,
    Users,
}

impl ApplicableTo {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Categories => "categories",
            Self::Products => "products",
            Self::Users => "users",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::All, Self::Categories, Self::Products, Self::Users]
            .into_iter()
            .find(|to| to.as_str() == text)
    }
}

/// A promotion as an admin reads it: every column of the seed's
/// `promotions` row (money as two-decimal strings), its targets, the
/// promotion-wide use count and how many coupons redeem it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PromotionView {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: PromotionType,
    /// The percentage (`10.00` is 10%), the fixed amount off, or `0.00` for
    /// free shipping.
    pub value: Decimal,
    /// On the order's subtotal before any discount.
    pub minimum_amount: Option<Decimal>,
    /// The most the promotion takes off one order (a free shipping's too).
    pub maximum_discount: Option<Decimal>,
    /// Uses across all its coupons; compared with `usage_count`.
    pub usage_limit: Option<i32>,
    pub usage_limit_per_user: Option<i32>,
    pub starts_at: DateTime<Utc>,
    /// Exclusive: valid while `starts_at <= now < ends_at`.
    pub ends_at: DateTime<Utc>,
    pub is_active: bool,
    pub applicable_to: ApplicableTo,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The category, product or user ids of `applicable_to` (ascending);
    /// empty for `all`.
    pub targets: Vec<Uuid>,
    /// Orders using the promotion now (`promotion_usage`), through any of
    /// its coupons.
    pub usage_count: i32,
    /// Its coupons; `GET /v1/promotions/{id}` lists them.
    pub coupon_count: i64,
}

/// One coupon of a promotion, as the seed's `coupons` row has it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CouponView {
    pub id: Uuid,
    /// Upper-case: codes are case-insensitive.
    pub code: String,
    /// Orders this coupon redeemed (the coupon's own count).
    pub usage_count: i32,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

/// A promotion with its coupons (by `created_at`, then `code`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PromotionDetail {
    #[serde(flatten)]
    pub promotion: PromotionView,
    pub coupons: Vec<CouponView>,
}

/// A coupon found by its code, with its promotion and how many times the
/// reader redeemed that promotion (through any of its coupons).
#[derive(Debug, Clone, PartialEq)]
pub struct CouponRecord {
    pub coupon: CouponView,
    pub promotion: PromotionView,
    /// 0 for a guest: guests are not counted per person.
    pub user_redemptions: u32,
}

/// Filters of the admin's promotion listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromotionFilter {
    pub is_active: Option<bool>,
    pub kind: Option<PromotionType>,
    pub applicable_to: Option<ApplicableTo>,
    /// Only promotions with `starts_at <= valid_at < ends_at`.
    pub valid_at: Option<DateTime<Utc>>,
}

/// The listing's order: `starts_at` descending (the latest first), then
/// `ends_at` and `id` descending, which `idx_promotions_dates` serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionKey {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub id: Uuid,
}

/// Port: promotions and coupons as the projection left them.
pub trait PromotionsReadModel: Send + Sync {
    /// Promotions by `starts_at`, `ends_at`, `id`, all descending, a page
    /// at a time.
    fn promotions(
        &self,
        filter: PromotionFilter,
        page: Page<PromotionKey>,
    ) -> BoxFuture<'_, Result<Listed<PromotionView, PromotionKey>, StoreError>>;

    /// The promotion with its coupons, or `None`.
    fn promotion(&self, id: Uuid) -> BoxFuture<'_, Result<Option<PromotionDetail>, StoreError>>;

    /// The coupon of `code` with its promotion, and `user_id`'s redemptions
    /// of that promotion; `None` for an unknown code.
    fn coupon<'a>(
        &'a self,
        code: &'a CouponCode,
        user_id: Option<Uuid>,
    ) -> BoxFuture<'a, Result<Option<CouponRecord>, StoreError>>;

    /// The category of each of `product_ids` that the catalog read model
    /// has (`None`: a product without a category); unknown ids are left
    /// out.
    fn product_categories<'a>(
        &'a self,
        product_ids: &'a [Uuid],
    ) -> BoxFuture<'a, Result<BTreeMap<Uuid, Option<Uuid>>, StoreError>>;
}

/// The query string of `GET /v1/promotions`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PromotionParams {
    pub is_active: Option<bool>,
    #[serde(rename = "type")]
    #[param(inline)]
    pub kind: Option<PromotionType>,
    #[param(inline)]
    pub applicable_to: Option<ApplicableTo>,
    /// An RFC 3339 instant: only promotions valid then
    /// (`starts_at <= valid_at < ends_at`). Percent-encode a `+` offset.
    pub valid_at: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub after: Option<String>,
}

/// `GET /v1/promotions` (admin): by activity, type, target kind and
/// validity, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/promotions",
    tag = "promotions",
    operation_id = "list_promotions",
    summary = "List promotions",
    description = "The latest-starting first (`starts_at`, then `ends_at`, then `id`, all descending), a \
        page at a time. Each item is the seed's row with its targets, its promotion-wide `usage_count` and \
        its `coupon_count`; `GET /v1/promotions/{id}` lists the coupons.",
    security(("bearerAuth" = [])),
    params(PromotionParams),
    responses(
        (status = 200, description = "One page", body = Items<PromotionView>),
        (status = 403, response = Forbidden),
    ),
)]
#[tracing::instrument(name = "list_promotions", skip(state, _admin, params))]
pub async fn list_promotions(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(params): ApiQuery<PromotionParams>,
    read_after: ReadAfter,
) -> Result<Json<Items<PromotionView>>, ApiError> {
    let page = page_of(params.limit, params.after.as_deref())?;
    let filter = PromotionFilter {
        is_active: params.is_active,
        kind: params.kind,
        applicable_to: params.applicable_to,
        valid_at: params.valid_at,
    };
    state.read_after(read_after, &[PROMOTION_TABLES]).await?;
    let listed = state.promotions.promotions(filter, page).await?;
    tracing::debug!(count = listed.items.len(), "promotions listed");
    Ok(Json(Items::of(listed)))
}

/// `GET /v1/promotions/{id}` (admin)
#[utoipa::path(
    get,
    path = "/v1/promotions/{id}",
    tag = "promotions",
    operation_id = "get_promotion",
    summary = "One promotion, with its coupons",
    description = "The listing's item, with `coupons` (by `created_at`, then `code`).",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The promotion")),
    responses(
        (status = 200, description = "The promotion", body = PromotionDetail),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
#[tracing::instrument(name = "get_promotion", skip(state, _admin))]
pub async fn get_promotion(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    read_after: ReadAfter,
) -> Result<Json<PromotionDetail>, ApiError> {
    state.read_after(read_after, &[PROMOTION_TABLES]).await?;
    match state.promotions.promotion(id).await? {
        Some(promotion) => Ok(Json(promotion)),
        None => Err(ApiError::not_found(format!(
            "promotion {id} does not exist"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Result<PromotionParams, String> {
        let uri: axum::http::Uri = format!("/v1/promotions?{query}").parse().unwrap();
        axum::extract::Query::<PromotionParams>::try_from_uri(&uri)
            .map(|query| query.0)
            .map_err(|rejection| rejection.body_text())
    }

    #[test]
    fn the_filters_parse_by_their_seed_names_and_refuse_anything_else() {
        let parsed = params(
            "is_active=true&type=fixed_amount&applicable_to=categories&valid_at=2024-01-15T10:30:00Z",
        )
        .unwrap();
        assert_eq!(parsed.is_active, Some(true));
        assert_eq!(parsed.kind, Some(PromotionType::FixedAmount));
        assert_eq!(parsed.applicable_to, Some(ApplicableTo::Categories));
        assert_eq!(
            parsed.valid_at.unwrap().to_rfc3339(),
            "2024-01-15T10:30:00+00:00"
        );
        for bad in [
            "type=bogo",
            "applicable_to=everyone",
            "is_active=yes",
            "valid_at=tomorrow",
            "kind=percentage",
            "limit=-1",
        ] {
            assert!(params(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_seed_names_round_trip() {
        for kind in [
            PromotionType::Percentage,
            PromotionType::FixedAmount,
            PromotionType::FreeShipping,
        ] {
            assert_eq!(PromotionType::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        for to in [
            ApplicableTo::All,
            ApplicableTo::Categories,
            ApplicableTo::Products,
            ApplicableTo::Users,
        ] {
            assert_eq!(ApplicableTo::parse(to.as_str()), Some(to));
        }
        assert_eq!(PromotionType::parse("bogo"), None);
    }
}
