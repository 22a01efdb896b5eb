//! Value objects shared by every aggregate. Each is a newtype whose only way in
//! is a fallible constructor, so an invalid value cannot exist. Serde goes
//! through the same constructors (`try_from`), so a payload cannot smuggle one in.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Why a raw value was refused. Each variant carries the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("invalid email address: {0:?}")]
    Email(String),
    #[error("invalid phone number: {0:?}")]
    Phone(String),
    #[error("invalid sku: {0:?}")]
    Sku(String),
    #[error("invalid slug: {0:?}")]
    Slug(String),
    #[error("invalid currency code: {0:?}")]
    Currency(String),
    #[error("invalid ISO 3166 alpha-2 country code: {0:?}")]
    Country(String),
    #[error("invalid money amount: {0} (must be >= 0, at most 2 decimals and below 100,000,000)")]
    Money(Decimal),
    #[error("invalid price: {0} (must be above 0)")]
    Price(Decimal),
    #[error("invalid quantity: {0} (must be between 1 and {max})", max = Quantity::MAX)]
    Quantity(i64),
    #[error("invalid rating: {0} (must be an integer from 1 to 5)")]
    Rating(i64),
    #[error("invalid coupon code: {0:?}")]
    CouponCode(String),
    #[error("invalid order number: {0:?}")]
    OrderNumber(String),
    #[error("invalid payment method: {0:?} (lower-case words of a-z 0-9 joined by _)")]
    PaymentMethod(String),
    #[error("invalid {field}: {reason}")]
    Text {
        field: &'static str,
        reason: TextError,
    },
    #[error("invalid url: {0:?}")]
    Url(String),
    #[error("invalid user role: {0:?} (must be \"customer\" or \"admin\")")]
    Role(String),
    /// Carries the length only: a blind index stands in for a personal
    /// value, and the likeliest wrong input is that value in the clear,
    /// which must not reach the logs.
    #[error(
        "invalid blind index ({length} characters): must be {} lower-case hex characters",
        BlindIndex::LEN
    )]
    BlindIndex { length: usize },
    /// Carries the length only, for the same reason: a near-miss code is
    /// nearly a credential.
    #[error(
        "invalid one-time code ({length} characters): must be {} digits",
        crate::user::OneTimeCode::DIGITS
    )]
    OneTimeCode { length: usize },
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValueError;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_newtype!(
    /// An email address, trimmed and lower-cased, so that uniqueness is case-insensitive.
    Email
);
impl Email {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let normalized = raw.trim().to_lowercase();
        // A quoted local part may hold almost anything; a stored address may not.
        if normalized.len() > 255
            || forbidden_character(raw, TextLayout::SingleLine).is_some()
            || !email_address::EmailAddress::is_valid(&normalized)
        {
            return Err(ValueError::Email(raw.to_owned()));
        }
        Ok(Self(normalized))
    }
}

string_newtype!(
    /// A phone number in international form: an optional leading `+` and 7 to 15
    /// digits. Spaces, dashes, dots and parentheses are dropped.
    Phone
);
impl Phone {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let trimmed = raw.trim();
        let (plus, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => ("+", rest),
            None => ("", trimmed),
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(ValueError::Phone(raw.to_owned())),
            }
        }
        if !(7..=15).contains(&digits.len()) {
            return Err(ValueError::Phone(raw.to_owned()));
        }
        Ok(Self(format!("{plus}{digits}")))
    }
}

string_newtype!(
    /// A stock keeping unit: 1 to 100 of `A-Z 0-9 - _ .`, upper-cased, so that
    /// uniqueness is case-insensitive.
    Sku
);
impl Sku {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let normalized = raw.trim().to_uppercase();
        let valid = !normalized.is_empty()
            && normalized.len() <= 100
            && normalized
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(Self(normalized))
        } else {
            Err(ValueError::Sku(raw.to_owned()))
        }
    }
}

