//! The query API's OpenAPI 3.1 contract, served at `GET /openapi.json`
//! with Scalar's page at `GET /docs`. Each operation is its handler's
//! `#[utoipa::path]`, with the schemas of the types the handler reads and
//! answers; what every read shares by convention is added here once, so
//! that no handler can leave it out:
//!
//! - the request's `X-Correlation-Id`, and the consistency token a read
//!   waits for (the `Consistency-Token` header or the `consistency_token`
//!   parameter);
//! - the response headers `X-Correlation-Id` (always) and the draft
//!   `RateLimit-Policy` / `RateLimit` (while the limiter answers);
//! - the problem answers any read can give: 400 (a malformed parameter or
//!   token), 401 (a token naming no live session), 429, 500 and 503 (a store
//!   down, a consistency token not applied in time, overload);
//! - the bearer scheme, and the problem document (RFC 9457) of `error`.

use infrastructure::openapi::{
    add_components, bearer_scheme, each_operation, each_response, rate_limit_headers,
    retry_after_header,
};
use serde_json::{json, Value};
use utoipa::openapi::{RefOr, Response, Schema};
use utoipa::{OpenApi, PartialSchema, ToResponse, ToSchema};

use crate::consistency::{CONSISTENCY_TOKEN_HEADER, CONSISTENCY_TOKEN_PARAM};
use crate::error::PROBLEM_BASE;
use crate::{carts, catalog, notifications, orders, products, promotions, users};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Query API",
        description = "The read side of the platform: products (the Redis cache, then PostgreSQL), product \
            search (Elasticsearch), categories, brands, accounts, carts (the Redis cart cache, then \
            MongoDB), promotions and coupons, orders, and your notifications (MongoDB), as the projectors left them. A read that carries a command's consistency token \
            waits until what it reads has applied it. See docs/query-api.md.",
    ),
    paths(
        products::search_products,
        products::get_product,
        catalog::list_categories,
        catalog::list_brands,
        users::get_me,
        users::list_users,
        users::get_user,
        carts::get_cart,
        promotions::list_promotions,
        promotions::get_promotion,
        promotions::coupons::check_coupon,
        orders::list_my_orders,
        orders::get_order,
        orders::list_orders,
        notifications::list_my_notifications,
    ),
    components(schemas(Problem, InvalidParam)),
    tags(
        (name = "products", description = "Products by id and search; the public sees active ones only"),
        (name = "catalog", description = "Categories and brands; the public sees active ones only"),
        (name = "users", description = "Accounts: your own, or for an admin anyone's"),
        (name = "carts", description = "Carts, for their owner only: the signed-in user, or a guest by cart session"),
        (name = "promotions", description = "Promotions and their coupons for admins; a coupon code's check for customers"),
        (name = "orders", description = "Orders: your own, or for an admin anyone's"),
        (name = "notifications", description = "Your notifications: your own only, whatever your role"),
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
    each_operation(&mut document, |mut operation| {
        operation.non_null_parameters();
        for parameter in ["X-Correlation-Id", "Consistency-Token", "consistency_token"] {
            operation.add_parameter(parameter);
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
    });
    each_response(&mut document, |mut response| {
        response.add_header(
            "X-Correlation-Id",
            json!({
                "description": "The request's correlation id, or a new UUID v7 when it was absent or unusable.",
                "schema": { "type": "string" }
            }),
        );
        response.require_header("X-Correlation-Id");
        if let Value::Object(headers) = rate_limit_headers() {
            for (name, header) in headers {
                response.add_header(&name, header);
            }
        }
        response.require_header("X-Cache");
    });
    // The coupon check reads a cart, and says where, only with `cart_id`.
    if let Some(Value::Object(header)) =
        document.pointer_mut("/paths/~1v1~1coupons~1{code}/get/responses/200/headers/X-Cache")
    {
        header.insert("required".into(), Value::Bool(false));
    }
    document
}

/// `GET /openapi.json` and `GET /docs`.
pub fn routes<S>() -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    infrastructure::openapi::routes(&document())
}

