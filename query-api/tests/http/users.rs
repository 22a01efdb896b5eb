//! `GET /v1/me` for the logged-in user and `GET /v1/users` for admins, over
//! the seed's accounts tables as the projectors leave them.

use serde_json::json;
use uuid::Uuid;

use crate::support::TestContext;

/// A user row (with its profile) as the projection writes it.
async fn insert_user(context: &TestContext, email: &str, status: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO read_model.users (id, email, password_hash, first_name, last_name, phone, \
         status, email_verified, created_at, updated_at) \
         VALUES ($1, $2, '$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA', 'Somchai', 'Jaidee', NULL, $3, TRUE, \
         '2026-12-01T08:00:00Z', '2026-12-02T08:00:00Z')",
    )
    .bind(id)
    .bind(email)
    .bind(status)
    .execute(context.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO read_model.user_profiles (user_id, bio, preferences, created_at, updated_at) \
         VALUES ($1, 'Likes phones', '{\"notifications\": {\"email\": true}}', \
         '2026-12-01T08:00:00Z', '2026-12-01T08:00:00Z')",
    )
    .bind(id)
    .execute(context.pool())
    .await
    .unwrap();
    id
}

async fn insert_address(context: &TestContext, user: Uuid, city: &str, is_default: bool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO read_model.user_addresses (id, user_id, type, first_name, last_name, \
         street_address_1, city, state_province, postal_code, country, is_default) \
         VALUES ($1, $2, 'home', 'Somchai', 'Jaidee', '1 Sukhumvit Rd', $3, 'Bangkok', '10110', 'TH', $4)",
    )
    .bind(id)
    .bind(user)
    .bind(city)
    .bind(is_default)
    .execute(context.pool())
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn me_is_the_logged_in_user_with_profile_and_addresses_default_first() {
    let context = TestContext::new().await;
    let me = insert_user(&context, "somchai@example.com", "active").await;
    let other = insert_user(&context, "other@example.com", "active").await;
    let work = insert_address(&context, me, "Bang Rak", false).await;
    let home = insert_address(&context, me, "Watthana", true).await;
    insert_address(&context, other, "Chiang Mai", true).await;

    let mut app = context.spawn_app().await;
    app.client = context.client_as(me, "customer").await;
    let body = app.get_json("/v1/me", 200).await;
    assert_eq!(body["id"], me.to_string());
    assert_eq!(body["email"], "somchai@example.com");
    assert_eq!(body["status"], "active");
    assert_eq!(body["email_verified"], true);
    assert!(body.get("password_hash").is_none(), "never served: {body}");
    assert_eq!(body["profile"]["bio"], "Likes phones");
    assert_eq!(
        body["profile"]["preferences"],
        json!({"notifications": {"email": true}})
    );
    let addresses: Vec<&str> = body["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(addresses, [home.to_string(), work.to_string()]);
    assert_eq!(body["addresses"][0]["is_default"], true);
    assert_eq!(body["addresses"][0]["type"], "home");

    let guest = context.spawn_app().await;
    let refused = guest.get_problem("/v1/me", 401).await;
    assert_eq!(
        refused["type"],
        "https://errors.ecommerce.local/unauthenticated"
    );
}

#[tokio::test]
async fn a_session_whose_user_is_not_projected_yet_is_404() {
    let context = TestContext::new().await;
    let mut app = context.spawn_app().await;
    app.client = context.client_as(Uuid::now_v7(), "customer").await;
    app.get_problem("/v1/me", 404).await;
}

#[tokio::test]
async fn admins_list_users_by_status_and_email_a_page_at_a_time() {
    let context = TestContext::new().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let status = if n == 2 { "suspended" } else { "active" };
        ids.push(insert_user(&context, &format!("user{n}@example.com"), status).await);
    }
    let admin = context.spawn_admin_app().await;

    let first = admin.get_json("/v1/users?limit=2", 200).await;
    let page_ids = |body: &serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(page_ids(&first), [ids[0].to_string(), ids[1].to_string()]);
    let mut seen = page_ids(&first);
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    while let Some(after) = cursor {
        let page = admin
            .get_json(&format!("/v1/users?limit=2&after={after}"), 200)
            .await;
        seen.extend(page_ids(&page));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    let expected: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    assert_eq!(seen, expected, "every user once, in order");

    let suspended = admin.get_json("/v1/users?status=suspended", 200).await;
    assert_eq!(page_ids(&suspended), [ids[2].to_string()]);
    let by_email = admin
        .get_json("/v1/users?email=USER3@example.com", 200)
        .await;
    assert_eq!(page_ids(&by_email), [ids[3].to_string()]);
    admin.get_problem("/v1/users?status=deleted", 400).await;

    let one = admin.get_json(&format!("/v1/users/{}", ids[4]), 200).await;
    assert_eq!(one["email"], "user4@example.com");
    admin
        .get_problem(&format!("/v1/users/{}", Uuid::now_v7()), 404)
        .await;

    let mut customer = context.spawn_app().await;
    customer.client = context.client_as(ids[0], "customer").await;
    customer.get_problem("/v1/users", 403).await;
    customer
        .get_problem(&format!("/v1/users/{}", ids[1]), 403)
        .await;
    context
        .spawn_app()
        .await
        .get_problem("/v1/users", 401)
        .await;
}
