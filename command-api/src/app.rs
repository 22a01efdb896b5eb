//! The application: database and migrations, the router with its layers, the
//! bound listener, and (when enabled) the outbox relay running beside the
//! server and stopped with it. `build_relay` is the relay as its own process,
//! serving only `/health`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::http::Method;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter, MethodRouter};
use axum::{middleware, Router};
use infrastructure::database::connect_and_migrate;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::PgEventStore;
use infrastructure::http_limits::request_limits;
use infrastructure::metrics::{self, PoolMetrics};
use infrastructure::passwords::PasswordHasher;
use infrastructure::personal_data::PersonalData;
use infrastructure::rate_limit::RateLimiter;
use infrastructure::relay::OutboxRelay;
use infrastructure::sessions::Sessions;
use infrastructure::settings::{HttpSettings, IdempotencySettings, Settings};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::load_shed::error::Overloaded;
use tower::{BoxError, ServiceBuilder};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::auth::authenticate;
use crate::cart_expiry::CartExpiry;
use crate::command::AppState;
use crate::commands::{
    accounts, brands, carts, categories, checkout, codes, inventory, me, notifications, orders,
    payments, product_parts, products, promotions, users,
};
use crate::error::{ApiError, PROBLEM_CONTENT_TYPE};
use crate::health::health;
use crate::openapi;
use crate::rate_limit::limit_commands;
use crate::request::{request_context, RequestIds};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Commands,
    RelayOnly,
}

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    router: Router,
    relay: Option<OutboxRelay>,
    housekeeping: Option<Housekeeping>,
    cart_expiry: Option<CartExpiry>,
}

/// What a serving process deletes on a schedule: idempotency keys past their
/// retention and the guest-day keys past theirs. Every replica runs it; the
/// deletes are idempotent and go through indexes.
struct Housekeeping {
    store: PgEventStore,
    personal: PersonalData,
    idempotency: IdempotencySettings,
    guest_retention_days: u32,
}

impl Housekeeping {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let every = Duration::from_secs(self.idempotency.cleanup_interval_seconds.max(1));
        let mut ticks = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
            let now = chrono::Utc::now();
            let keys_before =
                now - chrono::Duration::hours(self.idempotency.retention_hours as i64);
            match self.store.prune_idempotency_keys(keys_before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "expired idempotency keys deleted"),
                Err(error) => tracing::warn!(%error, "idempotency keys not pruned; next time"),
            }
            let guests_before = now - chrono::Duration::days(i64::from(self.guest_retention_days));
            match self.personal.erase_guest_days_before(guests_before).await {
                Ok(0) => {}
                Ok(erased) => tracing::info!(erased, "guest-day keys past retention destroyed"),
                Err(error) => tracing::warn!(%error, "guest-day keys not destroyed; next time"),
            }
        }
    }
}

