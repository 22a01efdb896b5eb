//! Generations of a read model, for rebuilds that readers never notice.
//!
//! A blue/green rebuild writes a new generation beside the live one (a shadow
//! schema, a new concrete index, a new collection), replays the event store
//! into it, and swaps. `read_model.generations` numbers the live generation
//! of each projection and the one being built.
//!
//! The swap must not lose what live workers apply meanwhile. Every worker
//! batch runs under a shared advisory lock on its projection's swap key; the
//! rebuilder takes that key exclusively, so once it holds it no batch is
//! half-applied anywhere. It then replays the last events the live workers
//! applied into the new generation, swaps, records the new live generation
//! and lets the workers go on. The first batch after the swap sees the new
//! number and applies to the new generation, which already holds every
//! earlier event of each aggregate, so per-aggregate versions stay in order.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

fn swap_key(projection: &str) -> String {
    format!("projector-generation:{projection}")
}

/// The generation readers see, 0 before the first blue/green rebuild.
async fn live_on(connection: &mut PgConnection, projection: &str) -> Result<i64, sqlx::Error> {
    let live: Option<i64> =
        sqlx::query_scalar("SELECT live FROM read_model.generations WHERE projection = $1")
            .bind(projection)
            .fetch_optional(&mut *connection)
            .await?;
    Ok(live.unwrap_or(0))
}

/// Held by a live worker while it applies one batch: a swap waits for it.
pub struct BatchGuard {
    transaction: Transaction<'static, Postgres>,
    /// The generation the batch applies to.
    pub live: i64,
}

impl BatchGuard {
    pub async fn enter(pool: &PgPool, projection: &str) -> Result<Self, sqlx::Error> {
        let mut transaction = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))")
            .bind(swap_key(projection))
            .execute(&mut *transaction)
            .await?;
        // A statement of its own, after the lock: a snapshot taken before a
        // swap released the lock would still show the old generation.
        let live = live_on(&mut transaction, projection).await?;
        Ok(Self { transaction, live })
    }

    pub async fn leave(self) -> Result<(), sqlx::Error> {
        self.transaction.commit().await
    }
}

/// Records that a new generation is being built beside the live one, and
/// returns its number. A generation left unfinished by an interrupted rebuild
/// gets the same number: it is started over.
pub(crate) async fn start_building(
    connection: &mut PgConnection,
    projection: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO read_model.generations (projection, live, building, building_since) \
         VALUES ($1, 0, 1, now()) \
         ON CONFLICT (projection) DO UPDATE \
         SET building = read_model.generations.live + 1, building_since = now() \
         RETURNING building",
    )
    .bind(projection)
    .fetch_one(connection)
    .await
}

/// Waits until no live worker is inside a batch, then keeps them out until
/// [`let_batches_in`].
pub(crate) async fn hold_batches(
    connection: &mut PgConnection,
    projection: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
        .bind(swap_key(projection))
        .execute(connection)
        .await?;
    Ok(())
}

pub(crate) async fn let_batches_in(
    connection: &mut PgConnection,
    projection: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
        .bind(swap_key(projection))
        .execute(connection)
        .await?;
    Ok(())
}

/// Makes the generation being built the live one. Recorded before the store
/// swaps: a worker that sees the new number re-reads which store objects are
/// live, so a crash between the two leaves workers on the old generation,
/// which readers still see, rather than on a dropped one.
pub(crate) async fn record_swap(
    connection: &mut PgConnection,
    projection: &str,
) -> Result<(), sqlx::Error> {
    let recorded = sqlx::query(
        "UPDATE read_model.generations \
         SET live = building, building = NULL, building_since = NULL, swapped_at = now() \
         WHERE projection = $1 AND building IS NOT NULL",
    )
    .bind(projection)
    .execute(connection)
    .await?;
    // No generation being built: nothing may be swapped in.
    match recorded.rows_affected() {
        0 => Err(sqlx::Error::RowNotFound),
        _ => Ok(()),
    }
}
