//! `GET /v1/me/notifications`: the signed-in user's own notifications, over
//! the Mongo `notifications` collection as the `order-notifications` and
//! `account-mail` projections leave it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use infrastructure::consistency::{record_applied, record_watermark, PartitionOffsets};
use infrastructure::event_store::ConsistencyToken;
use mongodb::bson::Document;
use query_api::notifications::MongoNotifications;
use query_api::AppState;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{self, TestApp, TestContext};

const PATH: &str = "/v1/me/notifications";

fn instant(text: &str) -> DateTime<Utc> {
    text.parse().expect("an instant")
}

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

fn id_list(documents: &[&Document]) -> Vec<String> {
    documents
        .iter()
        .map(|d| support::notification_id(d))
        .collect()
}

/// The application, read by a user of this id and role.
async fn app_as(context: &TestContext, user_id: Uuid, role: &str) -> TestApp {
    let mut app = context.spawn_app().await;
    app.client = context.client_as(user_id, role).await;
    app
}

/// Every page, `limit` at a time.
async fn walk(app: &TestApp, limit: u32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut next = format!("{PATH}?limit={limit}");
    loop {
        let page = app.get_json(&next, 200).await;
        let page_ids = ids(&page);
        assert!(page_ids.len() <= limit as usize, "{next}");
        seen.extend(page_ids);
        match page["next_cursor"].as_str() {
            Some(after) => next = format!("{PATH}?limit={limit}&after={after}"),
            None => break seen,
        }
    }
}

