//! The command pipeline every handler runs: replay an idempotent request's
//! first answer, else load the streams, decide with the domain, and append
//! everything the decision holds in one atomic multi-stream append. A version
//! conflict re-runs the whole load-decide-append; a rejection appends nothing.

use std::collections::HashSet;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cqrs_es::Aggregate;
use domain::uniqueness::{unique_key_stream_id, UniqueKey, UniqueKeyEvent, UniqueScope};
use infrastructure::event_store::aggregates::{load, load_opening, Loaded, Upcasters};
use infrastructure::event_store::{
    AppendOutcome, ConsistencyToken, EventStoreError, PgEventStore, StreamAppend,
};
use infrastructure::passwords::PasswordHasher;
use infrastructure::personal_data::PersonalData;
use infrastructure::rate_limit::{RateLimitSettings, RateLimiter};
use infrastructure::sessions::Sessions;
use infrastructure::settings::RelaySettings;
use serde::Serialize;
use serde_json::{json, Value};
use tracing::Instrument;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::request::{etag, CommandContext, CONSISTENCY_TOKEN, IDEMPOTENT_REPLAYED};

/// Retries after a version conflict before answering 409.
pub const MAX_RETRIES: u32 = 3;

/// What handlers share: the event store, the upcasters of its events, the
/// relay's settings (health reports on the relay of that name), the personal
/// data vault, the sessions, the password hasher and the proxies whose
/// `X-Forwarded-For` is believed.
#[derive(Clone)]
pub struct AppState {
    pub store: PgEventStore,
    pub upcasters: Upcasters,
    pub relay: RelaySettings,
    pub personal: PersonalData,
    pub sessions: Arc<Sessions>,
    pub passwords: PasswordHasher,
    pub trusted_proxies: Arc<Vec<IpAddr>>,
    pub limiter: Arc<RateLimiter>,
    pub rate_limits: RateLimitSettings,
    /// How long an emailed one-time code stays valid.
    pub code_ttl: chrono::TimeDelta,
    /// The line cap and time to live of carts.
    pub cart_policy: domain::cart::CartPolicy,
    /// The shipping methods a cart can choose, with their fees.
    pub shipping_methods: Arc<std::collections::BTreeMap<String, rust_decimal::Decimal>>,
    /// The payment service provider payments go through.
    pub payment_provider: Arc<dyn crate::payments::provider::PaymentProvider>,
}

/// Seals every personal value of `appends` under its person's key
/// (`domain::personal::personal_subject`: a user stream's person, an
/// order's customer).
pub async fn seal_personal_data(
    state: &AppState,
    appends: &mut [StreamAppend],
) -> Result<(), ApiError> {
    for append in appends.iter_mut() {
        for event in append.events.iter_mut() {
            if !state
                .personal
                .has_personal_fields(&append.aggregate_type, &event.event_type)
            {
                continue;
            }
            let body = event.payload.get(&event.event_type).unwrap_or(&Value::Null);
            let subject =
                domain::personal::personal_subject(&append.aggregate_type, &append.stream_id, body)
                    .ok_or_else(|| {
                        ApiError::internal(anyhow::anyhow!(
                            "personal data on stream {} with nobody to seal it for",
                            append.stream_id
                        ))
                    })?;
            state
                .personal
                .seal_payload(
                    subject,
                    &append.aggregate_type,
                    &event.event_type,
                    &mut event.payload,
                )
                .await?;
        }
    }
    Ok(())
}

/// What a command answers (stored with its idempotency key, and replayed
/// as it was): the aggregate it addressed, that stream's version after the
/// append (its ETag), the global position of the last event appended, and
/// the consistency token a read can wait for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Receipt {
    pub id: Uuid,
    /// The addressed stream's version after the append: the `ETag`.
    pub version: i64,
    /// The global position of the last event appended (0 when none was).
    pub position: i64,
    /// Opaque; a read sends it back (`Consistency-Token`) to see this command's effects.
    #[schema(value_type = String)]
    pub consistency_token: ConsistencyToken,
}

