//! What the two APIs' OpenAPI documents share: serving them (`GET
//! /openapi.json` and Scalar's page at `GET /docs`), and the helpers that
//! add each API's conventions to every operation of a generated document.
//!
//! A document is finished as JSON rather than through utoipa's types: an
//! OpenAPI 3.1 header object has a `required` member, which those types
//! lack, and a convention is easiest to read as the JSON it adds.

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

/// The HTTP methods an OpenAPI path item can hold operations for.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Scalar's API reference, reading the document from `/openapi.json`. The
/// script comes from Scalar's CDN at a pinned version, so the page changes
/// only when this line does.
const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>TITLE</title>
</head>
<body>
  <script id="api-reference" data-url="/openapi.json"></script>
  <script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference@1.76.0"></script>
</body>
</html>
"#;

/// `GET /openapi.json` (the document, rendered once) and `GET /docs`.
pub fn routes<S>(document: &Value) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let body = serde_json::to_vec(document).unwrap_or_default();
    let title = document["info"]["title"].as_str().unwrap_or("API");
    let page = DOCS_PAGE.replace("TITLE", &html_text(title));
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let body = body.clone();
                async move { json_response(body) }
            }),
        )
        .route("/docs", get(move || async move { Html(page.clone()) }))
}

fn json_response(body: Vec<u8>) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One operation of a document, as [`each_operation`] visits it.
pub struct Operation<'a> {
    pub path: &'a str,
    pub method: &'a str,
    pub body: &'a mut Map<String, Value>,
}

impl Operation<'_> {
    /// Whether the operation takes a request body.
    pub fn has_request_body(&self) -> bool {
        self.body.contains_key("requestBody")
    }

    /// Whether any of its security alternatives is anonymous (`{}`): the
    /// operation serves guests too.
    pub fn allows_anonymous(&self) -> bool {
        match self.body.get("security").and_then(Value::as_array) {
            None => true,
            Some(alternatives) => alternatives
                .iter()
                .any(|alternative| alternative.as_object().is_some_and(Map::is_empty)),
        }
    }

    /// The component name of the JSON request body's schema, if it is one.
    pub fn request_body_schema(&self) -> Option<String> {
        let reference = self
            .body
            .get("requestBody")?
            .pointer("/content/application~1json/schema/$ref")?
            .as_str()?;
        reference
            .strip_prefix("#/components/schemas/")
            .map(str::to_owned)
    }

    /// Makes every parameter declared inline non-nullable: a parameter is
    /// absent or given, never `null`, so the `Option` of an `IntoParams`
    /// field means "optional" alone.
    pub fn non_null_parameters(&mut self) {
        let Some(parameters) = self
            .body
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        for parameter in parameters {
            if let Some(schema) = parameter.get_mut("schema") {
                drop_null(schema);
            }
        }
    }

    /// Adds a reference to `#/components/parameters/{name}`, unless there is one.
    pub fn add_parameter(&mut self, name: &str) {
        let reference = json!({ "$ref": format!("#/components/parameters/{name}") });
        let parameters = self
            .body
            .entry("parameters")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(parameters) = parameters {
            if !parameters.contains(&reference) {
                parameters.push(reference);
            }
        }
    }

    /// Adds `status` as a reference to `#/components/responses/{name}`,
    /// unless the operation describes that status itself.
    pub fn add_response(&mut self, status: &str, name: &str) {
        let responses = self
            .body
            .entry("responses")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(responses) = responses {
            responses
                .entry(status)
                .or_insert_with(|| json!({ "$ref": format!("#/components/responses/{name}") }));
        }
    }
}

