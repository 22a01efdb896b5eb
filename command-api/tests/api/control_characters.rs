//! Control characters in text: PostgreSQL's JSONB refuses NUL outright (a
//! 500 if it got that far), and the others would be stored and shown. Every
//! text field of every create and update route answers 400 naming the field,
//! and nothing is appended.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

/// The characters each field is tried with: NUL, BEL, and a line separator
/// that is not a control character but breaks lines all the same.
const BAD: [&str; 3] = ["\u{0}", "\u{7}", "\u{2028}"];

/// The fields listed in a 400's `errors`.
fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors listed: {problem}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

/// `body` with the JSON pointer `pointer` set to `value`.
fn with(body: &Value, pointer: &str, value: Value) -> Value {
    let mut body = body.clone();
    *body
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    body
}

/// Sends `body` with each bad character inside the text at `pointer` and
/// expects a 400 naming `field`.
async fn refused(
    app: &TestApp,
    method: Method,
    path: &str,
    body: &Value,
    pointer: &str,
    field: &str,
) {
    let original = body
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{path}: no text at {pointer}"))
        .to_owned();
    for bad in BAD {
        let (head, tail) = original.split_at(original.len() / 2);
        let text = format!("{head}{bad}{tail}");
        let response = app
            .request(method.clone(), path)
            .json(&with(body, pointer, json!(text)))
            .send()
            .await
            .unwrap();
        let problem = problem(response, StatusCode::BAD_REQUEST, "validation").await;
        assert_eq!(
            fields(&problem),
            [field],
            "{method} {path} {text:?}: {problem}"
        );
    }
}

fn category_body() -> Value {
    json!({
        "name": "Smartphones",
        "slug": "smartphones",
        "description": "All the phones",
        "image_url": "https://cdn.example.com/c.jpg",
        "meta_title": "Phones",
        "meta_description": "Buy phones",
        "meta_keywords": ["phone", "mobile"],
    })
}

fn brand_body() -> Value {
    json!({
        "name": "Apple",
        "slug": "apple",
        "description": "Makes phones",
        "logo_url": "https://cdn.example.com/apple.png",
        "website_url": "https://www.apple.com",
    })
}

fn product_full_body() -> Value {
    json!({
        "sku": "CTRL-1",
        "name": "iPhone 15 Pro",
        "slug": "iphone-15-pro",
        "description": "Titanium",
        "short_description": "Pro phone",
        "currency": "THB",
        "meta_title": "iPhone",
        "meta_description": "Buy it",
        "meta_keywords": ["iphone", "apple"],
        "regular_price": "39900.00",
    })
}

/// Every text field: (JSON pointer, the field the problem names).
const CATEGORY_FIELDS: [(&str, &str); 7] = [
    ("/name", "name"),
    ("/slug", "slug"),
    ("/description", "description"),
    ("/image_url", "image_url"),
    ("/meta_title", "meta_title"),
    ("/meta_description", "meta_description"),
    ("/meta_keywords/1", "meta_keywords[1]"),
];

const BRAND_FIELDS: [(&str, &str); 5] = [
    ("/name", "name"),
    ("/slug", "slug"),
    ("/description", "description"),
    ("/logo_url", "logo_url"),
    ("/website_url", "website_url"),
];

const PRODUCT_CREATE_FIELDS: [(&str, &str); 10] = [
    ("/sku", "sku"),
    ("/name", "name"),
    ("/slug", "slug"),
    ("/description", "description"),
    ("/short_description", "short_description"),
    ("/currency", "currency"),
    ("/meta_title", "meta_title"),
    ("/meta_description", "meta_description"),
    ("/meta_keywords/1", "meta_keywords[1]"),
    ("/regular_price", "regular_price"),
];