/// A decided command, ready to append.
#[derive(Debug)]
pub struct Plan {
    /// The aggregate the command addressed, reported back as `id`.
    pub id: Uuid,
    /// Its stream, whose new version is reported back as `version`.
    pub stream_id: String,
    /// `Some(path)` for a create: 201 with `Location: path`.
    pub location: Option<String>,
    pub appends: Vec<StreamAppend>,
}

impl Plan {
    pub fn created(collection: &str, id: Uuid, appends: Vec<StreamAppend>) -> Self {
        Self {
            id,
            stream_id: id.to_string(),
            location: Some(format!("/v1/{collection}/{id}")),
            appends,
        }
    }

    pub fn updated(id: Uuid, appends: Vec<StreamAppend>) -> Self {
        Self {
            id,
            stream_id: id.to_string(),
            location: None,
            appends,
        }
    }
}

/// Runs `plan` (load and decide) and appends its result, retrying on a
/// version conflict; answers `{id, version, position, consistency_token}`,
/// the token also as the `Consistency-Token` header. With an
/// `Idempotency-Key`, a request already answered gets that answer again.
pub async fn execute<F, Fut>(
    state: &AppState,
    context: &CommandContext,
    plan: F,
) -> Result<Response, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Plan, ApiError>>,
{
    match commit(state, context, plan).await? {
        Committed::Appended(stored) => render(&stored, false),
        Committed::Replayed(response) => Ok(response),
    }
}

/// What [`commit`] did.
pub enum Committed {
    /// Appended now: the stored answer `{status, location, body}`, whose
    /// body is `{id, version, position, consistency_token}`.
    Appended(Value),
    /// An idempotent request answered before: that answer.
    Replayed(Response),
}

