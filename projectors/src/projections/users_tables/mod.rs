//! The accounts' relational read model: `read_model.users`, `user_profiles`
//! and `user_addresses`, exactly as the seed defines them, kept from the user
//! aggregate's events. The role has no seed column: it stays in the event
//! stream (and in sessions).
//!
//! Each batch is one transaction, applied event by event, with each user's
//! last applied version (`projected_versions`) written in it, so a
//! redelivered or replayed event is a no-op.
//!
//! The events' personal fields arrive sealed (`infrastructure::
//! personal_data`): they are opened on a copy of the batch before decoding,
//! and an erased person's open to the domain's placeholders. `UserErased`
//! keeps the `users` row, for the orders that point at it, with placeholders
//! where the seed's constraints want a value (the email, the password hash)
//! and NULL everywhere else, and deletes the profile and the addresses. A
//! rebuild after the erasure ends in the same rows: the placeholder phone of
//! `UserPhoneVerified` is never written (verification only sets the flag),
//! and the erasure overwrites whatever the placeholders of the earlier events
//! wrote.
//!
//! A user's events are one stream, applied in order. Only the unique email
//! and phone relate users to each other: a value handed over between two
//! people (a changed email taken by a new account, an erased person's phone)
//! may reach the new holder's partition before the old holder's release. The
//! new holder's event then parks (`runtime::parking`) under
//! `user_values:{old holder}`, with the later events of its stream queued
//! behind it, until the old holder's next email, profile or erasure event is
//! applied. Parked and dead-lettered events are kept sealed, as they were
//! delivered; the parking keys name users by id only.

mod generation;
mod one_event;

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use domain::user::UserEvent;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use infrastructure::personal_data::{PersonalData, PersonalDataError};
use sqlx::{Connection, PgPool, Postgres, Transaction};

use crate::runtime::parking::Parking;
use crate::runtime::{dead_letters, DeadLetter, NextGeneration, Projection, ProjectionError};
use crate::stores::postgres::PgReadModel;
use crate::stores::postgres::{pool_in_schema, LIVE_SCHEMA};

pub const NAME: &str = "users-tables";

const READ_MODEL: PgReadModel = PgReadModel {
    projection: NAME,
    probe_table: "users",
    // CASCADE as the catalog's: the seed's orders point at users.
    truncate: "TRUNCATE user_addresses, user_profiles, users CASCADE",
};
const TYPES: &[&str] = &["user"];

/// How long an event may stay parked before it is dead-lettered, unless
/// configured otherwise.
pub const DEFAULT_PARKED_MAX_AGE: Duration = Duration::from_secs(3600);

pub struct UsersTables {
    pool: PgPool,
    upcasters: Upcasters,
    personal: PersonalData,
    parking: Parking,
    parked_max_age: Duration,
}

/// What applying one event came to.
enum Outcome {
    /// Written; the keys whose parked events may now go ahead.
    Applied(Vec<String>),
    /// Needs `key` released first.
    Waiting(String),
    /// Can never apply.
    Rejected(String),
}

/// An event of the batch with its personal fields opened, or why they do not
/// open.
type Opened = Result<RecordedEvent, String>;

impl UsersTables {
    /// Writes the live generation, in `read_model`, through connections of
    /// its own made like `pool`'s.
    pub fn new(pool: PgPool, upcasters: Upcasters, personal: PersonalData) -> Self {
        Self {
            pool: pool_in_schema(&pool, LIVE_SCHEMA),
            upcasters,
            personal,
            parking: Parking::new(NAME),
            parked_max_age: DEFAULT_PARKED_MAX_AGE,
        }
    }

    /// Dead-letters events parked for longer than `max_age`.
    pub fn with_parked_max_age(mut self, max_age: Duration) -> Self {
        self.parked_max_age = max_age;
        self
    }

