//! The password policy of NIST SP 800-63B-4 (3.1.1.2, password verifiers):
//! a length window counted in code points, no composition rules, any Unicode
//! but control characters, and no password from a list of commonly used
//! ones. The domain checks a candidate; hashing it (into a `PasswordHash`)
//! happens outside, so a `Password` never reaches an event or a state.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

/// The shortest password accepted: SP 800-63B-4's floor for a password that
/// is one factor among several (it asks for 15 when it is the only one).
pub const PASSWORD_MIN_CHARS: usize = 8;
/// The longest password accepted (SP 800-63B-4 asks to allow at least 64).
/// The bound keeps a hashing request cheap to refuse.
pub const PASSWORD_MAX_CHARS: usize = 128;

/// domain/data/common-passwords.txt: one lower-case password per line,
/// `#` starts a comment line.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// Why a candidate password was refused. No variant carries the password and
/// no message shows it, because refusals end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {min} characters, not {length}")]
    TooShort { min: usize, length: usize },
    #[error("password must be at most {max} characters, not {length}")]
    TooLong { max: usize, length: usize },
    #[error("password must not contain control characters")]
    ControlCharacter,
    #[error("password is too common: choose one that is harder to guess")]
    Common,
}

/// A password that meets the policy, held only on its way to the hasher.
/// It is neither `Serialize` nor `Display`, and `Debug` hides it, so that it
/// cannot be stored or logged by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Takes the `String` by value so that the candidate is not copied.
    /// Lengths count Unicode scalar values, as SP 800-63B-4 counts code
    /// points; the text is kept exactly as typed (no trimming: spaces are
    /// part of a passphrase, and a hasher that normalises must see it whole).
    pub fn parse(raw: String) -> Result<Self, PasswordError> {
        let length = raw.chars().count();
        if length < PASSWORD_MIN_CHARS {
            return Err(PasswordError::TooShort {
                min: PASSWORD_MIN_CHARS,
                length,
            });
        }
        if length > PASSWORD_MAX_CHARS {
            return Err(PasswordError::TooLong {
                max: PASSWORD_MAX_CHARS,
                length,
            });
        }
        // A control character cannot be typed reliably on every device, so
        // accepting one would let an account lock its owner out.
        if raw.chars().any(|c| c.is_control()) {
            return Err(PasswordError::ControlCharacter);
        }
        // Lower-casing defeats the capitalised variants an attacker tries
        // first ("Password1"); the list is stored lower-case.
        if COMMON_PASSWORDS.contains(raw.to_lowercase().as_str()) {
            return Err(PasswordError::Common);
        }
        Ok(Self(raw))
    }

    /// The password, for the hasher only. Named so that a call site reads as
    /// a deliberate disclosure.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
pub(super) fn common_passwords() -> &'static HashSet<&'static str> {
    &COMMON_PASSWORDS
}
