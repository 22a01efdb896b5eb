//! The operator's commands on the event log, run from the command line:
//! skipping a stored event that cannot be decoded, and resetting the relay's
//! checkpoint so that it publishes again from a given event.

use anyhow::{bail, Context};
use infrastructure::database::connect_and_migrate;
use infrastructure::event_store::postgres::SkipOutcome;
use infrastructure::event_store::PgEventStore;
use infrastructure::settings::Settings;

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
