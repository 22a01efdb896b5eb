//! Rebuilding a read model from the event store, one process at a time.
//!
//! A rebuild holds a lease: a PostgreSQL session advisory lock on a connection
//! of its own, which the server releases when that connection ends, so a
//! crashed rebuilder frees it. `read_model.rebuilds` records when each
//! projection's last rebuild started and whether it finished: a rebuild that
//! was interrupted (a crash, a shutdown, a store error) leaves it unfinished,
//! and a worker that finds it so, with the lease free, starts over. A
//! half-replayed read model therefore never passes for a complete one.

use infrastructure::database::reinstall_read_model_if_dropped;
use infrastructure::event_store::{GlobalCheckpoint, PgEventStore};
use sqlx::{Connection, PgConnection, PgPool};

use super::apply::{Applier, Frozen, Lost, Wait};
use super::generations;
use super::progress::Progress;
use super::worker::{WorkerOptions, WorkerStats};
use super::{DeadLetters, Projection};

/// Another process is rebuilding this projection.
#[derive(Debug, thiserror::Error)]
#[error("another process is rebuilding {0}")]
pub struct RebuildInProgress(pub String);

/// The right to rebuild one projection, for as long as it is held.
pub struct RebuildLease {
    connection: PgConnection,
    projection: String,
}

fn lease_key(projection: &str) -> String {
    format!("projector-rebuild:{projection}")
}

impl RebuildLease {
    /// The lease, or `None` while another process holds it.
    pub async fn try_take(pool: &PgPool, projection: &str) -> anyhow::Result<Option<Self>> {
        // A rebuild is recorded in the read-model schema, and one that found
        // its tables gone may be the first to notice the schema was dropped.
        reinstall_read_model_if_dropped(pool).await?;
        // Detached: dropping it closes the connection, and with it the lock,
        // instead of handing a locked session back to the pool.
        let mut connection = pool.acquire().await?.detach();
        let taken: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(lease_key(projection))
                .fetch_one(&mut connection)
                .await?;
        Ok(taken.then(|| Self {
            connection,
            projection: projection.to_owned(),
        }))
    }

    async fn started(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO read_model.rebuilds (projection, started_at, finished_at, events) \
             VALUES ($1, now(), NULL, 0) \
             ON CONFLICT (projection) DO UPDATE SET started_at = now(), finished_at = NULL, events = 0",
        )
        .bind(&self.projection)
        .execute(&mut self.connection)
        .await?;
        Ok(())
    }

    async fn finished(mut self, events: u64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE read_model.rebuilds SET finished_at = now(), events = $2 WHERE projection = $1",
        )
        .bind(&self.projection)
        .bind(events as i64)
        .execute(&mut self.connection)
        .await?;
        self.release().await
    }

    /// Gives the lease back after `error` stopped the rebuild, so that a
    /// retry right away finds it free, and returns the error.
    async fn give_back_after(self, error: anyhow::Error) -> anyhow::Error {
        if let Err(release) = self.release().await {
            tracing::warn!(error = %release, "rebuild lease not released; the server frees it with its connection");
        }
        error
    }

    /// Gives the lease back at once. Dropped instead, it is freed when the
    /// server notices its connection has ended.
    pub async fn release(mut self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
            .bind(lease_key(&self.projection))
            .execute(&mut self.connection)
            .await?;
        self.connection.close().await
    }
}

/// True when the projection's last rebuild started and never finished.
pub async fn rebuild_unfinished(pool: &PgPool, projection: &str) -> Result<bool, sqlx::Error> {
    let unfinished: Option<bool> = sqlx::query_scalar(
        "SELECT finished_at IS NULL FROM read_model.rebuilds WHERE projection = $1",
    )
    .bind(projection)
    .fetch_optional(pool)
    .await?;
    Ok(unfinished.unwrap_or(false))
}

