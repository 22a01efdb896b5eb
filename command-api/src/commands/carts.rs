//! Carts: opened by a signed-in user or by a guest, whose opaque cart
//! session (`X-Cart-Session`, handed out on the guest's first open) names
//! them; lines added, changed and removed at the catalog's current price; a
//! coupon code held for checkout; a shipping method at its configured fee;
//! and the guest's cart merged into the user's at login.
//!
//! One active cart per owner: the owner's `active_cart:<owner>` claim names
//! it. The claim is a hint the cart's own status confirms, so a cart that
//! ended (checked out, expired, merged) frees its owner even when its claim
//! was not released. Guests are keyed by a digest of their session token,
//! so the token (a bearer secret) never reaches an event.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use cqrs_es::Aggregate;
use domain::cart::{Cart, CartCommand, CartLineKey, CartOwner, CartStatus, CatalogItem, SessionId};
use domain::catalog::{Product, ProductStatus};
use domain::promotion::{Coupon, CouponError};
use domain::uniqueness::{UniqueKey, UniqueKeyEvent, UniqueScope};
use domain::values::{CouponCode, Money, Quantity};
use infrastructure::event_store::aggregates::{load, Loaded};
use infrastructure::sessions::SessionToken;
use serde::Deserialize;
use tracing::{instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Actor;
use crate::command::{execute, load_as, load_key, AppState, Plan};
use crate::error::ApiError;
use crate::openapi::{CommandHeaders, Conflict, NotFound, PreconditionFailed, RuleBroken};
use crate::request::{ApiPath, CommandBody, CommandContext, CommandRequest};

/// The header that carries a guest's cart session, both ways.
pub static X_CART_SESSION: HeaderName = HeaderName::from_static("x-cart-session");

/// The owner a guest's cart session names: the token's digest, never the
/// token.
pub fn guest_owner(token: &SessionToken) -> CartOwner {
    CartOwner::Guest {
        session_id: SessionId::parse(&token.digest()).expect("a hex digest is a session id"),
    }
}

/// The guest's cart session sent with the request: `None` without the
/// header, 400 when it is not one this API hands out.
pub fn cart_session(headers: &HeaderMap) -> Result<Option<SessionToken>, ApiError> {
    let Some(value) = headers.get(&X_CART_SESSION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(SessionToken::parse)
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid_header("X-Cart-Session", "not a cart session this API handed out")
        })
}

/// Who owns the carts a request may act on: the signed-in user, else the
/// guest whose cart session the request carries.
fn requester(actor: &Actor, headers: &HeaderMap) -> Result<Option<CartOwner>, ApiError> {
    if let Some(session) = actor.session() {
        return Ok(Some(CartOwner::User {
            user_id: session.user_id,
        }));
    }
    Ok(cart_session(headers)?.as_ref().map(guest_owner))
}

fn active_cart_key(owner: &CartOwner) -> String {
    owner.key()
}

