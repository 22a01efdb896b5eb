//! The `Coupon` aggregate: a unique, case-insensitive code that redeems one
//! promotion. It owns the seed's `coupons.usage_count` and remembers which
//! orders hold a redemption, so redeeming is exactly-once per order and a
//! cancelled order gives its redemption back exactly once.
//!
//! Limits: the global `usage_limit` is checked against the promotion's own
//! counter (`Promotion::usage_count`, promotion-wide across coupons); the
//! per-user limit against `user_redemptions`, plain input from the read model.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::promotion::{Promotion, Unavailability};
use crate::uniqueness::{
    unique_key_stream_id, UniqueKey, UniqueKeyError, UniqueKeyEvent, UniqueScope,
};
use crate::values::CouponCode;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coupon {
    coupon_id: Option<Uuid>,
    code: Option<CouponCode>,
    promotion_id: Option<Uuid>,
    usage_count: u32,
    is_active: bool,
    /// Orders holding a redemption, with the user who redeemed (None for a guest).
    redemptions: BTreeMap<Uuid, Option<Uuid>>,
}

impl Coupon {
    pub fn coupon_id(&self) -> Option<Uuid> {
        self.coupon_id
    }

    pub fn code(&self) -> Option<&CouponCode> {
        self.code.as_ref()
    }

    pub fn promotion_id(&self) -> Option<Uuid> {
        self.promotion_id
    }

    pub fn usage_count(&self) -> u32 {
        self.usage_count
    }

    pub fn is_active(&self) -> bool {
        self.is_active
    }

    pub fn is_redeemed_by(&self, order_id: Uuid) -> bool {
        self.redemptions.contains_key(&order_id)
    }

    fn issued(&self) -> Result<(Uuid, CouponCode, Uuid), CouponError> {
        match (self.coupon_id, &self.code, self.promotion_id) {
            (Some(coupon_id), Some(code), Some(promotion_id)) => {
                Ok((coupon_id, code.clone(), promotion_id))
            }
            _ => Err(CouponError::NotIssued),
        }
    }

