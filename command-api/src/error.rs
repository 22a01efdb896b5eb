//! The one error type of the API and the one place where every failure is
//! mapped to an HTTP status: domain rejections, event store failures, axum's
//! own extractor rejections and bare status codes all become an RFC 9457
//! `application/problem+json` document with a stable `type` URI.
//!
//! | status | when |
//! |---|---|
//! | 400 | malformed input: bad JSON, unknown fields, wrong types, invalid values |
//! | 401 | no session where one is needed, a bearer token naming none, wrong credentials |
//! | 403 | a session without the right (a customer on an admin route, a suspended account logging in) |
//! | 404 | unknown aggregate (an erased user, an address not in the user's book), unknown route |
//! | 405 | known route, wrong method |
//! | 409 | version conflict (concurrent writes still conflicting after the retries); an email or phone another account holds |
//! | 412 | a false `If-Match` or `If-None-Match` |
//! | 413 | body above `http.body_limit_bytes` |
//! | 415 | body that is not JSON |
//! | 422 | business rule broken; idempotency key reused for another request |
//! | 429 | over a rate limit (with `Retry-After`) |
//! | 500 | anything else (opaque; the cause chain is logged once) |
//! | 503 | no database connection free in time (with `Retry-After`); the session store does not answer; the database does not answer (health) |

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::cart::CartError;
use domain::catalog::{BrandError, CategoryError, InvalidDimension, ProductError};
use domain::inventory::InventoryError;
use domain::order::{CancellationError, CheckoutError, OrderError};
use domain::payment::PaymentError;
use domain::promotion::{CouponError, PromotionError};
use domain::user::{PasswordError, UserError};
use domain::values::ValueError;
use infrastructure::event_store::EventStoreError;
use infrastructure::personal_data::PersonalDataError;
use infrastructure::relay::error_chain;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::request::etag;

/// Every problem `type` is this base followed by a stable kebab-case name.
pub const PROBLEM_TYPE_BASE: &str = "https://errors.ecommerce.local/";
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
/// What a 503 for a busy connection pool asks the client to wait: the pool
/// already waited `acquire_timeout_seconds`, so the burst is passing or the
/// service is overloaded; either way an immediate retry would only add to it.
pub const BUSY_RETRY_AFTER_SECONDS: u32 = 1;

