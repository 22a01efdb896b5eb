//! Prometheus metrics shared by the three binaries: the process-wide
//! recorder behind the `metrics` facade, `GET /metrics` in the Prometheus
//! text format, per-route HTTP counters and latencies, and the PostgreSQL
//! pool gauges, refreshed at scrape time.
//!
//! Anything emitted through the facade macros anywhere in the process (the
//! event store, the relay, ...) is rendered, because the recorder is global.
//! Histograms whose name ends in `_seconds` get [`LATENCY_BUCKETS`];
//! `event_store_append_group_size` gets [`GROUP_SIZE_BUCKETS`],
//! `projector_event_lag_seconds` [`EVENT_LAG_BUCKETS`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Transaction};

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `route` label of requests that matched no route: the raw path would
/// give every scanner probe its own time series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Seconds, from 1 ms (a cached read) to 30 s (beyond any configured
/// request timeout, so that timeouts land in a finite bucket).
/// End-to-end lag, command to read model: fine where the goal (p99 ≤ 500 ms)
/// is decided.
pub const EVENT_LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0,
    3.0, 5.0, 10.0, 30.0, 60.0,
];

pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Events per append group: one command appends a handful, a relay or
/// benchmark batch up to a few hundred.
pub const GROUP_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Histogram samples are buffered until drained; a scrape drains them too,
/// but a process nobody scrapes must not grow without bound.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the global recorder on first use and returns its handle; every
/// later call (tests build many applications in one process) returns the
/// same handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(install_recorder).clone()
}

fn install_recorder() -> PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("event_store_append_group_size".into()),
                GROUP_SIZE_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("projector_event_lag_seconds".into()),
                EVENT_LAG_BUCKETS,
            )
        })
        .expect("the bucket lists are not empty");
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(error) = metrics::set_global_recorder(recorder) {
        // Only this function installs one, so this is a programming error;
        // the handle still renders, just without what the facade records.
        tracing::error!(%error, "metrics recorder not installed: another one is");
    }
    describe();
    let upkeep = handle.clone();
    // A plain thread: a task would die with the runtime that spawned it,
    // and tests run one runtime per test.
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            upkeep.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "metrics upkeep thread not started; scrapes still drain histograms");
    }
    handle
}

fn describe() {
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "time from the request reaching the router to its response head, by method, route template and status"
    );
    describe_gauge!(
        "db_pool_size",
        "PostgreSQL connections the pool holds, idle or in use"
    );
    describe_gauge!("db_pool_idle", "PostgreSQL connections idle in the pool");
    describe_gauge!(
        "db_pool_in_use",
        "PostgreSQL connections checked out of the pool"
    );
    describe_gauge!("db_pool_max", "the pool's max_connections");
    describe_gauge!(
        "db_pool_waiting",
        "tasks waiting for a connection, counted for acquires made through PoolMetrics only"
    );
}

/// A router serving `GET /metrics`, for merging into an application's
/// router: refreshes the pool gauges, then renders everything recorded.
pub fn routes<S>(pools: Vec<PoolMetrics>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let handle = install();
    let pools = Arc::new(pools);
    Router::new().route(
        "/metrics",
        get(move || {
            let (handle, pools) = (handle.clone(), pools.clone());
            async move { scrape(&handle, &pools) }
        }),
    )
}

fn scrape(handle: &PrometheusHandle, pools: &[PoolMetrics]) -> Response {
    for pool in pools {
        pool.record();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        handle.render(),
    )
        .into_response()
}

/// Middleware recording `http_requests_total` and
/// `http_request_duration_seconds` by method, route template and status.
/// Add it with `Router::layer`, which runs it after routing, so that the
/// matched route is known.
pub async fn record_http(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_str().to_owned()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed);
    response
}

/// The standard methods by name; any extension method is `other`, so that
/// clients cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The gauges of one PostgreSQL pool, labelled `pool`, set at scrape time.
///
/// sqlx exposes the pool's size and idle count, but not how many tasks wait
/// in `acquire` (its semaphore is private, and the `PoolOptions` hooks run
/// only once a connection is handed out). So waiters are counted here, for
/// the acquires made through [`PoolMetrics::acquire`] and
/// [`PoolMetrics::begin`]. Acquires made on the `PgPool` directly are not
/// seen; `db_pool_waiting` is published only once something has acquired
/// through this type, so that an absent gauge means "not measured" rather
/// than a reassuring zero.
#[derive(Clone, Debug)]
pub struct PoolMetrics {
    name: String,
    pool: PgPool,
    waits: Arc<Waits>,
}

