//! Stock levels: one `Inventory` stream per stocked sku (`inventory:{sku}`), for a
//! product or one of its variants. It owns the available quantity (the seed's
//! `stock_quantity`), the per-order reservations taken at checkout and given back
//! on cancellation, and the low-stock / out-of-stock / back-in-stock alerts.
//!
//! Available is what can still be sold: a reservation deducts it at once, so the
//! read side shows `available` as `stock_quantity` without knowing about orders.
//! It never goes below zero, tracked or not. An untracked inventory records
//! reservations (so that releases stay symmetric) but neither refuses nor deducts
//! them, and raises no alerts.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{unforbidden_text, Quantity, Sku, TextLayout, ValueError};

#[cfg(test)]
mod tests;

/// The stream that holds the stock of `sku`.
pub fn inventory_stream_id(sku: &Sku) -> String {
    format!("inventory:{sku}")
}

/// Why stock was adjusted by hand (or by a returns process), as the audit trail shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockAdjustmentReason {
    Restock,
    Correction,
    Damage,
    Return,
    Other,
}

/// One order's hold on stock. `deducted` remembers whether it lowered
/// `available` (it does not while untracked), so that releasing it gives back
/// exactly what was taken even if tracking was switched in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Reservation {
    quantity: Quantity,
    deducted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    sku: Option<Sku>,
    product_id: Uuid,
    variant_id: Option<Uuid>,
    available: i64,
    low_stock_threshold: i32,
    track_inventory: bool,
    reservations: BTreeMap<Uuid, Reservation>,
    // Kept so that a late or repeated reserve cannot resurrect a released hold.
    released_orders: BTreeSet<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryCommand {
    InitializeStock {
        sku: Sku,
        product_id: Uuid,
        variant_id: Option<Uuid>,
        quantity: i32,
        low_stock_threshold: i32,
        track_inventory: bool,
        at: DateTime<Utc>,
    },
    AdjustStock {
        delta: i32,
        reason: StockAdjustmentReason,
        note: Option<String>,
        at: DateTime<Utc>,
    },
    SetLowStockThreshold {
        threshold: i32,
        at: DateTime<Utc>,
    },
    SetTrackInventory {
        track_inventory: bool,
        at: DateTime<Utc>,
    },
    ReserveStock {
        order_id: Uuid,
        quantity: Quantity,
        at: DateTime<Utc>,
    },
    ReleaseStock {
        order_id: Uuid,
        at: DateTime<Utc>,
    },
}

