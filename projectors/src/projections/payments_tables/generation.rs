//! The payments tables' generations: the seed's `payments` and
//! `payment_refunds` and the projection's bookkeeping, built and swapped by
//! `stores::postgres`. The new generation's `payments.order_id` foreign key
//! points at the live `read_model.orders`, which orders-tables keeps; the
//! refunds' foreign key on `payments` is copied among the set.

use std::sync::Arc;

use async_trait::async_trait;

use super::{PaymentsTables, NAME};
use crate::runtime::{NextGeneration, Projection, ProjectionError};
use crate::stores::postgres::TableSet;

pub(super) const PAYMENTS: TableSet = TableSet {
    projection: NAME,
    tables: &["payments", "payment_refunds"],
    bookkeeping: &["projected_versions", "parked_events"],
    next_schema: "read_model_next_payments",
    retired_schema: "read_model_retired_payments",
};

impl PaymentsTables {
    pub(super) async fn create_next_generation(
        &self,
    ) -> Result<Box<dyn NextGeneration>, ProjectionError> {
        let tables = PaymentsTables {
            pool: PAYMENTS.create_next(&self.pool).await?,
            upcasters: self.upcasters.clone(),
            parking: self.parking,
            parked_max_age: self.parked_max_age,
            gate: Arc::default(),
        };
        Ok(Box::new(NextPayments { tables }))
    }
}

struct NextPayments {
    tables: PaymentsTables,
}

#[async_trait]
impl NextGeneration for NextPayments {
    fn projection(&self) -> &dyn Projection {
        &self.tables
    }

    async fn swap(self: Box<Self>) -> Result<(), ProjectionError> {
        PAYMENTS.swap(&self.tables.pool).await
    }
}
