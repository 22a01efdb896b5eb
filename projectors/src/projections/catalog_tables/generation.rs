//! The catalog tables' generations: the six seed tables and the projection's
//! bookkeeping, built and swapped by `stores::postgres`.

use async_trait::async_trait;

use super::{CatalogTables, NAME};
use crate::runtime::{NextGeneration, Projection, ProjectionError};
use crate::stores::postgres::TableSet;

pub(super) const CATALOG: TableSet = TableSet {
    projection: NAME,
    tables: &[
        "categories",
        "brands",
        "products",
        "product_attributes",
        "product_images",
        "product_variants",
    ],
    bookkeeping: &["projected_versions", "parked_events"],
    next_schema: "read_model_next_catalog",
    retired_schema: "read_model_retired_catalog",
};

impl CatalogTables {
    pub(super) async fn create_next_generation(
        &self,
    ) -> Result<Box<dyn NextGeneration>, ProjectionError> {
        let tables = CatalogTables {
            pool: CATALOG.create_next(&self.pool).await?,
            upcasters: self.upcasters.clone(),
            parking: self.parking,
            parked_max_age: self.parked_max_age,
            set_based: self.set_based,
            set_based_batches: Default::default(),
        };
        Ok(Box::new(NextCatalog { tables }))
    }
}

struct NextCatalog {
    tables: CatalogTables,
}

#[async_trait]
impl NextGeneration for NextCatalog {
    fn projection(&self) -> &dyn Projection {
        &self.tables
    }

    async fn swap(self: Box<Self>) -> Result<(), ProjectionError> {
        CATALOG.swap(&self.tables.pool).await
    }
}
