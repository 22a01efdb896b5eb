//! `GET /v1/coupons/{code}`: whether a customer (a signed-in user or a
//! guest) can use a code, and with `cart_id` what it would take off their
//! own cart. The decision is the domain's: the coupon's promotion is rebuilt
//! from its rows (a `PromotionCreated` applied to a new `Promotion`, as the
//! command side folds one from its events) and handed to the pure engine,
//! `domain::promotion::eligibility` and `evaluate`, which checkout uses too.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::promotion::{
    eligibility, evaluate, Applicability, CouponOffer, EligibilityContext, Evaluation,
    EvaluationError, EvaluationInput, EvaluationLine, Ineligibility, Percentage, Promotion,
    PromotionEvent, PromotionKind, PromotionTerms,
};
use domain::values::{CouponCode, Money, Price};
use infrastructure::consistency::{
    ReadModel, CART_CACHE, CART_DOCUMENTS, CATALOG_TABLES, PROMOTION_TABLES,
};
use infrastructure::views::carts::CachedCart;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{ApplicableTo, CouponRecord, PromotionType, PromotionView};
use crate::auth::Viewer;
use crate::carts::requester;
use crate::consistency::ReadAfter;
use crate::error::{ApiError, InvalidParam};
use crate::extract::{ApiPath, ApiQuery};
use crate::openapi::NotFound;
use crate::products::X_CACHE;
use crate::startup::AppState;

/// The query string of `GET /v1/coupons/{code}`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CouponParams {
    /// One of your carts (read as `GET /v1/carts/{id}` reads it): the answer
    /// then says what the code takes off it. Anyone else's cart is a 404.
    pub cart_id: Option<Uuid>,
}

/// Why a code does not apply.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum NotApplying {
    /// The coupon or its promotion is deactivated.
    Inactive,
    /// The promotion starts later.
    NotStarted { starts_at: DateTime<Utc> },
    /// The promotion is over.
    Ended { ends_at: DateTime<Utc> },
    /// The promotion has been used `limit` times, through all its coupons.
    UsageLimitReached { limit: u32 },
    /// You have used the promotion `limit` times already.
    PerUserLimitReached { limit: u32 },
    /// The promotion is for other customers, or (with a cart) for none of
    /// the cart's products or categories.
    NotApplicable,
    /// The cart's subtotal (before any discount) is below the minimum.
    MinimumNotMet { minimum: Decimal, subtotal: Decimal },
}

impl From<Ineligibility> for NotApplying {
    fn from(reason: Ineligibility) -> Self {
        match reason {
            Ineligibility::Inactive => Self::Inactive,
            Ineligibility::NotStarted { starts_at } => Self::NotStarted { starts_at },
            Ineligibility::Ended { ends_at } => Self::Ended { ends_at },
            Ineligibility::UsageLimitReached { limit } => Self::UsageLimitReached { limit },
            Ineligibility::PerUserLimitReached { limit } => Self::PerUserLimitReached { limit },
            Ineligibility::NotApplicable => Self::NotApplicable,
            Ineligibility::MinimumNotMet { minimum, subtotal } => Self::MinimumNotMet {
                minimum: minimum.amount(),
                subtotal: subtotal.amount(),
            },
        }
    }
}

/// The promotion's public terms.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CouponTerms {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: PromotionType,
    /// The percentage (`10.00` is 10%), the amount off, or `0.00` for free
    /// shipping.
    pub value: Decimal,
    /// On the subtotal before any discount.
    pub minimum_amount: Option<Decimal>,
    /// The most it takes off one order.
    pub maximum_discount: Option<Decimal>,
    /// Exclusive.
    pub ends_at: DateTime<Utc>,
}

impl CouponTerms {
    fn of(promotion: &PromotionView) -> Self {
        Self {
            name: promotion.name.clone(),
            kind: promotion.kind,
            value: promotion.value,
            minimum_amount: promotion.minimum_amount,
            maximum_discount: promotion.maximum_discount,
            ends_at: promotion.ends_at,
        }
    }
}