/// The owner's active cart, if the claim names one that is still active.
async fn active_cart_of(
    state: &AppState,
    claim: &Loaded<UniqueKey>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Loaded<Cart>>, ApiError> {
    let Some(cart_id) = claim.aggregate.owner_id() else {
        return Ok(None);
    };
    let cart = load_as::<Cart>(state, &cart_id.to_string()).await?;
    Ok(cart.filter(|cart| {
        cart.aggregate.status() == CartStatus::Active
            && cart
                .aggregate
                .expires_at()
                .is_some_and(|expires| at < expires)
    }))
}

/// The claim events that make `cart_id` the owner's active cart: a stale
/// holder (an ended cart) is released first.
fn claim_for(claim: &Loaded<UniqueKey>, owner: &CartOwner, cart_id: Uuid) -> Vec<UniqueKeyEvent> {
    let key = active_cart_key(owner);
    let mut events = Vec::new();
    if let Some(stale) = claim.aggregate.owner_id().filter(|id| *id != cart_id) {
        events.push(UniqueKeyEvent::UniqueKeyReleased {
            scope: UniqueScope::ActiveCart,
            key: key.clone(),
            owner_id: stale,
        });
    }
    if claim.aggregate.owner_id() != Some(cart_id) {
        events.push(UniqueKeyEvent::UniqueKeyClaimed {
            scope: UniqueScope::ActiveCart,
            key,
            owner_id: cart_id,
        });
    }
    events
}

/// The cart `cart_id`, once the request's preconditions hold for it, if it
/// belongs to `owner`; anyone else's cart does not exist for them (404).
async fn owned_cart(
    state: &AppState,
    context: &CommandContext,
    owner: Option<&CartOwner>,
    cart_id: Uuid,
) -> Result<Loaded<Cart>, ApiError> {
    let cart = load_as::<Cart>(state, &cart_id.to_string())
        .await?
        .filter(|cart| cart.version > 0 && owner.is_some() && cart.aggregate.owner() == owner);
    context
        .preconditions
        .check(cart.as_ref().map(|cart| cart.version))?;
    cart.ok_or_else(|| ApiError::not_found("cart", cart_id))
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenCartRequest {
    /// Client-chosen id; a new UUID v7 when absent.
    pub cart_id: Option<Uuid>,
}

impl CommandBody for OpenCartRequest {}

#[utoipa::path(
    post,
    path = "/v1/carts",
    tag = "carts",
    operation_id = "open_cart",
    summary = "Open a cart",
    description = "For the signed-in user, or for a guest: a guest without an `X-Cart-Session` gets a new one in \
        the answer's `X-Cart-Session` header, to send with every later cart request (and with the login that \
        merges the cart into the user's). An owner has one active cart: another is a 409 `cart-exists` naming \
        it. The cart expires after a week without changes.",
    security((), ("bearerAuth" = [])),
    params(
        ("X-Cart-Session" = Option<String>, Header, description = "A guest's cart session"),
        CommandHeaders,
    ),
    request_body = OpenCartRequest,
    responses(
        (status = 201, description = "Opened", body = crate::command::Receipt,
            headers(("X-Cart-Session" = String, description = "The guest's cart session (guests only)"))),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(cart_id = tracing::field::Empty))]
pub async fn open(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    request: CommandRequest<OpenCartRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let (owner, new_session) = match requester(&actor, &headers)? {
        Some(owner) => (owner, None),
        None => {
            let token = SessionToken::generate();
            (guest_owner(&token), Some(token))
        }
    };
    let cart_id = body.cart_id.unwrap_or_else(Uuid::now_v7);
    Span::current().record("cart_id", tracing::field::display(cart_id));
    let mut response = execute(&state, &context, || {
        plan_open(state.clone(), context.clone(), owner.clone(), cart_id)
    })
    .await?;
    if let Some(token) = new_session {
        let value = HeaderValue::from_str(token.expose_secret()).map_err(ApiError::internal)?;
        response.headers_mut().insert(X_CART_SESSION.clone(), value);
    }
    Ok(response.into_response())
}

async fn plan_open(
    state: AppState,
    context: CommandContext,
    owner: CartOwner,
    cart_id: Uuid,
) -> Result<Plan, ApiError> {
    let cart = crate::command::load_new::<Cart>(&state, &context, "cart", cart_id).await?;
    let claim = load_key(&state, UniqueScope::ActiveCart, &active_cart_key(&owner)).await?;
    let existing = active_cart_of(&state, &claim, context.at)
        .await?
        .map(|active| active.stream_id.parse::<Uuid>())
        .transpose()
        .map_err(ApiError::internal)?;
    let events = cart
        .decide(
            CartCommand::OpenCart {
                cart_id,
                owner: owner.clone(),
                existing_active_cart_for_owner: existing,
                at: context.at,
            },
            &state.cart_policy,
        )
        .await?;
    let claimed = claim_for(&claim, &owner, cart_id);
    Ok(Plan::created(
        "carts",
        cart_id,
        vec![cart.append(&events), claim.append(&claimed)],
    ))
}

/// Decides `command` on the requester's own cart `cart_id`; `command` sees
/// the loaded cart, so that a line can be found by its id.
async fn plan_on_cart(
    state: AppState,
    context: CommandContext,
    owner: Option<CartOwner>,
    cart_id: Uuid,
    command: impl FnOnce(&Cart) -> Result<CartCommand, ApiError>,
) -> Result<Plan, ApiError> {
    let cart = owned_cart(&state, &context, owner.as_ref(), cart_id).await?;
    let command = command(&cart.aggregate)?;
    let events = cart.decide(command, &state.cart_policy).await?;
    Ok(Plan::updated(cart_id, vec![cart.append(&events)]))
}

/// The line of `cart` whose id is `item_id`, or 404.
fn line_of(cart: &Cart, item_id: Uuid) -> Result<CartLineKey, ApiError> {
    cart.items()
        .iter()
        .map(|item| item.key())
        .find(|key| key.item_id() == item_id)
        .ok_or_else(|| ApiError::not_found("cart item", item_id))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItemRequest {
    pub product_id: Uuid,
    pub product_variant_id: Option<Uuid>,
    /// 1 or more; a line holds at most `carts.max_quantity_per_line` units.
    pub quantity: i64,
    /// The shopper's choices (`{"color": "black"}`); the same product,
    /// variant and options are one line.
    pub options: Option<BTreeMap<String, String>>,
}

impl CommandBody for AddItemRequest {}

#[utoipa::path(
    post,
    path = "/v1/carts/{id}/items",
    tag = "carts",
    operation_id = "add_cart_item",
    summary = "Put a product in the cart",
    description = "At the catalog's current price (the sale price when there is one, or the variant's). The \
        same product, variant and options grow their line. The product (and variant) must be on sale (422 \
        `product-unavailable`). Answers 201 with the line's `Location`; the receipt's `id` is the line's \
        `item_id`, its version the cart's.",
    security((), ("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The cart"),
        ("X-Cart-Session" = Option<String>, Header, description = "A guest's cart session"),
        CommandHeaders,
    ),
    request_body = AddItemRequest,
    responses(
        (status = 201, description = "Added", body = crate::command::Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(cart_id = %cart_id, product_id = tracing::field::Empty))]
pub async fn add_item(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiPath(cart_id): ApiPath<Uuid>,
    request: CommandRequest<AddItemRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let owner = requester(&actor, &headers)?;
    Span::current().record("product_id", tracing::field::display(body.product_id));
    let quantity =
        Quantity::new(body.quantity).map_err(|error| ApiError::invalid_field("quantity", error))?;
    let options = body.options.clone().unwrap_or_default();
    let key = CartLineKey {
        product_id: body.product_id,
        variant_id: body.product_variant_id,
        options: options.clone(),
    };
    let item_id = key.item_id();
    execute(&state, &context, || {
        let (state, context, owner, options) = (
            state.clone(),
            context.clone(),
            owner.clone(),
            options.clone(),
        );
        async move {
            let item = catalog_item(&state, body.product_id, body.product_variant_id).await?;
            let at = context.at;
            let plan = plan_on_cart(state, context, owner, cart_id, move |_| {
                Ok(CartCommand::AddCartItem {
                    item,
                    quantity,
                    options,
                    at,
                })
            })
            .await?;
            Ok(Plan {
                id: item_id,
                location: Some(format!("/v1/carts/{cart_id}/items/{item_id}")),
                ..plan
            })
        }
    })
    .await
}

/// What the catalog says of the product (or variant) now. A product that
/// does not exist is a 422 naming `product_id`, as any missing reference.
async fn catalog_item(
    state: &AppState,
    product_id: Uuid,
    variant_id: Option<Uuid>,
) -> Result<CatalogItem, ApiError> {
    let product =
        crate::command::require_reference::<Product>(state, "product_id", "product", product_id)
            .await?
            .aggregate;
    catalog_item_of(&product, product_id, variant_id)
}

/// What `product` (or its variant `variant_id`) sells as now: its sku,
/// name, effective price, image and whether it is on sale.
pub(crate) fn catalog_item_of(
    product: &Product,
    product_id: Uuid,
    variant_id: Option<Uuid>,
) -> Result<CatalogItem, ApiError> {
    let on_sale = product.status() == Some(ProductStatus::Active);
    let image_url = product.primary_image().map(|image| image.url.clone());
    let name = product.name().unwrap_or_default().to_owned();
    let price = |price: domain::values::Price| Money::new(price.amount());
    match variant_id {
        None => Ok(CatalogItem {
            product_id,
            variant_id: None,
            sku: product
                .sku()
                .cloned()
                .ok_or_else(|| ApiError::missing_reference("product_id", "product", product_id))?,
            name,
            unit_price: price(product.effective_price().ok_or_else(|| {
                ApiError::missing_reference("product_id", "product", product_id)
            })?)?,
            is_active: on_sale,
            image_url,
        }),
        Some(variant_id) => {
            let variant = product.variant(variant_id).ok_or_else(|| {
                ApiError::missing_reference("product_variant_id", "variant", variant_id)
            })?;
            Ok(CatalogItem {
                product_id,
                variant_id: Some(variant_id),
                sku: variant.sku.clone(),
                name: match &variant.name {
                    Some(variant_name) => format!("{name} ({variant_name})"),
                    None => name,
                },
                unit_price: price(variant.price)?,
                is_active: on_sale && variant.is_active,
                image_url,
            })
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeItemRequest {
    /// The line's new quantity; 0 removes it.
    pub quantity: i64,
}

impl CommandBody for ChangeItemRequest {}

#[utoipa::path(
    patch,
    path = "/v1/carts/{id}/items/{item_id}",
    tag = "carts",
    operation_id = "change_cart_item",
    summary = "Change a line's quantity",
    description = "0 removes the line; the current quantity appends nothing; above the line cap is a 422 \
        `quantity-above-limit`.",
    security((), ("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The cart"),
        ("item_id" = Uuid, Path, description = "The line"),
        ("X-Cart-Session" = Option<String>, Header, description = "A guest's cart session"),
        CommandHeaders,
    ),
    request_body = ChangeItemRequest,
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(cart_id = %cart_id, item_id = %item_id))]
pub async fn change_item(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiPath((cart_id, item_id)): ApiPath<(Uuid, Uuid)>,
    request: CommandRequest<ChangeItemRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let owner = requester(&actor, &headers)?;
    let quantity = u32::try_from(body.quantity)
        .map_err(|_| ApiError::invalid_field("quantity", "must be 0 or more"))?;
    let at = context.at;
    execute(&state, &context, || {
        plan_on_cart(
            state.clone(),
            context.clone(),
            owner.clone(),
            cart_id,
            move |cart| {
                Ok(CartCommand::ChangeCartItemQuantity {
                    line: line_of(cart, item_id)?,
                    quantity,
                    at,
                })
            },
        )
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/v1/carts/{id}/items/{item_id}",
    tag = "carts",
    operation_id = "remove_cart_item",
    summary = "Remove a line",
    security((), ("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The cart"),
        ("item_id" = Uuid, Path, description = "The line"),
        ("X-Cart-Session" = Option<String>, Header, description = "A guest's cart session"),
        CommandHeaders,
    ),
    responses(
        (status = 200, description = "Removed", body = crate::command::Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(cart_id = %cart_id, item_id = %item_id))]
pub async fn remove_item(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiPath((cart_id, item_id)): ApiPath<(Uuid, Uuid)>,
    context: CommandContext,
) -> Result<Response, ApiError> {
    let owner = requester(&actor, &headers)?;
    let at = context.at;
    execute(&state, &context, || {
        plan_on_cart(
            state.clone(),
            context.clone(),
            owner.clone(),
            cart_id,
            move |cart| {
                Ok(CartCommand::RemoveCartItem {
                    line: line_of(cart, item_id)?,
                    at,
                })
            },
        )
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyCouponRequest {
    /// 3 to 50 letters, digits, `-` or `_`; case does not matter.
    pub code: String,
}

impl CommandBody for ApplyCouponRequest {}

/// 422 unless `code` names a coupon that is still active: a cart should
/// not hold a code that can never apply. Whether it applies to this cart,
/// and what it takes off, is checkout's to decide (and `GET
/// /v1/coupons/{code}`'s to tell).
async fn require_live_coupon(state: &AppState, code: &CouponCode) -> Result<(), ApiError> {
    let key = load_key(state, UniqueScope::CouponCode, code.as_str()).await?;
    let not_found = || {
        ApiError::rule(
            "coupon-not-found",
            "Coupon not found",
            format!("no coupon has the code {code}"),
        )
        .with("code", code.to_string())
    };
    let Some(coupon_id) = key.aggregate.owner_id() else {
        return Err(not_found());
    };
    let coupon = load_as::<Coupon>(state, &coupon_id.to_string())
        .await?
        .filter(|loaded| loaded.version > 0)
        .ok_or_else(not_found)?;
    if !coupon.aggregate.is_active() {
        return Err(CouponError::Inactive { code: code.clone() }.into());
    }
    Ok(())
}

#[utoipa::path(
    put,
    path = "/v1/carts/{id}/coupon",
    tag = "carts",
    operation_id = "apply_cart_coupon",
    summary = "Hold a coupon code for checkout",
    description = "The code replaces any other. It must name an active coupon (422 `coupon-not-found`, \
        `coupon-inactive`); whether it applies to the cart, and what it takes off, is decided at checkout.",
    security((), ("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The cart"),
        ("X-Cart-Session" = Option<String>, Header, description = "A guest's cart session"),
        CommandHeaders,
    ),
    request_body = ApplyCouponRequest,
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(cart_id = %cart_id))]
pub async fn apply_coupon(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiPath(cart_id): ApiPath<Uuid>,
    request: CommandRequest<ApplyCouponRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let owner = requester(&actor, &headers)?;
    let code =
        CouponCode::parse(&body.code).map_err(|error| ApiError::invalid_field("code", error))?;
    require_live_coupon(&state, &code).await?;
    let at = context.at;
    execute(&state, &context, || {
        let code = code.clone();
        plan_on_cart(
            state.clone(),
            context.clone(),
            owner.clone(),
            cart_id,
            move |_| Ok(CartCommand::ApplyCoupon { code, at }),
        )
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/v1/carts/{id}/coupon",
    tag = "carts",
    operation_id = "remove_cart_coupon",
    summary = "Drop the cart's coupon code",
    security((), ("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The cart"),
        ("X-Cart-Session" = Option<String>, Header, description = "A guest's cart session"),
        CommandHeaders,
    ),
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(cart_id = %cart_id))]
pub async fn remove_coupon(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiPath(cart_id): ApiPath<Uuid>,
    context: CommandContext,
) -> Result<Response, ApiError> {
    let owner = requester(&actor, &headers)?;
    let at = context.at;
    execute(&state, &context, || {
        plan_on_cart(
            state.clone(),
            context.clone(),
            owner.clone(),
            cart_id,
            move |_| Ok(CartCommand::RemoveCoupon { at }),
        )
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectShippingRequest {
    /// One of the configured methods (`carts.shipping_methods`).
    pub method: String,
}

impl CommandBody for SelectShippingRequest {}

#[utoipa::path(
    put,
    path = "/v1/carts/{id}/shipping-method",
    tag = "carts",
    operation_id = "select_cart_shipping_method",
    summary = "Choose how the cart ships",
    description = "At the method's configured fee, shown in the summary as `shipping_fee`. A method the shop \
        does not offer is a 400 naming `method`.",
    security((), ("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The cart"),
        ("X-Cart-Session" = Option<String>, Header, description = "A guest's cart session"),
        CommandHeaders,
    ),
    request_body = SelectShippingRequest,
    responses(
        (status = 200, description = "Done", body = crate::command::Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(cart_id = %cart_id))]
pub async fn select_shipping_method(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiPath(cart_id): ApiPath<Uuid>,
    request: CommandRequest<SelectShippingRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let owner = requester(&actor, &headers)?;
    let (method, fee) = shipping_selection(&state, "method", &body.method)?;
    let at = context.at;
    execute(&state, &context, || {
        let method = method.clone();
        plan_on_cart(
            state.clone(),
            context.clone(),
            owner.clone(),
            cart_id,
            move |_| Ok(CartCommand::SelectShippingMethod { method, fee, at }),
        )
    })
    .await
}

/// The shop's shipping method `method` with its configured fee; one it does
/// not offer is a 400 naming `field`.
pub(crate) fn shipping_selection(
    state: &AppState,
    field: &str,
    method: &str,
) -> Result<(domain::cart::ShippingMethodCode, Money), ApiError> {
    let fee = state.shipping_methods.get(method).copied().ok_or_else(|| {
        let offered: Vec<&str> = state.shipping_methods.keys().map(String::as_str).collect();
        ApiError::invalid_field(field, format!("one of {}", offered.join(", ")))
    })?;
    let method = domain::cart::ShippingMethodCode::parse(method)
        .map_err(|error| ApiError::invalid_field(field, error))?;
    Ok((method, Money::new(fee).map_err(ApiError::internal)?))
}

/// At login: the guest's active cart merged into the user's (opened for
/// the occasion when the user has none), the guest's claim released, in
/// one append. `None` when there was nothing to merge, which includes a
/// cart merged already: merging twice changes nothing.
pub async fn plan_merge_at_login(
    state: AppState,
    context: CommandContext,
    user_id: Uuid,
    guest: CartOwner,
) -> Result<Option<Plan>, ApiError> {
    let at = context.at;
    let guest_claim = load_key(&state, UniqueScope::ActiveCart, &active_cart_key(&guest)).await?;
    let Some(guest_cart) = active_cart_of(&state, &guest_claim, at).await? else {
        return Ok(None);
    };
    let guest_cart_id: Uuid = guest_cart.stream_id.parse().map_err(ApiError::internal)?;
    let user = CartOwner::User { user_id };
    let user_claim = load_key(&state, UniqueScope::ActiveCart, &active_cart_key(&user)).await?;
    let (user_cart, mut user_events, user_cart_id) =
        match active_cart_of(&state, &user_claim, at).await? {
            Some(cart) => {
                let id = cart.stream_id.parse().map_err(ApiError::internal)?;
                (cart, Vec::new(), id)
            }
            None => {
                let id = Uuid::now_v7();
                let cart = load::<Cart>(&state.store, &state.upcasters, &id.to_string()).await?;
                let opened = cart
                    .decide(
                        CartCommand::OpenCart {
                            cart_id: id,
                            owner: user.clone(),
                            existing_active_cart_for_owner: None,
                            at,
                        },
                        &state.cart_policy,
                    )
                    .await?;
                (cart, opened, id)
            }
        };
    let mut user_state = user_cart.aggregate.clone();
    for event in &user_events {
        user_state.apply(event.clone());
    }
    let outcome = domain::cart::merge_guest_cart_with(
        &state.cart_policy,
        &user_state,
        &guest_cart.aggregate,
        guest_cart_id,
        at,
    )?;
    user_events.extend(outcome.user_cart_events);
    let released = guest_claim
        .aggregate
        .release(
            UniqueScope::ActiveCart,
            &active_cart_key(&guest),
            guest_cart_id,
        )
        .map_err(ApiError::internal)?;
    Ok(Some(Plan::updated(
        user_cart_id,
        vec![
            user_cart.append(&user_events),
            guest_cart.append(&outcome.guest_cart_events),
            guest_claim.append(&released),
            user_claim.append(&claim_for(&user_claim, &user, user_cart_id)),
        ],
    )))
}
