//! The cart's value types: who owns it, its lines, the shipping choice, the
//! summary every change recomputes, and the policy (line cap, time to live).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{
    bounded_text, forbidden_character, vat_on, Money, Quantity, Sku, TextError, TextLayout, Url,
    ValueError,
};

use super::CartError;

/// A guest's session token: 1 to 128 visible ASCII characters, kept exactly as
/// issued (tokens are case-sensitive, so no normalization).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

impl SessionId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let invalid = |reason| ValueError::Text {
            field: "session_id",
            reason,
        };
        if raw.is_empty() {
            return Err(invalid(TextError::Blank));
        }
        if let Some((index, character)) =
            raw.chars().enumerate().find(|(_, c)| !c.is_ascii_graphic())
        {
            return Err(invalid(TextError::ForbiddenCharacter { character, index }));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(invalid(TextError::TooLong {
                max: Self::MAX_LEN,
                length: raw.len(),
            }));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SessionId {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SessionId> for String {
    fn from(value: SessionId) -> String {
        value.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A shipping method code as the seed's `orders.shipping_method VARCHAR(50)`
/// holds it: trimmed, 1 to 50 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShippingMethodCode(String);

impl ShippingMethodCode {
    pub const MAX_LEN: usize = 50;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        bounded_text("shipping_method", raw, Self::MAX_LEN).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ShippingMethodCode {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ShippingMethodCode> for String {
    fn from(value: ShippingMethodCode) -> String {
        value.0
    }
}

impl fmt::Display for ShippingMethodCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose cart it is: a signed-in user (the seed's `userId`) or a guest session
/// (`sessionId`). Serialized as `{"type": "user", "user_id": ...}` /
/// `{"type": "guest", "session_id": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CartOwner {
    User { user_id: Uuid },
    Guest { session_id: SessionId },
}

impl CartOwner {
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            CartOwner::User { user_id } => Some(*user_id),
            CartOwner::Guest { .. } => None,
        }
    }

    pub fn session_id(&self) -> Option<&SessionId> {
        match self {
            CartOwner::Guest { session_id } => Some(session_id),
            CartOwner::User { .. } => None,
        }
    }

    /// The owner as one key (`user:<id>`, `guest:<session>`): the key of the
    /// owner's active-cart claim and of the Redis `cart:` entry.
    pub fn key(&self) -> String {
        match self {
            CartOwner::User { user_id } => format!("user:{user_id}"),
            CartOwner::Guest { session_id } => format!("guest:{session_id}"),
        }
    }
}

/// Where a cart is in its life. `NotOpened` is the state of an empty stream and
/// never appears in an event; the other four are the cart document's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CartStatus {
    #[default]
    NotOpened,
    Active,
    CheckedOut,
    Expired,
    Merged,
}

/// What the catalog says about a product (or variant) at the moment it is put
/// in the cart. The command side reads it from the catalog; `unit_price` is the
/// effective price then (sale price when one applies, else the regular or
/// variant price).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogItem {
    pub product_id: Uuid,
    pub variant_id: Option<Uuid>,
    pub sku: Sku,
    pub name: String,
    pub unit_price: Money,
    pub is_active: bool,
    pub image_url: Option<Url>,
}

/// What identifies a line: the same product, variant and options are one line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CartLineKey {
    pub product_id: Uuid,
    pub variant_id: Option<Uuid>,
    pub options: BTreeMap<String, String>,
}

impl CartLineKey {
    /// The line's id in the API (`/v1/carts/{id}/items/{item_id}`): a name-based
    /// UUID (v5) of the key, so the same product, variant and options always
    /// name the same line, in the command API and in every read model, without
    /// an id stored anywhere.
    pub fn item_id(&self) -> Uuid {
        /// The namespace of cart line ids (a v4 drawn once).
        const CART_LINES: Uuid = Uuid::from_u128(0x6f1e_2b9c_8d4a_4c1e_9a37_52e0_b6d1_c803);
        let canonical = serde_json::json!([self.product_id, self.variant_id, self.options]);
        Uuid::new_v5(&CART_LINES, canonical.to_string().as_bytes())
    }
}

/// One line of the cart, as the seed's `items[]` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartItem {
    pub product_id: Uuid,
    pub variant_id: Option<Uuid>,
    pub sku: Sku,
    pub name: String,
    pub unit_price: Money,
    pub quantity: Quantity,
    /// `unit_price × quantity`, exact (no rounding: both have at most 2 decimals).
    pub total_price: Money,
    pub options: BTreeMap<String, String>,
    pub image_url: Option<Url>,
    pub added_at: DateTime<Utc>,
}

