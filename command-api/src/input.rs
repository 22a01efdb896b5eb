//! Request body building blocks: decimal amounts given as a string or a JSON
//! number, the absent / null / value distinction of PATCH bodies, and a
//! collector that turns raw fields into domain values while gathering every
//! invalid field into one 400.

use std::fmt;

use domain::catalog::Dimension;
use domain::values::{Money, Price, Slug, Url};
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::error::{ApiError, FieldError};

/// A decimal amount (money, a dimension) as the client sent it: a decimal
/// string (`"35900.00"`) or a JSON number (`35900`, `35900.5`). Numbers are
/// read through their shortest round-trip text, never through float
/// arithmetic, so `19.99` is exactly `19.99`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(pub Decimal);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AmountVisitor).map(Amount)
    }
}

struct AmountVisitor;

impl AmountVisitor {
    fn parse<E: de::Error>(text: &str) -> Result<Decimal, E> {
        Decimal::from_str_exact(text)
            .map_err(|_| E::custom(format!("invalid decimal amount {text:?}")))
    }
}

impl Visitor<'_> for AmountVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal amount as a string (\"35900.00\") or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        Self::parse(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        // `Display` of an f64 is its shortest text that reads back to the same
        // float, without exponent: `35900.5`, `0.1`.
        Self::parse(&v.to_string())
    }
}

/// A PATCH field: `None` when absent (unchanged), `Some(None)` when `null`
/// (cleared), `Some(Some(v))` when given. Use with
/// `#[serde(default, deserialize_with = "patch")]`.
pub type Patch<T> = Option<Option<T>>;

pub fn patch<'de, D, T>(deserializer: D) -> Result<Patch<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Gathers the invalid fields of one request; `finish` fails with all of them.
#[derive(Debug, Default)]
pub struct Fields {
    errors: Vec<FieldError>,
}

impl Fields {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value, or `None` with the error recorded against `field`.
    pub fn check<T, E: fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.errors.push(FieldError::new(field, error));
                None
            }
        }
    }

    /// Like `check`, for an optional input.
    pub fn check_opt<R, T, E: fmt::Display>(
        &mut self,
        field: &str,
        raw: Option<R>,
        parse: impl FnOnce(R) -> Result<T, E>,
    ) -> Option<Option<T>> {
        match raw {
            None => Some(None),
            Some(raw) => self.check(field, parse(raw)).map(Some),
        }
    }

    /// A PATCH field of a nullable column merged into `current`.
    pub fn merge_nullable<R, T, E: fmt::Display>(
        &mut self,
        field: &str,
        patch: Patch<R>,
        current: Option<T>,
        parse: impl FnOnce(R) -> Result<T, E>,
    ) -> Option<Option<T>> {
        match patch {
            None => Some(current),
            Some(None) => Some(None),
            Some(Some(raw)) => self.check(field, parse(raw)).map(Some),
        }
    }

    /// A PATCH field of a non-nullable column merged into `current`: `null`
    /// is refused, since the column cannot be cleared.
    pub fn merge_required<R, T, E: fmt::Display>(
        &mut self,
        field: &str,
        patch: Patch<R>,
        current: T,
        parse: impl FnOnce(R) -> Result<T, E>,
    ) -> Option<T> {
        match patch {
            None => Some(current),
            Some(None) => {
                self.errors.push(FieldError::new(
                    field,
                    "must not be null: it cannot be cleared",
                ));
                None
            }
            Some(Some(raw)) => self.check(field, parse(raw)),
        }
    }

    pub fn push(&mut self, field: &str, message: impl fmt::Display) {
        self.errors.push(FieldError::new(field, message));
    }

    /// `Ok` when every field was valid, else the 400 listing them all.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.errors))
        }
    }
}

/// Unwraps the values `Fields::check` produced, once `Fields::finish`
/// has confirmed that none is missing.
pub fn checked<T>(value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::internal(anyhow::anyhow!("a checked field has no value")))
}

pub fn price(amount: Amount) -> Result<Price, String> {
    Price::new(amount.0).map_err(|e| e.to_string())
}

pub fn money(amount: Amount) -> Result<Money, String> {
    Money::new(amount.0).map_err(|e| e.to_string())
}

pub fn dimension(amount: Amount) -> Result<Dimension, String> {
    Dimension::new(amount.0).map_err(|e| e.to_string())
}

pub fn slug(raw: String) -> Result<Slug, String> {
    Slug::parse(&raw).map_err(|e| e.to_string())
}

pub fn url(raw: String) -> Result<Url, String> {
    Url::parse(&raw).map_err(|e| e.to_string())
}

/// Accepts `raw` as is (the domain trims and bounds free text).
pub fn text(raw: String) -> Result<String, String> {
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(json: &str) -> Result<Decimal, serde_json::Error> {
        serde_json::from_str::<Amount>(json).map(|a| a.0)
    }

    #[test]
    fn amounts_read_strings_and_numbers_exactly() {
        assert_eq!(amount("\"35900.00\"").unwrap().to_string(), "35900.00");
        assert_eq!(amount("35900").unwrap().to_string(), "35900");
        assert_eq!(amount("35900.5").unwrap().to_string(), "35900.5");
        assert_eq!(amount("19.99").unwrap().to_string(), "19.99");
        assert_eq!(amount("0.1").unwrap().to_string(), "0.1");
        assert_eq!(amount("-5").unwrap().to_string(), "-5");
        assert!(amount("\"abc\"").is_err());
        assert!(amount("\" 1\"").is_err());
        assert!(amount("true").is_err());
        assert!(amount("null").is_err());
        assert!(amount("1e400").is_err());
    }

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "patch")]
        name: Patch<String>,
    }

    #[test]
    fn patch_tells_absent_from_null_from_value() {
        let absent: Body = serde_json::from_str("{}").unwrap();
        let null: Body = serde_json::from_str(r#"{"name":null}"#).unwrap();
        let value: Body = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert_eq!(absent.name, None);
        assert_eq!(null.name, Some(None));
        assert_eq!(value.name, Some(Some("x".into())));
    }

    #[test]
    fn fields_collect_every_error() {
        let mut fields = Fields::new();
        let a = fields.check("slug", slug("Bad Slug".into()));
        let b = fields.check("regular_price", price(Amount(Decimal::ZERO)));
        let c = fields.merge_required("name", Some(None), "x".to_string(), text);
        assert!(a.is_none() && b.is_none() && c.is_none());
        let problem = fields.finish().unwrap_err().to_problem();
        assert_eq!(problem["errors"].as_array().unwrap().len(), 3);
    }
}
