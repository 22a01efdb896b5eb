//! PostgreSQL set-up: the connection pool, creating the configured database
//! when the server does not have it yet, the embedded migrations of
//! `migrations/` (event store and read model), and reinstalling the
//! read-model schema when it was dropped.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

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

/// Where a reinstall runs the event store's part of the migrations, so that
/// replaying them leaves the live event store alone. Dropped before the
/// reinstall commits.
const REINSTALL_SCRATCH_SCHEMA: &str = "read_model_reinstall_scratch";

/// Recreates the `read_model` schema when it is missing (dropped by mistake,
/// or lost with a restore that left it out), and returns whether it did.
///
/// The read model is derived data, and its shape is whatever the migrations
/// make it: the reinstall runs every migration again, in one transaction,
/// with the event store's objects sent to a scratch schema that is dropped at
/// the end. `_sqlx_migrations` is not touched, since every migration stays
/// applied. Each read model kept in the schema has a row in
/// `read_model.rebuilds` (seeded by the migration that creates its tables);
/// the reinstall marks those rows unfinished, so its workers rebuild it from
/// the event store. An advisory lock lets one process reinstall at a time.
pub async fn reinstall_read_model_if_dropped(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('read-model-reinstall', 0))")
        .execute(&mut *tx)
        .await?;
    let present: bool = sqlx::query_scalar("SELECT to_regnamespace('read_model') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await?;
    if present {
        return Ok(false);
    }
    let search_path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
        .fetch_one(&mut *tx)
        .await?;
    for migration in MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
    {
        // The migrations name the event store's objects only as
        // `event_store.…` (and create it as `event_store`); no other name
        // holds those letters, which `reinstalled_schema_equals_a_migrated_one`
        // would show.
        let sql = migration
            .sql
            .replace("event_store", REINSTALL_SCRATCH_SCHEMA);
        tx.execute(sql.as_str()).await?;
        // As if each migration ran in its own transaction: a `SET LOCAL`
        // in one must not reach the next.
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(&search_path)
            .execute(&mut *tx)
            .await?;
    }
    tx.execute(format!("DROP SCHEMA {REINSTALL_SCRATCH_SCHEMA} CASCADE").as_str())
        .await?;
    let marked = sqlx::query("UPDATE read_model.rebuilds SET finished_at = NULL")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::warn!(
        read_models_to_rebuild = marked.rows_affected(),
        "read-model schema was missing: reinstalled from the migrations"
    );
    metrics::counter!("read_model_schema_reinstalls_total").increment(1);
    Ok(true)
}

/// A statement that failed because a schema or table it names does not
/// exist, as when the read-model schema was dropped.
pub fn names_a_missing_relation(error: &sqlx::Error) -> bool {
    matches!(
        error.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42P01") | Some("3F000")
    )
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
