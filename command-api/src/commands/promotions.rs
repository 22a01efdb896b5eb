//! Promotions and their coupons, an admin's alone:
//! `POST /v1/promotions` and `PUT /v1/promotions/{id}` (the terms as a
//! whole), `PUT /v1/promotions/{id}/active`, `POST /v1/promotions/{id}/coupons`
//! (claims the code) and `POST /v1/coupons/{id}/deactivation`.
//!
//! Targets are checked against the event store: a promotion for a category,
//! product or user that does not exist is refused (422), because it could
//! never apply.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use domain::promotion::{
    issue_coupon, Applicability, ApplicableTo, Coupon, Percentage, Promotion, PromotionKind,
    PromotionTerms, PromotionType,
};
use domain::uniqueness::UniqueScope;
use domain::values::{CouponCode, Price};
use serde::Deserialize;
use tracing::{instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Admin;
use crate::command::{
    execute, key_appends, load_existing, load_key, load_new, require_reference, AppState, Plan,
};
use crate::error::ApiError;
use crate::input::{self, Amount, Fields};
use crate::openapi::{
    CommandHeaders, Conflict, Forbidden, NotFound, PreconditionFailed, RuleBroken,
};
use crate::request::{ApiPath, CommandBody, CommandContext, CommandRequest};

/// The most targets one promotion may list: each is checked on every write.
const MAX_TARGETS: usize = 1000;

const PROMOTION_MULTI_LINE: &[&str] = &["description"];

impl CommandBody for CreatePromotionRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = PROMOTION_MULTI_LINE;
}

impl CommandBody for PromotionTermsRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = PROMOTION_MULTI_LINE;
}

impl CommandBody for PromotionActiveRequest {}

impl CommandBody for IssueCouponRequest {}

/// A promotion's terms, as the seed's `promotions` columns name them.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionTermsRequest {
    pub name: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    #[schema(value_type = crate::openapi::PromotionTypeName)]
    pub promotion_type: PromotionType,
    /// The percentage (above 0, at most 100) or the fixed amount in THB;
    /// absent (or 0) for free shipping.
    pub value: Option<Amount>,
    /// On the order's subtotal before any discount.
    pub minimum_amount: Option<Amount>,
    /// The most one order gets off.
    pub maximum_discount: Option<Amount>,
    /// Uses across all coupons; absent for no limit.
    #[schema(minimum = 1)]
    pub usage_limit: Option<u32>,
    #[schema(minimum = 1)]
    pub usage_limit_per_user: Option<u32>,
    pub starts_at: DateTime<Utc>,
    /// Exclusive: the promotion holds while `starts_at <= now < ends_at`.
    pub ends_at: DateTime<Utc>,
    /// `all` when absent.
    #[schema(value_type = Option<crate::openapi::ApplicableToName>)]
    pub applicable_to: Option<ApplicableTo>,
    /// The categories, products or users it is limited to; empty for `all`.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub applicable_ids: Vec<Uuid>,
}

impl PromotionTermsRequest {
    fn into_terms(self) -> Result<PromotionTerms, ApiError> {
        let mut fields = Fields::new();
        let kind = fields.check("value", kind(self.promotion_type, self.value));
        let minimum_amount = fields.check_opt("minimum_amount", self.minimum_amount, input::money);
        let maximum_discount =
            fields.check_opt("maximum_discount", self.maximum_discount, input::money);
        let applicable_to = fields.check(
            "applicable_ids",
            applicability(
                self.applicable_to.unwrap_or(ApplicableTo::All),
                self.applicable_ids,
            ),
        );
        fields.finish()?;
        Ok(PromotionTerms {
            name: self.name,
            description: self.description,
            kind: input::checked(kind)?,
            minimum_amount: input::checked(minimum_amount)?,
            maximum_discount: input::checked(maximum_discount)?,
            usage_limit: self.usage_limit,
            usage_limit_per_user: self.usage_limit_per_user,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            applicable_to: input::checked(applicable_to)?,
        })
    }
}

fn kind(promotion_type: PromotionType, value: Option<Amount>) -> Result<PromotionKind, String> {
    match (promotion_type, value) {
        (PromotionType::FreeShipping, None) => Ok(PromotionKind::FreeShipping),
        (PromotionType::FreeShipping, Some(Amount(value))) if value.is_zero() => {
            Ok(PromotionKind::FreeShipping)
        }
        (PromotionType::FreeShipping, Some(_)) => {
            Err("a free-shipping promotion has no value".to_owned())
        }
        (_, None) => Err("required for this type".to_owned()),
        (PromotionType::Percentage, Some(Amount(value))) => Percentage::new(value)
            .map(|value| PromotionKind::Percentage { value })
            .map_err(|error| error.to_string()),
        (PromotionType::FixedAmount, Some(Amount(value))) => Price::new(value)
            .map(|value| PromotionKind::FixedAmount { value })
            .map_err(|error| error.to_string()),
    }
}

