//! What the HTTP layer gives every command: the request and correlation ids
//! (assigned by the `request_context` middleware, echoed as headers), the
//! event metadata, the `Idempotency-Key` with its request fingerprint, the
//! `If-Match` / `If-None-Match` preconditions (RFC 9110 §13), and a JSON body
//! whose every rejection is a problem document (`ApiJson`, `ApiPath`,
//! `CommandRequest`), and in whose strings no control character gets past.

use std::net::{IpAddr, SocketAddr};

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use domain::values::{forbidden_in_json, TextLayout};
use infrastructure::client_address::client_address;
use infrastructure::event_store::{EventMetadata, IdempotencyKey};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::Actor;
use crate::error::{ApiError, FieldError, PROBLEM_CONTENT_TYPE};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// Answered with every successful command: the point in the global log a
/// reader must reach to see the command's effects.
pub static CONSISTENCY_TOKEN: HeaderName = HeaderName::from_static("consistency-token");

/// The ids of one request: its own (the causation id of what it appends) and
/// the correlation id it shares with everything that follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestIds {
    pub request_id: Uuid,
    pub correlation_id: Uuid,
}

/// Outermost middleware: assigns the request ids, echoes them on the
/// response, and makes every error response a problem document (filling in
/// `instance` and `request_id`, and replacing the plain bodies of layers such
/// as the body limit's 413 or the router's 405).
pub async fn request_context(mut request: Request, next: Next) -> Response {
    let request_id = Uuid::now_v7();
    let path = request.uri().path().to_owned();
    let given = correlation_id(request.headers());
    let ids = RequestIds {
        request_id,
        correlation_id: given
            .as_ref()
            .ok()
            .copied()
            .flatten()
            .unwrap_or_else(Uuid::now_v7),
    };
    request.extensions_mut().insert(ids);
    let response = match given {
        Ok(_) => next.run(request).await,
        Err(error) => error.into_response(),
    };
    let mut response = if response.status().is_client_error() || response.status().is_server_error()
    {
        as_problem(response, &path, request_id).await
    } else {
        response
    };
    let headers = response.headers_mut();
    headers.insert(X_REQUEST_ID.clone(), header_value(request_id));
    headers.insert(X_CORRELATION_ID.clone(), header_value(ids.correlation_id));
    response
}

fn header_value(id: Uuid) -> HeaderValue {
    HeaderValue::from_str(&id.to_string()).expect("a uuid is a valid header value")
}

/// `X-Correlation-Id` when given; it must be a UUID.
fn correlation_id(headers: &HeaderMap) -> Result<Option<Uuid>, ApiError> {
    let Some(value) = headers.get(&X_CORRELATION_ID) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid_header("X-Correlation-Id", "X-Correlation-Id must be a UUID")
        })
}

/// The largest error body we re-read to add `instance` (ours are tiny).
const PROBLEM_BODY_LIMIT: usize = 64 * 1024;

async fn as_problem(response: Response, path: &str, request_id: Uuid) -> Response {
    let (mut parts, body) = response.into_parts();
    let is_problem = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_CONTENT_TYPE));
    let mut problem = if is_problem {
        to_bytes(body, PROBLEM_BODY_LIMIT)
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .filter(Value::is_object)
    } else {
        None
    }
    .unwrap_or_else(|| ApiError::from_status(parts.status).to_problem());
    if let Value::Object(map) = &mut problem {
        map.entry("instance")
            .or_insert_with(|| Value::String(path.to_owned()));
        map.insert("request_id".into(), Value::String(request_id.to_string()));
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

/// `Path<T>` whose rejection is a 400 problem.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(ApiError::from)
    }
}

/// `Json<T>` whose every rejection is a problem: 415 without a JSON content
/// type, 413 above the body limit, 400 for bad syntax, wrong types, missing
/// or unknown fields.
pub struct ApiJson<T>(pub T);

impl<T> ApiJson<T>
where
    T: DeserializeOwned,
{
    /// Parses an already read body, which must be a JSON object: serde also
    /// reads a struct from an array of its fields in order, which would let
    /// `["Renamed"]` set whatever field comes first.
    pub fn parse(bytes: &[u8]) -> Result<T, ApiError> {
        let starts_an_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if !starts_an_object && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        Json::<T>::from_bytes(bytes)
            .map(|Json(value)| value)
            .map_err(ApiError::from)
    }
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_body(request, state).await?;
        Self::parse(&bytes).map(ApiJson)
    }
}