/// The cart's figures with the coupon (or, when it does not apply, without
/// it), as checkout's engine computes them: `total_amount = subtotal -
/// discount_amount + shipping_amount + tax_amount`, shipping included (the
/// cart's own `estimated_total` leaves it out). VAT is 7% of the lines
/// after the discount; shipping is not taxed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CouponOnCart {
    pub cart_id: Uuid,
    /// The lines before any discount.
    pub subtotal: Decimal,
    /// Taken off the lines by the coupon.
    pub discount_amount: Decimal,
    /// The fee of the cart's shipping method (0.00 before one is chosen).
    pub shipping_fee: Decimal,
    /// Taken off the fee (free shipping).
    pub shipping_discount: Decimal,
    /// The fee after `shipping_discount`.
    pub shipping_amount: Decimal,
    pub tax_amount: Decimal,
    pub total_amount: Decimal,
}

impl CouponOnCart {
    fn of(cart_id: Uuid, evaluation: &Evaluation) -> Self {
        Self {
            cart_id,
            subtotal: evaluation.subtotal.amount(),
            discount_amount: evaluation.discount_amount.amount(),
            shipping_fee: evaluation.shipping_fee.amount(),
            shipping_discount: evaluation.shipping_discount.amount(),
            shipping_amount: evaluation.shipping_amount.amount(),
            tax_amount: evaluation.tax_amount.amount(),
            total_amount: evaluation.total_amount.amount(),
        }
    }
}

/// What `GET /v1/coupons/{code}` answers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CouponCheck {
    /// The code as stored (upper-case).
    pub code: String,
    /// Without `cart_id`: whether the code can be used now, by you (what
    /// depends on a cart's lines, the targeted products or categories and
    /// `minimum_amount`, is not checked). With `cart_id`: whether it applies
    /// to that cart.
    pub applies: bool,
    /// Why not, when `applies` is false; null otherwise.
    pub reason: Option<NotApplying>,
    pub promotion: CouponTerms,
    /// Only with `cart_id`.
    pub cart: Option<CouponOnCart>,
}

