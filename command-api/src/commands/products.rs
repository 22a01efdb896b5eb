//! Product commands: creation (sku and slug claims, and the product's
//! inventory stream initialised in the same append), details patch (slug
//! claim swap), price, status and featured flag.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use domain::catalog::decisions;
use domain::catalog::{
    Brand, Category, CreateProduct, Product, ProductCommand, ProductDetails, ProductStatus,
};
use domain::inventory::{inventory_stream_id, Inventory, InventoryCommand};
use domain::uniqueness::UniqueScope;
use domain::values::{Currency, Sku};
use infrastructure::event_store::aggregates::load;
use serde::Deserialize;
use tracing::{instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use super::categories::{merge_keywords, merge_text};
use crate::auth::Admin;
use crate::command::{
    execute, key_appends, load_existing, load_key, load_new, require_reference, AppState, Plan,
    Receipt,
};
use crate::error::ApiError;
use crate::input::{self, checked, patch, Amount, Fields, Patch};
use crate::openapi::{
    CommandHeaders, Conflict, Forbidden, NotFound, PreconditionFailed, RuleBroken,
};
use crate::request::{ApiPath, CommandBody, CommandContext, CommandRequest};

/// Every column of the seed's `products` row a client sets at creation.
/// Status starts as draft and the product unfeatured.
/// The texts that may span lines; the domain allows tabs and line feeds in
/// the same ones, and nowhere else.
const PRODUCT_MULTI_LINE: &[&str] = &["description", "short_description", "meta_description"];

impl CommandBody for CreateProductRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = PRODUCT_MULTI_LINE;
}

impl CommandBody for UpdateProductRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = PRODUCT_MULTI_LINE;
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    /// Client-chosen id; a new UUID v7 when absent.
    pub product_id: Option<Uuid>,
    pub sku: String,
    pub name: String,
    /// Lower-case words of `a-z 0-9` joined by single hyphens.
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 255)]
    pub slug: String,
    pub description: Option<String>,
    pub short_description: Option<String>,
    pub category_id: Option<Uuid>,
    pub brand_id: Option<Uuid>,
    pub regular_price: Amount,
    pub sale_price: Option<Amount>,
    pub cost_price: Option<Amount>,
    /// ISO 4217; THB when absent.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// True when absent.
    pub track_inventory: Option<bool>,
    /// Initial stock; 0 when absent.
    pub stock_quantity: Option<i32>,
    /// 5 when absent.
    pub low_stock_threshold: Option<i32>,
    pub weight: Option<Amount>,
    pub length: Option<Amount>,
    pub width: Option<Amount>,
    pub height: Option<Amount>,
    pub meta_title: Option<String>,
    pub meta_description: Option<String>,
    pub meta_keywords: Option<Vec<String>>,
}

pub const DEFAULT_LOW_STOCK_THRESHOLD: i32 = 5;

impl CreateProductRequest {
    fn into_command(self, at: DateTime<Utc>) -> Result<CreateProduct, ApiError> {
        let mut fields = Fields::new();
        let sku = fields.check("sku", Sku::parse(&self.sku));
        let slug = fields.check("slug", input::slug(self.slug));
        let regular_price = fields.check("regular_price", input::price(self.regular_price));
        let sale_price = fields.check_opt("sale_price", self.sale_price, input::price);
        let cost_price = fields.check_opt("cost_price", self.cost_price, input::money);
        let currency = fields.check_opt("currency", self.currency, |c| Currency::parse(&c));
        let weight = fields.check_opt("weight", self.weight, input::dimension);
        let length = fields.check_opt("length", self.length, input::dimension);
        let width = fields.check_opt("width", self.width, input::dimension);
        let height = fields.check_opt("height", self.height, input::dimension);
        let stock_quantity = self.stock_quantity.unwrap_or(0);
        if stock_quantity < 0 {
            fields.push("stock_quantity", "must not be negative");
        }
        let low_stock_threshold = self
            .low_stock_threshold
            .unwrap_or(DEFAULT_LOW_STOCK_THRESHOLD);
        if low_stock_threshold < 0 {
            fields.push("low_stock_threshold", "must not be negative");
        }
        fields.finish()?;
        Ok(CreateProduct {
            product_id: self.product_id.unwrap_or_else(Uuid::now_v7),
            sku: checked(sku)?,
            name: self.name,
            slug: checked(slug)?,
            description: self.description,
            short_description: self.short_description,
            category_id: self.category_id,
            brand_id: self.brand_id,
            regular_price: checked(regular_price)?,
            sale_price: checked(sale_price)?,
            cost_price: checked(cost_price)?,
            currency: checked(currency)?.unwrap_or_default(),
            track_inventory: self.track_inventory.unwrap_or(true),
            stock_quantity,
            low_stock_threshold,
            weight: checked(weight)?,
            length: checked(length)?,
            width: checked(width)?,
            height: checked(height)?,
            meta_title: self.meta_title,
            meta_description: self.meta_description,
            meta_keywords: self.meta_keywords.unwrap_or_default(),
            at,
        })
    }
}

