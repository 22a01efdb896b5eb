//! The `Promotion` aggregate: a discount's terms (kind and value, conditions,
//! validity window, targeting), its activation, and the promotion-wide usage
//! counter that `usage_limit` is enforced against.
//!
//! Usage is counted here, on the promotion's own stream, for every order the
//! promotion applies to (through any of its coupons or automatically), so the
//! global limit holds across coupons: the checkout appends `PromotionUsageRecorded`
//! in the same atomic append as the order, with the version it loaded. The
//! per-user count is plain input (the read model's count of the user's uses),
//! because keeping one counter per user on a busy promotion's stream would
//! grow its state without bound.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{bounded_text, forbidden_character, Money, Price, TextError, TextLayout};

/// A percentage discount: above 0, at most 100, with at most two decimals
/// (the seed's `value DECIMAL(10,2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Percentage(Decimal);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid percentage {0}: must be above 0, at most 100, with at most 2 decimals")]
pub struct InvalidPercentage(pub Decimal);

impl Percentage {
    pub fn new(value: Decimal) -> Result<Self, InvalidPercentage> {
        if value <= Decimal::ZERO || value > Decimal::ONE_HUNDRED || value.normalize().scale() > 2 {
            return Err(InvalidPercentage(value));
        }
        let mut value = value;
        value.rescale(2);
        Ok(Self(value))
    }

    pub fn get(&self) -> Decimal {
        self.0
    }
}

impl TryFrom<Decimal> for Percentage {
    type Error = InvalidPercentage;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Percentage::new(value)
    }
}

impl From<Percentage> for Decimal {
    fn from(value: Percentage) -> Decimal {
        value.0
    }
}

/// The seed's `promotions.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionType {
    Percentage,
    FixedAmount,
    FreeShipping,
}

/// What a promotion takes off. Serialized as the seed's two columns, `type` and
/// `value`; free shipping has no value of its own and is written with
/// `value: "0.00"` because the column is NOT NULL, so a projector copies both
/// fields as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PromotionKindRecord", into = "PromotionKindRecord")]
pub enum PromotionKind {
    Percentage { value: Percentage },
    FixedAmount { value: Price },
    FreeShipping,
}

impl PromotionKind {
    pub fn promotion_type(&self) -> PromotionType {
        match self {
            PromotionKind::Percentage { .. } => PromotionType::Percentage,
            PromotionKind::FixedAmount { .. } => PromotionType::FixedAmount,
            PromotionKind::FreeShipping => PromotionType::FreeShipping,
        }
    }

    /// The seed's `value` column: the percentage, the fixed amount, or 0.00 for free shipping.
    pub fn value(&self) -> Decimal {
        match self {
            PromotionKind::Percentage { value } => value.get(),
            PromotionKind::FixedAmount { value } => value.amount(),
            PromotionKind::FreeShipping => Decimal::new(0, 2),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PromotionKindRecord {
    #[serde(rename = "type")]
    promotion_type: PromotionType,
    value: Decimal,
}

/// Why a stored `type`/`value` pair cannot be a `PromotionKind`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value} for a {promotion_type:?} promotion")]
pub struct InvalidPromotionKind {
    pub promotion_type: PromotionType,
    pub value: Decimal,
}

impl TryFrom<PromotionKindRecord> for PromotionKind {
    type Error = InvalidPromotionKind;
    fn try_from(record: PromotionKindRecord) -> Result<Self, Self::Error> {
        let invalid = || InvalidPromotionKind {
            promotion_type: record.promotion_type,
            value: record.value,
        };
        match record.promotion_type {
            PromotionType::Percentage => Percentage::new(record.value)
                .map(|value| PromotionKind::Percentage { value })
                .map_err(|_| invalid()),
            PromotionType::FixedAmount => Price::new(record.value)
                .map(|value| PromotionKind::FixedAmount { value })
                .map_err(|_| invalid()),
            PromotionType::FreeShipping if record.value.is_zero() => {
                Ok(PromotionKind::FreeShipping)
            }
            PromotionType::FreeShipping => Err(invalid()),
        }
    }
}

impl From<PromotionKind> for PromotionKindRecord {
    fn from(kind: PromotionKind) -> Self {
        PromotionKindRecord {
            promotion_type: kind.promotion_type(),
            value: kind.value(),
        }
    }
}

/// The seed's `promotions.applicable_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicableTo {
    All,
    Categories,
    Products,
    Users,
}

impl fmt::Display for ApplicableTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApplicableTo::All => "all",
            ApplicableTo::Categories => "categories",
            ApplicableTo::Products => "products",
            ApplicableTo::Users => "users",
        })
    }
}

