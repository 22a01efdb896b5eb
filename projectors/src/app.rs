//! The projectors process: builds the configured projections, runs one worker
//! per projection (each its own consumer group), serves `/health` with their
//! counters, and offers the rebuild that analysts run to replay history.

use std::net::SocketAddr;
use std::sync::Arc;

use infrastructure::database::connect_and_migrate;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::PgEventStore;
use infrastructure::metrics;
use infrastructure::personal_data::PersonalData;
use infrastructure::settings::Settings;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::health::{health_router, HealthBounds};
use crate::projections::{
    account_mail, activity_log, cart_cache, cart_documents, catalog_tables, order_notifications,
    orders_tables, payments_tables, product_cache, product_search, promotion_tables, users_tables,
};
use crate::runtime::worker::rebuild_beside_live;
use crate::runtime::{DeadLetters, Projection, Worker, WorkerOptions, WorkerStats};

/// Every projection this binary knows, by name.
pub const PROJECTIONS: &[&str] = &[
    catalog_tables::NAME,
    product_search::NAME,
    product_cache::NAME,
    activity_log::NAME,
    users_tables::NAME,
    account_mail::NAME,
    cart_documents::NAME,
    cart_cache::NAME,
    promotion_tables::NAME,
    orders_tables::NAME,
    payments_tables::NAME,
    order_notifications::NAME,
];

/// Opens the personal data of the log for the projections that show it
/// (the activity log, the users and orders tables) or deliver it (the
/// account mail).
pub fn personal_data(settings: &Settings, store: &PgEventStore) -> anyhow::Result<PersonalData> {
    Ok(PersonalData::new(
        store.pool().clone(),
        &settings.personal_data,
        domain::personal::personal_fields,
        domain::personal::erased_value,
    )?)
}

/// Builds the named projection against the configured stores.
pub async fn build_projection(
    name: &str,
    settings: &Settings,
    store: &PgEventStore,
) -> anyhow::Result<Arc<dyn Projection>> {
    let upcasters = Upcasters::default();
    Ok(match name {
        catalog_tables::NAME => {
            let tables = catalog_tables::CatalogTables::new(store.pool().clone(), upcasters)
                .with_parked_max_age(std::time::Duration::from_secs(
                    settings.projectors.parked_max_age_seconds,
                ));
            Arc::new(match settings.projectors.set_based_writes {
                true => tables,
                false => tables.event_by_event(),
            })
        }
        product_search::NAME => Arc::new(product_search::ProductSearch::connect(
            &settings.elasticsearch.url,
            &settings.elasticsearch.products_alias,
            upcasters,
        )?),
        product_cache::NAME => Arc::new(
            product_cache::ProductCache::connect(
                &settings.redis.url,
                &settings.redis.key_prefix,
                upcasters,
            )
            .await?,
        ),
        activity_log::NAME => Arc::new(
            activity_log::ActivityLog::connect(
                &settings.mongo.url,
                &settings.mongo.database,
                personal_data(settings, store)?,
            )
            .await?,
        ),
        users_tables::NAME => Arc::new(
            users_tables::UsersTables::new(
                store.pool().clone(),
                upcasters,
                personal_data(settings, store)?,
            )
            .with_parked_max_age(std::time::Duration::from_secs(
                settings.projectors.parked_max_age_seconds,
            )),
        ),
        promotion_tables::NAME => Arc::new(
            promotion_tables::PromotionTables::new(store.pool().clone(), upcasters)
                .with_parked_max_age(std::time::Duration::from_secs(
                    settings.projectors.parked_max_age_seconds,
                )),
        ),
        orders_tables::NAME => Arc::new(build_orders_tables(settings, store)?),
        payments_tables::NAME => Arc::new(build_payments_tables(settings, store)),
        account_mail::NAME => Arc::new(
            account_mail::AccountMail::connect(
                store.clone(),
                &settings.mongo.url,
                &settings.mongo.database,
                upcasters,
                personal_data(settings, store)?,
                infrastructure::mail::Mailer::new(&settings.smtp)?,
            )
            .await?,
        ),
        order_notifications::NAME => Arc::new(
            order_notifications::OrderNotifications::connect(
                store.clone(),
                &settings.mongo.url,
                &settings.mongo.database,
                upcasters,
                personal_data(settings, store)?,
                infrastructure::mail::Mailer::new(&settings.smtp)?,
            )
            .await?,
        ),
        cart_documents::NAME => Arc::new(
            cart_documents::CartDocuments::connect(
                &settings.mongo.url,
                &settings.mongo.database,
                upcasters,
            )
            .await?,
        ),
        cart_cache::NAME => Arc::new(
            cart_cache::CartCache::connect(
                &settings.redis.url,
                &settings.redis.key_prefix,
                upcasters,
            )
            .await?,
        ),
        other => anyhow::bail!(
            "unknown projection {other:?}; known: {}",
            PROJECTIONS.join(", ")
        ),
    })
}

