use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn a_brand_is_created_with_a_client_chosen_id_and_patched() {
    let app = TestApp::spawn().await;
    let brand_id = Uuid::now_v7();
    let response = app
        .post(
            "/v1/brands",
            &json!({
                "brand_id": brand_id,
                "name": "Apple",
                "slug": "apple",
                "logo_url": "https://cdn.example.com/apple.png",
                "website_url": "https://www.apple.com",
            }),
        )
        .await;
    assert_eq!(
        response.headers()["location"],
        format!("/v1/brands/{brand_id}").as_str()
    );
    assert_eq!(created_id(response).await, brand_id);

    let body = ok_body(
        app.patch(
            &format!("/v1/brands/{brand_id}"),
            &json!({"slug": "apple-inc", "logo_url": null}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["version"], 2);
    let events = app.events(&brand_id.to_string()).await;
    assert_eq!(event_types(&events), ["BrandCreated", "BrandUpdated"]);
    let updated = &events[1].payload["BrandUpdated"];
    assert_eq!(updated["slug"], "apple-inc");
    assert_eq!(updated["previous_slug"], "apple");
    assert_eq!(updated["logo_url"], Value::Null);
    assert_eq!(updated["website_url"], "https://www.apple.com");
    assert_eq!(
        event_types(&app.events("brand_slug:apple-inc").await),
        ["UniqueKeyClaimed"]
    );

    // The same id again is refused by the aggregate, a taken slug by its claim.
    let before = app.event_count().await;
    problem(
        app.post(
            "/v1/brands",
            &json!({"brand_id": brand_id, "name": "Apple", "slug": "apple"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "already-exists",
    )
    .await;
    problem(
        app.post("/v1/brands", &json!({"name": "Other", "slug": "apple-inc"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "slug-taken",
    )
    .await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn brand_inputs_are_validated_field_by_field() {
    let app = TestApp::spawn().await;
    let body = problem(
        app.post(
            "/v1/brands",
            &json!({"name": "Sony", "slug": "Sony Corp", "website_url": "ftp://sony"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["slug", "website_url"]);
    assert_eq!(app.event_count().await, 0);
}
