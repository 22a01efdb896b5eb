//! The catalog: the `Category`, `Brand` and `Product` aggregates (products own
//! their images, attributes and variants), the catalog's own value types, and
//! the decisions that span a catalog aggregate and the unique-key streams of its
//! sku and slugs (`decisions`).

pub mod brand;
pub mod category;
pub mod decisions;
pub mod product;

pub use brand::{Brand, BrandCommand, BrandError, BrandEvent, CreateBrand, UpdateBrand};
pub use category::{
    Category, CategoryCommand, CategoryError, CategoryEvent, CreateCategory, MoveCategory,
    UpdateCategory,
};
pub use decisions::Decision;
pub use product::{
    AddProductVariant, CreateProduct, Product, ProductAttribute, ProductCommand, ProductDetails,
    ProductError, ProductEvent, ProductImage, ProductImagePosition, ProductStatus, ProductVariant,
};

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::values::{bounded_multiline_text, bounded_text, TextLayout, ValueError};

/// The longest text a `TEXT` column takes from us. The seed sets no limit; this
/// one keeps a single event from carrying a runaway payload.
pub const LONG_TEXT_MAX: usize = 65_535;
/// `VARCHAR(255)`: names, titles, alt texts, keywords.
pub const SHORT_TEXT_MAX: usize = 255;

/// A physical measure (weight, length, width, height) as the seed's
/// `DECIMAL(8,2)` columns hold it: at least zero, at most two decimals and
/// below 1,000,000. The unit is the storefront's convention, not ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Dimension(Decimal);

/// A refused `Dimension`, carrying the offending amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid dimension: {0} (must be >= 0, at most 2 decimals and below 1,000,000)")]
pub struct InvalidDimension(pub Decimal);

impl Dimension {
    pub const SCALE: u32 = 2;

    pub fn new(amount: Decimal) -> Result<Self, InvalidDimension> {
        if amount.is_sign_negative() && !amount.is_zero()
            || amount.normalize().scale() > Self::SCALE
            || amount >= Decimal::new(1_000_000, 0)
        {
            return Err(InvalidDimension(amount));
        }
        let mut amount = amount;
        amount.rescale(Self::SCALE);
        Ok(Self(amount))
    }

    pub fn amount(&self) -> Decimal {
        self.0
    }
}

impl TryFrom<Decimal> for Dimension {
    type Error = InvalidDimension;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Dimension::new(value)
    }
}

impl From<Dimension> for Decimal {
    fn from(value: Dimension) -> Decimal {
        value.0
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A nullable text column: blank means "no value" (a cleared form field), so it
/// becomes `None` rather than an error; anything else is checked for the
/// characters `layout` forbids, trimmed and bounded.
pub(crate) fn optional_text(
    field: &'static str,
    raw: Option<String>,
    max: usize,
    layout: TextLayout,
) -> Result<Option<String>, ValueError> {
    match raw {
        Some(text) if !text.trim().is_empty() => match layout {
            TextLayout::SingleLine => bounded_text(field, &text, max),
            TextLayout::MultiLine => bounded_multiline_text(field, &text, max),
        }
        .map(Some),
        // Whitespace only, but a line break in a one-line field is still refused.
        Some(text) if layout == TextLayout::SingleLine => {
            crate::values::unforbidden_text(field, &text, layout).map(|()| None)
        }
        _ => Ok(None),
    }
}

/// `meta_keywords TEXT[]`: each keyword one line, trimmed and bounded; a blank
/// keyword is refused because it would show up as an empty tag.
pub(crate) fn keywords(raw: Vec<String>) -> Result<Vec<String>, ValueError> {
    raw.iter()
        .map(|k| bounded_text("meta_keywords", k, SHORT_TEXT_MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn dimension_follows_decimal_8_2() {
        assert_eq!(Dimension::new(dec!(0)).unwrap().amount(), dec!(0.00));
        assert_eq!(
            Dimension::new(dec!(999999.99)).unwrap().amount(),
            dec!(999999.99)
        );
        assert_eq!(
            Dimension::new(dec!(1000000)),
            Err(InvalidDimension(dec!(1000000)))
        );
        assert_eq!(
            Dimension::new(dec!(-0.01)),
            Err(InvalidDimension(dec!(-0.01)))
        );
        assert_eq!(
            Dimension::new(dec!(1.005)),
            Err(InvalidDimension(dec!(1.005)))
        );
        assert_eq!(
            serde_json::to_string(&Dimension::new(dec!(0.2)).unwrap()).unwrap(),
            "\"0.20\""
        );
        assert!(serde_json::from_str::<Dimension>("\"-1\"").is_err());
    }

    #[test]
    fn optional_text_treats_blank_as_absent_and_bounds_the_rest() {
        use TextLayout::{MultiLine, SingleLine};
        assert_eq!(optional_text("f", None, 3, SingleLine), Ok(None));
        assert_eq!(
            optional_text("f", Some("  ".into()), 3, SingleLine),
            Ok(None)
        );
        assert_eq!(
            optional_text("f", Some(" abc ".into()), 3, SingleLine),
            Ok(Some("abc".into()))
        );
        assert!(optional_text("f", Some("abcd".into()), 3, SingleLine).is_err());
        assert!(optional_text("f", Some(" \n ".into()), 3, SingleLine).is_err());
        assert_eq!(
            optional_text("f", Some(" \n ".into()), 3, MultiLine),
            Ok(None)
        );
        assert_eq!(
            optional_text("f", Some("a\nb".into()), 3, MultiLine),
            Ok(Some("a\nb".into()))
        );
        assert!(optional_text("f", Some("a\u{0}".into()), 3, MultiLine).is_err());
    }

    #[test]
    fn keywords_are_trimmed_and_blank_ones_refused() {
        assert_eq!(
            keywords(vec![" phone ".into(), "apple".into()]),
            Ok(vec!["phone".into(), "apple".into()])
        );
        assert!(keywords(vec!["ok".into(), " ".into()]).is_err());
    }
}