impl Application {
    /// Connects to PostgreSQL (running the migrations), binds
    /// `http.host:http.port` (port 0: an ephemeral one) and prepares the
    /// relay when `relay.enabled`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_as(settings, Role::Commands).await
    }

    /// The relay alone, whatever `relay.enabled` says, with `/health` on the
    /// HTTP port: for deployments that scale the API apart from the relay.
    pub async fn build_relay(mut settings: Settings) -> anyhow::Result<Self> {
        settings.relay.enabled = true;
        Self::build_as(settings, Role::RelayOnly).await
    }

    async fn build_as(settings: Settings, role: Role) -> anyhow::Result<Self> {
        // Before anything records: what is recorded without a recorder is lost.
        metrics::install();
        let pool = connect_and_migrate(&settings.postgres)
            .await
            .context("connecting to PostgreSQL and migrating")?;
        let store = PgEventStore::with_group_commit(pool, settings.event_store);
        let relay = if settings.relay.enabled {
            let relay = OutboxRelay::new(
                store.clone(),
                settings.kafka.clone(),
                settings.relay.clone(),
            )
            .context("creating the outbox relay")?;
            Some(relay)
        } else {
            None
        };
        let state = state_of(&settings, store).await?;
        let housekeeping = (role == Role::Commands).then(|| Housekeeping {
            store: state.store.clone(),
            personal: state.personal.clone(),
            idempotency: settings.idempotency.clone(),
            guest_retention_days: settings.accounts.guest_data_retention_days,
        });
        let cart_expiry = (role == Role::Commands && settings.carts.expiry.enabled).then(|| {
            CartExpiry::new(
                state.store.clone(),
                state.upcasters.clone(),
                state.personal.clone(),
                settings.carts.expiry.clone(),
            )
        });
        let router = match role {
            Role::Commands => router(state, &settings.http),
            Role::RelayOnly => Router::new()
                .route("/health", get(health))
                .merge(metrics::routes(vec![PoolMetrics::new(
                    "postgres",
                    state.store.pool().clone(),
                )]))
                .fallback(|| async { ApiError::route_not_found() })
                .with_state(state)
                .layer(middleware::from_fn(request_context)),
        };
        let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))
            .await
            .with_context(|| format!("binding {}:{}", settings.http.host, settings.http.port))?;
        let address = listener.local_addr()?;
        Ok(Self {
            listener,
            address,
            router,
            relay,
            housekeeping,
            cart_expiry,
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Serves until ctrl-c or SIGTERM, then drains in-flight requests and
    /// stops the relay.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` resolves.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let housekeeping = self
            .housekeeping
            .map(|housekeeping| tokio::spawn(housekeeping.run(stopped.clone())));
        let cart_expiry = self
            .cart_expiry
            .map(|expiry| tokio::spawn(expiry.run(stopped.clone())));
        let relay = self.relay.map(|relay| {
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                relay
                    .run(async move {
                        // Also resolves when the server is gone (sender dropped).
                        let _ = stopped.wait_for(|stop| *stop).await;
                    })
                    .await;
                tracing::info!("outbox relay stopped");
            })
        });
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = stop.send(true);
        })
        .await;
        if let Some(relay) = relay {
            relay.await.context("the outbox relay task failed")?;
        }
        if let Some(housekeeping) = housekeeping {
            housekeeping.await.context("the housekeeping task failed")?;
        }
        if let Some(cart_expiry) = cart_expiry {
            cart_expiry.await.context("the cart expiry task failed")?;
        }
        served.context("the http server failed")?;
        tracing::info!("command api stopped");
        Ok(())
    }
}

/// The routes and their layers, outermost first: metrics, request ids and
/// problem documents, tracing, the body limit; then, around the commands
/// only, the concurrency limit and the request timeout. `/health` and
/// `/metrics` stay outside the limit so that an overloaded server still
/// reports itself, and `/openapi.json` and `/docs` with them: describing
/// the API needs neither a session nor a share of the limit.
/// What handlers share, for `store`'s database; the erasures of the log are
/// applied to the key table again first (a restored key table must not
/// bring back an erased person's key).
pub async fn state_of(settings: &Settings, store: PgEventStore) -> anyhow::Result<AppState> {
    let personal = PersonalData::new(
        store.pool().clone(),
        &settings.personal_data,
        domain::personal::personal_fields,
        domain::personal::erased_value,
    )
    .context("reading the personal_data keys")?;
    personal
        .reapply_erasures()
        .await
        .context("re-applying erasures to the key table")?;
    let sessions = Sessions::new(
        &settings.redis.url,
        &settings.redis.key_prefix,
        Duration::from_secs(settings.accounts.session_ttl_seconds),
    )
    .context("the session store's Redis URL")?;
    let passwords =
        PasswordHasher::new(&settings.accounts).context("the argon2 parameters in accounts")?;
    Ok(AppState {
        store,
        upcasters: Upcasters::default(),
        relay: settings.relay.clone(),
        personal,
        sessions: Arc::new(sessions),
        passwords,
        trusted_proxies: Arc::new(settings.http.trusted_proxies.clone()),
        limiter: Arc::new(
            RateLimiter::new(&settings.redis.url, &settings.redis.key_prefix)
                .context("the rate limiter's Redis URL")?,
        ),
        rate_limits: settings.rate_limits.clone(),
        code_ttl: chrono::TimeDelta::seconds(
            i64::try_from(settings.accounts.code_ttl_seconds)
                .context("accounts.code_ttl_seconds is too large")?,
        ),
        cart_policy: domain::cart::CartPolicy {
            max_quantity_per_line: settings.carts.max_quantity_per_line,
            ttl: chrono::TimeDelta::hours(i64::from(settings.carts.ttl_hours)),
        },
        shipping_methods: Arc::new(settings.carts.shipping_methods.clone()),
        payment_provider: crate::payments::configured(&settings.payments)?,
    })
}

