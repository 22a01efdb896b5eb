//! The consistency token: a place in the global log, handed to clients with
//! every successful command so that a reader can wait until it has applied
//! everything up to it. Clients treat it as opaque; its text form is versioned
//! so that it can change without breaking tokens already handed out.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::GlobalCheckpoint;

/// The point in the global order at which a command's events are final. A
/// tailer that has read up to (and including) this place has read every event
/// of that command and of every command answered before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConsistencyToken(GlobalCheckpoint);

const PREFIX: &str = "1.";

impl ConsistencyToken {
    pub fn new(place: GlobalCheckpoint) -> Self {
        Self(place)
    }

    pub fn place(&self) -> GlobalCheckpoint {
        self.0
    }

    /// Whether a reader whose checkpoint is `read_up_to` has read every event
    /// this token covers.
    pub fn is_reached_by(&self, read_up_to: GlobalCheckpoint) -> bool {
        read_up_to >= self.0
    }
}

impl fmt::Display for ConsistencyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let GlobalCheckpoint {
            epoch,
            transaction_id,
            position,
        } = self.0;
        write!(f, "{PREFIX}{epoch:x}.{transaction_id:x}.{position:x}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a consistency token")]
pub struct InvalidToken(pub String);

impl FromStr for ConsistencyToken {
    type Err = InvalidToken;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidToken(text.chars().take(64).collect());
        let rest = text.strip_prefix(PREFIX).ok_or_else(invalid)?;
        let mut parts = rest.split('.');
        let mut next = || -> Result<i64, InvalidToken> {
            let part = parts.next().ok_or_else(invalid)?;
            if part.is_empty() || part.len() > 16 || part.starts_with('+') {
                return Err(invalid());
            }
            i64::from_str_radix(part, 16)
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(invalid)
        };
        let place = GlobalCheckpoint {
            epoch: next()?,
            transaction_id: next()?,
            position: next()?,
        };
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Self(place))
    }
}

impl Serialize for ConsistencyToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConsistencyToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(epoch: i64, transaction_id: i64, position: i64) -> GlobalCheckpoint {
        GlobalCheckpoint {
            epoch,
            transaction_id,
            position,
        }
    }

    #[test]
    fn round_trips_through_its_text() {
        let token = ConsistencyToken::new(place(2, 0x1234, 99));
        let text = token.to_string();
        assert_eq!(text, "1.2.1234.63");
        assert_eq!(text.parse::<ConsistencyToken>().unwrap(), token);
        let json = serde_json::to_string(&token).unwrap();
        assert_eq!(
            serde_json::from_str::<ConsistencyToken>(&json).unwrap(),
            token
        );
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        for text in [
            "",
            "1.",
            "1.2.3",
            "1.2.3.4.5",
            "2.1.1.1",
            "1.x.1.1",
            "1.-1.1.1",
            "1.+1.1.1",
            "1.1..1",
            "1.11111111111111111.1.1",
        ] {
            assert!(text.parse::<ConsistencyToken>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn orders_by_epoch_then_transaction_then_position() {
        let restored_low_xid = ConsistencyToken::new(place(2, 5, 1));
        let old_high_xid = ConsistencyToken::new(place(1, 9_000, 500));
        assert!(restored_low_xid > old_high_xid);
        assert!(ConsistencyToken::new(place(1, 7, 3)) < ConsistencyToken::new(place(1, 8, 1)));
        assert!(old_high_xid.is_reached_by(place(1, 9_000, 500)));
        assert!(!old_high_xid.is_reached_by(place(1, 9_000, 499)));
        assert!(old_high_xid.is_reached_by(place(2, 1, 1)));
    }
}
