//! The promotion tables' generations: the seed's two tables, the three
//! beside them and the projection's bookkeeping, built and swapped by
//! `stores::postgres`.

use async_trait::async_trait;

use super::{PromotionTables, NAME};
use crate::runtime::{NextGeneration, Projection, ProjectionError};
use crate::stores::postgres::TableSet;

pub(super) const PROMOTIONS: TableSet = TableSet {
    projection: NAME,
    tables: &[
        "promotions",
        "coupons",
        "promotion_targets",
        "promotion_usage",
        "coupon_redemptions",
    ],
    bookkeeping: &["projected_versions", "parked_events"],
    next_schema: "read_model_next_promotions",
    retired_schema: "read_model_retired_promotions",
};

impl PromotionTables {
    pub(super) async fn create_next_generation(
        &self,
    ) -> Result<Box<dyn NextGeneration>, ProjectionError> {
        let tables = PromotionTables {
            pool: PROMOTIONS.create_next(&self.pool).await?,
            upcasters: self.upcasters.clone(),
            parking: self.parking,
            parked_max_age: self.parked_max_age,
        };
        Ok(Box::new(NextPromotions { tables }))
    }
}

struct NextPromotions {
    tables: PromotionTables,
}

#[async_trait]
impl NextGeneration for NextPromotions {
    fn projection(&self) -> &dyn Projection {
        &self.tables
    }

    async fn swap(self: Box<Self>) -> Result<(), ProjectionError> {
        PROMOTIONS.swap(&self.tables.pool).await
    }
}
