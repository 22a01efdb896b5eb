//! The authorisation matrix of the query API: every route it serves, read by
//! a guest, the owning customer, another customer, a customer whose sessions
//! were revoked (as a suspension does) and an admin. The routes come from
//! `read_routes()`, which the router is built from, so a route without a row
//! here fails the test. "Allowed" is any answer but 401 and 403; a route
//! for its owner only answers the owner and is a 404 for everyone else, and
//! one for its owner or an admin answers both, is a 404 for other
//! customers and a 401 for guests.

use reqwest::StatusCode;
use uuid::Uuid;

use crate::support::{self, TestContext};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Anyone,
    SignedIn,
    Admin,
    /// The resource's owner only: it does not exist for anyone else.
    Owner,
    /// A signed-in owner, or an admin: it does not exist for other users.
    OwnerOrAdmin,
}

fn access_of(path: &str) -> Option<Access> {
    Some(match path {
        "/v1/products" | "/v1/products/{id}" | "/v1/categories" | "/v1/brands" => Access::Anyone,
        // A customer's check of a code: a user's or a guest's.
        "/v1/coupons/{code}" => Access::Anyone,
        // Your own, whatever your role: an admin reads theirs, not others'.
        "/v1/me" | "/v1/me/orders" | "/v1/me/notifications" => Access::SignedIn,
        "/v1/users" | "/v1/users/{id}" => Access::Admin,
        "/v1/promotions" | "/v1/promotions/{id}" => Access::Admin,
        "/v1/orders" => Access::Admin,
        "/v1/orders/{id}" => Access::OwnerOrAdmin,
        "/v1/carts/{id}" => Access::Owner,
        _ => return None,
    })
}

#[tokio::test]
async fn every_read_admits_exactly_whom_it_should() {
    let context = TestContext::new().await;
    let product = support::product("Matrix phone");
    context.insert_product(&product).await;
    let owner = Uuid::now_v7();
    let revoked = Uuid::now_v7();
    let cart = support::seed_cart();
    context
        .cart_document_put(&support::user_owner(owner), &cart)
        .await;
    let clients = [
        ("guest", reqwest::Client::new()),
        ("owner", context.client_as(owner, "customer").await),
        (
            "other customer",
            context.client_as(Uuid::now_v7(), "customer").await,
        ),
        ("revoked", context.client_as(revoked, "customer").await),
        ("admin", context.client_as(Uuid::now_v7(), "admin").await),
    ];
    let promotion = support::promotion("Matrix sale");
    context
        .insert_promotion_with_coupon(&promotion, "MATRIX10")
        .await;
    let order = support::seed_order(owner);
    context.insert_order(&order).await;
    assert_eq!(context.sessions().close_all(revoked).await.unwrap(), 1);
    let app = context.spawn_app().await;

    let routes = query_api::startup::read_routes();
    let unlisted: Vec<&str> = routes
        .iter()
        .map(|r| r.path)
        .filter(|p| access_of(p).is_none())
        .collect();
    assert!(
        unlisted.is_empty(),
        "routes without a row in the matrix: {unlisted:?}"
    );

    let mut failures = Vec::new();
    for route in &routes {
        let access = access_of(route.path).unwrap();
        let id = match route.path {
            "/v1/products/{id}" => product.id,
            "/v1/carts/{id}" => cart.cart_id,
            "/v1/promotions/{id}" => promotion.id,
            "/v1/orders/{id}" => order.order.id,
            _ => owner,
        };
        let path = route
            .path
            .replace("{id}", &id.to_string())
            .replace("{code}", "MATRIX10");
        for (who, client) in &clients {
            let status = client
                .get(format!("{}{}", app.base_url, path))
                .send()
                .await
                .unwrap()
                .status();
            let expected = match (access, *who) {
                (_, "revoked") => Some(StatusCode::UNAUTHORIZED),
                (Access::Owner, "owner") => Some(StatusCode::OK),
                (Access::Owner, _) => Some(StatusCode::NOT_FOUND),
                (Access::OwnerOrAdmin, "owner" | "admin") => Some(StatusCode::OK),
                (Access::OwnerOrAdmin, "guest") => Some(StatusCode::UNAUTHORIZED),
                (Access::OwnerOrAdmin, _) => Some(StatusCode::NOT_FOUND),
                (Access::Anyone, _) => None,
                (_, "guest") => Some(StatusCode::UNAUTHORIZED),
                (Access::SignedIn, _) => None,
                (Access::Admin, "admin") => None,
                (Access::Admin, _) => Some(StatusCode::FORBIDDEN),
            };
            let ok = match expected {
                Some(expected) => status == expected,
                None => status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            };
            if !ok {
                failures.push(format!(
                    "GET {} as {who}: {status} (expected {expected:?})",
                    route.path
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
