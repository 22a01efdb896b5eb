//! Orders (`read_model.orders` and `order_items`, the seed's tables, kept by
//! the `orders-tables` projection) and their reads: `GET /v1/me/orders`, the
//! signed-in user's own orders; `GET /v1/orders/{id}`, one order with its
//! lines, for its owner or an admin (a 404 for anyone else, so that nobody
//! learns that someone else's order exists); and `GET /v1/orders`, the
//! admin's listing with its filters.
//!
//! Both listings answer summaries: every column of the order, with
//! `item_count` (the sum of its lines' quantities) in place of the lines,
//! which the order by id lists. `admin_notes` are the shop's own: only an
//! admin reads them; anyone else gets null.

pub(crate) mod postgres;

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use domain::values::OrderNumber;
use infrastructure::consistency::ORDERS_TABLES;
use infrastructure::sessions::Session;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use postgres::PgOrdersReadModel;

use crate::auth::{Admin, SignedIn, ADMIN_ROLE};
use crate::catalog::{page_of, Items, Listed, Page};
use crate::consistency::ReadAfter;
use crate::error::{ApiError, InvalidParam, StoreError};
use crate::extract::{ApiPath, ApiQuery};
use crate::openapi::{Forbidden, NotFound};
use crate::startup::AppState;
use crate::BoxFuture;

/// The seed's `orders.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Processing,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Confirmed,
        Self::Processing,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
        Self::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Processing => "processing",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// The seed's `orders.payment_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Paid,
    Failed,
    Refunded,
    PartiallyRefunded,
}

impl PaymentStatus {
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Paid,
        Self::Failed,
        Self::Refunded,
        Self::PartiallyRefunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Failed => "failed",
            Self::Refunded => "refunded",
            Self::PartiallyRefunded => "partially_refunded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// An address as the order snapshotted it when it was placed (the seed's
/// `billing_address` and `shipping_address` JSONB). After the customer's
/// erasure it reads as the erased placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderAddressView {
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub company: Option<String>,
    pub street_address_1: String,
    #[serde(default)]
    pub street_address_2: Option<String>,
    pub city: String,
    pub state_province: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    #[serde(default)]
    pub phone: Option<String>,
}

/// An order: every column of the seed's `orders` row, money as two-decimal
/// strings, and how many items its lines hold.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    /// `ORD-{year}-{sequence}`, unique.
    pub order_number: String,
    /// Null once the customer's account is gone (the seed's `ON DELETE SET NULL`).
    pub user_id: Option<Uuid>,
    pub status: OrderStatus,
    /// The lines' total before any discount.
    pub subtotal: Decimal,
    pub tax_amount: Decimal,
    pub shipping_amount: Decimal,
    pub discount_amount: Decimal,
    /// `subtotal - discount_amount + shipping_amount + tax_amount`.
    pub total_amount: Decimal,
    pub currency: String,
    pub billing_address: OrderAddressView,
    pub shipping_address: OrderAddressView,
    pub shipping_method: Option<String>,
    pub tracking_number: Option<String>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub payment_status: PaymentStatus,
    pub payment_method: Option<String>,
    /// The customer's note.
    pub notes: Option<String>,
    /// The shop's internal notes: an admin's read only, null for anyone else.
    pub admin_notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The sum of the lines' quantities.
    pub item_count: i64,
}

/// One line of an order, as ordered: the seed's `order_items` row, a
/// snapshot that later catalog changes leave alone.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OrderItemView {
    pub id: Uuid,
    pub order_id: Uuid,
    /// Null once the product is gone from the catalog.
    pub product_id: Option<Uuid>,
    pub product_variant_id: Option<Uuid>,
    pub product_name: String,
    pub product_sku: String,
    pub product_image_url: Option<String>,
    pub unit_price: Decimal,
    pub quantity: i32,
    /// `unit_price * quantity`, before any discount.
    pub total_price: Decimal,
    /// The options chosen (`color`, `storage`, ...).
    pub product_options: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

/// An order with all its lines (by `created_at`, then `id`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OrderDetail {
    #[serde(flatten)]
    pub order: OrderView,
    pub items: Vec<OrderItemView>,
}

/// Filters of an order listing; `GET /v1/me/orders` sets `user_id` to the
/// reader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub user_id: Option<Uuid>,
    pub status: Option<OrderStatus>,
    pub payment_status: Option<PaymentStatus>,
    /// Inclusive: `created_at >= created_from`.
    pub created_from: Option<DateTime<Utc>>,
    /// Exclusive: `created_at < created_to`.
    pub created_to: Option<DateTime<Utc>>,
    /// Inclusive: `total_amount >= min_total`.
    pub min_total: Option<Decimal>,
    /// Inclusive: `total_amount <= max_total`.
    pub max_total: Option<Decimal>,
    pub order_number: Option<String>,
}