    /// Copies of `events` with their personal fields opened, in one key
    /// lookup; when a value does not open, event by event, so that only the
    /// events holding such a value are refused.
    async fn open(&self, events: &[RecordedEvent]) -> Result<Vec<Opened>, ProjectionError> {
        let mut opened = events.to_vec();
        match self.personal.open(&mut opened).await {
            Ok(()) => return Ok(opened.into_iter().map(Ok).collect()),
            Err(PersonalDataError::Corrupt { .. }) => {}
            Err(error) => return Err(ProjectionError::unavailable(error)),
        }
        let mut each = Vec::with_capacity(events.len());
        for event in events {
            each.push(self.open_one(event).await?);
        }
        Ok(each)
    }

    async fn open_one(&self, event: &RecordedEvent) -> Result<Opened, ProjectionError> {
        let mut opened = [event.clone()];
        match self.personal.open(&mut opened).await {
            Ok(()) => Ok(Ok(opened.into_iter().next().expect("one event"))),
            Err(error @ PersonalDataError::Corrupt { .. }) => Ok(Err(error.to_string())),
            Err(error) => Err(ProjectionError::unavailable(error)),
        }
    }

    /// Applies `event` (as delivered, sealed) and whatever its effect
    /// releases from parking.
    async fn project(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: &RecordedEvent,
        opened: Opened,
        letters: &mut Vec<DeadLetter>,
        any_parked: &mut bool,
    ) -> Result<(), ProjectionError> {
        let mut queue = VecDeque::from([(event.clone(), Some(opened))]);
        while let Some((event, opened)) = queue.pop_front() {
            let applied: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM projected_versions \
                 WHERE projection = $1 AND aggregate_id = $2 FOR UPDATE",
            )
            .bind(NAME)
            .bind(&event.aggregate_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(ProjectionError::unavailable)?;
            if applied.is_some_and(|v| v >= event.version) {
                continue;
            }
            // Only a user with a parked earlier event queues behind it; with
            // nothing parked at all, the lookup is skipped.
            if *any_parked && self.behind_parked(tx, &event).await? {
                continue;
            }
            let opened = match opened {
                Some(opened) => opened,
                // Released from parking: opened now, as it was parked sealed.
                None => self.open_one(&event).await?,
            };

            let mut outcome = self.try_apply(tx, &opened).await?;
            if let Outcome::Waiting(key) = &outcome {
                // Parking and releasing a key take its lock: a release that
                // committed before we got it is seen by this second try, and
                // one still to come waits for our commit and sees our row.
                let key = key.clone();
                self.parking
                    .lock_key(tx, &key)
                    .await
                    .map_err(ProjectionError::unavailable)?;
                outcome = self.try_apply(tx, &opened).await?;
            }
            let result: Result<(), sqlx::Error> = async {
                match outcome {
                    Outcome::Waiting(key) => {
                        tracing::debug!(aggregate_id = %event.aggregate_id, version = event.version, waiting_for = %key, "event parked");
                        self.parking.park(tx, &event, &key).await?;
                        *any_parked = true;
                    }
                    Outcome::Rejected(reason) => {
                        // In the transaction that marks the event handled: a
                        // crash cannot keep one without the other.
                        let letter = DeadLetter::for_event(&event, reason);
                        dead_letters::write(&mut **tx, NAME, std::slice::from_ref(&letter))
                            .await?;
                        letters.push(letter);
                        READ_MODEL
                        .record_version(tx, &event.aggregate_id, event.version)
                        .await?;
                    }
                    Outcome::Applied(releases) => {
                        READ_MODEL
                        .record_version(tx, &event.aggregate_id, event.version)
                        .await?;
                        for key in releases {
                            let (released, undecodable) = self.parking.release(tx, &key).await?;
                            letters.extend(undecodable);
                            queue.extend(released.into_iter().map(|e| (e, None)));
                        }
                    }
                }
                Ok::<_, sqlx::Error>(())
            }
            .await;
            result.map_err(ProjectionError::unavailable)?;
        }
        Ok(())
    }

    /// Whether an earlier event of `event`'s user is parked; if so, `event`
    /// is parked behind it.
    async fn behind_parked(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: &RecordedEvent,
    ) -> Result<bool, ProjectionError> {
        let queued = async {
            if !self.parking.behind_parked(tx, event).await? {
                return Ok(false);
            }
            let key = format!("aggregate:{}", event.aggregate_id);
            // Under the key's lock, the head may turn out released already
            // by another worker's committed transaction.
            self.parking.lock_key(tx, &key).await?;
            if !self.parking.behind_parked(tx, event).await? {
                return Ok(false);
            }
            self.parking.park(tx, event, &key).await?;
            Ok::<_, sqlx::Error>(true)
        };
        queued.await.map_err(ProjectionError::unavailable)
    }

