//! Stock commands, under `/v1/inventory/{sku}`: one inventory stream per
//! stocked sku (a product's or a variant's), initialised with its product
//! or variant. An adjustment, the low-stock threshold and tracking; the
//! reservations are checkout's. A sku's `ETag` is its inventory stream's
//! version.

use axum::extract::State;
use axum::response::Response;
use domain::inventory::{inventory_stream_id, Inventory, InventoryCommand, StockAdjustmentReason};
use domain::values::Sku;
use serde::Deserialize;
use tracing::{instrument, Span};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::command::{execute, load_as, AppState, Plan};
use crate::error::ApiError;
use crate::openapi::{
    CommandHeaders, Conflict, Forbidden, NotFound, PreconditionFailed, RuleBroken,
};
use crate::request::{ApiPath, CommandBody, CommandContext, CommandRequest};

/// A sku in the path that cannot be one names no stock: 404, as for a sku
/// nobody stocks.
fn sku_of_path(raw: &str) -> Result<Sku, ApiError> {
    Sku::parse(raw).map_err(|_| ApiError::not_found("inventory", raw))
}

/// Decides `command` on the stock of `sku`, once the request's
/// preconditions hold for it. The receipt names the product (or the
/// variant) the stock belongs to.
async fn plan_stock(
    state: AppState,
    context: CommandContext,
    sku: Sku,
    command: InventoryCommand,
) -> Result<Plan, ApiError> {
    let stream_id = inventory_stream_id(&sku);
    let existing = load_as::<Inventory>(&state, &stream_id)
        .await?
        .filter(|loaded| loaded.version > 0);
    context
        .preconditions
        .check(existing.as_ref().map(|loaded| loaded.version))?;
    let inventory = existing.ok_or_else(|| ApiError::not_found("inventory", &sku))?;
    let events = inventory.decide(command, &()).await?;
    let owner = inventory
        .aggregate
        .variant_id()
        .unwrap_or(inventory.aggregate.product_id());
    Ok(Plan {
        id: owner,
        stream_id,
        location: None,
        appends: vec![inventory.append(&events)],
    })
}

/// The notes of an adjustment may span lines.
const ADJUSTMENT_MULTI_LINE: &[&str] = &["note"];

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustStockRequest {
    /// Added to the available stock (negative removes); not 0.
    pub delta: i32,
    #[schema(value_type = crate::openapi::StockAdjustmentReasonName)]
    pub reason: StockAdjustmentReason,
    pub note: Option<String>,
}

impl CommandBody for AdjustStockRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = ADJUSTMENT_MULTI_LINE;
}

#[utoipa::path(
    post,
    path = "/v1/inventory/{sku}/adjustments",
    tag = "inventory",
    operation_id = "adjust_stock",
    summary = "Adjust a sku's available stock",
    description = "A restock, a correction, damage, a return or another reason, with an optional note. The \
        available stock never goes below 0 (422 `insufficient-stock`), nor stock on hand above the limit (422 \
        `stock-limit-exceeded`); a `delta` of 0 is a 400.",
    security(("bearerAuth" = [])),
    params(("sku" = String, Path, description = "The product's or variant's sku"), CommandHeaders),
    request_body = AdjustStockRequest,
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(sku = %sku, delta = tracing::field::Empty))]
pub async fn adjust(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(sku): ApiPath<String>,
    request: CommandRequest<AdjustStockRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let sku = sku_of_path(&sku)?;
    Span::current().record("delta", body.delta);
    let command = InventoryCommand::AdjustStock {
        delta: body.delta,
        reason: body.reason,
        note: body.note,
        at: context.at,
    };
    execute(&state, &context, || {
        plan_stock(state.clone(), context.clone(), sku.clone(), command.clone())
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLowStockThresholdRequest {
    /// At least 0; at or below it the stock counts as low.
    pub threshold: i32,
}

impl CommandBody for SetLowStockThresholdRequest {}

#[utoipa::path(
    put,
    path = "/v1/inventory/{sku}/low-stock-threshold",
    tag = "inventory",
    operation_id = "set_low_stock_threshold",
    summary = "Set a sku's low-stock threshold",
    description = "The current threshold appends nothing. Raising it to or above the available stock raises \
        the low-stock alert, as a falling level would.",
    security(("bearerAuth" = [])),
    params(("sku" = String, Path, description = "The product's or variant's sku"), CommandHeaders),
    request_body = SetLowStockThresholdRequest,
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(sku = %sku, threshold = tracing::field::Empty))]
pub async fn set_low_stock_threshold(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(sku): ApiPath<String>,
    request: CommandRequest<SetLowStockThresholdRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let sku = sku_of_path(&sku)?;
    Span::current().record("threshold", body.threshold);
    let command = InventoryCommand::SetLowStockThreshold {
        threshold: body.threshold,
        at: context.at,
    };
    execute(&state, &context, || {
        plan_stock(state.clone(), context.clone(), sku.clone(), command.clone())
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTrackingRequest {
    /// Untracked stock is never refused to an order and never deducted.
    pub track_inventory: bool,
}

impl CommandBody for SetTrackingRequest {}

#[utoipa::path(
    put,
    path = "/v1/inventory/{sku}/tracking",
    tag = "inventory",
    operation_id = "set_inventory_tracking",
    summary = "Turn stock tracking on or off for a sku",
    description = "The current setting appends nothing. A hold taken while untracked gives back, on release, \
        exactly what it took.",
    security(("bearerAuth" = [])),
    params(("sku" = String, Path, description = "The product's or variant's sku"), CommandHeaders),
    request_body = SetTrackingRequest,
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(sku = %sku, track_inventory = tracing::field::Empty))]
pub async fn set_tracking(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(sku): ApiPath<String>,
    request: CommandRequest<SetTrackingRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let sku = sku_of_path(&sku)?;
    Span::current().record("track_inventory", body.track_inventory);
    let command = InventoryCommand::SetTrackInventory {
        track_inventory: body.track_inventory,
        at: context.at,
    };
    execute(&state, &context, || {
        plan_stock(state.clone(), context.clone(), sku.clone(), command.clone())
    })
    .await
}
