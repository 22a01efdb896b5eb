//! The notification streams the two mail workers create: each notification
//! their process manager decides is appended, as `NotificationCreated`, to
//! the stream named by its id, so that its recipient can mark it read
//! (`POST /v1/me/notifications/{id}/read`). The id comes from the event that
//! caused it, so deciding again (a redelivery, a twin worker, a replay)
//! finds the notification made and appends nothing.

use domain::notification::{Notification, NotificationCommand, NotificationError};
use infrastructure::event_store::aggregates::{load, Upcasters};
use infrastructure::event_store::{EventMetadata, EventStoreError, PgEventStore, RecordedEvent};
use uuid::Uuid;

use crate::runtime::ProjectionError;

/// Appends the notification `command` creates, caused by `cause`, unless it
/// exists. `Err(reason)` when another notification holds its id.
pub async fn create(
    store: &PgEventStore,
    upcasters: &Upcasters,
    notification_id: Uuid,
    command: &NotificationCommand,
    cause: &RecordedEvent,
    agent: &str,
) -> Result<Result<(), String>, ProjectionError> {
    let metadata = EventMetadata {
        correlation_id: cause.metadata.correlation_id,
        causation_id: cause.event_id,
        user_id: None,
        client_ip: None,
        user_agent: Some(agent.to_owned()),
    };
    // A twin worker racing on the same cause appends first at most once;
    // the loser reads its notification back and finds it done.
    loop {
        let stream = load::<Notification>(store, upcasters, &notification_id.to_string())
            .await
            .map_err(unavailable_or_rejected)?;
        let events = match stream.decide(command.clone(), &()).await {
            Ok(events) => events,
            Err(error @ NotificationError::AlreadyCreated { .. }) => {
                return Ok(Err(error.to_string()))
            }
            Err(error) => return Err(ProjectionError::rejected(error)),
        };
        if events.is_empty() {
            return Ok(Ok(()));
        }
        match store
            .append(vec![stream.append(&events)], &metadata, None, |_| {
                serde_json::Value::Null
            })
            .await
        {
            Ok(_) => return Ok(Ok(())),
            Err(EventStoreError::VersionConflict { .. }) => continue,
            Err(error) => return Err(ProjectionError::unavailable(error)),
        }
    }
}

/// A stored event that cannot be decoded will never be; anything else the
/// store says is worth waiting for.
pub fn unavailable_or_rejected(error: EventStoreError) -> ProjectionError {
    match error {
        EventStoreError::Undecodable { .. } => ProjectionError::rejected(error),
        other => ProjectionError::unavailable(other),
    }
}
