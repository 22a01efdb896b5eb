//! The authorisation matrix: every route the command API serves, sent by a
//! guest, the owning customer, another customer, a suspended customer and an
//! admin. The routes come from `command_routes()`, which the router is built
//! from, so a route without a row here fails the test.
//!
//! "Allowed" means the request got past authorisation: any answer but 401 and
//! 403 (an empty body then earns a 400 or 422, which is the point). Each row
//! gets fresh people, so that a route which ends a session or erases an
//! account cannot change the next row.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Guests too: registration, login.
    Anyone,
    /// Any live session: the user's own account.
    SignedIn,
    /// An admin's session: the catalog, other users.
    Admin,
}

fn access_of(method: &Method, path: &str) -> Option<Access> {
    use Access::*;
    let access = match (method.as_str(), path) {
        ("POST", "/v1/users")
        | ("POST", "/v1/sessions")
        | ("POST", "/v1/email-verifications/confirm")
        | ("POST", "/v1/password-resets")
        | ("POST", "/v1/password-resets/confirm")
        // Guests have carts too; a cart that is not the requester's is a 404
        // (tests/api/carts.rs), which this matrix counts as allowed.
        | ("POST", "/v1/carts")
        | ("POST", "/v1/carts/{id}/items")
        | ("PATCH", "/v1/carts/{id}/items/{item_id}")
        | ("DELETE", "/v1/carts/{id}/items/{item_id}")
        | ("PUT", "/v1/carts/{id}/coupon")
        | ("DELETE", "/v1/carts/{id}/coupon")
        | ("PUT", "/v1/carts/{id}/shipping-method")
        // Signed by the provider, not by a session (tests/api/payments.rs).
        | ("POST", "/v1/payments/webhooks/{provider}") => Anyone,
        ("DELETE", "/v1/sessions/current")
        | ("POST", "/v1/orders")
        | ("POST", "/v1/orders/{id}/cancellation")
        | ("POST", "/v1/orders/{id}/payments")
        | ("POST", "/v1/me/email/verification")
        | ("PATCH", "/v1/me")
        | ("DELETE", "/v1/me")
        | ("PUT", "/v1/me/email")
        | ("PUT", "/v1/me/password")
        | ("POST", "/v1/me/addresses")
        | ("PATCH", "/v1/me/addresses/{id}")
        | ("DELETE", "/v1/me/addresses/{id}")
        | ("PUT", "/v1/me/addresses/{id}/default")
        // Someone else's notification is a 404 (tests/api/notifications.rs).
        | ("POST", "/v1/me/notifications/{id}/read") => SignedIn,
        ("POST", "/v1/categories")
        | ("PATCH", "/v1/categories/{id}")
        | ("POST", "/v1/brands")
        | ("PATCH", "/v1/brands/{id}")
        | ("POST", "/v1/products")
        | ("PATCH", "/v1/products/{id}")
        | ("PUT", "/v1/products/{id}/price")
        | ("PUT", "/v1/products/{id}/status")
        | ("PUT", "/v1/products/{id}/featured")
        | ("POST", "/v1/products/{id}/images")
        | ("DELETE", "/v1/products/{id}/images/{image_id}")
        | ("PUT", "/v1/products/{id}/images/{image_id}/primary")
        | ("PUT", "/v1/products/{id}/image-order")
        | ("PUT", "/v1/products/{id}/attributes/{name}")
        | ("DELETE", "/v1/products/{id}/attributes/{name}")
        | ("POST", "/v1/products/{id}/variants")
        | ("PATCH", "/v1/products/{id}/variants/{variant_id}")
        | ("PUT", "/v1/products/{id}/variants/{variant_id}/active")
        | ("POST", "/v1/inventory/{sku}/adjustments")
        | ("PUT", "/v1/inventory/{sku}/low-stock-threshold")
        | ("PUT", "/v1/inventory/{sku}/tracking")
        | ("PUT", "/v1/orders/{id}/status")
        | ("POST", "/v1/payments/{id}/refunds")
        | ("POST", "/v1/promotions")
        | ("PUT", "/v1/promotions/{id}")
        | ("PUT", "/v1/promotions/{id}/active")
        | ("POST", "/v1/promotions/{id}/coupons")
        | ("POST", "/v1/coupons/{id}/deactivation")
        | ("DELETE", "/v1/users/{id}")
        | ("PUT", "/v1/users/{id}/status")
        | ("PUT", "/v1/users/{id}/role") => Admin,
        _ => return None,
    };
    Some(access)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Guest,
    Owner,
    OtherCustomer,
    Suspended,
    Admin,
}

