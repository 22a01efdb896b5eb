//! `replay-bench`: how fast `projectors replay` rebuilds each read model.
//!
//! It writes a catalog history into a fresh event store (a database of its
//! own, created and dropped): categories and brands, then products, each
//! created and repriced, with its stock initialised and adjusted twice. Then
//! it runs the projectors' own replay (`projectors::app::replay`, what
//! `projectors replay NAME` runs) into each named read model, on names of
//! its own in every store, and reports events per second. With
//! `--event-by-event`, the catalog tables are replayed a second time with
//! set-based writes off, the one-at-a-time baseline, for the ratio. See
//! `docs/benchmarks.md`.

use std::str::FromStr;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use clap::Parser;
use domain::catalog::{BrandEvent, CategoryEvent, ProductEvent, ProductStatus};
use domain::inventory::{InventoryEvent, StockAdjustmentReason};
use domain::values::{Currency, Price, Sku, Slug};
use futures::{StreamExt, TryStreamExt};
use infrastructure::database::MIGRATOR;
use infrastructure::event_store::aggregates::new_events;
use infrastructure::event_store::{EventMetadata, PgEventStore, StreamAppend};
use infrastructure::settings::{redact_url, Settings};
use rust_decimal::Decimal;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

const CATEGORIES: usize = 20;
const BRANDS: usize = 10;
/// ProductCreated, ProductPriceChanged, StockInitialized, 2 × StockAdjusted.
const EVENTS_PER_PRODUCT: u64 = 5;
const PRODUCTS_PER_APPEND: usize = 500;
const CONCURRENT_APPENDS: usize = 4;

#[derive(Parser, Debug)]
#[command(about = "Times `projectors replay` of a generated catalog history into each read model")]
struct Args {
    /// PostgreSQL server; a database of its own is created for the run.
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    url: String,
    /// Events to generate (rounded down to whole products).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Read models to replay, in this order.
    #[arg(long, value_delimiter = ',', default_values_t = projectors::app::PROJECTIONS.iter().map(|p| p.to_string()))]
    projections: Vec<String>,
    /// Also replay the catalog tables event by event (set-based writes off).
    #[arg(long)]
    event_by_event: bool,
    /// Events read from the event store per replay batch.
    #[arg(long, default_value_t = 2000)]
    replay_batch: usize,
    /// Keep the generated database and read models instead of dropping them.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let suffix = Uuid::now_v7().simple().to_string()[20..].to_owned();
    let database = format!("replay_bench_{suffix}");
    let admin = PgConnectOptions::from_str(&args.url).context("--url parses")?;
    let mut conn = admin.connect().await.context("PostgreSQL answers")?;
    sqlx::query(&format!("CREATE DATABASE \"{database}\""))
        .execute(&mut conn)
        .await?;
    conn.close().await?;

    let mut settings = Settings::load(0, None)?;
    settings.postgres.url = format!("{}/{database}", args.url.trim_end_matches('/'));
    settings.mongo.database = database.clone();
    settings.redis.key_prefix = format!("replay-bench:{suffix}:");
    settings.elasticsearch.products_alias = format!("products-replay-bench-{suffix}");
    settings.projectors.replay_batch_size = args.replay_batch;
    println!(
        "replay-bench: database {database} on {}",
        redact_url(&args.url)
    );

    let result = run(&args, &settings).await;
    if !args.keep {
        cleanup(&admin, &database, &settings).await;
    }
    result
}

