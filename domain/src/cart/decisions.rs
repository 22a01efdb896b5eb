//! Decisions that need more than one cart's stream: opening a cart (at most one
//! active cart per owner) and merging a guest cart into the user's cart at
//! sign-in. Each takes the loaded state as plain input and returns the events
//! of every stream it touches.
//!
//! The plain `open_cart` / `merge_guest_cart` apply `CartPolicy::default()`;
//! the `_with` forms take the configured policy (the aggregate uses those).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Cart, CartError, CartEvent, CartOwner, CartPolicy, CartStatus, GuestCartSnapshot};

/// The events for each stream a guest-cart merge touches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeOutcome {
    /// For the user's cart: `GuestCartMerged`.
    pub user_cart_events: Vec<CartEvent>,
    /// For the guest's cart: `CartMergedInto`.
    pub guest_cart_events: Vec<CartEvent>,
}

/// Opens `cart_id` for `owner` under the default policy; see `open_cart_with`.
pub fn open_cart(
    existing_active_cart_for_owner: Option<Uuid>,
    cart_id: Uuid,
    owner: CartOwner,
    at: DateTime<Utc>,
) -> Result<Vec<CartEvent>, CartError> {
    open_cart_with(
        &CartPolicy::default(),
        existing_active_cart_for_owner,
        cart_id,
        owner,
        at,
    )
}

/// Opens `cart_id` for `owner`, unless the owner already has an active cart
/// (the command side looks it up and passes its id). Asking again for the cart
/// the owner already has is a no-op, so a retried open succeeds.
pub fn open_cart_with(
    policy: &CartPolicy,
    existing_active_cart_for_owner: Option<Uuid>,
    cart_id: Uuid,
    owner: CartOwner,
    at: DateTime<Utc>,
) -> Result<Vec<CartEvent>, CartError> {
    match existing_active_cart_for_owner {
        Some(existing) if existing == cart_id => Ok(vec![]),
        Some(existing) => Err(CartError::OwnerHasActiveCart { cart_id: existing }),
        None => Ok(vec![CartEvent::CartOpened {
            cart_id,
            owner,
            expires_at: at + policy.ttl,
            at,
        }]),
    }
}

/// Merges a guest cart into a user cart under the default policy; see
/// `merge_guest_cart_with`.
pub fn merge_guest_cart(
    user_cart: &Cart,
    guest_cart: &Cart,
    guest_cart_id: Uuid,
    at: DateTime<Utc>,
) -> Result<MergeOutcome, CartError> {
    merge_guest_cart_with(
        &CartPolicy::default(),
        user_cart,
        guest_cart,
        guest_cart_id,
        at,
    )
}

/// Merges the guest's cart into the user's at sign-in:
/// - a guest line that matches a user line (product, variant, options) sets
///   that line to the larger of the two quantities (not their sum: the same
///   intent expressed twice is not twice the quantity), within the line cap;
///   the user line keeps its unit price;
/// - any other guest line is appended as it is, capped;
/// - the guest's coupon, address and shipping method are not carried over;
/// - the guest cart is then marked merged on its own stream and takes no more
///   changes.
///
/// Both carts must be active and unexpired. Merging a guest cart that is
/// already merged into this user cart yields no events on either stream.
pub fn merge_guest_cart_with(
    policy: &CartPolicy,
    user_cart: &Cart,
    guest_cart: &Cart,
    guest_cart_id: Uuid,
    at: DateTime<Utc>,
) -> Result<MergeOutcome, CartError> {
    if guest_cart.status() == CartStatus::Merged {
        let into = guest_cart
            .merged_into()
            .expect("a merged cart has its target");
        if Some(into) == user_cart.id() {
            return Ok(MergeOutcome::default());
        }
        return Err(CartError::Merged { into_cart_id: into });
    }
    let guest = guest_cart.open_for_change(at)?;
    if !matches!(guest.owner, CartOwner::Guest { .. }) {
        return Err(CartError::NotAGuestCart {
            cart_id: guest_cart_id,
        });
    }
    let snapshot = GuestCartSnapshot {
        cart_id: guest_cart_id,
        items: guest_cart.items().to_vec(),
    };
    let user_cart_events = user_cart.merge_in(&snapshot, policy, at)?;
    let user_cart_id = user_cart
        .id()
        .expect("merge_in succeeds only on an opened cart");
    Ok(MergeOutcome {
        user_cart_events,
        guest_cart_events: vec![CartEvent::CartMergedInto {
            cart_id: guest_cart_id,
            owner: guest.owner.clone(),
            user_cart_id,
            previous_status: guest_cart.status(),
            status: CartStatus::Merged,
            at,
        }],
    })
}
