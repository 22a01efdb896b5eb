//! Who is asking. The `authenticate` middleware resolves the bearer token
//! once per request, through the session check shared with the query API
//! (`infrastructure::sessions`), and leaves an [`Actor`] in the request's
//! extensions; handlers then ask for the right they need with an extractor:
//! [`Admin`], [`SignedIn`], or [`Actor`] itself for routes a guest may use.
//!
//! The acting user of every event comes from here, never from a header.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use infrastructure::sessions::{AuthenticationError, Session, SessionToken};

use crate::command::AppState;
use crate::error::ApiError;
use crate::request::ClientAddress;

/// The caller of one request.
#[derive(Debug, Clone)]
pub enum Actor {
    Guest,
    User {
        session: Session,
        token: SessionToken,
    },
}

impl Actor {
    pub fn session(&self) -> Option<&Session> {
        match self {
            Actor::Guest => None,
            Actor::User { session, .. } => Some(session),
        }
    }
}

pub const ADMIN_ROLE: &str = "admin";

/// Resolves the `Authorization` header into the request's [`Actor`]: 401 for
/// credentials that name no live session, 503 when the session store does
/// not answer (an unchecked token is never let through).
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Some(client) = ClientAddress::of_request(&parts, &state.trusted_proxies) {
        parts.extensions.insert(client);
    }
    let mut request = Request::from_parts(parts, body);
    let sessions = &state.sessions;
    let actor = match sessions.authenticate(request.headers(), Utc::now()).await {
        Ok(None) => Actor::Guest,
        Ok(Some((token, session))) => Actor::User { session, token },
        Err(AuthenticationError::Invalid(reason)) => {
            return ApiError::unauthenticated(reason).into_response()
        }
        Err(AuthenticationError::Store(error)) => {
            tracing::warn!(%error, "session store unreachable");
            return ApiError::service_unavailable(
                "sessions cannot be checked right now; retry later",
            )
            .into_response();
        }
    };
    request.extensions_mut().insert(actor);
    next.run(request).await
}

fn actor_of(parts: &Parts) -> Actor {
    // Routes outside the middleware (health, metrics) have no actor: guests.
    parts
        .extensions
        .get::<Actor>()
        .cloned()
        .unwrap_or(Actor::Guest)
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(actor_of(parts))
    }
}

/// A logged-in user, whatever their role.
pub struct SignedIn(pub Session, pub SessionToken);

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match actor_of(parts) {
            Actor::User { session, token } => Ok(SignedIn(session, token)),
            Actor::Guest => Err(ApiError::unauthenticated("log in first")),
        }
    }
}

/// A logged-in administrator.
pub struct Admin(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match actor_of(parts) {
            Actor::User { session, .. } if session.role == ADMIN_ROLE => Ok(Admin(session)),
            Actor::User { .. } => Err(ApiError::forbidden("this needs the admin role")),
            Actor::Guest => Err(ApiError::unauthenticated("log in as an admin first")),
        }
    }
}
