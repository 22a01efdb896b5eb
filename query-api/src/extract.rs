//! axum's `Query` and `Path` extractors, with their rejections turned into
//! [`ApiError::BadRequest`] so that a malformed parameter is a problem+json 400
//! like every other error.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::consistency::without_token_param;
use crate::error::ApiError;

/// `Query<T>` whose rejection is a problem+json 400.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The consistency token is every read's parameter, not the endpoint's.
        let query = without_token_param(parts.uri.query().unwrap_or(""));
        let uri: axum::http::Uri = format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::bad_request("invalid query string"))?;
        Query::<T>::try_from_uri(&uri)
            .map(|Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::bad_request(format!("invalid query string: {}", source_text(&rejection)))
            })
    }
}

/// `Path<T>` whose rejection is a problem+json 400.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            // A route without parameters reached this extractor: a bug, not a bad request.
            Err(rejection @ PathRejection::MissingPathParams(_)) => Err(ApiError::Internal(
                anyhow::anyhow!("path extraction failed: {}", rejection.body_text()),
            )),
            Err(rejection) => Err(ApiError::bad_request(format!(
                "invalid path parameter: {}",
                source_text(&rejection)
            ))),
        }
    }
}

/// The innermost message of a rejection (the serde error), without axum's
/// generic prefix.
fn source_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}