/// The raw body of a JSON request.
async fn json_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    if !is_json(request.headers()) {
        return Err(ApiError::unsupported_media_type());
    }
    Ok(Bytes::from_request(request, state).await?)
}

/// `application/json`, or any `application/*+json` (e.g. merge-patch).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// Everything about a command request except its body.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub ids: RequestIds,
    pub metadata: EventMetadata,
    pub idempotency: Option<IdempotencyKey>,
    pub preconditions: Preconditions,
    /// When the command was received: the `at` of what it decides.
    pub at: DateTime<Utc>,
}

/// A command body: which of its fields hold text that may span lines, and
/// which hold secrets.
pub trait CommandBody: DeserializeOwned {
    /// Top-level fields whose text may hold tabs and line feeds; every other
    /// string (and every field name) must be a single line.
    const MULTI_LINE_FIELDS: &'static [&'static str] = &[];
    /// Top-level fields left out of the idempotency fingerprint: the
    /// fingerprint is a fast hash stored beside the key, and a fast hash of
    /// a password can be guessed offline.
    const SECRET_FIELDS: &'static [&'static str] = &[];
}

/// A command: its context and its JSON body.
pub struct CommandRequest<T> {
    pub context: CommandContext,
    pub body: T,
}

impl<T, S> FromRequest<S> for CommandRequest<T>
where
    T: CommandBody,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let (ids, metadata) = metadata(&parts);
        let key = idempotency_key(&parts.headers)?;
        let preconditions = Preconditions::from_headers(&parts.headers)?;
        let (method, path) = (parts.method.clone(), parts.uri.path().to_owned());
        let bytes = json_body(Request::from_parts(parts, body), state).await?;
        printable_strings(&bytes, T::MULTI_LINE_FIELDS)?;
        let body = ApiJson::<T>::parse(&bytes)?;
        let idempotency = key.map(|key| IdempotencyKey {
            key: scoped_key(&key, &metadata, &method, &path),
            fingerprint: fingerprint(&method, &path, &without_fields(&bytes, T::SECRET_FIELDS)),
        });
        Ok(Self {
            context: CommandContext {
                ids,
                metadata,
                idempotency,
                preconditions,
                at: command_time(),
            },
            body,
        })
    }
}

/// A command without a body (a `DELETE`, `PUT .../default`): its context
/// alone, its fingerprint that of an empty body. A body, if sent, is not read.
impl<S: Send + Sync> FromRequestParts<S> for CommandContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let (ids, metadata) = metadata(parts);
        let key = idempotency_key(&parts.headers)?;
        let preconditions = Preconditions::from_headers(&parts.headers)?;
        let idempotency = key.map(|key| IdempotencyKey {
            key: scoped_key(&key, &metadata, &parts.method, parts.uri.path()),
            fingerprint: fingerprint(&parts.method, parts.uri.path(), b""),
        });
        Ok(Self {
            ids,
            metadata,
            idempotency,
            preconditions,
            at: command_time(),
        })
    }
}

impl CommandContext {}

/// The business time of a command: now, at the precision the read models
/// keep (PostgreSQL's microseconds), so that a time read back from a table
/// equals the event's, and a cache entry folded from the event equals the
/// row.
pub fn command_time() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// An `Idempotency-Key` as it is stored: scoped to whoever sent it (the
/// session's user, or the client address for a guest) and to the route, so
/// that one client's key never answers another's request. The client's key
/// comes first: it has no space in it (visible ASCII only), so
/// [`client_key`] gets it back for a problem.
fn scoped_key(key: &str, metadata: &EventMetadata, method: &Method, path: &str) -> String {
    let sender = match (&metadata.user_id, &metadata.client_ip) {
        (Some(user), _) => format!("user:{user}"),
        (None, Some(ip)) => format!("ip:{ip}"),
        (None, None) => "anonymous".to_owned(),
    };
    format!("{key} {sender} {method} {path}")
}

/// The key the client sent, from its stored form.
pub fn client_key(stored: &str) -> &str {
    stored.split(' ').next().unwrap_or(stored)
}

/// The body without its top-level `fields` (re-serialized), or as it came
/// when there are none to drop.
fn without_fields(bytes: &[u8], fields: &[&str]) -> Vec<u8> {
    if fields.is_empty() {
        return bytes.to_vec();
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(mut map)) => {
            for field in fields {
                map.remove(*field);
            }
            serde_json::to_vec(&map).unwrap_or_default()
        }
        // Parsed as the command already, so always an object; never the
        // raw bytes, which hold the secret.
        _ => Vec::new(),
    }
}

