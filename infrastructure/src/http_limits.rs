//! The request limits both HTTP APIs put around their routes: a concurrency
//! limit for the whole server, shedding what is over it at once, and a
//! request timeout answered 503. Each API wraps these in its own error
//! handling (`HandleErrorLayer` for the shed requests, a response map for the
//! timeout's bare 503), since each has its own error type.

use std::time::Duration;

use axum::http::StatusCode;
use tower::layer::util::{Identity, Stack};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;

pub type RequestLimits = ServiceBuilder<
    Stack<TimeoutLayer, Stack<GlobalConcurrencyLimitLayer, Stack<LoadShedLayer, Identity>>>,
>;

/// At most `max_concurrent` requests at once (the excess shed), each bounded
/// by `timeout`.
pub fn request_limits(max_concurrent: usize, timeout: Duration) -> RequestLimits {
    ServiceBuilder::new()
        .load_shed()
        // Global: `Router::layer` wraps each route separately, and the limit
        // is one for the whole server.
        .layer(GlobalConcurrencyLimitLayer::new(max_concurrent))
        // 503, not 408: the client sent its request, the server was too
        // slow. 408 would blame the client, and invites it to resend a
        // command automatically although a timed-out command may have
        // committed.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
}