/// The listings' order: `created_at` descending (the newest first), then
/// `id` descending, which `idx_orders_created_at` serves. `created_at` is
/// the row's own, null when the row has none (such rows list first, as
/// PostgreSQL orders NULL in a descending sort).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderKey {
    pub created_at: Option<DateTime<Utc>>,
    pub id: Uuid,
}

/// Port: the orders as the projection left them.
pub trait OrdersReadModel: Send + Sync {
    /// Order summaries by `created_at`, then `id`, both descending, a page
    /// at a time.
    fn orders(
        &self,
        filter: OrderFilter,
        page: Page<OrderKey>,
    ) -> BoxFuture<'_, Result<Listed<OrderView, OrderKey>, StoreError>>;

    /// The order with its lines, or `None`. Whoever asks: the handler
    /// decides who may see it.
    fn order(&self, id: Uuid) -> BoxFuture<'_, Result<Option<OrderDetail>, StoreError>>;
}

/// A money amount of a filter: digits with at most two decimals, below
/// 10^8 as `DECIMAL(10,2)` holds (`100`, `76876.5`, `0.99`).
pub const AMOUNT_PATTERN: &str = r"^[0-9]{1,8}(\.[0-9]{1,2})?$";
/// `OrderNumber::parse`'s shape.
pub const ORDER_NUMBER_PATTERN: &str = r"^ORD-[0-9]{4}-[0-9]{6,18}$";

/// The query string of `GET /v1/me/orders`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MyOrderParams {
    #[param(inline)]
    pub status: Option<OrderStatus>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub after: Option<String>,
}

/// The query string of `GET /v1/orders`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderParams {
    #[param(inline)]
    pub status: Option<OrderStatus>,
    #[param(inline)]
    pub payment_status: Option<PaymentStatus>,
    /// An RFC 3339 instant: only orders created then or later. Percent-encode
    /// a `+` offset.
    pub created_from: Option<DateTime<Utc>>,
    /// An RFC 3339 instant: only orders created before then (exclusive).
    pub created_to: Option<DateTime<Utc>>,
    /// Only orders whose `total_amount` is at least this (digits, at most two
    /// decimals).
    #[param(pattern = r"^[0-9]{1,8}(\.[0-9]{1,2})?$", example = "1000.00")]
    pub min_total: Option<String>,
    /// Only orders whose `total_amount` is at most this.
    #[param(pattern = r"^[0-9]{1,8}(\.[0-9]{1,2})?$", example = "80000")]
    pub max_total: Option<String>,
    /// Only this customer's orders.
    pub user_id: Option<Uuid>,
    /// Exactly this order number.
    #[param(pattern = r"^ORD-[0-9]{4}-[0-9]{6,18}$", example = "ORD-2024-000123")]
    pub order_number: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub after: Option<String>,
}

/// A filter amount, or `None` when it is not one ([`AMOUNT_PATTERN`]).
fn amount(text: &str) -> Option<Decimal> {
    let (whole, cents) = match text.split_once('.') {
        Some((whole, cents)) => (whole, Some(cents)),
        None => (text, None),
    };
    let digits =
        |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole, 8) || !cents.is_none_or(|cents| digits(cents, 2)) {
        return None;
    }
    let mut amount = Decimal::from_str(text).ok()?;
    amount.rescale(2);
    Some(amount)
}

impl OrderParams {
    /// The filter these parameters ask for, or every parameter that is
    /// refused, with why.
    fn filter(&self) -> Result<OrderFilter, Vec<InvalidParam>> {
        let mut invalid = Vec::new();
        let mut money = |name: &str, text: Option<&str>| {
            let text = text?;
            let parsed = amount(text);
            if parsed.is_none() {
                invalid.push(InvalidParam::new(
                    name,
                    "is not an amount: digits, with at most two decimals (e.g. 1000.50)",
                ));
            }
            parsed
        };
        let min_total = money("min_total", self.min_total.as_deref());
        let max_total = money("max_total", self.max_total.as_deref());
        if let (Some(min), Some(max)) = (min_total, max_total) {
            if min > max {
                invalid.push(InvalidParam::new(
                    "max_total",
                    "must not be below min_total",
                ));
            }
        }
        if let (Some(from), Some(to)) = (self.created_from, self.created_to) {
            if from >= to {
                invalid.push(InvalidParam::new(
                    "created_to",
                    "must be after created_from (the range is created_from <= created_at < created_to)",
                ));
            }
        }
        let order_number = match self.order_number.as_deref() {
            None => None,
            Some(text) => match OrderNumber::parse(text) {
                Ok(number) => Some(number.as_str().to_owned()),
                Err(_) => {
                    invalid.push(InvalidParam::new(
                        "order_number",
                        "is not an order number (ORD-{year}-{sequence}, e.g. ORD-2024-000123)",
                    ));
                    None
                }
            },
        };
        if !invalid.is_empty() {
            return Err(invalid);
        }
        Ok(OrderFilter {
            user_id: self.user_id,
            status: self.status,
            payment_status: self.payment_status,
            created_from: self.created_from,
            created_to: self.created_to,
            min_total,
            max_total,
            order_number,
        })
    }
}