/// One invalid input field, as listed in a 400's `errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl ToString) -> Self {
        Self {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

/// A failed request: the problem document it answers with, and for a 500
/// the cause, which is logged and never shown.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    // Boxed: with serde_json's `preserve_order` (enabled in this workspace) a Map is large.
    extensions: Box<Map<String, Value>>,
    /// Response headers the problem needs (`Retry-After`, `ETag`).
    headers: Vec<(HeaderName, HeaderValue)>,
    cause: Option<anyhow::Error>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            title,
            detail: detail.into(),
            extensions: Box::default(),
            headers: Vec::new(),
            cause: None,
        }
    }

    fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds an extension member (an offending value, a current version...).
    pub fn with(mut self, key: &str, value: impl serde::Serialize) -> Self {
        self.extensions.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    // ---- 400 -------------------------------------------------------------

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "validation",
            "Invalid request",
            detail,
        )
    }

    /// A 400 listing every invalid field.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        let errors: Vec<Value> = errors
            .into_iter()
            .map(|e| json!({ "field": e.field, "message": e.message }))
            .collect();
        Self::bad_request(detail).with("errors", errors)
    }

    pub fn invalid_field(field: &str, message: impl ToString) -> Self {
        Self::invalid_fields(vec![FieldError::new(field, message)])
    }

    pub fn invalid_header(name: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-header",
            "Invalid request header",
            message,
        )
        .with("header", name)
    }

    // ---- 404 / 405 / 413 / 415 ------------------------------------------

    pub fn not_found(resource: &str, id: impl ToString) -> Self {
        let id = id.to_string();
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Resource not found",
            format!("{resource} {id} does not exist"),
        )
        .with("resource", resource)
        .with("id", id)
    }

    pub fn route_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Resource not found",
            "no route matches this path",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this path does not accept this method; see the Allow header",
        )
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Request body too large",
            "the request body exceeds the configured limit",
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "the request body must be JSON: send Content-Type: application/json",
        )
    }

    // ---- 412 ---------------------------------------------------------------

    /// The condition of `header` (`If-Match`, `If-None-Match`) is false for
    /// the resource at `current` (`None`: it does not exist). The problem and
    /// the `ETag` header name the current ETag, so the client can reload.
    pub fn precondition_failed(header: &'static str, current: Option<i64>) -> Self {
        let detail = match current {
            Some(version) => format!(
                "{header} does not hold: the resource's current ETag is {}",
                etag(version)
            ),
            None => format!("{header} does not hold: the resource does not exist"),
        };
        let error = Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            "Precondition failed",
            detail,
        )
        .with("header", header)
        .with("current_etag", current.map(etag));
        match current.and_then(|version| HeaderValue::from_str(&etag(version)).ok()) {
            Some(value) => error.with_header(header::ETAG, value),
            None => error,
        }
    }

    // ---- 422 ---------------------------------------------------------------

    pub(crate) fn rule(kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, kind, title, detail)
    }

    /// A referenced aggregate (`category_id`, `brand_id`, `parent_id`) does not exist.
    pub fn missing_reference(field: &'static str, resource: &str, id: Uuid) -> Self {
        let kind = match resource {
            "category" if field == "parent_id" => "parent-category-not-found",
            "category" => "category-not-found",
            "brand" => "brand-not-found",
            _ => "reference-not-found",
        };
        Self::rule(
            kind,
            "Referenced resource not found",
            format!("{field} refers to {resource} {id}, which does not exist"),
        )
        .with("field", field)
        .with(field, id)
    }

    /// A create named an id that another kind of aggregate already uses.
    pub fn id_in_use(resource: &str, id: Uuid) -> Self {
        Self::rule(
            "already-exists",
            "Resource already exists",
            format!("id {id} is already used by another resource, not a {resource}"),
        )
        .with("id", id)
    }

    pub fn idempotency_key_reused(key: &str) -> Self {
        Self::rule(
            "idempotency-key-reused",
            "Idempotency key reused",
            "this Idempotency-Key was already used for a different request",
        )
        .with("idempotency_key", crate::request::client_key(key))
    }

    // ---- 401, 403 ----------------------------------------------------------

    /// No session, or credentials that name none (RFC 6750 §3).
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            detail,
        )
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// Wrong email or password: one answer for both, so that nobody learns
    /// which emails have accounts.
    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            "Invalid credentials",
            "the email or the password is wrong",
        )
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// The current password given to change a credential is wrong: the
    /// problem of a failed login, told apart only by its detail.
    pub fn wrong_password() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            "Invalid credentials",
            "the current password is wrong",
        )
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    // ---- 429 ---------------------------------------------------------------

    pub fn rate_limited(retry_after_seconds: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!("too many requests; retry in {retry_after_seconds} s"),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds))
    }

    // ---- 5xx ---------------------------------------------------------------

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            "the request could not be completed; it has been logged",
        );
        error.cause = Some(cause.into());
        error
    }

    pub fn service_unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// No database connection came free within the pool's acquire timeout:
    /// the request did nothing, and may be retried after `Retry-After`.
    pub fn database_busy() -> Self {
        Self::service_unavailable(
            "every database connection is busy; nothing was done, retry after Retry-After seconds",
        )
        .with_header(
            header::RETRY_AFTER,
            HeaderValue::from(BUSY_RETRY_AFTER_SECONDS),
        )
    }

    /// The problem for a bare error status some layer produced without a
    /// problem body (tower-http's 413, axum's 405, a timeout...).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Self::bad_request("the request is malformed"),
            StatusCode::NOT_FOUND => Self::route_not_found(),
            StatusCode::METHOD_NOT_ALLOWED => Self::method_not_allowed(),
            StatusCode::PAYLOAD_TOO_LARGE => Self::payload_too_large(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::unsupported_media_type(),
            StatusCode::REQUEST_TIMEOUT => Self::new(
                status,
                "request-timeout",
                "Request timeout",
                "the request took too long",
            ),
            // The request timeout's answer (see `app::router`).
            StatusCode::SERVICE_UNAVAILABLE => {
                Self::service_unavailable("the request did not complete in time; retry later")
            }
            status if status.is_server_error() => Self::new(
                status,
                "internal",
                "Internal server error",
                "the request could not be completed",
            ),
            status => Self::new(
                status,
                "http-error",
                status.canonical_reason().unwrap_or("Error"),
                status.canonical_reason().unwrap_or("request failed"),
            ),
        }
    }

    /// The problem document (without `instance`, which the request layer adds).
    pub fn to_problem(&self) -> Value {
        // Extensions first, so that they can never shadow a standard member.
        let mut body = (*self.extensions).clone();
        body.insert(
            "type".into(),
            Value::String(format!("{PROBLEM_TYPE_BASE}{}", self.kind)),
        );
        body.insert("title".into(), Value::String(self.title.to_owned()));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), Value::String(self.detail.clone()));
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.kind, self.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            let chain = error_chain(cause.as_ref());
            tracing::error!(error = %chain, "request failed");
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(kind = self.kind, detail = %self.detail, "request shed");
        } else if self.status.is_server_error() {
            tracing::error!(
                status = self.status.as_u16(),
                kind = self.kind,
                "request failed"
            );
        } else {
            tracing::debug!(status = self.status.as_u16(), kind = self.kind, detail = %self.detail, "request refused");
        }
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

