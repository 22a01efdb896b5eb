//! Wiring: the adapters behind their ports, the router, and the listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use infrastructure::settings::{redact_url, Settings};
use tokio::net::TcpListener;

use crate::catalog::{self, CatalogReadModel, PgCatalogReadModel};
use crate::error::ApiError;
use crate::products::{
    self, ElasticsearchProductSearch, ProductCache, ProductSearch, RedisProductCache,
};
use crate::{correlation, health};

/// What the handlers share: one adapter per port.
#[derive(Clone)]
pub struct AppState {
    pub read_model: Arc<dyn CatalogReadModel>,
    pub cache: Arc<dyn ProductCache>,
    pub search: Arc<dyn ProductSearch>,
}

/// The routes of the query API over `state`.
pub fn router(state: AppState, body_limit_bytes: usize) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/v1/products", get(products::search_products))
        .route("/v1/products/{id}", get(products::get_product))
        .route("/v1/categories", get(catalog::list_categories))
        .route("/v1/brands", get(catalog::list_brands))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(axum::middleware::from_fn(correlation::propagate))
        .with_state(state)
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
    /// so the read-model tables exist), prepares the Redis and Elasticsearch
    /// adapters (they connect on first use) and binds `http.host:http.port`
    /// (port 0: an ephemeral one, see [`Application::port`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        tracing::info!(postgres = %redact_url(&settings.postgres.url), "connecting to postgresql");
        let pool = infrastructure::database::connect_and_migrate(&settings.postgres)
            .await
            .context("postgresql read model is not usable")?;
        let state = AppState {
            read_model: Arc::new(PgCatalogReadModel::new(pool)),
            cache: Arc::new(
                RedisProductCache::new(&settings.redis).context("redis settings are invalid")?,
            ),
            search: Arc::new(
                ElasticsearchProductSearch::new(&settings.elasticsearch)
                    .context("elasticsearch settings are invalid")?,
            ),
        };
        Self::with_state(&settings, state).await
    }

    /// Binds the listener for a router over the given adapters.
    pub async fn with_state(settings: &Settings, state: AppState) -> anyhow::Result<Self> {
        let address = format!("{}:{}", settings.http.host, settings.http.port);
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let local_addr = listener.local_addr()?;
        tracing::info!(address = %local_addr, "query api listening");
        Ok(Self {
            listener,
            router: router(state, settings.http.body_limit_bytes),
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
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("query api stopped");
        Ok(())
    }
}