/// Every event names the sku, product and variant, so a projector updates
/// `products.stock_quantity` (variant_id = None) or
/// `product_variants.stock_quantity` without a lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InventoryEvent {
    StockInitialized {
        sku: Sku,
        product_id: Uuid,
        variant_id: Option<Uuid>,
        quantity: i32,
        low_stock_threshold: i32,
        track_inventory: bool,
        at: DateTime<Utc>,
    },
    StockAdjusted {
        sku: Sku,
        product_id: Uuid,
        variant_id: Option<Uuid>,
        delta: i32,
        reason: StockAdjustmentReason,
        note: Option<String>,
        previous_available: i64,
        available: i64,
        at: DateTime<Utc>,
    },
    LowStockThresholdSet {
        sku: Sku,
        product_id: Uuid,
        variant_id: Option<Uuid>,
        previous_threshold: i32,
        threshold: i32,
        at: DateTime<Utc>,
    },
    InventoryTrackingChanged {
        sku: Sku,
        product_id: Uuid,
        variant_id: Option<Uuid>,
        track_inventory: bool,
        at: DateTime<Utc>,
    },
    StockReserved {
        sku: Sku,
        product_id: Uuid,
        variant_id: Option<Uuid>,
        order_id: Uuid,
        quantity: Quantity,
        previous_available: i64,
        available: i64,
        at: DateTime<Utc>,
    },
    StockReleased {
        sku: Sku,
        product_id: Uuid,
        variant_id: Option<Uuid>,
        order_id: Uuid,
        quantity: Quantity,
        previous_available: i64,
        available: i64,
        at: DateTime<Utc>,
    },
    LowStockReached {
        sku: Sku,
        product_id: Uuid,
        variant_id: Option<Uuid>,
        available: i64,
        threshold: i32,
        at: DateTime<Utc>,
    },
    OutOfStock {
        sku: Sku,
        product_id: Uuid,
        variant_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
    BackInStock {
        sku: Sku,
        product_id: Uuid,
        variant_id: Option<Uuid>,
        available: i64,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for InventoryEvent {
    fn event_type(&self) -> String {
        match self {
            InventoryEvent::StockInitialized { .. } => "StockInitialized",
            InventoryEvent::StockAdjusted { .. } => "StockAdjusted",
            InventoryEvent::LowStockThresholdSet { .. } => "LowStockThresholdSet",
            InventoryEvent::InventoryTrackingChanged { .. } => "InventoryTrackingChanged",
            InventoryEvent::StockReserved { .. } => "StockReserved",
            InventoryEvent::StockReleased { .. } => "StockReleased",
            InventoryEvent::LowStockReached { .. } => "LowStockReached",
            InventoryEvent::OutOfStock { .. } => "OutOfStock",
            InventoryEvent::BackInStock { .. } => "BackInStock",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The ceiling of the seed's `INTEGER` stock columns. On-hand stock (available
/// plus what reservations took) stays below it, so a release can never overflow.
pub const MAX_STOCK: i64 = i32::MAX as i64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("no stock has been initialized on this stream")]
    NotInitialized,
    #[error("stock for {sku} is already initialized")]
    AlreadyInitialized { sku: Sku },
    #[error("initial stock quantity must be >= 0, got {quantity}")]
    NegativeQuantity { quantity: i32 },
    #[error("low stock threshold must be >= 0, got {threshold}")]
    NegativeThreshold { threshold: i32 },
    #[error("a stock adjustment of {sku} must change the level (delta 0)")]
    ZeroAdjustment { sku: Sku },
    #[error("{sku}: {requested} requested but only {available} available")]
    InsufficientStock {
        sku: Sku,
        requested: u32,
        available: i64,
    },
    #[error("{sku}: on-hand stock would reach {on_hand}, above the maximum {max}")]
    StockLimitExceeded { sku: Sku, on_hand: i64, max: i64 },
    #[error("{sku}: order {order_id} already holds {reserved:?}, not {requested:?}")]
    ReservationMismatch {
        sku: Sku,
        order_id: Uuid,
        reserved: Quantity,
        requested: Quantity,
    },
    #[error("{sku}: the reservation of order {order_id} was released and cannot be taken again")]
    ReservationReleased { sku: Sku, order_id: Uuid },
    #[error(transparent)]
    InvalidValue(#[from] ValueError),
}

impl Inventory {
    pub fn sku(&self) -> Option<&Sku> {
        self.sku.as_ref()
    }

    pub fn product_id(&self) -> Uuid {
        self.product_id
    }

    pub fn variant_id(&self) -> Option<Uuid> {
        self.variant_id
    }

    pub fn available(&self) -> i64 {
        self.available
    }

    pub fn low_stock_threshold(&self) -> i32 {
        self.low_stock_threshold
    }

    pub fn is_tracked(&self) -> bool {
        self.track_inventory
    }

    /// What `order_id` currently holds; `None` when it holds nothing (never
    /// reserved, or released).
    pub fn reserved_for(&self, order_id: Uuid) -> Option<Quantity> {
        self.reservations.get(&order_id).map(|r| r.quantity)
    }

    /// Refuses a second initialization and negative levels or thresholds.
    fn check_initializable(
        &self,
        quantity: i32,
        low_stock_threshold: i32,
    ) -> Result<(), InventoryError> {
        if let Some(existing) = &self.sku {
            return Err(InventoryError::AlreadyInitialized {
                sku: existing.clone(),
            });
        }
        if quantity < 0 {
            return Err(InventoryError::NegativeQuantity { quantity });
        }
        if low_stock_threshold < 0 {
            return Err(InventoryError::NegativeThreshold {
                threshold: low_stock_threshold,
            });
        }
        Ok(())
    }

    /// A manual change of the level. Removing more than is available is refused
    /// whether tracked or not: `available` is never negative.
    pub fn adjust(
        &self,
        delta: i32,
        reason: StockAdjustmentReason,
        note: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<Vec<InventoryEvent>, InventoryError> {
        let sku = self.initialized_sku()?;
        if delta == 0 {
            return Err(InventoryError::ZeroAdjustment { sku: sku.clone() });
        }
        if let Some(note) = &note {
            unforbidden_text("note", note, TextLayout::MultiLine)?;
        }
        let previous = self.available;
        let available = previous + i64::from(delta);
        if available < 0 {
            return Err(InventoryError::InsufficientStock {
                sku: sku.clone(),
                requested: delta.unsigned_abs(),
                available: previous,
            });
        }
        let on_hand = available + self.deducted_total();
        if on_hand > MAX_STOCK {
            return Err(InventoryError::StockLimitExceeded {
                sku: sku.clone(),
                on_hand,
                max: MAX_STOCK,
            });
        }
        let mut events = vec![InventoryEvent::StockAdjusted {
            sku: sku.clone(),
            product_id: self.product_id,
            variant_id: self.variant_id,
            delta,
            reason,
            note,
            previous_available: previous,
            available,
            at,
        }];
        events.extend(self.alerts(previous, available, self.low_stock_threshold, at));
        Ok(events)
    }

    /// Changing the threshold to the same value is a no-op. Raising it past the
    /// current level counts as reaching low stock, as a falling level would.
    pub fn set_low_stock_threshold(
        &self,
        threshold: i32,
        at: DateTime<Utc>,
    ) -> Result<Vec<InventoryEvent>, InventoryError> {
        let sku = self.initialized_sku()?;
        if threshold < 0 {
            return Err(InventoryError::NegativeThreshold { threshold });
        }
        if threshold == self.low_stock_threshold {
            return Ok(vec![]);
        }
        let mut events = vec![InventoryEvent::LowStockThresholdSet {
            sku: sku.clone(),
            product_id: self.product_id,
            variant_id: self.variant_id,
            previous_threshold: self.low_stock_threshold,
            threshold,
            at,
        }];
        if self.track_inventory
            && self.available > 0
            && self.available > i64::from(self.low_stock_threshold)
            && self.available <= i64::from(threshold)
        {
            events.push(self.low_stock_reached(self.available, threshold, at));
        }
        Ok(events)
    }

    /// Toggling tracking raises no alert: the level did not move.
    pub fn set_track_inventory(
        &self,
        track_inventory: bool,
        at: DateTime<Utc>,
    ) -> Result<Vec<InventoryEvent>, InventoryError> {
        let sku = self.initialized_sku()?;
        if track_inventory == self.track_inventory {
            return Ok(vec![]);
        }
        Ok(vec![InventoryEvent::InventoryTrackingChanged {
            sku: sku.clone(),
            product_id: self.product_id,
            variant_id: self.variant_id,
            track_inventory,
            at,
        }])
    }

    /// Holds `quantity` for `order_id`. Idempotent per order: the same order with
    /// the same quantity again yields no events; a different quantity is refused,
    /// as is an order whose reservation was already released.
    pub fn reserve(
        &self,
        order_id: Uuid,
        quantity: Quantity,
        at: DateTime<Utc>,
    ) -> Result<Vec<InventoryEvent>, InventoryError> {
        let sku = self.initialized_sku()?;
        if let Some(existing) = self.reservations.get(&order_id) {
            if existing.quantity == quantity {
                return Ok(vec![]);
            }
            return Err(InventoryError::ReservationMismatch {
                sku: sku.clone(),
                order_id,
                reserved: existing.quantity,
                requested: quantity,
            });
        }
        if self.released_orders.contains(&order_id) {
            return Err(InventoryError::ReservationReleased {
                sku: sku.clone(),
                order_id,
            });
        }
        let previous = self.available;
        let available = if self.track_inventory {
            let wanted = i64::from(quantity.get());
            if previous < wanted {
                return Err(InventoryError::InsufficientStock {
                    sku: sku.clone(),
                    requested: quantity.get(),
                    available: previous,
                });
            }
            previous - wanted
        } else {
            previous
        };
        let mut events = vec![InventoryEvent::StockReserved {
            sku: sku.clone(),
            product_id: self.product_id,
            variant_id: self.variant_id,
            order_id,
            quantity,
            previous_available: previous,
            available,
            at,
        }];
        events.extend(self.alerts(previous, available, self.low_stock_threshold, at));
        Ok(events)
    }

    /// Gives back exactly what `order_id` holds. Idempotent: an order that holds
    /// nothing (never reserved, or already released) yields no events, so a
    /// cancellation can be retried safely.
    pub fn release(
        &self,
        order_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Vec<InventoryEvent>, InventoryError> {
        let sku = self.initialized_sku()?;
        let Some(reservation) = self.reservations.get(&order_id) else {
            return Ok(vec![]);
        };
        let previous = self.available;
        let available = if reservation.deducted {
            previous + i64::from(reservation.quantity.get())
        } else {
            previous
        };
        let mut events = vec![InventoryEvent::StockReleased {
            sku: sku.clone(),
            product_id: self.product_id,
            variant_id: self.variant_id,
            order_id,
            quantity: reservation.quantity,
            previous_available: previous,
            available,
            at,
        }];
        events.extend(self.alerts(previous, available, self.low_stock_threshold, at));
        Ok(events)
    }

    fn initialized_sku(&self) -> Result<&Sku, InventoryError> {
        self.sku.as_ref().ok_or(InventoryError::NotInitialized)
    }

    fn deducted_total(&self) -> i64 {
        self.reservations
            .values()
            .filter(|r| r.deducted)
            .map(|r| i64::from(r.quantity.get()))
            .sum()
    }

    /// The alerts a move of the level from `before` to `after` raises: each one
    /// only on the crossing, never again while the level stays on the same side.
    fn alerts(
        &self,
        before: i64,
        after: i64,
        threshold: i32,
        at: DateTime<Utc>,
    ) -> Vec<InventoryEvent> {
        if !self.track_inventory || before == after {
            return vec![];
        }
        let threshold_level = i64::from(threshold);
        let mut events = Vec::new();
        if before > threshold_level && after <= threshold_level && after > 0 {
            events.push(self.low_stock_reached(after, threshold, at));
        }
        if before > 0 && after == 0 {
            events.push(InventoryEvent::OutOfStock {
                sku: self.sku.clone().expect("alerts follow an initialized sku"),
                product_id: self.product_id,
                variant_id: self.variant_id,
                at,
            });
        }
        if before == 0 && after > 0 {
            events.push(InventoryEvent::BackInStock {
                sku: self.sku.clone().expect("alerts follow an initialized sku"),
                product_id: self.product_id,
                variant_id: self.variant_id,
                available: after,
                at,
            });
        }
        events
    }

    fn low_stock_reached(
        &self,
        available: i64,
        threshold: i32,
        at: DateTime<Utc>,
    ) -> InventoryEvent {
        InventoryEvent::LowStockReached {
            sku: self.sku.clone().expect("alerts follow an initialized sku"),
            product_id: self.product_id,
            variant_id: self.variant_id,
            available,
            threshold,
            at,
        }
    }
}

impl Aggregate for Inventory {
    const TYPE: &'static str = "inventory";
    type Command = InventoryCommand;
    type Event = InventoryEvent;
    type Error = InventoryError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            InventoryCommand::InitializeStock {
                sku,
                product_id,
                variant_id,
                quantity,
                low_stock_threshold,
                track_inventory,
                at,
            } => {
                self.check_initializable(quantity, low_stock_threshold)?;
                vec![InventoryEvent::StockInitialized {
                    sku,
                    product_id,
                    variant_id,
                    quantity,
                    low_stock_threshold,
                    track_inventory,
                    at,
                }]
            }
            InventoryCommand::AdjustStock {
                delta,
                reason,
                note,
                at,
            } => self.adjust(delta, reason, note, at)?,
            InventoryCommand::SetLowStockThreshold { threshold, at } => {
                self.set_low_stock_threshold(threshold, at)?
            }
            InventoryCommand::SetTrackInventory {
                track_inventory,
                at,
            } => self.set_track_inventory(track_inventory, at)?,
            InventoryCommand::ReserveStock {
                order_id,
                quantity,
                at,
            } => self.reserve(order_id, quantity, at)?,
            InventoryCommand::ReleaseStock { order_id, at } => self.release(order_id, at)?,
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            InventoryEvent::StockInitialized {
                sku,
                product_id,
                variant_id,
                quantity,
                low_stock_threshold,
                track_inventory,
                ..
            } => {
                self.sku = Some(sku);
                self.product_id = product_id;
                self.variant_id = variant_id;
                self.available = i64::from(quantity);
                self.low_stock_threshold = low_stock_threshold;
                self.track_inventory = track_inventory;
            }
            InventoryEvent::StockAdjusted { available, .. } => self.available = available,
            InventoryEvent::LowStockThresholdSet { threshold, .. } => {
                self.low_stock_threshold = threshold
            }
            InventoryEvent::InventoryTrackingChanged {
                track_inventory, ..
            } => self.track_inventory = track_inventory,
            InventoryEvent::StockReserved {
                order_id,
                quantity,
                available,
                ..
            } => {
                self.reservations.insert(
                    order_id,
                    Reservation {
                        quantity,
                        deducted: self.track_inventory,
                    },
                );
                self.available = available;
            }
            InventoryEvent::StockReleased {
                order_id,
                available,
                ..
            } => {
                self.reservations.remove(&order_id);
                self.released_orders.insert(order_id);
                self.available = available;
            }
            InventoryEvent::LowStockReached { .. }
            | InventoryEvent::OutOfStock { .. }
            | InventoryEvent::BackInStock { .. } => {}
        }
    }
}
