//! Set-wide uniqueness (email, phone, sku, slug, coupon code) without a lookup
//! table on the write side: every unique value is a stream of its own,
//! `scope:key`, claimed by one owner. The command side appends the claim in the
//! same atomic multi-stream append as the owner's events, with the expected
//! version it loaded, so two racing claims cannot both commit. Personal values
//! (a user's email and phone) are keyed by their `values::BlindIndex`, never by
//! the clear value, because stream ids and claim events are never erased.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What kind of value a key is unique among. Skus share one scope across
/// products and variants, because inventory has one stream per stocked sku.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UniqueScope {
    /// Keyed by the email's blind index.
    UserEmail,
    /// Keyed by the phone number's blind index.
    UserPhone,
    Sku,
    ProductSlug,
    CategorySlug,
    BrandSlug,
    CouponCode,
    /// Keyed by the cart owner (`user:<id>`, `guest:<session>`): the owner's
    /// one active cart, a hint the cart's own status confirms.
    ActiveCart,
    /// An order's number (`ORD-2026-000123`): the sequence that hands numbers
    /// out is a hint, the claim is what makes one unique (a sequence
    /// restored from an older backup may hand a number out again).
    OrderNumber,
    /// Keyed by the order id: the order's one active payment, a hint the
    /// payment's own status confirms (a failed payment frees the order).
    ActivePayment,
}

impl UniqueScope {
    pub fn as_str(&self) -> &'static str {
        match self {
            UniqueScope::UserEmail => "user_email",
            UniqueScope::UserPhone => "user_phone",
            UniqueScope::Sku => "sku",
            UniqueScope::ProductSlug => "product_slug",
            UniqueScope::CategorySlug => "category_slug",
            UniqueScope::BrandSlug => "brand_slug",
            UniqueScope::CouponCode => "coupon_code",
            UniqueScope::ActiveCart => "active_cart",
            UniqueScope::OrderNumber => "order_number",
            UniqueScope::ActivePayment => "active_payment",
        }
    }
}