// ---- axum rejections --------------------------------------------------------

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => shape_error(source_text(&e)),
            JsonRejection::JsonSyntaxError(e) => Self::bad_request(format!(
                "the request body is not valid JSON: {}",
                source_text(&e)
            )),
            JsonRejection::MissingJsonContentType(_) => Self::unsupported_media_type(),
            JsonRejection::BytesRejection(e) => e.into(),
            other => Self::from_status(other.status()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::payload_too_large()
        } else {
            Self::bad_request(format!(
                "the request body could not be read: {}",
                rejection.body_text()
            ))
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        match rejection {
            PathRejection::FailedToDeserializePathParams(e) => {
                Self::bad_request(format!("invalid path parameter: {}", e.body_text()))
            }
            other => Self::internal(anyhow::anyhow!(other.body_text())),
        }
    }
}

/// A body of the wrong shape; serde's `path: reason` becomes an `errors` entry.
fn shape_error(text: String) -> ApiError {
    let error = ApiError::bad_request(format!(
        "the request body does not match the expected shape: {text}"
    ));
    match text.split_once(": ") {
        Some((path, message))
            if path != "."
                && !path.is_empty()
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']')) =>
        {
            error.with("errors", [json!({ "field": path, "message": message })])
        }
        _ => error,
    }
}

/// The innermost message of an error (serde's "field: reason at line...").
fn source_text(error: &dyn std::error::Error) -> String {
    let mut innermost = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        innermost = cause.to_string();
        source = cause.source();
    }
    innermost
}

// ---- domain and store errors ---------------------------------------------------

/// The field a refused value belongs to, when the value names it.
fn value_field(error: &ValueError) -> &'static str {
    match error {
        ValueError::Text { field, .. } => field,
        ValueError::Email(_) => "email",
        ValueError::Phone(_) => "phone",
        ValueError::Sku(_) => "sku",
        ValueError::Slug(_) => "slug",
        ValueError::Currency(_) => "currency",
        ValueError::Country(_) => "country",
        ValueError::Money(_) | ValueError::Price(_) => "amount",
        ValueError::Quantity(_) => "quantity",
        ValueError::Rating(_) => "rating",
        ValueError::CouponCode(_) => "coupon_code",
        ValueError::OrderNumber(_) => "order_number",
        ValueError::PaymentMethod(_) => "payment_method",
        ValueError::Url(_) => "url",
        ValueError::Role(_) => "role",
        ValueError::BlindIndex { .. } => "blind_index",
        ValueError::OneTimeCode { .. } => "code",
    }
}

impl From<ValueError> for ApiError {
    fn from(error: ValueError) -> Self {
        Self::invalid_field(value_field(&error), &error)
    }
}

impl From<InvalidDimension> for ApiError {
    fn from(error: InvalidDimension) -> Self {
        Self::invalid_field("dimension", error)
    }
}

fn slug_taken(slug: &impl std::fmt::Display, detail: String) -> ApiError {
    ApiError::rule("slug-taken", "Slug already taken", detail).with("slug", slug.to_string())
}

fn already_exists(resource: &str, id: Uuid, detail: String) -> ApiError {
    ApiError::rule("already-exists", "Resource already exists", detail)
        .with("resource", resource)
        .with("id", id)
}