string_newtype!(
    /// A URL slug: 1 to 255 of lower-case `a-z 0-9` in words joined by single hyphens.
    Slug
);
impl Slug {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let valid = !raw.is_empty()
            && raw.len() <= 255
            && raw.split('-').all(|w| {
                !w.is_empty()
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValueError::Slug(raw.to_owned()))
        }
    }
}

string_newtype!(
    /// An ISO 4217 currency code: three upper-case letters. THB by default.
    Currency
);
impl Currency {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        if raw.len() == 3 && raw.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValueError::Currency(raw.to_owned()))
        }
    }
    pub fn thb() -> Self {
        Self("THB".to_owned())
    }
}
impl Default for Currency {
    fn default() -> Self {
        Self::thb()
    }
}

string_newtype!(
    /// An ISO 3166-1 alpha-2 country code, checked against the standard's list. TH by default.
    CountryCode
);
impl CountryCode {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let upper = raw.trim().to_uppercase();
        match isocountry::CountryCode::for_alpha2(&upper) {
            Ok(_) => Ok(Self(upper)),
            Err(_) => Err(ValueError::Country(raw.to_owned())),
        }
    }
    pub fn thailand() -> Self {
        Self("TH".to_owned())
    }
}
impl Default for CountryCode {
    fn default() -> Self {
        Self::thailand()
    }
}

string_newtype!(
    /// A coupon code: 3 to 50 of `A-Z 0-9 - _`, upper-cased, so that uniqueness
    /// and look-up are case-insensitive.
    CouponCode
);
impl CouponCode {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let normalized = raw.trim().to_uppercase();
        let valid = (3..=50).contains(&normalized.len())
            && normalized
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if valid {
            Ok(Self(normalized))
        } else {
            Err(ValueError::CouponCode(raw.to_owned()))
        }
    }
}

string_newtype!(
    /// An order number of the form `ORD-YYYY-NNNNNN` (at least six digits).
    OrderNumber
);
impl OrderNumber {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let err = || ValueError::OrderNumber(raw.to_owned());
        let rest = raw.strip_prefix("ORD-").ok_or_else(err)?;
        let (year, seq) = rest.split_once('-').ok_or_else(err)?;
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if year.len() == 4 && digits(year) && (6..=18).contains(&seq.len()) && digits(seq) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(err())
        }
    }

    /// The number for the `sequence`-th order of `year`, e.g. `ORD-2024-000123`.
    pub fn allocate(year: i32, sequence: u64) -> Result<Self, ValueError> {
        Self::parse(&format!("ORD-{year:04}-{sequence:06}"))
    }
}

string_newtype!(
    /// An absolute http(s) URL of at most 500 characters, as the seed's `*_url` columns allow.
    Url
);
impl Url {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let trimmed = raw.trim();
        let has_host = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
        let printable = forbidden_character(raw, TextLayout::SingleLine).is_none();
        if has_host
            && printable
            && trimmed.len() <= 500
            && !trimmed.chars().any(char::is_whitespace)
        {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(ValueError::Url(raw.to_owned()))
        }
    }
}

string_newtype!(
    /// A keyed digest (HMAC-SHA256, hex) of a normalised personal value (an
    /// email, a phone number), computed by the command side under a key the
    /// domain never sees. Claims and look-ups go by it, so that the clear
    /// value never names a stream or sits in a claim event; without the key,
    /// the index cannot be reversed by trying likely values.
    BlindIndex
);
impl BlindIndex {
    /// 32 bytes of SHA-256 output as hex.
    pub const LEN: usize = 64;

    /// Exactly `LEN` of `0-9 a-f`. Upper case is refused rather than folded:
    /// two spellings of one digest would name two claim streams.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let valid = raw.len() == Self::LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValueError::BlindIndex {
                length: raw.chars().count(),
            })
        }
    }
}

/// Why a free text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be blank")]
    Blank,
    #[error("must be at most {max} characters, not {length}")]
    TooLong { max: usize, length: usize },
    /// `index` counts characters from 0, in the text as given (before trimming).
    #[error(
        "must not contain {} (U+{:04X}) at character {}",
        describe(*.character),
        u32::from(*.character),
        .index + 1
    )]
    ForbiddenCharacter { character: char, index: usize },
}

