//! The command API's OpenAPI 3.1 contract, served at `GET /openapi.json`
//! with Scalar's page at `GET /docs`. Each operation is its handler's
//! `#[utoipa::path]`, with the schemas of the types the handler reads and
//! answers; what every command shares by convention is added here once, so
//! that no handler can leave it out:
//!
//! - the request headers `X-Correlation-Id` (every operation) and, through
//!   [`CommandHeaders`], `Idempotency-Key`, `If-Match` and `If-None-Match`;
//! - the response headers `X-Request-Id`, `X-Correlation-Id` (always) and
//!   the draft `RateLimit-Policy` / `RateLimit` (while the limiter answers);
//!   on an answer carrying a [`Receipt`], its `ETag`, `Consistency-Token`,
//!   `Idempotent-Replayed` and, on a 201, `Location` (what `command::render`
//!   sends);
//! - the problem answers any command can give: 400 (a malformed header or
//!   body), 401 (a token naming no live session), 429, 500, 503, and for a
//!   command with a body 413 and 415;
//! - the bearer scheme, and the problem document (RFC 9457) of `error`.

use std::borrow::Cow;

use domain::catalog::ProductStatus;
use domain::inventory::StockAdjustmentReason;
use domain::order::OrderStatus;
use domain::promotion::{ApplicableTo, PromotionType};
use domain::user::{AddressType, Gender, UserRole, UserStatus};
use infrastructure::openapi::{
    add_components, bearer_scheme, each_operation, each_response, rate_limit_headers,
    retry_after_header,
};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::openapi::{RefOr, Response, Schema};
use utoipa::{IntoParams, OpenApi, PartialSchema, ToResponse, ToSchema};

use crate::command::Receipt;
use crate::commands::{
    accounts, brands, carts, categories, checkout, codes, inventory, me, notifications, orders,
    payments, product_parts, products, promotions, users,
};
use crate::error::PROBLEM_TYPE_BASE;
use crate::input::Amount;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Command API",
        description = "The write side of the platform: each command is validated, decided against the \
            aggregates of the event store and appended atomically. Every answer of a command carries the \
            consistency token that a read of the query API can wait for. See docs/command-api.md.",
    ),
    paths(
        categories::create,
        categories::update,
        brands::create,
        brands::update,
        products::create,
        products::update,
        products::change_price,
        products::change_status,
        products::set_featured,
        product_parts::add_image,
        product_parts::remove_image,
        product_parts::set_primary_image,
        product_parts::reorder_images,
        product_parts::set_attribute,
        product_parts::remove_attribute,
        product_parts::add_variant,
        product_parts::update_variant,
        product_parts::set_variant_active,
        inventory::adjust,
        inventory::set_low_stock_threshold,
        inventory::set_tracking,
        checkout::place,
        orders::change_status,
        orders::cancel,
        payments::start,
        payments::webhook,
        payments::refund,
        promotions::create,
        promotions::update,
        promotions::set_active,
        promotions::issue,
        promotions::deactivate_coupon,
        carts::open,
        carts::add_item,
        carts::change_item,
        carts::remove_item,
        carts::apply_coupon,
        carts::remove_coupon,
        carts::select_shipping_method,
        accounts::register,
        accounts::log_in,
        accounts::log_out,
        me::update_profile,
        me::erase,
        me::change_email,
        me::change_password,
        codes::request_email_verification,
        codes::confirm_email,
        codes::request_password_reset,
        codes::confirm_password_reset,
        me::add_address,
        me::update_address,
        me::remove_address,
        me::set_default_address,
        notifications::mark_read,
        users::erase,
        users::change_status,
        users::change_role,
    ),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "catalog", description = "Categories, brands and products with their images, attributes and \
            variants: an admin's session only"),
        (name = "inventory", description = "Stock of each sku, a product's or a variant's: an admin's session only"),
        (name = "orders", description = "Checkout and orders: the signed-in customer's own"),
        (name = "payments", description = "Payments through the payment provider, its webhooks, and refunds"),
        (name = "promotions", description = "Promotions and their coupons: an admin's session only"),
        (name = "carts", description = "Shopping carts: the signed-in user's, or a guest's named by its \
            `X-Cart-Session`"),
        (name = "accounts", description = "Registration and sessions"),
        (name = "me", description = "The signed-in user's own account"),
        (name = "codes", description = "One-time codes sent by email: verification and password reset"),
        (name = "users", description = "Other users' accounts: an admin's session only"),
    ),
)]
struct ApiDoc;

