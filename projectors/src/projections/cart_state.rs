//! The fold the two cart read models share (`cart-documents` in MongoDB,
//! `cart-cache` in Redis): a batch grouped by cart, and each cart's events
//! folded onto what the store holds for it, in the shapes of
//! `infrastructure::views::carts`.
//!
//! Line, merge, coupon and shipping events carry the recomputed summary (and
//! line events the whole line list), so the fold replaces them as they are;
//! only the opening and the coupon and shipping choices need the state
//! before them. A cart's state ends at its terminal event (checked out,
//! expired, merged into the user's cart) and is then kept as an ending,
//! which nothing older or newer reopens, for as long as any event of the
//! cart could still show a live cart: until its last `expires_at`. Past it,
//! every earlier event describes an expired cart, which no store shows, so
//! a redelivery cannot bring the cart back either.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::cart::{CartEvent, CartItem, CartOwner, CartSummary};
use domain::values::PostalAddress;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use infrastructure::views::carts::{
    to_millis, CachedCart, CachedCartItem, CachedCartSummary, CartAddress, CartOwnerView,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::runtime::DeadLetter;

/// The topic both cart read models consume.
pub const TYPES: &[&str] = &["cart"];

/// How long the ending of a cart whose expiry was never seen is kept: longer
/// than a cart lives (7 days by default, `carts.ttl_hours`).
const UNKNOWN_LIFETIME: chrono::Duration = chrono::Duration::days(30);

/// How a cart ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    CheckedOut,
    Expired,
    Merged,
}

impl Ending {
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::CheckedOut => "checked_out",
            Ending::Expired => "expired",
            Ending::Merged => "merged",
        }
    }
}

/// What a read model knows of one cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CartFold {
    /// Nothing applied yet (never stored).
    Absent,
    /// Open, folded up to the stream's `version`.
    Open { version: i64, cart: Box<CachedCart> },
    /// Ended at `version`; kept until `keep_until`.
    Ended {
        version: i64,
        ending: Ending,
        at: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    },
}

impl CartFold {
    /// The cart to show at `now`: open and inside its lifetime.
    pub fn live(&self, now: DateTime<Utc>) -> Option<&CachedCart> {
        match self {
            CartFold::Open { cart, .. } if cart.expires_at > now => Some(cart.as_ref()),
            _ => None,
        }
    }

