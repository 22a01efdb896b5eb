//! Who is reading. The `authenticate` middleware resolves the bearer token
//! through the session check shared with the command API
//! (`infrastructure::sessions`) and leaves a [`Viewer`] in the request's
//! extensions. Public reads take the viewer to decide what it may see (only
//! active products, categories and brands, unless an admin asks); account
//! reads take [`SignedIn`] or [`Admin`].

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use infrastructure::sessions::{AuthenticationError, Session};

use crate::error::ApiError;
use crate::startup::AppState;

pub const ADMIN_ROLE: &str = "admin";

/// The reader of one request.
#[derive(Debug, Clone)]
pub enum Viewer {
    Guest,
    User(Session),
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        matches!(self, Viewer::User(session) if session.role == ADMIN_ROLE)
    }
}

/// 401 for credentials naming no live session, 503 when the session store
/// does not answer: an unchecked token is never served as a guest, since an
/// admin would then silently see less than they asked for.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let viewer = match state
        .sessions
        .authenticate(request.headers(), Utc::now())
        .await
    {
        Ok(None) => Viewer::Guest,
        Ok(Some((_, session))) => Viewer::User(session),
        Err(AuthenticationError::Invalid(reason)) => {
            return ApiError::unauthenticated(reason).into_response()
        }
        Err(AuthenticationError::Store(error)) => {
            tracing::warn!(%error, "session store unreachable");
            return ApiError::unavailable("sessions cannot be checked right now; retry later")
                .into_response();
        }
    };
    request.extensions_mut().insert(viewer);
    next.run(request).await
}

fn viewer_of(parts: &Parts) -> Viewer {
    parts
        .extensions
        .get::<Viewer>()
        .cloned()
        .unwrap_or(Viewer::Guest)
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(viewer_of(parts))
    }
}

/// A logged-in user, whatever their role.
pub struct SignedIn(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match viewer_of(parts) {
            Viewer::User(session) => Ok(SignedIn(session)),
            Viewer::Guest => Err(ApiError::unauthenticated("log in first")),
        }
    }
}

/// A logged-in administrator.
pub struct Admin(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match viewer_of(parts) {
            Viewer::User(session) if session.role == ADMIN_ROLE => Ok(Admin(session)),
            Viewer::User(_) => Err(ApiError::forbidden("this needs the admin role")),
            Viewer::Guest => Err(ApiError::unauthenticated("log in as an admin first")),
        }
    }
}
