//! The admins' user commands over real HTTP: status and role changes that
//! end the user's sessions in the real Redis, erasure, and who may ask.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

/// 401: the client's session is gone.
async fn assert_signed_out(app: &TestApp, client: &reqwest::Client) {
    let response = app
        .send_as(
            client,
            Method::PATCH,
            "/v1/me",
            Some(&json!({ "bio": "still here?" })),
        )
        .await;
    problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

async fn set_status(app: &TestApp, id: Uuid, body: Value) -> reqwest::Response {
    app.put(&format!("/v1/users/{id}/status"), &body).await
}

#[tokio::test]
async fn a_suspension_ends_the_users_sessions_and_refuses_their_login() {
    let app = TestApp::spawn().await;
    let email = "somchai@example.com";
    let (somchai, id) = app.customer(email).await;
    let before = app.event_count().await;
    for (body, field) in [
        (json!({ "status": "suspended" }), Some("reason")),
        (
            json!({ "status": "suspended", "reason": "  " }),
            Some("reason"),
        ),
        (
            json!({ "status": "active", "reason": "why not" }),
            Some("reason"),
        ),
        (json!({ "status": "banned" }), None),
        (
            json!({ "status": "suspended", "reason": "x", "until": "never" }),
            None,
        ),
    ] {
        let refused = problem(
            set_status(&app, id, body.clone()).await,
            StatusCode::BAD_REQUEST,
            "validation",
        )
        .await;
        if let Some(field) = field {
            assert_eq!(refused["errors"][0]["field"], field, "{body}: {refused}");
        }
    }
    assert_eq!(app.event_count().await, before, "nothing appended");

    let suspend = json!({ "status": "suspended", "reason": "chargebacks" });
    let answer = ok_body(set_status(&app, id, suspend.clone()).await, StatusCode::OK).await;
    assert_eq!(answer["id"], id.to_string());
    assert_signed_out(&app, &somchai).await;
    problem(
        app.try_log_in(email, CUSTOMER_PASSWORD).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem(
        set_status(&app, id, suspend).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-status-transition",
    )
    .await;

    ok_body(
        set_status(&app, id, json!({ "status": "active" })).await,
        StatusCode::OK,
    )
    .await;
    let somchai = bearer_client(
        &ok_body(
            app.try_log_in(email, CUSTOMER_PASSWORD).await,
            StatusCode::CREATED,
        )
        .await,
    );
    ok_body(
        set_status(&app, id, json!({ "status": "inactive" })).await,
        StatusCode::OK,
    )
    .await;
    assert_signed_out(&app, &somchai).await;
    problem(
        app.try_log_in(email, CUSTOMER_PASSWORD).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // An inactive account has nothing left to suspend.
    problem(
        set_status(
            &app,
            id,
            json!({ "status": "suspended", "reason": "chargebacks" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-status-transition",
    )
    .await;

    let events = app.opened_events(&id.to_string()).await;
    let statuses: Vec<&str> = event_types(&events)
        .into_iter()
        .filter(|t| t.starts_with("UserSuspended") || t.ends_with("activated"))
        .collect();
    assert_eq!(
        statuses,
        ["UserSuspended", "UserReactivated", "UserDeactivated"]
    );
    let suspended = &events
        .iter()
        .find(|e| e.event_type == "UserSuspended")
        .unwrap();
    assert_eq!(suspended.payload["UserSuspended"]["reason"], "chargebacks");
    assert_eq!(
        suspended.payload["UserSuspended"]["previous_status"],
        "active"
    );
    assert_eq!(suspended.metadata.user_id, Some(app.admin_id.to_string()));
}

#[tokio::test]
async fn admin_routes_refuse_customers_and_guests_and_answer_404_for_unknown_users() {
    let app = TestApp::spawn().await;
    let (customer, id) = app.customer("somchai@example.com").await;
    let product = app.product(&product_body("USR-1", "usr-1")).await;
    let before = app.event_count().await;
    let routes = |id: Uuid| {
        [
            (
                Method::PUT,
                format!("/v1/users/{id}/status"),
                Some(json!({ "status": "suspended", "reason": "chargebacks" })),
            ),
            (
                Method::PUT,
                format!("/v1/users/{id}/role"),
                Some(json!({ "role": "admin" })),
            ),
            (Method::DELETE, format!("/v1/users/{id}"), None),
        ]
    };
    for (method, path, body) in routes(id) {
        problem(
            app.send_as(&customer, method.clone(), &path, body.as_ref())
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        let guest = app
            .send_as(&app.anonymous, method, &path, body.as_ref())
            .await;
        assert_eq!(guest.headers()["www-authenticate"], "Bearer");
        problem(guest, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    // Neither an id nobody has nor another aggregate's id names a user.
    for unknown in [Uuid::now_v7(), product] {
        for (method, path, body) in routes(unknown) {
            let refused = problem(
                app.send_as(&app.client, method, &path, body.as_ref()).await,
                StatusCode::NOT_FOUND,
                "not-found",
            )
            .await;
            assert_eq!(refused["resource"], "user", "{refused}");
        }
    }
    problem(
        app.put("/v1/users/not-a-uuid/role", &json!({ "role": "admin" }))
            .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    assert_eq!(app.event_count().await, before, "nothing appended");
}

#[tokio::test]
async fn a_role_change_applies_at_the_next_login() {
    let app = TestApp::spawn().await;
    let email = "somchai@example.com";
    let (somchai, id) = app.customer(email).await;
    let category = json!({ "name": "Phones", "slug": "phones" });
    problem(
        app.send_as(&somchai, Method::POST, "/v1/categories", Some(&category))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem(
        app.put(&format!("/v1/users/{id}/role"), &json!({ "role": "root" }))
            .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;

    ok_body(
        app.put(&format!("/v1/users/{id}/role"), &json!({ "role": "admin" }))
            .await,
        StatusCode::OK,
    )
    .await;
    // The old session carried the customer role: it is gone.
    problem(
        app.send_as(&somchai, Method::POST, "/v1/categories", Some(&category))
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let session = ok_body(
        app.try_log_in(email, CUSTOMER_PASSWORD).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(session["role"], "admin");
    let promoted = bearer_client(&session);
    created_id(
        app.send_as(&promoted, Method::POST, "/v1/categories", Some(&category))
            .await,
    )
    .await;

    ok_body(
        app.put(
            &format!("/v1/users/{id}/role"),
            &json!({ "role": "customer" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_signed_out(&app, &promoted).await;
    let events = app.events(&id.to_string()).await;
    let roles: Vec<(&Value, &Value)> = events
        .iter()
        .filter(|e| e.event_type == "UserRoleChanged")
        .map(|e| {
            let body = &e.payload["UserRoleChanged"];
            (&body["previous_role"], &body["role"])
        })
        .collect();
    assert_eq!(
        roles,
        [
            (&json!("customer"), &json!("admin")),
            (&json!("admin"), &json!("customer")),
        ]
    );
}

#[tokio::test]
async fn an_admin_erases_a_user_once_and_the_email_registers_again() {
    let app = TestApp::spawn().await;
    let email = "somchai@example.com";
    let (somchai, id) = app.customer(email).await;
    let path = format!("/v1/users/{id}");
    let erase = || {
        app.request(Method::DELETE, &path)
            .header("Idempotency-Key", "erase-somchai")
            .send()
    };
    let erased = erase().await.unwrap();
    assert_eq!(erased.status(), StatusCode::NO_CONTENT);
    let token = erased.headers()["consistency-token"].clone();
    assert_signed_out(&app, &somchai).await;
    problem(
        app.try_log_in(email, CUSTOMER_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
    )
    .await;
    let count = app.event_count().await;

    let replayed = erase().await.unwrap();
    assert_eq!(replayed.status(), StatusCode::NO_CONTENT);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(replayed.headers()["consistency-token"], token);
    problem(app.delete(&path).await, StatusCode::NOT_FOUND, "not-found").await;
    assert_eq!(app.event_count().await, count, "nothing appended again");

    let events = app.opened_events(&id.to_string()).await;
    let last = events.last().unwrap();
    assert_eq!(last.event_type, "UserErased");
    assert_eq!(last.metadata.user_id, Some(app.admin_id.to_string()));
    assert_eq!(
        events[0].payload["UserRegistered"]["email"],
        format!("erased-{id}@erased.invalid")
    );
    let (_, again) = app.customer(email).await;
    assert_ne!(again, id);
}
