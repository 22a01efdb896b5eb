//! Shopping carts (the seed's Mongo `carts` and Redis `cart:{owner}`): one
//! stream per cart, owned by a user or a guest session. The cart owns its
//! lines, the coupon code waiting for checkout, the shipping address and method,
//! the summary recomputed on every change, its sliding expiry, and the end of
//! its life: checked out into an order, expired, or merged into the user's cart
//! at sign-in. Decisions spanning carts (`open_cart`, `merge_guest_cart`) live
//! in `decisions`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{CouponCode, Money, PostalAddress, Quantity};

mod decisions;
mod model;
#[cfg(test)]
mod tests;

pub use decisions::{
    merge_guest_cart, merge_guest_cart_with, open_cart, open_cart_with, MergeOutcome,
};
pub use model::{
    CartItem, CartLineKey, CartOwner, CartPolicy, CartStatus, CartSummary, CatalogItem,
    GuestCartSnapshot, SessionId, ShippingMethodCode, ShippingSelection,
};

use model::{check_options, line_total};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    cart_id: Option<Uuid>,
    owner: Option<CartOwner>,
    status: CartStatus,
    items: Vec<CartItem>,
    coupon_code: Option<CouponCode>,
    shipping_address: Option<PostalAddress>,
    shipping_method: Option<ShippingSelection>,
    summary: CartSummary,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    order_id: Option<Uuid>,
    merged_into: Option<Uuid>,
    merged_guest_carts: BTreeSet<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartCommand {
    /// Opens the cart. `existing_active_cart_for_owner` is what the command side
    /// found for the owner (see `open_cart`).
    OpenCart {
        cart_id: Uuid,
        owner: CartOwner,
        existing_active_cart_for_owner: Option<Uuid>,
        at: DateTime<Utc>,
    },
    AddCartItem {
        item: CatalogItem,
        quantity: Quantity,
        options: BTreeMap<String, String>,
        at: DateTime<Utc>,
    },
    /// Sets the line to `quantity`; 0 removes it.
    ChangeCartItemQuantity {
        line: CartLineKey,
        quantity: u32,
        at: DateTime<Utc>,
    },
    RemoveCartItem {
        line: CartLineKey,
        at: DateTime<Utc>,
    },
    ApplyCoupon {
        code: CouponCode,
        at: DateTime<Utc>,
    },
    RemoveCoupon {
        at: DateTime<Utc>,
    },
    SetShippingAddress {
        address: PostalAddress,
        at: DateTime<Utc>,
    },
    SelectShippingMethod {
        method: ShippingMethodCode,
        fee: Money,
        at: DateTime<Utc>,
    },
    /// Sent to the user's cart; the guest stream's half comes from `merge_guest_cart`.
    MergeGuestCart {
        guest_cart: GuestCartSnapshot,
        at: DateTime<Utc>,
    },
    CheckOut {
        order_id: Uuid,
        at: DateTime<Utc>,
    },
    ExpireCart {
        at: DateTime<Utc>,
    },
}

