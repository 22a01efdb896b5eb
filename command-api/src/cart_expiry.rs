//! The cart expiry job: appends `CartExpired` to every open cart whose
//! `expires_at` has passed. Every command-api process runs one; a
//! PostgreSQL advisory lock, held on a connection of its own, makes exactly
//! one of them the sweeper at a time (the lease). The connection is not the
//! pool's: holding the lease must not take a connection from the commands.
//! A sweeper whose process dies, or is cut off, loses its connection (TCP
//! keepalives notice within seconds), and with it the lease, to the next
//! process that asks.
//!
//! Candidates come from `event_store.cart_deadlines`, which a trigger keeps
//! in the transaction of every cart append (migration
//! 20261204000002_cart_deadlines.sql). The decision is the cart's own, on
//! its stream at the version read: a cart changed since it was listed is not
//! due any more and is left alone, and two sweepers (a lease lost mid-sweep)
//! cannot both expire it, because the second append conflicts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::cart::{Cart, CartError};
use infrastructure::event_store::aggregates::{load_opening, Upcasters};
use infrastructure::event_store::{EventMetadata, EventStoreError, PgEventStore};
use infrastructure::personal_data::PersonalData;
use infrastructure::relay::error_chain;
use infrastructure::settings::CartExpirySettings;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::watch;
use uuid::Uuid;

/// The advisory lock every sweeper of a database asks for.
const LEASE: &str = "cart-expiry";

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Carts that got `CartExpired`.
    pub expired: u64,
    /// Candidates left alone: changed since they were listed, or already
    /// ended. A conflict is retried by the next sweep.
    pub skipped: u64,
    /// Whether the batch was full: more may be due at once.
    pub full: bool,
}

pub struct CartExpiry {
    store: PgEventStore,
    upcasters: Upcasters,
    personal: PersonalData,
    settings: CartExpirySettings,
    /// The lease's connection, while this process holds it.
    lease: Option<PgConnection>,
}

impl CartExpiry {
    pub fn new(
        store: PgEventStore,
        upcasters: Upcasters,
        personal: PersonalData,
        settings: CartExpirySettings,
    ) -> Self {
        Self {
            store,
            upcasters,
            personal,
            settings,
            lease: None,
        }
    }

    /// Whether this process holds the lease now.
    pub fn is_sweeper(&self) -> bool {
        self.lease.is_some()
    }

    /// Takes the lease when it is free; keeps it while its connection lives.
    pub async fn try_lead(&mut self) -> Result<bool, sqlx::Error> {
        if let Some(connection) = self.lease.as_mut() {
            if connection.ping().await.is_ok() {
                return Ok(true);
            }
            tracing::warn!("cart expiry lease lost with its connection");
            metrics::gauge!("cart_expiry_is_sweeper").set(0.0);
            self.lease = None;
        }
        let options: PgConnectOptions = (*self.store.pool().connect_options()).clone();
        let mut connection = options
            .application_name(&format!("cart expiry pid {}", std::process::id()))
            .options([
                ("tcp_keepalives_idle", "5"),
                ("tcp_keepalives_interval", "2"),
                ("tcp_keepalives_count", "3"),
            ])
            .connect()
            .await?;
        let taken: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(LEASE)
                .fetch_one(&mut connection)
                .await?;
        if taken {
            tracing::info!("cart expiry lease acquired");
            metrics::gauge!("cart_expiry_is_sweeper").set(1.0);
            self.lease = Some(connection);
        } else {
            let _ = connection.close().await;
        }
        Ok(taken)
    }

    /// Gives the lease up, and its connection.
    pub async fn release(&mut self) {
        if let Some(mut connection) = self.lease.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                .bind(LEASE)
                .execute(&mut connection)
                .await;
            let _ = connection.close().await;
            metrics::gauge!("cart_expiry_is_sweeper").set(0.0);
        }
    }

    /// Expires up to `batch` carts due at `now`, as the lease holder; does
    /// nothing without the lease. `now` is the business time the events
    /// carry.
    pub async fn sweep(&mut self, now: DateTime<Utc>) -> Result<Sweep, EventStoreError> {
        if !self.try_lead().await.map_err(EventStoreError::from)? {
            return Ok(Sweep::default());
        }
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT cart_id FROM event_store.cart_deadlines \
             WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(self.settings.batch_size))
        .fetch_all(self.store.pool())
        .await?;
        let mut sweep = Sweep {
            full: due.len() >= self.settings.batch_size as usize,
            ..Sweep::default()
        };
        for cart_id in due {
            if self.expire(&cart_id, now).await? {
                sweep.expired += 1;
            } else {
                sweep.skipped += 1;
            }
        }
        if sweep.expired > 0 {
            metrics::counter!("cart_expiry_expired_total").increment(sweep.expired);
            tracing::info!(
                expired = sweep.expired,
                skipped = sweep.skipped,
                "carts expired"
            );
        }
        Ok(sweep)
    }

    /// Appends `CartExpired` to `cart_id` when its stream says it is due.
    async fn expire(&self, cart_id: &str, now: DateTime<Utc>) -> Result<bool, EventStoreError> {
        let loaded =
            load_opening::<Cart>(&self.store, &self.upcasters, &self.personal, cart_id).await?;
        let events = match loaded.aggregate.expire(now) {
            Ok(events) if !events.is_empty() => events,
            Ok(_) => return Ok(false),
            // Changed since it was listed: the trigger has moved its row.
            Err(CartError::NotYetExpired { .. }) => return Ok(false),
            Err(error) => {
                // Ended some other way whose row outlived it: drop the row.
                tracing::warn!(cart_id, error = %error, "cart not expirable; its deadline is dropped");
                sqlx::query("DELETE FROM event_store.cart_deadlines WHERE cart_id = $1")
                    .bind(cart_id)
                    .execute(self.store.pool())
                    .await?;
                return Ok(false);
            }
        };
        let id = Uuid::now_v7();
        let metadata = EventMetadata {
            correlation_id: id,
            causation_id: id,
            user_id: None,
            client_ip: None,
            user_agent: Some("cart-expiry".to_owned()),
        };
        match self
            .store
            .append(vec![loaded.append(&events)], &metadata, None, |_| {
                serde_json::Value::Null
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(EventStoreError::VersionConflict { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Sweeps every `interval_seconds` (at once again after a full batch)
    /// until `stopped`, then gives the lease up.
    pub async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let every = Duration::from_secs(self.settings.interval_seconds.max(1));
        loop {
            let pause = match self.sweep(Utc::now()).await {
                Ok(sweep) if sweep.full => Duration::ZERO,
                Ok(_) => every,
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "cart expiry sweep failed; next time");
                    every
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stopped.wait_for(|stop| *stop) => break,
            }
        }
        self.release().await;
    }
}