/// The finished document: the handlers' operations with every convention
/// of the API added.
pub fn document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    add_components(&mut document, "securitySchemes", bearer_scheme());
    add_components(&mut document, "parameters", shared_parameters());
    add_components(&mut document, "responses", problem_responses());
    let mut patches = Vec::new();
    each_operation(&mut document, |mut operation| {
        operation.non_null_parameters();
        operation.add_parameter("X-Correlation-Id");
        if operation.method == "patch" {
            patches.extend(operation.request_body_schema());
        }
        for (status, name) in [
            ("400", "BadRequest"),
            ("401", "Unauthenticated"),
            ("429", "RateLimited"),
            ("500", "Internal"),
            ("503", "Unavailable"),
        ] {
            operation.add_response(status, name);
        }
        if operation.has_request_body() {
            operation.add_response("413", "PayloadTooLarge");
            operation.add_response("415", "UnsupportedMediaType");
        }
    });
    // A PATCH body changes something: `{}` is a 400.
    for name in patches {
        if let Some(Value::Object(schema)) =
            document.pointer_mut(&format!("/components/schemas/{name}"))
        {
            schema.insert("minProperties".into(), json!(1));
        }
    }
    let receipt = format!("#/components/schemas/{}", Receipt::name());
    each_response(&mut document, |mut response| {
        response.add_header(
            "X-Request-Id",
            uuid_header("This request's id: the causation id of what it appends."),
        );
        response.add_header(
            "X-Correlation-Id",
            uuid_header("The request's correlation id: the one given, or a new UUID v7."),
        );
        response.require_header("X-Request-Id");
        response.require_header("X-Correlation-Id");
        if let Value::Object(headers) = rate_limit_headers() {
            for (name, header) in headers {
                response.add_header(&name, header);
            }
        }
        if response.body_schema() == Some(receipt.as_str()) {
            response.add_header(
                "ETag",
                json!({
                    "description": "The addressed stream's new version as a strong tag, for the next `If-Match`.",
                    "required": true,
                    "schema": { "type": "string", "examples": ["\"3\""] }
                }),
            );
            response.add_header(
                "Consistency-Token",
                json!({
                    "description": "As `consistency_token` in the body.",
                    "required": true,
                    "schema": { "type": "string" }
                }),
            );
            response.add_header(
                "Idempotent-Replayed",
                json!({
                    "description": "`true` when this is the stored answer of an earlier request with the same `Idempotency-Key`.",
                    "schema": { "type": "string", "enum": ["true"] }
                }),
            );
            if response.status == Some("201") {
                response.add_header(
                    "Location",
                    json!({
                        "description": "The created resource.",
                        "required": true,
                        "schema": { "type": "string", "format": "uri-reference" }
                    }),
                );
            }
        }
    });
    document
}

/// `GET /openapi.json` and `GET /docs`.
pub fn routes<S>() -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    infrastructure::openapi::routes(&document())
}

fn uuid_header(description: &str) -> Value {
    json!({ "description": description, "schema": { "type": "string", "format": "uuid" } })
}

fn shared_parameters() -> Value {
    json!({
        "X-Correlation-Id": {
            "name": "X-Correlation-Id",
            "in": "header",
            "description": "Stored as the `correlation_id` of every event the command appends, and echoed; \
                a new UUID v7 when absent. Anything but a UUID is a 400 `invalid-header`.",
            "schema": { "type": "string", "format": "uuid" }
        }
    })
}

