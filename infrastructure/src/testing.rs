//! Test support: every integration test gets its own database, topic prefix,
//! consumer group prefix, Mongo database, Redis key prefix and index alias, so
//! tests run in parallel against the same real servers and leave nothing
//! behind. A missing server fails the test loudly; nothing is skipped.

use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

use crate::database::MIGRATOR;
use crate::settings::Settings;

const HINT: &str = "start the local servers with `scripts/services up`";

/// The server tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A short unique suffix for names of this test's resources.
pub fn unique_suffix() -> String {
    Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A freshly created and migrated database, dropped when this value is.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDatabase {
    pub async fn create() -> Self {
        Self::create_named(&format!("test_{}", unique_suffix())).await
    }

    pub async fn create_named(name: &str) -> Self {
        let admin = PgConnectOptions::from_str(&admin_url()).expect("TEST_POSTGRES_URL parses");
        let mut conn = admin.connect().await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {}: {e}; {HINT}",
                admin_url()
            )
        });
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let options = admin.clone().database(name);
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect_with(options)
            .await
            .expect("connect to test database");
        MIGRATOR.run(&pool).await.expect("migrations apply");
        let url = format!(
            "{}/{}",
            admin_url().rsplit_once('/').expect("url has a path").0,
            name
        );
        Self {
            name: name.to_owned(),
            url,
            pool,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and the test's runtime may be the one blocked
        // here, so a helper thread with its own runtime drops the database;
        // FORCE ends the pool's connections.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut conn = PgConnectOptions::from_str(&admin_url())
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Settings whose every name (topics, groups, Mongo database, Redis prefix,
/// index alias) carries `suffix`, pointing at `database_url`, with HTTP on an
/// ephemeral port.
pub fn isolated_settings(database_url: &str, suffix: &str) -> Settings {
    let mut settings = Settings::load(0, None).expect("default settings load");
    settings.http.port = 0;
    settings.postgres.url = database_url.to_owned();
    settings.kafka.topic_prefix = format!("test-{suffix}");
    settings.kafka.group_prefix = format!("test-{suffix}");
    settings.kafka.partitions = 3;
    settings.mongo.database = format!("test_{suffix}");
    settings.redis.key_prefix = format!("test:{suffix}:");
    settings.elasticsearch.products_alias = format!("products-test-{suffix}");
    settings.relay.idle_poll_ms = 50;
    settings.projectors.batch_wait_ms = 50;
    settings.projectors.retry_initial_ms = 20;
    settings.projectors.retry_max_ms = 500;
    settings.projectors.health_port = 0;
    // The cheapest argon2 there is: tests check behaviour, and a test that
    // logs in should not spend its time hashing (the cost is benchmarked).
    settings.accounts.argon2_memory_kib = 8;
    settings.accounts.argon2_iterations = 1;
    settings.accounts.argon2_parallelism = 1;
    // The limiter runs in every test, but only the rate-limit tests, which
    // set their own, come near a limit.
    for limit in [
        &mut settings.rate_limits.read,
        &mut settings.rate_limits.write,
        &mut settings.rate_limits.auth,
        &mut settings.rate_limits.login_per_account,
        &mut settings.rate_limits.codes_per_account,
    ] {
        limit.limit = 100_000;
    }
    settings
}

/// The Maildir the local SMTP server of `scripts/services` delivers into
/// (`SMTP_MAILDIR` overrides it, as it does for the script).
pub fn maildir() -> std::path::PathBuf {
    std::env::var_os("SMTP_MAILDIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.local/maildir")
        })
}

/// Every message delivered to `recipient` so far, as raw text with
/// quoted-printable soft line breaks joined, oldest first. Tests give each
/// account an address of its own, which keeps their mail apart.
pub fn mail_to(recipient: &str) -> Vec<String> {
    let mut found = Vec::new();
    for folder in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir().join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(raw) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let (headers, _) = raw
                .split_once("\r\n\r\n")
                .or_else(|| raw.split_once("\n\n"))
                .unwrap_or((&raw, ""));
            let addressed = headers.lines().any(|line| {
                let lower = line.to_ascii_lowercase();
                (lower.starts_with("to:") || lower.starts_with("x-rcptto:"))
                    && lower.contains(&recipient.to_ascii_lowercase())
            });
            if addressed {
                let modified = entry.metadata().and_then(|m| m.modified()).ok();
                found.push((modified, raw.replace("=\r\n", "").replace("=\n", "")));
            }
        }
    }
    found.sort_by_key(|(modified, _)| *modified);
    found.into_iter().map(|(_, raw)| raw).collect()
}

/// The first run of `digits` ASCII digits that follows `marker` in `text`.
pub fn code_after(text: &str, marker: &str, digits: usize) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let code: String = text[start..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    (code.len() == digits).then_some(code)
}