fn shared_parameters() -> Value {
    let token = "The `consistency_token` a command answered: the read waits (up to `consistency.wait_ms`) \
        until every projection it reads has applied it, else answers 503 naming the lagging ones. Opaque; \
        anything that is not a token is a 400.";
    json!({
        "X-Correlation-Id": {
            "name": "X-Correlation-Id",
            "in": "header",
            "description": "Kept when it is 1 to 128 visible ASCII characters (otherwise replaced by a new \
                UUID v7), echoed, and carried by every log line of the request.",
            "schema": { "type": "string" }
        },
        "Consistency-Token": {
            "name": CONSISTENCY_TOKEN_HEADER,
            "in": "header",
            "description": token,
            "schema": { "type": "string" }
        },
        "consistency_token": {
            "name": CONSISTENCY_TOKEN_PARAM,
            "in": "query",
            "description": format!("{token} The header wins when both are given."),
            "schema": { "type": "string" }
        }
    })
}

/// An RFC 9457 problem document, as [`ApiError`](crate::error::ApiError) renders it.
pub struct Problem;

impl PartialSchema for Problem {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "object",
            "description": "Every error.",
            "required": ["type", "title", "status"],
            "properties": {
                "type": {
                    "type": "string",
                    "format": "uri",
                    "description": format!("`{PROBLEM_BASE}` and a stable kebab-case name"),
                },
                "title": { "type": "string" },
                "status": { "type": "integer", "minimum": 400, "maximum": 599 },
                "detail": { "type": "string" },
                "invalid_params": {
                    "type": "array",
                    "description": "A 400's offending parameters, when the check was the API's own",
                    "items": { "$ref": "#/components/schemas/InvalidParam" }
                }
            }
        }))
    }
}

impl ToSchema for Problem {}

/// One offending parameter of a 400.
pub struct InvalidParam;

impl PartialSchema for InvalidParam {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "object",
            "required": ["name", "reason"],
            "properties": {
                "name": { "type": "string" },
                "reason": { "type": "string" }
            }
        }))
    }
}

impl ToSchema for InvalidParam {}