    /// Folds `event`, the stream's `version`, in. False when it changes
    /// nothing: applied already, after the end, or an event of a cart whose
    /// lifetime is over and whose state the store already let go (its TTL).
    /// An error is an event that cannot apply onto what is stored.
    pub fn apply(
        &mut self,
        cart_id: Uuid,
        event: &CartEvent,
        version: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, String> {
        let (applied, cart) = match self {
            CartFold::Ended { .. } => return Ok(false),
            CartFold::Open {
                version: applied, ..
            } if *applied >= version => return Ok(false),
            CartFold::Open {
                version: applied,
                cart,
            } => (*applied, Some(cart)),
            CartFold::Absent => (0, None),
        };
        if let Some(ending) = ending_of(event, cart.as_deref().map(|c| c.expires_at)) {
            *self = ending(version);
            return Ok(true);
        }
        let Some(cart) = cart else {
            return match event {
                CartEvent::CartOpened { expires_at, at, .. } => {
                    *self = CartFold::Open {
                        version,
                        cart: Box::new(opened(cart_id, *at, *expires_at)),
                    };
                    Ok(true)
                }
                // What the TTL already dropped: a redelivery of a cart that
                // has expired by now.
                other if expiry_of(other).is_some_and(|expires| expires <= now) => Ok(false),
                _ => Err(format!(
                    "cart {cart_id} has no state to apply version {version} onto \
                     (its opening was never applied)"
                )),
            };
        };
        match event {
            CartEvent::CartOpened { .. } => {
                return Err(format!(
                    "cart {cart_id} is opened again at version {version}, after version {applied}"
                ))
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
            }
            | CartEvent::GuestCartMerged {
                items,
                summary,
                expires_at,
                at,
                ..
            } => {
                cart.items = items.iter().map(item_of).collect();
                touch(cart, summary, *expires_at, *at);
            }
            CartEvent::CartCouponApplied {
                coupon_code,
                summary,
                expires_at,
                at,
                ..
            } => {
                cart.coupon_code = Some(coupon_code.as_str().to_owned());
                touch(cart, summary, *expires_at, *at);
            }
            CartEvent::CartCouponRemoved {
                summary,
                expires_at,
                at,
                ..
            } => {
                cart.coupon_code = None;
                touch(cart, summary, *expires_at, *at);
            }
            CartEvent::CartShippingAddressSet {
                address,
                summary,
                expires_at,
                at,
                ..
            } => {
                cart.shipping_address = Some(address_of(address));
                touch(cart, summary, *expires_at, *at);
            }
            CartEvent::CartShippingMethodSelected {
                shipping_method,
                summary,
                expires_at,
                at,
                ..
            } => {
                cart.shipping_method = Some(shipping_method.method.as_str().to_owned());
                touch(cart, summary, *expires_at, *at);
            }
            CartEvent::CartMergedInto { .. }
            | CartEvent::CartCheckedOut { .. }
            | CartEvent::CartExpired { .. } => unreachable!("endings are folded above"),
        }
        if let CartFold::Open {
            version: applied, ..
        } = self
        {
            *applied = version;
        }
        Ok(true)
    }
}

/// The ending `event` makes, as a function of the version it is at, if it
/// is a terminal event. `expires_at` is the cart's last known expiry.
fn ending_of(
    event: &CartEvent,
    expires_at: Option<DateTime<Utc>>,
) -> Option<impl FnOnce(i64) -> CartFold> {
    let (ending, at, event_expiry) = match event {
        CartEvent::CartCheckedOut { at, .. } => (Ending::CheckedOut, *at, None),
        CartEvent::CartMergedInto { at, .. } => (Ending::Merged, *at, None),
        CartEvent::CartExpired { at, expires_at, .. } => (Ending::Expired, *at, Some(*expires_at)),
        _ => return None,
    };
    let keep_until = match expires_at.or(event_expiry) {
        Some(expiry) => expiry.max(at),
        None => at + UNKNOWN_LIFETIME,
    };
    Some(move |version| CartFold::Ended {
        version,
        ending,
        at: to_millis(at),
        keep_until: to_millis(keep_until),
    })
}

/// The expiry a non-terminal event sets.
fn expiry_of(event: &CartEvent) -> Option<DateTime<Utc>> {
    match event {
        CartEvent::CartOpened { expires_at, .. }
        | CartEvent::CartItemAdded { expires_at, .. }
        | CartEvent::CartItemQuantityChanged { expires_at, .. }
        | CartEvent::CartItemRemoved { expires_at, .. }
        | CartEvent::CartCouponApplied { expires_at, .. }
        | CartEvent::CartCouponRemoved { expires_at, .. }
        | CartEvent::CartShippingAddressSet { expires_at, .. }
        | CartEvent::CartShippingMethodSelected { expires_at, .. }
        | CartEvent::GuestCartMerged { expires_at, .. } => Some(*expires_at),
        CartEvent::CartMergedInto { .. }
        | CartEvent::CartCheckedOut { .. }
        | CartEvent::CartExpired { .. } => None,
    }
}

fn opened(cart_id: Uuid, at: DateTime<Utc>, expires_at: DateTime<Utc>) -> CachedCart {
    let zero = rust_decimal::Decimal::new(0, 2);
    CachedCart {
        cart_id,
        items: Vec::new(),
        summary: CachedCartSummary {
            item_count: 0,
            subtotal: zero,
            estimated_tax: zero,
            estimated_total: zero,
            shipping_fee: None,
        },
        coupon_code: None,
        shipping_address: None,
        shipping_method: None,
        created_at: to_millis(at),
        updated_at: to_millis(at),
        expires_at: to_millis(expires_at),
    }
}

fn touch(
    cart: &mut CachedCart,
    summary: &CartSummary,
    expires_at: DateTime<Utc>,
    at: DateTime<Utc>,
) {
    cart.summary = summary_of(summary);
    cart.expires_at = to_millis(expires_at);
    cart.updated_at = to_millis(at);
}

pub fn owner_of(owner: &CartOwner) -> CartOwnerView {
    match owner {
        CartOwner::User { user_id } => CartOwnerView::User { user_id: *user_id },
        CartOwner::Guest { session_id } => CartOwnerView::Guest {
            session_id: session_id.as_str().to_owned(),
        },
    }
}

fn item_of(item: &CartItem) -> CachedCartItem {
    CachedCartItem {
        product_id: item.product_id,
        product_variant_id: item.variant_id,
        quantity: item.quantity.get(),
        unit_price: item.unit_price.amount(),
        total_price: item.total_price.amount(),
        added_at: to_millis(item.added_at),
        options: item.options.clone(),
        sku: item.sku.as_str().to_owned(),
        name: item.name.clone(),
        image_url: item.image_url.as_ref().map(|url| url.as_str().to_owned()),
    }
}

fn summary_of(summary: &CartSummary) -> CachedCartSummary {
    CachedCartSummary {
        item_count: summary.item_count,
        subtotal: summary.subtotal.amount(),
        estimated_tax: summary.estimated_tax.amount(),
        estimated_total: summary.estimated_total.amount(),
        shipping_fee: summary.shipping_fee.map(|fee| fee.amount()),
    }
}

fn address_of(address: &PostalAddress) -> CartAddress {
    CartAddress {
        first_name: address.first_name.clone(),
        last_name: address.last_name.clone(),
        company: address.company.clone(),
        street_address_1: address.street_address_1.clone(),
        street_address_2: address.street_address_2.clone(),
        city: address.city.clone(),
        state_province: address.state_province.clone(),
        postal_code: address.postal_code.clone(),
        country: address.country.as_str().to_owned(),
        phone: address
            .phone
            .as_ref()
            .map(|phone| phone.as_str().to_owned()),
    }
}

fn owner_in(event: &CartEvent) -> &CartOwner {
    match event {
        CartEvent::CartOpened { owner, .. }
        | CartEvent::CartItemAdded { owner, .. }
        | CartEvent::CartItemQuantityChanged { owner, .. }
        | CartEvent::CartItemRemoved { owner, .. }
        | CartEvent::CartCouponApplied { owner, .. }
        | CartEvent::CartCouponRemoved { owner, .. }
        | CartEvent::CartShippingAddressSet { owner, .. }
        | CartEvent::CartShippingMethodSelected { owner, .. }
        | CartEvent::GuestCartMerged { owner, .. }
        | CartEvent::CartMergedInto { owner, .. }
        | CartEvent::CartCheckedOut { owner, .. }
        | CartEvent::CartExpired { owner, .. } => owner,
    }
}

/// One cart's events of a batch, in the batch's order.
pub struct CartEvents<'e> {
    pub cart_id: Uuid,
    pub owner: CartOwnerView,
    pub events: Vec<(&'e RecordedEvent, CartEvent)>,
}

impl<'e> CartEvents<'e> {
    /// Folds the events onto `state`; true when any of them changed it.
    pub fn fold_onto(&self, state: &mut CartFold, now: DateTime<Utc>) -> Result<bool, String> {
        let mut changed = false;
        for (recorded, event) in &self.events {
            changed |= state.apply(self.cart_id, event, recorded.version, now)?;
        }
        Ok(changed)
    }

