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
    settings
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
