//! The relational read model (`read_model.products`, `categories`, `brands`)
//! and the listings served straight from it.

pub(crate) mod postgres;

use axum::extract::State;
use axum::Json;
use infrastructure::views::{BrandView, CategoryView, ProductView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use postgres::PgCatalogReadModel;

use crate::auth::Viewer;
use crate::consistency::ReadAfter;
use crate::error::{ApiError, InvalidParam, StoreError};
use crate::extract::ApiQuery;
use crate::openapi::Forbidden;
use crate::startup::AppState;
use crate::BoxFuture;
use infrastructure::consistency::CATALOG_TABLES;

/// Filters of the category listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategoryFilter {
    pub is_active: Option<bool>,
    pub parent_id: Option<Uuid>,
}

/// Filters of the brand listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrandFilter {
    pub is_active: Option<bool>,
}

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 500;

/// One page of a listing: at most `limit` items, after `after` when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<K> {
    pub limit: u32,
    pub after: Option<K>,
}

impl<K> Page<K> {
    pub fn first() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// A page of a listing, and where the next one starts when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<T, K> {
    pub items: Vec<T>,
    pub next: Option<K>,
}

/// The category listing's order: `sort_order` (absent counts as 0), `name`,
/// `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryKey {
    pub sort_order: i32,
    pub name: String,
    pub id: Uuid,
}

/// The brand listing's order: `name`, `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandKey {
    pub name: String,
    pub id: Uuid,
}

/// The query string of `GET /v1/categories`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CategoryParams {
    /// `false` needs an admin's session (403); the public sees active ones only.
    pub is_active: Option<bool>,
    /// Only the direct children of this category.
    pub parent_id: Option<Uuid>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub after: Option<String>,
}

/// The query string of `GET /v1/brands`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BrandParams {
    /// `false` needs an admin's session (403); the public sees active ones only.
    pub is_active: Option<bool>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub after: Option<String>,
}

/// The page `limit` and `after` ask for, or why they are refused.
pub(crate) fn page_of<K: serde::de::DeserializeOwned>(
    limit: Option<u32>,
    after: Option<&str>,
) -> Result<Page<K>, ApiError> {
    let mut invalid = Vec::new();
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        invalid.push(InvalidParam::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let after = match after {
        None => None,
        Some(text) => {
            let key = crate::cursor::decode(text);
            if key.is_none() {
                invalid.push(InvalidParam::new(
                    "after",
                    "is not a cursor this endpoint gave",
                ));
            }
            key
        }
    };
    if !invalid.is_empty() {
        return Err(ApiError::invalid_params(invalid));
    }
    Ok(Page { limit, after })
}

/// Port: the catalog as the projectors left it in the relational read model.
pub trait CatalogReadModel: Send + Sync {
    /// The product, or `None` when the read model does not have it.
    fn product(&self, id: Uuid) -> BoxFuture<'_, Result<Option<ProductView>, StoreError>>;

    /// Categories ordered by `sort_order`, then `name`, then `id`, a page
    /// at a time.
    fn categories(
        &self,
        filter: CategoryFilter,
        page: Page<CategoryKey>,
    ) -> BoxFuture<'_, Result<Listed<CategoryView, CategoryKey>, StoreError>>;

    /// Brands ordered by `name`, then `id`, a page at a time.
    fn brands(
        &self,
        filter: BrandFilter,
        page: Page<BrandKey>,
    ) -> BoxFuture<'_, Result<Listed<BrandView, BrandKey>, StoreError>>;

    /// Answers when the store does.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
    /// Pass as `after` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Items<T> {
    pub(crate) fn of<K: Serialize>(listed: Listed<T, K>) -> Self {
        Self {
            next_cursor: listed.next.as_ref().map(crate::cursor::encode),
            items: listed.items,
        }
    }
}

/// What `is_active` a viewer may list: everything for an admin, only the
/// active ones for anyone else, who asking for inactive ones is refused.
fn visible_activity(viewer: &Viewer, asked: Option<bool>) -> Result<Option<bool>, ApiError> {
    match (viewer.is_admin(), asked) {
        (true, asked) => Ok(asked),
        (false, Some(false)) => Err(ApiError::forbidden(
            "only admins may list inactive categories and brands",
        )),
        (false, _) => Ok(Some(true)),
    }
}

/// `GET /v1/categories`: the active ones, or for an admin any.
#[utoipa::path(
    get,
    path = "/v1/categories",
    tag = "catalog",
    operation_id = "list_categories",
    summary = "List categories",
    description = "By `sort_order`, `name`, `id`, a page at a time.",
    security((), ("bearerAuth" = [])),
    params(CategoryParams),
    responses(
        (status = 200, description = "One page", body = Items<CategoryView>),
        (status = 403, response = Forbidden),
    ),
)]
#[tracing::instrument(name = "list_categories", skip(state, viewer))]
pub async fn list_categories(
    State(state): State<AppState>,
    viewer: Viewer,
    ApiQuery(params): ApiQuery<CategoryParams>,
    read_after: ReadAfter,
) -> Result<Json<Items<CategoryView>>, ApiError> {
    let page = page_of(params.limit, params.after.as_deref())?;
    let filter = CategoryFilter {
        is_active: visible_activity(&viewer, params.is_active)?,
        parent_id: params.parent_id,
    };
    state.read_after(read_after, &[CATALOG_TABLES]).await?;
    let listed = state.read_model.categories(filter, page).await?;
    tracing::debug!(count = listed.items.len(), "categories listed");
    Ok(Json(Items::of(listed)))
}

/// `GET /v1/brands`: the active ones, or for an admin any.
#[utoipa::path(
    get,
    path = "/v1/brands",
    tag = "catalog",
    operation_id = "list_brands",
    summary = "List brands",
    description = "By `name`, `id`, a page at a time.",
    security((), ("bearerAuth" = [])),
    params(BrandParams),
    responses(
        (status = 200, description = "One page", body = Items<BrandView>),
        (status = 403, response = Forbidden),
    ),
)]
#[tracing::instrument(name = "list_brands", skip(state, viewer))]
pub async fn list_brands(
    State(state): State<AppState>,
    viewer: Viewer,
    ApiQuery(params): ApiQuery<BrandParams>,
    read_after: ReadAfter,
) -> Result<Json<Items<BrandView>>, ApiError> {
    let page = page_of(params.limit, params.after.as_deref())?;
    let filter = BrandFilter {
        is_active: visible_activity(&viewer, params.is_active)?,
    };
    state.read_after(read_after, &[CATALOG_TABLES]).await?;
    let listed = state.read_model.brands(filter, page).await?;
    tracing::debug!(count = listed.items.len(), "brands listed");
    Ok(Json(Items::of(listed)))
}
