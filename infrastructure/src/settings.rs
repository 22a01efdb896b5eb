//! Typed, layered configuration shared by the three binaries: built-in defaults
//! that point at the local servers, then an optional TOML file, then the
//! environment (`APP__SECTION__KEY`, e.g. `APP__KAFKA__BROKERS`). Secrets (the
//! database URL's password) never reach a log: `Debug` redacts them.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub postgres: PostgresSettings,
    pub kafka: KafkaSettings,
    pub mongo: MongoSettings,
    pub redis: RedisSettings,
    pub elasticsearch: ElasticsearchSettings,
    pub event_store: crate::event_store::GroupCommitSettings,
    pub relay: RelaySettings,
    pub projectors: ProjectorSettings,
    pub consistency: ConsistencySettings,
    pub personal_data: crate::personal_data::PersonalDataSettings,
    pub accounts: AccountSettings,
    pub rate_limits: crate::rate_limit::RateLimitSettings,
    pub idempotency: IdempotencySettings,
    pub smtp: crate::mail::SmtpSettings,
    pub carts: CartSettings,
    pub payments: PaymentSettings,
}

/// The payment service provider the commands talk to, and its settings.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentSettings {
    /// Which adapter the command API uses: `sandbox` (the only one so far).
    pub provider: String,
    pub sandbox: SandboxSettings,
}

/// The sandbox payment service (`command-api payment-sandbox`) and the
/// adapter that talks to it. Both sides read the same section: the sandbox
/// listens on `host:port` and signs its webhooks to `webhook_url` with
/// `webhook_secret`; the adapter calls `url` and verifies those webhooks
/// with the same secret. `Debug` never shows the secret.
#[derive(Debug, Clone, Deserialize)]
pub struct SandboxSettings {
    /// The sandbox's base URL, as the adapter calls it.
    pub url: String,
    /// Where `command-api payment-sandbox` listens.
    pub host: String,
    pub port: u16,
    /// Where the sandbox posts its webhooks: the command API's
    /// `POST /v1/payments/webhooks/sandbox`.
    pub webhook_url: String,
    /// Signs webhooks (HMAC-SHA256); shared by the sandbox and the adapter.
    pub webhook_secret: secrecy::SecretString,
    /// A webhook signed further than this from now is refused as stale.
    pub webhook_tolerance_seconds: u64,
    /// Bounds each call of the adapter, and each webhook delivery attempt
    /// of the sandbox.
    pub timeout_ms: u64,
}

/// The cart rules a shop configures: how long a cart lives after its last
/// change, the most units one line may hold, and the shipping methods a
/// cart can choose with their fees (THB, as decimal strings).
#[derive(Debug, Clone, Deserialize)]
pub struct CartSettings {
    pub ttl_hours: u32,
    pub max_quantity_per_line: u32,
    pub shipping_methods: std::collections::BTreeMap<String, rust_decimal::Decimal>,
    pub expiry: CartExpirySettings,
}

/// The job that expires carts left alone past their time to live: whether
/// this process takes part (one process sweeps at a time, under a lease),
/// how often it looks, and how many carts one sweep expires at most.
#[derive(Debug, Clone, Deserialize)]
pub struct CartExpirySettings {
    pub enabled: bool,
    pub interval_seconds: u64,
    pub batch_size: u32,
}

/// How long an `Idempotency-Key` is honoured, and how often older ones are
/// deleted.
#[derive(Debug, Clone, Deserialize)]
pub struct IdempotencySettings {
    pub retention_hours: u64,
    pub cleanup_interval_seconds: u64,
}

/// Sessions, password hashing and the other knobs of accounts.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountSettings {
    /// How long a session lives after login.
    pub session_ttl_seconds: u64,
    /// Argon2id cost: memory in KiB, passes, lanes (OWASP's first
    /// recommendation is 19 MiB, 2 passes, 1 lane).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Days the addresses of anonymous requests stay readable.
    pub guest_data_retention_days: u32,
    /// How long an emailed one-time code (verification, password reset)
    /// stays valid.
    pub code_ttl_seconds: u64,
}