impl From<ProductError> for ApiError {
    fn from(error: ProductError) -> Self {
        let detail = error.to_string();
        match error {
            ProductError::NotFound => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Resource not found",
                detail,
            ),
            ProductError::AlreadyExists { product_id } => {
                already_exists("product", product_id, detail)
            }
            ProductError::Archived { product_id } => {
                Self::rule("product-archived", "Product archived", detail)
                    .with("product_id", product_id)
            }
            ProductError::SkuTaken { sku } => {
                Self::rule("sku-taken", "SKU already taken", detail).with("sku", sku)
            }
            ProductError::SlugTaken { slug } => slug_taken(&slug, detail),
            ProductError::SalePriceNotBelowRegular {
                sale_price,
                regular_price,
            } => Self::rule(
                "sale-price-not-below-regular",
                "Sale price not below regular price",
                detail,
            )
            .with("sale_price", sale_price)
            .with("regular_price", regular_price),
            ProductError::NegativeStockQuantity { .. } => {
                Self::invalid_field("stock_quantity", detail)
            }
            ProductError::NegativeLowStockThreshold { .. } => {
                Self::invalid_field("low_stock_threshold", detail)
            }
            ProductError::InvalidStatusTransition { from, to, .. } => Self::rule(
                "invalid-status-transition",
                "Invalid status transition",
                detail,
            )
            .with("from", from)
            .with("to", to),
            ProductError::StatusUnchanged { status, .. } => {
                Self::rule("status-unchanged", "Status unchanged", detail)
                    .with("product_status", status)
            }
            ProductError::ActivationRequiresCategory { .. }
            | ProductError::CategoryRequiredWhileActive { .. } => {
                Self::rule("category-required", "Category required", detail)
            }
            ProductError::FeaturedRequiresActive { status, .. } => Self::rule(
                "featured-requires-active",
                "Only active products can be featured",
                detail,
            )
            .with("product_status", status),
            ProductError::AlreadyFeatured { .. } | ProductError::NotFeatured { .. } => {
                Self::rule("featured-unchanged", "Featured flag unchanged", detail)
            }
            ProductError::ImageNotFound { .. }
            | ProductError::VariantNotFound { .. }
            | ProductError::AttributeNotFound { .. } => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Resource not found",
                detail,
            ),
            ProductError::ImageAlreadyExists { .. } | ProductError::VariantAlreadyExists { .. } => {
                Self::rule("already-exists", "Resource already exists", detail)
            }
            ProductError::ImageAlreadyPrimary { .. } => {
                Self::rule("image-already-primary", "Image already primary", detail)
            }
            ProductError::ImageOrderMismatch { .. } => {
                Self::rule("image-order-mismatch", "Image order mismatch", detail)
            }
            ProductError::DuplicateVariantAttributeName { .. } => {
                Self::invalid_field("attributes", detail)
            }
            ProductError::VariantAttributesTaken { .. } => Self::rule(
                "variant-attributes-taken",
                "Variant attributes already used",
                detail,
            ),
            ProductError::VariantAlreadyActive { .. }
            | ProductError::VariantAlreadyInactive { .. } => {
                Self::rule("active-unchanged", "Active flag unchanged", detail)
            }
            ProductError::InvalidValue(value) => value.into(),
        }
    }
}

impl From<CategoryError> for ApiError {
    fn from(error: CategoryError) -> Self {
        let detail = error.to_string();
        match error {
            CategoryError::NotFound => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Resource not found",
                detail,
            ),
            CategoryError::AlreadyExists { category_id } => {
                already_exists("category", category_id, detail)
            }
            CategoryError::SlugTaken { slug } => slug_taken(&slug, detail),
            CategoryError::WouldCreateCycle { new_parent_id, .. } => {
                Self::rule("category-cycle", "Category tree cycle", detail)
                    .with("parent_id", new_parent_id)
            }
            CategoryError::ParentUnchanged { .. } => {
                Self::rule("parent-unchanged", "Parent unchanged", detail)
            }
            CategoryError::AlreadyActive { .. } | CategoryError::AlreadyInactive { .. } => {
                Self::rule("active-unchanged", "Active flag unchanged", detail)
            }
            CategoryError::InvalidValue(value) => value.into(),
        }
    }
}

impl From<BrandError> for ApiError {
    fn from(error: BrandError) -> Self {
        let detail = error.to_string();
        match error {
            BrandError::NotFound => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Resource not found",
                detail,
            ),
            BrandError::AlreadyExists { brand_id } => already_exists("brand", brand_id, detail),
            BrandError::SlugTaken { slug } => slug_taken(&slug, detail),
            BrandError::AlreadyActive { .. } | BrandError::AlreadyInactive { .. } => {
                Self::rule("active-unchanged", "Active flag unchanged", detail)
            }
            BrandError::InvalidValue(value) => value.into(),
        }
    }
}

impl From<InventoryError> for ApiError {
    fn from(error: InventoryError) -> Self {
        let detail = error.to_string();
        match error {
            // A sku with stock already is a sku someone holds.
            InventoryError::AlreadyInitialized { sku } => {
                Self::rule("sku-taken", "SKU already taken", detail).with("sku", sku)
            }
            InventoryError::NegativeQuantity { .. } => {
                Self::invalid_field("stock_quantity", detail)
            }
            InventoryError::NegativeThreshold { .. } => {
                Self::invalid_field("low_stock_threshold", detail)
            }
            InventoryError::NotInitialized => Self::internal(error),
            InventoryError::ZeroAdjustment { .. } => Self::invalid_field("delta", detail),
            InventoryError::InsufficientStock { .. } => {
                Self::rule("insufficient-stock", "Insufficient stock", detail)
            }
            InventoryError::StockLimitExceeded { .. } => {
                Self::rule("stock-limit-exceeded", "Stock limit exceeded", detail)
            }
            InventoryError::ReservationMismatch { .. }
            | InventoryError::ReservationReleased { .. } => {
                Self::rule("reservation-conflict", "Reservation conflict", detail)
            }
            InventoryError::InvalidValue(value) => value.into(),
        }
    }
}