fn is_admin(session: &Session) -> bool {
    session.role == ADMIN_ROLE
}

impl OrderView {
    /// The order as `session` may read it: the admin notes are an admin's.
    fn shown_to(mut self, session: &Session) -> Self {
        if !is_admin(session) {
            self.admin_notes = None;
        }
        self
    }
}

/// `GET /v1/me/orders`: the reader's own orders.
#[utoipa::path(
    get,
    path = "/v1/me/orders",
    tag = "orders",
    operation_id = "list_my_orders",
    summary = "Your orders",
    description = "The newest first (`created_at`, then `id`, both descending), a page at a time. Each \
        item is the order without its lines, with `item_count`; `GET /v1/orders/{id}` lists the lines.",
    security(("bearerAuth" = [])),
    params(MyOrderParams),
    responses(
        (status = 200, description = "One page", body = Items<OrderView>),
    ),
)]
#[tracing::instrument(name = "list_my_orders", skip_all, fields(user_id = %session.user_id))]
pub async fn list_my_orders(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    ApiQuery(params): ApiQuery<MyOrderParams>,
    read_after: ReadAfter,
) -> Result<Json<Items<OrderView>>, ApiError> {
    let page = page_of(params.limit, params.after.as_deref())?;
    let filter = OrderFilter {
        user_id: Some(session.user_id),
        status: params.status,
        ..OrderFilter::default()
    };
    state.read_after(read_after, &[ORDERS_TABLES]).await?;
    let listed = state.orders.orders(filter, page).await?;
    let listed = Listed {
        items: listed
            .items
            .into_iter()
            .map(|order| order.shown_to(&session))
            .collect(),
        next: listed.next,
    };
    Ok(Json(Items::of(listed)))
}

/// `GET /v1/orders/{id}`: for its owner or an admin.
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    tag = "orders",
    operation_id = "get_order",
    summary = "One order, with its lines",
    description = "For the customer who placed it, or an admin; for anyone else it does not exist (404). \
        The lines by `created_at`, then `id`.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "The order", body = OrderDetail),
        (status = 404, response = NotFound),
    ),
)]
#[tracing::instrument(name = "get_order", skip(state, session), fields(user_id = %session.user_id))]
pub async fn get_order(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    ApiPath(id): ApiPath<Uuid>,
    read_after: ReadAfter,
) -> Result<Json<OrderDetail>, ApiError> {
    state.read_after(read_after, &[ORDERS_TABLES]).await?;
    let found = state
        .orders
        .order(id)
        .await?
        .filter(|detail| is_admin(&session) || detail.order.user_id == Some(session.user_id));
    match found {
        Some(detail) => Ok(Json(OrderDetail {
            order: detail.order.shown_to(&session),
            items: detail.items,
        })),
        // Someone else's order is answered exactly as a missing one.
        None => Err(ApiError::not_found(format!("order {id} does not exist"))),
    }
}