/// The stream that holds the claim on `key` within `scope`. Keys come from the
/// value objects, which already normalize case where uniqueness is
/// case-insensitive, or, for personal values, from their blind index.
pub fn unique_key_stream_id(scope: UniqueScope, key: &str) -> String {
    format!("{}:{}", scope.as_str(), key)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UniqueKey {
    owner_id: Option<Uuid>,
}

impl UniqueKey {
    pub fn owner_id(&self) -> Option<Uuid> {
        self.owner_id
    }

    /// The events that give `key` to `owner_id`: none when it already has it
    /// (claiming is idempotent), a rejection when someone else does.
    pub fn claim(
        &self,
        scope: UniqueScope,
        key: &str,
        owner_id: Uuid,
    ) -> Result<Vec<UniqueKeyEvent>, UniqueKeyError> {
        match self.owner_id {
            Some(current) if current == owner_id => Ok(vec![]),
            Some(current) => Err(UniqueKeyError::AlreadyClaimed {
                scope,
                key: key.to_owned(),
                owner_id: current,
            }),
            None => Ok(vec![UniqueKeyEvent::UniqueKeyClaimed {
                scope,
                key: key.to_owned(),
                owner_id,
            }]),
        }
    }

    /// The events that free `key` when its owner gives it up (a slug changed,
    /// an email changed). Releasing a key one does not hold is refused.
    pub fn release(
        &self,
        scope: UniqueScope,
        key: &str,
        owner_id: Uuid,
    ) -> Result<Vec<UniqueKeyEvent>, UniqueKeyError> {
        match self.owner_id {
            Some(current) if current == owner_id => Ok(vec![UniqueKeyEvent::UniqueKeyReleased {
                scope,
                key: key.to_owned(),
                owner_id,
            }]),
            _ => Err(UniqueKeyError::NotHeld {
                scope,
                key: key.to_owned(),
                owner_id,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UniqueKeyCommand {
    Claim {
        scope: UniqueScope,
        key: String,
        owner_id: Uuid,
    },
    Release {
        scope: UniqueScope,
        key: String,
        owner_id: Uuid,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UniqueKeyEvent {
    UniqueKeyClaimed {
        scope: UniqueScope,
        key: String,
        owner_id: Uuid,
    },
    UniqueKeyReleased {
        scope: UniqueScope,
        key: String,
        owner_id: Uuid,
    },
}

impl DomainEvent for UniqueKeyEvent {
    fn event_type(&self) -> String {
        match self {
            UniqueKeyEvent::UniqueKeyClaimed { .. } => "UniqueKeyClaimed",
            UniqueKeyEvent::UniqueKeyReleased { .. } => "UniqueKeyReleased",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UniqueKeyError {
    #[error("{} {key:?} is already taken", scope.as_str())]
    AlreadyClaimed {
        scope: UniqueScope,
        key: String,
        owner_id: Uuid,
    },
    #[error("{} {key:?} is not held by {owner_id}", scope.as_str())]
    NotHeld {
        scope: UniqueScope,
        key: String,
        owner_id: Uuid,
    },
}

impl Aggregate for UniqueKey {
    const TYPE: &'static str = "unique_key";
    type Command = UniqueKeyCommand;
    type Event = UniqueKeyEvent;
    type Error = UniqueKeyError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            UniqueKeyCommand::Claim {
                scope,
                key,
                owner_id,
            } => self.claim(scope, &key, owner_id)?,
            UniqueKeyCommand::Release {
                scope,
                key,
                owner_id,
            } => self.release(scope, &key, owner_id)?,
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            UniqueKeyEvent::UniqueKeyClaimed { owner_id, .. } => self.owner_id = Some(owner_id),
            UniqueKeyEvent::UniqueKeyReleased { .. } => self.owner_id = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<UniqueKey>;
    const SCOPE: UniqueScope = UniqueScope::Sku;

    fn claimed(owner_id: Uuid) -> UniqueKeyEvent {
        UniqueKeyEvent::UniqueKeyClaimed {
            scope: SCOPE,
            key: "IPH-15".into(),
            owner_id,
        }
    }

    fn claim(owner_id: Uuid) -> UniqueKeyCommand {
        UniqueKeyCommand::Claim {
            scope: SCOPE,
            key: "IPH-15".into(),
            owner_id,
        }
    }

    #[test]
    fn a_free_key_is_claimed() {
        let owner = Uuid::new_v4();
        Given::with(())
            .given_no_previous_events()
            .when(claim(owner))
            .then_expect_events(vec![claimed(owner)]);
    }

    #[test]
    fn a_key_held_by_another_owner_is_refused() {
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        Given::with(())
            .given(vec![claimed(first)])
            .when(claim(second))
            .then_expect_error(UniqueKeyError::AlreadyClaimed {
                scope: SCOPE,
                key: "IPH-15".into(),
                owner_id: first,
            });
    }

    #[test]
    fn claiming_again_by_the_same_owner_changes_nothing() {
        let owner = Uuid::new_v4();
        Given::with(())
            .given(vec![claimed(owner)])
            .when(claim(owner))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_released_key_can_be_claimed_by_someone_else() {
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        Given::with(())
            .given(vec![
                claimed(first),
                UniqueKeyEvent::UniqueKeyReleased {
                    scope: SCOPE,
                    key: "IPH-15".into(),
                    owner_id: first,
                },
            ])
            .when(claim(second))
            .then_expect_events(vec![claimed(second)]);
    }

    #[test]
    fn only_the_owner_can_release() {
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        Given::with(())
            .given(vec![claimed(first)])
            .when(UniqueKeyCommand::Release {
                scope: SCOPE,
                key: "IPH-15".into(),
                owner_id: second,
            })
            .then_expect_error(UniqueKeyError::NotHeld {
                scope: SCOPE,
                key: "IPH-15".into(),
                owner_id: second,
            });
    }

    #[test]
    fn stream_ids_are_scoped() {
        assert_eq!(
            unique_key_stream_id(UniqueScope::Sku, "IPH-15"),
            "sku:IPH-15"
        );
        assert_ne!(
            unique_key_stream_id(UniqueScope::ProductSlug, "a"),
            unique_key_stream_id(UniqueScope::CategorySlug, "a")
        );
        assert_eq!(
            unique_key_stream_id(UniqueScope::UserPhone, "ab"),
            "user_phone:ab"
        );
        assert_eq!(
            serde_json::to_value(UniqueScope::UserPhone).unwrap(),
            serde_json::json!("user_phone")
        );
    }
}