/// Who or what a promotion applies to. A targeted variant lists at least one id
/// (checked when the terms are accepted and when an event is read back).
/// Serialized as `applicable_to` (the seed's column) plus `applicable_ids`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ApplicabilityRecord", into = "ApplicabilityRecord")]
pub enum Applicability {
    All,
    Categories { ids: BTreeSet<Uuid> },
    Products { ids: BTreeSet<Uuid> },
    Users { ids: BTreeSet<Uuid> },
}

impl Applicability {
    pub fn applicable_to(&self) -> ApplicableTo {
        match self {
            Applicability::All => ApplicableTo::All,
            Applicability::Categories { .. } => ApplicableTo::Categories,
            Applicability::Products { .. } => ApplicableTo::Products,
            Applicability::Users { .. } => ApplicableTo::Users,
        }
    }

    pub fn ids(&self) -> Option<&BTreeSet<Uuid>> {
        match self {
            Applicability::All => None,
            Applicability::Categories { ids }
            | Applicability::Products { ids }
            | Applicability::Users { ids } => Some(ids),
        }
    }

    /// Whether the promotion discounts only some lines (categories, products)
    /// rather than the whole order (all, users).
    pub fn is_line_targeted(&self) -> bool {
        matches!(
            self,
            Applicability::Categories { .. } | Applicability::Products { .. }
        )
    }
}

#[derive(Serialize, Deserialize)]
struct ApplicabilityRecord {
    applicable_to: ApplicableTo,
    #[serde(default)]
    applicable_ids: BTreeSet<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a promotion applicable to {0} must list at least one id")]
pub struct EmptyTarget(pub ApplicableTo);

impl TryFrom<ApplicabilityRecord> for Applicability {
    type Error = EmptyTarget;
    fn try_from(record: ApplicabilityRecord) -> Result<Self, Self::Error> {
        let ids = record.applicable_ids;
        let applicability = match record.applicable_to {
            ApplicableTo::All => return Ok(Applicability::All),
            ApplicableTo::Categories => Applicability::Categories { ids },
            ApplicableTo::Products => Applicability::Products { ids },
            ApplicableTo::Users => Applicability::Users { ids },
        };
        if applicability.ids().is_some_and(BTreeSet::is_empty) {
            return Err(EmptyTarget(record.applicable_to));
        }
        Ok(applicability)
    }
}

impl From<Applicability> for ApplicabilityRecord {
    fn from(applicability: Applicability) -> Self {
        ApplicabilityRecord {
            applicable_to: applicability.applicable_to(),
            applicable_ids: applicability.ids().cloned().unwrap_or_default(),
        }
    }
}

/// Everything an operator sets on a promotion. Flattened into the events, so a
/// projector sees the seed's columns: `name`, `description`, `type`, `value`,
/// `minimum_amount`, `maximum_discount`, `usage_limit`, `usage_limit_per_user`,
/// `starts_at`, `ends_at`, `applicable_to` (+ `applicable_ids`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionTerms {
    pub name: String,
    pub description: Option<String>,
    #[serde(flatten)]
    pub kind: PromotionKind,
    /// On the order's subtotal before any discount.
    pub minimum_amount: Option<Money>,
    /// The most this promotion takes off one order (also caps a free-shipping discount).
    pub maximum_discount: Option<Money>,
    /// Uses across all coupons and automatic applications.
    pub usage_limit: Option<u32>,
    pub usage_limit_per_user: Option<u32>,
    pub starts_at: DateTime<Utc>,
    /// Exclusive: the promotion is valid while `starts_at <= now < ends_at`.
    pub ends_at: DateTime<Utc>,
    #[serde(flatten)]
    pub applicable_to: Applicability,
}

impl PromotionTerms {
    /// The terms as they will be stored (trimmed name, blank description
    /// dropped), or why they are refused.
    fn validated(self) -> Result<Self, PromotionError> {
        let name =
            bounded_text("name", &self.name, 255).map_err(|_| PromotionError::InvalidName {
                name: self.name.clone(),
            })?;
        if self.starts_at >= self.ends_at {
            return Err(PromotionError::InvalidWindow {
                starts_at: self.starts_at,
                ends_at: self.ends_at,
            });
        }
        if self.usage_limit == Some(0) {
            return Err(PromotionError::ZeroLimit {
                field: "usage_limit",
            });
        }
        if self.usage_limit_per_user == Some(0) {
            return Err(PromotionError::ZeroLimit {
                field: "usage_limit_per_user",
            });
        }
        if self.maximum_discount.is_some_and(|cap| cap.is_zero()) {
            return Err(PromotionError::ZeroMaximumDiscount);
        }
        if self.applicable_to.ids().is_some_and(BTreeSet::is_empty) {
            return Err(PromotionError::EmptyTarget {
                applicable_to: self.applicable_to.applicable_to(),
            });
        }
        if let Some(reason) = self
            .description
            .as_deref()
            .and_then(|d| forbidden_character(d, TextLayout::MultiLine))
        {
            return Err(PromotionError::InvalidDescription { reason });
        }
        let description = self
            .description
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        Ok(Self {
            name,
            description,
            ..self
        })
    }
}