/// `GET /v1/orders` (admin): everyone's orders, filtered.
#[utoipa::path(
    get,
    path = "/v1/orders",
    tag = "orders",
    operation_id = "list_orders",
    summary = "List orders",
    description = "The newest first (`created_at`, then `id`, both descending), a page at a time, by \
        status, payment status, creation time (`created_from <= created_at < created_to`), total \
        (`min_total <= total_amount <= max_total`), customer and order number; the filters combine. \
        Each item is the order without its lines, with `item_count`.",
    security(("bearerAuth" = [])),
    params(OrderParams),
    responses(
        (status = 200, description = "One page", body = Items<OrderView>),
        (status = 403, response = Forbidden),
    ),
)]
#[tracing::instrument(name = "list_orders", skip(state, _admin, params))]
pub async fn list_orders(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(params): ApiQuery<OrderParams>,
    read_after: ReadAfter,
) -> Result<Json<Items<OrderView>>, ApiError> {
    let page = page_of(params.limit, params.after.as_deref());
    let filter = params.filter();
    let (page, filter) = match (page, filter) {
        (Ok(page), Ok(filter)) => (page, filter),
        (page, filter) => {
            let mut invalid = filter.err().unwrap_or_default();
            if let Err(ApiError::BadRequest { invalid_params, .. }) = page {
                invalid.extend(invalid_params);
            }
            return Err(ApiError::invalid_params(invalid));
        }
    };
    state.read_after(read_after, &[ORDERS_TABLES]).await?;
    let listed = state.orders.orders(filter, page).await?;
    tracing::debug!(count = listed.items.len(), "orders listed");
    Ok(Json(Items::of(listed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Result<OrderParams, String> {
        let uri: axum::http::Uri = format!("/v1/orders?{query}").parse().unwrap();
        axum::extract::Query::<OrderParams>::try_from_uri(&uri)
            .map(|query| query.0)
            .map_err(|rejection| rejection.body_text())
    }

    fn refused(query: &str) -> Vec<String> {
        match params(query) {
            Err(_) => vec!["query".to_owned()],
            Ok(params) => params
                .filter()
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|p| p.name)
                .collect(),
        }
    }

    #[test]
    fn the_filters_parse_by_their_seed_names() {
        let filter = params(
            "status=shipped&payment_status=partially_refunded&created_from=2024-01-01T00:00:00Z\
             &created_to=2024-02-01T00:00:00Z&min_total=100&max_total=76876.5\
             &user_id=0192f6a4-1111-7000-8000-000000000001&order_number=ORD-2024-000123",
        )
        .unwrap()
        .filter()
        .unwrap();
        assert_eq!(filter.status, Some(OrderStatus::Shipped));
        assert_eq!(
            filter.payment_status,
            Some(PaymentStatus::PartiallyRefunded)
        );
        assert_eq!(filter.min_total.unwrap().to_string(), "100.00");
        assert_eq!(filter.max_total.unwrap().to_string(), "76876.50");
        assert_eq!(filter.order_number.as_deref(), Some("ORD-2024-000123"));
        assert_eq!(
            filter.created_to.unwrap().to_rfc3339(),
            "2024-02-01T00:00:00+00:00"
        );
        assert_eq!(
            filter.user_id.unwrap().to_string(),
            "0192f6a4-1111-7000-8000-000000000001"
        );
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (query, name) in [
            ("status=lost", "query"),
            ("payment_status=paid_twice", "query"),
            ("created_from=yesterday", "query"),
            ("user_id=42", "query"),
            ("total=5", "query"),
            ("min_total=abc", "min_total"),
            ("min_total=-5", "min_total"),
            ("min_total=1.005", "min_total"),
            ("min_total=1e3", "min_total"),
            ("min_total=1_000", "min_total"),
            ("min_total=.5", "min_total"),
            ("max_total=123456789", "max_total"),
            ("max_total=", "max_total"),
            ("min_total=10&max_total=9.99", "max_total"),
            (
                "created_from=2024-02-01T00:00:00Z&created_to=2024-02-01T00:00:00Z",
                "created_to",
            ),
            ("order_number=ORD-2024-1", "order_number"),
            ("order_number=ord-2024-000123", "order_number"),
            ("order_number=%20ORD-2024-000123", "order_number"),
        ] {
            assert_eq!(refused(query), vec![name.to_owned()], "{query}");
        }
        assert!(refused("min_total=10&max_total=10").is_empty());
    }

    #[test]
    fn the_amount_check_is_its_pattern() {
        for good in ["0", "1", "99999999.99", "100.5", "007"] {
            assert!(amount(good).is_some(), "{good}");
        }
        for bad in ["", "1.", "+1", "1.234", "999999999", "1,5", " 1"] {
            assert!(amount(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_contract_states_the_patterns_the_api_checks() {
        let document = crate::openapi::document();
        let parameters = document["paths"]["/v1/orders"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .clone();
        let pattern = |name: &str| {
            parameters
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{name} is a parameter"))["schema"]["pattern"]
                .clone()
        };
        assert_eq!(pattern("min_total"), AMOUNT_PATTERN);
        assert_eq!(pattern("max_total"), AMOUNT_PATTERN);
        assert_eq!(pattern("order_number"), ORDER_NUMBER_PATTERN);
    }

    #[test]
    fn the_seed_names_round_trip() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(OrderStatus::parse("lost"), None);
    }
}