impl From<CartError> for ApiError {
    fn from(error: CartError) -> Self {
        let detail = error.to_string();
        match error {
            CartError::NotOpened | CartError::LineNotFound { .. } => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Resource not found",
                detail,
            ),
            CartError::AlreadyOpened { cart_id } => already_exists("cart", cart_id, detail),
            CartError::OwnerHasActiveCart { cart_id } => Self::new(
                StatusCode::CONFLICT,
                "cart-exists",
                "An active cart exists",
                detail,
            )
            .with("cart_id", cart_id),
            CartError::ProductNotAvailable { product_id } => {
                Self::rule("product-unavailable", "Product unavailable", detail)
                    .with("product_id", product_id)
            }
            CartError::QuantityAboveLimit { max, .. } => {
                Self::rule("quantity-above-limit", "Quantity above the limit", detail)
                    .with("max", max)
            }
            CartError::InvalidOption { .. } => Self::invalid_field("options", detail),
            CartError::AmountOutOfRange { .. } => {
                Self::rule("amount-out-of-range", "Amount out of range", detail)
            }
            CartError::Empty => Self::rule("cart-empty", "Cart empty", detail),
            CartError::AlreadyCheckedOut { order_id } => {
                Self::rule("cart-checked-out", "Cart checked out", detail)
                    .with("order_id", order_id)
            }
            CartError::Expired { expires_at } => {
                Self::rule("cart-expired", "Cart expired", detail).with("expires_at", expires_at)
            }
            CartError::NotYetExpired { .. } => {
                Self::rule("cart-not-expired", "Cart not expired", detail)
            }
            CartError::Merged { into_cart_id } => {
                Self::rule("cart-merged", "Cart merged", detail).with("into_cart_id", into_cart_id)
            }
            CartError::NotAGuestCart { .. }
            | CartError::NotAUserCart { .. }
            | CartError::MergeIntoItself { .. } => {
                Self::rule("cart-merge-refused", "Cart merge refused", detail)
            }
        }
    }
}

impl From<PaymentError> for ApiError {
    fn from(error: PaymentError) -> Self {
        let detail = error.to_string();
        match error {
            PaymentError::NotInitiated => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Resource not found",
                detail,
            ),
            PaymentError::AlreadyInitiated { payment_id } => {
                already_exists("payment", payment_id, detail)
            }
            PaymentError::InvalidValue(value) => value.into(),
            PaymentError::AmountMismatch { .. } | PaymentError::CurrencyMismatch { .. } => {
                Self::rule("payment-amount-mismatch", "Payment amount mismatch", detail)
            }
            PaymentError::ActivePaymentExists { order_id } => {
                Self::rule("payment-exists", "A payment is under way", detail)
                    .with("order_id", order_id)
            }
            PaymentError::ProviderResultConflict { .. } => Self::new(
                StatusCode::CONFLICT,
                "payment-report-conflict",
                "Contradicting provider report",
                detail,
            ),
            PaymentError::InvalidTransition { from, to } => Self::rule(
                "invalid-status-transition",
                "Invalid status transition",
                detail,
            )
            .with("from", from)
            .with("to", to),
            PaymentError::InvalidRefundAmount { .. } => Self::invalid_field("amount", detail),
            PaymentError::NotRefundable { status } => {
                Self::rule("payment-not-refundable", "Payment not refundable", detail)
                    .with("payment_status", status)
            }
            PaymentError::RefundExceedsCaptured {
                requested,
                refundable,
            } => Self::rule(
                "refund-exceeds-captured",
                "Refund above what was captured",
                detail,
            )
            .with("requested", requested.amount())
            .with("refundable", refundable.amount()),
            PaymentError::DuplicateRefund { refund_id, .. } => {
                already_exists("refund", refund_id, detail)
            }
            PaymentError::UnknownRefund { .. } => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Resource not found",
                detail,
            ),
            PaymentError::RefundAlreadySettled { .. } => Self::new(
                StatusCode::CONFLICT,
                "refund-report-conflict",
                "Contradicting refund report",
                detail,
            ),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> Self {
        let detail = error.to_string();
        match error {
            OrderError::NotPlaced => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Resource not found",
                detail,
            ),
            OrderError::InvalidTransition { from, to } => Self::rule(
                "invalid-status-transition",
                "Invalid status transition",
                detail,
            )
            .with("from", from)
            .with("to", to),
            OrderError::ZeroAmount => Self::invalid_field("amount", detail),
            OrderError::UnknownPayment { .. } | OrderError::PaymentAlreadyCaptured { .. } => {
                Self::rule("payment-conflict", "Payment conflict", detail)
            }
            OrderError::RefundExceedsCaptured { refundable, .. } => Self::rule(
                "refund-exceeds-captured",
                "Refund above what was captured",
                detail,
            )
            .with("refundable", refundable.amount()),
            OrderError::AmountOutOfRange { .. } => {
                Self::rule("amount-out-of-range", "Amount out of range", detail)
            }
        }
    }
}

