//! The account status machine (`users.status`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The seed's `users.status` CHECK values. `Active` is the seed's default and
/// the status every registration starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    #[default]
    Active,
    Inactive,
    Suspended,
}

impl UserStatus {
    pub const ALL: [UserStatus; 3] = [
        UserStatus::Active,
        UserStatus::Inactive,
        UserStatus::Suspended,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
            UserStatus::Suspended => "suspended",
        }
    }

    /// The allowed moves. An inactive (self-deactivated) account cannot be
    /// suspended: there is nothing left to stop, and reactivating it must go
    /// through `active` so that a suspension is always a deliberate act on a
    /// live account. Staying put is never a transition.
    pub fn can_become(self, to: UserStatus) -> bool {
        use UserStatus::*;
        matches!(
            (self, to),
            (Active, Suspended)
                | (Active, Inactive)
                | (Suspended, Active)
                | (Inactive, Active)
                | (Suspended, Inactive)
        )
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
