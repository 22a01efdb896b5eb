//! `POST /v1/me/notifications/{id}/read`: the recipient marks their own
//! notification read once; anyone else, and an id that names nothing, get a
//! 404.

use chrono::Utc;
use domain::notification::{
    NotificationChannels, NotificationEvent, NotificationType, RecipientPreferences,
};
use infrastructure::event_store::aggregates::new_events;
use infrastructure::event_store::{EventMetadata, StreamAppend};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

/// A notification for `user`, as the order notifications worker creates it.
async fn notification_for(app: &TestApp, user: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    let at = Utc::now();
    let preferences = RecipientPreferences {
        user_id: user,
        email_opt_in: true,
        push_opt_in: true,
        sms_opt_in: false,
        has_phone: false,
    };
    let created = NotificationEvent::NotificationCreated {
        notification_id: id,
        user_id: user,
        notification_type: NotificationType::OrderShipped,
        title: "Your order has been shipped!".into(),
        message: "Your order #ORD-2026-000001 is on its way.".into(),
        data: json!({"orderNumber": "ORD-2026-000001", "trackingNumber": "TH123456789"}),
        channels: NotificationChannels::for_recipient(&preferences, at),
        read: false,
        created_at: at,
    };
    let id_text = id.to_string();
    app.store
        .append(
            vec![StreamAppend {
                stream_id: id_text.clone(),
                aggregate_type: "notification".into(),
                expected_version: 0,
                events: new_events(&[created]),
            }],
            &EventMetadata {
                correlation_id: id,
                causation_id: id,
                user_id: None,
                client_ip: None,
                user_agent: Some("order-notifications".into()),
            },
            None,
            |_| Value::Null,
        )
        .await
        .expect("notification appended");
    id
}

#[tokio::test]
async fn the_recipient_marks_their_notification_read_once() {
    let app = TestApp::spawn().await;
    let (buyer, buyer_id) = app.customer("reader@example.com").await;
    let id = notification_for(&app, buyer_id).await;
    let path = format!("/v1/me/notifications/{id}/read");

    let first = app.send_as(&buyer, Method::POST, &path, None).await;
    assert_eq!(first.status(), StatusCode::OK, "{:?}", first.text().await);
    let again = app.send_as(&buyer, Method::POST, &path, None).await;
    assert_eq!(again.status(), StatusCode::OK);

    let events = app.events(&id.to_string()).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["NotificationCreated", "NotificationRead"]);
    assert_eq!(
        events[1].payload["NotificationRead"]["user_id"],
        json!(buyer_id)
    );
    assert_eq!(events[1].metadata.user_id, Some(buyer_id.to_string()));
}

#[tokio::test]
async fn someone_elses_notification_and_an_unknown_id_are_not_found() {
    let app = TestApp::spawn().await;
    let (_, buyer_id) = app.customer("owner@example.com").await;
    let (stranger, _) = app.customer("stranger@example.com").await;
    let id = notification_for(&app, buyer_id).await;

    for target in [id, Uuid::now_v7()] {
        let response = app
            .send_as(
                &stranger,
                Method::POST,
                &format!("/v1/me/notifications/{target}/read"),
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    // The admin is no recipient either.
    let response = app
        .send_as(
            &app.client,
            Method::POST,
            &format!("/v1/me/notifications/{id}/read"),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.events(&id.to_string()).await.len(), 1, "nothing read");
}