/// 400 naming every string or field name of the body that holds a control
/// character (tab and line feed are allowed in `multi_line` fields), a line
/// or paragraph separator or a noncharacter. The domain refuses them in each
/// text it stores; this covers every other string too (ids, amounts, enum
/// values, unknown fields), so that none can reach PostgreSQL, whose JSONB
/// refuses NUL with an error, or be echoed back. A body that is not JSON is
/// left to the typed parse, which says why.
fn printable_strings(bytes: &[u8], multi_line: &[&str]) -> Result<(), ApiError> {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(());
    };
    let layout_of = |path: &str| {
        if multi_line.contains(&path) {
            TextLayout::MultiLine
        } else {
            TextLayout::SingleLine
        }
    };
    let found = forbidden_in_json(&value, &layout_of);
    if found.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_fields(
        found
            .into_iter()
            .map(|error| FieldError::new(error.path.clone(), error))
            .collect(),
    ))
}

/// The event metadata of a request: correlation and causation (this
/// request's id), the acting user of its session, the client's address
/// ([`ClientAddress`]) and `User-Agent`.
fn metadata(parts: &Parts) -> (RequestIds, EventMetadata) {
    let ids = parts
        .extensions
        .get::<RequestIds>()
        .copied()
        .unwrap_or_else(|| {
            let id = Uuid::now_v7();
            RequestIds {
                request_id: id,
                correlation_id: id,
            }
        });
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let actor = parts.extensions.get::<Actor>();
    let metadata = EventMetadata {
        correlation_id: ids.correlation_id,
        causation_id: ids.request_id,
        user_id: actor
            .and_then(Actor::session)
            .map(|session| session.user_id.to_string()),
        client_ip: parts
            .extensions
            .get::<ClientAddress>()
            .map(|ClientAddress(ip)| ip.to_string()),
        user_agent,
    };
    (ids, metadata)
}

/// The client's address: the peer's, or behind a trusted proxy the nearest
/// address `X-Forwarded-For` names that is not a trusted proxy itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    /// From a request's peer (`ConnectInfo`) and headers
    /// (`infrastructure::client_address`).
    pub fn of_request(parts: &Parts, trusted: &[IpAddr]) -> Option<Self> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())?;
        Some(Self(client_address(&parts.headers, peer, trusted)))
    }
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(ApiError::invalid_header(
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// The ETag of a resource at `version`: the version as a strong tag.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// One entity-tag (RFC 9110 §8.8.3): `"3"` or, weak, `W/"3"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    pub weak: bool,
    /// Between the quotes.
    pub opaque: String,
}

/// The value of `If-Match` or `If-None-Match`: `*` or a list of tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCondition {
    Any,
    Tags(Vec<EntityTag>),
}

/// The preconditions of a request (RFC 9110 §13.1.1 and §13.1.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub if_match: Option<TagCondition>,
    pub if_none_match: Option<TagCondition>,
}

impl Preconditions {
    /// 400 when either header is not `*` or a list of entity-tags.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        Ok(Self {
            if_match: tag_condition(headers, &header::IF_MATCH, "If-Match")?,
            if_none_match: tag_condition(headers, &header::IF_NONE_MATCH, "If-None-Match")?,
        })
    }

    /// Evaluates the conditions, in RFC 9110 §13.2.2's order, against the
    /// target's current version (`None` when it does not exist); a false
    /// one is a 412. `If-Match` compares strongly (a weak tag never
    /// matches), `If-None-Match` weakly; `*` matches any existing resource.
    pub fn check(&self, current: Option<i64>) -> Result<(), ApiError> {
        let current_tag = current.map(|version| version.to_string());
        let matches = |condition: &TagCondition, strong: bool| match (condition, &current_tag) {
            (_, None) => false,
            (TagCondition::Any, Some(_)) => true,
            (TagCondition::Tags(tags), Some(current)) => tags
                .iter()
                .any(|tag| (!strong || !tag.weak) && tag.opaque == *current),
        };
        if let Some(condition) = &self.if_match {
            if !matches(condition, true) {
                return Err(ApiError::precondition_failed("If-Match", current));
            }
        }
        if let Some(condition) = &self.if_none_match {
            if matches(condition, false) {
                return Err(ApiError::precondition_failed("If-None-Match", current));
            }
        }
        Ok(())
    }
}

