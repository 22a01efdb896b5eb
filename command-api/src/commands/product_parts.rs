//! The rows a product owns, each a sub-resource of `/v1/products/{id}`:
//! images (add, remove, make primary, reorder), attributes (set by name,
//! remove) and variants (add with their own sku claim and inventory
//! stream, update, activate or deactivate). Every one of them is a command
//! on the product's stream, so a product's `ETag` covers its rows.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use domain::catalog::decisions;
use domain::catalog::{AddProductVariant, Product, ProductCommand};
use domain::inventory::{inventory_stream_id, Inventory, InventoryCommand};
use domain::uniqueness::UniqueScope;
use domain::values::Sku;
use infrastructure::event_store::aggregates::load;
use serde::Deserialize;
use tracing::{instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Admin;
use crate::command::{execute, key_appends, load_existing, load_key, AppState, Plan};
use crate::error::ApiError;
use crate::input::{self, checked, patch, Amount, Fields, Patch};
use crate::openapi::{
    CommandHeaders, Conflict, Forbidden, NotFound, PreconditionFailed, RuleBroken,
};
use crate::request::{ApiPath, CommandBody, CommandContext, CommandRequest};

/// A plan that created the row `row_id` under `/v1/products/{product_id}/{rows}`:
/// 201 with the row's `Location`, the receipt naming the row and carrying
/// the product stream's version.
fn created_row(product_id: Uuid, rows: &str, row_id: Uuid, plan: Plan) -> Plan {
    Plan {
        id: row_id,
        stream_id: product_id.to_string(),
        location: Some(format!("/v1/products/{product_id}/{rows}/{row_id}")),
        appends: plan.appends,
    }
}

/// A command on the product's stream alone, decided against its state:
/// `command` sees the loaded product, so a default can depend on it.
async fn plan_on_product(
    state: AppState,
    context: CommandContext,
    product_id: Uuid,
    command: impl FnOnce(&Product) -> Result<ProductCommand, ApiError>,
) -> Result<Plan, ApiError> {
    let product = load_existing::<Product>(&state, &context, "product", product_id).await?;
    let command = command(&product.aggregate)?;
    let events = product.aggregate.decide(command)?;
    Ok(Plan::updated(product_id, vec![product.append(&events)]))
}

/// The next free `sort_order` after `orders`: new rows go last.
fn next_sort_order(orders: impl Iterator<Item = i32>) -> i32 {
    orders.max().map_or(0, |max| max.saturating_add(1))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddImageRequest {
    /// Client-chosen id; a new UUID v7 when absent.
    pub image_id: Option<Uuid>,
    /// An `http` or `https` URL, at most 500 characters.
    #[schema(pattern = r"^\s*https?://[^/\s]\S*\s*$", max_length = 500)]
    pub url: String,
    pub alt_text: Option<String>,
    /// After the last image when absent.
    pub sort_order: Option<i32>,
}

impl CommandBody for AddImageRequest {}

#[utoipa::path(
    post,
    path = "/v1/products/{id}/images",
    tag = "catalog",
    operation_id = "add_product_image",
    summary = "Add an image to a product",
    description = "The product's first image becomes its primary one. The receipt's `id` is the image's; its \
        `version` (and the `ETag`) the product's.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The product"), CommandHeaders),
    request_body = AddImageRequest,
    responses(
        (status = 201, description = "Added", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id, image_id = tracing::field::Empty))]