impl From<CancellationError> for ApiError {
    fn from(error: CancellationError) -> Self {
        match error {
            CancellationError::Order { error } => error.into(),
            CancellationError::Inventory { error } => error.into(),
            CancellationError::Coupon { error } => error.into(),
            CancellationError::Promotion { error } => error.into(),
            // The command side loads every stream the order names.
            error @ (CancellationError::InventoryMissing { .. }
            | CancellationError::CouponMissing { .. }
            | CancellationError::PromotionMissing { .. }) => Self::internal(error),
        }
    }
}

impl From<CheckoutError> for ApiError {
    fn from(error: CheckoutError) -> Self {
        let detail = error.to_string();
        match error {
            CheckoutError::CartNotActive { status } => {
                Self::rule("cart-not-active", "Cart not active", detail).with("cart_status", status)
            }
            CheckoutError::EmptyCart => Self::rule("cart-empty", "Cart empty", detail),
            CheckoutError::UserCannotOrder { .. } => {
                Self::rule("account-cannot-order", "Account cannot order", detail)
            }
            CheckoutError::ProductUnavailable { sku } => {
                Self::rule("product-unavailable", "Product unavailable", detail)
                    .with("sku", sku.as_str())
            }
            CheckoutError::PriceChanged {
                sku,
                expected,
                current,
            } => Self::new(
                StatusCode::CONFLICT,
                "price-changed",
                "Price changed",
                detail,
            )
            .with("sku", sku.as_str())
            .with("expected", expected.amount())
            .with("current", current.amount()),
            CheckoutError::TotalChanged { expected, current } => Self::new(
                StatusCode::CONFLICT,
                "total-changed",
                "Total changed",
                detail,
            )
            .with("expected", expected.amount())
            .with("current", current.amount()),
            CheckoutError::InsufficientStock {
                sku,
                requested,
                available,
            } => Self::rule("insufficient-stock", "Out of stock", detail)
                .with("sku", sku.as_str())
                .with("requested", requested)
                .with("available", available),
            CheckoutError::ShippingAddressMissing => Self::rule(
                "shipping-address-required",
                "Shipping address required",
                detail,
            ),
            CheckoutError::ShippingMethodMissing => Self::rule(
                "shipping-method-required",
                "Shipping method required",
                detail,
            ),
            CheckoutError::CouponNotFound { code } => {
                Self::rule("coupon-not-found", "Coupon not found", detail)
                    .with("code", code.to_string())
            }
            CheckoutError::CouponInactive { code } => {
                Self::rule("coupon-inactive", "Coupon inactive", detail)
                    .with("code", code.to_string())
            }
            CheckoutError::CouponNotYetValid { code, starts_at } => {
                Self::rule("coupon-not-yet-valid", "Coupon not yet valid", detail)
                    .with("code", code.to_string())
                    .with("starts_at", starts_at)
            }
            CheckoutError::CouponExpired { code } => {
                Self::rule("coupon-expired", "Coupon expired", detail)
                    .with("code", code.to_string())
            }
            CheckoutError::CouponLimitReached { code, limit } => {
                Self::rule("coupon-usage-limit-reached", "Coupon used up", detail)
                    .with("code", code.to_string())
                    .with("limit", limit)
            }
            CheckoutError::CouponPerUserLimitReached { code, limit } => Self::rule(
                "coupon-per-user-limit-reached",
                "Coupon used up for this customer",
                detail,
            )
            .with("code", code.to_string())
            .with("limit", limit),
            CheckoutError::CouponMinimumNotMet {
                code,
                minimum,
                subtotal,
            } => Self::rule("coupon-minimum-not-met", "Coupon minimum not met", detail)
                .with("code", code.to_string())
                .with("minimum", minimum.amount())
                .with("subtotal", subtotal.amount()),
            CheckoutError::CouponNotApplicable { code } => {
                Self::rule("coupon-not-applicable", "Coupon not applicable", detail)
                    .with("code", code.to_string())
            }
            CheckoutError::AmountOutOfRange { .. } => {
                Self::rule("amount-out-of-range", "Amount out of range", detail)
            }
            CheckoutError::Inventory { error } => error.into(),
            CheckoutError::Cart { error } => error.into(),
            CheckoutError::Coupon { error } => error.into(),
            CheckoutError::Promotion { error } => error.into(),
            // The command side's own mistakes.
            CheckoutError::InventoryMissing { .. }
            | CheckoutError::ItemIdsMissing { .. }
            | CheckoutError::OrderNumber { .. } => Self::internal(error),
        }
    }
}

