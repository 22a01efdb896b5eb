//! Products: one product by id (the Redis cache first, then the relational
//! read model) and the product search (Elasticsearch).

mod cache;
mod search;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use infrastructure::relay::error_chain;
use infrastructure::views::{CachedProduct, NamedRef, ProductView, SearchProduct};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use cache::RedisProductCache;
pub use search::{search_body, ElasticsearchProductSearch};

use crate::auth::Viewer;
use crate::consistency::ReadAfter;
use crate::error::{ApiError, InvalidParam, StoreError};
use crate::extract::{ApiPath, ApiQuery};
use crate::money::money_from_f64;
use crate::openapi::{Forbidden, NotFound};
use crate::startup::AppState;
use crate::BoxFuture;
use infrastructure::consistency::{CATALOG_TABLES, PRODUCT_CACHE, PRODUCT_SEARCH};

pub static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Port: the product cache the projector maintains. Read-only here: the
/// projector owns the entries and their version guard.
pub trait ProductCache: Send + Sync {
    /// The cached entry, or `None` on a miss.
    fn get(&self, id: Uuid) -> BoxFuture<'_, Result<Option<CachedProduct>, StoreError>>;

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// Port: the product search index.
pub trait ProductSearch: Send + Sync {
    /// One page of matches. A search index that does not exist yet (a fresh
    /// system) is an empty result, not an error.
    fn search(&self, query: SearchQuery) -> BoxFuture<'_, Result<SearchPage, StoreError>>;

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// `GET /v1/products/{id}`
#[utoipa::path(
    get,
    path = "/v1/products/{id}",
    tag = "products",
    operation_id = "get_product",
    summary = "One product",
    description = "From the Redis cache, else the relational read model; `X-Cache` says which. A product \
        that is not active does not exist for the public (404).",
    security((), ("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The product")),
    responses(
        (status = 200, description = "The product", body = ProductView,
            headers(("X-Cache" = String, description = "`hit` (Redis) or `miss` (PostgreSQL)"))),
        (status = 404, response = NotFound),
    ),
)]
#[tracing::instrument(name = "get_product", skip_all, fields(product_id = %id))]
pub async fn get_product(
    State(state): State<AppState>,
    viewer: Viewer,
    ApiPath(id): ApiPath<Uuid>,
    read_after: ReadAfter,
) -> Result<Response, ApiError> {
    state
        .read_after(read_after, &[PRODUCT_CACHE, CATALOG_TABLES])
        .await?;
    // A product that is not on sale does not exist for the public.
    let hidden = |product: &ProductView| !viewer.is_admin() && product.status != "active";
    let not_found = || ApiError::not_found(format!("product {id} does not exist"));
    match state.cache.get(id).await {
        Ok(Some(cached)) if hidden(&cached.product) => return Err(not_found()),
        Ok(Some(cached)) => {
            tracing::debug!("product cache hit");
            return Ok(with_cache_header(Json(cached.product), "hit"));
        }
        Ok(None) => tracing::debug!("product cache miss"),
        Err(error) => tracing::warn!(
            error = %error_chain(&error),
            "product cache unavailable, reading the read model"
        ),
    }
    match state.read_model.product(id).await? {
        Some(product) if !hidden(&product) => Ok(with_cache_header(Json(product), "miss")),
        _ => Err(not_found()),
    }
}

fn with_cache_header(body: impl IntoResponse, value: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(X_CACHE.clone(), HeaderValue::from_static(value));
    response
}

/// Product lifecycle states, as the `status` filter accepts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProductStatus {
    Draft,
    Active,
    Inactive,
    Archived,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Archived => "archived",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchSort {
    Relevance,
    Newest,
    PriceAsc,
    PriceDesc,
    NameAsc,
}

pub const DEFAULT_PER_PAGE: u32 = 20;
pub const MAX_PER_PAGE: u32 = 100;
/// The deepest hit a page may reach (Elasticsearch's default
/// `index.max_result_window`).
pub const MAX_RESULT_WINDOW: u64 = 10_000;