pub async fn add_image(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<AddImageRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let mut fields = Fields::new();
    let url = fields.check("url", input::url(body.url));
    fields.finish()?;
    let url = checked(url)?;
    let image_id = body.image_id.unwrap_or_else(Uuid::now_v7);
    Span::current().record("image_id", tracing::field::display(image_id));
    let (alt_text, sort_order, at) = (body.alt_text, body.sort_order, context.at);
    execute(&state, &context, || {
        let (url, alt_text) = (url.clone(), alt_text.clone());
        let plan = plan_on_product(state.clone(), context.clone(), id, move |product| {
            Ok(ProductCommand::AddProductImage {
                image_id,
                url,
                alt_text,
                sort_order: sort_order.unwrap_or_else(|| {
                    next_sort_order(product.images().iter().map(|i| i.sort_order))
                }),
                at,
            })
        });
        async move { Ok(created_row(id, "images", image_id, plan.await?)) }
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/v1/products/{id}/images/{image_id}",
    tag = "catalog",
    operation_id = "remove_product_image",
    summary = "Remove an image",
    description = "When the primary image goes, the next one by sort order becomes primary.",
    security(("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The product"),
        ("image_id" = Uuid, Path, description = "The image"),
        CommandHeaders,
    ),
    responses(
        (status = 200, description = "Removed", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id, image_id = %image_id))]
pub async fn remove_image(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath((id, image_id)): ApiPath<(Uuid, Uuid)>,
    context: CommandContext,
) -> Result<Response, ApiError> {
    let at = context.at;
    execute(&state, &context, || {
        plan_on_product(state.clone(), context.clone(), id, move |_| {
            Ok(ProductCommand::RemoveProductImage { image_id, at })
        })
    })
    .await
}

#[utoipa::path(
    put,
    path = "/v1/products/{id}/images/{image_id}/primary",
    tag = "catalog",
    operation_id = "set_primary_product_image",
    summary = "Make an image the primary one",
    description = "The image that is primary already is a 422 `image-already-primary`.",
    security(("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The product"),
        ("image_id" = Uuid, Path, description = "The image"),
        CommandHeaders,
    ),
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id, image_id = %image_id))]
pub async fn set_primary_image(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath((id, image_id)): ApiPath<(Uuid, Uuid)>,
    context: CommandContext,
) -> Result<Response, ApiError> {
    let at = context.at;
    execute(&state, &context, || {
        plan_on_product(state.clone(), context.clone(), id, move |_| {
            Ok(ProductCommand::SetPrimaryProductImage { image_id, at })
        })
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderImagesRequest {
    /// Every image of the product, once each, in the new order.
    pub image_ids: Vec<Uuid>,
}

impl CommandBody for ReorderImagesRequest {}

#[utoipa::path(
    put,
    path = "/v1/products/{id}/image-order",
    tag = "catalog",
    operation_id = "reorder_product_images",
    summary = "Put a product's images in a new order",
    description = "`image_ids` must be exactly the product's images (422 `image-order-mismatch`); they get the \
        sort orders 0, 1, 2, ... in that order.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The product"), CommandHeaders),
    request_body = ReorderImagesRequest,
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id))]
pub async fn reorder_images(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<ReorderImagesRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let at = context.at;
    execute(&state, &context, || {
        let image_ids = body.image_ids.clone();
        plan_on_product(state.clone(), context.clone(), id, move |_| {
            Ok(ProductCommand::ReorderProductImages { image_ids, at })
        })
    })
    .await
}

/// Attribute values may span lines (`product_attributes.value` is `TEXT`).
const ATTRIBUTE_MULTI_LINE: &[&str] = &["value"];

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAttributeRequest {
    pub value: String,
    /// The attribute's current sort order when absent, or after the last
    /// attribute for a new one.
    pub sort_order: Option<i32>,
}

impl CommandBody for SetAttributeRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = ATTRIBUTE_MULTI_LINE;
}

