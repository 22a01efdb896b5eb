//! Blue/green generations of a PostgreSQL read model: a set of tables in
//! `read_model`, with the projection's bookkeeping tables beside them.
//!
//! The new generation is a shadow schema holding a copy of the tables'
//! definitions (columns, defaults, checks, keys, indexes under their own
//! names, foreign keys among themselves) and of the bookkeeping tables. The
//! projection's statements name tables without a schema and run on
//! connections whose `search_path` is the generation's schema
//! ([`pool_in_schema`]), so the same code writes either generation.
//!
//! The swap is one transaction: the bookkeeping rows are copied into
//! `read_model`, foreign keys that other tables hold on the set (order items
//! on products) are re-pointed, and the tables change schema, so readers see
//! the old tables until the commit and the new ones after it. Prepared
//! statements of live connections follow the move: PostgreSQL re-resolves the
//! names of a cached plan whose tables changed.

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool};

use infrastructure::database::names_a_missing_relation;

use crate::runtime::ProjectionError;

pub const LIVE_SCHEMA: &str = "read_model";

/// The tables of one projection that a rebuild writes anew.
pub struct TableSet {
    /// The projection, as its bookkeeping rows name it.
    pub projection: &'static str,
    /// Its read-model tables, parents before children.
    pub tables: &'static [&'static str],
    /// Its bookkeeping tables, with a `projection` column, kept per
    /// generation.
    pub bookkeeping: &'static [&'static str],
    /// Where the new generation is built, and where the old one goes at the
    /// swap; both are dropped afterwards.
    pub next_schema: &'static str,
    pub retired_schema: &'static str,
}

/// A pool like `pool` whose connections resolve table names in `schema`.
pub fn pool_in_schema(pool: &PgPool, schema: &str) -> PgPool {
    let options = (*pool.connect_options())
        .clone()
        .options([("search_path", schema)]);
    PgPoolOptions::new()
        .max_connections(pool.options().get_max_connections())
        .connect_lazy_with(options)
}

async fn run(connection: &mut PgConnection, statement: &str) -> Result<(), ProjectionError> {
    sqlx::query(statement)
        .execute(connection)
        .await
        .map_err(ProjectionError::unavailable)?;
    Ok(())
}

/// Statements the server generates from the live definitions.
async fn generated(
    connection: &mut PgConnection,
    query: &str,
    tables: &[&str],
) -> Result<Vec<String>, ProjectionError> {
    sqlx::query_scalar(query)
        .bind(tables)
        .fetch_all(connection)
        .await
        .map_err(ProjectionError::unavailable)
}

/// The statement that adds constraint `c` again, as the server defines it.
const ADD_CONSTRAINT: &str = "format('ALTER TABLE %s ADD CONSTRAINT %I %s', \
     c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid))";

/// Every relation of `read_model` named in `$1`.
const LIVE_TABLES: &str =
    "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = 'read_model' AND c.relname = ANY($1)";

impl TableSet {
    fn all(&self) -> Vec<&'static str> {
        self.tables
            .iter()
            .chain(self.bookkeeping)
            .copied()
            .collect()
    }

    /// Rewrites references to the live tables as references to `schema`.
    fn moved_to_schema(&self, definition: &str, schema: &str) -> String {
        let mut rewritten = definition.replace(
            &format!("ALTER TABLE {LIVE_SCHEMA}."),
            &format!("ALTER TABLE {schema}."),
        );
        for table in self.all() {
            for (from, to) in [
                (
                    format!("ON {LIVE_SCHEMA}.{table} "),
                    format!("ON {schema}.{table} "),
                ),
                (
                    format!("REFERENCES {LIVE_SCHEMA}.{table}("),
                    format!("REFERENCES {schema}.{table}("),
                ),
            ] {
                rewritten = rewritten.replace(&from, &to);
            }
        }
        rewritten
    }

    /// An empty new generation, replacing whatever an interrupted rebuild
    /// left; returns a pool writing into it.
    pub async fn create_next(&self, pool: &PgPool) -> Result<PgPool, ProjectionError> {
        let next = self.next_schema;
        let mut tx = pool.begin().await.map_err(ProjectionError::unavailable)?;
        // Names in the definitions the server prints come schema-qualified.
        run(&mut tx, "SET LOCAL search_path TO pg_catalog").await?;
        for schema in [next, self.retired_schema] {
            run(&mut tx, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
        }
        run(&mut tx, &format!("CREATE SCHEMA {next}")).await?;
        let all = self.all();
        for table in &all {
            run(
                &mut tx,
                &format!(
                    "CREATE TABLE {next}.{table} (LIKE {LIVE_SCHEMA}.{table} \
                     INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED \
                     INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS)"
                ),
            )
            .await?;
        }
        // Keys first, then the other indexes, then the foreign keys, which
        // need the keys they point at.
        let constraints = |kinds: &str| {
            format!(
                "SELECT {ADD_CONSTRAINT} FROM pg_constraint c \
                 WHERE c.contype IN ({kinds}) AND c.conrelid IN ({LIVE_TABLES}) ORDER BY c.conname"
            )
        };
        let keys = generated(&mut tx, &constraints("'p', 'u', 'x'"), &all).await?;
        let indexes = generated(
            &mut tx,
            &format!(
                "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
                 WHERE i.indrelid IN ({LIVE_TABLES}) \
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
            ),
            &all,
        )
        .await?;
        let foreign_keys = generated(&mut tx, &constraints("'f'"), &all).await?;
        for statement in keys.iter().chain(&indexes).chain(&foreign_keys) {
            run(&mut tx, &self.moved_to_schema(statement, next)).await?;
        }
        tx.commit().await.map_err(ProjectionError::unavailable)?;
        Ok(pool_in_schema(pool, next))
    }

    /// Makes the new generation the live one, in one transaction, and drops
    /// the old one.
    pub async fn swap(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        let (next, retired) = (self.next_schema, self.retired_schema);
        let mut tx = pool.begin().await.map_err(ProjectionError::unavailable)?;
        run(&mut tx, "SET LOCAL search_path TO pg_catalog").await?;
        for table in self.bookkeeping {
            sqlx::query(&format!(
                "DELETE FROM {LIVE_SCHEMA}.{table} WHERE projection = $1"
            ))
            .bind(self.projection)
            .execute(&mut *tx)
            .await
            .map_err(ProjectionError::unavailable)?;
            run(
                &mut tx,
                &format!("INSERT INTO {LIVE_SCHEMA}.{table} SELECT * FROM {next}.{table}"),
            )
            .await?;
        }
        // Foreign keys other tables hold on the set follow it to its new
        // generation.
        let outside: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname), \
             {ADD_CONSTRAINT} FROM pg_constraint c WHERE c.contype = 'f' \
             AND c.confrelid IN ({LIVE_TABLES}) AND c.conrelid NOT IN ({LIVE_TABLES})"
        ))
        .bind(self.tables)
        .fetch_all(&mut *tx)
        .await
        .map_err(ProjectionError::unavailable)?;
        for (drop, _) in &outside {
            run(&mut tx, drop).await?;
        }
        run(&mut tx, &format!("CREATE SCHEMA {retired}")).await?;
        // Last: moving a table locks it against readers until the commit.
        for table in self.tables {
            run(
                &mut tx,
                &format!("ALTER TABLE {LIVE_SCHEMA}.{table} SET SCHEMA {retired}"),
            )
            .await?;
            run(
                &mut tx,
                &format!("ALTER TABLE {next}.{table} SET SCHEMA {LIVE_SCHEMA}"),
            )
            .await?;
        }
        for (_, add) in &outside {
            run(&mut tx, add).await?;
        }
        for schema in [retired, next] {
            run(&mut tx, &format!("DROP SCHEMA {schema} CASCADE")).await?;
        }
        tx.commit().await.map_err(ProjectionError::unavailable)?;
        Ok(())
    }
}