/// The query string of `GET /v1/products`, as sent.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Full text over the name, descriptions, category, brand and tags; at
    /// most 200 characters once trimmed, and blank counts as none.
    pub q: Option<String>,
    pub category_id: Option<Uuid>,
    pub brand_id: Option<Uuid>,
    /// On the effective price, included; a decimal >= 0.
    pub min_price: Option<Decimal>,
    /// On the effective price, included; a decimal >= `min_price`.
    pub max_price: Option<Decimal>,
    /// Anything but `active` needs an admin's session (403).
    #[param(inline)]
    pub status: Option<ProductStatus>,
    /// `relevance` with `q`, `newest` without.
    #[param(inline)]
    pub sort: Option<SearchSort>,
    /// `page * per_page` may not exceed 10,000; page on with `after` past that.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u32>,
    /// The `next_cursor` of the page before, instead of `page`: pages past
    /// the 10,000th hit are reached this way.
    pub after: Option<String>,
}

/// Where a page ended: the sort values of its last hit, for the next page's
/// `search_after`, with the sort they belong to. Opaque to clients
/// (base64url of JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub sort: SearchSort,
    pub after: Vec<serde_json::Value>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        crate::cursor::encode(self)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let cursor: Self = crate::cursor::decode(text)?;
        // A primary sort value and the id that breaks ties.
        (cursor.after.len() == 2).then_some(cursor)
    }
}

/// A validated search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub text: Option<String>,
    pub category_id: Option<Uuid>,
    pub brand_id: Option<Uuid>,
    pub min_price: Option<Decimal>,
    pub max_price: Option<Decimal>,
    pub status: Option<ProductStatus>,
    pub sort: SearchSort,
    pub page: u32,
    pub per_page: u32,
    /// Hits after this one, instead of a page number.
    pub after: Option<Cursor>,
}

impl Default for SearchQuery {
    fn default() -> Self {
        Self {
            text: None,
            category_id: None,
            brand_id: None,
            min_price: None,
            max_price: None,
            status: None,
            sort: SearchSort::Newest,
            page: 1,
            per_page: DEFAULT_PER_PAGE,
            after: None,
        }
    }
}

impl SearchQuery {
    /// Index of the first hit of the page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.per_page)
    }
}

impl TryFrom<SearchParams> for SearchQuery {
    type Error = Vec<InvalidParam>;

    fn try_from(params: SearchParams) -> Result<Self, Self::Error> {
        let mut invalid = Vec::new();
        let text = params
            .q
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty());
        if text.as_ref().is_some_and(|q| q.chars().count() > 200) {
            invalid.push(InvalidParam::new("q", "must be at most 200 characters"));
        }
        for (name, price) in [
            ("min_price", params.min_price),
            ("max_price", params.max_price),
        ] {
            if price.is_some_and(|p| p.is_sign_negative() && !p.is_zero()) {
                invalid.push(InvalidParam::new(name, "must not be negative"));
            }
        }
        if let (Some(min), Some(max)) = (params.min_price, params.max_price) {
            if min > max {
                invalid.push(InvalidParam::new(
                    "min_price",
                    "must not be greater than max_price",
                ));
            }
        }
        let page = params.page.unwrap_or(1);
        if page < 1 {
            invalid.push(InvalidParam::new("page", "must be at least 1"));
        }
        let per_page = params.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            invalid.push(InvalidParam::new(
                "per_page",
                format!("must be between 1 and {MAX_PER_PAGE}"),
            ));
        }
        let after = match &params.after {
            None => None,
            Some(text) => match Cursor::decode(text) {
                Some(cursor) => Some(cursor),
                None => {
                    invalid.push(InvalidParam::new(
                        "after",
                        "is not a cursor this endpoint gave",
                    ));
                    None
                }
            },
        };
        if params.after.is_some() && params.page.is_some() {
            invalid.push(InvalidParam::new("page", "must not be combined with after"));
        }
        if params.after.is_none()
            && page >= 1
            && (1..=MAX_PER_PAGE).contains(&per_page)
            && u64::from(page) * u64::from(per_page) > MAX_RESULT_WINDOW
        {
            invalid.push(InvalidParam::new(
                "page",
                format!("page * per_page must not exceed {MAX_RESULT_WINDOW}; page on with after"),
            ));
        }
        let sort = params.sort.unwrap_or(if text.is_some() {
            SearchSort::Relevance
        } else {
            SearchSort::Newest
        });
        if after.as_ref().is_some_and(|cursor| cursor.sort != sort) {
            invalid.push(InvalidParam::new("after", "belongs to another sort order"));
        }
        if params.after.is_some() && sort == SearchSort::Relevance {
            invalid.push(InvalidParam::new(
                "after",
                "pages by relevance go by page number; cursors need another sort",
            ));
        }
        if !invalid.is_empty() {
            return Err(invalid);
        }
        Ok(Self {
            text,
            category_id: params.category_id,
            brand_id: params.brand_id,
            min_price: params.min_price,
            max_price: params.max_price,
            status: params.status,
            sort,
            page,
            per_page,
            after,
        })
    }
}