#[utoipa::path(
    put,
    path = "/v1/products/{id}/attributes/{name}",
    tag = "catalog",
    operation_id = "set_product_attribute",
    summary = "Set an attribute of a product",
    description = "Adds the attribute `name` (1 to 100 characters, percent-encoded in the path) or replaces its \
        value and sort order.",
    security(("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The product"),
        ("name" = String, Path, description = "The attribute's name"),
        CommandHeaders,
    ),
    request_body = SetAttributeRequest,
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id))]
pub async fn set_attribute(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath((id, name)): ApiPath<(Uuid, String)>,
    request: CommandRequest<SetAttributeRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let at = context.at;
    execute(&state, &context, || {
        let (name, value, sort_order) = (name.clone(), body.value.clone(), body.sort_order);
        plan_on_product(state.clone(), context.clone(), id, move |product| {
            let attributes = product.attributes();
            let current = attributes.iter().find(|a| a.name == name.trim());
            let sort_order = sort_order
                .or(current.map(|a| a.sort_order))
                .unwrap_or_else(|| next_sort_order(attributes.iter().map(|a| a.sort_order)));
            Ok(ProductCommand::SetProductAttribute {
                attribute_id: current.map_or_else(Uuid::now_v7, |a| a.attribute_id),
                name,
                value,
                sort_order,
                at,
            })
        })
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/v1/products/{id}/attributes/{name}",
    tag = "catalog",
    operation_id = "remove_product_attribute",
    summary = "Remove an attribute of a product",
    security(("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The product"),
        ("name" = String, Path, description = "The attribute's name"),
        CommandHeaders,
    ),
    responses(
        (status = 200, description = "Removed", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id))]
pub async fn remove_attribute(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath((id, name)): ApiPath<(Uuid, String)>,
    context: CommandContext,
) -> Result<Response, ApiError> {
    let at = context.at;
    execute(&state, &context, || {
        let name = name.clone();
        plan_on_product(state.clone(), context.clone(), id, move |_| {
            Ok(ProductCommand::RemoveProductAttribute { name, at })
        })
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddVariantRequest {
    /// Client-chosen id; a new UUID v7 when absent.
    pub variant_id: Option<Uuid>,
    /// Shares one scope with the products' skus.
    pub sku: String,
    pub name: Option<String>,
    pub price: Amount,
    /// Initial stock of the variant's own inventory; 0 when absent.
    pub stock_quantity: Option<i32>,
    /// What tells the variant apart, such as `{"color": "Black", "storage": "256GB"}`.
    pub attributes: Option<BTreeMap<String, String>>,
}

impl CommandBody for AddVariantRequest {}

#[utoipa::path(
    post,
    path = "/v1/products/{id}/variants",
    tag = "catalog",
    operation_id = "add_product_variant",
    summary = "Add a variant to a product",
    description = "The variant's sku is claimed (422 `sku-taken`) and its inventory initialised, tracked like \
        the product's, in the same append. Two active variants cannot have the same attributes (422 \
        `variant-attributes-taken`). The receipt's `id` is the variant's; its `version` the product's.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The product"), CommandHeaders),
    request_body = AddVariantRequest,
    responses(
        (status = 201, description = "Added", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id, variant_id = tracing::field::Empty))]
pub async fn add_variant(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<AddVariantRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let mut fields = Fields::new();
    let sku = fields.check("sku", Sku::parse(&body.sku));
    let price = fields.check("price", input::price(body.price));
    let stock_quantity = body.stock_quantity.unwrap_or(0);
    if stock_quantity < 0 {
        fields.push("stock_quantity", "must not be negative");
    }
    fields.finish()?;
    let command = AddProductVariant {
        variant_id: body.variant_id.unwrap_or_else(Uuid::now_v7),
        sku: checked(sku)?,
        name: body.name,
        price: checked(price)?,
        stock_quantity,
        attributes: body.attributes.unwrap_or_default(),
        at: context.at,
    };
    Span::current().record("variant_id", tracing::field::display(command.variant_id));
    execute(&state, &context, || {
        plan_add_variant(state.clone(), context.clone(), id, command.clone())
    })
    .await
}

async fn plan_add_variant(
    state: AppState,
    context: CommandContext,
    product_id: Uuid,
    command: AddProductVariant,
) -> Result<Plan, ApiError> {
    let product = load_existing::<Product>(&state, &context, "product", product_id).await?;
    let sku_key = load_key(&state, UniqueScope::Sku, command.sku.as_str()).await?;
    let inventory_stream = inventory_stream_id(&command.sku);
    // A variant is stocked as its product is now, which inventory decides
    // (the product only knows what it was created with).
    let product_sku = product
        .aggregate
        .sku()
        .ok_or_else(|| ApiError::not_found("product", product_id))?;
    let product_stock = load::<Inventory>(
        &state.store,
        &state.upcasters,
        &inventory_stream_id(product_sku),
    )
    .await?;
    let (low_stock_threshold, track_inventory) = if product_stock.version > 0 {
        (
            product_stock.aggregate.low_stock_threshold(),
            product_stock.aggregate.is_tracked(),
        )
    } else {
        (
            product
                .aggregate
                .low_stock_threshold()
                .unwrap_or(super::products::DEFAULT_LOW_STOCK_THRESHOLD),
            product.aggregate.track_inventory(),
        )
    };
    let initialize = InventoryCommand::InitializeStock {
        sku: command.sku.clone(),
        product_id,
        variant_id: Some(command.variant_id),
        quantity: command.stock_quantity,
        low_stock_threshold,
        track_inventory,
        at: command.at,
    };
    let variant_id = command.variant_id;
    let decision = decisions::add_product_variant(&product.aggregate, command, &sku_key.aggregate)?;
    let inventory = load::<Inventory>(&state.store, &state.upcasters, &inventory_stream).await?;
    let stock_events = inventory.decide(initialize, &()).await?;
    let mut appends = vec![
        product.append(&decision.events),
        inventory.append(&stock_events),
    ];
    appends.extend(key_appends(&[&sku_key], &decision.unique_key_events)?);
    let plan = Plan::updated(product_id, appends);
    Ok(created_row(product_id, "variants", variant_id, plan))
}

/// A partial update of a variant: absent fields stay, a `null` name clears
/// it. The sku never changes, and stock is the inventory's.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateVariantRequest {
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub name: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Amount)]
    pub price: Patch<Amount>,
    /// The whole new set, replacing the old.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = BTreeMap<String, String>)]
    pub attributes: Patch<BTreeMap<String, String>>,
}

