//! `append-bench`: the write path of this project's event store side by side
//! with postgres-es 0.5 on one PostgreSQL server, in one run. It owns the
//! run's lifecycle (a fresh database, created and dropped), the order of the
//! measured cells, and the report. See `docs/benchmarks.md`.
//!
//! Fairness: for each (writers W, events per append E) both stores get a
//! fresh pool of W connections, opened before the clock starts, and W
//! writers. Each writer owns `--aggregates-per-writer` new aggregates and
//! cycles over them, so every append carries the expected version its writer
//! last wrote and goes through the store's own optimistic check, which must
//! never fail. Which store goes first alternates from cell to cell, and a
//! CHECKPOINT precedes every measured run, so neither store inherits the
//! other's dirty pages.

mod report;
mod workload;

use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Parser;
use infrastructure::database::MIGRATOR;
use infrastructure::event_store::EventMetadata;
use infrastructure::settings::redact_url;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

use report::{Cell, Summary};
use workload::{Measurement, RunSpec, StoreKind};

const POSTGRES_ES_SCHEMA: &str = include_str!("../sql/postgres_es.sql");

#[derive(Parser, Debug)]
#[command(
    about = "Appends through this event store and through postgres-es 0.5 on one PostgreSQL, side by side"
)]
struct Args {
    /// PostgreSQL server; a database of its own is created there for the run
    /// and dropped at the end.
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    url: String,
    /// Concurrent writers, each with a pool connection of its own.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 64],
          value_parser = clap::value_parser!(u32).range(1..))]
    writers: Vec<u32>,
    /// Events per append.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 4],
          value_parser = clap::value_parser!(u32).range(1..))]
    events: Vec<u32>,
    /// Seconds measured per store and cell.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    duration: u64,
    /// Seconds of unmeasured appends before each measurement.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Aggregates each writer cycles over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    aggregates_per_writer: u32,
    /// Upper bound on one writer's appends in one run, warm-up included.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_appends: u64,
    /// Seconds of bulk inserts for PostgreSQL's own ceiling.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    ceiling_duration: u64,
    /// Rows per bulk insert for the ceiling.
    #[arg(long, default_value_t = 1000)]
    ceiling_rows: usize,
}

struct Results {
    server: String,
    cells: Vec<Cell>,
    ceiling_rows_per_second: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let command_line = shell_words::join(std::env::args().map(|arg| redact_url(&arg)));
    let server = PgConnectOptions::from_str(&args.url).context("--url")?;
    let database = format!("append_bench_{}", Uuid::now_v7().simple());

    let mut admin = server.clone().database("postgres").connect().await?;
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await?;
    eprintln!("database {database} created");
    let outcome = tokio::select! {
        outcome = run(&args, server.clone().database(&database)) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    // FORCE, because an interrupted run leaves its pools' connections open.
    let dropped = sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    admin.close().await?;
    let results = outcome?;
    dropped?;
    eprintln!("database {database} dropped");

    println!("Command: `{command_line}`\n");
    println!(
        "Server: {}. Each cell: {} s warm-up, {} s measured per store; {} aggregates per writer; {}-byte payload.\n",
        results.server,
        args.warmup,
        args.duration,
        args.aggregates_per_writer,
        workload::PAYLOAD_BYTES
    );
    print!("{}", report::table(&results.cells));
    println!();
    print!(
        "{}",
        report::ceiling_lines(
            &results.cells,
            args.ceiling_rows,
            results.ceiling_rows_per_second
        )
    );
    Ok(())
}

async fn run(args: &Args, options: PgConnectOptions) -> anyhow::Result<Results> {
    let setup = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    MIGRATOR.run(&setup).await?;
    sqlx::raw_sql(POSTGRES_ES_SCHEMA).execute(&setup).await?;
    sqlx::raw_sql(workload::CEILING_SCHEMA)
        .execute(&setup)
        .await?;
    let server: String = sqlx::query_scalar(
        "SELECT split_part(version(), ' ', 2) || ', synchronous_commit=' || current_setting('synchronous_commit')",
    )
    .fetch_one(&setup)
    .await?;
    let server = format!("PostgreSQL {server}");

    let payload = workload::payload();
    let metadata = EventMetadata {
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        user_id: Some("append-bench".to_owned()),
        client_ip: Some("127.0.0.1".to_owned()),
        user_agent: Some("append-bench".to_owned()),
    };
    let mut cells = Vec::new();
    let grid = args
        .writers
        .iter()
        .flat_map(|&writers| args.events.iter().map(move |&events| (writers, events)));
    for (index, (writers, events_per_append)) in grid.enumerate() {
        let order = if index % 2 == 0 {
            [StoreKind::Ours, StoreKind::PostgresEs]
        } else {
            [StoreKind::PostgresEs, StoreKind::Ours]
        };
        let mut ours = None;
        let mut postgres_es = None;
        for store in order {
            checkpoint(&setup).await?;
            let spec = RunSpec {
                store,
                writers,
                events_per_append,
                aggregates_per_writer: args.aggregates_per_writer,
                warmup: Duration::from_secs(args.warmup),
                duration: Duration::from_secs(args.duration),
                max_appends_per_writer: args.max_appends,
            };
            let measured = workload::measure(&options, spec, &metadata, &payload).await?;
            let summary = summarize(&measured);
            eprintln!(
                "{:>11}: {writers:>2} writers × {events_per_append} events: {} appends, {:.0} events/s, p50 {:.2} ms, p99 {:.2} ms",
                store.label(),
                measured.appends,
                summary.events_per_second,
                summary.p50_ms,
                summary.p99_ms
            );
            match store {
                StoreKind::Ours => ours = Some(summary),
                StoreKind::PostgresEs => postgres_es = Some(summary),
            }
        }
        cells.push(Cell {
            writers,
            events_per_append,
            ours: ours.expect("measured above"),
            postgres_es: postgres_es.expect("measured above"),
        });
    }

    checkpoint(&setup).await?;
    let ceiling_rows_per_second = workload::ceiling(
        &setup,
        args.ceiling_rows,
        Duration::from_secs(args.ceiling_duration),
        &payload,
    )
    .await?;
    eprintln!("    ceiling: {ceiling_rows_per_second:.0} rows/s");
    setup.close().await;
    Ok(Results {
        server,
        cells,
        ceiling_rows_per_second,
    })
}

fn summarize(measured: &Measurement) -> Summary {
    Summary {
        events_per_second: measured.events_per_second(),
        p50_ms: measured.latency_ms(0.50),
        p99_ms: measured.latency_ms(0.99),
    }
}

async fn checkpoint(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("CHECKPOINT")
        .execute(pool)
        .await
        .context("CHECKPOINT (the benchmark's user must be a superuser or have pg_checkpoint)")?;
    Ok(())
}
