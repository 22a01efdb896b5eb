//! The orders tables' generations: the seed's `orders` and `order_items`
//! and the projection's bookkeeping, built and swapped by `stores::postgres`.
//! The new generation's foreign keys on `users`, `products` and
//! `product_variants` point at the live parents in `read_model`, which other
//! projections keep; the payments' foreign key on `orders` follows the swap.

use async_trait::async_trait;

use super::{OrdersTables, NAME};
use crate::runtime::{NextGeneration, Projection, ProjectionError};
use crate::stores::postgres::TableSet;

pub(super) const ORDERS: TableSet = TableSet {
    projection: NAME,
    tables: &["orders", "order_items"],
    bookkeeping: &["projected_versions", "parked_events"],
    next_schema: "read_model_next_orders",
    retired_schema: "read_model_retired_orders",
};

impl OrdersTables {
    pub(super) async fn create_next_generation(
        &self,
    ) -> Result<Box<dyn NextGeneration>, ProjectionError> {
        let tables = OrdersTables {
            pool: ORDERS.create_next(&self.pool).await?,
            upcasters: self.upcasters.clone(),
            personal: self.personal.clone(),
            parking: self.parking,
            parked_max_age: self.parked_max_age,
            gate: Default::default(),
        };
        Ok(Box::new(NextOrders { tables }))
    }
}

struct NextOrders {
    tables: OrdersTables,
}

#[async_trait]
impl NextGeneration for NextOrders {
    fn projection(&self) -> &dyn Projection {
        &self.tables
    }

    async fn swap(self: Box<Self>) -> Result<(), ProjectionError> {
        ORDERS.swap(&self.tables.pool).await
    }
}