/// How long a read that carries a consistency token waits for the read
/// models it reads to apply it, and how often it looks.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsistencySettings {
    pub wait_ms: u64,
    pub poll_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub host: String,
    pub port: u16,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// A request still running after this long is answered 503 with
    /// `Retry-After`. Keep it below `postgres.acquire_timeout_seconds`, so
    /// that a request starved of connections gets this 503, not the 500 of
    /// a failed acquire.
    pub request_timeout_ms: u64,
    /// Requests handled at once; beyond that they are shed at once with 503
    /// and `Retry-After` rather than queued. `/health` and `/metrics` are
    /// not counted.
    pub max_concurrent_requests: usize,
    /// The proxies whose `X-Forwarded-For` is believed. From anyone else
    /// the header is ignored and the peer address is the client's.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

#[derive(Clone, Deserialize)]
pub struct PostgresSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KafkaSettings {
    pub brokers: String,
    /// Events of aggregate type `t` go to `{topic_prefix}.{t}`.
    pub topic_prefix: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub create_topics: bool,
    /// Consumer groups are `{group_prefix}.{projection}`.
    pub group_prefix: String,
    pub message_timeout_ms: u64,
}

impl KafkaSettings {
    pub fn topic_for(&self, aggregate_type: &str) -> String {
        format!("{}.{}", self.topic_prefix, aggregate_type)
    }

    pub fn group_for(&self, projection: &str) -> String {
        format!("{}.{}", self.group_prefix, projection)
    }
}

#[derive(Clone, Deserialize)]
pub struct MongoSettings {
    pub url: String,
    pub database: String,
}

#[derive(Clone, Deserialize)]
pub struct RedisSettings {
    pub url: String,
    /// Prepended to every key, so that several deployments (or tests) share a server.
    pub key_prefix: String,
}