/// `schema` without its `null` alternative (`type: [T, "null"]`, or a
/// `oneOf` of `null` and one other schema).
fn drop_null(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|kind| kind != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            object.insert("type".into(), only);
        }
        return;
    }
    let alternatives = match object.get("oneOf").and_then(Value::as_array) {
        Some(alternatives) if alternatives.len() == 2 => alternatives.clone(),
        _ => return,
    };
    let is_null = |alternative: &Value| alternative.get("type") == Some(&json!("null"));
    if let (1, Some(other)) = (
        alternatives.iter().filter(|a| is_null(a)).count(),
        alternatives.iter().find(|a| !is_null(a)),
    ) {
        object.remove("oneOf");
        if let Value::Object(other) = other {
            for (key, value) in other {
                object.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
}

/// Visits every operation of `document`.
pub fn each_operation(document: &mut Value, mut visit: impl FnMut(Operation<'_>)) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            if let Some(body) = operation.as_object_mut() {
                visit(Operation { path, method, body });
            }
        }
    }
}

/// One response object of a document, as [`each_response`] visits it: an
/// operation's (with its status) or a shared one of
/// `components.responses` (without).
pub struct ResponseObject<'a> {
    pub status: Option<&'a str>,
    pub body: &'a mut Map<String, Value>,
}

impl ResponseObject<'_> {
    /// Whether the response is a success (a shared response never is).
    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|status| status.starts_with('2'))
    }

    /// The `$ref` of its JSON body's schema, if it has one.
    pub fn body_schema(&self) -> Option<&str> {
        self.body
            .get("content")?
            .get("application/json")?
            .get("schema")?
            .get("$ref")?
            .as_str()
    }

    /// Adds `header` as `name`, unless the response declares it already.
    pub fn add_header(&mut self, name: &str, header: Value) {
        let headers = self
            .body
            .entry("headers")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(headers) = headers {
            headers.entry(name).or_insert(header);
        }
    }

    /// Marks the declared header `name` as always sent.
    pub fn require_header(&mut self, name: &str) {
        if let Some(Value::Object(header)) = self
            .body
            .get_mut("headers")
            .and_then(|headers| headers.get_mut(name))
        {
            header.insert("required".into(), Value::Bool(true));
        }
    }
}