/// Why a promotion cannot be used right now (shared by coupons and the evaluation engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailability {
    Inactive,
    NotStarted { starts_at: DateTime<Utc> },
    Ended { ends_at: DateTime<Utc> },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    promotion_id: Option<Uuid>,
    terms: Option<PromotionTerms>,
    is_active: bool,
    usage_count: u32,
}

impl Promotion {
    pub fn promotion_id(&self) -> Option<Uuid> {
        self.promotion_id
    }

    pub fn exists(&self) -> bool {
        self.promotion_id.is_some()
    }

    pub fn terms(&self) -> Option<&PromotionTerms> {
        self.terms.as_ref()
    }

    pub fn is_active(&self) -> bool {
        self.is_active
    }

    /// Orders currently using the promotion (recorded minus reverted).
    pub fn usage_count(&self) -> u32 {
        self.usage_count
    }

    /// Whether the promotion can be used at `at`: created, active, inside its window.
    pub fn availability(&self, at: DateTime<Utc>) -> Result<&PromotionTerms, Unavailability> {
        let terms = match (&self.terms, self.is_active) {
            (Some(terms), true) => terms,
            _ => return Err(Unavailability::Inactive),
        };
        if at < terms.starts_at {
            return Err(Unavailability::NotStarted {
                starts_at: terms.starts_at,
            });
        }
        if at >= terms.ends_at {
            return Err(Unavailability::Ended {
                ends_at: terms.ends_at,
            });
        }
        Ok(terms)
    }

    /// The global limit, if this promotion has reached it.
    pub fn reached_usage_limit(&self) -> Option<u32> {
        let limit = self.terms.as_ref()?.usage_limit?;
        (self.usage_count >= limit).then_some(limit)
    }

    /// The per-user limit, if a user with `user_redemptions` past uses has reached it.
    pub fn reached_per_user_limit(&self, user_redemptions: u32) -> Option<u32> {
        let limit = self.terms.as_ref()?.usage_limit_per_user?;
        (user_redemptions >= limit).then_some(limit)
    }

    fn id(&self) -> Result<Uuid, PromotionError> {
        self.promotion_id.ok_or(PromotionError::NotFound)
    }

    pub fn create(
        &self,
        promotion_id: Uuid,
        terms: PromotionTerms,
        at: DateTime<Utc>,
    ) -> Result<Vec<PromotionEvent>, PromotionError> {
        if let Some(existing) = self.promotion_id {
            return Err(PromotionError::AlreadyCreated {
                promotion_id: existing,
            });
        }
        Ok(vec![PromotionEvent::PromotionCreated {
            promotion_id,
            terms: terms.validated()?,
            is_active: true,
            usage_count: 0,
            created_at: at,
        }])
    }

    /// Replaces the terms as a whole. Unchanged terms produce no event.
    pub fn update(
        &self,
        terms: PromotionTerms,
        at: DateTime<Utc>,
    ) -> Result<Vec<PromotionEvent>, PromotionError> {
        let promotion_id = self.id()?;
        let terms = terms.validated()?;
        if let Some(limit) = terms.usage_limit.filter(|limit| *limit < self.usage_count) {
            return Err(PromotionError::LimitBelowUsage {
                limit,
                used: self.usage_count,
            });
        }
        if self.terms.as_ref() == Some(&terms) {
            return Ok(vec![]);
        }
        Ok(vec![PromotionEvent::PromotionUpdated {
            promotion_id,
            terms,
            updated_at: at,
        }])
    }

    pub fn activate(&self, at: DateTime<Utc>) -> Result<Vec<PromotionEvent>, PromotionError> {
        let promotion_id = self.id()?;
        if self.is_active {
            return Ok(vec![]);
        }
        Ok(vec![PromotionEvent::PromotionActivated {
            promotion_id,
            at,
        }])
    }

    pub fn deactivate(&self, at: DateTime<Utc>) -> Result<Vec<PromotionEvent>, PromotionError> {
        let promotion_id = self.id()?;
        if !self.is_active {
            return Ok(vec![]);
        }
        Ok(vec![PromotionEvent::PromotionDeactivated {
            promotion_id,
            at,
        }])
    }