#[derive(Clone, Deserialize)]
pub struct ElasticsearchSettings {
    pub url: String,
    /// The alias that readers and writers use; concrete indexes are `{alias}-v{n}`.
    pub products_alias: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RelaySettings {
    pub enabled: bool,
    /// Names the checkpoint and the lease: relays of one name elect one leader.
    pub name: String,
    pub batch_size: i64,
    /// How often the leader looks again when nothing woke it. Events held
    /// back behind a transaction still running are published on the next
    /// look, so this bounds their lag: 20 ms by default (docs/benchmarks.md,
    /// end-to-end lag).
    pub idle_poll_ms: u64,
    /// How often a follower tries to take the lease over.
    pub lease_retry_ms: u64,
    /// How long committed events may be held back by an older running
    /// transaction before `/health` says degraded.
    pub stall_degraded_after_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProjectorSettings {
    /// Which projections this process runs; empty means all.
    pub only: Vec<String>,
    pub batch_size: usize,
    /// How long a batch waits to fill after its first message; under load
    /// batches fill first. 20 ms by default.
    pub batch_wait_ms: u64,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub health_port: u16,
    /// `/health` says degraded when a worker has finished no step for this
    /// long (a store that keeps refusing, a consumer that cannot poll).
    pub stall_degraded_after_seconds: u64,
    /// ... when an event has been parked for longer than this.
    pub parked_degraded_after_seconds: u64,
    /// A parked event older than this is dead-lettered, with what waits on it.
    pub parked_max_age_seconds: u64,
    /// ... when an event was dead-lettered within this window.
    pub dead_letters_degraded_within_seconds: u64,
    /// Attempts a batch gets while its store refuses it, and answers its
    /// probe, before the refused event is isolated and dead-lettered.
    pub poison_attempts: u32,
    /// The Kafka consumers' `session.timeout.ms` and `max.poll.interval.ms`.
    pub session_timeout_ms: u64,
    pub max_poll_interval_ms: u64,
    /// How long a stopping worker may take to finish its batch in hand.
    pub shutdown_grace_ms: u64,
    /// Events read from the event store per batch of a rebuild.
    pub replay_batch_size: usize,
    /// Whether the PostgreSQL projections write a batch set-based (a
    /// statement per table) when it allows; off, every event is written on
    /// its own, which is slower and only worth it to compare the two.
    pub set_based_writes: bool,
}

const DEFAULTS: &str = r#"
[http]
host = "127.0.0.1"
body_limit_bytes = 65536
request_timeout_ms = 4000
max_concurrent_requests = 256
trusted_proxies = []

[postgres]
url = "postgres://postgres@127.0.0.1:5432/ecommerce"
max_connections = 10
acquire_timeout_seconds = 5

[kafka]
brokers = "127.0.0.1:9092"
topic_prefix = "ecommerce"
partitions = 6
replication_factor = 1
create_topics = true
group_prefix = "ecommerce"
message_timeout_ms = 30000

[mongo]
url = "mongodb://127.0.0.1:27017"
database = "ecommerce"

[redis]
url = "redis://127.0.0.1:6379"
key_prefix = ""

[elasticsearch]
url = "http://127.0.0.1:9200"
products_alias = "products"

[event_store]
max_parallel_groups = 3
max_group_events = 4000

[relay]
enabled = true
name = "kafka-outbox"
batch_size = 500
idle_poll_ms = 20
lease_retry_ms = 1000
stall_degraded_after_seconds = 30

[projectors]
only = []
batch_size = 200
batch_wait_ms = 20
retry_initial_ms = 100
retry_max_ms = 5000
health_port = 8082
stall_degraded_after_seconds = 60
parked_degraded_after_seconds = 300
parked_max_age_seconds = 3600
dead_letters_degraded_within_seconds = 900
poison_attempts = 5
session_timeout_ms = 10000
max_poll_interval_ms = 300000
shutdown_grace_ms = 10000
replay_batch_size = 2000
set_based_writes = true

[consistency]
wait_ms = 5000
poll_ms = 20

# Development keys: every deployment sets its own (see docs/personal-data.md).
[personal_data]
master_key = "ZGV2ZWxvcG1lbnQtb25seS1tYXN0ZXIta2V5LTMyYiE="
master_key_id = "development"
blind_index_key = "ZGV2ZWxvcG1lbnQtb25seS1ibGluZC1pbmRleC0zMmI="

[idempotency]
retention_hours = 24
cleanup_interval_seconds = 600

[rate_limits]
enabled = true
read = { limit = 600, window_seconds = 60 }
write = { limit = 120, window_seconds = 60 }
auth = { limit = 20, window_seconds = 60 }
login_per_account = { limit = 10, window_seconds = 900 }
codes_per_account = { limit = 5, window_seconds = 900 }

[accounts]
session_ttl_seconds = 14400
argon2_memory_kib = 19456
argon2_iterations = 2
argon2_parallelism = 1
guest_data_retention_days = 30
code_ttl_seconds = 900

[carts]
ttl_hours = 168
max_quantity_per_line = 10
shipping_methods = { standard = "50.00", express = "150.00", pickup = "0.00" }

[carts.expiry]
enabled = true
interval_seconds = 60
batch_size = 500

# The local aiosmtpd of scripts/services; production names its relay, with
# credentials in the URL (smtp://user:pass@host:587?tls=required).
[smtp]
url = "smtp://127.0.0.1:2525"
from = "Shop <no-reply@shop.localhost>"
timeout_ms = 10000

[payments]
provider = "sandbox"

# The sandbox payment service of `command-api payment-sandbox`. The secret is
# a development one: production sets its own through the environment
# (APP__PAYMENTS__SANDBOX__WEBHOOK_SECRET), and a real provider's adapter its own.
[payments.sandbox]
url = "http://127.0.0.1:8090"
host = "127.0.0.1"
port = 8090
webhook_url = "http://127.0.0.1:8080/v1/payments/webhooks/sandbox"
webhook_secret = "whsec_development_only_sandbox_secret"
webhook_tolerance_seconds = 300
timeout_ms = 5000

"#;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct SettingsError(#[from] config::ConfigError);

impl Settings {
    /// Defaults, then `file` (or `$APP_CONFIG_FILE`) when given, then `APP__*`
    /// environment variables. `default_port` is the binary's own HTTP port.
    pub fn load(default_port: u16, file: Option<PathBuf>) -> Result<Self, SettingsError> {
        let file = file.or_else(|| std::env::var_os("APP_CONFIG_FILE").map(PathBuf::from));
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .set_default("http.port", i64::from(default_port))?;
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let settings = builder
            .add_source(
                config::Environment::with_prefix("APP")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("projectors.only")
                    .with_list_parse_key("http.trusted_proxies")
                    .try_parsing(true),
            )
            .build()?;
        Ok(settings.try_deserialize()?)
    }
}

/// `scheme://user:***@host/...`: the URL with any password replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("http", &self.http)
            .field("postgres", &self.postgres)
            .field("kafka", &self.kafka)
            .field("mongo", &self.mongo)
            .field("redis", &self.redis)
            .field("elasticsearch", &self.elasticsearch)
            .field("event_store", &self.event_store)
            .field("relay", &self.relay)
            .field("projectors", &self.projectors)
            .field("consistency", &self.consistency)
            .field("personal_data", &self.personal_data)
            .field("accounts", &self.accounts)
            .field("rate_limits", &self.rate_limits)
            .field("idempotency", &self.idempotency)
            .field("carts", &self.carts)
            .field("payments", &self.payments)
            .finish()
    }
}