/// The condition of header `name`, with all its field lines joined as one list.
fn tag_condition(
    headers: &HeaderMap,
    name: &HeaderName,
    display: &'static str,
) -> Result<Option<TagCondition>, ApiError> {
    let lines: Vec<&[u8]> = headers
        .get_all(name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if lines.is_empty() {
        return Ok(None);
    }
    parse_tag_condition(&lines.join(&b","[..]))
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid_header(
                display,
                format!(
                    "{display} must be * or a comma-separated list of entity-tags \
                     such as \"3\" or W/\"3\""
                ),
            )
        })
}

/// `"*" / #entity-tag` (RFC 9110 §13.1.1): list members are separated by
/// commas with optional whitespace, and empty members are ignored
/// (§5.6.1.2). `None` when malformed; a bare `3` is malformed, as in the RFC.
fn parse_tag_condition(value: &[u8]) -> Option<TagCondition> {
    let mut rest = trim_ows_end(trim_ows_start(value));
    if rest == b"*" {
        return Some(TagCondition::Any);
    }
    let mut tags = Vec::new();
    loop {
        rest = trim_ows_start(rest);
        match rest.first() {
            None => break,
            Some(b',') => {
                rest = &rest[1..];
                continue;
            }
            Some(_) => {}
        }
        let (weak, tag) = match rest.strip_prefix(b"W/".as_slice()) {
            Some(tag) => (true, tag),
            None => (false, rest),
        };
        let quoted = tag.strip_prefix(b"\"".as_slice())?;
        let end = quoted.iter().position(|&b| b == b'"')?;
        let opaque = &quoted[..end];
        // etagc = %x21 / %x23-7E / obs-text
        if !opaque
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        tags.push(EntityTag {
            weak,
            opaque: String::from_utf8_lossy(opaque).into_owned(),
        });
        rest = trim_ows_start(&quoted[end + 1..]);
        match rest.first() {
            None => break,
            Some(b',') => rest = &rest[1..],
            Some(_) => return None,
        }
    }
    Some(TagCondition::Tags(tags))
}

fn is_ows(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t')
}

fn trim_ows_start(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !is_ows(*first) {
            break;
        }
        bytes = rest;
    }
    bytes
}

fn trim_ows_end(mut bytes: &[u8]) -> &[u8] {
    while let [rest @ .., last] = bytes {
        if !is_ows(*last) {
            break;
        }
        bytes = rest;
    }
    bytes
}

