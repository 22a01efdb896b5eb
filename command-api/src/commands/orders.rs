//! An order's life after checkout: `PUT /v1/orders/{id}/status` moves it
//! along the seed's statuses (an admin's), and
//! `POST /v1/orders/{id}/cancellation` cancels it (its customer's while it
//! is pending or confirmed, an admin's until it ships). A cancellation gives
//! back, in the order's own append, exactly the stock it reserved, its
//! coupon redemption and its promotion uses, on the promotion's and the
//! customer's streams (`domain::order::cancel_order`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use domain::inventory::{inventory_stream_id, Inventory};
use domain::order::{cancel_order, Order, OrderNote, OrderStatus, TrackingNumber};
use domain::promotion::{customer_usage_stream_id, Coupon, CustomerUsage, Promotion};
use domain::values::Sku;
use infrastructure::event_store::aggregates::{load, Loaded};
use serde::Deserialize;
use tracing::instrument;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Admin, SignedIn, ADMIN_ROLE};
use crate::command::{execute, load_existing, AppState, Plan};
use crate::error::ApiError;
use crate::openapi::{
    CommandHeaders, Conflict, Forbidden, NotFound, PreconditionFailed, RuleBroken,
};
use crate::request::{ApiPath, CommandBody, CommandRequest};

/// The reason an admin's cancellation records when it gives none.
const ADMIN_CANCELLATION: &str = "Cancelled by the shop";

impl CommandBody for OrderStatusRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = &["reason"];
}

impl CommandBody for CancelOrderRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = &["reason"];
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderStatusRequest {
    /// `confirmed`, `processing`, `shipped`, `delivered` or `cancelled`.
    #[schema(value_type = crate::openapi::OrderStatusName)]
    pub status: OrderStatus,
    /// Required to ship: the carrier's tracking number.
    pub tracking_number: Option<String>,
    /// Why it was cancelled.
    pub reason: Option<String>,
}

#[utoipa::path(
    put,
    path = "/v1/orders/{id}/status",
    tag = "orders",
    operation_id = "change_order_status",
    summary = "Move an order along its statuses",
    description = "pending → confirmed → processing → shipped (with `tracking_number`) → delivered; \
        `cancelled` before it ships, giving back its stock, coupon and promotion uses. Any other move, \
        the current status included, is a 422 `invalid-status-transition` (`from`, `to`).",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The order"), CommandHeaders),
    request_body = OrderStatusRequest,
    responses(
        (status = 200, description = "Moved", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(order_id = %id))]