#[utoipa::path(
    post,
    path = "/v1/products",
    tag = "catalog",
    operation_id = "create_product",
    summary = "Create a product",
    description = "Starts as `draft`, unfeatured, with its inventory initialised in the same append. The sku and the slug \
        are claimed (422 `sku-taken`, `slug-taken`); `category_id` and `brand_id` must exist (422); \
        `sale_price` must be below `regular_price` (422).",
    security(("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = CreateProductRequest,
    responses(
        (status = 201, description = "Created", body = Receipt),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = tracing::field::Empty, sku = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    // Catalog writes are the admins\' alone.
    _admin: Admin,
    request: CommandRequest<CreateProductRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let command = body.into_command(context.at)?;
    let span = Span::current();
    span.record("product_id", tracing::field::display(command.product_id));
    span.record("sku", command.sku.as_str());
    execute(&state, &context, || {
        plan_create(state.clone(), context.clone(), command.clone())
    })
    .await
}

async fn plan_create(
    state: AppState,
    context: CommandContext,
    command: CreateProduct,
) -> Result<Plan, ApiError> {
    let id = command.product_id;
    let product = load_new::<Product>(&state, &context, "product", id).await?;
    check_references(&state, command.category_id, command.brand_id).await?;
    let sku_key = load_key(&state, UniqueScope::Sku, command.sku.as_str()).await?;
    let slug_key = load_key(&state, UniqueScope::ProductSlug, command.slug.as_str()).await?;
    let initialize = InventoryCommand::InitializeStock {
        sku: command.sku.clone(),
        product_id: id,
        variant_id: None,
        quantity: command.stock_quantity,
        low_stock_threshold: command.low_stock_threshold,
        track_inventory: command.track_inventory,
        at: command.at,
    };
    let inventory_stream = inventory_stream_id(&command.sku);
    let decision = decisions::create_product(
        &product.aggregate,
        command,
        &sku_key.aggregate,
        &slug_key.aggregate,
    )?;
    let inventory = load::<Inventory>(&state.store, &state.upcasters, &inventory_stream).await?;
    let stock_events = inventory.decide(initialize, &()).await?;
    let mut appends = vec![
        product.append(&decision.events),
        inventory.append(&stock_events),
    ];
    appends.extend(key_appends(
        &[&sku_key, &slug_key],
        &decision.unique_key_events,
    )?);
    Ok(Plan::created("products", id, appends))
}

/// 422 unless each given category / brand exists.
async fn check_references(
    state: &AppState,
    category_id: Option<Uuid>,
    brand_id: Option<Uuid>,
) -> Result<(), ApiError> {
    if let Some(category_id) = category_id {
        require_reference::<Category>(state, "category_id", "category", category_id).await?;
    }
    if let Some(brand_id) = brand_id {
        require_reference::<Brand>(state, "brand_id", "brand", brand_id).await?;
    }
    Ok(())
}

/// A partial update of the details: absent fields stay, `null` clears a
/// nullable one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProductRequest {
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String)]
    pub name: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String, pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 255)]
    pub slug: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub short_description: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Uuid>)]
    pub category_id: Patch<Uuid>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Uuid>)]
    pub brand_id: Patch<Uuid>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Amount>)]
    pub weight: Patch<Amount>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Amount>)]
    pub length: Patch<Amount>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Amount>)]
    pub width: Patch<Amount>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Amount>)]
    pub height: Patch<Amount>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub meta_title: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub meta_description: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Vec<String>>)]
    pub meta_keywords: Patch<Vec<String>>,
}

