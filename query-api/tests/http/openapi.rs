//! The OpenAPI contract the API serves: every route of `read_routes()`,
//! which the router is built from, is a GET operation of `/openapi.json`,
//! and every operation there is a route; so a route added without its
//! `#[utoipa::path]` (or a stale one) fails here. The interactive page
//! answers at `/docs`.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::TestContext;

#[tokio::test]
async fn every_route_is_in_the_contract_and_nothing_else() {
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.expect("a JSON document");
    assert_eq!(document["openapi"], "3.1.0");

    // Every read is a GET: the router is built from paths alone.
    let served: BTreeSet<(String, String)> = query_api::startup::read_routes()
        .iter()
        .map(|route| ("get".to_owned(), route.path.to_owned()))
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
    let context = TestContext::new().await;
    let app = context.spawn_app().await;
    let response = app.get("/docs").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = response.text().await.expect("a page");
    assert!(page.contains(r#"data-url="/openapi.json""#), "{page}");
    assert!(page.contains("<title>Query API</title>"), "{page}");
}
