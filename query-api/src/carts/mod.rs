//! Carts: one cart by id, for its owner only: the Redis cart cache first
//! (the owner's current cart), then the Mongo `carts` documents. The owner
//! is the signed-in user, or, without a session, the guest whose cart
//! session (`X-Cart-Session`, which the command API hands out on the guest's
//! first cart write) the request carries, as the command API decides it.
//! Anyone else's cart does not exist for the reader (404), an admin's
//! reading included: a cart is personal, not catalog data.

mod cache;
mod documents;

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use domain::cart::CartLineKey;
use infrastructure::consistency::{CART_CACHE, CART_DOCUMENTS};
use infrastructure::relay::error_chain;
use infrastructure::sessions::SessionToken;
use infrastructure::views::carts::{CachedCart, CartAddress, CartOwnerView};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub use cache::RedisCartCache;
pub use documents::MongoCartDocuments;

use crate::auth::Viewer;
use crate::consistency::ReadAfter;
use crate::error::{ApiError, InvalidParam, StoreError};
use crate::extract::ApiPath;
use crate::openapi::NotFound;
use crate::products::X_CACHE;
use crate::startup::AppState;
use crate::BoxFuture;

/// The header that carries a guest's cart session.
pub static X_CART_SESSION: HeaderName = HeaderName::from_static("x-cart-session");

/// Port: the cart cache the projector maintains, one entry per owner (their
/// current cart). Read-only here: the projector owns the entries and their
/// version guard.
pub trait CartCache: Send + Sync {
    /// The owner's current cart, or `None` on a miss.
    fn get<'a>(
        &'a self,
        owner: &'a CartOwnerView,
    ) -> BoxFuture<'a, Result<Option<CachedCart>, StoreError>>;

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// Port: the cart documents, one per open cart.
pub trait CartDocuments: Send + Sync {
    /// The cart's document with its owner, or `None` when there is none.
    fn get(&self, id: Uuid) -> BoxFuture<'_, Result<Option<StoredCart>, StoreError>>;

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// A cart document as stored, with its owner.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCart {
    pub owner: CartOwnerView,
    pub cart: CachedCart,
}

/// A cart as its owner reads it. Money is a string with two decimals.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CartView {
    pub id: Uuid,
    pub owner: CartOwnerView,
    pub items: Vec<CartItemView>,
    pub summary: CartSummaryView,
    /// Held for checkout, which validates and prices it.
    pub coupon_code: Option<String>,
    pub shipping_address: Option<ShippingAddressView>,
    /// The chosen method's code; its fee is `summary.shipping_fee`.
    pub shipping_method: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The cart ends unless it changes before then.
    pub expires_at: DateTime<Utc>,
}

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CartItemView {
    /// The line's stable id (of its product, variant and options), as the
    /// command API's `/v1/carts/{id}/items/{item_id}` names it.
    pub item_id: Uuid,
    pub product_id: Uuid,
    pub product_variant_id: Option<Uuid>,
    pub sku: String,
    pub name: String,
    pub image_url: Option<String>,
    pub quantity: u32,
    /// The effective price when the line was put in the cart.
    pub unit_price: Decimal,
    pub total_price: Decimal,
    pub options: BTreeMap<String, String>,
    pub added_at: DateTime<Utc>,
}

/// The cart's summary. `estimated_total` is `subtotal + estimated_tax`
/// (VAT 7%, rounded once); the chosen method's `shipping_fee` is beside it,
/// not in it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CartSummaryView {
    /// The sum of the lines' quantities.
    pub item_count: u64,
    pub subtotal: Decimal,
    pub estimated_tax: Decimal,
    pub estimated_total: Decimal,
    pub shipping_fee: Option<Decimal>,
}

/// The address a cart holds for checkout.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ShippingAddressView {
    pub first_name: String,
    pub last_name: String,
    pub company: Option<String>,
    pub street_address_1: String,
    pub street_address_2: Option<String>,
    pub city: String,
    pub state_province: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub phone: Option<String>,
}

fn money(mut amount: Decimal) -> Decimal {
    amount.rescale(2);
    amount
}

impl CartView {
    /// The view of `cart`, owned by `owner`, as both stores answer it.
    pub fn of(owner: CartOwnerView, cart: CachedCart) -> Self {
        Self {
            id: cart.cart_id,
            owner,
            items: cart
                .items
                .into_iter()
                .map(|item| CartItemView {
                    item_id: CartLineKey {
                        product_id: item.product_id,
                        variant_id: item.product_variant_id,
                        options: item.options.clone(),
                    }
                    .item_id(),
                    product_id: item.product_id,
                    product_variant_id: item.product_variant_id,
                    sku: item.sku,
                    name: item.name,
                    image_url: item.image_url,
                    quantity: item.quantity,
                    unit_price: money(item.unit_price),
                    total_price: money(item.total_price),
                    options: item.options,
                    added_at: item.added_at,
                })
                .collect(),
            summary: CartSummaryView {
                item_count: cart.summary.item_count,
                subtotal: money(cart.summary.subtotal),
                estimated_tax: money(cart.summary.estimated_tax),
                estimated_total: money(cart.summary.estimated_total),
                shipping_fee: cart.summary.shipping_fee.map(money),
            },
            coupon_code: cart.coupon_code,
            shipping_address: cart.shipping_address.map(address_view),
            shipping_method: cart.shipping_method,
            created_at: cart.created_at,
            updated_at: cart.updated_at,
            expires_at: cart.expires_at,
        }
    }
}