fn build_orders_tables(
    settings: &Settings,
    store: &PgEventStore,
) -> anyhow::Result<orders_tables::OrdersTables> {
    Ok(orders_tables::OrdersTables::new(
        store.pool().clone(),
        Upcasters::default(),
        personal_data(settings, store)?,
    )
    .with_parked_max_age(std::time::Duration::from_secs(
        settings.projectors.parked_max_age_seconds,
    )))
}

fn build_payments_tables(
    settings: &Settings,
    store: &PgEventStore,
) -> payments_tables::PaymentsTables {
    payments_tables::PaymentsTables::new(store.pool().clone(), Upcasters::default())
        .with_parked_max_age(std::time::Duration::from_secs(
            settings.projectors.parked_max_age_seconds,
        ))
}

fn selected(settings: &Settings) -> Vec<String> {
    if settings.projectors.only.is_empty() {
        PROJECTIONS.iter().map(|p| p.to_string()).collect()
    } else {
        settings.projectors.only.clone()
    }
}

pub struct Application {
    port: u16,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Application {
    /// Migrates, builds every selected projection, starts its worker and the
    /// health endpoint on `projectors.health_port` (0 = ephemeral).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // First: whatever the workers record before the recorder exists is
        // lost.
        metrics::install();
        let pool = connect_and_migrate(&settings.postgres).await?;
        let store = PgEventStore::new(pool);
        // Before anything is read: a key table restored from before an
        // erasure must not open that person's data again.
        personal_data(&settings, &store)?.reapply_erasures().await?;
        let (shutdown, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut stats = Vec::new();
        for name in selected(&settings) {
            let projection = if name == orders_tables::NAME {
                // Its parked orders wait for rows other projections write:
                // they are looked at again periodically, not only when a
                // batch comes (see `orders_tables`).
                let tables = Arc::new(build_orders_tables(&settings, &store)?);
                let mut stopped = stopped.clone();
                tasks.spawn(tables.clone().retry_parked_every(
                    store.pool().clone(),
                    orders_tables::DEFAULT_RETRY_PARKED_EVERY,
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                ));
                tables as Arc<dyn Projection>
            } else if name == payments_tables::NAME {
                // Its parked payments wait for the orders' rows, which
                // orders-tables writes: looked at again periodically too
                // (see `payments_tables`).
                let tables = Arc::new(build_payments_tables(&settings, &store));
                let mut stopped = stopped.clone();
                tasks.spawn(tables.clone().retry_parked_every(
                    store.pool().clone(),
                    payments_tables::DEFAULT_RETRY_PARKED_EVERY,
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                ));
                tables as Arc<dyn Projection>
            } else {
                build_projection(&name, &settings, &store).await?
            };
            let worker = Worker::new(
                projection,
                &settings.kafka,
                store.clone(),
                WorkerOptions::from_settings(&settings.projectors),
            )
            .await?;
            stats.push((worker.projection_name(), worker.stats()));
            let mut stopped = stopped.clone();
            tasks.spawn(async move {
                worker
                    .run(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            });
            tracing::info!(projection = %name, "projection worker started");
        }
        let address = SocketAddr::new(settings.http.host.parse()?, settings.projectors.health_port);
        let listener = tokio::net::TcpListener::bind(address).await?;
        let port = listener.local_addr()?.port();
        let router = health_router(
            stats,
            store.pool().clone(),
            HealthBounds::from_settings(&settings.projectors),
        );
        let mut stopped_http = stopped.clone();
        tasks.spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped_http.wait_for(|s| *s).await;
                })
                .await;
        });
        Ok(Self {
            port,
            shutdown,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until `signal` resolves, then stops every worker between batches.
    pub async fn run_until(mut self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Rebuilds the named read models from the whole event history, without
/// Kafka: what an analyst runs to rebuild or study a read model. Each is
/// rebuilt blue/green where its store allows it: readers and live workers
/// keep the old generation until the new one has caught up and is swapped in.
pub async fn replay(settings: &Settings, names: &[String]) -> anyhow::Result<Vec<(String, u64)>> {
    let pool = connect_and_migrate(&settings.postgres).await?;
    let store = PgEventStore::new(pool.clone());
    personal_data(settings, &store)?.reapply_erasures().await?;
    let dead_letters = DeadLetters::new(pool);
    let options = WorkerOptions::from_settings(&settings.projectors);
    let stats = WorkerStats::new();
    let mut counts = Vec::new();
    for name in names {
        let projection = build_projection(name, settings, &store).await?;
        let count =
            rebuild_beside_live(projection.as_ref(), &store, &dead_letters, &options, &stats)
                .await?;
        counts.push((name.clone(), count));
    }
    Ok(counts)
}
