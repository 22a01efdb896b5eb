//! The OpenAPI contract the API serves: every route of `command_routes()`,
//! which the router is built from, is an operation of `/openapi.json` with
//! its method, and every operation there is a route; so a route added
//! without its `#[utoipa::path]` (or a stale one) fails here. The
//! interactive page answers at `/docs`.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn every_route_is_in_the_contract_and_nothing_else() {
    let app = TestApp::spawn().await;
    let response = app
        .anonymous
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.expect("a JSON document");
    assert_eq!(document["openapi"], "3.1.0");

    let served: BTreeSet<(String, String)> = command_api::app::command_routes()
        .iter()
        .map(|route| (route.method.as_str().to_lowercase(), route.path.to_owned()))
        .collect();
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .filter(|key| !matches!(key.as_str(), "parameters" | "summary" | "description"))
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes without an operation: {undocumented:?}"
    );
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(
        stale.is_empty(),
        "operations the router does not serve: {stale:?}"
    );

    for (method, path) in &served {
        let operation = &document["paths"][path][method];
        for status in ["400", "401", "429", "500", "503"] {
            assert!(
                operation["responses"][status].is_object(),
                "{method} {path} does not describe its {status}"
            );
        }
        assert!(
            operation["security"].is_array(),
            "{method} {path} does not say who may call it"
        );
    }
}

#[tokio::test]
async fn the_docs_page_reads_the_contract() {
    let app = TestApp::spawn().await;
    let response = app
        .anonymous
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = response.text().await.expect("a page");
    assert!(page.contains(r#"data-url="/openapi.json""#), "{page}");
    assert!(page.contains("<title>Command API</title>"), "{page}");
}