/// One method on one path of the command API.
pub struct CommandRoute {
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: Method, path: &'static str, handler: H) -> CommandRoute
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
    CommandRoute {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every command route, one method each. The router is built from this
/// list alone, so the authorisation matrix, which walks it, sees every route
/// the API serves: a new route without a row in the matrix fails it.
pub fn command_routes() -> Vec<CommandRoute> {
    vec![
        route(Method::POST, "/v1/categories", categories::create),
        route(Method::PATCH, "/v1/categories/{id}", categories::update),
        route(Method::POST, "/v1/brands", brands::create),
        route(Method::PATCH, "/v1/brands/{id}", brands::update),
        route(Method::POST, "/v1/products", products::create),
        route(Method::PATCH, "/v1/products/{id}", products::update),
        route(
            Method::PUT,
            "/v1/products/{id}/price",
            products::change_price,
        ),
        route(
            Method::PUT,
            "/v1/products/{id}/status",
            products::change_status,
        ),
        route(
            Method::PUT,
            "/v1/products/{id}/featured",
            products::set_featured,
        ),
        route(
            Method::POST,
            "/v1/products/{id}/images",
            product_parts::add_image,
        ),
        route(
            Method::DELETE,
            "/v1/products/{id}/images/{image_id}",
            product_parts::remove_image,
        ),
        route(
            Method::PUT,
            "/v1/products/{id}/images/{image_id}/primary",
            product_parts::set_primary_image,
        ),
        route(
            Method::PUT,
            "/v1/products/{id}/image-order",
            product_parts::reorder_images,
        ),
        route(
            Method::PUT,
            "/v1/products/{id}/attributes/{name}",
            product_parts::set_attribute,
        ),
        route(
            Method::DELETE,
            "/v1/products/{id}/attributes/{name}",
            product_parts::remove_attribute,
        ),
        route(
            Method::POST,
            "/v1/products/{id}/variants",
            product_parts::add_variant,
        ),
        route(
            Method::PATCH,
            "/v1/products/{id}/variants/{variant_id}",
            product_parts::update_variant,
        ),
        route(
            Method::PUT,
            "/v1/products/{id}/variants/{variant_id}/active",
            product_parts::set_variant_active,
        ),
        route(
            Method::POST,
            "/v1/inventory/{sku}/adjustments",
            inventory::adjust,
        ),
        route(
            Method::PUT,
            "/v1/inventory/{sku}/low-stock-threshold",
            inventory::set_low_stock_threshold,
        ),
        route(
            Method::PUT,
            "/v1/inventory/{sku}/tracking",
            inventory::set_tracking,
        ),
        route(Method::POST, "/v1/promotions", promotions::create),
        route(Method::PUT, "/v1/promotions/{id}", promotions::update),
        route(
            Method::PUT,
            "/v1/promotions/{id}/active",
            promotions::set_active,
        ),
        route(
            Method::POST,
            "/v1/promotions/{id}/coupons",
            promotions::issue,
        ),
        route(
            Method::POST,
            "/v1/coupons/{id}/deactivation",
            promotions::deactivate_coupon,
        ),
        route(Method::POST, "/v1/orders", checkout::place),
        route(Method::PUT, "/v1/orders/{id}/status", orders::change_status),
        route(Method::POST, "/v1/orders/{id}/payments", payments::start),
        route(
            Method::POST,
            "/v1/payments/webhooks/{provider}",
            payments::webhook,
        ),
        route(Method::POST, "/v1/payments/{id}/refunds", payments::refund),
        route(Method::POST, "/v1/orders/{id}/cancellation", orders::cancel),
        route(Method::POST, "/v1/carts", carts::open),
        route(Method::POST, "/v1/carts/{id}/items", carts::add_item),
        route(
            Method::PATCH,
            "/v1/carts/{id}/items/{item_id}",
            carts::change_item,
        ),
        route(
            Method::DELETE,
            "/v1/carts/{id}/items/{item_id}",
            carts::remove_item,
        ),
        route(Method::PUT, "/v1/carts/{id}/coupon", carts::apply_coupon),
        route(
            Method::DELETE,
            "/v1/carts/{id}/coupon",
            carts::remove_coupon,
        ),
        route(
            Method::PUT,
            "/v1/carts/{id}/shipping-method",
            carts::select_shipping_method,
        ),
        route(Method::POST, "/v1/users", accounts::register),
        route(Method::POST, "/v1/sessions", accounts::log_in),
        route(Method::DELETE, "/v1/sessions/current", accounts::log_out),
        route(Method::PATCH, "/v1/me", me::update_profile),
        route(Method::DELETE, "/v1/me", me::erase),
        route(Method::PUT, "/v1/me/email", me::change_email),
        route(Method::PUT, "/v1/me/password", me::change_password),
        route(
            Method::POST,
            "/v1/me/email/verification",
            codes::request_email_verification,
        ),
        route(
            Method::POST,
            "/v1/email-verifications/confirm",
            codes::confirm_email,
        ),
        route(
            Method::POST,
            "/v1/password-resets",
            codes::request_password_reset,
        ),
        route(
            Method::POST,
            "/v1/password-resets/confirm",
            codes::confirm_password_reset,
        ),
        route(Method::POST, "/v1/me/addresses", me::add_address),
        route(Method::PATCH, "/v1/me/addresses/{id}", me::update_address),
        route(Method::DELETE, "/v1/me/addresses/{id}", me::remove_address),
        route(
            Method::PUT,
            "/v1/me/addresses/{id}/default",
            me::set_default_address,
        ),
        route(
            Method::POST,
            "/v1/me/notifications/{id}/read",
            notifications::mark_read,
        ),
        route(Method::DELETE, "/v1/users/{id}", users::erase),
        route(Method::PUT, "/v1/users/{id}/status", users::change_status),
        route(Method::PUT, "/v1/users/{id}/role", users::change_role),
    ]
}

pub fn router(state: AppState, http: &HttpSettings) -> Router {
    let pools = vec![PoolMetrics::new("postgres", state.store.pool().clone())];
    let commands = command_routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limit_commands,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(middleware::map_response(retry_after))
                .layer(HandleErrorLayer::new(shed))
                .layer(request_limits(
                    http.max_concurrent_requests,
                    Duration::from_millis(http.request_timeout_ms),
                )),
        );
    Router::new()
        .route("/health", get(health))
        .merge(metrics::routes(pools))
        .merge(openapi::routes())
        .merge(commands)
        .fallback(|| async { ApiError::route_not_found() })
        .with_state(state)
        .layer(DefaultBodyLimit::max(http.body_limit_bytes))
        .layer(RequestBodyLimitLayer::new(http.body_limit_bytes))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let ids = request.extensions().get::<RequestIds>();
                    tracing::info_span!(
                        "http_request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = ids.map(|i| tracing::field::display(i.request_id)),
                        correlation_id = ids.map(|i| tracing::field::display(i.correlation_id)),
                    )
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(middleware::from_fn(request_context))
        // Outermost, so that every answer is counted, even one that
        // `request_context` gives without calling the routes.
        .layer(middleware::from_fn(metrics::record_http))
}

/// Seconds a client told 503 should wait before retrying: long enough to
/// spread a burst of retries, short enough not to matter to a person.
const RETRY_AFTER_SECONDS: &str = "1";

/// Every 503 of the commands (shed, timed out, or a store that does not
/// answer) says when to come back.
async fn retry_after(mut response: Response) -> Response {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .entry(header::RETRY_AFTER)
            .or_insert(HeaderValue::from_static(RETRY_AFTER_SECONDS));
    }
    response
}

/// The answer for a request refused by the concurrency limit (the only
/// error the layers below can produce).
async fn shed(error: BoxError) -> Response {
    let problem = if error.is::<Overloaded>() {
        tracing::warn!("request shed: concurrency limit reached");
        ApiError::service_unavailable(
            "the server is handling as many requests as it allows; retry later",
        )
    } else {
        tracing::error!(%error, "request failed in the limit layers");
        ApiError::from_status(StatusCode::INTERNAL_SERVER_ERROR)
    };
    // Rendered here rather than through `into_response`, so that its
    // logging of 5xx answers does not turn every shed request into an error:
    // shedding is the server working as configured.
    let body = serde_json::to_vec(&problem.to_problem()).unwrap_or_default();
    (
        problem.status(),
        [(header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE)],
        body,
    )
        .into_response()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