/// Whether a free text may break lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextLayout {
    /// A name, a title, a keyword: no control character at all, not even a tab.
    SingleLine,
    /// A description, a comment, a note: tab and line feed are allowed.
    MultiLine,
}

/// Whether `c` may not be stored in a text of `layout`: control characters
/// (Unicode Cc, which includes NUL, that PostgreSQL's JSONB cannot hold at
/// all), the line and paragraph separators (line breaks a single-line field
/// would show, and that the line feed stands for in a multi-line one) and
/// the noncharacters (never meant for interchange).
pub fn is_forbidden_character(c: char, layout: TextLayout) -> bool {
    match c {
        '\t' | '\n' => layout == TextLayout::SingleLine,
        '\u{2028}' | '\u{2029}' => true,
        c => c.is_control() || is_noncharacter(c),
    }
}

/// U+FDD0..U+FDEF and the last two code points of every plane.
fn is_noncharacter(c: char) -> bool {
    let code = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&code) || code & 0xFFFE == 0xFFFE
}

/// The first character of `text` that `layout` forbids, with its index.
pub fn forbidden_character(text: &str, layout: TextLayout) -> Option<TextError> {
    text.chars()
        .enumerate()
        .find(|&(_, c)| is_forbidden_character(c, layout))
        .map(|(index, character)| TextError::ForbiddenCharacter { character, index })
}

fn describe(c: char) -> &'static str {
    match c {
        '\t' => "a tab",
        '\n' | '\r' => "a line break",
        '\u{0}' => "a NUL character",
        '\u{2028}' => "a line separator",
        '\u{2029}' => "a paragraph separator",
        c if c.is_control() => "a control character",
        c if is_noncharacter(c) => "a Unicode noncharacter",
        _ => "the character",
    }
}

/// Free text is checked as given (a stray control character is refused even
/// where trimming would drop it), then trimmed and bounded.
fn parse_text(raw: &str, max: usize, layout: TextLayout) -> Result<String, TextError> {
    if let Some(error) = forbidden_character(raw, layout) {
        return Err(error);
    }
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(TextError::Blank);
    }
    let length = trimmed.chars().count();
    if length > max {
        return Err(TextError::TooLong { max, length });
    }
    Ok(trimmed.to_owned())
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $layout:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Trimmed, not blank, at most `max` characters.
            pub fn parse(raw: &str, max: usize) -> Result<Self, TextError> {
                parse_text(raw, max, $layout).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// Free text on one line (a name, a title, a keyword, a reference): no
    /// control character, tab or line break (`TextLayout::SingleLine`).
    SingleLineText,
    TextLayout::SingleLine
);

text_newtype!(
    /// Free text that may span lines (a description, a comment, a note): tab
    /// and line feed allowed, no other control character
    /// (`TextLayout::MultiLine`).
    MultiLineText,
    TextLayout::MultiLine
);

/// A string or object key of a JSON document holding a character its layout
/// forbids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonTextError {
    /// Where it is: `name`, `meta_keywords[1]`, `attributes.color`. A key
    /// that is itself refused is written escaped (`na\0me`).
    pub path: String,
    /// The key, not the value at `path`, is refused.
    pub in_key: bool,
    pub reason: TextError,
}

impl fmt::Display for JsonTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.in_key {
            write!(f, "the field name {}", self.reason)
        } else {
            self.reason.fmt(f)
        }
    }
}