impl UpdateProductRequest {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.slug.is_none()
            && self.description.is_none()
            && self.short_description.is_none()
            && self.category_id.is_none()
            && self.brand_id.is_none()
            && self.weight.is_none()
            && self.length.is_none()
            && self.width.is_none()
            && self.height.is_none()
            && self.meta_title.is_none()
            && self.meta_description.is_none()
            && self.meta_keywords.is_none()
    }

    /// The current details with this patch merged in.
    fn merge(&self, current: &ProductDetails) -> Result<ProductDetails, ApiError> {
        let patch = self.clone();
        let current = current.clone();
        let mut fields = Fields::new();
        let name = fields.merge_required("name", patch.name, current.name, input::text);
        let slug = fields.merge_required("slug", patch.slug, current.slug, input::slug);
        let weight =
            fields.merge_nullable("weight", patch.weight, current.weight, input::dimension);
        let length =
            fields.merge_nullable("length", patch.length, current.length, input::dimension);
        let width = fields.merge_nullable("width", patch.width, current.width, input::dimension);
        let height =
            fields.merge_nullable("height", patch.height, current.height, input::dimension);
        fields.finish()?;
        Ok(ProductDetails {
            name: checked(name)?,
            slug: checked(slug)?,
            description: merge_text(patch.description, current.description),
            short_description: merge_text(patch.short_description, current.short_description),
            category_id: merge_id(patch.category_id, current.category_id),
            brand_id: merge_id(patch.brand_id, current.brand_id),
            weight: checked(weight)?,
            length: checked(length)?,
            width: checked(width)?,
            height: checked(height)?,
            meta_title: merge_text(patch.meta_title, current.meta_title),
            meta_description: merge_text(patch.meta_description, current.meta_description),
            meta_keywords: merge_keywords(patch.meta_keywords, current.meta_keywords),
        })
    }
}

fn merge_id(patch: Patch<Uuid>, current: Option<Uuid>) -> Option<Uuid> {
    match patch {
        None => current,
        Some(value) => value,
    }
}

#[utoipa::path(
    patch,
    path = "/v1/products/{id}",
    tag = "catalog",
    operation_id = "update_product",
    summary = "Update a product's details",
    description = "Absent fields stay; `null` clears a nullable one (on `name` or `slug` it is a 400); `{}` is a 400. \
        The sku cannot change. An active product cannot lose its category (422 `category-required`).",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The product"), CommandHeaders),
    request_body = UpdateProductRequest,
    responses(
        (status = 200, description = "Done", body = Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id))]
pub async fn update(
    State(state): State<AppState>,
    // Catalog writes are the admins\' alone.
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<UpdateProductRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    if body.is_empty() {
        return Err(ApiError::invalid_field(
            "body",
            "give at least one field to change",
        ));
    }
    execute(&state, &context, || {
        plan_update(state.clone(), context.clone(), id, body.clone())
    })
    .await
}

async fn plan_update(
    state: AppState,
    context: CommandContext,
    id: Uuid,
    patch: UpdateProductRequest,
) -> Result<Plan, ApiError> {
    let product = load_existing::<Product>(&state, &context, "product", id).await?;
    let current = product
        .aggregate
        .details()
        .ok_or_else(|| ApiError::not_found("product", id))?;
    let details = patch.merge(current)?;
    let changed = |new: Option<Uuid>, old: Option<Uuid>| new.filter(|id| Some(*id) != old);
    check_references(
        &state,
        changed(details.category_id, current.category_id),
        changed(details.brand_id, current.brand_id),
    )
    .await?;
    let previous_key = load_key(&state, UniqueScope::ProductSlug, current.slug.as_str()).await?;
    let new_key = if details.slug == current.slug {
        previous_key.clone()
    } else {
        load_key(&state, UniqueScope::ProductSlug, details.slug.as_str()).await?
    };
    let decision = decisions::update_product_details(
        &product.aggregate,
        details,
        context.at,
        &previous_key.aggregate,
        &new_key.aggregate,
    )?;
    let mut appends = vec![product.append(&decision.events)];
    appends.extend(key_appends(
        &[&previous_key, &new_key],
        &decision.unique_key_events,
    )?);
    Ok(Plan::updated(id, appends))
}