impl From<PromotionError> for ApiError {
    fn from(error: PromotionError) -> Self {
        let detail = error.to_string();
        match error {
            PromotionError::AlreadyCreated { promotion_id } => {
                already_exists("promotion", promotion_id, detail)
            }
            PromotionError::NotFound => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Resource not found",
                detail,
            ),
            PromotionError::InvalidName { .. } => Self::invalid_field("name", detail),
            PromotionError::InvalidDescription { .. } => Self::invalid_field("description", detail),
            PromotionError::InvalidWindow { .. } => Self::invalid_field("ends_at", detail),
            PromotionError::ZeroLimit { field } => Self::invalid_field(field, detail),
            PromotionError::ZeroMaximumDiscount => Self::invalid_field("maximum_discount", detail),
            PromotionError::EmptyTarget { .. } => Self::invalid_field("applicable_ids", detail),
            PromotionError::LimitBelowUsage { limit, used } => {
                Self::rule("limit-below-usage", "Limit below the uses made", detail)
                    .with("usage_limit", limit)
                    .with("usage_count", used)
            }
            PromotionError::UsageLimitReached { limit, .. } => {
                Self::rule("promotion-usage-limit-reached", "Promotion used up", detail)
                    .with("limit", limit)
            }
            PromotionError::PerUserLimitReached { limit, .. } => Self::rule(
                "promotion-per-user-limit-reached",
                "Promotion used up for this customer",
                detail,
            )
            .with("limit", limit),
        }
    }
}

