//! The cart as its two read models store it, shared by the projectors that
//! write them and the query API that reads them: the Mongo `carts` document
//! ([`CartDocument`], the seed's "Cart Schema (MongoDB)") and the Redis
//! `cart:{owner}` entry ([`CachedCart`], the seed's `{items, summary,
//! updatedAt}`), with the keys and collection names both sides use.
//!
//! Both hold the seed's fields under the seed's names, and beyond them only
//! what a shopper's cart view needs and the seed has no place for: each
//! line's `sku`, `name` and `imageUrl` (the cart shows them without a catalog
//! read, and keeps the name and picture the shopper chose even if the
//! product changes), `summary.shippingFee` (the quoted fee of the chosen
//! method, which the seed's `estimatedTotal` leaves out), and the cart's
//! `couponCode`, `shippingAddress` and `shippingMethod` (what checkout will
//! use). The Redis entry also carries `cartId`, so that a reader can check
//! the cart it asked for is the owner's current one, and `createdAt` and
//! `expiresAt`, so that a hit answers exactly what the document would.
//!
//! Money is exact everywhere: BSON Decimal128 in Mongo, the API's two-decimal
//! strings in Redis, never a float. Times are kept to the millisecond, which
//! is what BSON dates hold, so both stores give the same instants.

use std::collections::BTreeMap;

use bson::{Decimal128, Document};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The seed's cart collection.
pub const CARTS_COLLECTION: &str = "carts";

/// Whose cart it is: a signed-in user, or a guest named by the digest of
/// their cart session (the command API never stores the session token
/// itself). Serialized as `{"type": "user", "user_id": ...}` or
/// `{"type": "guest", "session_id": ...}`, as the domain's `CartOwner` is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CartOwnerView {
    User { user_id: Uuid },
    Guest { session_id: String },
}

/// The Redis entry of an owner's current cart: the seed's `items`, `summary`
/// and `updatedAt`, with `cartId`, `createdAt`, `expiresAt` and the extras
/// of the module's documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedCart {
    pub cart_id: Uuid,
    pub items: Vec<CachedCartItem>,
    pub summary: CachedCartSummary,
    pub coupon_code: Option<String>,
    pub shipping_address: Option<CartAddress>,
    pub shipping_method: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One line, as the seed's `items[]` holds it, with `sku`, `name` and
/// `imageUrl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedCartItem {
    pub product_id: Uuid,
    pub product_variant_id: Option<Uuid>,
    pub quantity: u32,
    pub unit_price: Decimal,
    pub total_price: Decimal,
    pub added_at: DateTime<Utc>,
    pub options: BTreeMap<String, String>,
    pub sku: String,
    pub name: String,
    pub image_url: Option<String>,
}

/// The seed's `summary`, with the chosen method's `shippingFee`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedCartSummary {
    pub item_count: u64,
    pub subtotal: Decimal,
    pub estimated_tax: Decimal,
    pub estimated_total: Decimal,
    pub shipping_fee: Option<Decimal>,
}

/// The shipping address a cart holds for checkout (the seed's address
/// columns, camel-cased as the rest of the document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartAddress {
    pub first_name: String,
    pub last_name: String,
    pub company: Option<String>,
    pub street_address_1: String,
    pub street_address_2: Option<String>,
    pub city: String,
    pub state_province: String,
    pub postal_code: String,
    pub country: String,
    pub phone: Option<String>,
}

/// The Redis key of an owner's cart entry, under the prefix of the cache's
/// generation ([`cart_cache_generation_prefix`]): the seed's `cart:{userId}`
/// for a user, `cart:guest:{sessionId}` for a guest.
pub fn cart_cache_key(prefix: &str, owner: &CartOwnerView) -> String {
    match owner {
        CartOwnerView::User { user_id } => format!("{prefix}cart:{user_id}"),
        CartOwnerView::Guest { session_id } => format!("{prefix}cart:guest:{session_id}"),
    }
}

/// The key naming the cart cache's live generation; absent means 0.
pub fn cart_cache_generation_key(prefix: &str) -> String {
    format!("{prefix}generation:cart-cache")
}

/// The prefix of one generation of the cart cache, in the product cache's
/// scheme: the configured prefix itself for generation 0 (which keeps the
/// seed's `cart:{userId}` right after it), `{prefix}g{N}:` for a later one.
/// The two caches never share a key under one prefix (`cart:` beside
/// `product:`), whatever their generation numbers.
pub fn cart_cache_generation_prefix(prefix: &str, generation: u64) -> String {
    super::product_cache_generation_prefix(prefix, generation)
}