macro_rules! redacted_debug {
    ($ty:ty, $($field:ident),*) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("url", &redact_url(&self.url))
                    $(.field(stringify!($field), &self.$field))*
                    .finish()
            }
        }
    };
}

redacted_debug!(PostgresSettings, max_connections, acquire_timeout_seconds);
redacted_debug!(MongoSettings, database);
redacted_debug!(RedisSettings, key_prefix);
redacted_debug!(ElasticsearchSettings, products_alias);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_point_at_local_servers() {
        let settings = Settings::load(8081, None).unwrap();
        assert_eq!(settings.http.port, 8081);
        assert_eq!(settings.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(settings.kafka.topic_for("product"), "ecommerce.product");
        assert_eq!(settings.kafka.group_for("search"), "ecommerce.search");
    }

    #[test]
    fn a_file_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.toml");
        std::fs::write(
            &path,
            "[kafka]\ntopic_prefix = \"shop\"\n[http]\nport = 9999\n",
        )
        .unwrap();
        let settings = Settings::load(8080, Some(path)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(settings.kafka.topic_prefix, "shop");
        assert_eq!(settings.http.port, 9999);
        assert_eq!(settings.kafka.partitions, 6);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://shop:s3cret@db:5432/ecommerce"),
            "postgres://shop:***@db:5432/ecommerce"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        let mut settings = Settings::load(8080, None).unwrap();
        settings.postgres.url = "postgres://shop:s3cret@db/ecommerce".into();
        assert!(!format!("{settings:?}").contains("s3cret"));
        assert!(
            !format!("{settings:?}").contains(&crate::personal_data::DEVELOPMENT_MASTER_KEY[..12])
        );
        assert!(!format!("{settings:?}").contains("whsec_"));
    }

    #[test]
    fn payments_default_to_the_local_sandbox() {
        use secrecy::ExposeSecret;
        let settings = Settings::load(8080, None).unwrap();
        assert_eq!(settings.payments.provider, "sandbox");
        let sandbox = &settings.payments.sandbox;
        assert_eq!(sandbox.url, "http://127.0.0.1:8090");
        assert_eq!(sandbox.port, 8090);
        assert_eq!(
            sandbox.webhook_url,
            "http://127.0.0.1:8080/v1/payments/webhooks/sandbox"
        );
        assert_eq!(sandbox.webhook_tolerance_seconds, 300);
        assert!(!sandbox.webhook_secret.expose_secret().is_empty());
    }
}