/// Sets the rebuild gauge while alive, and clears it however the rebuild ends.
struct RebuildingGauge(&'static str);

impl RebuildingGauge {
    fn on(projection: &'static str) -> Self {
        metrics::gauge!("projector_rebuilding", "projection" => projection).set(1.0);
        Self(projection)
    }
}

impl Drop for RebuildingGauge {
    fn drop(&mut self) {
        metrics::gauge!("projector_rebuilding", "projection" => self.0).set(0.0);
    }
}

/// What a worker that found its read model incomplete runs: takes the lease,
/// then checks again, because another process may have rebuilt the read
/// model between the worker's check and the lease (two instances noticing
/// the same lost store). `None` when the read model turned out complete and
/// nothing was reset.
pub async fn rebuild_if_still_needed(
    projection: &dyn Projection,
    store: &PgEventStore,
    dead_letters: &DeadLetters,
    options: &WorkerOptions,
    stats: &WorkerStats,
) -> anyhow::Result<Option<u64>> {
    let name = projection.name();
    let Some(lease) = RebuildLease::try_take(store.pool(), name).await? else {
        return Err(RebuildInProgress(name.to_owned()).into());
    };
    let intact = projection.is_intact().await?;
    if intact && !rebuild_unfinished(store.pool(), name).await? {
        lease.release().await?;
        tracing::info!(projection = name, "read model rebuilt elsewhere meanwhile");
        return Ok(None);
    }
    rebuild_under(lease, projection, store, dead_letters, options, stats)
        .await
        .map(Some)
}

/// Rebuilds `projection` from the event store under its lease: reset, then
/// every event of its aggregate types in log order, then marked complete.
/// Events committed after the replay's end arrive through Kafka as usual;
/// those replayed and also delivered by Kafka are no-ops. Fails with
/// [`RebuildInProgress`] while another process holds the lease.
pub async fn rebuild(
    projection: &dyn Projection,
    store: &PgEventStore,
    dead_letters: &DeadLetters,
    options: &WorkerOptions,
    stats: &WorkerStats,
) -> anyhow::Result<u64> {
    let name = projection.name();
    let Some(lease) = RebuildLease::try_take(store.pool(), name).await? else {
        return Err(RebuildInProgress(name.to_owned()).into());
    };
    rebuild_under(lease, projection, store, dead_letters, options, stats).await
}

async fn rebuild_under(
    mut lease: RebuildLease,
    projection: &dyn Projection,
    store: &PgEventStore,
    dead_letters: &DeadLetters,
    options: &WorkerOptions,
    stats: &WorkerStats,
) -> anyhow::Result<u64> {
    match rebuild_in_place(&mut lease, projection, store, dead_letters, options, stats).await {
        Ok(count) => {
            lease.finished(count).await?;
            Ok(count)
        }
        // The rebuild stays recorded as unfinished: it is started over.
        Err(error) => Err(lease.give_back_after(error).await),
    }
}

async fn rebuild_in_place(
    lease: &mut RebuildLease,
    projection: &dyn Projection,
    store: &PgEventStore,
    dead_letters: &DeadLetters,
    options: &WorkerOptions,
    stats: &WorkerStats,
) -> anyhow::Result<u64> {
    lease.started().await?;
    let _gauge = RebuildingGauge::on(projection.name());
    projection.reset().await?;
    let mut replay = Replay::new(projection, store).await?;
    replay
        .until_caught_up(projection, store, dead_letters, options, stats)
        .await?;
    projection.mark_rebuilt().await?;
    Ok(replay.finish())
}

/// Rebuilds `projection` blue/green: a new generation is written beside the
/// live one, which readers and live workers go on using, and is swapped in
/// once it holds everything the live one does. A rebuild that stops before
/// the swap leaves the live generation as it was; the next one starts over.
/// A store that keeps one generation only is rebuilt in place. Fails with
/// [`RebuildInProgress`] while another process holds the lease.
pub async fn rebuild_beside_live(
    projection: &dyn Projection,
    store: &PgEventStore,
    dead_letters: &DeadLetters,
    options: &WorkerOptions,
    stats: &WorkerStats,
) -> anyhow::Result<u64> {
    let name = projection.name();
    let Some(mut lease) = RebuildLease::try_take(store.pool(), name).await? else {
        return Err(RebuildInProgress(name.to_owned()).into());
    };
    let next = match projection.next_generation().await {
        Ok(Some(next)) => next,
        Ok(None) => {
            return rebuild_under(lease, projection, store, dead_letters, options, stats).await
        }
        Err(error) => return Err(lease.give_back_after(error.into()).await),
    };
    match build_and_swap(
        &mut lease,
        next,
        projection,
        store,
        dead_letters,
        options,
        stats,
    )
    .await
    {
        Ok(count) => {
            lease.release().await?;
            Ok(count)
        }
        Err(error) => Err(lease.give_back_after(error).await),
    }
}

async fn build_and_swap(
    lease: &mut RebuildLease,
    next: Box<dyn super::NextGeneration>,
    projection: &dyn Projection,
    store: &PgEventStore,
    dead_letters: &DeadLetters,
    options: &WorkerOptions,
    stats: &WorkerStats,
) -> anyhow::Result<u64> {
    let name = projection.name();
    let generation = generations::start_building(&mut lease.connection, name).await?;
    tracing::info!(projection = name, generation, "building a new generation");
    let _gauge = RebuildingGauge::on(name);
    let mut replay = Replay::new(projection, store).await?;
    replay
        .until_caught_up(next.projection(), store, dead_letters, options, stats)
        .await?;
    generations::hold_batches(&mut lease.connection, name).await?;
    let swapped = async {
        // What the live workers applied since the replay last looked.
        replay
            .until_caught_up(next.projection(), store, dead_letters, options, stats)
            .await?;
        next.projection().mark_rebuilt().await?;
        generations::record_swap(&mut lease.connection, name).await?;
        next.swap().await?;
        anyhow::Ok(())
    }
    .await;
    let let_in = generations::let_batches_in(&mut lease.connection, name).await;
    swapped?;
    let_in?;
    tracing::info!(projection = name, generation, "new generation swapped in");
    Ok(replay.finish())
}

/// A replay from the event store, resumable where it stopped: the swap
/// replays what arrived since the first pass.
struct Replay {
    types: Vec<String>,
    checkpoint: GlobalCheckpoint,
    // A rebuild judges every event afresh: the dead letters of the live
    // history freeze nothing here.
    frozen: Frozen,
    progress: Progress,
}

impl Replay {
    async fn new(projection: &dyn Projection, store: &PgEventStore) -> anyhow::Result<Self> {
        let types: Vec<String> = projection
            .aggregate_types()
            .iter()
            .map(|t| t.to_string())
            .collect();
        let total = store.count_events(Some(&types)).await?;
        Ok(Self {
            progress: Progress::new(projection.name(), total),
            types,
            checkpoint: GlobalCheckpoint::default(),
            frozen: Frozen::new(),
        })
    }

    /// Applies every event after the checkpoint, batch by batch, until the
    /// event store has nothing newer.
    async fn until_caught_up(
        &mut self,
        into: &dyn Projection,
        store: &PgEventStore,
        dead_letters: &DeadLetters,
        options: &WorkerOptions,
        stats: &WorkerStats,
    ) -> anyhow::Result<()> {
        let applier = Applier {
            projection: into,
            options,
            stats,
        };
        loop {
            let batch = store
                .read_after(
                    self.checkpoint,
                    options.replay_batch_size as i64,
                    Some(&self.types),
                )
                .await?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            self.checkpoint = last.checkpoint();
            let letters = applier
                .apply(&batch, &mut self.frozen, &mut Wait::Sleep)
                .await
                .map_err(|Lost| anyhow::anyhow!("read model lost again during its rebuild"))?;
            dead_letters.record(into.name(), &letters).await?;
            self.progress.advance(batch.len() as u64);
        }
    }

    /// The events replayed.
    fn finish(self) -> u64 {
        self.progress.finish()
    }
}