impl From<CouponError> for ApiError {
    fn from(error: CouponError) -> Self {
        let detail = error.to_string();
        match error {
            CouponError::AlreadyIssued { coupon_id } => already_exists("coupon", coupon_id, detail),
            CouponError::NotIssued | CouponError::PromotionNotFound => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Resource not found",
                detail,
            ),
            CouponError::CodeTaken { code, owner_id } => {
                Self::rule("coupon-code-taken", "Coupon code already taken", detail)
                    .with("code", code.to_string())
                    .with("coupon_id", owner_id)
            }
            CouponError::Inactive { .. }
            | CouponError::PromotionMismatch { .. }
            | CouponError::PromotionInactive { .. } => {
                Self::rule("coupon-inactive", "Coupon inactive", detail)
            }
            CouponError::NotYetValid { starts_at, .. } => {
                Self::rule("coupon-not-yet-valid", "Coupon not yet valid", detail)
                    .with("starts_at", starts_at)
            }
            CouponError::Expired { ends_at, .. } => {
                Self::rule("coupon-expired", "Coupon expired", detail).with("ends_at", ends_at)
            }
            CouponError::UsageLimitReached { limit, .. } => {
                Self::rule("coupon-usage-limit-reached", "Coupon used up", detail)
                    .with("limit", limit)
            }
            CouponError::PerUserLimitReached { limit, .. } => Self::rule(
                "coupon-per-user-limit-reached",
                "Coupon used up for this customer",
                detail,
            )
            .with("limit", limit),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        // Personal values are not echoed: the details stay generic.
        match error {
            UserError::EmailTaken { .. } => Self::new(
                StatusCode::CONFLICT,
                "email-taken",
                "Email taken",
                "an account with this email already exists",
            ),
            UserError::EmailReserved => Self::invalid_field("email", &error),
            UserError::PhoneTaken { .. } => Self::new(
                StatusCode::CONFLICT,
                "phone-taken",
                "Phone taken",
                "an account with this phone number already exists",
            ),
            UserError::AlreadyRegistered { .. } => Self::new(
                StatusCode::CONFLICT,
                "user-exists",
                "User exists",
                "this user is already registered",
            ),
            UserError::NotRegistered => Self::not_found("user", "this id"),
            UserError::Erased { user_id } => Self::not_found("user", user_id),
            UserError::DateOfBirthInFuture { .. } => {
                Self::invalid_field("date_of_birth", "the date of birth is in the future")
            }
            UserError::PreferencesNotAnObject { .. }
            | UserError::InvalidNotificationPreferences { .. } => {
                Self::invalid_field("preferences", &error)
            }
            UserError::SettingsNotAnObject { .. } => Self::invalid_field("settings", &error),
            UserError::InvalidValue(value) => value.into(),
            UserError::PhoneClaimMissing => Self::internal(error),
            UserError::Suspended { .. } | UserError::Inactive { .. } => Self::rule(
                "account-not-active",
                "Account not active",
                error.to_string(),
            ),
            UserError::InvalidStatusTransition { .. } => Self::rule(
                "invalid-status-transition",
                "Invalid status transition",
                error.to_string(),
            ),
            UserError::AddressNotFound { address_id } => Self::not_found("address", address_id),
            UserError::AddressAlreadyExists { .. } => {
                Self::rule("address-exists", "Address exists", error.to_string())
            }
            UserError::NoPendingCode { .. }
            | UserError::WrongCode { .. }
            | UserError::CodeExpired { .. } => {
                Self::rule("invalid-code", "Invalid code", error.to_string())
            }
            UserError::EmailUnchanged { .. }
            | UserError::EmailAlreadyVerified { .. }
            | UserError::NoPhone { .. }
            | UserError::PhoneAlreadyVerified { .. } => Self::rule(
                "account-rule",
                "Account rule broken",
                "the account is already in that state",
            ),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(error: PasswordError) -> Self {
        Self::invalid_field("password", error)
    }
}

impl From<EventStoreError> for ApiError {
    fn from(error: EventStoreError) -> Self {
        match error {
            EventStoreError::VersionConflict { .. } => Self::new(
                StatusCode::CONFLICT,
                "version-conflict",
                "Version conflict",
                "the resource was changed concurrently; reload it and retry",
            ),
            EventStoreError::IdempotencyKeyReused { key } => Self::idempotency_key_reused(&key),
            EventStoreError::Database(error) => error.into(),
            other @ (EventStoreError::Undecodable { .. }
            | EventStoreError::PoisonedLog { .. }
            | EventStoreError::Interrupted
            | EventStoreError::PersonalData(_)) => Self::internal(other),
        }
    }
}

impl From<PersonalDataError> for ApiError {
    fn from(error: PersonalDataError) -> Self {
        match error {
            PersonalDataError::Database(error) => error.into(),
            other => Self::internal(other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            // Load, not a fault: the pool is full and stayed full for the
            // whole acquire timeout (or it is closing, at shutdown).
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => Self::database_busy(),
            other => Self::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_carry_type_title_status_detail_and_extensions() {
        let problem = ApiError::invalid_field("slug", "invalid slug: \"Bad Slug\"").to_problem();
        assert_eq!(problem["type"], "https://errors.ecommerce.local/validation");
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["errors"][0]["field"], "slug");
        assert!(problem["detail"].as_str().unwrap().starts_with("slug:"));
    }

    #[test]
    fn internal_errors_are_opaque() {
        let problem = ApiError::internal(anyhow::anyhow!("password=secret")).to_problem();
        assert_eq!(problem["status"], 500);
        assert!(!problem.to_string().contains("secret"));
    }

    #[test]
    fn a_busy_pool_asks_to_retry() {
        let response = ApiError::from(sqlx::Error::PoolTimedOut).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            PROBLEM_CONTENT_TYPE
        );
    }

    #[test]
    fn a_false_precondition_names_the_etag() {
        let response = ApiError::precondition_failed("If-Match", Some(3)).into_response();
        assert_eq!(response.headers()[header::ETAG], "\"3\"");
        let problem = ApiError::precondition_failed("If-None-Match", None).to_problem();
        assert_eq!(problem["current_etag"], Value::Null);
        assert_eq!(problem["header"], "If-None-Match");
    }

    #[test]
    fn shape_errors_name_the_field_serde_names() {
        let problem =
            shape_error("stock_quantity: invalid type: string \"x\", expected i32".into())
                .to_problem();
        assert_eq!(problem["errors"][0]["field"], "stock_quantity");
        let problem = shape_error("missing field `sku` at line 1 column 2".into()).to_problem();
        assert!(problem.get("errors").is_none());
        let problem = shape_error("meta_keywords[1]: invalid type: integer".into()).to_problem();
        assert_eq!(problem["errors"][0]["field"], "meta_keywords[1]");
    }

    #[test]
    fn domain_errors_map_to_statuses() {
        let id = Uuid::nil();
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ProductError::NotFound.into(), 404, "not-found"),
            (
                ProductError::Archived { product_id: id }.into(),
                422,
                "product-archived",
            ),
            (
                ProductError::NegativeStockQuantity { stock_quantity: -1 }.into(),
                400,
                "validation",
            ),
            (
                CategoryError::InvalidValue(ValueError::Slug("X".into())).into(),
                400,
                "validation",
            ),
            (
                EventStoreError::VersionConflict {
                    stream_id: "s".into(),
                    expected: 1,
                    actual: 2,
                }
                .into(),
                409,
                "version-conflict",
            ),
            (
                EventStoreError::IdempotencyKeyReused { key: "k".into() }.into(),
                422,
                "idempotency-key-reused",
            ),
            (
                ApiError::precondition_failed("If-Match", Some(3)),
                412,
                "precondition-failed",
            ),
            (
                EventStoreError::Database(sqlx::Error::PoolTimedOut).into(),
                503,
                "service-unavailable",
            ),
            (sqlx::Error::PoolTimedOut.into(), 503, "service-unavailable"),
            (sqlx::Error::RowNotFound.into(), 500, "internal"),
            (
                InventoryError::InvalidValue(ValueError::Slug("X".into())).into(),
                400,
                "validation",
            ),
        ];
        for (error, status, kind) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.kind(), kind, "{error}");
        }
    }
}
