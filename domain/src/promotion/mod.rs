//! Promotions and coupons: the `Promotion` aggregate (terms, activation, the
//! promotion-wide usage counter), the `Coupon` aggregate (a unique code that
//! redeems a promotion, once per order), the `CustomerUsage` aggregate (one
//! customer's uses of one promotion), and the pure evaluation engine that
//! turns eligible promotions into per-line discounts, shipping, tax and totals.

pub mod coupon;
pub mod customer_usage;
pub mod evaluation;
// The aggregate shares the module's name on purpose: `promotion::Promotion`.
#[allow(clippy::module_inception)]
pub mod promotion;

pub use coupon::{issue_coupon, Coupon, CouponCommand, CouponError, CouponEvent, CouponIssue};
pub use customer_usage::{
    customer_usage_stream_id, CustomerUsage, CustomerUsageCommand, CustomerUsageError,
    CustomerUsageEvent,
};
pub use evaluation::{
    eligibility, evaluate, AppliedPromotion, CouponOffer, EligibilityContext, Evaluation,
    EvaluationError, EvaluationInput, EvaluationLine, Ineligibility,
};
pub use promotion::{
    Applicability, ApplicableTo, EmptyTarget, InvalidPercentage, InvalidPromotionKind, Percentage,
    Promotion, PromotionCommand, PromotionError, PromotionEvent, PromotionKind, PromotionTerms,
    PromotionType, Unavailability,
};