/// sha256 of method, path and body, hex: what an idempotency key is bound to.
pub fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_time_keeps_the_microseconds_the_tables_keep() {
        use chrono::Timelike;
        for _ in 0..100 {
            assert_eq!(command_time().nanosecond() % 1_000, 0);
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_up_to_255() {
        assert_eq!(idempotency_key(&headers(&[])).unwrap(), None);
        assert_eq!(
            idempotency_key(&headers(&[("idempotency-key", "abc-123")])).unwrap(),
            Some("abc-123".into())
        );
        assert!(idempotency_key(&headers(&[("idempotency-key", "a b")])).is_err());
        assert!(idempotency_key(&headers(&[("idempotency-key", "")])).is_err());
        let long = "k".repeat(256);
        assert!(idempotency_key(&headers(&[("idempotency-key", &long)])).is_err());
    }

    fn tags(value: &str) -> Option<TagCondition> {
        parse_tag_condition(value.as_bytes())
    }

    fn strong(opaque: &str) -> EntityTag {
        EntityTag {
            weak: false,
            opaque: opaque.into(),
        }
    }

    fn weak(opaque: &str) -> EntityTag {
        EntityTag {
            weak: true,
            opaque: opaque.into(),
        }
    }

    #[test]
    fn conditions_are_star_or_lists_of_strong_and_weak_tags() {
        assert_eq!(tags("*"), Some(TagCondition::Any));
        assert_eq!(tags(" * "), Some(TagCondition::Any));
        assert_eq!(tags("\"3\""), Some(TagCondition::Tags(vec![strong("3")])));
        assert_eq!(
            tags("W/\"3\", \"4\" ,,\"\""),
            Some(TagCondition::Tags(vec![weak("3"), strong("4"), strong("")]))
        );
        assert_eq!(tags(""), Some(TagCondition::Tags(vec![])));
        for malformed in [
            "3",
            "-1",
            "soon",
            "\"3",
            "W/3",
            "w/\"3\"",
            "\"3\" \"4\"",
            "*, \"3\"",
            "\"a\"b\"",
            "\"a b\"",
        ] {
            assert_eq!(tags(malformed), None, "{malformed:?}");
        }
        let both = headers(&[("if-match", "\"1\""), ("if-none-match", "*")]);
        assert_eq!(
            Preconditions::from_headers(&both).unwrap(),
            Preconditions {
                if_match: Some(TagCondition::Tags(vec![strong("1")])),
                if_none_match: Some(TagCondition::Any),
            }
        );
        let error = Preconditions::from_headers(&headers(&[("if-none-match", "7")])).unwrap_err();
        assert_eq!(error.to_problem()["header"], "If-None-Match");
    }

    #[test]
    fn if_match_compares_strongly_and_if_none_match_weakly() {
        let given = |if_match: Option<&str>, if_none_match: Option<&str>| Preconditions {
            if_match: if_match.map(|v| tags(v).unwrap()),
            if_none_match: if_none_match.map(|v| tags(v).unwrap()),
        };
        let status =
            |p: Preconditions, current| p.check(current).err().map(|e| e.status().as_u16());
        assert_eq!(status(given(Some("\"3\""), None), Some(3)), None);
        assert_eq!(status(given(Some("\"1\", \"3\""), None), Some(3)), None);
        assert_eq!(status(given(Some("W/\"3\""), None), Some(3)), Some(412));
        assert_eq!(status(given(Some("\"2\""), None), Some(3)), Some(412));
        assert_eq!(status(given(Some("*"), None), Some(3)), None);
        assert_eq!(status(given(Some("*"), None), None), Some(412));
        assert_eq!(status(given(Some(""), None), Some(3)), Some(412));
        assert_eq!(status(given(None, Some("*")), None), None);
        assert_eq!(status(given(None, Some("*")), Some(1)), Some(412));
        assert_eq!(status(given(None, Some("W/\"3\"")), Some(3)), Some(412));
        assert_eq!(status(given(None, Some("\"4\"")), Some(3)), None);
        assert_eq!(
            status(given(Some("\"3\""), Some("\"3\"")), Some(3)),
            Some(412)
        );
        assert_eq!(status(Preconditions::default(), None), None);
        let problem = given(Some("\"2\""), None)
            .check(Some(3))
            .unwrap_err()
            .to_problem();
        assert_eq!(problem["current_etag"], "\"3\"");
        assert_eq!(problem["header"], "If-Match");
    }

    #[test]
    fn control_characters_in_a_body_name_their_field() {
        let fields = |body: &str, multi_line: &[&str]| {
            printable_strings(body.as_bytes(), multi_line)
                .err()
                .map(|e| {
                    e.to_problem()["errors"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| e["field"].as_str().unwrap().to_owned())
                        .collect::<Vec<_>>()
                })
        };
        assert_eq!(
            fields(r#"{"name": "a\u0000"}"#, &[]),
            Some(vec!["name".into()])
        );
        assert_eq!(
            fields(
                r#"{"description": "a\nb", "name": "a\nb", "tags": ["x", "\u0007"]}"#,
                &["description"]
            ),
            Some(vec!["name".into(), "tags[1]".into()])
        );
        assert_eq!(
            fields(r#"{"na\u0000me": "x"}"#, &[]),
            Some(vec!["na\\0me".into()])
        );
        assert_eq!(
            fields(r#"{"description": "a\n\tb"}"#, &["description"]),
            None
        );
        assert_eq!(fields("not json", &[]), None);
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(&headers(&[("content-type", "application/json")])));
        assert!(is_json(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(is_json(&headers(&[(
            "content-type",
            "application/merge-patch+json"
        )])));
        assert!(!is_json(&headers(&[("content-type", "text/plain")])));
        assert!(!is_json(&headers(&[])));
    }

    #[test]
    fn fingerprints_bind_method_path_and_body() {
        let a = fingerprint(&Method::POST, "/v1/products", b"{}");
        assert_eq!(a.len(), 64);
        assert_eq!(a, fingerprint(&Method::POST, "/v1/products", b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, "/v1/brands", b"{}"));
        assert_ne!(a, fingerprint(&Method::PUT, "/v1/products", b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, "/v1/products", b"{ }"));
    }

    #[test]
    fn secrets_stay_out_of_the_fingerprinted_body() {
        let body = br#"{"email":"a@b.c","current_password":"hunter2 hunter2"}"#;
        let kept = without_fields(body, &["current_password"]);
        assert_eq!(kept, br#"{"email":"a@b.c"}"#);
        assert_eq!(without_fields(body, &[]), body);
    }
}