/// The request headers of a command that reads a [`CommandContext`](crate::request::CommandContext).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct CommandHeaders {
    /// Makes the command idempotent: a repeat with the same key, sender, route and body gets the first
    /// answer again (`Idempotent-Replayed: true`) and appends nothing; the same key with another body is a
    /// 422 `idempotency-key-reused`. 1 to 255 visible ASCII characters, otherwise a 400.
    #[param(rename = "Idempotency-Key", pattern = r"^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
    /// `*` or a list of entity-tags (`"3"`, `W/"3"`): the command runs only when the resource exists
    /// and, unless `*`, a listed strong tag is its ETag; otherwise a 412. Malformed: a 400.
    #[param(rename = "If-Match")]
    pub if_match: Option<String>,
    /// `*` or a list of entity-tags: the command is refused (412) when the resource exists and the list
    /// is `*` or holds its ETag, compared weakly. Malformed: a 400.
    #[param(rename = "If-None-Match")]
    pub if_none_match: Option<String>,
}

/// An RFC 9457 problem document, as [`ApiError`](crate::error::ApiError) renders it.
pub struct Problem;

impl PartialSchema for Problem {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "object",
            "description": "Every error. Extension members name what the problem is about (`header`, \
                `current_etag`, `resource`, `id`, `sku`...).",
            "required": ["type", "title", "status", "detail", "instance", "request_id"],
            "properties": {
                "type": {
                    "type": "string",
                    "format": "uri",
                    "description": format!("`{PROBLEM_TYPE_BASE}` and a stable kebab-case name"),
                },
                "title": { "type": "string" },
                "status": { "type": "integer", "minimum": 400, "maximum": 599 },
                "detail": { "type": "string" },
                "instance": { "type": "string", "description": "The request's path" },
                "request_id": { "type": "string", "format": "uuid" },
                "errors": {
                    "type": "array",
                    "description": "A 400's invalid fields, each named by its JSON path",
                    "items": { "$ref": "#/components/schemas/FieldError" }
                },
                "header": { "type": "string", "description": "The request header a 400 or 412 is about" },
                "current_etag": {
                    "type": ["string", "null"],
                    "description": "A 412's resource's ETag, `null` when it does not exist"
                }
            },
            "additionalProperties": true
        }))
    }
}

impl ToSchema for Problem {}

/// One invalid field of a 400.
pub struct FieldError;

impl PartialSchema for FieldError {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "object",
            "required": ["field", "message"],
            "properties": {
                "field": { "type": "string" },
                "message": { "type": "string" }
            }
        }))
    }
}

impl ToSchema for FieldError {}

fn schema(value: Value) -> RefOr<Schema> {
    // Only ever given the literal schemas of this module, which are valid.
    serde_json::from_value(value).unwrap_or_else(|_| RefOr::T(Schema::default()))
}

/// A decimal amount: a string (`"35900.00"`) or a JSON number, read exactly.
impl PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "description": "A decimal amount, as a string (`\"35900.00\"`) or a JSON number (`35900.5`), read \
                through its shortest text, never as a float. Money is >= 0 (a price > 0), with at most 2 \
                decimals, below 100,000,000; a dimension >= 0, at most 2 decimals, below 1,000,000.",
            "oneOf": [
                { "type": "string", "examples": ["35900.00"] },
                { "type": "number" }
            ]
        }))
    }
}

impl ToSchema for Amount {}

/// A string schema whose values are the serde names of `values`.
fn names_of<T: Serialize>(values: &[T]) -> RefOr<Schema> {
    let names: Vec<Value> = values
        .iter()
        .filter_map(|value| serde_json::to_value(value).ok())
        .collect();
    schema(json!({ "type": "string", "enum": names }))
}