    /// One try at applying `opened` in a savepoint of `tx`, kept only when
    /// the event applied.
    async fn try_apply(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        opened: &Opened,
    ) -> Result<Outcome, ProjectionError> {
        let event = match opened {
            Ok(event) => event,
            Err(reason) => return Ok(Outcome::Rejected(reason.clone())),
        };
        let (_, payload) = self.upcasters.upcast(event);
        let decoded: UserEvent = match serde_json::from_value(payload) {
            Ok(decoded) => decoded,
            Err(error) => {
                return Ok(Outcome::Rejected(undecodable(
                    &self.personal,
                    event,
                    &error,
                )))
            }
        };
        let result = async {
            let mut savepoint = tx.begin().await?;
            match one_event::apply(&mut savepoint, &decoded).await {
                Ok(releases) => {
                    savepoint.commit().await?;
                    Ok(Outcome::Applied(releases))
                }
                Err(sqlx::Error::Database(error))
                    if error
                        .code()
                        .is_some_and(|c| c.starts_with("22") || c.starts_with("23")) =>
                {
                    savepoint.rollback().await?;
                    let reason = error.message().to_owned();
                    let Some(value) = error.constraint().and_then(one_event::unique_value) else {
                        return Ok(Outcome::Rejected(reason));
                    };
                    // Another user still holds the email or phone: the
                    // release of its earlier owner has not been applied yet.
                    match one_event::holder(tx, &decoded, value).await? {
                        Some(holder) => Ok(Outcome::Waiting(one_event::values_key(holder))),
                        // Released meanwhile by a transaction that just
                        // committed: the batch is tried again.
                        None => Err(sqlx::Error::Database(error)),
                    }
                }
                Err(other) => Err(other),
            }
        };
        result.await.map_err(ProjectionError::unavailable)
    }
}

/// Why an event does not decode. The decoder's message may quote the
/// values it refused, which for an event with personal fields are the
/// person's, in the clear: it is then withheld from the dead letter.
fn undecodable(
    personal: &PersonalData,
    event: &RecordedEvent,
    error: &serde_json::Error,
) -> String {
    let what = format!(
        "{} (schema version {}) does not decode as a user event",
        event.event_type, event.schema_version
    );
    if personal.has_personal_fields(&event.aggregate_type, &event.event_type) {
        format!("{what}; the decoder's message is withheld, as it may quote personal values")
    } else {
        format!("{what}: {error}")
    }
}

#[async_trait]
impl Projection for UsersTables {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        TYPES
    }

    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let opened = self.open(events).await?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(ProjectionError::unavailable)?;
        let mut any_parked = self
            .parking
            .any_parked(&mut tx)
            .await
            .map_err(ProjectionError::unavailable)?;
        let mut letters = Vec::new();
        if any_parked {
            letters = self
                .parking
                .expire(&mut tx, self.parked_max_age)
                .await
                .map_err(ProjectionError::unavailable)?;
        }
        for (event, opened) in events.iter().zip(opened) {
            self.project(&mut tx, event, opened, &mut letters, &mut any_parked)
                .await?;
        }
        tx.commit().await.map_err(ProjectionError::unavailable)?;
        Ok(letters)
    }

    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        READ_MODEL.is_intact(&self.pool).await
    }

    async fn probe(&self) -> Result<(), ProjectionError> {
        READ_MODEL.probe(&self.pool).await
    }

    async fn next_generation(&self) -> Result<Option<Box<dyn NextGeneration>>, ProjectionError> {
        self.create_next_generation().await.map(Some)
    }

    async fn forget_applied(
        &self,
        aggregate_id: &str,
        version: i64,
    ) -> Result<(), ProjectionError> {
        READ_MODEL
            .forget_applied(&self.pool, aggregate_id, version)
            .await
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        READ_MODEL.reset(&self.pool).await
    }
}