    /// The coupon-local part of issuing; uniqueness of the code is `issue_coupon`'s job.
    pub fn issue(
        &self,
        coupon_id: Uuid,
        code: CouponCode,
        promotion_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Vec<CouponEvent>, CouponError> {
        if let Some(existing) = self.coupon_id {
            return Err(CouponError::AlreadyIssued {
                coupon_id: existing,
            });
        }
        Ok(vec![CouponEvent::CouponIssued {
            coupon_id,
            code,
            promotion_id,
            usage_count: 0,
            is_active: true,
            created_at: at,
        }])
    }

    pub fn deactivate(&self, at: DateTime<Utc>) -> Result<Vec<CouponEvent>, CouponError> {
        let (coupon_id, code, _) = self.issued()?;
        if !self.is_active {
            return Ok(vec![]);
        }
        Ok(vec![CouponEvent::CouponDeactivated {
            coupon_id,
            code,
            at,
        }])
    }

    /// Redeems the coupon for `order_id`. The same order again is a no-op, so a
    /// retried checkout cannot count twice.
    pub fn redeem(
        &self,
        order_id: Uuid,
        user_id: Option<Uuid>,
        promotion: &Promotion,
        user_redemptions: u32,
        at: DateTime<Utc>,
    ) -> Result<Vec<CouponEvent>, CouponError> {
        let (coupon_id, code, promotion_id) = self.issued()?;
        if self.is_redeemed_by(order_id) {
            return Ok(vec![]);
        }
        if !self.is_active {
            return Err(CouponError::Inactive { code });
        }
        if promotion.promotion_id() != Some(promotion_id) {
            return Err(CouponError::PromotionMismatch { code, promotion_id });
        }
        match promotion.availability(at) {
            Ok(_) => {}
            Err(Unavailability::Inactive) => return Err(CouponError::PromotionInactive { code }),
            Err(Unavailability::NotStarted { starts_at }) => {
                return Err(CouponError::NotYetValid { code, starts_at })
            }
            Err(Unavailability::Ended { ends_at }) => {
                return Err(CouponError::Expired { code, ends_at })
            }
        }
        if let Some(limit) = promotion.reached_usage_limit() {
            return Err(CouponError::UsageLimitReached { code, limit });
        }
        if let Some(limit) = promotion.reached_per_user_limit(user_redemptions) {
            return Err(CouponError::PerUserLimitReached { code, limit });
        }
        Ok(vec![CouponEvent::CouponRedeemed {
            coupon_id,
            code,
            promotion_id,
            order_id,
            user_id,
            usage_count: self.usage_count + 1,
            redeemed_at: at,
        }])
    }

    /// Gives back `order_id`'s redemption (the order was cancelled). An order
    /// without a redemption (never redeemed, or already reverted): no event.
    /// Allowed on a deactivated coupon: the use happened while it was active.
    pub fn revert(
        &self,
        order_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Vec<CouponEvent>, CouponError> {
        let (coupon_id, code, promotion_id) = self.issued()?;
        let Some(user_id) = self.redemptions.get(&order_id) else {
            return Ok(vec![]);
        };
        Ok(vec![CouponEvent::CouponRedemptionReverted {
            coupon_id,
            code,
            promotion_id,
            order_id,
            user_id: *user_id,
            usage_count: self.usage_count.saturating_sub(1),
            reverted_at: at,
        }])
    }
}

/// The streams `issue_coupon` writes: the code's unique-key stream and the coupon's.
#[derive(Debug, Clone, PartialEq)]
pub struct CouponIssue {
    pub unique_key_stream_id: String,
    pub unique_key: Vec<UniqueKeyEvent>,
    pub coupon_id: Uuid,
    pub coupon: Vec<CouponEvent>,
}

/// Issues `code` for `promotion`: claims the code (case-insensitive: `CouponCode`
/// is upper-cased) on its `UniqueScope::CouponCode` stream, loaded as `code_key`,
/// and creates the coupon. The command side appends both atomically.
pub fn issue_coupon(
    coupon: &Coupon,
    code_key: &UniqueKey,
    promotion: &Promotion,
    coupon_id: Uuid,
    code: CouponCode,
    at: DateTime<Utc>,
) -> Result<CouponIssue, CouponError> {
    let promotion_id = promotion
        .promotion_id()
        .ok_or(CouponError::PromotionNotFound)?;
    let coupon_events = coupon.issue(coupon_id, code.clone(), promotion_id, at)?;
    let unique_key = code_key
        .claim(UniqueScope::CouponCode, code.as_str(), coupon_id)
        .map_err(|error| match error {
            UniqueKeyError::AlreadyClaimed { owner_id, .. }
            | UniqueKeyError::NotHeld { owner_id, .. } => CouponError::CodeTaken {
                code: code.clone(),
                owner_id,
            },
        })?;
    Ok(CouponIssue {
        unique_key_stream_id: unique_key_stream_id(UniqueScope::CouponCode, code.as_str()),
        unique_key,
        coupon_id,
        coupon: coupon_events,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub enum CouponCommand {
    /// Coupon-local only: the command side issues through `issue_coupon`, which
    /// also claims the code.
    IssueCoupon {
        coupon_id: Uuid,
        code: CouponCode,
        promotion_id: Uuid,
        at: DateTime<Utc>,
    },
    DeactivateCoupon {
        at: DateTime<Utc>,
    },
    RedeemCoupon {
        order_id: Uuid,
        user_id: Option<Uuid>,
        promotion: Box<Promotion>,
        user_redemptions: u32,
        at: DateTime<Utc>,
    },
    RevertRedemption {
        order_id: Uuid,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CouponEvent {
    CouponIssued {
        coupon_id: Uuid,
        code: CouponCode,
        promotion_id: Uuid,
        usage_count: u32,
        is_active: bool,
        created_at: DateTime<Utc>,
    },
    CouponDeactivated {
        coupon_id: Uuid,
        code: CouponCode,
        at: DateTime<Utc>,
    },
    CouponRedeemed {
        coupon_id: Uuid,
        code: CouponCode,
        promotion_id: Uuid,
        order_id: Uuid,
        user_id: Option<Uuid>,
        usage_count: u32,
        redeemed_at: DateTime<Utc>,
    },
    CouponRedemptionReverted {
        coupon_id: Uuid,
        code: CouponCode,
        promotion_id: Uuid,
        order_id: Uuid,
        user_id: Option<Uuid>,
        usage_count: u32,
        reverted_at: DateTime<Utc>,
    },
}

impl DomainEvent for CouponEvent {
    fn event_type(&self) -> String {
        match self {
            CouponEvent::CouponIssued { .. } => "CouponIssued",
            CouponEvent::CouponDeactivated { .. } => "CouponDeactivated",
            CouponEvent::CouponRedeemed { .. } => "CouponRedeemed",
            CouponEvent::CouponRedemptionReverted { .. } => "CouponRedemptionReverted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CouponError {
    #[error("coupon {coupon_id} already exists")]
    AlreadyIssued { coupon_id: Uuid },
    #[error("coupon not found")]
    NotIssued,
    #[error("the coupon's promotion does not exist")]
    PromotionNotFound,
    #[error("coupon code {code} is already used by coupon {owner_id}")]
    CodeTaken { code: CouponCode, owner_id: Uuid },
    #[error("coupon {code} is no longer active")]
    Inactive { code: CouponCode },
    #[error("coupon {code} belongs to promotion {promotion_id}, not the one given")]
    PromotionMismatch {
        code: CouponCode,
        promotion_id: Uuid,
    },
    #[error("the promotion behind coupon {code} is not active")]
    PromotionInactive { code: CouponCode },
    #[error("coupon {code} is valid from {starts_at}")]
    NotYetValid {
        code: CouponCode,
        starts_at: DateTime<Utc>,
    },
    #[error("coupon {code} expired at {ends_at}")]
    Expired {
        code: CouponCode,
        ends_at: DateTime<Utc>,
    },
    #[error("coupon {code} reached its usage limit of {limit}")]
    UsageLimitReached { code: CouponCode, limit: u32 },
    #[error("coupon {code} can be used {limit} time(s) per customer")]
    PerUserLimitReached { code: CouponCode, limit: u32 },
}

impl Aggregate for Coupon {
    const TYPE: &'static str = "coupon";
    type Command = CouponCommand;
    type Event = CouponEvent;
    type Error = CouponError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            CouponCommand::IssueCoupon {
                coupon_id,
                code,
                promotion_id,
                at,
            } => self.issue(coupon_id, code, promotion_id, at)?,
            CouponCommand::DeactivateCoupon { at } => self.deactivate(at)?,
            CouponCommand::RedeemCoupon {
                order_id,
                user_id,
                promotion,
                user_redemptions,
                at,
            } => self.redeem(order_id, user_id, &promotion, user_redemptions, at)?,
            CouponCommand::RevertRedemption { order_id, at } => self.revert(order_id, at)?,
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CouponEvent::CouponIssued {
                coupon_id,
                code,
                promotion_id,
                usage_count,
                is_active,
                ..
            } => {
                self.coupon_id = Some(coupon_id);
                self.code = Some(code);
                self.promotion_id = Some(promotion_id);
                self.usage_count = usage_count;
                self.is_active = is_active;
            }
            CouponEvent::CouponDeactivated { .. } => self.is_active = false,
            CouponEvent::CouponRedeemed {
                order_id,
                user_id,
                usage_count,
                ..
            } => {
                self.redemptions.insert(order_id, user_id);
                self.usage_count = usage_count;
            }
            CouponEvent::CouponRedemptionReverted {
                order_id,
                usage_count,
                ..
            } => {
                self.redemptions.remove(&order_id);
                self.usage_count = usage_count;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::promotion::promotion::tests::{created, promotion_from, t, terms, used};
    use crate::promotion::{PromotionEvent, PromotionTerms};
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Coupon>;

    pub(crate) const PROMOTION: Uuid = Uuid::from_u128(1);
    pub(crate) const COUPON: Uuid = Uuid::from_u128(2);
    const ORDER: Uuid = Uuid::from_u128(3);
    const USER: Uuid = Uuid::from_u128(4);

    pub(crate) fn code() -> CouponCode {
        CouponCode::parse("save10").unwrap()
    }

    pub(crate) fn issued() -> CouponEvent {
        CouponEvent::CouponIssued {
            coupon_id: COUPON,
            code: code(),
            promotion_id: PROMOTION,
            usage_count: 0,
            is_active: true,
            created_at: t(1),
        }
    }

    pub(crate) fn redeemed(order_id: Uuid, usage_count: u32) -> CouponEvent {
        CouponEvent::CouponRedeemed {
            coupon_id: COUPON,
            code: code(),
            promotion_id: PROMOTION,
            order_id,
            user_id: Some(USER),
            usage_count,
            redeemed_at: t(2),
        }
    }

    pub(crate) fn coupon_from(events: Vec<CouponEvent>) -> Coupon {
        let mut coupon = Coupon::default();
        for event in events {
            coupon.apply(event);
        }
        coupon
    }

    fn redeem(promotion: Promotion, user_redemptions: u32, at: DateTime<Utc>) -> CouponCommand {
        CouponCommand::RedeemCoupon {
            order_id: ORDER,
            user_id: Some(USER),
            promotion: Box::new(promotion),
            user_redemptions,
            at,
        }
    }

    fn promotion_with(terms: PromotionTerms) -> Promotion {
        promotion_from(vec![created(PROMOTION, terms)])
    }

    #[test]
    fn issue_claims_the_code_and_creates_the_coupon() {
        let promotion = promotion_with(terms());
        let lower = CouponCode::parse("save10").unwrap();
        let issue = issue_coupon(
            &Coupon::default(),
            &UniqueKey::default(),
            &promotion,
            COUPON,
            lower,
            t(1),
        )
        .unwrap();
        assert_eq!(issue.unique_key_stream_id, "coupon_code:SAVE10");
        assert_eq!(
            issue.unique_key,
            vec![UniqueKeyEvent::UniqueKeyClaimed {
                scope: UniqueScope::CouponCode,
                key: "SAVE10".into(),
                owner_id: COUPON,
            }]
        );
        assert_eq!(issue.coupon, vec![issued()]);
    }

    #[test]
    fn a_code_taken_in_any_case_is_refused() {
        let other = Uuid::from_u128(99);
        let mut key = UniqueKey::default();
        key.apply(UniqueKeyEvent::UniqueKeyClaimed {
            scope: UniqueScope::CouponCode,
            key: "SAVE10".into(),
            owner_id: other,
        });
        let result = issue_coupon(
            &Coupon::default(),
            &key,
            &promotion_with(terms()),
            COUPON,
            CouponCode::parse("Save10").unwrap(),
            t(1),
        );
        assert_eq!(
            result,
            Err(CouponError::CodeTaken {
                code: code(),
                owner_id: other,
            })
        );
    }

    #[test]
    fn a_coupon_needs_an_existing_promotion() {
        let result = issue_coupon(
            &Coupon::default(),
            &UniqueKey::default(),
            &Promotion::default(),
            COUPON,
            code(),
            t(1),
        );
        assert_eq!(result, Err(CouponError::PromotionNotFound));
    }

    #[test]
    fn a_coupon_is_issued_once() {
        Given::with(())
            .given(vec![issued()])
            .when(CouponCommand::IssueCoupon {
                coupon_id: COUPON,
                code: code(),
                promotion_id: PROMOTION,
                at: t(2),
            })
            .then_expect_error(CouponError::AlreadyIssued { coupon_id: COUPON });
    }

    #[test]
    fn deactivation_happens_once() {
        Given::with(())
            .given(vec![issued()])
            .when(CouponCommand::DeactivateCoupon { at: t(2) })
            .then_expect_events(vec![CouponEvent::CouponDeactivated {
                coupon_id: COUPON,
                code: code(),
                at: t(2),
            }]);
        Given::with(())
            .given(vec![
                issued(),
                CouponEvent::CouponDeactivated {
                    coupon_id: COUPON,
                    code: code(),
                    at: t(2),
                },
            ])
            .when(CouponCommand::DeactivateCoupon { at: t(3) })
            .then_expect_events(vec![]);
        Given::with(())
            .given_no_previous_events()
            .when(CouponCommand::DeactivateCoupon { at: t(3) })
            .then_expect_error(CouponError::NotIssued);
    }

    #[test]
    fn a_valid_coupon_is_redeemed_with_the_new_usage_count() {
        Given::with(())
            .given(vec![issued(), redeemed(Uuid::from_u128(50), 1)])
            .when(redeem(promotion_with(terms()), 0, t(2)))
            .then_expect_events(vec![redeemed(ORDER, 2)]);
    }

    #[test]
    fn the_same_order_redeems_only_once() {
        Given::with(())
            .given(vec![issued(), redeemed(ORDER, 1)])
            .when(redeem(promotion_with(terms()), 0, t(2)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn redemption_is_refused_for_every_broken_rule() {
        let deactivated = CouponEvent::CouponDeactivated {
            coupon_id: COUPON,
            code: code(),
            at: t(2),
        };
        let inactive_promotion = promotion_from(vec![
            created(PROMOTION, terms()),
            PromotionEvent::PromotionDeactivated {
                promotion_id: PROMOTION,
                at: t(2),
            },
        ]);
        let exhausted = promotion_from(vec![
            created(
                PROMOTION,
                PromotionTerms {
                    usage_limit: Some(1),
                    ..terms()
                },
            ),
            used(PROMOTION, 1),
        ]);
        let once_per_user = promotion_with(PromotionTerms {
            usage_limit_per_user: Some(1),
            ..terms()
        });
        let other_promotion = promotion_from(vec![created(Uuid::from_u128(77), terms())]);
        let cases: Vec<(Vec<CouponEvent>, CouponCommand, CouponError)> = vec![
            (
                vec![],
                redeem(promotion_with(terms()), 0, t(2)),
                CouponError::NotIssued,
            ),
            (
                vec![issued(), deactivated],
                redeem(promotion_with(terms()), 0, t(3)),
                CouponError::Inactive { code: code() },
            ),
            (
                vec![issued()],
                redeem(other_promotion, 0, t(3)),
                CouponError::PromotionMismatch {
                    code: code(),
                    promotion_id: PROMOTION,
                },
            ),
            (
                vec![issued()],
                redeem(inactive_promotion, 0, t(3)),
                CouponError::PromotionInactive { code: code() },
            ),
            (
                vec![issued()],
                redeem(
                    promotion_with(PromotionTerms {
                        starts_at: t(10),
                        ..terms()
                    }),
                    0,
                    t(3),
                ),
                CouponError::NotYetValid {
                    code: code(),
                    starts_at: t(10),
                },
            ),
            (
                vec![issued()],
                redeem(promotion_with(terms()), 0, t(31)),
                CouponError::Expired {
                    code: code(),
                    ends_at: t(31),
                },
            ),
            (
                vec![issued()],
                redeem(exhausted, 0, t(3)),
                CouponError::UsageLimitReached {
                    code: code(),
                    limit: 1,
                },
            ),
            (
                vec![issued()],
                redeem(once_per_user, 1, t(3)),
                CouponError::PerUserLimitReached {
                    code: code(),
                    limit: 1,
                },
            ),
        ];
        for (given, command, error) in cases {
            Given::with(())
                .given(given)
                .when(command)
                .then_expect_error(error);
        }
    }

    #[test]
    fn under_the_per_user_limit_redemption_is_allowed() {
        let twice_per_user = promotion_with(PromotionTerms {
            usage_limit_per_user: Some(2),
            ..terms()
        });
        Given::with(())
            .given(vec![issued()])
            .when(redeem(twice_per_user, 1, t(3)))
            .then_expect_events(vec![CouponEvent::CouponRedeemed {
                coupon_id: COUPON,
                code: code(),
                promotion_id: PROMOTION,
                order_id: ORDER,
                user_id: Some(USER),
                usage_count: 1,
                redeemed_at: t(3),
            }]);
    }

    #[test]
    fn revert_gives_the_redemption_back_once() {
        Given::with(())
            .given(vec![issued(), redeemed(ORDER, 1)])
            .when(CouponCommand::RevertRedemption {
                order_id: ORDER,
                at: t(4),
            })
            .then_expect_events(vec![CouponEvent::CouponRedemptionReverted {
                coupon_id: COUPON,
                code: code(),
                promotion_id: PROMOTION,
                order_id: ORDER,
                user_id: Some(USER),
                usage_count: 0,
                reverted_at: t(4),
            }]);
        Given::with(())
            .given(vec![
                issued(),
                redeemed(ORDER, 1),
                CouponEvent::CouponRedemptionReverted {
                    coupon_id: COUPON,
                    code: code(),
                    promotion_id: PROMOTION,
                    order_id: ORDER,
                    user_id: Some(USER),
                    usage_count: 0,
                    reverted_at: t(4),
                },
            ])
            .when(CouponCommand::RevertRedemption {
                order_id: ORDER,
                at: t(5),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn reverting_an_order_that_never_redeemed_changes_nothing() {
        Given::with(())
            .given(vec![issued(), redeemed(Uuid::from_u128(50), 1)])
            .when(CouponCommand::RevertRedemption {
                order_id: ORDER,
                at: t(4),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_deactivated_coupon_still_gives_back_a_redemption() {
        Given::with(())
            .given(vec![
                issued(),
                redeemed(ORDER, 1),
                CouponEvent::CouponDeactivated {
                    coupon_id: COUPON,
                    code: code(),
                    at: t(3),
                },
            ])
            .when(CouponCommand::RevertRedemption {
                order_id: ORDER,
                at: t(4),
            })
            .then_expect_events(vec![CouponEvent::CouponRedemptionReverted {
                coupon_id: COUPON,
                code: code(),
                promotion_id: PROMOTION,
                order_id: ORDER,
                user_id: Some(USER),
                usage_count: 0,
                reverted_at: t(4),
            }]);
    }

    #[test]
    fn event_types_are_the_variant_names() {
        assert_eq!(issued().event_type(), "CouponIssued");
        assert_eq!(redeemed(ORDER, 1).event_type(), "CouponRedeemed");
        assert_eq!(issued().event_version(), "1");
    }
}
