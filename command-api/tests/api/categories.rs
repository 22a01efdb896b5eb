use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use infrastructure::personal_data::is_sealed;

use crate::support::*;

#[tokio::test]
async fn creating_a_category_appends_it_with_the_request_metadata() {
    // The address behind the two proxies it came through.
    let app = TestApp::spawn_with(|s| {
        s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap(), "10.0.0.1".parse().unwrap()]
    })
    .await;
    let correlation_id = Uuid::now_v7();
    let response = app
        .request(Method::POST, "/v1/categories")
        .header("X-Correlation-Id", correlation_id.to_string())
        .header("User-Agent", "catalog-admin/1.0")
        // Ignored: the acting user is the session's.
        .header("X-User-Id", "admin-7")
        .header("X-Forwarded-For", "203.0.113.9, 10.0.0.1")
        .json(&json!({
            "name": " Smartphones ",
            "slug": "smartphones",
            "description": "All phones",
            "image_url": "https://cdn.example.com/c.jpg",
            "meta_keywords": ["phone", "mobile"],
            "sort_order": 3,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-correlation-id"],
        correlation_id.to_string().as_str()
    );
    let request_id: Uuid = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body = ok_body(response, StatusCode::CREATED).await;
    let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(location, format!("/v1/categories/{id}"));
    assert_eq!(body["version"], 1);

    let stored = app.events(&id.to_string()).await;
    let sealed = stored[0].metadata.client_ip.as_deref().unwrap();
    assert!(is_sealed(sealed), "stored sealed: {sealed}");
    assert!(is_sealed(stored[0].metadata.user_agent.as_deref().unwrap()));
    let events = app.opened_events(&id.to_string()).await;
    assert_eq!(event_types(&events), ["CategoryCreated"]);
    let created = &events[0];
    assert_eq!(created.aggregate_type, "category");
    let payload = &created.payload["CategoryCreated"];
    assert_eq!(payload["name"], "Smartphones");
    assert_eq!(payload["slug"], "smartphones");
    assert_eq!(payload["sort_order"], 3);
    assert_eq!(payload["parent_id"], serde_json::Value::Null);
    let metadata = &created.metadata;
    assert_eq!(metadata.correlation_id, correlation_id);
    assert_eq!(metadata.causation_id, request_id);
    assert_eq!(metadata.user_id, Some(app.admin_id.to_string()));
    assert_eq!(metadata.client_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(metadata.user_agent.as_deref(), Some("catalog-admin/1.0"));

    let claim = app.opened_events("category_slug:smartphones").await;
    assert_eq!(event_types(&claim), ["UniqueKeyClaimed"]);
    assert_eq!(claim[0].metadata, created.metadata);
    assert_eq!(
        body["position"].as_i64().unwrap(),
        created.position.max(claim[0].position)
    );
}

#[tokio::test]
async fn without_headers_the_metadata_has_fresh_ids_and_the_peer_address() {
    let app = TestApp::spawn().await;
    let response = app
        .post("/v1/categories", &json!({"name": "Audio", "slug": "audio"}))
        .await;
    let correlation_id: Uuid = response.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let id = created_id(response).await;
    let metadata = &app.opened_events(&id.to_string()).await[0].metadata;
    assert_eq!(metadata.correlation_id, correlation_id);
    assert_ne!(metadata.correlation_id, metadata.causation_id);
    assert_eq!(metadata.client_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(metadata.user_id, Some(app.admin_id.to_string()));
}

#[tokio::test]
async fn a_forwarded_address_from_a_peer_that_is_not_a_trusted_proxy_is_ignored() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::POST, "/v1/categories")
        .header("X-Forwarded-For", "203.0.113.9")
        .json(&json!({"name": "Audio", "slug": "audio"}))
        .send()
        .await
        .unwrap();
    let id = created_id(response).await;
    let metadata = &app.opened_events(&id.to_string()).await[0].metadata;
    assert_eq!(metadata.client_ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn a_parent_must_exist_and_a_slug_is_taken_once() {
    let app = TestApp::spawn().await;
    let before = app.event_count().await;
    let missing = Uuid::now_v7();
    let body = problem(
        app.post(
            "/v1/categories",
            &json!({"name": "Phones", "slug": "phones", "parent_id": missing}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "parent-category-not-found",
    )
    .await;
    assert_eq!(body["parent_id"], missing.to_string());
    assert_eq!(app.event_count().await, before);

    let parent = app.category("electronics").await;
    let child = created_id(
        app.post(
            "/v1/categories",
            &json!({"name": "Phones", "slug": "phones", "parent_id": parent}),
        )
        .await,
    )
    .await;
    let events = app.events(&child.to_string()).await;
    assert_eq!(
        events[0].payload["CategoryCreated"]["parent_id"],
        parent.to_string()
    );

    let before = app.event_count().await;
    let body = problem(
        app.post(
            "/v1/categories",
            &json!({"name": "Other", "slug": "phones"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "slug-taken",
    )
    .await;
    assert_eq!(body["slug"], "phones");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_patch_updates_details_moves_the_slug_claim_and_the_parent() {
    let app = TestApp::spawn().await;
    let root = app.category("electronics").await;
    let id = app.category("phones").await;

    let body = ok_body(
        app.patch(
            &format!("/v1/categories/{id}"),
            &json!({"slug": "mobile-phones", "description": "Handsets", "parent_id": root}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["version"], 3);
    let events = app.events(&id.to_string()).await;
    assert_eq!(
        event_types(&events),
        ["CategoryCreated", "CategoryUpdated", "CategoryMoved"]
    );
    let updated = &events[1].payload["CategoryUpdated"];
    assert_eq!(updated["slug"], "mobile-phones");
    assert_eq!(updated["name"], "phones", "absent fields keep their value");
    assert_eq!(updated["description"], "Handsets");
    assert_eq!(
        event_types(&app.events("category_slug:phones").await),
        ["UniqueKeyClaimed", "UniqueKeyReleased"]
    );
    // The old slug is free again; the new one is taken.
    app.category("phones").await;
    problem(
        app.post(
            "/v1/categories",
            &json!({"name": "x", "slug": "mobile-phones"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "slug-taken",
    )
    .await;

    // The root under its own descendant would be a cycle.
    problem(
        app.patch(&format!("/v1/categories/{root}"), &json!({"parent_id": id}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "category-cycle",
    )
    .await;
    // Deactivation, then the same again is refused.
    ok_body(
        app.patch(
            &format!("/v1/categories/{id}"),
            &json!({"is_active": false}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    problem(
        app.patch(
            &format!("/v1/categories/{id}"),
            &json!({"is_active": false}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "active-unchanged",
    )
    .await;
    // Null clears a nullable field, and is refused for a required one.
    ok_body(
        app.patch(
            &format!("/v1/categories/{id}"),
            &json!({"description": null}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let events = app.events(&id.to_string()).await;
    assert_eq!(
        events.last().unwrap().payload["CategoryUpdated"]["description"],
        serde_json::Value::Null
    );
    problem(
        app.patch(&format!("/v1/categories/{id}"), &json!({"name": null}))
            .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    problem(
        app.patch(
            &format!("/v1/categories/{}", Uuid::now_v7()),
            &json!({"name": "x"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
}
