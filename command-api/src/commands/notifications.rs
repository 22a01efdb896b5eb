//! A signed-in user's notifications: `POST /v1/me/notifications/{id}/read`
//! marks one of their own read, on the notification's stream, which the
//! order notifications or the account mail worker (`projectors`) created. Someone else's
//! notification does not exist for the reader (404).

use axum::extract::State;
use axum::response::Response;
use domain::notification::{Notification, NotificationCommand, NotificationError};
use tracing::instrument;
use uuid::Uuid;

use crate::auth::SignedIn;
use crate::command::{execute, load_existing, AppState, Plan, Receipt};
use crate::error::ApiError;
use crate::openapi::{CommandHeaders, Conflict, NotFound, PreconditionFailed};
use crate::request::{ApiPath, CommandContext};

#[utoipa::path(
    post,
    path = "/v1/me/notifications/{id}/read",
    tag = "me",
    operation_id = "mark_notification_read",
    summary = "Mark one of my notifications read",
    description = "Sets `read` and `readAt` on the notification (`GET /v1/me/notifications` \
        on the query API), an order's or an account message's alike. Nothing is appended \
        when it is read already. Another user's notification is a 404.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The notification"), CommandHeaders),
    responses(
        (status = 200, description = "Read", body = Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
    ),
)]
#[instrument(skip_all, fields(user_id = %session.user_id, notification_id = %id))]
pub async fn mark_read(
    SignedIn(session, _): SignedIn,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    context: CommandContext,
) -> Result<Response, ApiError> {
    let user_id = session.user_id;
    execute(&state, &context, || {
        let (state, context) = (state.clone(), context.clone());
        async move {
            let notification =
                load_existing::<Notification>(&state, &context, "notification", id).await?;
            let command = NotificationCommand::MarkNotificationRead {
                user_id,
                at: context.at,
            };
            let events = notification
                .decide(command, &())
                .await
                .map_err(|error| match error {
                    NotificationError::NotFound | NotificationError::NotRecipient { .. } => {
                        ApiError::not_found("notification", id)
                    }
                    NotificationError::AlreadyCreated { .. } => {
                        unreachable!("marking read creates nothing")
                    }
                })?;
            Ok(Plan::updated(id, vec![notification.append(&events)]))
        }
    })
    .await
}
