//! Money crosses the search index as JSON numbers (f64) and leaves the API as
//! strings with two decimals. The conversion goes through the f64's shortest
//! round-trip text, never through float arithmetic: 12900.99 stays
//! "12900.99", not "12900.98999...".

use std::str::FromStr;

use rust_decimal::Decimal;

#[derive(Debug, thiserror::Error)]
#[error("{value} is not a money amount")]
pub struct NotMoney {
    value: f64,
}

/// The amount an index document carries, as a two-decimal [`Decimal`].
pub fn money_from_f64(value: f64) -> Result<Decimal, NotMoney> {
    if !value.is_finite() {
        return Err(NotMoney { value });
    }
    // Display of an f64 is its shortest round-trip form, never an exponent.
    let mut amount = Decimal::from_str(&value.to_string()).map_err(|_| NotMoney { value })?;
    amount.rescale(2);
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: f64) -> String {
        money_from_f64(value).unwrap().to_string()
    }

    #[test]
    fn amounts_get_two_decimals() {
        assert_eq!(text(35900.0), "35900.00");
        assert_eq!(text(12900.99), "12900.99");
        assert_eq!(text(0.1), "0.10");
        assert_eq!(text(0.0), "0.00");
        assert_eq!(text(99_999_999.99), "99999999.99");
        assert_eq!(text(0.1 + 0.2), "0.30");
    }

    #[test]
    fn non_finite_values_are_refused() {
        assert!(money_from_f64(f64::NAN).is_err());
        assert!(money_from_f64(f64::INFINITY).is_err());
    }

    #[test]
    fn it_serializes_as_a_string() {
        let json = serde_json::to_value(money_from_f64(35900.0).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!("35900.00"));
    }
}
