//! The `CustomerUsage` aggregate: one customer's uses of one promotion, on a
//! stream of its own (`customer_usage:{promotion_id}:{user_id}`), so that
//! `usage_limit_per_user` holds under concurrency. The checkout reads the
//! count from this stream and appends the use to it in the same atomic
//! append as the order, at the version it read: two simultaneous orders by
//! one customer conflict here, and the retry sees the first one's use. The
//! read model's count, which can lag, is never what a limit is checked
//! against.
//!
//! The stream remembers which orders hold a use, so recording is
//! exactly-once per order and a cancelled order gives its use back once.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The stream of `user_id`'s uses of `promotion_id`.
pub fn customer_usage_stream_id(promotion_id: Uuid, user_id: Uuid) -> String {
    format!("{}:{promotion_id}:{user_id}", CustomerUsage::TYPE)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerUsage {
    /// Orders currently holding a use.
    orders: BTreeSet<Uuid>,
}

impl CustomerUsage {
    /// The customer's current uses (recorded minus reverted).
    pub fn uses(&self) -> u32 {
        u32::try_from(self.orders.len()).unwrap_or(u32::MAX)
    }

    pub fn holds(&self, order_id: Uuid) -> bool {
        self.orders.contains(&order_id)
    }

    /// Records `order_id`'s use; the same order again records nothing.
    pub fn record(
        &self,
        promotion_id: Uuid,
        user_id: Uuid,
        order_id: Uuid,
        at: DateTime<Utc>,
    ) -> Vec<CustomerUsageEvent> {
        if self.holds(order_id) {
            return vec![];
        }
        vec![CustomerUsageEvent::CustomerUsageRecorded {
            promotion_id,
            user_id,
            order_id,
            uses: self.uses() + 1,
            at,
        }]
    }

    /// Gives `order_id`'s use back; an order without one gives nothing.
    pub fn revert(
        &self,
        promotion_id: Uuid,
        user_id: Uuid,
        order_id: Uuid,
        at: DateTime<Utc>,
    ) -> Vec<CustomerUsageEvent> {
        if !self.holds(order_id) {
            return vec![];
        }
        vec![CustomerUsageEvent::CustomerUsageReverted {
            promotion_id,
            user_id,
            order_id,
            uses: self.uses() - 1,
            at,
        }]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CustomerUsageCommand {
    RecordUse {
        promotion_id: Uuid,
        user_id: Uuid,
        order_id: Uuid,
        at: DateTime<Utc>,
    },
    RevertUse {
        promotion_id: Uuid,
        user_id: Uuid,
        order_id: Uuid,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomerUsageEvent {
    CustomerUsageRecorded {
        promotion_id: Uuid,
        user_id: Uuid,
        order_id: Uuid,
        /// The customer's uses after this one.
        uses: u32,
        at: DateTime<Utc>,
    },
    CustomerUsageReverted {
        promotion_id: Uuid,
        user_id: Uuid,
        order_id: Uuid,
        uses: u32,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for CustomerUsageEvent {
    fn event_type(&self) -> String {
        match self {
            CustomerUsageEvent::CustomerUsageRecorded { .. } => "CustomerUsageRecorded",
            CustomerUsageEvent::CustomerUsageReverted { .. } => "CustomerUsageReverted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Recording and reverting cannot fail: the limit is the promotion's rule,
/// checked by the checkout against `uses`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("customer usage refused")]
pub struct CustomerUsageError;

impl Aggregate for CustomerUsage {
    const TYPE: &'static str = "customer_usage";
    type Command = CustomerUsageCommand;
    type Event = CustomerUsageEvent;
    type Error = CustomerUsageError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            CustomerUsageCommand::RecordUse {
                promotion_id,
                user_id,
                order_id,
                at,
            } => self.record(promotion_id, user_id, order_id, at),
            CustomerUsageCommand::RevertUse {
                promotion_id,
                user_id,
                order_id,
                at,
            } => self.revert(promotion_id, user_id, order_id, at),
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CustomerUsageEvent::CustomerUsageRecorded { order_id, .. } => {
                self.orders.insert(order_id);
            }
            CustomerUsageEvent::CustomerUsageReverted { order_id, .. } => {
                self.orders.remove(&order_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap()
    }

    fn apply_all(usage: &mut CustomerUsage, events: Vec<CustomerUsageEvent>) {
        for event in events {
            usage.apply(event);
        }
    }

    #[test]
    fn a_use_is_counted_once_per_order_and_given_back_once() {
        let (promotion, user) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (first, second) = (Uuid::from_u128(10), Uuid::from_u128(11));
        // Given a customer with no uses
        let mut usage = CustomerUsage::default();
        // When two orders record a use, one of them twice
        let events = usage.record(promotion, user, first, at());
        assert!(matches!(
            events[0],
            CustomerUsageEvent::CustomerUsageRecorded { uses: 1, .. }
        ));
        apply_all(&mut usage, events);
        assert!(usage.record(promotion, user, first, at()).is_empty());
        let events = usage.record(promotion, user, second, at());
        apply_all(&mut usage, events);
        // Then they count two; a revert gives one back, once
        assert_eq!(usage.uses(), 2);
        let events = usage.revert(promotion, user, first, at());
        assert!(matches!(
            events[0],
            CustomerUsageEvent::CustomerUsageReverted { uses: 1, .. }
        ));
        apply_all(&mut usage, events);
        assert!(usage.revert(promotion, user, first, at()).is_empty());
        assert_eq!(usage.uses(), 1);
    }

    #[test]
    fn the_stream_is_named_by_promotion_and_customer() {
        assert_eq!(
            customer_usage_stream_id(Uuid::from_u128(1), Uuid::from_u128(2)),
            format!(
                "customer_usage:{}:{}",
                Uuid::from_u128(1),
                Uuid::from_u128(2)
            )
        );
    }
}