#[tokio::test]
async fn your_notifications_are_yours_unread_first_a_page_at_a_time() {
    let context = TestContext::new().await;
    let (me, someone, admin_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let read_at = instant("2024-01-17T09:00:00Z");
    let confirmed =
        support::order_notification(me, "order_confirmed", instant("2024-01-15T10:30:00Z"));
    let shipped = support::marked_read(
        support::order_notification(me, "order_shipped", instant("2024-01-16T08:00:00.250Z")),
        read_at,
    );
    let verification = support::account_notification(me, instant("2024-01-10T09:00:00Z"));
    let old_read = support::marked_read(
        support::order_notification(me, "payment_received", instant("2024-01-01T00:00:00Z")),
        read_at,
    );
    let theirs =
        support::order_notification(someone, "order_delivered", instant("2024-01-20T00:00:00Z"));
    let admins =
        support::order_notification(admin_id, "order_cancelled", instant("2024-01-21T00:00:00Z"));
    context
        .notifications_put(&[
            confirmed.clone(),
            shipped.clone(),
            verification.clone(),
            old_read.clone(),
            theirs.clone(),
            admins.clone(),
            // A read mark whose content has not arrived yet.
            support::read_mark_alone(read_at),
        ])
        .await;
    let app = app_as(&context, me, "customer").await;

    let body = app.get_json(PATH, 200).await;
    let expected = id_list(&[&confirmed, &verification, &shipped, &old_read]);
    assert_eq!(ids(&body), expected);
    assert_eq!(body["unread_count"], 2);
    assert_eq!(body["next_cursor"], Value::Null);
    assert_eq!(
        body["items"][2],
        json!({
            "id": support::notification_id(&shipped),
            "type": "order_shipped",
            "title": "Your order has been shipped!",
            "message": "Your order ORD-2024-000001 is on its way.",
            "data": {
                "orderId": "0192f6a4-a000-7000-8000-000000000001",
                "orderNumber": "ORD-2024-000001",
                "trackingNumber": "TH1234567890",
                "amount": "76876.00",
            },
            "channels": {
                "email": { "sent": true, "sent_at": "2024-01-16T08:00:00.250Z" },
                "push": { "sent": false, "reason": "User opted out" },
                "sms": { "sent": false, "reason": "No phone number" },
            },
            "read": true,
            "read_at": "2024-01-17T09:00:00Z",
            "created_at": "2024-01-16T08:00:00.250Z",
        })
    );
    // An account message went by email only.
    assert_eq!(
        body["items"][1]["channels"],
        json!({ "email": { "sent": true, "sent_at": "2024-01-10T09:00:00Z" } })
    );
    assert_eq!(body["items"][1]["type"], "email_verification");
    assert_eq!(body["items"][1]["read_at"], Value::Null);

    for limit in [1, 2, 3] {
        assert_eq!(walk(&app, limit).await, expected, "limit {limit}");
    }
    let first = app.get_json(&format!("{PATH}?limit=1"), 200).await;
    assert_eq!(first["unread_count"], 2, "every unread one, not the page's");

    // The other customer sees only theirs; an admin only their own.
    let other = app_as(&context, someone, "customer").await;
    let body = other.get_json(PATH, 200).await;
    assert_eq!(ids(&body), id_list(&[&theirs]));
    assert_eq!(body["unread_count"], 1);
    let admin = app_as(&context, admin_id, "admin").await;
    let body = admin.get_json(PATH, 200).await;
    assert_eq!(ids(&body), id_list(&[&admins]));
    let stranger = app_as(&context, Uuid::now_v7(), "admin").await;
    let body = stranger.get_json(PATH, 200).await;
    assert_eq!(
        body,
        json!({ "items": [], "next_cursor": null, "unread_count": 0 })
    );
}

#[tokio::test]
async fn a_guest_is_refused_before_any_parameter_is_read() {
    let context = TestContext::new().await;
    let guest = context.spawn_app().await;
    for path in [
        PATH.to_owned(),
        format!("{PATH}?limit=0&after=nonsense"),
        format!("{PATH}?user_id={}", Uuid::now_v7()),
    ] {
        let problem = guest.get_problem(&path, 401).await;
        assert_eq!(
            problem["type"], "https://errors.ecommerce.local/unauthenticated",
            "{path}"
        );
        assert_eq!(
            guest.get(&path).await.headers()["www-authenticate"],
            "Bearer"
        );
    }
}

#[tokio::test]
async fn bad_parameters_are_400_problems() {
    let context = TestContext::new().await;
    let me = Uuid::now_v7();
    context
        .notifications_put(&[support::order_notification(
            me,
            "order_shipped",
            instant("2024-01-16T08:00:00Z"),
        )])
        .await;
    let app = app_as(&context, me, "customer").await;
    // An orders cursor is not a notifications one.
    let orders_cursor =
        "eyJjcmVhdGVkX2F0IjpudWxsLCJpZCI6IjAxOTJmNmE0LWEwMDAtNzAwMC04MDAwLTAwMDAwMDAwMDAwMSJ9";
    for (query, named) in [
        ("limit=0", Some("limit")),
        ("limit=501", Some("limit")),
        ("limit=-1", None),
        ("limit=ten", None),
        ("limit=", None),
        ("after=%%%", None),
        ("after=bm90LWEtY3Vyc29y", Some("after")),
        ("after=", Some("after")),
        ("after=not+base64!", Some("after")),
        (&format!("after={orders_cursor}"), Some("after")),
        ("user_id=0192f6a4-1111-7000-8000-000000000001", None),
        ("read=false", None),
    ] {
        let problem = app.get_problem(&format!("{PATH}?{query}"), 400).await;
        assert_eq!(
            problem["type"], "https://errors.ecommerce.local/invalid-request",
            "{query}"
        );
        if let Some(name) = named {
            assert_eq!(problem["invalid_params"][0]["name"], name, "{query}");
        }
    }
    let problem = app
        .get_problem(&format!("{PATH}?limit=0&after=bm90LWEtY3Vyc29y"), 400)
        .await;
    let names: Vec<&str> = problem["invalid_params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["limit", "after"]);
    // The bounds themselves are fine.
    app.get_json(&format!("{PATH}?limit=1"), 200).await;
    app.get_json(&format!("{PATH}?limit=500"), 200).await;
}

#[tokio::test]
async fn mongodb_down_is_a_503() {
    let context = TestContext::new().await;
    let mut mongo = context.settings.mongo.clone();
    mongo.url = support::DEAD_MONGO.into();
    let mut app = context
        .spawn_app_with(AppState {
            notifications: Arc::new(MongoNotifications::new(&mongo)),
            ..context.state()
        })
        .await;
    app.client = context.client_as(Uuid::now_v7(), "customer").await;
    let response = app.get(PATH).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://errors.ecommerce.local/service-unavailable"
    );
}

#[tokio::test]
async fn a_read_with_a_token_waits_for_both_notification_projections() {
    let mut context = TestContext::new().await;
    context.settings.consistency.wait_ms = 200;
    let me = Uuid::now_v7();
    let shipped = support::order_notification(me, "order_shipped", instant("2024-01-16T08:00:00Z"));
    context
        .notifications_put(std::slice::from_ref(&shipped))
        .await;
    let app = context.spawn_app_with(context.state()).await;
    let client = context.client_as(me, "customer").await;
    let token = "1.1.3e8.2a";
    let read = |by: &str| {
        let request = match by {
            "header" => client
                .get(format!("{}{PATH}", app.base_url))
                .header("Consistency-Token", token),
            _ => client.get(format!("{}{PATH}?consistency_token={token}", app.base_url)),
        };
        async move { request.send().await.unwrap() }
    };
    let lagging = |by: &'static str| async move {
        let response = read(by).await;
        assert_eq!(response.status(), 503, "by {by}");
        assert_eq!(response.headers()["retry-after"], "1");
        let problem: Value = response.json().await.unwrap();
        problem["detail"].as_str().unwrap().to_owned()
    };

    // Nothing published yet: neither projection has applied it.
    for by in ["header", "query"] {
        let detail = lagging(by).await;
        assert!(
            detail.contains("order-notifications") && detail.contains("account-mail"),
            "{detail}"
        );
    }

    // The relay published the token's events up to offset 4 of each topic
    // the two read; the order notifications have applied them, the account
    // mail not yet.
    let place = token.parse::<ConsistencyToken>().unwrap().place();
    let offsets = |kinds: &[&str]| {
        kinds
            .iter()
            .map(|kind| ((context.settings.kafka.topic_for(kind), 0), 4))
            .collect::<PartitionOffsets>()
    };
    let published = offsets(&["order", "payment", "notification", "user"]);
    let applied = |kinds: &[&str]| {
        offsets(kinds)
            .into_iter()
            .map(|(key, offset)| (key, offset + 1))
            .collect::<PartitionOffsets>()
    };
    let mut connection = context.pool().acquire().await.unwrap();
    record_watermark(
        &mut connection,
        &context.settings.relay.name,
        place,
        &published,
    )
    .await
    .unwrap();
    record_applied(
        &mut *connection,
        "order-notifications",
        &applied(&["order", "payment", "notification"]),
    )
    .await
    .unwrap();
    for by in ["header", "query"] {
        let detail = lagging(by).await;
        assert!(
            detail.contains("account-mail") && !detail.contains("order-notifications"),
            "{detail}"
        );
    }

    record_applied(&mut *connection, "account-mail", &applied(&["user"]))
        .await
        .unwrap();
    for by in ["header", "query"] {
        let response = read(by).await;
        assert_eq!(response.status(), 200, "by {by}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(ids(&body), id_list(&[&shipped]));
    }
}