/// Every event names the cart and its owner (the Redis key is the owner).
/// Line, coupon, shipping and merge events carry the whole line list and the
/// recomputed summary, so a projector replaces `items` and `summary` as they
/// are, and the new `expires_at` for the TTL index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CartEvent {
    CartOpened {
        cart_id: Uuid,
        owner: CartOwner,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    CartItemAdded {
        cart_id: Uuid,
        owner: CartOwner,
        /// The line after the addition (new, or an existing line grown).
        line: CartItem,
        quantity_added: Quantity,
        items: Vec<CartItem>,
        summary: CartSummary,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    CartItemQuantityChanged {
        cart_id: Uuid,
        owner: CartOwner,
        line: CartItem,
        previous_quantity: Quantity,
        items: Vec<CartItem>,
        summary: CartSummary,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    CartItemRemoved {
        cart_id: Uuid,
        owner: CartOwner,
        /// The line as it was before it went.
        line: CartItem,
        items: Vec<CartItem>,
        summary: CartSummary,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    CartCouponApplied {
        cart_id: Uuid,
        owner: CartOwner,
        coupon_code: CouponCode,
        previous_coupon_code: Option<CouponCode>,
        summary: CartSummary,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    CartCouponRemoved {
        cart_id: Uuid,
        owner: CartOwner,
        coupon_code: CouponCode,
        summary: CartSummary,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    CartShippingAddressSet {
        cart_id: Uuid,
        owner: CartOwner,
        address: PostalAddress,
        summary: CartSummary,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    CartShippingMethodSelected {
        cart_id: Uuid,
        owner: CartOwner,
        shipping_method: ShippingSelection,
        summary: CartSummary,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// On the user's cart: the guest cart's lines were merged in.
    GuestCartMerged {
        cart_id: Uuid,
        owner: CartOwner,
        guest_cart_id: Uuid,
        items: Vec<CartItem>,
        summary: CartSummary,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// On the guest's cart: it now lives on in the user's cart.
    CartMergedInto {
        cart_id: Uuid,
        owner: CartOwner,
        user_cart_id: Uuid,
        previous_status: CartStatus,
        status: CartStatus,
        at: DateTime<Utc>,
    },
    CartCheckedOut {
        cart_id: Uuid,
        owner: CartOwner,
        order_id: Uuid,
        previous_status: CartStatus,
        status: CartStatus,
        at: DateTime<Utc>,
    },
    CartExpired {
        cart_id: Uuid,
        owner: CartOwner,
        expires_at: DateTime<Utc>,
        previous_status: CartStatus,
        status: CartStatus,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for CartEvent {
    fn event_type(&self) -> String {
        match self {
            CartEvent::CartOpened { .. } => "CartOpened",
            CartEvent::CartItemAdded { .. } => "CartItemAdded",
            CartEvent::CartItemQuantityChanged { .. } => "CartItemQuantityChanged",
            CartEvent::CartItemRemoved { .. } => "CartItemRemoved",
            CartEvent::CartCouponApplied { .. } => "CartCouponApplied",
            CartEvent::CartCouponRemoved { .. } => "CartCouponRemoved",
            CartEvent::CartShippingAddressSet { .. } => "CartShippingAddressSet",
            CartEvent::CartShippingMethodSelected { .. } => "CartShippingMethodSelected",
            CartEvent::GuestCartMerged { .. } => "GuestCartMerged",
            CartEvent::CartMergedInto { .. } => "CartMergedInto",
            CartEvent::CartCheckedOut { .. } => "CartCheckedOut",
            CartEvent::CartExpired { .. } => "CartExpired",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("the cart has not been opened")]
    NotOpened,
    #[error("cart {cart_id} is already open")]
    AlreadyOpened { cart_id: Uuid },
    #[error("the owner already has the active cart {cart_id}")]
    OwnerHasActiveCart { cart_id: Uuid },
    #[error("product {product_id} is not available")]
    ProductNotAvailable { product_id: Uuid },
    #[error("a line may hold at most {max} units, {requested} requested")]
    QuantityAboveLimit { requested: u32, max: u32 },
    #[error("invalid item option {name:?} = {value:?}")]
    InvalidOption { name: String, value: String },
    #[error("no line for product {} in the cart", line.product_id)]
    LineNotFound { line: CartLineKey },
    #[error("amount {amount} is out of range")]
    AmountOutOfRange { amount: Decimal },
    #[error("the cart is empty")]
    Empty,
    #[error("the cart was checked out into order {order_id}")]
    AlreadyCheckedOut { order_id: Uuid },
    #[error("the cart expired at {expires_at}")]
    Expired { expires_at: DateTime<Utc> },
    #[error("the cart does not expire before {expires_at}")]
    NotYetExpired { expires_at: DateTime<Utc> },
    #[error("the cart was merged into cart {into_cart_id}")]
    Merged { into_cart_id: Uuid },
    #[error("cart {cart_id} is not a guest cart")]
    NotAGuestCart { cart_id: Uuid },
    #[error("cart {cart_id} is not a user cart")]
    NotAUserCart { cart_id: Uuid },
    #[error("cart {cart_id} cannot be merged into itself")]
    MergeIntoItself { cart_id: Uuid },
}

/// What every change starts from: the cart's id and owner, once it is known
/// to accept changes.
struct Open<'a> {
    cart_id: Uuid,
    owner: &'a CartOwner,
}

impl Cart {
    pub fn id(&self) -> Option<Uuid> {
        self.cart_id
    }

    pub fn owner(&self) -> Option<&CartOwner> {
        self.owner.as_ref()
    }

    pub fn status(&self) -> CartStatus {
        self.status
    }

    pub fn items(&self) -> &[CartItem] {
        &self.items
    }

    pub fn coupon_code(&self) -> Option<&CouponCode> {
        self.coupon_code.as_ref()
    }

    pub fn shipping_address(&self) -> Option<&PostalAddress> {
        self.shipping_address.as_ref()
    }

    pub fn shipping_method(&self) -> Option<&ShippingSelection> {
        self.shipping_method.as_ref()
    }

    pub fn summary(&self) -> &CartSummary {
        &self.summary
    }

    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at
    }

    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.updated_at
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }

    /// The order this cart was checked out into.
    pub fn order_id(&self) -> Option<Uuid> {
        self.order_id
    }

    /// The user cart this guest cart was merged into.
    pub fn merged_into(&self) -> Option<Uuid> {
        self.merged_into
    }

    /// Whether `guest_cart_id` has already been merged into this cart.
    pub fn has_merged(&self, guest_cart_id: Uuid) -> bool {
        self.merged_guest_carts.contains(&guest_cart_id)
    }

    /// Turns the cart into `order_id`. Idempotent per order, so a retried
    /// checkout does not fail on its own first attempt.
    pub fn check_out(
        &self,
        order_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Vec<CartEvent>, CartError> {
        if self.status == CartStatus::CheckedOut && self.order_id == Some(order_id) {
            return Ok(vec![]);
        }
        let open = self.open_for_change(at)?;
        if self.items.is_empty() {
            return Err(CartError::Empty);
        }
        Ok(vec![CartEvent::CartCheckedOut {
            cart_id: open.cart_id,
            owner: open.owner.clone(),
            order_id,
            previous_status: self.status,
            status: CartStatus::CheckedOut,
            at,
        }])
    }

    /// Ends a cart left alone for its time to live. Expiring an expired cart
    /// again changes nothing, so a sweeper can retry.
    pub fn expire(&self, at: DateTime<Utc>) -> Result<Vec<CartEvent>, CartError> {
        if self.status == CartStatus::Expired {
            return Ok(vec![]);
        }
        self.refuse_if_closed()?;
        let (cart_id, owner, expires_at) = self.identity()?;
        if at < expires_at {
            return Err(CartError::NotYetExpired { expires_at });
        }
        Ok(vec![CartEvent::CartExpired {
            cart_id,
            owner: owner.clone(),
            expires_at,
            previous_status: self.status,
            status: CartStatus::Expired,
            at,
        }])
    }

    /// Adds `quantity` of a catalog item: a new line, or more of the line with
    /// the same product, variant and options. The line takes the catalog's
    /// current price, name, sku and image, which the command brings.
    pub fn add_item(
        &self,
        item: CatalogItem,
        quantity: Quantity,
        options: BTreeMap<String, String>,
        policy: &CartPolicy,
        at: DateTime<Utc>,
    ) -> Result<Vec<CartEvent>, CartError> {
        let open = self.open_for_change(at)?;
        if !item.is_active {
            return Err(CartError::ProductNotAvailable {
                product_id: item.product_id,
            });
        }
        check_options(&options)?;
        let key = CartLineKey {
            product_id: item.product_id,
            variant_id: item.variant_id,
            options,
        };
        let position = self.items.iter().position(|line| line.matches(&key));
        let current = position.map_or(0, |i| self.items[i].quantity.get());
        let quantity_now = capped(current + quantity.get(), policy)?;
        let line = CartItem {
            product_id: item.product_id,
            variant_id: item.variant_id,
            sku: item.sku,
            name: item.name,
            unit_price: item.unit_price,
            quantity: quantity_now,
            total_price: line_total(item.unit_price, quantity_now)?,
            options: key.options,
            image_url: item.image_url,
            added_at: position.map_or(at, |i| self.items[i].added_at),
        };
        let mut items = self.items.clone();
        match position {
            Some(i) => items[i] = line.clone(),
            None => items.push(line.clone()),
        }
        let summary = CartSummary::compute(&items, self.shipping_method.as_ref())?;
        Ok(vec![CartEvent::CartItemAdded {
            cart_id: open.cart_id,
            owner: open.owner.clone(),
            line,
            quantity_added: quantity,
            items,
            summary,
            expires_at: at + policy.ttl,
            at,
        }])
    }

    /// Sets a line's quantity; 0 removes the line, the same quantity is a no-op.
    pub fn change_item_quantity(
        &self,
        key: &CartLineKey,
        quantity: u32,
        policy: &CartPolicy,
        at: DateTime<Utc>,
    ) -> Result<Vec<CartEvent>, CartError> {
        let open = self.open_for_change(at)?;
        let (position, line) = self.find_line(key)?;
        if quantity == 0 {
            return self.remove_item(key, policy, at);
        }
        if quantity == line.quantity.get() {
            return Ok(vec![]);
        }
        let changed = line.with_quantity(capped(quantity, policy)?)?;
        let mut items = self.items.clone();
        items[position] = changed.clone();
        let summary = CartSummary::compute(&items, self.shipping_method.as_ref())?;
        Ok(vec![CartEvent::CartItemQuantityChanged {
            cart_id: open.cart_id,
            owner: open.owner.clone(),
            line: changed,
            previous_quantity: line.quantity,
            items,
            summary,
            expires_at: at + policy.ttl,
            at,
        }])
    }

    pub fn remove_item(
        &self,
        key: &CartLineKey,
        policy: &CartPolicy,
        at: DateTime<Utc>,
    ) -> Result<Vec<CartEvent>, CartError> {
        let open = self.open_for_change(at)?;
        let (position, line) = self.find_line(key)?;
        let mut items = self.items.clone();
        items.remove(position);
        let summary = CartSummary::compute(&items, self.shipping_method.as_ref())?;
        Ok(vec![CartEvent::CartItemRemoved {
            cart_id: open.cart_id,
            owner: open.owner.clone(),
            line: line.clone(),
            items,
            summary,
            expires_at: at + policy.ttl,
            at,
        }])
    }

    /// One coupon at a time: a new code replaces the previous one (the event
    /// names both). Whether the code is valid is decided at checkout.
    pub fn apply_coupon(
        &self,
        code: CouponCode,
        policy: &CartPolicy,
        at: DateTime<Utc>,
    ) -> Result<Vec<CartEvent>, CartError> {
        let open = self.open_for_change(at)?;
        if self.coupon_code.as_ref() == Some(&code) {
            return Ok(vec![]);
        }
        Ok(vec![CartEvent::CartCouponApplied {
            cart_id: open.cart_id,
            owner: open.owner.clone(),
            coupon_code: code,
            previous_coupon_code: self.coupon_code.clone(),
            summary: self.summary.clone(),
            expires_at: at + policy.ttl,
            at,
        }])
    }

    /// Removing when no coupon is applied is a no-op.
    pub fn remove_coupon(
        &self,
        policy: &CartPolicy,
        at: DateTime<Utc>,
    ) -> Result<Vec<CartEvent>, CartError> {
        let open = self.open_for_change(at)?;
        let Some(code) = &self.coupon_code else {
            return Ok(vec![]);
        };
        Ok(vec![CartEvent::CartCouponRemoved {
            cart_id: open.cart_id,
            owner: open.owner.clone(),
            coupon_code: code.clone(),
            summary: self.summary.clone(),
            expires_at: at + policy.ttl,
            at,
        }])
    }

    pub fn set_shipping_address(
        &self,
        address: PostalAddress,
        policy: &CartPolicy,
        at: DateTime<Utc>,
    ) -> Result<Vec<CartEvent>, CartError> {
        let open = self.open_for_change(at)?;
        if self.shipping_address.as_ref() == Some(&address) {
            return Ok(vec![]);
        }
        Ok(vec![CartEvent::CartShippingAddressSet {
            cart_id: open.cart_id,
            owner: open.owner.clone(),
            address,
            summary: self.summary.clone(),
            expires_at: at + policy.ttl,
            at,
        }])
    }

    pub fn select_shipping_method(
        &self,
        method: ShippingMethodCode,
        fee: Money,
        policy: &CartPolicy,
        at: DateTime<Utc>,
    ) -> Result<Vec<CartEvent>, CartError> {
        let open = self.open_for_change(at)?;
        let selection = ShippingSelection { method, fee };
        if self.shipping_method.as_ref() == Some(&selection) {
            return Ok(vec![]);
        }
        let summary = CartSummary::compute(&self.items, Some(&selection))?;
        Ok(vec![CartEvent::CartShippingMethodSelected {
            cart_id: open.cart_id,
            owner: open.owner.clone(),
            shipping_method: selection,
            summary,
            expires_at: at + policy.ttl,
            at,
        }])
    }

    /// The user cart's half of a merge (see `merge_guest_cart` for the rules).
    /// A guest cart already merged in yields no events.
    pub fn merge_in(
        &self,
        guest: &GuestCartSnapshot,
        policy: &CartPolicy,
        at: DateTime<Utc>,
    ) -> Result<Vec<CartEvent>, CartError> {
        let open = self.open_for_change(at)?;
        if !matches!(open.owner, CartOwner::User { .. }) {
            return Err(CartError::NotAUserCart {
                cart_id: open.cart_id,
            });
        }
        if guest.cart_id == open.cart_id {
            return Err(CartError::MergeIntoItself {
                cart_id: open.cart_id,
            });
        }
        if self.has_merged(guest.cart_id) {
            return Ok(vec![]);
        }
        let cap = policy.line_cap();
        let mut items = self.items.clone();
        for guest_line in &guest.items {
            let wanted = guest_line.quantity.get().min(cap);
            match items.iter().position(|l| l.matches(&guest_line.key())) {
                Some(i) => {
                    let kept = items[i].quantity.get().max(wanted);
                    if kept != items[i].quantity.get() {
                        items[i] = items[i].with_quantity(quantity(kept))?;
                    }
                }
                None => items.push(guest_line.with_quantity(quantity(wanted))?),
            }
        }
        let summary = CartSummary::compute(&items, self.shipping_method.as_ref())?;
        Ok(vec![CartEvent::GuestCartMerged {
            cart_id: open.cart_id,
            owner: open.owner.clone(),
            guest_cart_id: guest.cart_id,
            items,
            summary,
            expires_at: at + policy.ttl,
            at,
        }])
    }

    /// The cart's id, owner and expiry once opened.
    fn identity(&self) -> Result<(Uuid, &CartOwner, DateTime<Utc>), CartError> {
        match (self.cart_id, &self.owner, self.expires_at) {
            (Some(cart_id), Some(owner), Some(expires_at)) => Ok((cart_id, owner, expires_at)),
            _ => Err(CartError::NotOpened),
        }
    }

    /// Only an active cart inside its lifetime takes changes. A cart past its
    /// expiry is treated as expired even before `ExpireCart` is recorded,
    /// because the read side's TTL index may already have dropped it.
    fn open_for_change(&self, at: DateTime<Utc>) -> Result<Open<'_>, CartError> {
        self.refuse_if_closed()?;
        let (cart_id, owner, expires_at) = self.identity()?;
        if at >= expires_at {
            return Err(CartError::Expired { expires_at });
        }
        Ok(Open { cart_id, owner })
    }

    /// The refusal for a cart that is not active, if it is not.
    fn refuse_if_closed(&self) -> Result<(), CartError> {
        match self.status {
            CartStatus::Active => Ok(()),
            CartStatus::NotOpened => Err(CartError::NotOpened),
            CartStatus::CheckedOut => Err(CartError::AlreadyCheckedOut {
                order_id: self.order_id.expect("a checked-out cart has its order"),
            }),
            CartStatus::Merged => Err(CartError::Merged {
                into_cart_id: self.merged_into.expect("a merged cart has its target"),
            }),
            CartStatus::Expired => Err(CartError::Expired {
                expires_at: self.expires_at.expect("an expired cart has its expiry"),
            }),
        }
    }

    fn find_line(&self, key: &CartLineKey) -> Result<(usize, &CartItem), CartError> {
        self.items
            .iter()
            .enumerate()
            .find(|(_, line)| line.matches(key))
            .ok_or_else(|| CartError::LineNotFound { line: key.clone() })
    }
}

/// `requested` units on one line, or the refusal naming the cap.
fn capped(requested: u32, policy: &CartPolicy) -> Result<Quantity, CartError> {
    let max = policy.line_cap();
    if requested > max {
        return Err(CartError::QuantityAboveLimit { requested, max });
    }
    Ok(quantity(requested))
}

/// A count already checked to be within 1..=line cap.
fn quantity(units: u32) -> Quantity {
    Quantity::new(i64::from(units)).expect("a checked count is a valid quantity")
}

impl Aggregate for Cart {
    const TYPE: &'static str = "cart";
    type Command = CartCommand;
    type Event = CartEvent;
    type Error = CartError;
    type Services = CartPolicy;

    async fn handle(
        &mut self,
        command: Self::Command,
        policy: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            CartCommand::OpenCart {
                cart_id,
                owner,
                existing_active_cart_for_owner,
                at,
            } => match (self.cart_id, &self.owner) {
                (Some(id), Some(current)) if id == cart_id && *current == owner => vec![],
                (Some(id), _) => return Err(CartError::AlreadyOpened { cart_id: id }),
                _ => open_cart_with(policy, existing_active_cart_for_owner, cart_id, owner, at)?,
            },
            CartCommand::AddCartItem {
                item,
                quantity,
                options,
                at,
            } => self.add_item(item, quantity, options, policy, at)?,
            CartCommand::ChangeCartItemQuantity { line, quantity, at } => {
                self.change_item_quantity(&line, quantity, policy, at)?
            }
            CartCommand::RemoveCartItem { line, at } => self.remove_item(&line, policy, at)?,
            CartCommand::ApplyCoupon { code, at } => self.apply_coupon(code, policy, at)?,
            CartCommand::RemoveCoupon { at } => self.remove_coupon(policy, at)?,
            CartCommand::SetShippingAddress { address, at } => {
                self.set_shipping_address(address, policy, at)?
            }
            CartCommand::SelectShippingMethod { method, fee, at } => {
                self.select_shipping_method(method, fee, policy, at)?
            }
            CartCommand::MergeGuestCart { guest_cart, at } => {
                self.merge_in(&guest_cart, policy, at)?
            }
            CartCommand::CheckOut { order_id, at } => self.check_out(order_id, at)?,
            CartCommand::ExpireCart { at } => self.expire(at)?,
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CartEvent::CartOpened {
                cart_id,
                owner,
                expires_at,
                at,
            } => {
                self.cart_id = Some(cart_id);
                self.owner = Some(owner);
                self.status = CartStatus::Active;
                self.created_at = Some(at);
                self.touch(expires_at, at);
            }
            CartEvent::CartItemAdded {
                items,
                summary,
                expires_at,
                at,
                ..
            }
            | CartEvent::CartItemQuantityChanged {
                items,
                summary,
                expires_at,
                at,
                ..
            }
            | CartEvent::CartItemRemoved {
                items,
                summary,
                expires_at,
                at,
                ..
            } => {
                self.items = items;
                self.summary = summary;
                self.touch(expires_at, at);
            }
            CartEvent::CartCouponApplied {
                coupon_code,
                summary,
                expires_at,
                at,
                ..
            } => {
                self.coupon_code = Some(coupon_code);
                self.summary = summary;
                self.touch(expires_at, at);
            }
            CartEvent::CartCouponRemoved {
                summary,
                expires_at,
                at,
                ..
            } => {
                self.coupon_code = None;
                self.summary = summary;
                self.touch(expires_at, at);
            }
            CartEvent::CartShippingAddressSet {
                address,
                summary,
                expires_at,
                at,
                ..
            } => {
                self.shipping_address = Some(address);
                self.summary = summary;
                self.touch(expires_at, at);
            }
            CartEvent::CartShippingMethodSelected {
                shipping_method,
                summary,
                expires_at,
                at,
                ..
            } => {
                self.shipping_method = Some(shipping_method);
                self.summary = summary;
                self.touch(expires_at, at);
            }
            CartEvent::GuestCartMerged {
                guest_cart_id,
                items,
                summary,
                expires_at,
                at,
                ..
            } => {
                self.merged_guest_carts.insert(guest_cart_id);
                self.items = items;
                self.summary = summary;
                self.touch(expires_at, at);
            }
            CartEvent::CartMergedInto {
                user_cart_id,
                status,
                at,
                ..
            } => {
                self.merged_into = Some(user_cart_id);
                self.status = status;
                self.updated_at = Some(at);
            }
            CartEvent::CartCheckedOut {
                order_id,
                status,
                at,
                ..
            } => {
                self.order_id = Some(order_id);
                self.status = status;
                self.updated_at = Some(at);
            }
            CartEvent::CartExpired { status, at, .. } => {
                self.status = status;
                self.updated_at = Some(at);
            }
        }
    }
}

impl Cart {
    fn touch(&mut self, expires_at: DateTime<Utc>, at: DateTime<Utc>) {
        self.expires_at = Some(expires_at);
        self.updated_at = Some(at);
    }
}