/// `GET /v1/coupons/{code}`
#[utoipa::path(
    get,
    path = "/v1/coupons/{code}",
    tag = "promotions",
    operation_id = "check_coupon",
    summary = "Check a coupon code",
    description = "Whether the code can be used now (the coupon and its promotion active, inside the \
        promotion's window, under its usage limit and under your own per-user limit), with the promotion's \
        public terms, and `reason` when it cannot. With `cart_id` (your own cart, the signed-in user's or, \
        without a session, the guest's of `X-Cart-Session`), whether it applies to that cart and the cart's \
        figures with it: the coupon alone, as checkout's engine applies it (automatic promotions are \
        checkout's). The code is case-insensitive. An unknown code, or a cart that is not yours, is a 404; a \
        code that does not apply is a 200 with `applies: false`.",
    security((), ("bearerAuth" = [])),
    params(
        ("code" = String, Path, description = "3 to 50 letters, digits, `-` or `_`, in any case"),
        CouponParams,
        ("X-Cart-Session" = Option<String>, Header,
            description = "A guest's cart session, for `cart_id`, as the command API answered it on the \
                guest's first cart write; ignored with a session. One the command API did not hand out is \
                a 400."),
    ),
    responses(
        (status = 200, description = "The check", body = CouponCheck,
            headers(("X-Cache" = String,
                description = "With `cart_id` only: where the cart was read, `hit` (Redis) or `miss` \
                    (MongoDB)"))),
        (status = 404, response = NotFound),
    ),
)]
#[tracing::instrument(name = "check_coupon", skip_all)]
pub async fn check_coupon(
    State(state): State<AppState>,
    viewer: Viewer,
    ApiPath(code): ApiPath<String>,
    ApiQuery(params): ApiQuery<CouponParams>,
    read_after: ReadAfter,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let code = CouponCode::parse(&code).map_err(|_| {
        ApiError::invalid_params(vec![InvalidParam::new(
            "code",
            "must be 3 to 50 letters, digits, '-' or '_'",
        )])
    })?;
    let user_id = match &viewer {
        Viewer::User(session) => Some(session.user_id),
        Viewer::Guest => None,
    };
    // Whose cart `cart_id` may be, decided before any store is read.
    let cart = match params.cart_id {
        None => None,
        Some(cart_id) => Some((cart_id, requester(&viewer, &headers)?)),
    };
    let read_models: &[ReadModel] = if cart.is_some() {
        &[PROMOTION_TABLES, CART_CACHE, CART_DOCUMENTS, CATALOG_TABLES]
    } else {
        &[PROMOTION_TABLES]
    };
    state.read_after(read_after, read_models).await?;
    let Some(record) = state.promotions.coupon(&code, user_id).await? else {
        return Err(ApiError::not_found(format!(
            "coupon {} does not exist",
            code.as_str()
        )));
    };
    let promotion = promotion_of(&record.promotion)?;
    let now = Utc::now();
    let check = |reason: Option<NotApplying>, cart: Option<CouponOnCart>| CouponCheck {
        code: code.as_str().to_owned(),
        applies: reason.is_none(),
        reason,
        promotion: CouponTerms::of(&record.promotion),
        cart,
    };

    let Some((cart_id, owner)) = cart else {
        let reason = usable_now(&record, &promotion, user_id, now).err();
        return Ok(Json(check(reason, None)).into_response());
    };
    let missing_cart = || ApiError::not_found(format!("cart {cart_id} does not exist"));
    let owner = owner.ok_or_else(missing_cart)?;
    let (cart, cache) = crate::carts::owned_cart(&state, &owner, cart_id)
        .await?
        .ok_or_else(missing_cart)?;
    let lines = lines_of(&state, &cart).await?;
    let shipping_fee = Money::new(cart.summary.shipping_fee.unwrap_or_default()).map_err(|_| {
        ApiError::Internal(anyhow::anyhow!(
            "cart {cart_id} holds an invalid shipping fee"
        ))
    })?;
    let user_redemptions = BTreeMap::from([(record.promotion.id, record.user_redemptions)]);
    let offer = CouponOffer {
        code: &code,
        promotion: &promotion,
    };
    let input = EvaluationInput {
        lines: &lines,
        shipping_fee,
        user_id,
        now,
        automatic: &[],
        coupon: record.coupon.is_active.then_some(offer),
        user_redemptions: &user_redemptions,
    };
    let out_of_range = |error: EvaluationError| {
        ApiError::Internal(anyhow::anyhow!(
            "cart {cart_id} cannot be evaluated: {error}"
        ))
    };
    let (reason, evaluation) = if !record.coupon.is_active {
        (Some(NotApplying::Inactive), evaluate(&input))
    } else {
        match evaluate(&input) {
            Ok(evaluation) => (None, Ok(evaluation)),
            Err(EvaluationError::CouponIneligible { reason, .. }) => (
                Some(reason.into()),
                // What the cart comes to without it.
                evaluate(&EvaluationInput {
                    coupon: None,
                    ..input.clone()
                }),
            ),
            Err(error) => (None, Err(error)),
        }
    };
    let evaluation = evaluation.map_err(out_of_range)?;
    let mut response =
        Json(check(reason, Some(CouponOnCart::of(cart_id, &evaluation)))).into_response();
    response
        .headers_mut()
        .insert(X_CACHE.clone(), HeaderValue::from_static(cache));
    Ok(response)
}

/// Without a cart: the coupon active, then the engine's own eligibility,
/// with what only a cart's lines can decide (targeted products or
/// categories, `minimum_amount`) left for the check with a cart.
fn usable_now(
    record: &CouponRecord,
    promotion: &Promotion,
    user_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), NotApplying> {
    if !record.coupon.is_active {
        return Err(NotApplying::Inactive);
    }
    let context = EligibilityContext {
        lines: &[],
        subtotal: Money::ZERO,
        user_id,
        now,
        user_redemptions: record.user_redemptions,
    };
    let line_targeted = promotion
        .terms()
        .is_some_and(|terms| terms.applicable_to.is_line_targeted());
    match eligibility(promotion, &context) {
        Ok(_) => Ok(()),
        Err(Ineligibility::NotApplicable) if line_targeted => Ok(()),
        Err(Ineligibility::MinimumNotMet { .. }) => Ok(()),
        Err(reason) => Err(reason.into()),
    }
}