async fn run(args: &Args, settings: &Settings) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(CONCURRENT_APPENDS as u32 + 2)
        .connect(&settings.postgres.url)
        .await?;
    MIGRATOR.run(&pool).await?;
    let store = PgEventStore::new(pool.clone());
    let started = Instant::now();
    let written = generate(&store, args.events).await?;
    let seconds = started.elapsed().as_secs_f64();
    // What autovacuum does after a load this size, before the replay reads it.
    sqlx::query("ANALYZE").execute(&pool).await?;
    println!(
        "generated {written} events in {seconds:.1} s ({:.0} events/s)",
        written as f64 / seconds
    );
    println!();
    println!("| projection | writes | events | seconds | events/s |");
    println!("|---|---|---:|---:|---:|");
    let mut runs: Vec<(String, bool)> =
        args.projections.iter().map(|p| (p.clone(), true)).collect();
    if args.event_by_event {
        runs.push((
            projectors::projections::catalog_tables::NAME.to_owned(),
            false,
        ));
    }
    for (name, set_based) in runs {
        let mut settings = settings.clone();
        settings.projectors.set_based_writes = set_based;
        let started = Instant::now();
        let counts = projectors::app::replay(&settings, std::slice::from_ref(&name)).await?;
        let seconds = started.elapsed().as_secs_f64();
        let events = counts.first().map_or(0, |(_, count)| *count);
        let writes = match (
            name == projectors::projections::catalog_tables::NAME,
            set_based,
        ) {
            (true, true) => "set-based",
            (true, false) => "event by event",
            (false, _) => "as configured",
        };
        println!(
            "| {name} | {writes} | {events} | {seconds:.1} | {:.0} |",
            events as f64 / seconds
        );
    }
    pool.close().await;
    Ok(())
}

fn metadata() -> EventMetadata {
    EventMetadata {
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        user_id: Some("replay-bench".into()),
        client_ip: None,
        user_agent: Some("replay-bench".into()),
    }
}

fn baht(amount: i64) -> Price {
    Price::new(Decimal::new(amount * 100 + 99, 2)).expect("a valid price")
}

/// Writes the history; returns how many events it wrote.
async fn generate(store: &PgEventStore, events: u64) -> anyhow::Result<u64> {
    let categories: Vec<Uuid> = (0..CATEGORIES).map(|_| Uuid::now_v7()).collect();
    let brands: Vec<Uuid> = (0..BRANDS).map(|_| Uuid::now_v7()).collect();
    let mut parents = Vec::new();
    for (n, id) in categories.iter().enumerate() {
        parents.push(StreamAppend {
            stream_id: id.to_string(),
            aggregate_type: "category".into(),
            expected_version: 0,
            events: new_events(&[CategoryEvent::CategoryCreated {
                category_id: *id,
                parent_id: None,
                name: format!("Category {n}"),
                slug: Slug::parse(&format!("category-{n}"))?,
                description: None,
                image_url: None,
                meta_title: None,
                meta_description: None,
                meta_keywords: vec![],
                sort_order: n as i32,
                is_active: true,
                at: Utc::now(),
            }]),
        });
    }
    for (n, id) in brands.iter().enumerate() {
        parents.push(StreamAppend {
            stream_id: id.to_string(),
            aggregate_type: "brand".into(),
            expected_version: 0,
            events: new_events(&[BrandEvent::BrandCreated {
                brand_id: *id,
                name: format!("Brand {n}"),
                slug: Slug::parse(&format!("brand-{n}"))?,
                description: None,
                logo_url: None,
                website_url: None,
                is_active: true,
                at: Utc::now(),
            }]),
        });
    }
    store
        .append(parents, &metadata(), None, |_| serde_json::Value::Null)
        .await?;
    let parents = (CATEGORIES + BRANDS) as u64;
    let products = events.saturating_sub(parents) / EVENTS_PER_PRODUCT;
    let chunks: Vec<(u64, u64)> = (0..products)
        .step_by(PRODUCTS_PER_APPEND)
        .map(|start| (start, (start + PRODUCTS_PER_APPEND as u64).min(products)))
        .collect();
    futures::stream::iter(chunks)
        .map(|(start, end)| {
            let appends: Vec<StreamAppend> = (start..end)
                .flat_map(|n| product_streams(n, &categories, &brands))
                .collect();
            async move {
                store
                    .append(appends, &metadata(), None, |_| serde_json::Value::Null)
                    .await
            }
        })
        .buffer_unordered(CONCURRENT_APPENDS)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(parents + products * EVENTS_PER_PRODUCT)
}