/// Every string and object key of `value` that holds a character its layout
/// forbids. Keys are names, so always one line; `layout_of(path)` gives the
/// layout of the string at `path`.
pub fn forbidden_in_json(
    value: &serde_json::Value,
    layout_of: &dyn Fn(&str) -> TextLayout,
) -> Vec<JsonTextError> {
    fn walk(
        value: &serde_json::Value,
        path: &str,
        layout_of: &dyn Fn(&str) -> TextLayout,
        found: &mut Vec<JsonTextError>,
    ) {
        match value {
            serde_json::Value::String(text) => {
                if let Some(reason) = forbidden_character(text, layout_of(path)) {
                    found.push(JsonTextError {
                        path: path.to_owned(),
                        in_key: false,
                        reason,
                    });
                }
            }
            serde_json::Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{index}]"), layout_of, found);
                }
            }
            serde_json::Value::Object(members) => {
                for (key, item) in members {
                    let key_text = key.escape_debug();
                    let child = if path.is_empty() {
                        key_text.to_string()
                    } else {
                        format!("{path}.{key_text}")
                    };
                    match forbidden_character(key, TextLayout::SingleLine) {
                        Some(reason) => found.push(JsonTextError {
                            path: child,
                            in_key: true,
                            reason,
                        }),
                        None => walk(item, &child, layout_of, found),
                    }
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(value, "", layout_of, &mut found);
    found
}

/// The error a blank or overlong `value` gets, for tests that bound texts.
#[cfg(test)]
pub(crate) fn length_error(field: &'static str, value: &str, max: usize) -> ValueError {
    let length = value.trim().chars().count();
    let reason = if length == 0 {
        TextError::Blank
    } else {
        TextError::TooLong { max, length }
    };
    ValueError::Text { field, reason }
}

/// A required single-line text field of at most `max` characters, as stored.
pub fn bounded_text(field: &'static str, raw: &str, max: usize) -> Result<String, ValueError> {
    SingleLineText::parse(raw, max)
        .map(String::from)
        .map_err(|reason| ValueError::Text { field, reason })
}

/// A required multi-line text field of at most `max` characters, as stored.
pub fn bounded_multiline_text(
    field: &'static str,
    raw: &str,
    max: usize,
) -> Result<String, ValueError> {
    MultiLineText::parse(raw, max)
        .map(String::from)
        .map_err(|reason| ValueError::Text { field, reason })
}

/// Refuses the characters `layout` forbids in a text that has no other rule
/// (it may be blank or of any length, as a JSON setting may).
pub fn unforbidden_text(
    field: &'static str,
    raw: &str,
    layout: TextLayout,
) -> Result<(), ValueError> {
    match forbidden_character(raw, layout) {
        Some(reason) => Err(ValueError::Text { field, reason }),
        None => Ok(()),
    }
}

/// A non-negative amount of money with at most two decimals, below the
/// `DECIMAL(10,2)` ceiling of the seed's columns. The currency travels beside
/// it (`Currency`, THB by default), as in the seed's tables.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Money(Decimal);

impl Money {
    pub const SCALE: u32 = 2;
    pub const ZERO: Money = Money(Decimal::ZERO);

    fn ceiling() -> Decimal {
        Decimal::new(100_000_000, 0)
    }

    pub fn new(amount: Decimal) -> Result<Self, ValueError> {
        if amount.is_sign_negative() && !amount.is_zero()
            || amount.normalize().scale() > Self::SCALE
            || amount >= Self::ceiling()
        {
            return Err(ValueError::Money(amount));
        }
        let mut amount = amount;
        amount.rescale(Self::SCALE);
        Ok(Self(amount))
    }

    /// Rounds a computed amount (a tax, a percentage) with the platform's one rule,
    /// `round_half_up`, then checks it like `new`.
    pub fn from_computed(amount: Decimal) -> Result<Self, ValueError> {
        Self::new(round_half_up(amount))
    }

    pub fn amount(&self) -> Decimal {
        self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    pub fn checked_add(self, other: Money) -> Result<Money, ValueError> {
        Money::new(self.0 + other.0)
    }

    /// `self - other`, or an error when it would go below zero.
    pub fn checked_sub(self, other: Money) -> Result<Money, ValueError> {
        Money::new(self.0 - other.0)
    }

    /// `self - other`, floored at zero.
    pub fn saturating_sub(self, other: Money) -> Money {
        if other.0 >= self.0 {
            Money::ZERO
        } else {
            Money(self.0 - other.0)
        }
    }

    pub fn times(self, quantity: Quantity) -> Result<Money, ValueError> {
        Money::new(self.0 * Decimal::from(quantity.get()))
    }

    pub fn min(self, other: Money) -> Money {
        if self.0 <= other.0 {
            self
        } else {
            other
        }
    }

    pub fn sum<I: IntoIterator<Item = Money>>(items: I) -> Result<Money, ValueError> {
        items.into_iter().try_fold(Money::ZERO, Money::checked_add)
    }
}

impl TryFrom<Decimal> for Money {
    type Error = ValueError;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Money::new(value)
    }
}

impl From<Money> for Decimal {
    fn from(value: Money) -> Decimal {
        value.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A price: money strictly above zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Price(Money);

impl Price {
    pub fn new(amount: Decimal) -> Result<Self, ValueError> {
        let money = Money::new(amount)?;
        if money.is_zero() {
            return Err(ValueError::Price(amount));
        }
        Ok(Self(money))
    }
    pub fn money(&self) -> Money {
        self.0
    }
    pub fn amount(&self) -> Decimal {
        self.0.amount()
    }
}

impl TryFrom<Decimal> for Price {
    type Error = ValueError;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Price::new(value)
    }
}

impl From<Price> for Decimal {
    fn from(value: Price) -> Decimal {
        value.amount()
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The one rounding rule of the platform: to 2 decimals, half away from zero
/// (5026.005 → 5026.01). Every computed amount goes through it exactly once,
/// on the total it belongs to, never per line and then summed.
pub fn round_half_up(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(Money::SCALE, RoundingStrategy::MidpointAwayFromZero)
}

/// Thai VAT: 7% added on top of tax-exclusive prices.
pub const VAT_PERCENT: u32 = 7;

/// The VAT due on a tax-exclusive taxable amount, rounded once with `round_half_up`.
/// The seed's cart: 71800 → 5026.
pub fn vat_on(taxable: Money) -> Money {
    let tax = taxable.amount() * Decimal::from(VAT_PERCENT) / Decimal::from(100);
    // 7% of an amount below the ceiling stays below it.
    Money::from_computed(tax).expect("vat of a valid amount is a valid amount")
}

/// A count of units, from 1 to `Quantity::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Quantity(u32);

impl Quantity {
    pub const MAX: u32 = 1_000_000;

    pub fn new(value: i64) -> Result<Self, ValueError> {
        if (1..=i64::from(Self::MAX)).contains(&value) {
            Ok(Self(value as u32))
        } else {
            Err(ValueError::Quantity(value))
        }
    }
    pub fn get(&self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = ValueError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Quantity::new(value)
    }
}

impl From<Quantity> for i64 {
    fn from(value: Quantity) -> i64 {
        i64::from(value.0)
    }
}

/// A review rating: an integer from 1 to 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Rating(u8);

impl Rating {
    pub fn new(value: i64) -> Result<Self, ValueError> {
        if (1..=5).contains(&value) {
            Ok(Self(value as u8))
        } else {
            Err(ValueError::Rating(value))
        }
    }
    pub fn get(&self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for Rating {
    type Error = ValueError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Rating::new(value)
    }
}

impl From<Rating> for i64 {
    fn from(value: Rating) -> i64 {
        i64::from(value.0)
    }
}

/// A postal address as carts and orders snapshot it (the seed's address columns,
/// without the address book's `type` and `is_default`). Built only through `new`,
/// which checks each field against its column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostalAddress {
    pub first_name: String,
    pub last_name: String,
    pub company: Option<String>,
    pub street_address_1: String,
    pub street_address_2: Option<String>,
    pub city: String,
    pub state_province: String,
    pub postal_code: String,
    pub country: CountryCode,
    pub phone: Option<Phone>,
}

/// The raw fields of a `PostalAddress`, as a client sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostalAddressInput {
    pub first_name: String,
    pub last_name: String,
    pub company: Option<String>,
    pub street_address_1: String,
    pub street_address_2: Option<String>,
    pub city: String,
    pub state_province: String,
    pub postal_code: String,
    pub country: Option<String>,
    pub phone: Option<String>,
}

impl PostalAddress {
    pub fn new(input: PostalAddressInput) -> Result<Self, ValueError> {
        let optional = |field: &'static str, value: Option<String>, max: usize| {
            value
                .filter(|v| !v.trim().is_empty())
                .map(|v| bounded_text(field, &v, max))
                .transpose()
        };
        Ok(Self {
            first_name: bounded_text("first_name", &input.first_name, 100)?,
            last_name: bounded_text("last_name", &input.last_name, 100)?,
            company: optional("company", input.company, 100)?,
            street_address_1: bounded_text("street_address_1", &input.street_address_1, 255)?,
            street_address_2: optional("street_address_2", input.street_address_2, 255)?,
            city: bounded_text("city", &input.city, 100)?,
            state_province: bounded_text("state_province", &input.state_province, 100)?,
            postal_code: bounded_text("postal_code", &input.postal_code, 20)?,
            country: match input.country {
                Some(code) => CountryCode::parse(&code)?,
                None => CountryCode::default(),
            },
            phone: input.phone.as_deref().map(Phone::parse).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn seed_cart_vat_is_5026() {
        let subtotal = Money::new(dec!(71800)).unwrap();
        assert_eq!(vat_on(subtotal).amount(), dec!(5026.00));
    }

    #[test]
    fn vat_rounds_half_away_from_zero() {
        // 0.07 * 0.50 = 0.035 → 0.04
        assert_eq!(vat_on(Money::new(dec!(0.50)).unwrap()).amount(), dec!(0.04));
        // 0.07 * 0.21 = 0.0147 → 0.01
        assert_eq!(vat_on(Money::new(dec!(0.21)).unwrap()).amount(), dec!(0.01));
    }

    #[test]
    fn money_refuses_negative_three_decimals_and_overflow() {
        assert_eq!(Money::new(dec!(-1)), Err(ValueError::Money(dec!(-1))));
        assert!(Money::new(dec!(1.005)).is_err());
        assert!(Money::new(dec!(100000000)).is_err());
        assert_eq!(
            Money::new(dec!(99999999.99)).unwrap().amount(),
            dec!(99999999.99)
        );
        assert_eq!(Money::new(dec!(1.50)).unwrap().amount().to_string(), "1.50");
    }

    #[test]
    fn money_serializes_as_string_and_deserializes_through_the_constructor() {
        let money = Money::new(dec!(35900)).unwrap();
        assert_eq!(serde_json::to_string(&money).unwrap(), "\"35900.00\"");
        assert!(serde_json::from_str::<Money>("\"-3\"").is_err());
    }

    #[test]
    fn price_must_be_above_zero() {
        assert!(Price::new(dec!(0)).is_err());
        assert!(Price::new(dec!(0.01)).is_ok());
    }

    #[test]
    fn sku_slug_email_coupon_normalize_or_refuse() {
        assert_eq!(Sku::parse(" iph-15.pro ").unwrap().as_str(), "IPH-15.PRO");
        assert!(Sku::parse("has space").is_err());
        assert!(Sku::parse("").is_err());
        assert!(Slug::parse("iphone-15-pro").is_ok());
        for bad in ["Iphone", "a--b", "-a", "a-", "", "a_b"] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Email::parse(" A@Example.COM ").unwrap().as_str(),
            "a@example.com"
        );
        assert!(Email::parse("not-an-email").is_err());
        assert_eq!(CouponCode::parse("save10").unwrap().as_str(), "SAVE10");
        assert!(CouponCode::parse("x!").is_err());
    }

    #[test]
    fn phone_country_currency_order_number() {
        assert_eq!(
            Phone::parse("+66 81-234-5678").unwrap().as_str(),
            "+66812345678"
        );
        assert!(Phone::parse("12").is_err());
        assert!(Phone::parse("+66abc1234567").is_err());
        assert_eq!(CountryCode::parse("th").unwrap().as_str(), "TH");
        assert!(CountryCode::parse("XX").is_err());
        assert_eq!(CountryCode::default().as_str(), "TH");
        assert_eq!(Currency::default().as_str(), "THB");
        assert!(Currency::parse("thb").is_err());
        assert_eq!(
            OrderNumber::allocate(2024, 123).unwrap().as_str(),
            "ORD-2024-000123"
        );
        assert!(OrderNumber::parse("ORD-24-1").is_err());
    }

    #[test]
    fn a_blind_index_is_64_lower_case_hex_characters() {
        let hex = "0123456789abcdef".repeat(4);
        let index = BlindIndex::parse(&hex).unwrap();
        assert_eq!(index.as_str(), hex);
        assert_eq!(
            serde_json::to_value(&index).unwrap(),
            serde_json::json!(hex)
        );
        assert_eq!(
            serde_json::from_value::<BlindIndex>(serde_json::json!(hex)).unwrap(),
            index
        );
        for bad in [
            String::new(),
            hex[..63].to_owned(),
            format!("{hex}0"),
            hex.to_uppercase(),
            format!("{}g", &hex[..63]),
            format!(" {}", &hex[..63]),
        ] {
            assert_eq!(
                BlindIndex::parse(&bad),
                Err(ValueError::BlindIndex {
                    length: bad.chars().count()
                }),
                "{bad:?}"
            );
        }
        assert!(serde_json::from_value::<BlindIndex>(serde_json::json!("abc")).is_err());
    }

    #[test]
    fn a_refused_blind_index_does_not_echo_its_input() {
        let error = BlindIndex::parse("somchai@example.com").unwrap_err();
        assert!(!error.to_string().contains("somchai"), "{error}");
    }

    #[test]
    fn quantity_and_rating_bounds() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(1).is_ok());
        assert!(Rating::new(0).is_err());
        assert!(Rating::new(6).is_err());
        assert_eq!(Rating::new(5).unwrap().get(), 5);
        assert!(serde_json::from_str::<Rating>("9").is_err());
    }

    #[test]
    fn postal_address_defaults_to_thailand_and_checks_lengths() {
        let input = PostalAddressInput {
            first_name: "Somchai".into(),
            last_name: "Jaidee".into(),
            street_address_1: "1 Sukhumvit Rd".into(),
            city: "Bangkok".into(),
            state_province: "Bangkok".into(),
            postal_code: "10110".into(),
            ..Default::default()
        };
        let address = PostalAddress::new(input.clone()).unwrap();
        assert_eq!(address.country.as_str(), "TH");
        let too_long = PostalAddressInput {
            postal_code: "1".repeat(21),
            ..input
        };
        assert!(matches!(
            PostalAddress::new(too_long),
            Err(ValueError::Text {
                field: "postal_code",
                ..
            })
        ));
    }

    #[test]
    fn url_and_text() {
        assert!(Url::parse("https://cdn.example.com/a.jpg").is_ok());
        assert!(Url::parse("ftp://x").is_err());
        assert!(Url::parse("https://").is_err());
        assert_eq!(bounded_text("name", "  iPhone ", 255).unwrap(), "iPhone");
        assert!(bounded_text("name", "   ", 255).is_err());
    }

    #[test]
    fn text_refuses_control_characters_separators_and_noncharacters() {
        let bad = [
            ("a\u{0}b", '\u{0}', 1),
            ("a\u{7}b", '\u{7}', 1),
            ("\u{1b}[31m", '\u{1b}', 0),
            ("a\u{7f}", '\u{7f}', 1),
            ("a\u{85}b", '\u{85}', 1),
            ("a\u{9f}b", '\u{9f}', 1),
            ("a\u{2028}b", '\u{2028}', 1),
            ("a\u{2029}b", '\u{2029}', 1),
            ("a\u{fdd0}b", '\u{fdd0}', 1),
            ("a\u{fffe}b", '\u{fffe}', 1),
            ("a\u{10ffff}b", '\u{10ffff}', 1),
            ("a\nb", '\n', 1),
            ("a\tb", '\t', 1),
            ("a\rb", '\r', 1),
            // Checked as given: trimming does not hide it.
            ("ไอโฟน \n", '\n', 6),
        ];
        for (text, character, index) in bad {
            assert_eq!(
                bounded_text("name", text, 255),
                Err(ValueError::Text {
                    field: "name",
                    reason: TextError::ForbiddenCharacter { character, index }
                }),
                "{text:?}"
            );
            assert!(SingleLineText::parse(text, 255).is_err(), "{text:?}");
        }
        for good in [
            "iPhone 15 Pro",
            "ไอโฟน",
            "👩‍💻 café",
            "a\u{200d}b",
            " trimmed ",
        ] {
            assert_eq!(
                SingleLineText::parse(good, 255).unwrap().as_str(),
                good.trim(),
                "{good:?}"
            );
        }
    }

    #[test]
    fn multi_line_text_keeps_tabs_and_line_feeds_only() {
        assert_eq!(
            MultiLineText::parse(" one\n\ttwo\n", 100).unwrap().as_str(),
            "one\n\ttwo"
        );
        for (text, character) in [
            ("a\u{0}b", '\u{0}'),
            ("a\rb", '\r'),
            ("a\u{2028}b", '\u{2028}'),
            ("a\u{b}b", '\u{b}'),
        ] {
            assert_eq!(
                bounded_multiline_text("description", text, 100),
                Err(ValueError::Text {
                    field: "description",
                    reason: TextError::ForbiddenCharacter {
                        character,
                        index: 1
                    }
                }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn text_errors_say_what_is_wrong() {
        assert_eq!(
            bounded_text("name", "a\u{0}", 255).unwrap_err().to_string(),
            "invalid name: must not contain a NUL character (U+0000) at character 2"
        );
        assert_eq!(
            bounded_text("name", "  ", 255),
            Err(ValueError::Text {
                field: "name",
                reason: TextError::Blank
            })
        );
        assert_eq!(
            SingleLineText::parse("abcd", 3),
            Err(TextError::TooLong { max: 3, length: 4 })
        );
        assert_eq!(unforbidden_text("note", "", TextLayout::SingleLine), Ok(()));
        assert!(unforbidden_text("note", "\u{0}", TextLayout::MultiLine).is_err());
    }

    #[test]
    fn json_documents_are_searched_in_values_and_keys_with_their_paths() {
        let document = serde_json::json!({
            "name": "a\u{0}",
            "description": "two\nlines",
            "tags": ["ok", "b\u{7}"],
            "attributes": {"co\u{0}lor": "red", "size": "L\u{2028}"},
            "count": 3,
        });
        let multi_line = |path: &str| {
            if path == "description" {
                TextLayout::MultiLine
            } else {
                TextLayout::SingleLine
            }
        };
        let mut found: Vec<(String, bool)> = forbidden_in_json(&document, &multi_line)
            .into_iter()
            .map(|e| (e.path, e.in_key))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                ("attributes.co\\0lor".to_owned(), true),
                ("attributes.size".to_owned(), false),
                ("name".to_owned(), false),
                ("tags[1]".to_owned(), false),
            ]
        );
        assert!(
            forbidden_in_json(&serde_json::json!({"a": ["b", {"c": "d\te"}]}), &|_| {
                TextLayout::MultiLine
            })
            .is_empty()
        );
    }

    #[test]
    fn urls_and_emails_refuse_control_characters() {
        for bad in [
            "https://cdn.example.com/a\u{0}.jpg",
            "https://cdn.example.com/\u{7}",
            "https://a.example\u{2028}/",
        ] {
            assert_eq!(Url::parse(bad), Err(ValueError::Url(bad.into())), "{bad:?}");
        }
        for bad in ["\"a\u{0}b\"@example.com", "a\u{7}@example.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn vat_is_seven_percent_within_half_a_satang(cents in 0i64..9_999_999_999) {
            let taxable = Money::new(Decimal::new(cents, 2)).unwrap();
            let exact = taxable.amount() * Decimal::new(7, 2);
            let diff = (vat_on(taxable).amount() - exact).abs();
            proptest::prop_assert!(diff <= Decimal::new(5, 3));
        }
    }
}
