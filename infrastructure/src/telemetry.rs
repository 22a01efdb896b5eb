//! Tracing set-up for the binaries, and the request-scoped ids (correlation,
//! causation) that travel from an HTTP request through event metadata and
//! Kafka headers into the projections.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once: `RUST_LOG` filters (info by default),
/// `LOG_FORMAT=json` switches to JSON lines for log shippers.
pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn,h2=warn,hyper=warn"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = fmt().with_env_filter(filter).with_target(true);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if result.is_ok() {
        tracing::info!(service, "telemetry initialised");
    }
}
