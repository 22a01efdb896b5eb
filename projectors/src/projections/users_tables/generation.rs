//! The users tables' generations: the three seed tables and the projection's
//! bookkeeping, built and swapped by `stores::postgres`. The orders' foreign
//! key on `users` follows the swap.

use async_trait::async_trait;

use super::{UsersTables, NAME};
use crate::runtime::{NextGeneration, Projection, ProjectionError};
use crate::stores::postgres::TableSet;

pub(super) const USERS: TableSet = TableSet {
    projection: NAME,
    tables: &["users", "user_profiles", "user_addresses"],
    bookkeeping: &["projected_versions", "parked_events"],
    next_schema: "read_model_next_users",
    retired_schema: "read_model_retired_users",
};

impl UsersTables {
    pub(super) async fn create_next_generation(
        &self,
    ) -> Result<Box<dyn NextGeneration>, ProjectionError> {
        let tables = UsersTables {
            pool: USERS.create_next(&self.pool).await?,
            upcasters: self.upcasters.clone(),
            personal: self.personal.clone(),
            parking: self.parking,
            parked_max_age: self.parked_max_age,
        };
        Ok(Box::new(NextUsers { tables }))
    }
}

struct NextUsers {
    tables: UsersTables,
}

#[async_trait]
impl NextGeneration for NextUsers {
    fn projection(&self) -> &dyn Projection {
        &self.tables
    }

    async fn swap(self: Box<Self>) -> Result<(), ProjectionError> {
        USERS.swap(&self.tables.pool).await
    }
}