fn applicability(to: ApplicableTo, ids: Vec<Uuid>) -> Result<Applicability, String> {
    if ids.len() > MAX_TARGETS {
        return Err(format!("at most {MAX_TARGETS} ids"));
    }
    let ids: BTreeSet<Uuid> = ids.into_iter().collect();
    match to {
        ApplicableTo::All if ids.is_empty() => Ok(Applicability::All),
        ApplicableTo::All => Err("must be empty when applicable_to is all".to_owned()),
        _ if ids.is_empty() => Err(format!("list at least one id for applicable_to {to}")),
        ApplicableTo::Categories => Ok(Applicability::Categories { ids }),
        ApplicableTo::Products => Ok(Applicability::Products { ids }),
        ApplicableTo::Users => Ok(Applicability::Users { ids }),
    }
}

/// 422 unless every target exists, as an aggregate of the kind it names.
async fn require_targets(state: &AppState, applicability: &Applicability) -> Result<(), ApiError> {
    let (aggregate_type, resource) = match applicability {
        Applicability::All => return Ok(()),
        Applicability::Categories { .. } => ("category", "category"),
        Applicability::Products { .. } => ("product", "product"),
        Applicability::Users { .. } => ("user", "user"),
    };
    let wanted: Vec<Uuid> = applicability.ids().into_iter().flatten().copied().collect();
    let streams: Vec<String> = wanted.iter().map(Uuid::to_string).collect();
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT stream_id FROM event_store.streams \
         WHERE stream_id = ANY($1) AND aggregate_type = $2 AND version > 0",
    )
    .bind(&streams)
    .bind(aggregate_type)
    .fetch_all(state.store.pool())
    .await?;
    let found: BTreeSet<String> = found.into_iter().collect();
    match wanted
        .into_iter()
        .find(|id| !found.contains(&id.to_string()))
    {
        None => Ok(()),
        Some(missing) => Err(ApiError::missing_reference(
            "applicable_ids",
            resource,
            missing,
        )),
    }
}

/// The terms with the new promotion's id and state. The fields are
/// spelled out rather than flattened: serde cannot refuse unknown fields
/// through a flattened struct.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePromotionRequest {
    /// Client-chosen id; a new UUID v7 when absent.
    pub promotion_id: Option<Uuid>,
    /// `true` when absent.
    pub is_active: Option<bool>,
    pub name: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    #[schema(value_type = crate::openapi::PromotionTypeName)]
    pub promotion_type: PromotionType,
    /// The percentage (above 0, at most 100) or the fixed amount in THB;
    /// absent (or 0) for free shipping.
    pub value: Option<Amount>,
    pub minimum_amount: Option<Amount>,
    pub maximum_discount: Option<Amount>,
    #[schema(minimum = 1)]
    pub usage_limit: Option<u32>,
    #[schema(minimum = 1)]
    pub usage_limit_per_user: Option<u32>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[schema(value_type = Option<crate::openapi::ApplicableToName>)]
    pub applicable_to: Option<ApplicableTo>,
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub applicable_ids: Vec<Uuid>,
}

impl CreatePromotionRequest {
    fn terms(self) -> PromotionTermsRequest {
        PromotionTermsRequest {
            name: self.name,
            description: self.description,
            promotion_type: self.promotion_type,
            value: self.value,
            minimum_amount: self.minimum_amount,
            maximum_discount: self.maximum_discount,
            usage_limit: self.usage_limit,
            usage_limit_per_user: self.usage_limit_per_user,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            applicable_to: self.applicable_to,
            applicable_ids: self.applicable_ids,
        }
    }
}

