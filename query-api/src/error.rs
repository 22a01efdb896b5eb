//! The one error type of the HTTP layer and the one place that maps failures
//! to answers: every error leaves as `application/problem+json` (RFC 9457)
//! with a stable `type` URI. Adapters report [`StoreError`]s; a store that
//! is down becomes 503, anything unexpected an opaque 500 whose cause chain is
//! logged here, once.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use infrastructure::relay::error_chain;
use serde::Serialize;

/// Base of the `type` URIs of problem documents.
pub const PROBLEM_BASE: &str = "https://errors.ecommerce.local/";
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an adapter (PostgreSQL, Redis, Elasticsearch) reports when it cannot
/// answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer (connection refused or dropped, timeout,
    /// overloaded): worth retrying later.
    #[error("{store} is unavailable")]
    Unavailable {
        store: &'static str,
        #[source]
        source: BoxError,
    },
    /// The store answered, but not as expected (a failed query, an
    /// undecodable document).
    #[error("{store} request failed")]
    Failed {
        store: &'static str,
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    pub fn unavailable(store: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            store,
            source: source.into(),
        }
    }

    pub fn failed(store: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Failed {
            store,
            source: source.into(),
        }
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    pub fn store(&self) -> &'static str {
        match self {
            Self::Unavailable { store, .. } | Self::Failed { store, .. } => store,
        }
    }
}

/// One offending request parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

impl InvalidParam {
    pub fn new(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed path or query parameters.
    #[error("invalid request: {detail}")]
    BadRequest {
        detail: String,
        invalid_params: Vec<InvalidParam>,
    },
    #[error("not found: {detail}")]
    NotFound { detail: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No session where one is needed, or a bearer token naming none.
    #[error("unauthenticated: {detail}")]
    Unauthenticated { detail: String },
    /// A session without the right the request needs.
    #[error("forbidden: {detail}")]
    Forbidden { detail: String },
    /// Over the client's rate limit until the window resets.
    #[error("rate limited for {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server itself cannot serve the request now (overloaded, too slow).
    #[error("unavailable: {detail}")]
    Unavailable { detail: String },
    /// Anything else: answered as an opaque 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            invalid_params: Vec::new(),
        }
    }

    pub fn invalid_params(invalid_params: Vec<InvalidParam>) -> Self {
        let detail = invalid_params
            .iter()
            .map(|p| format!("{}: {}", p.name, p.reason))
            .collect::<Vec<_>>()
            .join("; ");
        Self::BadRequest {
            detail,
            invalid_params,
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::NotFound {
            detail: detail.into(),
        }
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::Unauthenticated {
            detail: detail.into(),
        }
    }

    pub fn rate_limited(retry_after_seconds: u64) -> Self {
        Self::RateLimited {
            retry_after_seconds,
        }
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden {
            detail: detail.into(),
        }
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable {
            detail: detail.into(),
        }
    }

    /// The error for a bare status that a layer answered with, without a
    /// problem document: the request timeout's 503 (see `startup::router`).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                Self::unavailable("the request did not complete in time; retry later")
            }
            StatusCode::NOT_FOUND => Self::not_found("no such resource"),
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            status => Self::Internal(anyhow::anyhow!("a layer answered {status}")),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
}

impl Problem {
    fn new(slug: &str, title: &'static str, status: StatusCode, detail: Option<String>) -> Self {
        Self {
            kind: format!("{PROBLEM_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail,
            invalid_params: Vec::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, problem) = match self {
            ApiError::BadRequest {
                detail,
                invalid_params,
            } => {
                tracing::debug!(%detail, "request rejected");
                let mut problem = Problem::new(
                    "invalid-request",
                    "Invalid request",
                    StatusCode::BAD_REQUEST,
                    Some(detail),
                );
                problem.invalid_params = invalid_params;
                (StatusCode::BAD_REQUEST, problem)
            }
            ApiError::NotFound { detail } => (
                StatusCode::NOT_FOUND,
                Problem::new(
                    "not-found",
                    "Not found",
                    StatusCode::NOT_FOUND,
                    Some(detail),
                ),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                Problem::new(
                    "method-not-allowed",
                    "Method not allowed",
                    StatusCode::METHOD_NOT_ALLOWED,
                    None,
                ),
            ),
            ApiError::Unauthenticated { detail } => {
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(Problem::new(
                        "unauthenticated",
                        "Authentication required",
                        StatusCode::UNAUTHORIZED,
                        Some(detail),
                    )),
                )
                    .into_response();
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
                );
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            ApiError::RateLimited {
                retry_after_seconds,
            } => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(Problem::new(
                        "rate-limited",
                        "Too many requests",
                        StatusCode::TOO_MANY_REQUESTS,
                        Some(format!(
                            "this client made too many requests; retry in {retry_after_seconds} s"
                        )),
                    )),
                )
                    .into_response();
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
                );
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
                return response;
            }
            ApiError::Forbidden { detail } => (
                StatusCode::FORBIDDEN,
                Problem::new(
                    "forbidden",
                    "Forbidden",
                    StatusCode::FORBIDDEN,
                    Some(detail),
                ),
            ),
            ApiError::Store(error) if error.is_unavailable() => {
                tracing::warn!(store = error.store(), error = %error_chain(&error), "store unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Problem::new(
                        "service-unavailable",
                        "Service unavailable",
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some(format!(
                            "{} is temporarily unavailable; retry later",
                            error.store()
                        )),
                    ),
                )
            }
            ApiError::Unavailable { detail } => {
                tracing::warn!(%detail, "request not served");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Problem::new(
                        "service-unavailable",
                        "Service unavailable",
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some(detail),
                    ),
                )
            }
            ApiError::Store(error) => {
                tracing::error!(store = error.store(), error = %error_chain(&error), "request failed");
                internal()
            }
            ApiError::Internal(error) => {
                tracing::error!(error = %error_chain(error.as_ref()), "request failed");
                internal()
            }
        };
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        response
    }
}

fn internal() -> (StatusCode, Problem) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Problem::new(
            "internal",
            "Internal server error",
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, String, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            content_type,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn bad_request_lists_the_parameters() {
        let (status, content_type, body) =
            body_of(ApiError::invalid_params(vec![InvalidParam::new(
                "page",
                "must be at least 1",
            )]))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(content_type, PROBLEM_CONTENT_TYPE);
        assert_eq!(
            body["type"],
            "https://errors.ecommerce.local/invalid-request"
        );
        assert_eq!(body["status"], 400);
        assert_eq!(body["detail"], "page: must be at least 1");
        assert_eq!(body["invalid_params"][0]["name"], "page");
    }

    #[tokio::test]
    async fn an_unavailable_store_is_503_and_a_failure_is_an_opaque_500() {
        let (status, _, body) = body_of(
            StoreError::unavailable("postgresql", std::io::Error::other("connection refused"))
                .into(),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body["type"],
            "https://errors.ecommerce.local/service-unavailable"
        );

        let (status, _, body) = body_of(
            StoreError::failed("postgresql", std::io::Error::other("secret table name")).into(),
        )
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["type"], "https://errors.ecommerce.local/internal");
        assert!(!body.to_string().contains("secret"));
    }
}
