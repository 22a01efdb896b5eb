//! The pure promotion evaluation engine: from priced lines, a shipping fee, the
//! automatic promotions and at most one coupon, it computes the per-line
//! discounts, discount, shipping, tax and total of an order, in this order:
//!
//! 1. Eligibility of each promotion: active and inside `starts_at <= now < ends_at`,
//!    under its usage limits, targeting the order (a listed user, or at least one
//!    line of a listed category/product), `minimum_amount` met by the subtotal
//!    before any discount. An ineligible automatic promotion is skipped; an
//!    ineligible coupon is an error, so the customer learns why.
//! 2. Line-level discounts: eligible automatic promotions, line-targeted ones
//!    (categories, products) first, then order-wide ones (all, users), ties by
//!    promotion id. Each discounts only the lines it targets, on what earlier
//!    promotions left of them.
//! 3. The coupon (one per order), on what is left after step 2.
//! 4. Caps: each promotion's discount is at most its `maximum_discount` and at
//!    most what is left of its lines (the eligible subtotal), so the order's
//!    discount never exceeds its subtotal. A discount is computed (and rounded)
//!    once per promotion, then spread over its lines in proportion to their
//!    amounts, largest remainder first, so the lines add up to it exactly.
//! 5. Shipping: a free-shipping promotion takes the fee off (up to its
//!    `maximum_discount`); the shipping discount is not part of `discount_amount`,
//!    it lowers `shipping_amount`.
//! 6. Tax: 7% VAT (`values::vat_on`) on the taxable lines' amount after their
//!    discounts, rounded once on that total. Shipping is not taxed.
//!
//! `total_amount = subtotal - discount_amount + shipping_amount + tax_amount`, never below 0.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::promotion::{
    Applicability, Promotion, PromotionKind, PromotionTerms, PromotionType, Unavailability,
};
use crate::values::{vat_on, CouponCode, Money};

/// One order line as the engine sees it: what it is (for targeting), what it costs, whether VAT applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationLine {
    pub product_id: Uuid,
    pub category_id: Option<Uuid>,
    pub total_price: Money,
    pub taxable: bool,
}

/// The coupon the customer entered, with its promotion's loaded state.
#[derive(Debug, Clone, Copy)]
pub struct CouponOffer<'a> {
    pub code: &'a CouponCode,
    pub promotion: &'a Promotion,
}

#[derive(Debug, Clone)]
pub struct EvaluationInput<'a> {
    pub lines: &'a [EvaluationLine],
    pub shipping_fee: Money,
    pub user_id: Option<Uuid>,
    pub now: DateTime<Utc>,
    pub automatic: &'a [&'a Promotion],
    pub coupon: Option<CouponOffer<'a>>,
    /// The user's past uses per promotion id (absent: none).
    pub user_redemptions: &'a BTreeMap<Uuid, u32>,
}

/// What step 1 looks at for one promotion.
#[derive(Debug, Clone, Copy)]
pub struct EligibilityContext<'a> {
    pub lines: &'a [EvaluationLine],
    /// Before any discount.
    pub subtotal: Money,
    pub user_id: Option<Uuid>,
    pub now: DateTime<Utc>,
    pub user_redemptions: u32,
}

/// Why a promotion does not apply to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligibility {
    Inactive,
    NotStarted {
        starts_at: DateTime<Utc>,
    },
    Ended {
        ends_at: DateTime<Utc>,
    },
    UsageLimitReached {
        limit: u32,
    },
    PerUserLimitReached {
        limit: u32,
    },
    /// Not for this user, or none of the order's lines is targeted.
    NotApplicable,
    MinimumNotMet {
        minimum: Money,
        subtotal: Money,
    },
}

/// A promotion that changed the order, as the order records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPromotion {
    pub promotion_id: Uuid,
    /// Set when applied through a coupon.
    pub coupon_code: Option<CouponCode>,
    #[serde(rename = "type")]
    pub promotion_type: PromotionType,
    pub discount_amount: Money,
    pub shipping_discount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub subtotal: Money,
    /// One per input line, in input order.
    pub line_discounts: Vec<Money>,
    pub applied: Vec<AppliedPromotion>,
    pub discount_amount: Money,
    /// The fee before any shipping discount.
    pub shipping_fee: Money,
    pub shipping_discount: Money,
    pub shipping_amount: Money,
    pub taxable_amount: Money,
    pub tax_amount: Money,
    pub total_amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvaluationError {
    #[error("coupon {code} cannot be used: {reason:?}")]
    CouponIneligible {
        code: CouponCode,
        reason: Ineligibility,
    },
    #[error("amount {amount} is out of range for an order")]
    AmountOutOfRange { amount: Decimal },
}