/// The full price set: an absent `sale_price` or `cost_price` is cleared.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePriceRequest {
    pub regular_price: Amount,
    pub sale_price: Option<Amount>,
    pub cost_price: Option<Amount>,
}

impl CommandBody for ChangePriceRequest {}

#[utoipa::path(
    put,
    path = "/v1/products/{id}/price",
    tag = "catalog",
    operation_id = "change_product_price",
    summary = "Replace a product's prices",
    description = "The whole price set: an absent `sale_price` or `cost_price` is cleared.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The product"), CommandHeaders),
    request_body = ChangePriceRequest,
    responses(
        (status = 200, description = "Done", body = Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id))]
pub async fn change_price(
    State(state): State<AppState>,
    // Catalog writes are the admins\' alone.
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<ChangePriceRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let mut fields = Fields::new();
    let regular_price = fields.check("regular_price", input::price(body.regular_price));
    let sale_price = fields.check_opt("sale_price", body.sale_price, input::price);
    let cost_price = fields.check_opt("cost_price", body.cost_price, input::money);
    fields.finish()?;
    let command = ProductCommand::ChangeProductPrice {
        regular_price: checked(regular_price)?,
        sale_price: checked(sale_price)?,
        cost_price: checked(cost_price)?,
        at: context.at,
    };
    execute(&state, &context, || {
        plan_simple(state.clone(), context.clone(), id, command.clone())
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeStatusRequest {
    #[schema(value_type = crate::openapi::ProductStatusName)]
    pub status: ProductStatus,
}

impl CommandBody for ChangeStatusRequest {}

#[utoipa::path(
    put,
    path = "/v1/products/{id}/status",
    tag = "catalog",
    operation_id = "change_product_status",
    summary = "Move a product through its life cycle",
    description = "draft → active, active ↔ inactive, active | inactive → archived; activation needs a category. Any \
        other move is a 422 `invalid-status-transition`, the current status a 422 `status-unchanged`.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The product"), CommandHeaders),
    request_body = ChangeStatusRequest,
    responses(
        (status = 200, description = "Done", body = Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id, status = tracing::field::Empty))]
pub async fn change_status(
    State(state): State<AppState>,
    // Catalog writes are the admins\' alone.
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<ChangeStatusRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    Span::current().record("status", body.status.as_str());
    let command = ProductCommand::ChangeProductStatus {
        status: body.status,
        at: context.at,
    };
    execute(&state, &context, || {
        plan_simple(state.clone(), context.clone(), id, command.clone())
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFeaturedRequest {
    pub featured: bool,
}

impl CommandBody for SetFeaturedRequest {}

#[utoipa::path(
    put,
    path = "/v1/products/{id}/featured",
    tag = "catalog",
    operation_id = "set_product_featured",
    summary = "Feature or unfeature a product",
    description = "Only an active product can be featured (422 `featured-requires-active`).",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The product"), CommandHeaders),
    request_body = SetFeaturedRequest,
    responses(
        (status = 200, description = "Done", body = Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(product_id = %id, featured = tracing::field::Empty))]
pub async fn set_featured(
    State(state): State<AppState>,
    // Catalog writes are the admins\' alone.
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<SetFeaturedRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    Span::current().record("featured", body.featured);
    let command = ProductCommand::SetProductFeatured {
        featured: body.featured,
        at: context.at,
    };
    execute(&state, &context, || {
        plan_simple(state.clone(), context.clone(), id, command.clone())
    })
    .await
}

/// A command that touches only the product's own stream.
async fn plan_simple(
    state: AppState,
    context: CommandContext,
    id: Uuid,
    command: ProductCommand,
) -> Result<Plan, ApiError> {
    let product = load_existing::<Product>(&state, &context, "product", id).await?;
    let events = product.aggregate.decide(command)?;
    Ok(Plan::updated(id, vec![product.append(&events)]))
}