#[utoipa::path(
    post,
    path = "/v1/promotions",
    tag = "promotions",
    operation_id = "create_promotion",
    summary = "Create a promotion",
    description = "Active unless `is_active` is false. Its targets must exist (422 `missing-reference`).",
    security(("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = CreatePromotionRequest,
    responses(
        (status = 201, description = "Created", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(promotion_id = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    request: CommandRequest<CreatePromotionRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let id = body.promotion_id.unwrap_or_else(Uuid::now_v7);
    let is_active = body.is_active.unwrap_or(true);
    let terms = body.terms().into_terms()?;
    Span::current().record("promotion_id", tracing::field::display(id));
    require_targets(&state, &terms.applicable_to).await?;
    execute(&state, &context, || {
        plan_create(state.clone(), context.clone(), id, terms.clone(), is_active)
    })
    .await
}

async fn plan_create(
    state: AppState,
    context: CommandContext,
    id: Uuid,
    terms: PromotionTerms,
    is_active: bool,
) -> Result<Plan, ApiError> {
    let loaded = load_new::<Promotion>(&state, &context, "promotion", id).await?;
    let mut promotion = loaded.aggregate.clone();
    let mut events = promotion.create(id, terms, context.at)?;
    if !is_active {
        for event in &events {
            cqrs_es::Aggregate::apply(&mut promotion, event.clone());
        }
        events.extend(promotion.deactivate(context.at)?);
    }
    Ok(Plan::created(
        "promotions",
        id,
        vec![loaded.append(&events)],
    ))
}

#[utoipa::path(
    put,
    path = "/v1/promotions/{id}",
    tag = "promotions",
    operation_id = "update_promotion",
    summary = "Replace a promotion's terms",
    description = "The terms as a whole; unchanged terms append nothing. A `usage_limit` below the uses \
        already made is a 422.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The promotion"), CommandHeaders),
    request_body = PromotionTermsRequest,
    responses(
        (status = 200, description = "Updated", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(promotion_id = %id))]
pub async fn update(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<PromotionTermsRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let terms = body.into_terms()?;
    require_targets(&state, &terms.applicable_to).await?;
    execute(&state, &context, || {
        let (state, context, terms) = (state.clone(), context.clone(), terms.clone());
        async move {
            let loaded = load_existing::<Promotion>(&state, &context, "promotion", id).await?;
            let events = loaded.aggregate.update(terms, context.at)?;
            Ok(Plan::updated(id, vec![loaded.append(&events)]))
        }
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionActiveRequest {
    pub is_active: bool,
}

#[utoipa::path(
    put,
    path = "/v1/promotions/{id}/active",
    tag = "promotions",
    operation_id = "set_promotion_active",
    summary = "Activate or deactivate a promotion",
    description = "Its coupons follow: a coupon of an inactive promotion cannot be redeemed.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The promotion"), CommandHeaders),
    request_body = PromotionActiveRequest,
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(promotion_id = %id))]
pub async fn set_active(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<PromotionActiveRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    execute(&state, &context, || {
        let (state, context) = (state.clone(), context.clone());
        async move {
            let loaded = load_existing::<Promotion>(&state, &context, "promotion", id).await?;
            let events = if body.is_active {
                loaded.aggregate.activate(context.at)?
            } else {
                loaded.aggregate.deactivate(context.at)?
            };
            Ok(Plan::updated(id, vec![loaded.append(&events)]))
        }
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueCouponRequest {
    /// Client-chosen id; a new UUID v7 when absent.
    pub coupon_id: Option<Uuid>,
    /// 3 to 50 letters, digits, `-` or `_`; stored upper-cased, and unique
    /// whatever the case.
    #[schema(pattern = r"^\s*[A-Za-z0-9_-]{3,50}\s*$")]
    pub code: String,
}

#[utoipa::path(
    post,
    path = "/v1/promotions/{id}/coupons",
    tag = "promotions",
    operation_id = "issue_coupon",
    summary = "Issue a coupon for a promotion",
    description = "Claims the code (422 `coupon-code-taken`). The answer's id is the coupon's.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The promotion"), CommandHeaders),
    request_body = IssueCouponRequest,
    responses(
        (status = 201, description = "Issued", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(promotion_id = %promotion_id, coupon_id = tracing::field::Empty))]
pub async fn issue(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(promotion_id): ApiPath<Uuid>,
    request: CommandRequest<IssueCouponRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let code =
        CouponCode::parse(&body.code).map_err(|error| ApiError::invalid_field("code", error))?;
    let coupon_id = body.coupon_id.unwrap_or_else(Uuid::now_v7);
    Span::current().record("coupon_id", tracing::field::display(coupon_id));
    execute(&state, &context, || {
        let (state, context, code) = (state.clone(), context.clone(), code.clone());
        async move {
            let promotion = match require_reference::<Promotion>(
                &state,
                "promotion_id",
                "promotion",
                promotion_id,
            )
            .await
            {
                Ok(promotion) => promotion,
                // The promotion is the resource the path names.
                Err(_) => return Err(ApiError::not_found("promotion", promotion_id)),
            };
            let coupon = load_new::<Coupon>(&state, &context, "coupon", coupon_id).await?;
            let code_key = load_key(&state, UniqueScope::CouponCode, code.as_str()).await?;
            let issued = issue_coupon(
                &coupon.aggregate,
                &code_key.aggregate,
                &promotion.aggregate,
                coupon_id,
                code,
                context.at,
            )?;
            let key_events: Vec<_> = issued
                .unique_key
                .iter()
                .map(|event| (issued.unique_key_stream_id.clone(), event.clone()))
                .collect();
            let mut appends = vec![coupon.append(&issued.coupon)];
            appends.extend(key_appends(&[&code_key], &key_events)?);
            let mut plan = Plan::created("coupons", coupon_id, appends);
            // Coupons are read by code.
            plan.location = Some(format!("/v1/promotions/{promotion_id}"));
            Ok(plan)
        }
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/coupons/{id}/deactivation",
    tag = "promotions",
    operation_id = "deactivate_coupon",
    summary = "Deactivate a coupon",
    description = "For good: its code stays claimed, and orders that redeemed it keep their discount. \
        Deactivating it again appends nothing.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The coupon"), CommandHeaders),
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(coupon_id = %id))]
pub async fn deactivate_coupon(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    context: CommandContext,
) -> Result<Response, ApiError> {
    execute(&state, &context, || {
        let (state, context) = (state.clone(), context.clone());
        async move {
            let loaded = load_existing::<Coupon>(&state, &context, "coupon", id).await?;
            let events = loaded.aggregate.deactivate(context.at)?;
            Ok(Plan::updated(id, vec![loaded.append(&events)]))
        }
    })
    .await
}