fn schema(value: Value) -> RefOr<Schema> {
    // Only ever given the literal schemas of this module, which are valid.
    serde_json::from_value(value).unwrap_or_else(|_| RefOr::T(Schema::default()))
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

problem_answers!(Forbidden, NotFound);

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
    let retry_after = json!({ "Retry-After": retry_after_header() });
    json!({
        "BadRequest": problem(
            "`invalid-request`: an unknown parameter, a value that does not parse or is out of range \
             (`invalid_params` names the API's own checks), or a consistency token that is not one.",
            json!({}),
        ),
        "Unauthenticated": problem(
            "`unauthenticated`: the read needs a session and none was given, or the bearer token names no \
             live session.",
            json!({
                "WWW-Authenticate": {
                    "description": "`Bearer`",
                    "required": true,
                    "schema": { "type": "string" }
                }
            }),
        ),
        "Forbidden": problem(
            "`forbidden`: the public asking for what is not on sale (a status other than `active`, inactive \
             categories or brands), or a customer on an admin read.",
            json!({}),
        ),
        "NotFound": problem(
            "`not-found`: nothing of this kind has this id or code (or, for the public, a product that is \
             not active; for anyone but its owner, a cart, or an order unless an admin asks).",
            json!({}),
        ),
        "RateLimited": problem(
            "`rate-limited`: over this client's read limit (`rate_limits.read`).",
            retry_after.clone(),
        ),
        "Internal": problem("`internal`: anything else; opaque, its cause is logged.", json!({})),
        "Unavailable": problem(
            "`service-unavailable`: the store the answer needs is down or timed out, the session store does \
             not answer (a token cannot be checked), the read models did not apply the consistency token in \
             time, or the server is at its concurrency limit.",
            retry_after,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let document = document();
        let mut missing = Vec::new();
        let mut stack = vec![&document];
        while let Some(value) = stack.pop() {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(reference)) = map.get("$ref") {
                        if document
                            .pointer(reference.trim_start_matches('#'))
                            .is_none()
                        {
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
    fn a_cart_names_its_owners_session_and_says_where_it_came_from() {
        let document = document();
        let operation = &document["paths"]["/v1/carts/{id}"]["get"];
        let found = &operation["responses"]["200"];
        assert_eq!(found["headers"]["X-Cache"]["required"], true);
        assert_eq!(
            operation["responses"]["404"]["$ref"],
            "#/components/responses/NotFound"
        );
        let session = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "X-Cart-Session")
            .expect("the guest's cart session header");
        assert_eq!(session["in"], "header");
        let item = &document["components"]["schemas"]["CartItemView"]["properties"];
        assert_eq!(item["unit_price"]["type"], "string", "money is a string");
        assert!(item.get("item_id").is_some());
    }

    #[test]
    fn promotions_are_admin_reads_and_a_coupon_check_is_anyones() {
        let document = document();
        let list = &document["paths"]["/v1/promotions"]["get"];
        assert_eq!(list["security"], json!([{ "bearerAuth": [] }]));
        assert_eq!(
            list["responses"]["403"]["$ref"],
            "#/components/responses/Forbidden"
        );
        let kind = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "type")
            .expect("the type filter, by the seed's name");
        assert_eq!(
            kind["schema"]["enum"],
            json!(["percentage", "fixed_amount", "free_shipping"])
        );
        let promotion = &document["components"]["schemas"]["PromotionView"]["properties"];
        assert_eq!(promotion["value"]["type"], "string", "money is a string");
        assert!(promotion.get("type").is_some() && promotion.get("kind").is_none());

        let check = &document["paths"]["/v1/coupons/{code}"]["get"];
        assert_eq!(check["security"], json!([{}, { "bearerAuth": [] }]));
        let names: Vec<&str> = check["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in ["code", "cart_id", "X-Cart-Session"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        // Sent only when a cart was read.
        assert_eq!(
            check["responses"]["200"]["headers"]["X-Cache"]["required"],
            false
        );
        assert_eq!(
            check["responses"]["404"]["$ref"],
            "#/components/responses/NotFound"
        );
    }

    #[test]
    fn notifications_are_your_own_with_the_unread_count() {
        let document = document();
        let list = &document["paths"]["/v1/me/notifications"]["get"];
        assert_eq!(list["security"], json!([{ "bearerAuth": [] }]));
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in ["limit", "after"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        let schemas = &document["components"]["schemas"];
        let page = &schemas["NotificationPage"];
        assert_eq!(page["required"], json!(["items", "unread_count"]));
        assert_eq!(page["properties"]["unread_count"]["type"], "integer");
        let item = &schemas["NotificationView"]["properties"];
        assert!(item.get("type").is_some() && item.get("kind").is_none());
        assert_eq!(item["data"]["type"], "object");
        let kinds = &schemas["NotificationType"]["enum"];
        assert_eq!(kinds.as_array().unwrap().len(), 8, "{kinds}");
        let channel = &schemas["ChannelView"];
        assert_eq!(channel["required"], json!(["sent"]));
    }

    #[test]
    fn a_product_says_where_it_came_from() {
        let document = document();
        let found = &document["paths"]["/v1/products/{id}"]["get"]["responses"]["200"];
        assert_eq!(found["headers"]["X-Cache"]["required"], true);
        assert_eq!(found["headers"]["X-Correlation-Id"]["required"], true);
        assert_eq!(
            document["paths"]["/v1/me"]["get"]["security"],
            json!([{ "bearerAuth": [] }])
        );
        let page = &document["paths"]["/v1/products"]["get"]["parameters"];
        let per_page = page
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "per_page")
            .unwrap();
        assert_eq!(
            per_page["schema"],
            json!({ "type": "integer", "format": "int32", "minimum": 1, "maximum": 100 })
        );
    }
}
