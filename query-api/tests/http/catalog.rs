//! `GET /v1/categories` and `GET /v1/brands`.

use crate::support::{self, TestContext};

#[tokio::test]
async fn categories_are_listed_in_order_and_filtered() {
    let context = TestContext::new().await;
    let root = support::category("Electronics", 0);
    let mut phones = support::category("Phones", 2);
    phones.parent_id = Some(root.id);
    let mut audio = support::category("Audio", 2);
    audio.parent_id = Some(root.id);
    let mut pagers = support::category("Pagers", 1);
    pagers.parent_id = Some(root.id);
    pagers.is_active = false;
    for category in [&root, &phones, &audio, &pagers] {
        context.insert_category(category).await;
    }
    let app = context.spawn_admin_app().await;
    let names = |body: serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };

    let all = app.get_json("/v1/categories", 200).await;
    assert_eq!(all["items"][0], serde_json::to_value(&root).unwrap());
    assert_eq!(names(all), ["Electronics", "Pagers", "Audio", "Phones"]);
    let active = app.get_json("/v1/categories?is_active=true", 200).await;
    assert_eq!(names(active), ["Electronics", "Audio", "Phones"]);
    let children = app
        .get_json(&format!("/v1/categories?parent_id={}", root.id), 200)
        .await;
    assert_eq!(names(children), ["Pagers", "Audio", "Phones"]);
    let inactive_children = app
        .get_json(
            &format!("/v1/categories?parent_id={}&is_active=false", root.id),
            200,
        )
        .await;
    assert_eq!(names(inactive_children), ["Pagers"]);

    let problem = app.get_problem("/v1/categories?is_active=yes", 400).await;
    assert_eq!(
        problem["type"],
        "https://errors.ecommerce.local/invalid-request"
    );
    app.get_problem("/v1/categories?parent_id=root", 400).await;
}

#[tokio::test]
async fn brands_are_listed_by_name_and_filtered() {
    let context = TestContext::new().await;
    let app = context.spawn_admin_app().await;
    assert_eq!(
        app.get_json("/v1/brands", 200).await,
        serde_json::json!({ "items": [], "next_cursor": null })
    );
    let samsung = support::brand("Samsung");
    let apple = support::brand("Apple");
    let mut nokia = support::brand("Nokia");
    nokia.is_active = false;
    for brand in [&samsung, &apple, &nokia] {
        context.insert_brand(brand).await;
    }
    let all = app.get_json("/v1/brands", 200).await;
    assert_eq!(
        all,
        serde_json::json!({ "items": [apple.clone(), nokia.clone(), samsung.clone()], "next_cursor": null })
    );
    let active = app.get_json("/v1/brands?is_active=true", 200).await;
    assert_eq!(
        active,
        serde_json::json!({ "items": [apple.clone(), samsung.clone()], "next_cursor": null })
    );
    let inactive = app.get_json("/v1/brands?is_active=false", 200).await;
    assert_eq!(
        inactive,
        serde_json::json!({ "items": [nokia.clone()], "next_cursor": null })
    );
    app.get_problem("/v1/brands?is_active=1x", 400).await;

    // A page at a time, by cursor.
    let first = app.get_json("/v1/brands?limit=2", 200).await;
    assert_eq!(first["items"], serde_json::json!([apple, nokia]));
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = app
        .get_json(&format!("/v1/brands?limit=2&after={cursor}"), 200)
        .await;
    assert_eq!(
        second,
        serde_json::json!({ "items": [samsung], "next_cursor": null })
    );
    for bad in ["limit=0", "limit=501", "after=not-a-cursor"] {
        let problem = app.get_problem(&format!("/v1/brands?{bad}"), 400).await;
        assert!(
            problem["invalid_params"][0]["name"].is_string(),
            "{bad}: {problem}"
        );
    }
    app.get_problem("/v1/categories?after=%7B%7D", 400).await;
}