/// Step 1 for one promotion: its terms when it applies, or why not.
pub fn eligibility<'p>(
    promotion: &'p Promotion,
    context: &EligibilityContext<'_>,
) -> Result<&'p PromotionTerms, Ineligibility> {
    let terms = promotion
        .availability(context.now)
        .map_err(|reason| match reason {
            Unavailability::Inactive => Ineligibility::Inactive,
            Unavailability::NotStarted { starts_at } => Ineligibility::NotStarted { starts_at },
            Unavailability::Ended { ends_at } => Ineligibility::Ended { ends_at },
        })?;
    if let Some(limit) = promotion.reached_usage_limit() {
        return Err(Ineligibility::UsageLimitReached { limit });
    }
    if let Some(limit) = promotion.reached_per_user_limit(context.user_redemptions) {
        return Err(Ineligibility::PerUserLimitReached { limit });
    }
    let targeted = match &terms.applicable_to {
        Applicability::All => true,
        Applicability::Users { ids } => context.user_id.is_some_and(|user| ids.contains(&user)),
        line_targeted => context
            .lines
            .iter()
            .any(|line| targets(line_targeted, line)),
    };
    if !targeted {
        return Err(Ineligibility::NotApplicable);
    }
    if let Some(minimum) = terms
        .minimum_amount
        .filter(|minimum| context.subtotal < *minimum)
    {
        return Err(Ineligibility::MinimumNotMet {
            minimum,
            subtotal: context.subtotal,
        });
    }
    Ok(terms)
}

/// Whether an eligible promotion discounts `line` (order-wide ones discount every line).
fn targets(applicable_to: &Applicability, line: &EvaluationLine) -> bool {
    match applicable_to {
        Applicability::All | Applicability::Users { .. } => true,
        Applicability::Categories { ids } => line.category_id.is_some_and(|c| ids.contains(&c)),
        Applicability::Products { ids } => ids.contains(&line.product_id),
    }
}

fn cents(money: Money) -> i128 {
    let mut amount = money.amount();
    amount.rescale(2);
    amount.mantissa()
}

fn from_cents(cents: i128) -> Result<Money, EvaluationError> {
    let amount = Decimal::try_from_i128_with_scale(cents, 2).map_err(|_| {
        EvaluationError::AmountOutOfRange {
            amount: Decimal::MAX,
        }
    })?;
    Money::new(amount).map_err(|_| EvaluationError::AmountOutOfRange { amount })
}

/// Splits `amount` over `weights` in proportion, in whole satang: floors first,
/// then the leftover satang to the largest remainders (earlier line on a tie).
/// With `amount <= sum(weights)`, no share exceeds its weight.
fn allocate(amount: i128, weights: &[i128]) -> Vec<i128> {
    let total: i128 = weights.iter().sum();
    if total == 0 || amount == 0 {
        return vec![0; weights.len()];
    }
    let mut shares: Vec<i128> = weights.iter().map(|w| amount * w / total).collect();
    let mut leftover = amount - shares.iter().sum::<i128>();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by_key(|&i| (std::cmp::Reverse(amount * weights[i] % total), i));
    for i in by_remainder {
        if leftover == 0 {
            break;
        }
        shares[i] += 1;
        leftover -= 1;
    }
    shares
}

struct Step<'p> {
    promotion_id: Uuid,
    terms: &'p PromotionTerms,
    coupon_code: Option<CouponCode>,
    discount: i128,
    shipping_discount: i128,
}