    /// Counts one more order using the promotion, within its global limit and
    /// the per-user limit (`user_redemptions`: the user's uses so far, plain
    /// input). Once-per-order is the caller's guarantee: an order is placed once
    /// (per cart) and cancelled once, so the counter needs no per-order memory.
    pub fn record_usage(
        &self,
        order_id: Uuid,
        user_id: Option<Uuid>,
        coupon_id: Option<Uuid>,
        user_redemptions: u32,
        at: DateTime<Utc>,
    ) -> Result<Vec<PromotionEvent>, PromotionError> {
        let promotion_id = self.id()?;
        if let Some(limit) = self.reached_usage_limit() {
            return Err(PromotionError::UsageLimitReached {
                promotion_id,
                limit,
            });
        }
        if let Some(limit) = self.reached_per_user_limit(user_redemptions) {
            return Err(PromotionError::PerUserLimitReached {
                promotion_id,
                limit,
            });
        }
        Ok(vec![PromotionEvent::PromotionUsageRecorded {
            promotion_id,
            order_id,
            user_id,
            coupon_id,
            usage_count: self.usage_count + 1,
            at,
        }])
    }

    /// Gives a use back when the order is cancelled. Nothing to give back: no event.
    pub fn revert_usage(
        &self,
        order_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Vec<PromotionEvent>, PromotionError> {
        let promotion_id = self.id()?;
        if self.usage_count == 0 {
            return Ok(vec![]);
        }
        Ok(vec![PromotionEvent::PromotionUsageReverted {
            promotion_id,
            order_id,
            usage_count: self.usage_count - 1,
            at,
        }])
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PromotionCommand {
    CreatePromotion {
        promotion_id: Uuid,
        terms: PromotionTerms,
        at: DateTime<Utc>,
    },
    UpdatePromotion {
        terms: PromotionTerms,
        at: DateTime<Utc>,
    },
    ActivatePromotion {
        at: DateTime<Utc>,
    },
    DeactivatePromotion {
        at: DateTime<Utc>,
    },
    RecordUsage {
        order_id: Uuid,
        user_id: Option<Uuid>,
        coupon_id: Option<Uuid>,
        user_redemptions: u32,
        at: DateTime<Utc>,
    },
    RevertUsage {
        order_id: Uuid,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PromotionEvent {
    PromotionCreated {
        promotion_id: Uuid,
        #[serde(flatten)]
        terms: PromotionTerms,
        is_active: bool,
        usage_count: u32,
        created_at: DateTime<Utc>,
    },
    PromotionUpdated {
        promotion_id: Uuid,
        #[serde(flatten)]
        terms: PromotionTerms,
        updated_at: DateTime<Utc>,
    },
    PromotionActivated {
        promotion_id: Uuid,
        at: DateTime<Utc>,
    },
    PromotionDeactivated {
        promotion_id: Uuid,
        at: DateTime<Utc>,
    },
    PromotionUsageRecorded {
        promotion_id: Uuid,
        order_id: Uuid,
        user_id: Option<Uuid>,
        coupon_id: Option<Uuid>,
        usage_count: u32,
        at: DateTime<Utc>,
    },
    PromotionUsageReverted {
        promotion_id: Uuid,
        order_id: Uuid,
        usage_count: u32,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for PromotionEvent {
    fn event_type(&self) -> String {
        match self {
            PromotionEvent::PromotionCreated { .. } => "PromotionCreated",
            PromotionEvent::PromotionUpdated { .. } => "PromotionUpdated",
            PromotionEvent::PromotionActivated { .. } => "PromotionActivated",
            PromotionEvent::PromotionDeactivated { .. } => "PromotionDeactivated",
            PromotionEvent::PromotionUsageRecorded { .. } => "PromotionUsageRecorded",
            PromotionEvent::PromotionUsageReverted { .. } => "PromotionUsageReverted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromotionError {
    #[error("promotion {promotion_id} already exists")]
    AlreadyCreated { promotion_id: Uuid },
    #[error("promotion not found")]
    NotFound,
    #[error("invalid promotion name {name:?} (1 to 255 characters on one line)")]
    InvalidName { name: String },
    #[error("invalid promotion description: {reason}")]
    InvalidDescription { reason: TextError },
    #[error("the promotion must start ({starts_at}) before it ends ({ends_at})")]
    InvalidWindow {
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
    #[error("{field} must be at least 1 (leave it empty for no limit)")]
    ZeroLimit { field: &'static str },
    #[error("maximum_discount must be above 0 (leave it empty for no cap)")]
    ZeroMaximumDiscount,
    #[error("a promotion applicable to {applicable_to} must list at least one id")]
    EmptyTarget { applicable_to: ApplicableTo },
    #[error("usage_limit {limit} is below the {used} uses already made")]
    LimitBelowUsage { limit: u32, used: u32 },
    #[error("promotion {promotion_id} reached its usage limit of {limit}")]
    UsageLimitReached { promotion_id: Uuid, limit: u32 },
    #[error("promotion {promotion_id} reached its limit of {limit} uses per user")]
    PerUserLimitReached { promotion_id: Uuid, limit: u32 },
}

impl Aggregate for Promotion {
    const TYPE: &'static str = "promotion";
    type Command = PromotionCommand;
    type Event = PromotionEvent;
    type Error = PromotionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            PromotionCommand::CreatePromotion {
                promotion_id,
                terms,
                at,
            } => self.create(promotion_id, terms, at)?,
            PromotionCommand::UpdatePromotion { terms, at } => self.update(terms, at)?,
            PromotionCommand::ActivatePromotion { at } => self.activate(at)?,
            PromotionCommand::DeactivatePromotion { at } => self.deactivate(at)?,
            PromotionCommand::RecordUsage {
                order_id,
                user_id,
                coupon_id,
                user_redemptions,
                at,
            } => self.record_usage(order_id, user_id, coupon_id, user_redemptions, at)?,
            PromotionCommand::RevertUsage { order_id, at } => self.revert_usage(order_id, at)?,
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PromotionEvent::PromotionCreated {
                promotion_id,
                terms,
                is_active,
                usage_count,
                ..
            } => {
                self.promotion_id = Some(promotion_id);
                self.terms = Some(terms);
                self.is_active = is_active;
                self.usage_count = usage_count;
            }
            PromotionEvent::PromotionUpdated { terms, .. } => self.terms = Some(terms),
            PromotionEvent::PromotionActivated { .. } => self.is_active = true,
            PromotionEvent::PromotionDeactivated { .. } => self.is_active = false,
            PromotionEvent::PromotionUsageRecorded { usage_count, .. }
            | PromotionEvent::PromotionUsageReverted { usage_count, .. } => {
                self.usage_count = usage_count
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;
    use rust_decimal_macros::dec;

    type Given = TestFramework<Promotion>;

    pub(crate) fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, day, 0, 0, 0).unwrap()
    }

    pub(crate) fn money(amount: Decimal) -> Money {
        Money::new(amount).unwrap()
    }

    pub(crate) fn percent(value: Decimal) -> PromotionKind {
        PromotionKind::Percentage {
            value: Percentage::new(value).unwrap(),
        }
    }

    pub(crate) fn fixed(value: Decimal) -> PromotionKind {
        PromotionKind::FixedAmount {
            value: Price::new(value).unwrap(),
        }
    }

    /// Valid from Jan 1 to Jan 31 2024, 10% off everything, no limits.
    pub(crate) fn terms() -> PromotionTerms {
        PromotionTerms {
            name: "New Year Sale".into(),
            description: Some("10% off".into()),
            kind: percent(dec!(10)),
            minimum_amount: None,
            maximum_discount: None,
            usage_limit: None,
            usage_limit_per_user: None,
            starts_at: t(1),
            ends_at: t(31),
            applicable_to: Applicability::All,
        }
    }

    pub(crate) fn created(promotion_id: Uuid, terms: PromotionTerms) -> PromotionEvent {
        PromotionEvent::PromotionCreated {
            promotion_id,
            terms,
            is_active: true,
            usage_count: 0,
            created_at: t(1),
        }
    }

    pub(crate) fn used(promotion_id: Uuid, usage_count: u32) -> PromotionEvent {
        PromotionEvent::PromotionUsageRecorded {
            promotion_id,
            order_id: Uuid::from_u128(u128::from(usage_count)),
            user_id: None,
            coupon_id: None,
            usage_count,
            at: t(2),
        }
    }

    /// A promotion state built from its events, as the command side loads it.
    pub(crate) fn promotion_from(events: Vec<PromotionEvent>) -> Promotion {
        let mut promotion = Promotion::default();
        for event in events {
            promotion.apply(event);
        }
        promotion
    }

    fn create(terms: PromotionTerms) -> PromotionCommand {
        PromotionCommand::CreatePromotion {
            promotion_id: Uuid::from_u128(1),
            terms,
            at: t(1),
        }
    }

    #[test]
    fn a_valid_promotion_is_created_active_with_trimmed_text() {
        let id = Uuid::from_u128(1);
        let raw = PromotionTerms {
            name: "  New Year Sale ".into(),
            description: Some("   ".into()),
            ..terms()
        };
        Given::with(())
            .given_no_previous_events()
            .when(create(raw))
            .then_expect_events(vec![created(
                id,
                PromotionTerms {
                    description: None,
                    ..terms()
                },
            )]);
    }

    #[test]
    fn a_description_refuses_control_characters_but_not_lines() {
        for (description, ok) in [
            ("a\u{0}b", false),
            ("a\u{7}b", false),
            ("10% off\nall week", true),
        ] {
            let result = Given::with(())
                .given_no_previous_events()
                .when(create(PromotionTerms {
                    description: Some(description.into()),
                    ..terms()
                }))
                .inspect_result();
            assert_eq!(result.is_ok(), ok, "{description:?}: {result:?}");
        }
        let result = Given::with(())
            .given_no_previous_events()
            .when(create(PromotionTerms {
                name: "New\u{0}Year".into(),
                ..terms()
            }))
            .inspect_result();
        assert!(result.is_err(), "{result:?}");
    }

    #[test]
    fn a_promotion_is_created_only_once() {
        let id = Uuid::from_u128(1);
        Given::with(())
            .given(vec![created(id, terms())])
            .when(create(terms()))
            .then_expect_error(PromotionError::AlreadyCreated { promotion_id: id });
    }

    #[test]
    fn the_window_must_start_before_it_ends() {
        for ends_at in [t(1), t(1) - chrono::Duration::seconds(1)] {
            Given::with(())
                .given_no_previous_events()
                .when(create(PromotionTerms { ends_at, ..terms() }))
                .then_expect_error(PromotionError::InvalidWindow {
                    starts_at: t(1),
                    ends_at,
                });
        }
    }

    #[test]
    fn a_blank_or_overlong_name_is_refused() {
        for name in ["  ".to_owned(), "x".repeat(256)] {
            Given::with(())
                .given_no_previous_events()
                .when(create(PromotionTerms {
                    name: name.clone(),
                    ..terms()
                }))
                .then_expect_error(PromotionError::InvalidName { name });
        }
    }

    #[test]
    fn zero_limits_and_a_zero_cap_are_refused() {
        let cases = [
            (
                PromotionTerms {
                    usage_limit: Some(0),
                    ..terms()
                },
                PromotionError::ZeroLimit {
                    field: "usage_limit",
                },
            ),
            (
                PromotionTerms {
                    usage_limit_per_user: Some(0),
                    ..terms()
                },
                PromotionError::ZeroLimit {
                    field: "usage_limit_per_user",
                },
            ),
            (
                PromotionTerms {
                    maximum_discount: Some(Money::ZERO),
                    ..terms()
                },
                PromotionError::ZeroMaximumDiscount,
            ),
        ];
        for (terms, error) in cases {
            Given::with(())
                .given_no_previous_events()
                .when(create(terms))
                .then_expect_error(error);
        }
    }

    #[test]
    fn a_targeted_promotion_must_list_ids() {
        for (applicable_to, expected) in [
            (
                Applicability::Categories {
                    ids: BTreeSet::new(),
                },
                ApplicableTo::Categories,
            ),
            (
                Applicability::Products {
                    ids: BTreeSet::new(),
                },
                ApplicableTo::Products,
            ),
            (
                Applicability::Users {
                    ids: BTreeSet::new(),
                },
                ApplicableTo::Users,
            ),
        ] {
            Given::with(())
                .given_no_previous_events()
                .when(create(PromotionTerms {
                    applicable_to,
                    ..terms()
                }))
                .then_expect_error(PromotionError::EmptyTarget {
                    applicable_to: expected,
                });
        }
    }

    #[test]
    fn percentage_must_be_above_zero_and_at_most_a_hundred() {
        assert!(Percentage::new(dec!(0)).is_err());
        assert!(Percentage::new(dec!(-5)).is_err());
        assert!(Percentage::new(dec!(100.01)).is_err());
        assert!(Percentage::new(dec!(12.345)).is_err());
        assert_eq!(Percentage::new(dec!(100)).unwrap().get(), dec!(100.00));
        assert!(Percentage::new(dec!(0.01)).is_ok());
    }

    #[test]
    fn events_carry_the_seed_columns_and_free_shipping_is_written_with_value_zero() {
        let event = created(
            Uuid::from_u128(1),
            PromotionTerms {
                kind: PromotionKind::FreeShipping,
                applicable_to: Applicability::Categories {
                    ids: [Uuid::from_u128(9)].into(),
                },
                usage_limit: Some(100),
                ..terms()
            },
        );
        let json = serde_json::to_value(&event).unwrap();
        let body = &json["PromotionCreated"];
        assert_eq!(body["type"], "free_shipping");
        assert_eq!(body["value"], "0.00");
        assert_eq!(body["applicable_to"], "categories");
        assert_eq!(body["applicable_ids"][0], Uuid::from_u128(9).to_string());
        assert_eq!(body["usage_limit"], 100);
        assert_eq!(body["usage_limit_per_user"], serde_json::Value::Null);
        assert_eq!(
            serde_json::from_value::<PromotionEvent>(json).unwrap(),
            event
        );

        let percentage = created(Uuid::from_u128(1), terms());
        let json = serde_json::to_value(&percentage).unwrap();
        assert_eq!(json["PromotionCreated"]["type"], "percentage");
        assert_eq!(json["PromotionCreated"]["value"], "10.00");
        assert_eq!(json["PromotionCreated"]["applicable_to"], "all");
        assert_eq!(
            serde_json::from_value::<PromotionEvent>(json).unwrap(),
            percentage
        );
        assert_eq!(PromotionKind::FreeShipping.value(), dec!(0));
        assert_eq!(fixed(dec!(500)).value(), dec!(500));
    }

    #[test]
    fn a_stored_kind_or_target_that_breaks_the_rules_is_not_read_back() {
        let mut json = serde_json::to_value(created(
            Uuid::from_u128(1),
            PromotionTerms {
                kind: PromotionKind::FreeShipping,
                ..terms()
            },
        ))
        .unwrap();
        json["PromotionCreated"]["value"] = "5".into();
        assert!(serde_json::from_value::<PromotionEvent>(json.clone()).is_err());
        json["PromotionCreated"]["value"] = "0".into();
        json["PromotionCreated"]["applicable_to"] = "products".into();
        assert!(serde_json::from_value::<PromotionEvent>(json).is_err());
    }

    #[test]
    fn update_replaces_the_terms() {
        let id = Uuid::from_u128(1);
        let new_terms = PromotionTerms {
            kind: fixed(dec!(200)),
            usage_limit: Some(10),
            ..terms()
        };
        Given::with(())
            .given(vec![created(id, terms())])
            .when(PromotionCommand::UpdatePromotion {
                terms: new_terms.clone(),
                at: t(3),
            })
            .then_expect_events(vec![PromotionEvent::PromotionUpdated {
                promotion_id: id,
                terms: new_terms,
                updated_at: t(3),
            }]);
    }

    #[test]
    fn update_with_unchanged_terms_records_nothing() {
        let id = Uuid::from_u128(1);
        Given::with(())
            .given(vec![created(id, terms())])
            .when(PromotionCommand::UpdatePromotion {
                terms: terms(),
                at: t(3),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn update_never_lowers_the_limit_below_current_use() {
        let id = Uuid::from_u128(1);
        let history = vec![created(id, terms()), used(id, 1), used(id, 2), used(id, 3)];
        Given::with(())
            .given(history.clone())
            .when(PromotionCommand::UpdatePromotion {
                terms: PromotionTerms {
                    usage_limit: Some(2),
                    ..terms()
                },
                at: t(3),
            })
            .then_expect_error(PromotionError::LimitBelowUsage { limit: 2, used: 3 });
        // Exactly the current use is allowed: the promotion is simply exhausted.
        let at_use = PromotionTerms {
            usage_limit: Some(3),
            ..terms()
        };
        Given::with(())
            .given(history)
            .when(PromotionCommand::UpdatePromotion {
                terms: at_use.clone(),
                at: t(3),
            })
            .then_expect_events(vec![PromotionEvent::PromotionUpdated {
                promotion_id: id,
                terms: at_use,
                updated_at: t(3),
            }]);
    }

    #[test]
    fn update_validates_like_create() {
        Given::with(())
            .given(vec![created(Uuid::from_u128(1), terms())])
            .when(PromotionCommand::UpdatePromotion {
                terms: PromotionTerms {
                    starts_at: t(31),
                    ends_at: t(1),
                    ..terms()
                },
                at: t(3),
            })
            .then_expect_error(PromotionError::InvalidWindow {
                starts_at: t(31),
                ends_at: t(1),
            });
    }

    #[test]
    fn commands_on_a_missing_promotion_are_refused() {
        for command in [
            PromotionCommand::UpdatePromotion {
                terms: terms(),
                at: t(2),
            },
            PromotionCommand::ActivatePromotion { at: t(2) },
            PromotionCommand::DeactivatePromotion { at: t(2) },
            PromotionCommand::RevertUsage {
                order_id: Uuid::from_u128(5),
                at: t(2),
            },
        ] {
            Given::with(())
                .given_no_previous_events()
                .when(command)
                .then_expect_error(PromotionError::NotFound);
        }
    }

    #[test]
    fn deactivate_then_activate_and_repeats_are_no_ops() {
        let id = Uuid::from_u128(1);
        Given::with(())
            .given(vec![created(id, terms())])
            .when(PromotionCommand::DeactivatePromotion { at: t(2) })
            .then_expect_events(vec![PromotionEvent::PromotionDeactivated {
                promotion_id: id,
                at: t(2),
            }]);
        Given::with(())
            .given(vec![
                created(id, terms()),
                PromotionEvent::PromotionDeactivated {
                    promotion_id: id,
                    at: t(2),
                },
            ])
            .when(PromotionCommand::DeactivatePromotion { at: t(3) })
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![
                created(id, terms()),
                PromotionEvent::PromotionDeactivated {
                    promotion_id: id,
                    at: t(2),
                },
            ])
            .when(PromotionCommand::ActivatePromotion { at: t(3) })
            .then_expect_events(vec![PromotionEvent::PromotionActivated {
                promotion_id: id,
                at: t(3),
            }]);
        Given::with(())
            .given(vec![created(id, terms())])
            .when(PromotionCommand::ActivatePromotion { at: t(3) })
            .then_expect_events(vec![]);
    }

    #[test]
    fn usage_is_recorded_with_the_new_count() {
        let id = Uuid::from_u128(1);
        let (order, user, coupon) = (Uuid::from_u128(7), Uuid::from_u128(8), Uuid::from_u128(9));
        Given::with(())
            .given(vec![created(id, terms()), used(id, 1)])
            .when(PromotionCommand::RecordUsage {
                order_id: order,
                user_id: Some(user),
                coupon_id: Some(coupon),
                user_redemptions: 0,
                at: t(4),
            })
            .then_expect_events(vec![PromotionEvent::PromotionUsageRecorded {
                promotion_id: id,
                order_id: order,
                user_id: Some(user),
                coupon_id: Some(coupon),
                usage_count: 2,
                at: t(4),
            }]);
    }

    #[test]
    fn usage_stops_at_the_global_limit() {
        let id = Uuid::from_u128(1);
        let limited = PromotionTerms {
            usage_limit: Some(2),
            ..terms()
        };
        Given::with(())
            .given(vec![created(id, limited), used(id, 1), used(id, 2)])
            .when(PromotionCommand::RecordUsage {
                order_id: Uuid::from_u128(7),
                user_id: None,
                coupon_id: None,
                user_redemptions: 0,
                at: t(4),
            })
            .then_expect_error(PromotionError::UsageLimitReached {
                promotion_id: id,
                limit: 2,
            });
    }

    #[test]
    fn usage_stops_at_the_per_user_limit() {
        let id = Uuid::from_u128(1);
        let limited = PromotionTerms {
            usage_limit_per_user: Some(1),
            ..terms()
        };
        Given::with(())
            .given(vec![created(id, limited)])
            .when(PromotionCommand::RecordUsage {
                order_id: Uuid::from_u128(7),
                user_id: Some(Uuid::from_u128(8)),
                coupon_id: None,
                user_redemptions: 1,
                at: t(4),
            })
            .then_expect_error(PromotionError::PerUserLimitReached {
                promotion_id: id,
                limit: 1,
            });
    }

    #[test]
    fn a_reverted_use_frees_a_slot_and_nothing_is_reverted_below_zero() {
        let id = Uuid::from_u128(1);
        let order = Uuid::from_u128(7);
        Given::with(())
            .given(vec![created(id, terms()), used(id, 1)])
            .when(PromotionCommand::RevertUsage {
                order_id: order,
                at: t(5),
            })
            .then_expect_events(vec![PromotionEvent::PromotionUsageReverted {
                promotion_id: id,
                order_id: order,
                usage_count: 0,
                at: t(5),
            }]);
        Given::with(())
            .given(vec![created(id, terms())])
            .when(PromotionCommand::RevertUsage {
                order_id: order,
                at: t(5),
            })
            .then_expect_events(vec![]);
        let limited = PromotionTerms {
            usage_limit: Some(1),
            ..terms()
        };
        Given::with(())
            .given(vec![
                created(id, limited),
                used(id, 1),
                PromotionEvent::PromotionUsageReverted {
                    promotion_id: id,
                    order_id: order,
                    usage_count: 0,
                    at: t(5),
                },
            ])
            .when(PromotionCommand::RecordUsage {
                order_id: Uuid::from_u128(11),
                user_id: None,
                coupon_id: None,
                user_redemptions: 0,
                at: t(6),
            })
            .then_expect_events(vec![PromotionEvent::PromotionUsageRecorded {
                promotion_id: id,
                order_id: Uuid::from_u128(11),
                user_id: None,
                coupon_id: None,
                usage_count: 1,
                at: t(6),
            }]);
    }

    #[test]
    fn availability_follows_activation_and_the_half_open_window() {
        let id = Uuid::from_u128(1);
        let promotion = promotion_from(vec![created(id, terms())]);
        assert!(promotion.availability(t(1)).is_ok());
        assert_eq!(
            promotion.availability(t(1) - chrono::Duration::seconds(1)),
            Err(Unavailability::NotStarted { starts_at: t(1) })
        );
        assert_eq!(
            promotion.availability(t(31)),
            Err(Unavailability::Ended { ends_at: t(31) })
        );
        let inactive = promotion_from(vec![
            created(id, terms()),
            PromotionEvent::PromotionDeactivated {
                promotion_id: id,
                at: t(2),
            },
        ]);
        assert_eq!(inactive.availability(t(2)), Err(Unavailability::Inactive));
        assert_eq!(
            Promotion::default().availability(t(2)),
            Err(Unavailability::Inactive)
        );
    }

    #[test]
    fn event_types_are_the_variant_names() {
        let id = Uuid::from_u128(1);
        let event = created(id, terms());
        assert_eq!(event.event_type(), "PromotionCreated");
        assert_eq!(event.event_version(), "1");
        assert_eq!(used(id, 1).event_type(), "PromotionUsageRecorded");
    }
}