/// The cart's lines as the engine sees them: product, its category in the
/// catalog read model (none when the product is not there), the line's
/// total; every line taxable, as the cart's own VAT estimate counts them.
async fn lines_of(state: &AppState, cart: &CachedCart) -> Result<Vec<EvaluationLine>, ApiError> {
    let product_ids: Vec<Uuid> = cart
        .items
        .iter()
        .map(|item| item.product_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let categories = state.promotions.product_categories(&product_ids).await?;
    cart.items
        .iter()
        .map(|item| {
            Ok(EvaluationLine {
                product_id: item.product_id,
                category_id: categories.get(&item.product_id).copied().flatten(),
                total_price: Money::new(item.total_price).map_err(|_| {
                    ApiError::Internal(anyhow::anyhow!(
                        "cart {} holds an invalid line total",
                        cart.cart_id
                    ))
                })?,
                taxable: true,
            })
        })
        .collect()
}

/// The promotion of `view`, as the domain knows it: its terms rebuilt from
/// the row, applied as the `PromotionCreated` of a new aggregate with the
/// row's activity and promotion-wide use count. A row the domain would
/// never have written (a percentage above 100, say) is a failure of the
/// read model.
fn promotion_of(view: &PromotionView) -> Result<Promotion, ApiError> {
    let invalid = |column: &str| {
        ApiError::Internal(anyhow::anyhow!(
            "promotion {} has an invalid {column} in the read model",
            view.id
        ))
    };
    let kind = match view.kind {
        PromotionType::Percentage => PromotionKind::Percentage {
            value: Percentage::new(view.value).map_err(|_| invalid("value"))?,
        },
        PromotionType::FixedAmount => PromotionKind::FixedAmount {
            value: Price::new(view.value).map_err(|_| invalid("value"))?,
        },
        PromotionType::FreeShipping => PromotionKind::FreeShipping,
    };
    let money = |amount: Option<Decimal>, column: &str| {
        amount
            .map(Money::new)
            .transpose()
            .map_err(|_| invalid(column))
    };
    let count = |count: Option<i32>, column: &str| {
        count
            .map(u32::try_from)
            .transpose()
            .map_err(|_| invalid(column))
    };
    let ids: BTreeSet<Uuid> = view.targets.iter().copied().collect();
    let applicable_to = match view.applicable_to {
        ApplicableTo::All => Applicability::All,
        ApplicableTo::Categories => Applicability::Categories { ids },
        ApplicableTo::Products => Applicability::Products { ids },
        ApplicableTo::Users => Applicability::Users { ids },
    };
    let terms = PromotionTerms {
        name: view.name.clone(),
        description: view.description.clone(),
        kind,
        minimum_amount: money(view.minimum_amount, "minimum_amount")?,
        maximum_discount: money(view.maximum_discount, "maximum_discount")?,
        usage_limit: count(view.usage_limit, "usage_limit")?,
        usage_limit_per_user: count(view.usage_limit_per_user, "usage_limit_per_user")?,
        starts_at: view.starts_at,
        ends_at: view.ends_at,
        applicable_to,
    };
    let mut promotion = Promotion::default();
    promotion.apply(PromotionEvent::PromotionCreated {
        promotion_id: view.id,
        terms,
        is_active: view.is_active,
        usage_count: count(Some(view.usage_count), "usage_count")?.unwrap_or_default(),
        created_at: view.created_at,
    });
    Ok(promotion)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promotions::CouponView;
    use chrono::TimeZone;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, day, 0, 0, 0).unwrap()
    }

    fn view() -> PromotionView {
        PromotionView {
            id: Uuid::from_u128(1),
            name: "New Year".into(),
            description: None,
            kind: PromotionType::Percentage,
            value: Decimal::new(1000, 2),
            minimum_amount: Some(Decimal::new(100_000, 2)),
            maximum_discount: Some(Decimal::new(50_000, 2)),
            usage_limit: Some(3),
            usage_limit_per_user: Some(1),
            starts_at: t(1),
            ends_at: t(31),
            is_active: true,
            applicable_to: ApplicableTo::All,
            created_at: t(1),
            updated_at: t(1),
            targets: vec![],
            usage_count: 0,
            coupon_count: 1,
        }
    }

    fn record(view: PromotionView, user_redemptions: u32) -> CouponRecord {
        CouponRecord {
            coupon: CouponView {
                id: Uuid::from_u128(2),
                code: "NEWYEAR".into(),
                usage_count: 0,
                is_active: true,
                created_at: t(1),
            },
            promotion: view,
            user_redemptions,
        }
    }

    fn usable(
        record: &CouponRecord,
        user: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> Result<(), NotApplying> {
        let promotion = promotion_of(&record.promotion).unwrap();
        usable_now(record, &promotion, user, at)
    }

    #[test]
    fn the_rows_rebuild_the_promotion_the_domain_knows() {
        let mut row = view();
        row.usage_count = 2;
        row.applicable_to = ApplicableTo::Categories;
        row.targets = vec![Uuid::from_u128(7)];
        let promotion = promotion_of(&row).unwrap();
        assert_eq!(promotion.promotion_id(), Some(row.id));
        assert!(promotion.is_active());
        assert_eq!(promotion.usage_count(), 2);
        let terms = promotion.terms().unwrap();
        assert_eq!(terms.kind.value(), Decimal::new(1000, 2));
        assert_eq!(
            terms.applicable_to,
            Applicability::Categories {
                ids: [Uuid::from_u128(7)].into()
            }
        );
        assert_eq!(terms.usage_limit, Some(3));

        let mut bad = view();
        bad.value = Decimal::new(15_000, 2);
        assert!(matches!(promotion_of(&bad), Err(ApiError::Internal(_))));
    }

    #[test]
    fn without_a_cart_only_what_does_not_depend_on_the_lines_is_checked() {
        let user = Some(Uuid::from_u128(9));
        // The minimum and the line targets wait for a cart.
        let mut targeted = view();
        targeted.applicable_to = ApplicableTo::Products;
        targeted.targets = vec![Uuid::from_u128(5)];
        assert_eq!(usable(&record(targeted, 0), user, t(10)), Ok(()));
        assert_eq!(usable(&record(view(), 0), None, t(10)), Ok(()));
        // The rest is decided now.
        assert_eq!(
            usable(&record(view(), 0), user, t(31)),
            Err(NotApplying::Ended { ends_at: t(31) })
        );
        let mut later = view();
        later.starts_at = t(20);
        assert_eq!(
            usable(&record(later, 0), user, t(10)),
            Err(NotApplying::NotStarted { starts_at: t(20) })
        );
        let mut used_up = view();
        used_up.usage_count = 3;
        assert_eq!(
            usable(&record(used_up, 0), user, t(10)),
            Err(NotApplying::UsageLimitReached { limit: 3 })
        );
        assert_eq!(
            usable(&record(view(), 1), user, t(10)),
            Err(NotApplying::PerUserLimitReached { limit: 1 })
        );
        let mut others = view();
        others.applicable_to = ApplicableTo::Users;
        others.targets = vec![Uuid::from_u128(8)];
        assert_eq!(
            usable(&record(others, 0), user, t(10)),
            Err(NotApplying::NotApplicable)
        );
        let mut paused = view();
        paused.is_active = false;
        assert_eq!(
            usable(&record(paused, 0), user, t(10)),
            Err(NotApplying::Inactive)
        );
        let mut withdrawn = record(view(), 0);
        withdrawn.coupon.is_active = false;
        assert_eq!(usable(&withdrawn, user, t(10)), Err(NotApplying::Inactive));
    }

    #[test]
    fn a_reason_is_tagged_by_its_code_with_money_as_strings() {
        let reason = NotApplying::from(Ineligibility::MinimumNotMet {
            minimum: Money::new(Decimal::new(8_000_000, 2)).unwrap(),
            subtotal: Money::new(Decimal::new(7_180_000, 2)).unwrap(),
        });
        assert_eq!(
            serde_json::to_value(reason).unwrap(),
            serde_json::json!({ "code": "minimum_not_met", "minimum": "80000.00", "subtotal": "71800.00" })
        );
        assert_eq!(
            serde_json::to_value(NotApplying::PerUserLimitReached { limit: 1 }).unwrap(),
            serde_json::json!({ "code": "per_user_limit_reached", "limit": 1 })
        );
    }
}