/// What `actor` must get on a route of `access`: `None` for "allowed".
fn refusal(access: Access, actor: Actor) -> Option<StatusCode> {
    match (access, actor) {
        // A suspension ends every session: the token names nothing.
        (_, Actor::Suspended) => Some(StatusCode::UNAUTHORIZED),
        (Access::Anyone, _) => None,
        (_, Actor::Guest) => Some(StatusCode::UNAUTHORIZED),
        (Access::SignedIn, _) => None,
        (Access::Admin, Actor::Admin) => None,
        (Access::Admin, _) => Some(StatusCode::FORBIDDEN),
    }
}

struct Row {
    owner: (reqwest::Client, Uuid),
    other: reqwest::Client,
    suspended: reqwest::Client,
    admin: reqwest::Client,
    address: Uuid,
}

async fn fresh_people(app: &TestApp, n: usize) -> Row {
    let owner = app.customer(&format!("owner{n}@example.com")).await;
    let (other, _) = app.customer(&format!("other{n}@example.com")).await;
    let (suspended, suspended_id) = app.customer(&format!("suspended{n}@example.com")).await;
    let suspension = app
        .send_as(
            &app.client,
            Method::PUT,
            &format!("/v1/users/{suspended_id}/status"),
            Some(&json!({ "status": "suspended", "reason": "matrix" })),
        )
        .await;
    assert_eq!(
        suspension.status(),
        StatusCode::OK,
        "{:?}",
        suspension.text().await
    );
    let admin_email = format!("admin{n}@example.com");
    command_api::operator::create_admin(
        &app.settings,
        &admin_email,
        "Admin",
        "Row",
        ADMIN_PASSWORD.into(),
    )
    .await
    .unwrap();
    let admin =
        bearer_client(&log_in(&app.anonymous, &app.base, &admin_email, ADMIN_PASSWORD).await);
    let address = created_id(
        app.send_as(
            &owner.0,
            Method::POST,
            "/v1/me/addresses",
            Some(&json!({
                "first_name": "Somchai",
                "last_name": "Jaidee",
                "street_address_1": "1 Sukhumvit Rd",
                "city": "Bangkok",
                "state_province": "Bangkok",
                "postal_code": "10110",
            })),
        )
        .await,
    )
    .await;
    Row {
        owner,
        other,
        suspended,
        admin,
        address,
    }
}

#[tokio::test]
async fn every_route_admits_exactly_whom_it_should() {
    let app = TestApp::spawn().await;
    let category = app.category("matrix").await;
    let brand = app.brand("matrix").await;
    let product = app.product(&product_body("MATRIX-1", "matrix-1")).await;

    let routes = command_api::app::command_routes();
    let unlisted: Vec<String> = routes
        .iter()
        .filter(|r| access_of(&r.method, r.path).is_none())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        unlisted.is_empty(),
        "routes without a row in the matrix: {unlisted:?}"
    );

    let mut failures = Vec::new();
    for (n, route) in routes.iter().enumerate() {
        let access = access_of(&route.method, route.path).unwrap();
        let row = fresh_people(&app, n).await;
        let id = match route.path {
            p if p.starts_with("/v1/categories/") => category,
            p if p.starts_with("/v1/brands/") => brand,
            p if p.starts_with("/v1/products/") => product,
            p if p.starts_with("/v1/users/") => row.owner.1,
            p if p.starts_with("/v1/me/addresses/") => row.address,
            _ => Uuid::nil(),
        };
        // The rows a product owns and the stock are named by ids that need
        // not exist: past authorisation, a 404 is as good as a 200.
        let path = route
            .path
            .replace("{id}", &id.to_string())
            .replace("{image_id}", &Uuid::nil().to_string())
            .replace("{variant_id}", &Uuid::nil().to_string())
            .replace("{item_id}", &Uuid::nil().to_string())
            .replace("{name}", "colour")
            .replace("{sku}", "MATRIX-1");
        // The admin last: an admin route may erase or suspend the owner.
        let actors = [
            (Actor::Guest, &app.anonymous),
            (Actor::Owner, &row.owner.0),
            (Actor::OtherCustomer, &row.other),
            (Actor::Suspended, &row.suspended),
            (Actor::Admin, &row.admin),
        ];
        for (actor, client) in actors {
            let response = app
                .send_as(
                    client,
                    route.method.clone(),
                    &path,
                    Some(&Value::Object(Default::default())),
                )
                .await;
            let status = response.status();
            let ok = match refusal(access, actor) {
                Some(expected) => status == expected,
                None => status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            };
            if !ok {
                failures.push(format!(
                    "{} {} as {actor:?}: {status} (expected {})",
                    route.method,
                    route.path,
                    refusal(access, actor).map_or("allowed".to_owned(), |s| s.to_string())
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