/// Declares the schema of a domain enum under `name`, from the values it lists.
macro_rules! domain_enum {
    ($(#[$doc:meta])* $marker:ident, $name:literal, $values:expr) => {
        $(#[$doc])*
        pub struct $marker;

        impl PartialSchema for $marker {
            fn schema() -> RefOr<Schema> {
                names_of(&$values)
            }
        }

        impl ToSchema for $marker {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

domain_enum!(
    /// `users.gender`.
    GenderName,
    "Gender",
    every_gender()
);
domain_enum!(
    /// `user_addresses.type`.
    AddressTypeName,
    "AddressType",
    every_address_type()
);
domain_enum!(UserRoleName, "UserRole", UserRole::ALL);
domain_enum!(UserStatusName, "UserStatus", UserStatus::ALL);
domain_enum!(ProductStatusName, "ProductStatus", ProductStatus::ALL);
domain_enum!(
    /// `orders.status`.
    OrderStatusName,
    "OrderStatus",
    every_order_status()
);
domain_enum!(
    /// `promotions.type`.
    PromotionTypeName,
    "PromotionType",
    every_promotion_type()
);
domain_enum!(
    /// `promotions.applicable_to`.
    ApplicableToName,
    "ApplicableTo",
    every_applicable_to()
);
domain_enum!(
    /// Why stock was adjusted.
    StockAdjustmentReasonName,
    "StockAdjustmentReason",
    every_adjustment_reason()
);

/// Every adjustment reason; the match stops compiling when the domain adds one.
fn every_adjustment_reason() -> [StockAdjustmentReason; 5] {
    use StockAdjustmentReason::{Correction, Damage, Other, Restock, Return};
    let every = [Restock, Correction, Damage, Return, Other];
    match every[0] {
        Restock | Correction | Damage | Return | Other => every,
    }
}

/// Every order status; the match stops compiling when the domain adds one.
fn every_order_status() -> [OrderStatus; 7] {
    use OrderStatus::{Cancelled, Confirmed, Delivered, Pending, Processing, Refunded, Shipped};
    let every = [
        Pending, Confirmed, Processing, Shipped, Delivered, Cancelled, Refunded,
    ];
    match every[0] {
        Pending | Confirmed | Processing | Shipped | Delivered | Cancelled | Refunded => every,
    }
}

/// Every promotion type; the match stops compiling when the domain adds one.
fn every_promotion_type() -> [PromotionType; 3] {
    use PromotionType::{FixedAmount, FreeShipping, Percentage};
    let every = [Percentage, FixedAmount, FreeShipping];
    match every[0] {
        Percentage | FixedAmount | FreeShipping => every,
    }
}

/// Every promotion target; the match stops compiling when the domain adds one.
fn every_applicable_to() -> [ApplicableTo; 4] {
    use ApplicableTo::{All, Categories, Products, Users};
    let every = [All, Categories, Products, Users];
    match every[0] {
        All | Categories | Products | Users => every,
    }
}

/// Every gender; the match stops compiling when the domain adds one.
fn every_gender() -> [Gender; 3] {
    let every = [Gender::Male, Gender::Female, Gender::Other];
    match every[0] {
        Gender::Male | Gender::Female | Gender::Other => every,
    }
}

/// Every address type; the match stops compiling when the domain adds one.
fn every_address_type() -> [AddressType; 3] {
    let every = [AddressType::Home, AddressType::Work, AddressType::Other];
    match every[0] {
        AddressType::Home | AddressType::Work | AddressType::Other => every,
    }
}

/// Declares problem answers a handler's `#[utoipa::path]` can name
/// (`(status = 404, response = NotFound)`); what each says and sends is in
/// [`problem_responses`], which `document` puts under
/// `components.responses`.
macro_rules! problem_answers {
    ($($name:ident),* $(,)?) => {
        $(
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), RefOr::T(Response::new(stringify!($name))))
                }
            }
        )*
    };
}

problem_answers!(
    InvalidCredentials,
    Forbidden,
    NotFound,
    Conflict,
    PreconditionFailed,
    RuleBroken,
);

/// Every problem answer the operations refer to.
fn problem_responses() -> Value {
    let problem = |description: &str, headers: Value| {
        json!({
            "description": description,
            "headers": headers,
            "content": {
                "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } }
            }
        })
    };
    let www_authenticate = json!({
        "WWW-Authenticate": {
            "description": "`Bearer`",
            "required": true,
            "schema": { "type": "string" }
        }
    });
    let retry_after = json!({ "Retry-After": retry_after_header() });
    json!({
        "BadRequest": problem(
            "`validation`: the body is not JSON, has an unknown or missing field, a value of the wrong type, \
             an invalid value or a control character (each listed in `errors`), or a path id is not a UUID; \
             `invalid-header`: a malformed `Idempotency-Key`, `If-Match`, `If-None-Match` or \
             `X-Correlation-Id` (named by `header`).",
            json!({}),
        ),
        "Unauthenticated": problem(
            "`unauthenticated`: the operation needs a session and none was given, or the bearer token names \
             no live session (ended by a logout, a credential change, a suspension, a role change or an \
             erasure), or another scheme was used.",
            www_authenticate.clone(),
        ),
        "InvalidCredentials": problem(
            "`invalid-credentials`: the email or the password is wrong; `unauthenticated`: the bearer token \
             names no live session.",
            www_authenticate,
        ),
        "Forbidden": problem(
            "`forbidden`: the session lacks the right (a customer on an admin route), or the account may not \
             log in (suspended, inactive).",
            json!({}),
        ),
        "NotFound": problem(
            "`not-found`: no resource of this kind has this id (an erased user included; an address that is \
             not in the user's own book).",
            json!({}),
        ),
        "Conflict": problem(
            "`version-conflict`: concurrent writes still conflicted after the retries; `email-taken`, \
             `phone-taken`: another account holds it.",
            json!({}),
        ),
        "PreconditionFailed": problem(
            "`precondition-failed`: the `If-Match` or `If-None-Match` named by `header` does not hold; \
             `current_etag` is the resource's ETag, also sent as `ETag` when it exists.",
            json!({
                "ETag": {
                    "description": "The resource's current ETag, when it exists.",
                    "schema": { "type": "string" }
                }
            }),
        ),
        "RuleBroken": problem(
            "A business rule refused the command (its `type` names which: `slug-taken`, `sku-taken`, \
             `already-exists`, `invalid-status-transition`, `category-not-found`, `account-rule`, \
             `invalid-code`...), or `idempotency-key-reused`: the key was used for another request.",
            json!({}),
        ),
        "PayloadTooLarge": problem("`payload-too-large`: the body is above `http.body_limit_bytes`.", json!({})),
        "UnsupportedMediaType": problem(
            "`unsupported-media-type`: the body is not sent as `application/json` (or `application/*+json`).",
            json!({}),
        ),
        "RateLimited": problem(
            "`rate-limited`: over this client's limit for the route's class (`rate_limits.write`, \
             `rate_limits.auth`), or the account's (`rate_limits.login_per_account`, \
             `rate_limits.codes_per_account`). Nothing was done.",
            retry_after.clone(),
        ),
        "Internal": problem("`internal`: anything else; opaque, its cause is logged.", json!({})),
        "Unavailable": problem(
            "`service-unavailable`: the server is at its concurrency limit or timed out, no database \
             connection came free in time, or the session store does not answer (a token cannot be checked; a \
             login cannot be counted). Nothing was done unless the detail says the change is saved.",
            retry_after,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` of the document resolves.
    #[test]
    fn every_reference_resolves() {
        let document = document();
        let mut missing = Vec::new();
        let mut stack = vec![&document];
        while let Some(value) = stack.pop() {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(reference)) = map.get("$ref") {
                        let pointer = reference.trim_start_matches('#');
                        if document.pointer(pointer).is_none() {
                            missing.push(reference.clone());
                        }
                    }
                    stack.extend(map.values());
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        assert!(missing.is_empty(), "dangling references: {missing:?}");
    }

    #[test]
    fn a_create_says_where_and_at_which_version() {
        let document = document();
        let created = &document["paths"]["/v1/categories"]["post"]["responses"]["201"];
        for header in ["Location", "ETag", "Consistency-Token", "X-Request-Id"] {
            assert_eq!(created["headers"][header]["required"], true, "{header}");
        }
        assert_eq!(
            document["components"]["responses"]["RateLimited"]["headers"]["Retry-After"]
                ["required"],
            true
        );
        assert_eq!(
            document["paths"]["/v1/categories"]["post"]["security"],
            json!([{ "bearerAuth": [] }])
        );
        assert_eq!(
            document["paths"]["/v1/users"]["post"]["security"],
            json!([{}, { "bearerAuth": [] }])
        );
        assert_eq!(
            document["components"]["schemas"]["Gender"]["enum"],
            json!(["male", "female", "other"])
        );
    }
}