pub async fn change_status(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<OrderStatusRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let tracking_number = match (&body.status, &body.tracking_number) {
        (OrderStatus::Shipped, None) => {
            return Err(ApiError::invalid_field(
                "tracking_number",
                "required to ship",
            ))
        }
        (OrderStatus::Shipped, Some(raw)) => Some(
            TrackingNumber::parse(raw)
                .map_err(|error| ApiError::invalid_field("tracking_number", error))?,
        ),
        (_, Some(_)) => {
            return Err(ApiError::invalid_field(
                "tracking_number",
                "only for status shipped",
            ))
        }
        (_, None) => None,
    };
    let reason = match (&body.status, &body.reason) {
        (OrderStatus::Cancelled, reason) => Some(parse_reason(
            reason.as_deref().unwrap_or(ADMIN_CANCELLATION),
        )?),
        (_, Some(_)) => {
            return Err(ApiError::invalid_field(
                "reason",
                "only for status cancelled",
            ))
        }
        (_, None) => None,
    };
    execute(&state, &context, || {
        let (state, context) = (state.clone(), context.clone());
        let (tracking_number, reason) = (tracking_number.clone(), reason.clone());
        let status = body.status;
        async move {
            let order = load_existing::<Order>(&state, &context, "order", id).await?;
            let at = context.at;
            let current = order.aggregate.status();
            let events = match status {
                OrderStatus::Confirmed => order.aggregate.confirm(at)?,
                OrderStatus::Processing => order.aggregate.start_processing(at)?,
                OrderStatus::Shipped => order.aggregate.ship(
                    tracking_number.expect("checked: shipping has a tracking number"),
                    at,
                )?,
                OrderStatus::Delivered => order.aggregate.mark_delivered(at)?,
                OrderStatus::Cancelled => {
                    return plan_cancellation(
                        &state,
                        order,
                        reason.expect("checked: a cancellation has a reason"),
                        at,
                    )
                    .await
                }
                // No command sets these: `pending` is where an order starts,
                // `refunded` follows the refunds.
                OrderStatus::Pending | OrderStatus::Refunded => {
                    return Err(domain::order::OrderError::InvalidTransition {
                        from: current,
                        to: status,
                    }
                    .into())
                }
            };
            Ok(Plan::updated(id, vec![order.append(&events)]))
        }
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelOrderRequest {
    /// Why; 1 to 2000 characters.
    pub reason: String,
}

#[utoipa::path(
    post,
    path = "/v1/orders/{id}/cancellation",
    tag = "orders",
    operation_id = "cancel_order",
    summary = "Cancel an order",
    description = "Its customer may cancel while it is pending or confirmed (later, a 422 \
        `order-not-cancellable`); an admin until it ships. The stock it reserved, its coupon redemption and \
        its promotion uses are given back in the same append. Someone else's order is a 404.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The order"), CommandHeaders),
    request_body = CancelOrderRequest,
    responses(
        (status = 200, description = "Cancelled", body = crate::command::Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(order_id = %id))]
pub async fn cancel(
    State(state): State<AppState>,
    SignedIn(session, _): SignedIn,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<CancelOrderRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let reason = parse_reason(&body.reason)?;
    let is_admin = session.role == ADMIN_ROLE;
    execute(&state, &context, || {
        let (state, context, reason) = (state.clone(), context.clone(), reason.clone());
        let user_id = session.user_id;
        async move {
            let order = load_existing::<Order>(&state, &context, "order", id).await?;
            if !is_admin {
                if order.aggregate.user_id() != Some(user_id) {
                    return Err(ApiError::not_found("order", id));
                }
                let status = order.aggregate.status();
                if !matches!(status, OrderStatus::Pending | OrderStatus::Confirmed) {
                    return Err(ApiError::rule(
                        "order-not-cancellable",
                        "Order not cancellable",
                        format!(
                            "an order that is {status} can no longer be cancelled by its customer"
                        ),
                    )
                    .with("order_status", status));
                }
            }
            plan_cancellation(&state, order, reason, context.at).await
        }
    })
    .await
}

fn parse_reason(raw: &str) -> Result<OrderNote, ApiError> {
    OrderNote::parse(raw).map_err(|error| ApiError::invalid_field("reason", error))
}

/// The cancellation of `order` with everything it gives back, each stream
/// at the version read.
async fn plan_cancellation(
    state: &AppState,
    order: Loaded<Order>,
    reason: OrderNote,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Plan, ApiError> {
    let placed = &order.aggregate;
    let order_id = placed
        .order_id()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a loaded order without an id")))?;
    let mut inventories: BTreeMap<Sku, Loaded<Inventory>> = BTreeMap::new();
    for reservation in placed.reserved_stock() {
        let stream = inventory_stream_id(&reservation.sku);
        inventories.insert(
            reservation.sku.clone(),
            load::<Inventory>(&state.store, &state.upcasters, &stream).await?,
        );
    }
    let coupon = match placed.coupon() {
        Some(used) => {
            Some(load::<Coupon>(&state.store, &state.upcasters, &used.coupon_id.to_string()).await?)
        }
        None => None,
    };
    let mut promotions = BTreeMap::new();
    let mut usage = BTreeMap::new();
    for applied in placed.promotions() {
        let id = applied.promotion_id;
        promotions.insert(
            id,
            load::<Promotion>(&state.store, &state.upcasters, &id.to_string()).await?,
        );
        if let Some(user_id) = placed.user_id() {
            let stream = customer_usage_stream_id(id, user_id);
            usage.insert(
                id,
                load::<CustomerUsage>(&state.store, &state.upcasters, &stream).await?,
            );
        }
    }

    let cancellation = cancel_order(
        placed,
        &inventories
            .iter()
            .map(|(sku, loaded)| (sku.clone(), &loaded.aggregate))
            .collect(),
        coupon.as_ref().map(|loaded| &loaded.aggregate),
        &promotions
            .iter()
            .map(|(id, loaded)| (*id, &loaded.aggregate))
            .collect(),
        &usage
            .iter()
            .map(|(id, loaded)| (*id, &loaded.aggregate))
            .collect(),
        reason,
        at,
    )?;

    let mut appends = vec![order.append(&cancellation.order)];
    for (stream_id, events) in &cancellation.inventory {
        if let Some(loaded) = inventories.values().find(|l| &l.stream_id == stream_id) {
            appends.push(loaded.append(events));
        }
    }
    if let (Some((_, events)), Some(loaded)) = (&cancellation.coupon, &coupon) {
        appends.push(loaded.append(events));
    }
    for (promotion_id, events) in &cancellation.promotions {
        if let Some(loaded) = promotions.get(promotion_id) {
            appends.push(loaded.append(events));
        }
    }
    for (stream_id, events) in &cancellation.customer_usage {
        if let Some(loaded) = usage.values().find(|l| &l.stream_id == stream_id) {
            appends.push(loaded.append(events));
        }
    }
    Ok(Plan::updated(order_id, appends))
}
