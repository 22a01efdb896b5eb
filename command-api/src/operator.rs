//! The operator's commands, run from the command line: skipping a stored
//! event that cannot be decoded, resetting the relay's checkpoint so that it
//! publishes again from a given event, creating the first admin, and
//! re-wrapping the data keys in a master-key rotation.

use anyhow::{bail, Context};
use infrastructure::database::connect_and_migrate;
use infrastructure::event_store::postgres::SkipOutcome;
use infrastructure::event_store::EventMetadata;
use infrastructure::event_store::PgEventStore;
use infrastructure::settings::Settings;
use uuid::Uuid;

use crate::commands::accounts::{self, RegisterRequest};
use crate::request::{CommandContext, Preconditions, RequestIds};

async fn store(settings: &Settings) -> anyhow::Result<PgEventStore> {
    let pool = connect_and_migrate(&settings.postgres)
        .await
        .context("connecting to PostgreSQL and migrating")?;
    Ok(PgEventStore::new(pool))
}

/// Who ran an operator command, as recorded with it.
fn operator() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("{user} via command-api (pid {})", std::process::id())
}

pub async fn skip_event(
    settings: &Settings,
    position: i64,
    reason: &str,
) -> anyhow::Result<String> {
    if reason.trim().is_empty() {
        bail!("a reason is required: it is recorded with the skip");
    }
    let store = store(settings).await?;
    match store
        .skip_undecodable(position, reason, &operator())
        .await?
    {
        SkipOutcome::Skipped { event_id } => Ok(format!(
            "event {event_id} at position {position} is skipped by every reader of the log"
        )),
        SkipOutcome::AlreadySkipped => Ok(format!(
            "the event at position {position} was already skipped"
        )),
        SkipOutcome::Decodable => {
            bail!("the event at position {position} decodes; nothing to skip")
        }
        SkipOutcome::NoSuchEvent => bail!("there is no event at position {position}"),
    }
}

pub async fn reset_relay_checkpoint(
    settings: &Settings,
    from_position: i64,
) -> anyhow::Result<String> {
    let store = store(settings).await?;
    let Some(place) = store.place_before(from_position).await? else {
        bail!("there is no event at position {from_position}");
    };
    store.reset_checkpoint(&settings.relay.name, place).await?;
    Ok(format!(
        "relay {} will publish again from the event at position {from_position}",
        settings.relay.name
    ))
}

/// Moves every data key under the current master key and says what is left
/// under each: a retired key may be dropped from `previous_master_keys` once
/// no key is under it.
pub async fn rewrap_keys(settings: &Settings, batch: i64) -> anyhow::Result<String> {
    let store = store(settings).await?;
    let personal = infrastructure::personal_data::PersonalData::new(
        store.pool().clone(),
        &settings.personal_data,
        domain::personal::personal_fields,
        domain::personal::erased_value,
    )?;
    // A key table restored from before an erasure must not be re-wrapped
    // with that key alive.
    personal.reapply_erasures().await?;
    let moved = personal.rewrap(batch).await?;
    let left: Vec<String> = personal
        .keys_by_master()
        .await?
        .into_iter()
        .map(|(id, count)| format!("{id}: {count}"))
        .collect();
    Ok(format!(
        "{moved} data keys re-wrapped under {}; live keys by master key: {}",
        settings.personal_data.master_key_id,
        left.join(", ")
    ))
}

/// Registers an admin: the first one, which no HTTP request can create.
/// The password is read by the caller (from stdin), never from an argument.
pub async fn create_admin(
    settings: &Settings,
    email: &str,
    first_name: &str,
    last_name: &str,
    password: String,
) -> anyhow::Result<String> {
    let state = crate::app::state_of(settings, store(settings).await?).await?;
    let id = Uuid::now_v7();
    let context = CommandContext {
        ids: RequestIds {
            request_id: id,
            correlation_id: id,
        },
        metadata: EventMetadata {
            correlation_id: id,
            causation_id: id,
            user_id: None,
            client_ip: None,
            user_agent: Some(operator()),
        },
        idempotency: None,
        preconditions: Preconditions::default(),
        at: crate::request::command_time(),
    };
    let request = RegisterRequest {
        email: email.to_owned(),
        password,
        first_name: first_name.to_owned(),
        last_name: last_name.to_owned(),
        phone: None,
        date_of_birth: None,
        gender: None,
    };
    let user_id = accounts::create_admin(&state, &context, request)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(format!(
        "admin {user_id} created; log in with POST /v1/sessions"
    ))
}