/// Product `n`'s stream and its stock's stream.
fn product_streams(n: u64, categories: &[Uuid], brands: &[Uuid]) -> [StreamAppend; 2] {
    let id = Uuid::now_v7();
    let sku = Sku::parse(&format!("BENCH-{n:08}")).expect("a valid sku");
    let price = 100 + (n % 5000) as i64;
    let created = ProductEvent::ProductCreated {
        product_id: id,
        sku: sku.clone(),
        name: format!("Product {n}"),
        slug: Slug::parse(&format!("product-{n}")).expect("a valid slug"),
        description: Some("A product of the replay benchmark".into()),
        short_description: None,
        category_id: Some(categories[n as usize % categories.len()]),
        brand_id: Some(brands[n as usize % brands.len()]),
        regular_price: baht(price),
        sale_price: None,
        cost_price: None,
        currency: Currency::thb(),
        track_inventory: true,
        stock_quantity: 0,
        low_stock_threshold: 5,
        weight: None,
        length: None,
        width: None,
        height: None,
        meta_title: None,
        meta_description: None,
        meta_keywords: vec!["bench".into()],
        status: ProductStatus::Active,
        featured: n.is_multiple_of(10),
        at: Utc::now(),
    };
    let repriced = ProductEvent::ProductPriceChanged {
        product_id: id,
        previous_regular_price: baht(price),
        previous_sale_price: None,
        regular_price: baht(price + 10),
        sale_price: Some(baht(price)),
        cost_price: None,
        at: Utc::now(),
    };
    let adjusted = |previous: i64, delta: i32| InventoryEvent::StockAdjusted {
        sku: sku.clone(),
        product_id: id,
        variant_id: None,
        delta,
        reason: StockAdjustmentReason::Restock,
        note: None,
        previous_available: previous,
        available: previous + i64::from(delta),
        at: Utc::now(),
    };
    let stock = [
        InventoryEvent::StockInitialized {
            sku: sku.clone(),
            product_id: id,
            variant_id: None,
            quantity: 20,
            low_stock_threshold: 5,
            track_inventory: true,
            at: Utc::now(),
        },
        adjusted(20, -3),
        adjusted(17, 10),
    ];
    [
        StreamAppend {
            stream_id: id.to_string(),
            aggregate_type: "product".into(),
            expected_version: 0,
            events: new_events(&[created, repriced]),
        },
        StreamAppend {
            stream_id: format!("inventory:{}", sku.as_str()),
            aggregate_type: "inventory".into(),
            expected_version: 0,
            events: new_events(&stock),
        },
    ]
}

/// Drops what the run created in every store; failures are reported, not
/// fatal, so that one store being down does not keep the others' data.
async fn cleanup(admin: &PgConnectOptions, database: &str, settings: &Settings) {
    match admin.connect().await {
        Ok(mut conn) => {
            if let Err(error) = sqlx::query(&format!("DROP DATABASE \"{database}\" WITH (FORCE)"))
                .execute(&mut conn)
                .await
            {
                eprintln!("replay-bench: cannot drop {database}: {error}");
            }
        }
        Err(error) => eprintln!("replay-bench: cannot drop {database}: {error}"),
    }
    if let Ok(client) = mongodb::Client::with_uri_str(&settings.mongo.url).await {
        if let Err(error) = client.database(&settings.mongo.database).drop().await {
            eprintln!("replay-bench: cannot drop the mongo database: {error}");
        }
    }
    if let Err(error) = delete_redis_keys(settings).await {
        eprintln!("replay-bench: cannot delete the redis keys: {error}");
    }
    let http = reqwest::Client::new();
    let alias = &settings.elasticsearch.products_alias;
    for pattern in [format!("{alias}-*"), format!("{alias}-lookups")] {
        let url = format!(
            "{}/{pattern}",
            settings.elasticsearch.url.trim_end_matches('/')
        );
        if let Err(error) = http.delete(url).send().await {
            eprintln!("replay-bench: cannot delete {pattern}: {error}");
        }
    }
}

async fn delete_redis_keys(settings: &Settings) -> anyhow::Result<()> {
    let client = redis::Client::open(settings.redis.url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let pattern = format!("{}*", settings.redis.key_prefix);
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for chunk in keys.chunks(1000) {
        let _: () = redis::AsyncCommands::del(&mut conn, chunk).await?;
    }
    Ok(())
}