/// One page of search hits, as the index holds them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchPage {
    pub total: u64,
    pub hits: Vec<SearchProduct>,
    /// Where the next page starts, when this one is full.
    pub next: Option<Cursor>,
}

/// A search hit as clients get it: the index document, with money as
/// two-decimal strings.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SearchItem {
    pub id: Uuid,
    pub sku: String,
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub short_description: Option<String>,
    pub category: Option<NamedRef>,
    pub brand: Option<NamedRef>,
    pub price: Decimal,
    pub regular_price: Decimal,
    pub sale_price: Option<Decimal>,
    pub currency: String,
    pub stock: i32,
    pub rating: Option<f32>,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub status: String,
    pub featured: bool,
    #[serde(rename = "createdAt")]
    pub created_at: DateTime<Utc>,
    #[serde(rename = "updatedAt")]
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<SearchProduct> for SearchItem {
    type Error = crate::money::NotMoney;

    fn try_from(doc: SearchProduct) -> Result<Self, Self::Error> {
        Ok(Self {
            price: money_from_f64(doc.price)?,
            regular_price: money_from_f64(doc.regular_price)?,
            sale_price: doc.sale_price.map(money_from_f64).transpose()?,
            id: doc.id,
            sku: doc.sku,
            slug: doc.slug,
            name: doc.name,
            description: doc.description,
            short_description: doc.short_description,
            category: doc.category,
            brand: doc.brand,
            currency: doc.currency,
            stock: doc.stock,
            rating: doc.rating,
            tags: doc.tags,
            attributes: doc.attributes,
            status: doc.status,
            featured: doc.featured,
            created_at: doc.created_at,
            updated_at: doc.updated_at,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub items: Vec<SearchItem>,
    pub total: u64,
    /// The page number asked for; 1 on a page reached with `after`.
    pub page: u32,
    pub per_page: u32,
    /// Pass as `after` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// `GET /v1/products`
#[utoipa::path(
    get,
    path = "/v1/products",
    tag = "products",
    operation_id = "search_products",
    summary = "Search products",
    description = "The public sees active products only (asking for another status is a 403); an admin \
        sees every status. On a fresh system without an index the answer is an empty page.",
    security((), ("bearerAuth" = [])),
    params(SearchParams),
    responses(
        (status = 200, description = "One page of matches", body = SearchResponse),
        (status = 403, response = Forbidden),
    ),
)]
#[tracing::instrument(name = "search_products", skip_all)]
pub async fn search_products(
    State(state): State<AppState>,
    viewer: Viewer,
    ApiQuery(params): ApiQuery<SearchParams>,
    read_after: ReadAfter,
) -> Result<Json<SearchResponse>, ApiError> {
    state.read_after(read_after, &[PRODUCT_SEARCH]).await?;
    let mut query = SearchQuery::try_from(params).map_err(ApiError::invalid_params)?;
    // The public sees what is on sale; an admin sees every status, or the
    // one asked for.
    if !viewer.is_admin() {
        match query.status {
            None | Some(ProductStatus::Active) => query.status = Some(ProductStatus::Active),
            Some(_) => {
                return Err(ApiError::forbidden(
                    "only admins may search products that are not active",
                ))
            }
        }
    }
    let (page, per_page) = (query.page, query.per_page);
    tracing::debug!(?query, "searching products");
    let found = state.search.search(query).await?;
    let items = found
        .hits
        .into_iter()
        .map(|doc| {
            let id = doc.id;
            SearchItem::try_from(doc).map_err(|e| {
                ApiError::Internal(
                    anyhow::Error::new(e)
                        .context(format!("search document {id} carries an invalid amount")),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    tracing::debug!(
        total = found.total,
        returned = items.len(),
        "products searched"
    );
    Ok(Json(SearchResponse {
        items,
        total: found.total,
        page,
        per_page,
        next_cursor: found.next.as_ref().map(Cursor::encode),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn params(query: &str) -> SearchParams {
        serde_urlencoded_from(query)
    }

    fn serde_urlencoded_from(query: &str) -> SearchParams {
        let uri: axum::http::Uri = format!("/v1/products?{query}").parse().unwrap();
        axum::extract::Query::<SearchParams>::try_from_uri(&uri)
            .unwrap()
            .0
    }

    #[test]
    fn defaults_depend_on_the_text() {
        let q = SearchQuery::try_from(params("")).unwrap();
        assert_eq!(q, SearchQuery::default());
        let q = SearchQuery::try_from(params("q=iphone")).unwrap();
        assert_eq!(q.sort, SearchSort::Relevance);
        assert_eq!(q.text.as_deref(), Some("iphone"));
        let q = SearchQuery::try_from(params("q=%20%20")).unwrap();
        assert_eq!(q.text, None);
        assert_eq!(q.sort, SearchSort::Newest);
    }

    #[test]
    fn everything_parses() {
        let q = SearchQuery::try_from(params(
            "q=phone&min_price=10.5&max_price=100&status=active&sort=price_desc&page=3&per_page=7",
        ))
        .unwrap();
        assert_eq!(q.min_price, Some(Decimal::from_str("10.5").unwrap()));
        assert_eq!(q.max_price, Some(Decimal::from(100)));
        assert_eq!(q.status, Some(ProductStatus::Active));
        assert_eq!(q.sort, SearchSort::PriceDesc);
        assert_eq!((q.page, q.per_page, q.offset()), (3, 7, 14));
    }

    #[test]
    fn bounds_are_checked() {
        let names = |query: &str| -> Vec<String> {
            SearchQuery::try_from(params(query))
                .unwrap_err()
                .into_iter()
                .map(|p| p.name)
                .collect()
        };
        assert_eq!(names("page=0"), ["page"]);
        assert_eq!(names("per_page=0"), ["per_page"]);
        assert_eq!(names("per_page=101"), ["per_page"]);
        assert_eq!(names("min_price=10&max_price=9.99"), ["min_price"]);
        assert_eq!(names("min_price=-1"), ["min_price"]);
        assert_eq!(names("page=101&per_page=100"), ["page"]);
        assert!(SearchQuery::try_from(params("page=100&per_page=100")).is_ok());
    }

    #[test]
    fn a_cursor_goes_past_the_page_window_and_keeps_its_sort() {
        let cursor = Cursor {
            sort: SearchSort::Newest,
            after: vec![
                serde_json::json!(1_700_000_000_000i64),
                serde_json::json!("id"),
            ],
        };
        let encoded = cursor.encode();
        assert_eq!(Cursor::decode(&encoded), Some(cursor.clone()));
        let q = SearchQuery::try_from(params(&format!("after={encoded}&per_page=100"))).unwrap();
        assert_eq!(q.after.as_ref(), Some(&cursor));
        let names = |query: String| -> Vec<String> {
            SearchQuery::try_from(params(&query))
                .unwrap_err()
                .into_iter()
                .map(|p| p.name)
                .collect()
        };
        assert_eq!(names("after=bm90LWEtY3Vyc29y".into()), ["after"]);
        assert_eq!(names(format!("after={encoded}&page=2")), ["page"]);
        assert_eq!(names(format!("after={encoded}&sort=price_asc")), ["after"]);
        let relevance = Cursor {
            sort: SearchSort::Relevance,
            ..cursor
        };
        assert_eq!(
            names(format!("q=x&after={}", relevance.encode())),
            ["after"]
        );
    }

    #[test]
    fn a_search_item_carries_money_as_strings() {
        let doc = SearchProduct {
            id: Uuid::nil(),
            sku: "S".into(),
            slug: "s".into(),
            name: "N".into(),
            description: None,
            short_description: None,
            category: None,
            brand: None,
            price: 35900.0,
            regular_price: 39900.0,
            sale_price: Some(12900.99),
            currency: "THB".into(),
            stock: 1,
            rating: None,
            tags: vec![],
            attributes: Default::default(),
            attribute_filters: vec![],
            status: "active".into(),
            featured: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let json = serde_json::to_value(SearchItem::try_from(doc).unwrap()).unwrap();
        assert_eq!(json["price"], "35900.00");
        assert_eq!(json["regular_price"], "39900.00");
        assert_eq!(json["sale_price"], "12900.99");
        assert!(json["createdAt"].is_string());
    }
}