/// Visits every response object the document defines (those that are a
/// `$ref` to a shared response are visited where they are defined).
pub fn each_response(document: &mut Value, mut visit: impl FnMut(ResponseObject<'_>)) {
    each_operation(document, |operation| {
        let Some(responses) = operation
            .body
            .get_mut("responses")
            .and_then(Value::as_object_mut)
        else {
            return;
        };
        for (status, response) in responses.iter_mut() {
            if let Some(body) = response.as_object_mut().filter(|r| !r.contains_key("$ref")) {
                visit(ResponseObject {
                    status: Some(status),
                    body,
                });
            }
        }
    });
    if let Some(shared) = document
        .pointer_mut("/components/responses")
        .and_then(Value::as_object_mut)
    {
        for response in shared.values_mut() {
            if let Some(body) = response.as_object_mut() {
                visit(ResponseObject { status: None, body });
            }
        }
    }
}

/// Adds `entries` under `components.{section}`, replacing any of the same name.
pub fn add_components(document: &mut Value, section: &str, entries: Value) {
    let Value::Object(entries) = entries else {
        return;
    };
    let Some(root) = document.as_object_mut() else {
        return;
    };
    let components = root
        .entry("components")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(components) = components.as_object_mut() else {
        return;
    };
    let section = components
        .entry(section)
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(section) = section {
        section.extend(entries);
    }
}

/// The draft rate-limit headers (draft-ietf-httpapi-ratelimit-headers), as
/// both APIs send them on every limited route while the limiter answers.
pub fn rate_limit_headers() -> Value {
    json!({
        "RateLimit-Policy": {
            "description": "The limit of the route's class: `\"<class>\";q=<requests>;w=<window seconds>`. \
                Absent when the limiter does not answer (requests then go on unlimited).",
            "schema": { "type": "string", "examples": ["\"write\";q=120;w=60"] }
        },
        "RateLimit": {
            "description": "Where this client stands in the window: `\"<class>\";r=<remaining>;t=<seconds to reset>`.",
            "schema": { "type": "string", "examples": ["\"write\";r=119;t=42"] }
        }
    })
}

/// `Retry-After`, in whole seconds, as 429 and 503 answers send it.
pub fn retry_after_header() -> Value {
    json!({
        "description": "Seconds to wait before trying again.",
        "required": true,
        "schema": { "type": "integer", "minimum": 0 }
    })
}

/// A `$ref` to `#/components/headers/{name}`.
pub fn header_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

/// The bearer scheme both APIs read: a session token from the command API's
/// `POST /v1/sessions`.
pub fn bearer_scheme() -> Value {
    json!({
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "opaque session token",
            "description": "A session token from `POST /v1/sessions` of the command API: 256 random bits, \
                opaque, kept in Redis under its SHA-256 for `accounts.session_ttl_seconds`. A token that \
                names no live session is a 401, whatever the route; without the header the caller is a guest."
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        json!({
            "openapi": "3.1.0",
            "info": { "title": "T & <U>", "version": "1" },
            "paths": {
                "/a": {
                    "parameters": [],
                    "get": { "responses": { "200": { "description": "ok" } } },
                    "post": {
                        "security": [{ "bearerAuth": [] }],
                        "requestBody": { "content": {} },
                        "responses": { "404": { "$ref": "#/components/responses/NotFound" } }
                    }
                }
            },
            "components": { "responses": { "NotFound": { "description": "missing" } } }
        })
    }

    #[test]
    fn operations_get_parameters_and_responses_once() {
        let mut doc = document();
        let mut seen = Vec::new();
        each_operation(&mut doc, |mut operation| {
            seen.push((
                operation.method.to_owned(),
                operation.has_request_body(),
                operation.allows_anonymous(),
            ));
            operation.add_parameter("X");
            operation.add_parameter("X");
            operation.add_response("404", "Other");
            operation.add_response("500", "Internal");
        });
        assert_eq!(
            seen,
            [("get".into(), false, true), ("post".into(), true, false)]
        );
        assert_eq!(
            doc["paths"]["/a"]["get"]["parameters"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            doc["paths"]["/a"]["post"]["responses"]["404"]["$ref"],
            "#/components/responses/NotFound"
        );
        assert_eq!(
            doc["paths"]["/a"]["get"]["responses"]["500"]["$ref"],
            "#/components/responses/Internal"
        );
    }

    #[test]
    fn parameters_are_never_null() {
        let mut doc = json!({ "paths": { "/a": { "get": {
            "requestBody": { "content": { "application/json": { "schema": { "$ref": "#/components/schemas/B" } } } },
            "parameters": [
                { "name": "a", "in": "query", "schema": { "type": ["integer", "null"], "minimum": 1 } },
                { "name": "b", "in": "query", "schema": { "oneOf": [{ "type": "null" }, { "$ref": "#/c" }] } },
                { "$ref": "#/components/parameters/C" }
            ]
        } } } });
        let mut bodies = Vec::new();
        each_operation(&mut doc, |mut operation| {
            operation.non_null_parameters();
            bodies.push(operation.request_body_schema());
        });
        assert_eq!(bodies, [Some("B".to_owned())]);
        let parameters = &doc["paths"]["/a"]["get"]["parameters"];
        assert_eq!(
            parameters[0]["schema"],
            json!({ "type": "integer", "minimum": 1 })
        );
        assert_eq!(parameters[1]["schema"], json!({ "$ref": "#/c" }));
    }

    #[test]
    fn responses_are_visited_where_they_are_defined() {
        let mut doc = document();
        each_response(&mut doc, |mut response| {
            response.add_header("X-Id", json!({ "schema": { "type": "string" } }));
            if response.is_success() || response.status.is_none() {
                response.require_header("X-Id");
            }
        });
        assert_eq!(
            doc["paths"]["/a"]["get"]["responses"]["200"]["headers"]["X-Id"]["required"],
            true
        );
        assert_eq!(
            doc["components"]["responses"]["NotFound"]["headers"]["X-Id"]["required"],
            true
        );
        assert!(doc["paths"]["/a"]["post"]["responses"]["404"]
            .get("headers")
            .is_none());
    }
}