/// What every PostgreSQL read model does the same way, named by its
/// projection and the table it probes.
pub struct PgReadModel {
    pub projection: &'static str,
    /// A table the projection writes, whose absence means the read-model
    /// schema was dropped.
    pub probe_table: &'static str,
    /// Empties the read model's tables for a rebuild in place.
    pub truncate: &'static str,
}

impl PgReadModel {
    /// False when the schema went with the tables. Tables that are there but
    /// were emptied by a reinstall are recorded as an unfinished rebuild
    /// instead (`read_model.rebuilds`).
    pub async fn is_intact(&self, pool: &PgPool) -> Result<bool, ProjectionError> {
        sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(self.probe_table)
            .fetch_one(pool)
            .await
            .map_err(ProjectionError::unavailable)
    }

    /// Through a table the projection writes: a dropped read-model schema is
    /// a lost read model, rebuilt once the schema is reinstalled, rather than
    /// a store refusing every event, which would dead-letter them.
    pub async fn probe(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        match sqlx::query(&format!("SELECT 1 FROM {} LIMIT 0", self.probe_table))
            .execute(pool)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if names_a_missing_relation(&error) => Err(ProjectionError::Lost),
            Err(error) => Err(ProjectionError::unavailable(error)),
        }
    }

    /// Lets the events of `aggregate_id` from `version` on apply again.
    pub async fn forget_applied(
        &self,
        pool: &PgPool,
        aggregate_id: &str,
        version: i64,
    ) -> Result<(), ProjectionError> {
        sqlx::query(
            "UPDATE projected_versions SET version = GREATEST($3 - 1, 0) \
             WHERE projection = $1 AND aggregate_id = $2 AND version >= $3",
        )
        .bind(self.projection)
        .bind(aggregate_id)
        .bind(version)
        .execute(pool)
        .await
        .map_err(ProjectionError::unavailable)?;
        Ok(())
    }

    /// Empties the tables and the projection's bookkeeping, in one
    /// transaction.
    pub async fn reset(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        let mut tx = pool.begin().await.map_err(ProjectionError::unavailable)?;
        run(&mut tx, self.truncate).await?;
        for table in ["projected_versions", "parked_events"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE projection = $1"))
                .bind(self.projection)
                .execute(&mut *tx)
                .await
                .map_err(ProjectionError::unavailable)?;
        }
        tx.commit().await.map_err(ProjectionError::unavailable)?;
        Ok(())
    }

    /// Records that the aggregate's events up to `version` are applied.
    /// Never moves a version back, even beside a worker that recorded a
    /// later one.
    pub async fn record_version(
        &self,
        connection: &mut PgConnection,
        aggregate_id: &str,
        version: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO projected_versions (projection, aggregate_id, version) VALUES ($1, $2, $3) \
             ON CONFLICT (projection, aggregate_id) DO UPDATE \
             SET version = GREATEST(projected_versions.version, EXCLUDED.version)",
        )
        .bind(self.projection)
        .bind(aggregate_id)
        .bind(version)
        .execute(connection)
        .await?;
        Ok(())
    }
}