impl CartItem {
    pub fn key(&self) -> CartLineKey {
        CartLineKey {
            product_id: self.product_id,
            variant_id: self.variant_id,
            options: self.options.clone(),
        }
    }

    pub(super) fn matches(&self, key: &CartLineKey) -> bool {
        self.product_id == key.product_id
            && self.variant_id == key.variant_id
            && self.options == key.options
    }

    /// The same line at another quantity, its total recomputed.
    pub(super) fn with_quantity(&self, quantity: Quantity) -> Result<CartItem, CartError> {
        Ok(CartItem {
            quantity,
            total_price: line_total(self.unit_price, quantity)?,
            ..self.clone()
        })
    }
}

/// The chosen shipping method and the fee quoted for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingSelection {
    pub method: ShippingMethodCode,
    pub fee: Money,
}

/// The seed's cart `summary`. `estimated_total` is `subtotal + estimated_tax`
/// and leaves shipping out, as the seed's example does (71800 + 5026 = 76826);
/// the selected method's fee is shown beside it as `shipping_fee`. Coupon
/// discounts are not estimated here: the coupon is validated and priced at
/// checkout.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CartSummary {
    /// The sum of line quantities (the seed's `itemCount`: 2 × one product is 2).
    pub item_count: u64,
    pub subtotal: Money,
    pub estimated_tax: Money,
    pub estimated_total: Money,
    pub shipping_fee: Option<Money>,
}

impl CartSummary {
    /// Recomputes the summary from the lines: VAT rounded once on the subtotal,
    /// never per line.
    pub fn compute(
        items: &[CartItem],
        shipping: Option<&ShippingSelection>,
    ) -> Result<CartSummary, CartError> {
        let subtotal_amount: Decimal = items.iter().map(|i| i.total_price.amount()).sum();
        let subtotal = money(subtotal_amount)?;
        let estimated_tax = vat_on(subtotal);
        let estimated_total = money(subtotal.amount() + estimated_tax.amount())?;
        Ok(CartSummary {
            item_count: items.iter().map(|i| u64::from(i.quantity.get())).sum(),
            subtotal,
            estimated_tax,
            estimated_total,
            shipping_fee: shipping.map(|s| s.fee),
        })
    }
}

/// The cart rules that are configuration rather than law.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartPolicy {
    /// The most units one line may hold.
    pub max_quantity_per_line: u32,
    /// How long a cart lives after its last change.
    pub ttl: chrono::Duration,
}

impl Default for CartPolicy {
    fn default() -> Self {
        Self {
            max_quantity_per_line: 10,
            ttl: chrono::Duration::days(7),
        }
    }
}

impl CartPolicy {
    /// The line cap actually enforced: a line is a `Quantity`, so at least 1
    /// and never more than `Quantity::MAX`, whatever the configuration says.
    pub fn line_cap(&self) -> u32 {
        self.max_quantity_per_line.clamp(1, Quantity::MAX)
    }
}

/// A guest cart as the user cart's `MergeGuestCart` command receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestCartSnapshot {
    pub cart_id: Uuid,
    pub items: Vec<CartItem>,
}

pub(super) fn line_total(unit_price: Money, quantity: Quantity) -> Result<Money, CartError> {
    unit_price
        .times(quantity)
        .map_err(|_| CartError::AmountOutOfRange {
            amount: unit_price.amount() * Decimal::from(quantity.get()),
        })
}

fn money(amount: Decimal) -> Result<Money, CartError> {
    Money::new(amount).map_err(|_| CartError::AmountOutOfRange { amount })
}

/// Option names and values are free text from the storefront; they only need
/// to be present, printable on one line and of a storable size.
pub(super) fn check_options(options: &BTreeMap<String, String>) -> Result<(), CartError> {
    const MAX_NAME: usize = 50;
    const MAX_VALUE: usize = 255;
    for (name, value) in options {
        let printable = |text: &str| forbidden_character(text, TextLayout::SingleLine).is_none();
        let name_ok =
            !name.trim().is_empty() && name.chars().count() <= MAX_NAME && printable(name);
        let value_ok =
            !value.trim().is_empty() && value.chars().count() <= MAX_VALUE && printable(value);
        if !name_ok || !value_ok {
            return Err(CartError::InvalidOption {
                name: name.clone(),
                value: value.clone(),
            });
        }
    }
    Ok(())
}
