//! Wiring: the adapters behind their ports, the router, and the listener.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{middleware, Router};
use infrastructure::consistency::ReadModel;
use infrastructure::http_limits::request_limits;
use infrastructure::metrics::{self, PoolMetrics};
use infrastructure::rate_limit::{RateLimitSettings, RateLimiter};
use infrastructure::sessions::Sessions;
use infrastructure::settings::{redact_url, ConsistencySettings, HttpSettings, Settings};
use tokio::net::TcpListener;
use tower::load_shed::error::Overloaded;
use tower::{BoxError, ServiceBuilder};

use crate::auth::authenticate;
use crate::carts::{self, CartCache, CartDocuments, MongoCartDocuments, RedisCartCache};
use crate::catalog::{self, CatalogReadModel, PgCatalogReadModel};
use crate::consistency::{
    wait_until_applied, AppliedTokens, ConsistencyWait, PgAppliedTokens, ReadAfter,
};
use crate::error::{ApiError, PROBLEM_CONTENT_TYPE};
use crate::notifications::{self, MongoNotifications, NotificationsReadModel};
use crate::orders::{self, OrdersReadModel, PgOrdersReadModel};
use crate::products::{
    self, ElasticsearchProductSearch, ProductCache, ProductSearch, RedisProductCache,
};
use crate::promotions::{self, PgPromotionsReadModel, PromotionsReadModel};
use crate::rate_limit::limit_reads;
use crate::users::{self, PgUsersReadModel, UsersReadModel};
use crate::{correlation, health, openapi};

/// What the handlers share: one adapter per port.
#[derive(Clone)]
pub struct AppState {
    pub read_model: Arc<dyn CatalogReadModel>,
    pub cache: Arc<dyn ProductCache>,
    pub search: Arc<dyn ProductSearch>,
    pub applied: Arc<dyn AppliedTokens>,
    pub consistency: ConsistencyWait,
    pub users: Arc<dyn UsersReadModel>,
    pub sessions: Arc<Sessions>,
    pub limiter: Arc<RateLimiter>,
    pub rate_limits: RateLimitSettings,
    pub trusted_proxies: Arc<Vec<IpAddr>>,
    pub cart_cache: Arc<dyn CartCache>,
    pub cart_documents: Arc<dyn CartDocuments>,
    pub promotions: Arc<dyn PromotionsReadModel>,
    pub orders: Arc<dyn OrdersReadModel>,
    pub notifications: Arc<dyn NotificationsReadModel>,
}

impl AppState {
    /// Waits until every projection of `read_models` has applied the token
    /// the read carries, if it carries one.
    pub async fn read_after(
        &self,
        read_after: ReadAfter,
        read_models: &[ReadModel],
    ) -> Result<(), ApiError> {
        wait_until_applied(
            self.applied.as_ref(),
            self.consistency,
            read_after,
            read_models,
        )
        .await
    }
}

impl ConsistencyWait {
    pub fn from_settings(settings: &ConsistencySettings) -> Self {
        Self {
            bound: Duration::from_millis(settings.wait_ms),
            poll: Duration::from_millis(settings.poll_ms.max(1)),
        }
    }
}

/// The routes of the query API over `state`, outermost layer first:
/// metrics, correlation ids, the body limit; then, around the reads only,
/// the concurrency limit and the request timeout. `/health` and `/metrics`
/// stay outside the limit so that an overloaded server still reports
/// itself, and `/openapi.json` and `/docs` with them. `pools` get gauges on `/metrics`.
/// One read route of the API (all are GET).
pub struct ReadRoute {
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

/// Every read route. The router is built from this list alone, so the
/// authorisation matrix, which walks it, sees every route the API serves.
pub fn read_routes() -> Vec<ReadRoute> {
    let route = |path, handler| ReadRoute { path, handler };
    vec![
        route("/v1/products", get(products::search_products)),
        route("/v1/products/{id}", get(products::get_product)),
        route("/v1/categories", get(catalog::list_categories)),
        route("/v1/brands", get(catalog::list_brands)),
        route("/v1/me", get(users::get_me)),
        route("/v1/users", get(users::list_users)),
        route("/v1/users/{id}", get(users::get_user)),
        route("/v1/carts/{id}", get(carts::get_cart)),
        route("/v1/promotions", get(promotions::list_promotions)),
        route("/v1/promotions/{id}", get(promotions::get_promotion)),
        route("/v1/coupons/{code}", get(promotions::check_coupon)),
        route("/v1/me/orders", get(orders::list_my_orders)),
        route(
            "/v1/me/notifications",
            get(notifications::list_my_notifications),
        ),
        route("/v1/orders", get(orders::list_orders)),
        route("/v1/orders/{id}", get(orders::get_order)),
    ]
}

pub fn router(state: AppState, http: &HttpSettings, pools: Vec<PoolMetrics>) -> Router {
    let consistency_bound = state.consistency.bound;
    let reads = read_routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), limit_reads))
        .layer(
            ServiceBuilder::new()
                .layer(middleware::map_response(unavailable_problem))
                .layer(HandleErrorLayer::new(shed))
                // The wait for a consistency token is bounded on its own
                // and answers which projection lags; the timeout bounds the
                // rest of the work.
                .layer(request_limits(
                    http.max_concurrent_requests,
                    Duration::from_millis(http.request_timeout_ms) + consistency_bound,
                )),
        );
    Router::new()
        .route("/health", get(health::health))
        .merge(metrics::routes(pools))
        .merge(openapi::routes())
        .merge(reads)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(http.body_limit_bytes))
        .layer(axum::middleware::from_fn(correlation::propagate))
        // Outermost, so that every answer is counted.
        .layer(middleware::from_fn(metrics::record_http))
        .with_state(state)
}

