//! PostgreSQL set-up: the connection pool, creating the configured database
//! when the server does not have it yet, and the embedded migrations of
//! `migrations/` (event store and read model).

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::settings::PostgresSettings;

pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Connects (creating the database first if it is missing) and brings the
/// schema up to date.
pub async fn connect_and_migrate(settings: &PostgresSettings) -> anyhow::Result<PgPool> {
    create_database_if_missing(&settings.url).await?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_seconds))
        .connect_with(PgConnectOptions::from_str(&settings.url)?)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

pub async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url)?;
    let Some(database) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = options.database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&database)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = database.replace('"', "\"\"");
        match sqlx::query(&format!("CREATE DATABASE \"{quoted}\""))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database, "database created"),
            // Another process created it between our check and our create:
            // PostgreSQL says so either as 42P04 or, when both creates ran at
            // once, as a unique violation on pg_database.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await?;
    Ok(())
}