impl CommandBody for UpdateVariantRequest {}

#[utoipa::path(
    patch,
    path = "/v1/products/{id}/variants/{variant_id}",
    tag = "catalog",
    operation_id = "update_product_variant",
    summary = "Update a variant",
    description = "Absent fields stay; `null` clears the name (on `price` or `attributes` it is a 400); `{}` is \
        a 400. The sku cannot change; stock changes through `/v1/inventory/{sku}`.",
    security(("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The product"),
        ("variant_id" = Uuid, Path, description = "The variant"),
        CommandHeaders,
    ),
    request_body = UpdateVariantRequest,
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id, variant_id = %variant_id))]
pub async fn update_variant(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath((id, variant_id)): ApiPath<(Uuid, Uuid)>,
    request: CommandRequest<UpdateVariantRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    if body.name.is_none() && body.price.is_none() && body.attributes.is_none() {
        return Err(ApiError::invalid_field(
            "body",
            "give at least one field to change",
        ));
    }
    let mut fields = Fields::new();
    let price = match body.price {
        None => None,
        Some(None) => {
            fields.push("price", "must not be null");
            None
        }
        Some(Some(amount)) => fields.check("price", input::price(amount)),
    };
    if matches!(body.attributes, Some(None)) {
        fields.push("attributes", "must not be null");
    }
    fields.finish()?;
    let at = context.at;
    execute(&state, &context, || {
        let body = body.clone();
        plan_on_product(state.clone(), context.clone(), id, move |product| {
            let current = product
                .variant(variant_id)
                .ok_or_else(|| ApiError::not_found("variant", variant_id))?;
            Ok(ProductCommand::UpdateProductVariant {
                variant_id,
                name: match body.name {
                    None => current.name.clone(),
                    Some(name) => name,
                },
                price: price.unwrap_or(current.price),
                attributes: body
                    .attributes
                    .flatten()
                    .unwrap_or_else(|| current.attributes.clone()),
                at,
            })
        })
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVariantActiveRequest {
    pub active: bool,
}

impl CommandBody for SetVariantActiveRequest {}

#[utoipa::path(
    put,
    path = "/v1/products/{id}/variants/{variant_id}/active",
    tag = "catalog",
    operation_id = "set_product_variant_active",
    summary = "Activate or deactivate a variant",
    description = "A deactivated variant keeps its row and its sku; it frees its attribute combination. The \
        current state is a 422 `active-unchanged`; reactivating onto a combination another active variant \
        holds is a 422 `variant-attributes-taken`.",
    security(("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The product"),
        ("variant_id" = Uuid, Path, description = "The variant"),
        CommandHeaders,
    ),
    request_body = SetVariantActiveRequest,
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id, variant_id = %variant_id, active = tracing::field::Empty))]
pub async fn set_variant_active(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath((id, variant_id)): ApiPath<(Uuid, Uuid)>,
    request: CommandRequest<SetVariantActiveRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    Span::current().record("active", body.active);
    let (active, at) = (body.active, context.at);
    execute(&state, &context, || {
        plan_on_product(state.clone(), context.clone(), id, move |_| {
            Ok(if active {
                ProductCommand::ActivateProductVariant { variant_id, at }
            } else {
                ProductCommand::DeactivateProductVariant { variant_id, at }
            })
        })
    })
    .await
}