    /// Every event of the cart dead-lettered for `reason`.
    pub fn refused(&self, reason: &str) -> Vec<DeadLetter> {
        self.events
            .iter()
            .map(|(event, _)| DeadLetter::for_event(event, reason))
            .collect()
    }

    /// The same cart with one of its events only.
    pub fn single(&self, index: usize) -> CartEvents<'e> {
        CartEvents {
            cart_id: self.cart_id,
            owner: self.owner.clone(),
            events: vec![self.events[index].clone()],
        }
    }
}

/// Groups `events` by cart, in order. An event that does not decode is a
/// dead letter, and so are the later events of its cart in the batch (the
/// earlier ones apply): a cart is never shown with a hole in its history.
pub fn by_cart<'e>(
    events: &'e [RecordedEvent],
    upcasters: &Upcasters,
) -> (Vec<CartEvents<'e>>, Vec<DeadLetter>) {
    let mut carts: BTreeMap<&str, CartEvents<'e>> = BTreeMap::new();
    let mut refused: BTreeMap<&str, String> = BTreeMap::new();
    let mut letters = Vec::new();
    for event in events {
        let stream = event.aggregate_id.as_str();
        if let Some(head) = refused.get(stream) {
            letters.push(DeadLetter::for_event(
                event,
                format!("follows an event of the same cart that cannot apply: {head}"),
            ));
            continue;
        }
        let decoded = upcasters
            .decode::<CartEvent>(event)
            .map_err(|error| error.to_string())
            .and_then(|decoded| {
                let cart_id: Uuid = stream
                    .parse()
                    .map_err(|_| format!("cart stream {stream:?} is not a UUID"))?;
                Ok((cart_id, decoded))
            });
        match decoded {
            Ok((cart_id, decoded)) => {
                let owner = owner_of(owner_in(&decoded));
                carts
                    .entry(stream)
                    .or_insert_with(|| CartEvents {
                        cart_id,
                        owner,
                        events: Vec::new(),
                    })
                    .events
                    .push((event, decoded));
            }
            Err(reason) => {
                letters.push(DeadLetter::for_event(event, reason.clone()));
                refused.insert(stream, reason);
            }
        }
    }
    (carts.into_values().collect(), letters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::cart::{CartStatus, SessionId};
    use domain::values::{Money, Quantity, Sku};
    use rust_decimal::Decimal;

    fn at(minutes: i64) -> DateTime<Utc> {
        "2030-01-15T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
            + chrono::Duration::minutes(minutes)
    }

    fn owner() -> CartOwner {
        CartOwner::Guest {
            session_id: SessionId::parse("abc").unwrap(),
        }
    }

    fn line(quantity: i64) -> CartItem {
        let unit = Money::new(Decimal::new(3_590_000, 2)).unwrap();
        let quantity = Quantity::new(quantity).unwrap();
        CartItem {
            product_id: Uuid::from_u128(7),
            variant_id: None,
            sku: Sku::parse("IPH-15").unwrap(),
            name: "iPhone 15 Pro".into(),
            unit_price: unit,
            quantity,
            total_price: unit.times(quantity).unwrap(),
            options: BTreeMap::new(),
            image_url: None,
            added_at: at(1),
        }
    }

    fn added(cart_id: Uuid, quantity: i64, minute: i64) -> CartEvent {
        let items = vec![line(quantity)];
        CartEvent::CartItemAdded {
            cart_id,
            owner: owner(),
            line: items[0].clone(),
            quantity_added: Quantity::new(quantity).unwrap(),
            summary: CartSummary::compute(&items, None).unwrap(),
            items,
            expires_at: at(minute) + chrono::Duration::days(7),
            at: at(minute),
        }
    }

    #[test]
    fn the_seed_cart_folds_and_an_older_event_changes_nothing() {
        let cart_id = Uuid::from_u128(1);
        let now = at(0);
        let mut state = CartFold::Absent;
        let opened = CartEvent::CartOpened {
            cart_id,
            owner: owner(),
            expires_at: at(0) + chrono::Duration::days(7),
            at: at(0),
        };
        assert!(state.apply(cart_id, &opened, 1, now).unwrap());
        assert!(state.apply(cart_id, &added(cart_id, 2, 1), 2, now).unwrap());
        let before = state.clone();
        assert!(!state.apply(cart_id, &added(cart_id, 1, 1), 2, now).unwrap());
        assert!(!state.apply(cart_id, &opened, 1, now).unwrap());
        assert_eq!(state, before);
        let cart = state.live(now).unwrap();
        assert_eq!(cart.summary.subtotal, Decimal::new(7_180_000, 2));
        assert_eq!(cart.summary.estimated_tax, Decimal::new(502_600, 2));
        assert_eq!(cart.summary.estimated_total, Decimal::new(7_682_600, 2));
        assert_eq!(cart.created_at, at(0));
        assert_eq!(cart.updated_at, at(1));
    }

    #[test]
    fn an_ended_cart_is_never_reopened_and_is_kept_until_its_expiry() {
        let cart_id = Uuid::from_u128(1);
        let now = at(0);
        let mut state = CartFold::Absent;
        let opened = CartEvent::CartOpened {
            cart_id,
            owner: owner(),
            expires_at: at(0) + chrono::Duration::days(7),
            at: at(0),
        };
        state.apply(cart_id, &opened, 1, now).unwrap();
        state.apply(cart_id, &added(cart_id, 2, 1), 2, now).unwrap();
        let checked_out = CartEvent::CartCheckedOut {
            cart_id,
            owner: owner(),
            order_id: Uuid::from_u128(9),
            previous_status: CartStatus::Active,
            status: CartStatus::CheckedOut,
            at: at(2),
        };
        assert!(state.apply(cart_id, &checked_out, 3, now).unwrap());
        assert!(!state.apply(cart_id, &added(cart_id, 1, 1), 2, now).unwrap());
        assert!(!state.apply(cart_id, &opened, 1, now).unwrap());
        assert_eq!(
            state,
            CartFold::Ended {
                version: 3,
                ending: Ending::CheckedOut,
                at: at(2),
                keep_until: at(1) + chrono::Duration::days(7),
            }
        );
        assert!(state.live(now).is_none());
    }

    #[test]
    fn a_change_without_its_opening_is_refused_unless_it_has_expired() {
        let cart_id = Uuid::from_u128(1);
        let mut state = CartFold::Absent;
        let error = state
            .apply(cart_id, &added(cart_id, 1, 1), 2, at(0))
            .unwrap_err();
        assert!(error.contains("no state"), "{error}");
        let after_expiry = at(1) + chrono::Duration::days(8);
        assert!(!state
            .apply(cart_id, &added(cart_id, 1, 1), 2, after_expiry)
            .unwrap());
        assert_eq!(state, CartFold::Absent);
    }
}