/// Polls `check` until it yields a value or `timeout` passes; then panics
/// with `what`. The pause between polls is short and bounded, not a guess at
/// how long the work takes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every message on the topics of `aggregate_types`, read from the start by a
/// consumer of its own (no group commits), once at least `at_least` have
/// arrived and the topics have then stayed quiet for a moment; panics after
/// `timeout`. For checking what the relay published, duplicates included.
pub async fn read_topics(
    settings: &Settings,
    aggregate_types: &[&str],
    at_least: usize,
    timeout: Duration,
) -> Vec<PublishedMessage> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};

    let consumer: StreamConsumer = crate::kafka::base_config(&settings.kafka)
        .set(
            "group.id",
            format!("{}.reader.{}", settings.kafka.group_prefix, unique_suffix()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("kafka consumer");
    let topics: Vec<String> = aggregate_types
        .iter()
        .map(|t| settings.kafka.topic_for(t))
        .collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).expect("subscribe");
    let deadline = Instant::now() + timeout;
    let quiet = Duration::from_millis(1500);
    let mut messages = Vec::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            panic!(
                "timed out after {timeout:?} reading {at_least} messages from {topics:?}: got {}",
                messages.len()
            );
        }
        let wait = if messages.len() >= at_least {
            quiet
        } else {
            deadline - now
        };
        match tokio::time::timeout(wait, consumer.recv()).await {
            Err(_) if messages.len() >= at_least => return messages,
            Err(_) => continue,
            Ok(Err(error)) => panic!("kafka consumer failed: {error}"),
            Ok(Ok(message)) => {
                let header = |name: &str| {
                    message.headers().and_then(|headers| {
                        headers
                            .iter()
                            .find(|h| h.key == name)
                            .and_then(|h| h.value)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    })
                };
                messages.push(PublishedMessage {
                    topic: message.topic().to_owned(),
                    key: message
                        .key()
                        .map(|k| String::from_utf8_lossy(k).into_owned()),
                    event_id: header(crate::kafka::headers::EVENT_ID)
                        .and_then(|v| Uuid::parse_str(&v).ok()),
                    relay_term: header(crate::kafka::headers::RELAY_TERM),
                    payload: message
                        .payload()
                        .and_then(|p| serde_json::from_slice(p).ok())
                        .unwrap_or(serde_json::Value::Null),
                });
            }
        }
    }
}

/// One message the relay published, as a test reads it back.
#[derive(Debug, Clone)]
pub struct PublishedMessage {
    pub topic: String,
    pub key: Option<String>,
    pub event_id: Option<Uuid>,
    pub relay_term: Option<String>,
    pub payload: serde_json::Value,
}

/// A second PostgreSQL cluster of its own, on a free port, for tests that
/// restore a backup elsewhere; stopped and deleted when dropped. Uses the
/// server binaries of `TEST_PG_BINDIR` or the newest under
/// /usr/lib/postgresql. initdb refuses root, so as root it runs as the
/// `postgres` user.
pub struct SecondCluster {
    pub port: u16,
    directory: std::path::PathBuf,
    bindir: std::path::PathBuf,
}

impl SecondCluster {
    pub fn start() -> Self {
        let bindir = std::env::var_os("TEST_PG_BINDIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
                    .expect(
                        "PostgreSQL server binaries under /usr/lib/postgresql (or TEST_PG_BINDIR)",
                    )
                    .filter_map(|entry| entry.ok())
                    .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
                    .collect();
                versions.sort_unstable();
                let newest = versions.last().expect("a PostgreSQL version is installed");
                std::path::PathBuf::from(format!("/usr/lib/postgresql/{newest}/bin"))
            });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let directory = std::env::temp_dir().join(format!("second-cluster-{}", unique_suffix()));
        std::fs::create_dir_all(&directory).expect("cluster directory");
        let cluster = Self {
            port,
            directory,
            bindir,
        };
        let data = cluster.directory.join("data");
        let as_root = nix_is_root();
        if as_root {
            run("chown", &["-R", "postgres:postgres", cluster.path()], None);
        }
        cluster.run_as_owner(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            cluster.path()
        );
        cluster.run_as_owner(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &options,
                "-l",
                &cluster.directory.join("log").to_string_lossy(),
                "-w",
                "start",
            ],
        );
        cluster
    }

    fn path(&self) -> &str {
        self.directory.to_str().expect("a UTF-8 temp path")
    }

    /// A `postgres://` URL for `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs one of the server's programs (pg_dump, pg_restore, psql, ...).
    pub fn bin(&self, program: &str) -> std::path::PathBuf {
        self.bindir.join(program)
    }

    fn run_as_owner(&self, program: &str, args: &[&str]) {
        let program = self.bin(program);
        let program = program.to_string_lossy();
        if nix_is_root() {
            let mut all = vec!["-u", "postgres", "--", program.as_ref()];
            all.extend_from_slice(args);
            run("runuser", &all, Some(&self.directory));
        } else {
            run(&program, args, Some(&self.directory));
        }
    }
}

impl Drop for SecondCluster {
    fn drop(&mut self) {
        let data = self.directory.join("data");
        let program = self.bin("pg_ctl");
        let mut command = if nix_is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .current_dir(&self.directory)
            .output();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a program to completion; panics with its output when it fails.
pub fn run(program: &str, args: &[&str], directory: Option<&std::path::Path>) {
    let mut command = std::process::Command::new(program);
    command.args(args);
    if let Some(directory) = directory {
        command.current_dir(directory);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{program} cannot be run: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Appends `count` streams of type `aggregate_type`, one `event_type` event
/// each, one append at a time; returns the event ids in append order.
pub async fn append_new_streams(
    store: &crate::event_store::PgEventStore,
    aggregate_type: &str,
    event_type: &str,
    count: usize,
) -> Vec<Uuid> {
    use crate::event_store::{AppendOutcome, EventMetadata, NewEvent, StreamAppend};
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let event_id = Uuid::now_v7();
        let outcome = store
            .append(
                vec![StreamAppend {
                    stream_id: Uuid::now_v7().to_string(),
                    aggregate_type: aggregate_type.to_owned(),
                    expected_version: 0,
                    events: vec![NewEvent {
                        event_id,
                        event_type: event_type.to_owned(),
                        schema_version: 1,
                        payload: serde_json::json!({ "n": n }),
                    }],
                }],
                &EventMetadata {
                    correlation_id: Uuid::now_v7(),
                    causation_id: Uuid::now_v7(),
                    ..Default::default()
                },
                None,
                |_| serde_json::Value::Null,
            )
            .await
            .expect("append");
        assert!(matches!(outcome, AppendOutcome::Appended { .. }));
        ids.push(event_id);
    }
    ids
}