/// [`execute`] without the rendering, for a handler that answers with more
/// than the command's receipt.
pub async fn commit<F, Fut>(
    state: &AppState,
    context: &CommandContext,
    mut plan: F,
) -> Result<Committed, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Plan, ApiError>>,
{
    let mut retries = 0;
    let mut metadata = context.metadata.clone();
    state
        .personal
        .seal_metadata(&mut metadata, context.at)
        .await?;
    loop {
        if let Some(stored) = replayable(state, context).await? {
            return Ok(Committed::Replayed(stored));
        }
        let Plan {
            id,
            stream_id,
            location,
            mut appends,
        } = match plan().instrument(tracing::debug_span!("decide")).await {
            Ok(plan) => plan,
            Err(rejection) => {
                // A twin carrying the same key may have committed since the
                // check above, and made this one fail (its sku is now taken):
                // the twin's answer is this request's answer.
                if let Some(stored) = replayable(state, context).await? {
                    return Ok(Committed::Replayed(stored));
                }
                return Err(rejection);
            }
        };
        let status = if location.is_some() {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        seal_personal_data(state, &mut appends).await?;
        let version_stream = stream_id.clone();
        let outcome = state
            .store
            .append(
                appends,
                &metadata,
                context.idempotency.as_ref(),
                move |receipt| {
                    json!({
                        "status": status.as_u16(),
                        "location": location,
                        "body": Receipt {
                            id,
                            version: receipt.version_of(&version_stream).unwrap_or_default(),
                            position: receipt.last_position,
                            consistency_token: receipt.token,
                        },
                    })
                },
            )
            .await;
        match outcome {
            Ok(AppendOutcome::Appended { receipt, response }) => {
                tracing::info!(
                    %id,
                    position = receipt.last_position,
                    streams = receipt.versions.len(),
                    "command appended"
                );
                return Ok(Committed::Appended(response));
            }
            Ok(AppendOutcome::AlreadyHandled { response }) => {
                tracing::info!(%id, "idempotent request replayed");
                return render(&response, true).map(Committed::Replayed);
            }
            Err(EventStoreError::VersionConflict {
                stream_id,
                expected,
                actual,
            }) if retries < MAX_RETRIES => {
                retries += 1;
                ::metrics::counter!("command_version_conflicts_total", "outcome" => "retried")
                    .increment(1);
                tracing::info!(
                    stream_id,
                    expected,
                    actual,
                    retry = retries,
                    "version conflict, retrying"
                );
            }
            Err(error) => {
                if matches!(error, EventStoreError::VersionConflict { .. }) {
                    ::metrics::counter!("command_version_conflicts_total", "outcome" => "exhausted")
                        .increment(1);
                }
                return Err(error.into());
            }
        }
    }
}

/// The stored answer of this request's idempotency key, as a response.
async fn replayable(
    state: &AppState,
    context: &CommandContext,
) -> Result<Option<Response>, ApiError> {
    let Some(key) = &context.idempotency else {
        return Ok(None);
    };
    // Checked before deciding: a repeated create would otherwise be refused
    // (its sku is taken, by itself) before the store could replay it.
    match state.store.stored_response(key).await? {
        Some(stored) => {
            tracing::info!("idempotent request replayed");
            render(&stored, true).map(Some)
        }
        None => Ok(None),
    }
}

/// A stored `{status, location, body}` as the response it describes.
pub fn render(stored: &Value, replayed: bool) -> Result<Response, ApiError> {
    let status = stored
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let body = stored.get("body").cloned().unwrap_or(Value::Null);
    let version = body.get("version").and_then(Value::as_i64);
    let mut response = (status, Json(body.clone())).into_response();
    let headers = response.headers_mut();
    if let Some(location) = stored.get("location").and_then(Value::as_str) {
        let location = HeaderValue::from_str(location).map_err(ApiError::internal)?;
        headers.insert(header::LOCATION, location);
    }
    if let Some(token) = body.get("consistency_token").and_then(Value::as_str) {
        let token = HeaderValue::from_str(token).map_err(ApiError::internal)?;
        headers.insert(CONSISTENCY_TOKEN.clone(), token);
    }
    if let Some(version) = version {
        let etag = HeaderValue::from_str(&etag(version)).map_err(ApiError::internal)?;
        headers.insert(header::ETAG, etag);
    }
    if replayed {
        headers.insert(
            IDEMPOTENT_REPLAYED.clone(),
            HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// Loads the aggregate of `stream_id`, or `None` when the stream belongs to
/// another kind of aggregate (a product id given as a category id).
pub async fn load_as<A>(state: &AppState, stream_id: &str) -> Result<Option<Loaded<A>>, ApiError>
where
    A: Aggregate,
{
    match load_opening::<A>(&state.store, &state.upcasters, &state.personal, stream_id).await {
        Ok(loaded) => Ok(Some(loaded)),
        Err(error @ EventStoreError::Undecodable { .. }) => {
            // Only on this failure path: is the stream another aggregate's?
            let stream_type: Option<String> = sqlx::query_scalar(
                "SELECT aggregate_type FROM event_store.streams WHERE stream_id = $1",
            )
            .bind(stream_id)
            .fetch_optional(state.store.pool())
            .await?;
            match stream_type {
                Some(t) if t != A::TYPE => Ok(None),
                _ => Err(error.into()),
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// The existing aggregate `id` names, once the request's preconditions hold
/// for it (412 otherwise); else 404. The preconditions come first: an
/// `If-Match` on a resource that does not exist is false, hence 412.
pub async fn load_existing<A>(
    state: &AppState,
    context: &CommandContext,
    resource: &str,
    id: Uuid,
) -> Result<Loaded<A>, ApiError>
where
    A: Aggregate,
{
    let existing = load_as::<A>(state, &id.to_string())
        .await?
        .filter(|loaded| loaded.version > 0);
    context
        .preconditions
        .check(existing.as_ref().map(|loaded| loaded.version))?;
    existing.ok_or_else(|| ApiError::not_found(resource, id))
}

/// The aggregate a create will start, at version 0, once the request's
/// preconditions hold for the resource the create names (412 otherwise:
/// `If-Match` on an id that is free, `If-None-Match: *` on one that is
/// taken); 422 when the id is taken by an aggregate of another kind (the
/// same kind is refused by the domain). A server-chosen id is new, so it
/// passes `If-None-Match: *` and fails `If-Match`.
pub async fn load_new<A>(
    state: &AppState,
    context: &CommandContext,
    resource: &str,
    id: Uuid,
) -> Result<Loaded<A>, ApiError>
where
    A: Aggregate,
{
    let loaded = load_as::<A>(state, &id.to_string()).await?;
    // Another kind's stream is no resource of this kind: as if absent.
    let current = loaded
        .as_ref()
        .map(|loaded| loaded.version)
        .filter(|version| *version > 0);
    context.preconditions.check(current)?;
    loaded.ok_or_else(|| ApiError::id_in_use(resource, id))
}

/// 422 unless `id` names an existing aggregate of type `A`. Catalog
/// aggregates are never deleted, so the read needs no version assertion.
pub async fn require_reference<A>(
    state: &AppState,
    field: &'static str,
    resource: &str,
    id: Uuid,
) -> Result<Loaded<A>, ApiError>
where
    A: Aggregate,
{
    match load_as::<A>(state, &id.to_string()).await? {
        Some(loaded) if loaded.version > 0 => Ok(loaded),
        _ => Err(ApiError::missing_reference(field, resource, id)),
    }
}

/// The claim state of `key` within `scope`.
pub async fn load_key(
    state: &AppState,
    scope: UniqueScope,
    key: &str,
) -> Result<Loaded<UniqueKey>, ApiError> {
    Ok(load::<UniqueKey>(
        &state.store,
        &state.upcasters,
        &unique_key_stream_id(scope, key),
    )
    .await?)
}

/// One append per loaded unique-key stream (once each), holding the events
/// the decision gave it, or none: an empty append still asserts the version
/// the claim was decided at.
pub fn key_appends(
    keys: &[&Loaded<UniqueKey>],
    events: &[(String, UniqueKeyEvent)],
) -> Result<Vec<StreamAppend>, ApiError> {
    let mut seen = HashSet::new();
    let mut appends = Vec::with_capacity(keys.len());
    for key in keys {
        if !seen.insert(key.stream_id.as_str()) {
            continue;
        }
        let own: Vec<UniqueKeyEvent> = events
            .iter()
            .filter(|(stream, _)| *stream == key.stream_id)
            .map(|(_, event)| event.clone())
            .collect();
        appends.push(key.append(&own));
    }
    if let Some((stream, _)) = events
        .iter()
        .find(|(stream, _)| !seen.contains(stream.as_str()))
    {
        return Err(ApiError::internal(anyhow::anyhow!(
            "the decision claims unique key stream {stream}, which was not loaded"
        )));
    }
    Ok(appends)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(stream: &str, version: i64) -> Loaded<UniqueKey> {
        Loaded {
            stream_id: stream.into(),
            aggregate: UniqueKey::default(),
            version,
        }
    }

    #[test]
    fn key_appends_assert_every_loaded_key_once() {
        let (a, b) = (loaded("sku:A", 2), loaded("product_slug:a", 0));
        let claim = UniqueKeyEvent::UniqueKeyClaimed {
            scope: UniqueScope::ProductSlug,
            key: "a".into(),
            owner_id: Uuid::nil(),
        };
        let appends =
            key_appends(&[&a, &b, &a], &[("product_slug:a".into(), claim.clone())]).unwrap();
        assert_eq!(appends.len(), 2);
        assert_eq!(appends[0].stream_id, "sku:A");
        assert_eq!(appends[0].expected_version, 2);
        assert!(appends[0].events.is_empty());
        assert_eq!(appends[1].events.len(), 1);
        assert!(key_appends(&[&a], &[("product_slug:a".into(), claim)]).is_err());
    }

    #[test]
    fn render_replays_status_location_and_etag() {
        let stored = json!({"status": 201, "location": "/v1/brands/x", "body": {"id": "x", "version": 1, "position": 9, "consistency_token": "1.1.2f.9"}});
        let response = render(&stored, true).unwrap();
        assert_eq!(response.headers()[&CONSISTENCY_TOKEN], "1.1.2f.9");
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[header::LOCATION], "/v1/brands/x");
        assert_eq!(response.headers()[header::ETAG], "\"1\"");
        assert_eq!(response.headers()[&IDEMPOTENT_REPLAYED], "true");
    }
}
