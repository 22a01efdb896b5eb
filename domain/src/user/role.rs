//! What a user may do on the platform: the role that the command side's
//! authorisation reads. Every account starts as a customer; only
//! `UserCommand::ChangeRole` makes an admin.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::values::ValueError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// Every registration's role, so that no sign-up can grant more.
    #[default]
    Customer,
    Admin,
}

impl UserRole {
    pub const ALL: [UserRole; 2] = [UserRole::Customer, UserRole::Admin];

    pub fn as_str(&self) -> &'static str {
        match self {
            UserRole::Customer => "customer",
            UserRole::Admin => "admin",
        }
    }

    /// Exactly one of the `as_str` spellings. Nothing is folded or trimmed:
    /// a role comes from an operator's request, and a near miss there is
    /// more likely a mistake to report than a spelling to guess.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == raw)
            .ok_or_else(|| ValueError::Role(raw.to_owned()))
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