#[tokio::test]
async fn control_characters_in_any_text_field_are_400_naming_it_and_append_nothing() {
    let app = TestApp::spawn().await;
    let category = app.category("existing-category").await;
    let brand = app.brand("existing-brand").await;
    let product = app.product(&product_body("CTRL-0", "ctrl-0")).await;
    let before = app.event_count().await;

    for (pointer, field) in CATEGORY_FIELDS {
        refused(
            &app,
            Method::POST,
            "/v1/categories",
            &category_body(),
            pointer,
            field,
        )
        .await;
        let patch = with(&category_body(), "/slug", json!("renamed-category"));
        let path = format!("/v1/categories/{category}");
        refused(&app, Method::PATCH, &path, &patch, pointer, field).await;
    }
    for (pointer, field) in BRAND_FIELDS {
        refused(
            &app,
            Method::POST,
            "/v1/brands",
            &brand_body(),
            pointer,
            field,
        )
        .await;
        let patch = with(&brand_body(), "/slug", json!("renamed-brand"));
        let path = format!("/v1/brands/{brand}");
        refused(&app, Method::PATCH, &path, &patch, pointer, field).await;
    }
    for (pointer, field) in PRODUCT_CREATE_FIELDS {
        refused(
            &app,
            Method::POST,
            "/v1/products",
            &product_full_body(),
            pointer,
            field,
        )
        .await;
    }
    let mut patch = product_full_body();
    for absent in ["sku", "currency", "regular_price"] {
        patch.as_object_mut().unwrap().remove(absent);
    }
    let path = format!("/v1/products/{product}");
    for (pointer, field) in PRODUCT_CREATE_FIELDS
        .into_iter()
        .filter(|(p, _)| !matches!(*p, "/sku" | "/currency" | "/regular_price"))
    {
        refused(&app, Method::PATCH, &path, &patch, pointer, field).await;
    }
    let path = format!("/v1/products/{product}/price");
    refused(
        &app,
        Method::PUT,
        &path,
        &json!({"regular_price": "100.00"}),
        "/regular_price",
        "regular_price",
    )
    .await;
    let path = format!("/v1/products/{product}/status");
    refused(
        &app,
        Method::PUT,
        &path,
        &json!({"status": "active"}),
        "/status",
        "status",
    )
    .await;

    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_control_character_in_a_field_name_is_400_naming_it() {
    let app = TestApp::spawn().await;
    for key in ["na\u{0}me", "name\u{7}"] {
        let mut body = category_body();
        body.as_object_mut()
            .unwrap()
            .insert(key.to_owned(), json!("x"));
        let problem = problem(
            app.post("/v1/categories", &body).await,
            StatusCode::BAD_REQUEST,
            "validation",
        )
        .await;
        assert_eq!(
            fields(&problem),
            [key.escape_debug().to_string()],
            "{problem}"
        );
    }
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn multi_line_fields_keep_tabs_and_newlines_single_line_ones_refuse_them() {
    let app = TestApp::spawn().await;
    let description = "Line one\n\tLine two";
    let body = with(&product_full_body(), "/description", json!(description));
    let body = with(&body, "/short_description", json!("Short\nand sweet"));
    let body = with(&body, "/meta_description", json!("Buy\tit"));
    let id = app.product(&body).await;
    let created = &app.events(&id.to_string()).await[0].payload["ProductCreated"];
    assert_eq!(created["description"], description);
    assert_eq!(created["short_description"], "Short\nand sweet");
    assert_eq!(created["meta_description"], "Buy\tit");

    let before = app.event_count().await;
    for (pointer, field) in [
        ("/name", "name"),
        ("/meta_title", "meta_title"),
        ("/meta_keywords/0", "meta_keywords[0]"),
    ] {
        for bad in ["two\nlines", "tab\tbed", "carriage\rreturn"] {
            let body = with(&category_body(), pointer, json!(bad));
            let problem = problem(
                app.post("/v1/categories", &body).await,
                StatusCode::BAD_REQUEST,
                "validation",
            )
            .await;
            assert_eq!(fields(&problem), [field], "{bad:?}: {problem}");
        }
    }
    let patch = json!({"description": "bell\u{7}"});
    let problem = problem(
        app.patch(&format!("/v1/products/{id}"), &patch).await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    assert_eq!(fields(&problem), ["description"], "{problem}");
    assert_eq!(app.event_count().await, before);
}
