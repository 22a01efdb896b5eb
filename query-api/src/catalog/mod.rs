//! The relational read model (`read_model.products`, `categories`, `brands`)
//! and the listings served straight from it.

pub(crate) mod postgres;

use axum::extract::State;
use axum::Json;
use infrastructure::views::{BrandView, CategoryView, ProductView};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use postgres::PgCatalogReadModel;

use crate::consistency::ReadAfter;
use crate::error::{ApiError, StoreError};
use crate::extract::ApiQuery;
use crate::startup::AppState;
use crate::BoxFuture;
use infrastructure::consistency::CATALOG_TABLES;

/// Filters of the category listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryFilter {
    pub is_active: Option<bool>,
    pub parent_id: Option<Uuid>,
}

/// Filters of the brand listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandFilter {
    pub is_active: Option<bool>,
}

/// Port: the catalog as the projectors left it in the relational read model.
pub trait CatalogReadModel: Send + Sync {
    /// The product, or `None` when the read model does not have it.
    fn product(&self, id: Uuid) -> BoxFuture<'_, Result<Option<ProductView>, StoreError>>;

    /// Categories ordered by `sort_order`, then `name`.
    fn categories(
        &self,
        filter: CategoryFilter,
    ) -> BoxFuture<'_, Result<Vec<CategoryView>, StoreError>>;

    /// Brands ordered by `name`.
    fn brands(&self, filter: BrandFilter) -> BoxFuture<'_, Result<Vec<BrandView>, StoreError>>;

    /// Answers when the store does.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

#[derive(Debug, Serialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// `GET /v1/categories`
#[tracing::instrument(name = "list_categories", skip(state))]
pub async fn list_categories(
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<CategoryFilter>,
    read_after: ReadAfter,
) -> Result<Json<Items<CategoryView>>, ApiError> {
    state.read_after(read_after, &[CATALOG_TABLES]).await?;
    let items = state.read_model.categories(filter).await?;
    tracing::debug!(count = items.len(), "categories listed");
    Ok(Json(Items { items }))
}

/// `GET /v1/brands`
#[tracing::instrument(name = "list_brands", skip(state))]
pub async fn list_brands(
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<BrandFilter>,
    read_after: ReadAfter,
) -> Result<Json<Items<BrandView>>, ApiError> {
    state.read_after(read_after, &[CATALOG_TABLES]).await?;
    let items = state.read_model.brands(filter).await?;
    tracing::debug!(count = items.len(), "brands listed");
    Ok(Json(Items { items }))
}