#[derive(Debug, Default)]
struct Waits {
    waiting: AtomicU64,
    counted: AtomicBool,
}

impl PoolMetrics {
    /// `name` is the `pool` label, e.g. `postgres`.
    pub fn new(name: impl Into<String>, pool: PgPool) -> Self {
        Self {
            name: name.into(),
            pool,
            waits: Arc::default(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Tasks currently waiting in an acquire made through this value.
    pub fn waiting(&self) -> u64 {
        self.waits.waiting.load(Ordering::Relaxed)
    }

    /// `PgPool::acquire`, counted in `db_pool_waiting` while it waits.
    pub async fn acquire(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        self.counted(self.pool.acquire()).await
    }

    /// `PgPool::begin`, counted in `db_pool_waiting` while it waits for its
    /// connection.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.counted(self.pool.begin()).await
    }

    async fn counted<T>(&self, acquire: impl Future<Output = T>) -> T {
        self.waits.counted.store(true, Ordering::Relaxed);
        self.waits.waiting.fetch_add(1, Ordering::Relaxed);
        // A guard, so that a cancelled acquire (a timed-out request) stops
        // counting too.
        let _waiting = WaitGuard(&self.waits);
        acquire.await
    }

    /// Sets this pool's gauges from its current state.
    pub fn record(&self) {
        let size = self.pool.size();
        // num_idle is read separately from size and may briefly exceed it.
        let idle = u32::try_from(self.pool.num_idle())
            .unwrap_or(u32::MAX)
            .min(size);
        let labels = [("pool", self.name.clone())];
        metrics::gauge!("db_pool_size", &labels).set(size);
        metrics::gauge!("db_pool_idle", &labels).set(idle);
        metrics::gauge!("db_pool_in_use", &labels).set(size - idle);
        metrics::gauge!("db_pool_max", &labels).set(self.pool.options().get_max_connections());
        if self.waits.counted.load(Ordering::Relaxed) {
            metrics::gauge!("db_pool_waiting", &labels).set(self.waiting() as f64);
        }
    }
}

/// The value of the first sample of `name` in a text exposition whose
/// labels include all of `labels`: how tests read `/metrics` back.
#[cfg(feature = "testing")]
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_sample)
        .find(|(sample_name, sample_labels, _)| {
            sample_name == name
                && labels
                    .iter()
                    .all(|(k, v)| sample_labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|(_, _, value)| value)
}

/// One line of an exposition: name, labels, value.
#[cfg(feature = "testing")]
type Sample = (String, Vec<(String, String)>, f64);

/// `name{k="v",...} value`; label values may hold `{`, `}` and escapes.
#[cfg(feature = "testing")]
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after_key) = inner.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after_key.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.trim_start_matches(',').to_owned(), value));
            inner = after_key[end + 1..].trim_start_matches(',');
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

struct WaitGuard<'a>(&'a Waits);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "testing")]
    #[test]
    fn samples_are_read_back_with_braces_in_label_values() {
        let text = "# TYPE http_requests_total counter\n\
            http_requests_total{method=\"GET\",route=\"/v1/products/{id}\",status=\"404\"} 3\n\
            http_requests_total{method=\"GET\",route=\"/v1/brands\",status=\"200\"} 7\n\
            db_pool_max{pool=\"a \\\"b\\\"\"} 5\n\
            up 1\n";
        let route = [("route", "/v1/products/{id}"), ("status", "404")];
        assert_eq!(sample(text, "http_requests_total", &route), Some(3.0));
        let brands = [("route", "/v1/brands")];
        assert_eq!(sample(text, "http_requests_total", &brands), Some(7.0));
        assert_eq!(
            sample(text, "db_pool_max", &[("pool", "a \"b\"")]),
            Some(5.0)
        );
        assert_eq!(sample(text, "up", &[]), Some(1.0));
        assert_eq!(
            sample(text, "http_requests_total", &[("status", "500")]),
            None
        );
    }

    #[test]
    fn extension_methods_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").unwrap()),
            "other"
        );
    }

    #[test]
    fn the_same_handle_is_returned_and_renders_facade_metrics() {
        let first = install();
        let second = install();
        metrics::histogram!("test_only_append_duration_seconds").record(0.003);
        metrics::counter!("test_only_events_total").increment(2);
        for handle in [first, second] {
            let text = handle.render();
            assert!(
                text.contains("test_only_append_duration_seconds_bucket{le=\"0.005\"} 1"),
                "{text}"
            );
            assert!(text.contains("test_only_events_total 2"), "{text}");
        }
    }
}