pub fn evaluate(input: &EvaluationInput<'_>) -> Result<Evaluation, EvaluationError> {
    let subtotal_cents: i128 = input.lines.iter().map(|line| cents(line.total_price)).sum();
    let subtotal = from_cents(subtotal_cents)?;
    let context = |promotion: &Promotion| EligibilityContext {
        lines: input.lines,
        subtotal,
        user_id: input.user_id,
        now: input.now,
        user_redemptions: promotion
            .promotion_id()
            .and_then(|id| input.user_redemptions.get(&id).copied())
            .unwrap_or(0),
    };

    // Step 1: who is eligible; the coupon's promotion is applied as the coupon only.
    let coupon_promotion = input
        .coupon
        .and_then(|offer| offer.promotion.promotion_id());
    let mut steps: Vec<Step<'_>> = Vec::new();
    for promotion in input.automatic {
        let Some(promotion_id) = promotion.promotion_id() else {
            continue;
        };
        let duplicate = steps.iter().any(|step| step.promotion_id == promotion_id);
        if Some(promotion_id) == coupon_promotion || duplicate {
            continue;
        }
        if let Ok(terms) = eligibility(promotion, &context(promotion)) {
            steps.push(Step {
                promotion_id,
                terms,
                coupon_code: None,
                discount: 0,
                shipping_discount: 0,
            });
        }
    }
    steps.sort_by_key(|step| {
        (
            !step.terms.applicable_to.is_line_targeted(),
            step.promotion_id,
        )
    });
    if let Some(offer) = input.coupon {
        let ineligible = |reason| EvaluationError::CouponIneligible {
            code: offer.code.clone(),
            reason,
        };
        let terms = eligibility(offer.promotion, &context(offer.promotion)).map_err(ineligible)?;
        let promotion_id = offer
            .promotion
            .promotion_id()
            .ok_or(ineligible(Ineligibility::Inactive))?;
        steps.push(Step {
            promotion_id,
            terms,
            coupon_code: Some(offer.code.clone()),
            discount: 0,
            shipping_discount: 0,
        });
    }

    // Steps 2 to 4: discounts on what is left of each targeted line, capped.
    let mut remaining: Vec<i128> = input
        .lines
        .iter()
        .map(|line| cents(line.total_price))
        .collect();
    let mut line_discounts = vec![0i128; input.lines.len()];
    for step in &mut steps {
        let targeted: Vec<usize> = (0..input.lines.len())
            .filter(|&i| remaining[i] > 0 && targets(&step.terms.applicable_to, &input.lines[i]))
            .collect();
        let base: i128 = targeted.iter().map(|&i| remaining[i]).sum();
        let raw = match step.terms.kind {
            PromotionKind::Percentage { value } => {
                let exact =
                    Decimal::from_i128_with_scale(base, 2) * value.get() / Decimal::ONE_HUNDRED;
                cents(
                    Money::from_computed(exact)
                        .map_err(|_| EvaluationError::AmountOutOfRange { amount: exact })?,
                )
            }
            PromotionKind::FixedAmount { value } => cents(value.money()),
            PromotionKind::FreeShipping => 0,
        };
        let cap = step.terms.maximum_discount.map_or(raw, cents);
        step.discount = raw.min(cap).min(base);
        let weights: Vec<i128> = targeted.iter().map(|&i| remaining[i]).collect();
        for (share, &i) in allocate(step.discount, &weights).into_iter().zip(&targeted) {
            remaining[i] -= share;
            line_discounts[i] += share;
        }
    }

    // Step 5: shipping.
    let shipping_fee = cents(input.shipping_fee);
    let mut shipping_left = shipping_fee;
    for step in steps
        .iter_mut()
        .filter(|step| step.terms.kind == PromotionKind::FreeShipping)
    {
        let cap = step.terms.maximum_discount.map_or(shipping_left, cents);
        step.shipping_discount = shipping_left.min(cap);
        shipping_left -= step.shipping_discount;
    }

    // Step 6: tax, once, on the taxable lines after their discounts.
    let discount_cents: i128 = line_discounts.iter().sum();
    let taxable_cents: i128 = input
        .lines
        .iter()
        .zip(&remaining)
        .filter(|(line, _)| line.taxable)
        .map(|(_, left)| left)
        .sum();
    let taxable_amount = from_cents(taxable_cents)?;
    let tax_amount = vat_on(taxable_amount);
    let total_cents = subtotal_cents - discount_cents + shipping_left + cents(tax_amount);

    let applied = steps
        .iter()
        .filter(|step| {
            step.coupon_code.is_some() || step.discount > 0 || step.shipping_discount > 0
        })
        .map(|step| {
            Ok(AppliedPromotion {
                promotion_id: step.promotion_id,
                coupon_code: step.coupon_code.clone(),
                promotion_type: step.terms.kind.promotion_type(),
                discount_amount: from_cents(step.discount)?,
                shipping_discount: from_cents(step.shipping_discount)?,
            })
        })
        .collect::<Result<Vec<_>, EvaluationError>>()?;
    Ok(Evaluation {
        subtotal,
        line_discounts: line_discounts
            .into_iter()
            .map(from_cents)
            .collect::<Result<_, _>>()?,
        applied,
        discount_amount: from_cents(discount_cents)?,
        shipping_fee: input.shipping_fee,
        shipping_discount: from_cents(shipping_fee - shipping_left)?,
        shipping_amount: from_cents(shipping_left)?,
        taxable_amount,
        tax_amount,
        total_amount: from_cents(total_cents)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promotion::promotion::tests::{
        created, fixed, money, percent, promotion_from, t, terms, used,
    };
    use crate::promotion::{PromotionEvent, PromotionTerms};
    use rust_decimal_macros::dec;

    const PHONES: Uuid = Uuid::from_u128(100);
    const BOOKS: Uuid = Uuid::from_u128(101);
    const IPHONE: Uuid = Uuid::from_u128(200);
    const NOVEL: Uuid = Uuid::from_u128(201);
    const USER: Uuid = Uuid::from_u128(300);

    fn line(product_id: Uuid, category_id: Uuid, total: Decimal, taxable: bool) -> EvaluationLine {
        EvaluationLine {
            product_id,
            category_id: Some(category_id),
            total_price: money(total),
            taxable,
        }
    }

    fn seed_cart() -> Vec<EvaluationLine> {
        vec![line(IPHONE, PHONES, dec!(71800), true)]
    }

    fn promo(id: u128, terms: PromotionTerms) -> Promotion {
        promotion_from(vec![created(Uuid::from_u128(id), terms)])
    }

    fn run(
        lines: &[EvaluationLine],
        fee: Decimal,
        automatic: &[&Promotion],
        coupon: Option<CouponOffer<'_>>,
    ) -> Result<Evaluation, EvaluationError> {
        evaluate(&EvaluationInput {
            lines,
            shipping_fee: money(fee),
            user_id: Some(USER),
            now: t(10),
            automatic,
            coupon,
            user_redemptions: &BTreeMap::new(),
        })
    }

    fn code() -> CouponCode {
        CouponCode::parse("SAVE").unwrap()
    }

    #[test]
    fn without_promotions_the_seed_cart_totals_76826() {
        let evaluation = run(&seed_cart(), dec!(0), &[], None).unwrap();
        assert_eq!(evaluation.subtotal, money(dec!(71800)));
        assert_eq!(evaluation.tax_amount, money(dec!(5026)));
        assert_eq!(evaluation.total_amount, money(dec!(76826)));
        assert!(evaluation.applied.is_empty());
    }

    #[test]
    fn a_percentage_coupon_discounts_before_tax() {
        let save = promo(1, terms());
        let evaluation = run(
            &seed_cart(),
            dec!(50),
            &[],
            Some(CouponOffer {
                code: &code(),
                promotion: &save,
            }),
        )
        .unwrap();
        assert_eq!(evaluation.discount_amount, money(dec!(7180)));
        // (71800 - 7180) * 7% = 4523.40
        assert_eq!(evaluation.tax_amount, money(dec!(4523.40)));
        assert_eq!(evaluation.shipping_amount, money(dec!(50)));
        assert_eq!(evaluation.total_amount, money(dec!(69193.40)));
        assert_eq!(
            evaluation.applied,
            vec![AppliedPromotion {
                promotion_id: Uuid::from_u128(1),
                coupon_code: Some(code()),
                promotion_type: PromotionType::Percentage,
                discount_amount: money(dec!(7180)),
                shipping_discount: Money::ZERO,
            }]
        );
    }

    #[test]
    fn step_2_line_targeted_promotions_discount_only_matching_lines() {
        let phones_20 = promo(
            1,
            PromotionTerms {
                kind: percent(dec!(20)),
                applicable_to: Applicability::Categories {
                    ids: [PHONES].into(),
                },
                ..terms()
            },
        );
        let lines = vec![
            line(IPHONE, PHONES, dec!(1000), true),
            line(NOVEL, BOOKS, dec!(500), true),
        ];
        let evaluation = run(&lines, dec!(0), &[&phones_20], None).unwrap();
        assert_eq!(
            evaluation.line_discounts,
            vec![money(dec!(200)), Money::ZERO]
        );
        assert_eq!(evaluation.discount_amount, money(dec!(200)));
    }

    #[test]
    fn step_2_runs_line_targeted_before_order_wide_and_step_3_the_coupon_last() {
        // Order-wide 10% given first in the input, product 50% second: the product
        // one still goes first (1000 -> 500), then 10% of 500 + 500 = 100, then
        // the fixed coupon 100 on what is left (450 + 450).
        let everything_10 = promo(1, terms());
        let iphone_50 = promo(
            2,
            PromotionTerms {
                kind: percent(dec!(50)),
                applicable_to: Applicability::Products {
                    ids: [IPHONE].into(),
                },
                ..terms()
            },
        );
        let coupon = promo(
            3,
            PromotionTerms {
                kind: fixed(dec!(100)),
                ..terms()
            },
        );
        let lines = vec![
            line(IPHONE, PHONES, dec!(1000), true),
            line(NOVEL, BOOKS, dec!(500), true),
        ];
        let evaluation = run(
            &lines,
            dec!(0),
            &[&everything_10, &iphone_50],
            Some(CouponOffer {
                code: &code(),
                promotion: &coupon,
            }),
        )
        .unwrap();
        let applied: Vec<(Uuid, Money)> = evaluation
            .applied
            .iter()
            .map(|a| (a.promotion_id, a.discount_amount))
            .collect();
        assert_eq!(
            applied,
            vec![
                (Uuid::from_u128(2), money(dec!(500))),
                (Uuid::from_u128(1), money(dec!(100))),
                (Uuid::from_u128(3), money(dec!(100))),
            ]
        );
        // Coupon 100 split over 450 and 450 -> 50 each.
        assert_eq!(
            evaluation.line_discounts,
            vec![money(dec!(600)), money(dec!(100))]
        );
        assert_eq!(evaluation.discount_amount, money(dec!(700)));
    }

    #[test]
    fn step_4_caps_at_maximum_discount_and_at_the_eligible_subtotal() {
        let capped = promo(
            1,
            PromotionTerms {
                kind: percent(dec!(50)),
                maximum_discount: Some(money(dec!(1000))),
                ..terms()
            },
        );
        let evaluation = run(&seed_cart(), dec!(0), &[&capped], None).unwrap();
        assert_eq!(evaluation.discount_amount, money(dec!(1000)));

        let huge_fixed = promo(
            2,
            PromotionTerms {
                kind: fixed(dec!(5000)),
                applicable_to: Applicability::Categories {
                    ids: [BOOKS].into(),
                },
                ..terms()
            },
        );
        let lines = vec![
            line(IPHONE, PHONES, dec!(1000), true),
            line(NOVEL, BOOKS, dec!(300), true),
        ];
        let evaluation = run(&lines, dec!(0), &[&huge_fixed], None).unwrap();
        assert_eq!(
            evaluation.line_discounts,
            vec![Money::ZERO, money(dec!(300))]
        );
        assert_eq!(evaluation.total_amount, money(dec!(1070)));
    }

    #[test]
    fn a_fixed_discount_spreads_over_lines_to_the_satang() {
        let ten_off = promo(
            1,
            PromotionTerms {
                kind: fixed(dec!(10)),
                ..terms()
            },
        );
        let lines = vec![
            line(IPHONE, PHONES, dec!(1), true),
            line(NOVEL, BOOKS, dec!(1), true),
            line(Uuid::from_u128(202), BOOKS, dec!(1), true),
        ];
        let evaluation = run(&lines, dec!(0), &[&ten_off], None).unwrap();
        // 3.00 off in total (capped at the subtotal), one line each.
        assert_eq!(evaluation.discount_amount, money(dec!(3)));
        let lines = vec![
            line(IPHONE, PHONES, dec!(10), true),
            line(NOVEL, BOOKS, dec!(10), true),
            line(Uuid::from_u128(202), BOOKS, dec!(10), true),
        ];
        let evaluation = run(&lines, dec!(0), &[&ten_off], None).unwrap();
        assert_eq!(
            evaluation.line_discounts,
            vec![money(dec!(3.34)), money(dec!(3.33)), money(dec!(3.33))]
        );
    }

    #[test]
    fn step_5_free_shipping_zeroes_the_fee_and_is_not_a_discount() {
        let free = promo(
            1,
            PromotionTerms {
                kind: PromotionKind::FreeShipping,
                ..terms()
            },
        );
        let evaluation = run(&seed_cart(), dec!(120), &[&free], None).unwrap();
        assert_eq!(evaluation.shipping_amount, Money::ZERO);
        assert_eq!(evaluation.shipping_discount, money(dec!(120)));
        assert_eq!(evaluation.discount_amount, Money::ZERO);
        assert_eq!(evaluation.total_amount, money(dec!(76826)));
        // A capped free shipping takes off at most its cap.
        let capped = promo(
            2,
            PromotionTerms {
                kind: PromotionKind::FreeShipping,
                maximum_discount: Some(money(dec!(50))),
                ..terms()
            },
        );
        let evaluation = run(&seed_cart(), dec!(120), &[&capped], None).unwrap();
        assert_eq!(evaluation.shipping_amount, money(dec!(70)));
        // With nothing to take off, an automatic free shipping is not recorded.
        let evaluation = run(&seed_cart(), dec!(0), &[&free], None).unwrap();
        assert!(evaluation.applied.is_empty());
    }

    #[test]
    fn step_6_taxes_only_taxable_lines_after_discount_rounded_once() {
        let everything_10 = promo(1, terms());
        let lines = vec![
            line(IPHONE, PHONES, dec!(0.50), true),
            line(Uuid::from_u128(202), PHONES, dec!(0.50), true),
            line(NOVEL, BOOKS, dec!(400), false),
        ];
        let evaluation = run(&lines, dec!(0), &[], None).unwrap();
        // Per line 0.035 would round to 0.04 each (0.08); once on 1.00 it is 0.07.
        assert_eq!(evaluation.taxable_amount, money(dec!(1)));
        assert_eq!(evaluation.tax_amount, money(dec!(0.07)));
        let evaluation = run(&lines, dec!(0), &[&everything_10], None).unwrap();
        // 10% of 401.00 = 40.10, spread: books 40.00, phones 0.05 each.
        assert_eq!(evaluation.taxable_amount, money(dec!(0.90)));
        assert_eq!(evaluation.tax_amount, money(dec!(0.06)));
        assert_eq!(evaluation.total_amount, money(dec!(360.96)));
    }

    #[test]
    fn ineligible_automatic_promotions_are_skipped() {
        let inactive = promotion_from(vec![
            created(Uuid::from_u128(1), terms()),
            PromotionEvent::PromotionDeactivated {
                promotion_id: Uuid::from_u128(1),
                at: t(2),
            },
        ]);
        let future = promo(
            2,
            PromotionTerms {
                starts_at: t(20),
                ..terms()
            },
        );
        let expired = promo(
            3,
            PromotionTerms {
                ends_at: t(10),
                ..terms()
            },
        );
        let other_user = promo(
            4,
            PromotionTerms {
                applicable_to: Applicability::Users {
                    ids: [Uuid::from_u128(9)].into(),
                },
                ..terms()
            },
        );
        let books_only = promo(
            5,
            PromotionTerms {
                applicable_to: Applicability::Categories {
                    ids: [BOOKS].into(),
                },
                ..terms()
            },
        );
        let minimum = promo(
            6,
            PromotionTerms {
                minimum_amount: Some(money(dec!(100000))),
                ..terms()
            },
        );
        let exhausted = promotion_from(vec![
            created(
                Uuid::from_u128(7),
                PromotionTerms {
                    usage_limit: Some(1),
                    ..terms()
                },
            ),
            used(Uuid::from_u128(7), 1),
        ]);
        let evaluation = run(
            &seed_cart(),
            dec!(0),
            &[
                &inactive,
                &future,
                &expired,
                &other_user,
                &books_only,
                &minimum,
                &exhausted,
            ],
            None,
        )
        .unwrap();
        assert_eq!(evaluation.discount_amount, Money::ZERO);
        assert!(evaluation.applied.is_empty());
    }

    #[test]
    fn eligibility_for_a_listed_user_and_minimum_on_the_pre_discount_subtotal() {
        let mine = promo(
            1,
            PromotionTerms {
                applicable_to: Applicability::Users { ids: [USER].into() },
                ..terms()
            },
        );
        let half = promo(
            2,
            PromotionTerms {
                kind: percent(dec!(50)),
                applicable_to: Applicability::Products {
                    ids: [IPHONE].into(),
                },
                ..terms()
            },
        );
        // The minimum 71800 is met by the subtotal even after the 50% line discount.
        let minimum = promo(
            3,
            PromotionTerms {
                kind: fixed(dec!(100)),
                minimum_amount: Some(money(dec!(71800))),
                ..terms()
            },
        );
        let evaluation = run(&seed_cart(), dec!(0), &[&mine, &half, &minimum], None).unwrap();
        let ids: Vec<Uuid> = evaluation.applied.iter().map(|a| a.promotion_id).collect();
        assert_eq!(
            ids,
            vec![Uuid::from_u128(2), Uuid::from_u128(1), Uuid::from_u128(3)]
        );
    }

    #[test]
    fn an_ineligible_coupon_is_an_error_with_the_reason() {
        let cases = [
            (
                promo(
                    1,
                    PromotionTerms {
                        ends_at: t(10),
                        ..terms()
                    },
                ),
                Ineligibility::Ended { ends_at: t(10) },
            ),
            (
                promo(
                    1,
                    PromotionTerms {
                        starts_at: t(11),
                        ..terms()
                    },
                ),
                Ineligibility::NotStarted { starts_at: t(11) },
            ),
            (
                promo(
                    1,
                    PromotionTerms {
                        minimum_amount: Some(money(dec!(80000))),
                        ..terms()
                    },
                ),
                Ineligibility::MinimumNotMet {
                    minimum: money(dec!(80000)),
                    subtotal: money(dec!(71800)),
                },
            ),
            (
                promo(
                    1,
                    PromotionTerms {
                        applicable_to: Applicability::Products {
                            ids: [NOVEL].into(),
                        },
                        ..terms()
                    },
                ),
                Ineligibility::NotApplicable,
            ),
            (Promotion::default(), Ineligibility::Inactive),
        ];
        for (promotion, reason) in cases {
            let result = run(
                &seed_cart(),
                dec!(0),
                &[],
                Some(CouponOffer {
                    code: &code(),
                    promotion: &promotion,
                }),
            );
            assert_eq!(
                result,
                Err(EvaluationError::CouponIneligible {
                    code: code(),
                    reason
                })
            );
        }
    }

    #[test]
    fn a_coupon_applies_once_even_when_its_promotion_is_also_automatic() {
        let save = promo(1, terms());
        let evaluation = run(
            &seed_cart(),
            dec!(0),
            &[&save, &save],
            Some(CouponOffer {
                code: &code(),
                promotion: &save,
            }),
        )
        .unwrap();
        assert_eq!(evaluation.discount_amount, money(dec!(7180)));
        assert_eq!(evaluation.applied.len(), 1);
    }

    #[test]
    fn per_user_limits_use_the_given_counts() {
        let once = promo(
            1,
            PromotionTerms {
                usage_limit_per_user: Some(1),
                ..terms()
            },
        );
        let lines = seed_cart();
        let code = code();
        let with_counts = |user_redemptions: &BTreeMap<Uuid, u32>| {
            evaluate(&EvaluationInput {
                lines: &lines,
                shipping_fee: Money::ZERO,
                user_id: Some(USER),
                now: t(10),
                automatic: &[],
                coupon: Some(CouponOffer {
                    code: &code,
                    promotion: &once,
                }),
                user_redemptions,
            })
        };
        assert_eq!(
            with_counts(&BTreeMap::from([(Uuid::from_u128(1), 1)])),
            Err(EvaluationError::CouponIneligible {
                code: code.clone(),
                reason: Ineligibility::PerUserLimitReached { limit: 1 },
            })
        );
        // Another promotion's count does not matter.
        assert!(with_counts(&BTreeMap::from([(Uuid::from_u128(2), 5)])).is_ok());
    }

    #[test]
    fn allocation_never_exceeds_a_weight_and_adds_up() {
        assert_eq!(allocate(5, &[1, 1, 1, 1, 1]), vec![1, 1, 1, 1, 1]);
        assert_eq!(allocate(2, &[1, 1, 1]), vec![1, 1, 0]);
        assert_eq!(allocate(0, &[3, 4]), vec![0, 0]);
        assert_eq!(allocate(7, &[]), Vec::<i128>::new());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn amount() -> impl Strategy<Value = Money> {
            (0i64..=5_000_000).prop_map(|c| Money::new(Decimal::new(c, 2)).unwrap())
        }

        fn kind() -> impl Strategy<Value = PromotionKind> {
            prop_oneof![
                (1i64..=10_000).prop_map(|v| percent(Decimal::new(v, 2))),
                (1i64..=10_000_000).prop_map(|v| fixed(Decimal::new(v, 2))),
                Just(PromotionKind::FreeShipping),
            ]
        }

        fn target() -> impl Strategy<Value = Applicability> {
            prop_oneof![
                Just(Applicability::All),
                Just(Applicability::Categories {
                    ids: [PHONES].into()
                }),
                Just(Applicability::Products {
                    ids: [NOVEL].into()
                }),
                Just(Applicability::Users { ids: [USER].into() }),
            ]
        }

        fn promotion_terms() -> impl Strategy<Value = PromotionTerms> {
            (
                kind(),
                proptest::option::of(1i64..=2_000_000),
                target(),
                proptest::option::of(0i64..=100_000),
            )
                .prop_map(|(kind, cap, applicable_to, minimum)| PromotionTerms {
                    kind,
                    maximum_discount: cap.map(|c| Money::new(Decimal::new(c, 2)).unwrap()),
                    minimum_amount: minimum.map(|c| Money::new(Decimal::new(c, 2)).unwrap()),
                    applicable_to,
                    ..terms()
                })
        }

        fn lines() -> impl Strategy<Value = Vec<EvaluationLine>> {
            proptest::collection::vec(
                (amount(), any::<bool>(), any::<bool>()).prop_map(|(total, phone, taxable)| {
                    if phone {
                        line(IPHONE, PHONES, total.amount(), taxable)
                    } else {
                        line(NOVEL, BOOKS, total.amount(), taxable)
                    }
                }),
                0..6,
            )
        }

        proptest! {
            #[test]
            fn totals_reconcile_and_discounts_respect_every_cap(
                lines in lines(),
                fee in amount(),
                automatic in proptest::collection::vec(promotion_terms(), 0..4),
                coupon in proptest::option::of(promotion_terms()),
            ) {
                let automatic: Vec<Promotion> = automatic
                    .into_iter()
                    .enumerate()
                    .map(|(i, terms)| promo(10 + i as u128, terms))
                    .collect();
                let automatic_refs: Vec<&Promotion> = automatic.iter().collect();
                let coupon_promotion = coupon.map(|terms| promo(1, terms));
                let code = code();
                let result = evaluate(&EvaluationInput {
                    lines: &lines,
                    shipping_fee: fee,
                    user_id: Some(USER),
                    now: t(10),
                    automatic: &automatic_refs,
                    coupon: coupon_promotion.as_ref().map(|promotion| CouponOffer { code: &code, promotion }),
                    user_redemptions: &BTreeMap::new(),
                });
                let evaluation = match result {
                    Ok(evaluation) => evaluation,
                    Err(EvaluationError::CouponIneligible { .. }) => return Ok(()),
                    Err(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
                };
                let d = |m: Money| m.amount();
                prop_assert_eq!(
                    d(evaluation.total_amount),
                    d(evaluation.subtotal) - d(evaluation.discount_amount) + d(evaluation.shipping_amount) + d(evaluation.tax_amount)
                );
                prop_assert!(evaluation.discount_amount <= evaluation.subtotal);
                prop_assert!(evaluation.shipping_amount <= fee);
                prop_assert_eq!(evaluation.shipping_amount.amount() + evaluation.shipping_discount.amount(), fee.amount());
                prop_assert_eq!(Money::sum(evaluation.line_discounts.iter().copied()).unwrap(), evaluation.discount_amount);
                prop_assert_eq!(
                    Money::sum(evaluation.applied.iter().map(|a| a.discount_amount)).unwrap(),
                    evaluation.discount_amount
                );
                for (line, discount) in lines.iter().zip(&evaluation.line_discounts) {
                    prop_assert!(*discount <= line.total_price);
                }
                let all: Vec<&Promotion> = automatic.iter().chain(coupon_promotion.iter()).collect();
                for applied in &evaluation.applied {
                    let promotion = all.iter().find(|p| p.promotion_id() == Some(applied.promotion_id)).unwrap();
                    if let Some(cap) = promotion.terms().unwrap().maximum_discount {
                        prop_assert!(applied.discount_amount <= cap);
                        prop_assert!(applied.shipping_discount <= cap);
                    }
                }
                let taxable = Money::sum(
                    lines.iter().zip(&evaluation.line_discounts)
                        .filter(|(line, _)| line.taxable)
                        .map(|(line, discount)| line.total_price.checked_sub(*discount).unwrap()),
                ).unwrap();
                prop_assert_eq!(evaluation.tax_amount, vat_on(taxable));
            }
        }
    }
}