/// Seconds a client told 503 should wait before retrying: long enough to
/// spread a burst of retries, short enough not to matter to a person.
const RETRY_AFTER_SECONDS: &str = "1";

/// Every 503 of the reads (shed, timed out, or a store that does not
/// answer) is a problem document that says when to come back; the
/// timeout's own answer has no body, so it gets one here.
async fn unavailable_problem(response: Response) -> Response {
    if response.status() != StatusCode::SERVICE_UNAVAILABLE {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_CONTENT_TYPE.as_bytes()));
    let mut response = if is_problem {
        response
    } else {
        ApiError::from_status(response.status()).into_response()
    };
    response
        .headers_mut()
        .entry(header::RETRY_AFTER)
        .or_insert(HeaderValue::from_static(RETRY_AFTER_SECONDS));
    response
}

/// The answer for a request refused by the concurrency limit (the only
/// error the layers below can produce).
async fn shed(error: BoxError) -> ApiError {
    if error.is::<Overloaded>() {
        ApiError::unavailable("the server is handling as many requests as it allows; retry later")
    } else {
        ApiError::Internal(anyhow::anyhow!(error))
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The running service: a bound listener and its router.
pub struct Application {
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
}

impl Application {
    /// Connects PostgreSQL (creating the database and running the migrations,
    /// so the read-model tables exist), prepares the Redis, Elasticsearch and
    /// MongoDB adapters (they connect on first use) and binds `http.host:http.port`
    /// (port 0: an ephemeral one, see [`Application::port`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // First: whatever is recorded before the recorder exists is lost.
        metrics::install();
        tracing::info!(postgres = %redact_url(&settings.postgres.url), "connecting to postgresql");
        let pool = infrastructure::database::connect_and_migrate(&settings.postgres)
            .await
            .context("postgresql read model is not usable")?;
        let pools = vec![PoolMetrics::new("postgres", pool.clone())];
        let state = AppState {
            read_model: Arc::new(PgCatalogReadModel::new(pool.clone())),
            users: Arc::new(PgUsersReadModel::new(pool.clone())),
            promotions: Arc::new(PgPromotionsReadModel::new(pool.clone())),
            orders: Arc::new(PgOrdersReadModel::new(pool.clone())),
            sessions: Arc::new(
                Sessions::new(
                    &settings.redis.url,
                    &settings.redis.key_prefix,
                    Duration::from_secs(settings.accounts.session_ttl_seconds),
                )
                .context("redis settings are invalid")?,
            ),
            limiter: Arc::new(
                RateLimiter::new(&settings.redis.url, &settings.redis.key_prefix)
                    .context("redis settings are invalid")?,
            ),
            rate_limits: settings.rate_limits.clone(),
            trusted_proxies: Arc::new(settings.http.trusted_proxies.clone()),
            applied: Arc::new(PgAppliedTokens::new(
                pool,
                settings.kafka.clone(),
                settings.relay.name.clone(),
            )),
            consistency: ConsistencyWait::from_settings(&settings.consistency),
            cache: Arc::new(
                RedisProductCache::new(&settings.redis).context("redis settings are invalid")?,
            ),
            search: Arc::new(
                ElasticsearchProductSearch::new(&settings.elasticsearch)
                    .context("elasticsearch settings are invalid")?,
            ),
            cart_cache: Arc::new(
                RedisCartCache::new(&settings.redis).context("redis settings are invalid")?,
            ),
            cart_documents: Arc::new(MongoCartDocuments::new(&settings.mongo)),
            notifications: Arc::new(MongoNotifications::new(&settings.mongo)),
        };
        Self::bind(&settings, state, pools).await
    }

    /// Binds the listener for a router over the given adapters (whose pools,
    /// if any, are not reported on `/metrics`).
    pub async fn with_state(settings: &Settings, state: AppState) -> anyhow::Result<Self> {
        Self::bind(settings, state, Vec::new()).await
    }

    async fn bind(
        settings: &Settings,
        state: AppState,
        pools: Vec<PoolMetrics>,
    ) -> anyhow::Result<Self> {
        let address = format!("{}:{}", settings.http.host, settings.http.port);
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let local_addr = listener.local_addr()?;
        tracing::info!(address = %local_addr, "query api listening");
        Ok(Self {
            listener,
            router: router(state, &settings.http, pools),
            local_addr,
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        tracing::info!("query api stopped");
        Ok(())
    }
}
