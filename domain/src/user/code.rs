//! One-time codes: what proves that a person reads the mailbox of their
//! account (email verification) or may set a new password without the old
//! one (password reset). The command side draws the code at random and
//! computes its keyed digest; the stream keeps the digest only, so whoever
//! reads the state or the log's clear fields cannot use a live code. The code
//! itself travels in the request event, sealed like every personal field, so
//! that the mail worker can deliver it.
//!
//! A code is single use (the verification or reset that consumes it clears
//! it), expires, and is replaced by the next code of the same purpose.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::values::{BlindIndex, ValueError};

/// What a code proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodePurpose {
    EmailVerification,
    PasswordReset,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::EmailVerification => "email_verification",
            CodePurpose::PasswordReset => "password_reset",
        }
    }
}

impl fmt::Display for CodePurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code as the person types it: `DIGITS` ASCII digits. Debug output hides
/// it, because a live code is a credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OneTimeCode(String);

impl OneTimeCode {
    /// 10^8 codes: with the per-account limit on attempts, a guess succeeds
    /// with a chance far below one in a million over a code's lifetime.
    pub const DIGITS: usize = 8;

    /// Surrounding blanks are dropped (a code pasted from a mail often has
    /// some); anything but exactly `DIGITS` digits is refused.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let code = raw.trim();
        if code.len() == Self::DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(code.to_owned()))
        } else {
            Err(ValueError::OneTimeCode {
                length: raw.chars().count(),
            })
        }
    }

    /// The code formed from `value`'s last `DIGITS` decimal digits, zero
    /// padded: what the command side turns its random draw into.
    pub fn from_number(value: u64) -> Self {
        Self(format!(
            "{:0width$}",
            value % 10u64.pow(Self::DIGITS as u32),
            width = Self::DIGITS
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeCode(********)")
    }
}

impl TryFrom<String> for OneTimeCode {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<OneTimeCode> for String {
    fn from(code: OneTimeCode) -> Self {
        code.0
    }
}

/// A freshly drawn code with its keyed digest and expiry, as the command side
/// issues it. `code_hash` must be the digest of `code` for the same user and
/// purpose; the stream cannot check that, it only keeps the digest.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedCode {
    pub code: OneTimeCode,
    pub code_hash: BlindIndex,
    pub expires_at: DateTime<Utc>,
}

/// The live code of one purpose, as the stream keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCode {
    pub code_hash: BlindIndex,
    pub expires_at: DateTime<Utc>,
}

impl PendingCode {
    /// Whether `offered` is this code's digest, still valid `at`. The digests
    /// are compared in constant time: they are keyed, but a comparison that
    /// stops at the first difference would still tell how much of a guess
    /// matched.
    pub fn check(&self, offered: &BlindIndex, at: DateTime<Utc>) -> Result<(), CodeRefusal> {
        if at >= self.expires_at {
            return Err(CodeRefusal::Expired {
                expired_at: self.expires_at,
            });
        }
        let same = self
            .code_hash
            .as_str()
            .bytes()
            .zip(offered.as_str().bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0;
        if same {
            Ok(())
        } else {
            Err(CodeRefusal::Wrong)
        }
    }
}

/// Why an offered code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefusal {
    Wrong,
    Expired { expired_at: DateTime<Utc> },
}