fn address_view(address: CartAddress) -> ShippingAddressView {
    ShippingAddressView {
        first_name: address.first_name,
        last_name: address.last_name,
        company: address.company,
        street_address_1: address.street_address_1,
        street_address_2: address.street_address_2,
        city: address.city,
        state_province: address.state_province,
        postal_code: address.postal_code,
        country: address.country,
        phone: address.phone,
    }
}

/// Whose carts the request may read: the signed-in user, else the guest
/// whose cart session it carries (by the session's digest, as the command
/// API keys guests), else nobody. A cart session that is not one the
/// command API hands out is a 400.
pub fn requester(viewer: &Viewer, headers: &HeaderMap) -> Result<Option<CartOwnerView>, ApiError> {
    if let Viewer::User(session) = viewer {
        return Ok(Some(CartOwnerView::User {
            user_id: session.user_id,
        }));
    }
    let Some(value) = headers.get(&X_CART_SESSION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(SessionToken::parse)
        .ok_or_else(|| {
            ApiError::invalid_params(vec![InvalidParam::new(
                "X-Cart-Session",
                "not a cart session the command API handed out",
            )])
        })?;
    Ok(Some(CartOwnerView::Guest {
        session_id: token.digest(),
    }))
}

/// `GET /v1/carts/{id}`
#[utoipa::path(
    get,
    path = "/v1/carts/{id}",
    tag = "carts",
    operation_id = "get_cart",
    summary = "One cart, for its owner",
    description = "From the Redis cart cache (the owner's current cart), else the Mongo cart documents; \
        `X-Cache` says which. Only the cart's owner reads it: the signed-in user, or without a session the \
        guest whose `X-Cart-Session` it was opened with. For anyone else (another customer, a guest without \
        the session, an admin) it does not exist (404), and so does a cart that was checked out, expired or \
        merged.",
    security((), ("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "The cart"),
        ("X-Cart-Session" = Option<String>, Header,
            description = "A guest's cart session, as the command API answered it on the guest's first cart \
                write; ignored with a session. One the command API did not hand out is a 400."),
    ),
    responses(
        (status = 200, description = "The cart", body = CartView,
            headers(("X-Cache" = String, description = "`hit` (Redis) or `miss` (MongoDB)"))),
        (status = 404, response = NotFound),
    ),
)]
#[tracing::instrument(name = "get_cart", skip_all, fields(cart_id = %id))]
pub async fn get_cart(
    State(state): State<AppState>,
    viewer: Viewer,
    ApiPath(id): ApiPath<Uuid>,
    read_after: ReadAfter,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("cart {id} does not exist"));
    // Nobody to own a cart: no store can change the answer.
    let Some(owner) = requester(&viewer, &headers)? else {
        return Err(not_found());
    };
    state
        .read_after(read_after, &[CART_CACHE, CART_DOCUMENTS])
        .await?;
    match owned_cart(&state, &owner, id).await? {
        Some((cart, source)) => Ok(with_cache_header(CartView::of(owner, cart), source)),
        None => Err(not_found()),
    }
}

/// Cart `id` when `owner` owns it and it is still open, with where it was
/// read (`hit`: the Redis cache, `miss`: the Mongo documents). A cart past
/// its expiry is over, whether or not a TTL has removed it.
pub async fn owned_cart(
    state: &AppState,
    owner: &CartOwnerView,
    id: Uuid,
) -> Result<Option<(CachedCart, &'static str)>, ApiError> {
    let now = Utc::now();
    match state.cart_cache.get(owner).await {
        Ok(Some(cached)) if cached.cart_id == id && cached.expires_at > now => {
            tracing::debug!("cart cache hit");
            return Ok(Some((cached, "hit")));
        }
        Ok(_) => tracing::debug!("cart cache miss"),
        Err(error) => tracing::warn!(
            error = %error_chain(&error),
            "cart cache unavailable, reading the cart documents"
        ),
    }
    Ok(match state.cart_documents.get(id).await? {
        Some(stored) if &stored.owner == owner && stored.cart.expires_at > now => {
            Some((stored.cart, "miss"))
        }
        _ => None,
    })
}

fn with_cache_header(view: CartView, value: &'static str) -> Response {
    let mut response = Json(view).into_response();
    response
        .headers_mut()
        .insert(X_CACHE.clone(), HeaderValue::from_static(value));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_in_user_owns_by_id_and_a_guest_by_the_digest_of_the_session() {
        let mut headers = HeaderMap::new();
        assert_eq!(requester(&Viewer::Guest, &headers).unwrap(), None);
        let token = "A".repeat(43);
        headers.insert(&X_CART_SESSION, token.parse().unwrap());
        let expected = SessionToken::parse(&token).unwrap().digest();
        assert_eq!(
            requester(&Viewer::Guest, &headers).unwrap(),
            Some(CartOwnerView::Guest {
                session_id: expected
            })
        );
        headers.insert(&X_CART_SESSION, "not-a-session".parse().unwrap());
        assert!(matches!(
            requester(&Viewer::Guest, &headers),
            Err(ApiError::BadRequest { .. })
        ));
    }
}