/// Why a stored cart document cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum CartDocumentError {
    #[error("cart document is not in the seed's shape: {0}")]
    Shape(#[from] bson::de::Error),
    #[error("cart document field {field} holds {value:?}, which is not {expected}")]
    Value {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cart document names neither a userId nor a sessionId")]
    NoOwner,
}

/// A `carts` document as stored: the seed's fields (`userId` or
/// `sessionId`, `items`, `summary`, `createdAt`, `updatedAt`, `expiresAt`),
/// the extras, and `_version`, the cart stream's version it was folded to,
/// which guards every write against a redelivered or older event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartDocument {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    pub items: Vec<CartDocumentItem>,
    pub summary: CartDocumentSummary,
    pub coupon_code: Option<String>,
    pub shipping_address: Option<CartAddress>,
    pub shipping_method: Option<String>,
    pub created_at: bson::DateTime,
    pub updated_at: bson::DateTime,
    pub expires_at: bson::DateTime,
    #[serde(rename = "_version")]
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartDocumentItem {
    pub product_id: String,
    pub product_variant_id: Option<String>,
    pub quantity: i64,
    pub unit_price: Decimal128,
    pub total_price: Decimal128,
    pub added_at: bson::DateTime,
    pub options: BTreeMap<String, String>,
    pub sku: String,
    pub name: String,
    pub image_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartDocumentSummary {
    pub item_count: i64,
    pub subtotal: Decimal128,
    pub estimated_tax: Decimal128,
    pub estimated_total: Decimal128,
    pub shipping_fee: Option<Decimal128>,
}

/// An amount as BSON Decimal128, built from its decimal text so that no
/// digit is lost (a `Decimal` always prints as a plain decimal number,
/// which Decimal128 parses exactly).
pub fn decimal128(amount: Decimal) -> Decimal128 {
    amount
        .to_string()
        .parse()
        .expect("a decimal's text is a Decimal128")
}

fn decimal_of(field: &'static str, value: &Decimal128) -> Result<Decimal, CartDocumentError> {
    let text = value.to_string();
    let mut amount: Decimal = text.parse().map_err(|_| CartDocumentError::Value {
        field,
        value: text.clone(),
        expected: "an amount",
    })?;
    amount.rescale(2);
    Ok(amount)
}

fn uuid_of(field: &'static str, text: &str) -> Result<Uuid, CartDocumentError> {
    text.parse().map_err(|_| CartDocumentError::Value {
        field,
        value: text.to_owned(),
        expected: "a UUID",
    })
}

fn date(at: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(at.timestamp_millis())
}

fn chrono_of(at: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `at` to the millisecond, as a BSON date holds it.
pub fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

impl CartDocument {
    pub fn new(owner: &CartOwnerView, cart: &CachedCart, version: i64) -> Self {
        let (user_id, session_id) = match owner {
            CartOwnerView::User { user_id } => (Some(user_id.to_string()), None),
            CartOwnerView::Guest { session_id } => (None, Some(session_id.clone())),
        };
        Self {
            id: cart.cart_id.to_string(),
            user_id,
            session_id,
            items: cart
                .items
                .iter()
                .map(|item| CartDocumentItem {
                    product_id: item.product_id.to_string(),
                    product_variant_id: item.product_variant_id.map(|id| id.to_string()),
                    quantity: i64::from(item.quantity),
                    unit_price: decimal128(item.unit_price),
                    total_price: decimal128(item.total_price),
                    added_at: date(item.added_at),
                    options: item.options.clone(),
                    sku: item.sku.clone(),
                    name: item.name.clone(),
                    image_url: item.image_url.clone(),
                })
                .collect(),
            summary: CartDocumentSummary {
                item_count: i64::try_from(cart.summary.item_count).unwrap_or(i64::MAX),
                subtotal: decimal128(cart.summary.subtotal),
                estimated_tax: decimal128(cart.summary.estimated_tax),
                estimated_total: decimal128(cart.summary.estimated_total),
                shipping_fee: cart.summary.shipping_fee.map(decimal128),
            },
            coupon_code: cart.coupon_code.clone(),
            shipping_address: cart.shipping_address.clone(),
            shipping_method: cart.shipping_method.clone(),
            created_at: date(cart.created_at),
            updated_at: date(cart.updated_at),
            expires_at: date(cart.expires_at),
            version,
        }
    }

    pub fn to_document(&self) -> Document {
        bson::to_document(self).expect("a cart document serializes to BSON")
    }

    pub fn from_document(document: Document) -> Result<Self, CartDocumentError> {
        Ok(bson::from_document(document)?)
    }

    /// The owner, the cart and the version the document holds.
    pub fn into_parts(self) -> Result<(CartOwnerView, CachedCart, i64), CartDocumentError> {
        let owner = match (self.user_id, self.session_id) {
            (Some(user_id), _) => CartOwnerView::User {
                user_id: uuid_of("userId", &user_id)?,
            },
            (None, Some(session_id)) => CartOwnerView::Guest { session_id },
            (None, None) => return Err(CartDocumentError::NoOwner),
        };
        let items = self
            .items
            .into_iter()
            .map(|item| {
                Ok(CachedCartItem {
                    product_id: uuid_of("items.productId", &item.product_id)?,
                    product_variant_id: item
                        .product_variant_id
                        .as_deref()
                        .map(|id| uuid_of("items.productVariantId", id))
                        .transpose()?,
                    quantity: u32::try_from(item.quantity).map_err(|_| {
                        CartDocumentError::Value {
                            field: "items.quantity",
                            value: item.quantity.to_string(),
                            expected: "a count of units",
                        }
                    })?,
                    unit_price: decimal_of("items.unitPrice", &item.unit_price)?,
                    total_price: decimal_of("items.totalPrice", &item.total_price)?,
                    added_at: chrono_of(item.added_at),
                    options: item.options,
                    sku: item.sku,
                    name: item.name,
                    image_url: item.image_url,
                })
            })
            .collect::<Result<Vec<_>, CartDocumentError>>()?;
        let summary = CachedCartSummary {
            item_count: u64::try_from(self.summary.item_count).map_err(|_| {
                CartDocumentError::Value {
                    field: "summary.itemCount",
                    value: self.summary.item_count.to_string(),
                    expected: "a count of units",
                }
            })?,
            subtotal: decimal_of("summary.subtotal", &self.summary.subtotal)?,
            estimated_tax: decimal_of("summary.estimatedTax", &self.summary.estimated_tax)?,
            estimated_total: decimal_of("summary.estimatedTotal", &self.summary.estimated_total)?,
            shipping_fee: self
                .summary
                .shipping_fee
                .as_ref()
                .map(|fee| decimal_of("summary.shippingFee", fee))
                .transpose()?,
        };
        let cart = CachedCart {
            cart_id: uuid_of("_id", &self.id)?,
            items,
            summary,
            coupon_code: self.coupon_code,
            shipping_address: self.shipping_address,
            shipping_method: self.shipping_method,
            created_at: chrono_of(self.created_at),
            updated_at: chrono_of(self.updated_at),
            expires_at: chrono_of(self.expires_at),
        };
        Ok((owner, cart, self.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::Bson;

    fn seed_cart() -> (CartOwnerView, CachedCart) {
        let at: DateTime<Utc> = "2024-01-15T10:30:00Z".parse().unwrap();
        let owner = CartOwnerView::User {
            user_id: Uuid::from_u128(1),
        };
        let cart = CachedCart {
            cart_id: Uuid::from_u128(2),
            items: vec![CachedCartItem {
                product_id: Uuid::from_u128(3),
                product_variant_id: None,
                quantity: 2,
                unit_price: Decimal::new(3_590_000, 2),
                total_price: Decimal::new(7_180_000, 2),
                added_at: at,
                options: [("color".to_owned(), "black".to_owned())].into(),
                sku: "IPH-15-PRO".into(),
                name: "iPhone 15 Pro".into(),
                image_url: None,
            }],
            summary: CachedCartSummary {
                item_count: 2,
                subtotal: Decimal::new(7_180_000, 2),
                estimated_tax: Decimal::new(502_600, 2),
                estimated_total: Decimal::new(7_682_600, 2),
                shipping_fee: None,
            },
            coupon_code: None,
            shipping_address: None,
            shipping_method: None,
            created_at: at,
            updated_at: at,
            expires_at: at,
        };
        (owner, cart)
    }

    #[test]
    fn a_document_has_the_seed_fields_with_decimal128_money_and_reads_back() {
        let (owner, cart) = seed_cart();
        let document = CartDocument::new(&owner, &cart, 3).to_document();
        assert_eq!(
            document.get_str("userId").unwrap(),
            Uuid::from_u128(1).to_string()
        );
        assert!(!document.contains_key("sessionId"));
        let item = &document.get_array("items").unwrap()[0];
        let item = item.as_document().unwrap();
        assert_eq!(
            item.get("unitPrice"),
            Some(&Bson::Decimal128("35900.00".parse().unwrap()))
        );
        assert_eq!(item.get("productVariantId"), Some(&Bson::Null));
        let summary = document.get_document("summary").unwrap();
        assert_eq!(
            summary.get("estimatedTotal"),
            Some(&Bson::Decimal128("76826.00".parse().unwrap()))
        );
        assert!(matches!(document.get("expiresAt"), Some(Bson::DateTime(_))));
        let (read_owner, read_cart, version) = CartDocument::from_document(document)
            .unwrap()
            .into_parts()
            .unwrap();
        assert_eq!((read_owner, read_cart, version), (owner, cart, 3));
    }

    #[test]
    fn the_cached_entry_keeps_money_as_two_decimal_strings() {
        let (_, cart) = seed_cart();
        let json = serde_json::to_value(&cart).unwrap();
        assert_eq!(json["items"][0]["unitPrice"], "35900.00");
        assert_eq!(json["summary"]["estimatedTax"], "5026.00");
        assert_eq!(json["cartId"], Uuid::from_u128(2).to_string());
    }

    #[test]
    fn keys_follow_the_seed_for_users_and_name_guests_apart() {
        let user = CartOwnerView::User {
            user_id: Uuid::nil(),
        };
        let guest = CartOwnerView::Guest {
            session_id: "ab12".into(),
        };
        assert_eq!(
            cart_cache_key("p:", &user),
            "p:cart:00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(cart_cache_key("p:", &guest), "p:cart:guest:ab12");
        assert_eq!(cart_cache_generation_prefix("p:", 0), "p:");
        assert_eq!(cart_cache_generation_prefix("p:", 2), "p:g2:");
    }
}
