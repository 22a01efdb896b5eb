//! Personal data in an append-only log: every value that identifies a person
//! is stored encrypted under a data key of that person's own (crypto-
//! shredding), so that destroying the key erases the values from every event,
//! every Kafka copy and every backup of the log at once.
//!
//! - A sealed value is a JSON string `pd1.{subject}.{base64url(nonce ‖
//!   ciphertext)}`: AES-256-GCM of the value's JSON, with the subject and the
//!   field's name as associated data, so a sealed value cannot be moved to
//!   another person or field. The subject in the clear is a random id, not
//!   personal data.
//! - Data keys live in `event_store.subject_keys`, each wrapped (AES-256-GCM)
//!   under the master key from the configuration, so a dump of the database
//!   alone reveals nothing. Erasure sets the wrapped key to NULL.
//! - Which fields are personal is the domain's knowledge ([`PersonalFields`]);
//!   what an erased field reads as, too ([`ErasedValue`]), so that an event of
//!   an erased person still decodes.
//! - Values that must be looked up by their clear value (an email at login,
//!   a phone's uniqueness claim) are found through a blind index: HMAC-SHA256
//!   under a second configured key.
//!
//! docs/personal-data.md has the design, key rotation and backups.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use sqlx::PgPool;
use uuid::Uuid;

use crate::event_store::{EventMetadata, RecordedEvent};

const SEALED_PREFIX: &str = "pd1.";

/// The event that records a person's erasure, on the stream named by their id.
pub const ERASURE_EVENT_TYPE: &str = "UserErased";

#[derive(Debug, Clone, Copy)]
enum SubjectKind {
    Person,
    GuestDay,
}

impl SubjectKind {
    fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Person => "person",
            SubjectKind::GuestDay => "guest-day",
        }
    }
}

/// The subject whose key seals the addresses of anonymous requests on `day`.
pub fn guest_subject(day: NaiveDate) -> Uuid {
    Uuid::new_v5(&GUEST_NAMESPACE, format!("guest-day:{day}").as_bytes())
}

const GUEST_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_0d2e_52a8_4b7e_9a41_3f0c_8e5d_7b21);
const NONCE_BYTES: usize = 12;
const WRITING_KEY_TTL: Duration = Duration::from_secs(60);
const WRITING_KEYS_CACHED: usize = 10_000;

/// The top-level payload fields of `(aggregate_type, event_type)` that
/// identify a person.
pub type PersonalFields = fn(aggregate_type: &str, event_type: &str) -> &'static [&'static str];

/// What `field` of `(aggregate_type, event_type)` reads as once `subject`'s
/// key is destroyed: a value its type still accepts.
pub type ErasedValue =
    fn(aggregate_type: &str, event_type: &str, field: &str, subject: Uuid) -> Value;

/// The metadata fields sealed under the acting person's key.
const METADATA_FIELDS: [&str; 2] = ["client_ip", "user_agent"];

#[derive(Clone, Deserialize)]
pub struct PersonalDataSettings {
    /// Base64 of 32 bytes: wraps every data key.
    pub master_key: SecretString,
    /// Names the master key in each wrapped key, for rotation.
    pub master_key_id: String,
    /// Base64 of 32 bytes: keys the blind indexes.
    pub blind_index_key: SecretString,
    /// Master keys being rotated out: data keys still wrapped under one of
    /// them open, and `PersonalData::rewrap` moves them under the current
    /// one. Empty outside a rotation.
    #[serde(default)]
    pub previous_master_keys: Vec<PreviousMasterKey>,
}

/// A retired master key, kept until no data key is wrapped under it.
#[derive(Clone, Deserialize)]
pub struct PreviousMasterKey {
    pub id: String,
    /// Base64 of 32 bytes.
    pub key: SecretString,
}

/// The keys shipped for local development and tests; a deployment that still
/// uses them is warned at start.
pub const DEVELOPMENT_MASTER_KEY: &str = "ZGV2ZWxvcG1lbnQtb25seS1tYXN0ZXIta2V5LTMyYiE=";
pub const DEVELOPMENT_BLIND_INDEX_KEY: &str = "ZGV2ZWxvcG1lbnQtb25seS1ibGluZC1pbmRleC0zMmI=";

impl std::fmt::Debug for PersonalDataSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalDataSettings")
            .field("master_key", &"***")
            .field("master_key_id", &self.master_key_id)
            .field("blind_index_key", &"***")
            .field(
                "previous_master_keys",
                &self
                    .previous_master_keys
                    .iter()
                    .map(|previous| previous.id.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PersonalDataError {
    #[error("personal_data.{0} must be the base64 of 32 bytes")]
    BadKey(&'static str),
    #[error("the data key of subject {0} was destroyed: nothing new can be written for them")]
    Erased(Uuid),
    #[error("the data key of subject {0} does not open under master key {1}")]
    Unwrap(Uuid, String),
    #[error("personal_data.previous_master_keys names {0} twice, or the current master key's id")]
    DuplicateMasterKeyId(String),
    #[error("a sealed value of subject {subject} in field {field} does not open")]
    Corrupt { subject: Uuid, field: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn key_from_base64(
    name: &'static str,
    value: &SecretString,
) -> Result<Key<Aes256Gcm>, PersonalDataError> {
    let bytes = STANDARD
        .decode(value.expose_secret().trim())
        .map_err(|_| PersonalDataError::BadKey(name))?;
    if bytes.len() != 32 {
        return Err(PersonalDataError::BadKey(name));
    }
    Ok(*Key::<Aes256Gcm>::from_slice(&bytes))
}

/// Seals, opens and erases the personal data of the log.
#[derive(Clone)]
pub struct PersonalData {
    pool: PgPool,
    /// Keys recently used for writing. Safe to cache where reading is not:
    /// a value sealed under a key destroyed meanwhile can never be read,
    /// which is what erasure asks.
    writing_keys: Arc<Mutex<HashMap<Uuid, (Aes256Gcm, Instant)>>>,
    master: Aes256Gcm,
    master_key_id: String,
    /// The retired master keys a data key may still be wrapped under, by id.
    previous_masters: Arc<HashMap<String, Aes256Gcm>>,
    blind_index_key: Vec<u8>,
    personal_fields: PersonalFields,
    erased_value: ErasedValue,
}

impl PersonalData {
    pub fn new(
        pool: PgPool,
        settings: &PersonalDataSettings,
        personal_fields: PersonalFields,
        erased_value: ErasedValue,
    ) -> Result<Self, PersonalDataError> {
        let master = Aes256Gcm::new(&key_from_base64("master_key", &settings.master_key)?);
        let blind_index_key =
            key_from_base64("blind_index_key", &settings.blind_index_key)?.to_vec();
        let mut previous_masters = HashMap::new();
        for previous in &settings.previous_master_keys {
            let key = Aes256Gcm::new(&key_from_base64("previous_master_keys", &previous.key)?);
            if previous.id == settings.master_key_id
                || previous_masters.insert(previous.id.clone(), key).is_some()
            {
                return Err(PersonalDataError::DuplicateMasterKeyId(previous.id.clone()));
            }
        }
        if settings.master_key.expose_secret().trim() == DEVELOPMENT_MASTER_KEY {
            tracing::warn!("personal_data.master_key is the development key: set APP__PERSONAL_DATA__MASTER_KEY outside development");
        }
        Ok(Self {
            pool,
            writing_keys: Arc::default(),
            master,
            master_key_id: settings.master_key_id.clone(),
            previous_masters: Arc::new(previous_masters),
            blind_index_key,
            personal_fields,
            erased_value,
        })
    }

    /// The blind index of a normalised value within `scope` (64 hex
    /// characters): equal values give equal indexes, and nobody without the
    /// key can tell which value an index stands for.
    pub fn blind_index(&self, scope: &str, normalised: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.blind_index_key)
            .expect("HMAC takes a key of any length");
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(normalised.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether events of this type carry personal fields to seal.
    pub fn has_personal_fields(&self, aggregate_type: &str, event_type: &str) -> bool {
        !(self.personal_fields)(aggregate_type, event_type).is_empty()
    }

    /// `subject`'s data key, created on first use. Refused once erased: a
    /// destroyed key never comes back.
    async fn key_for_writing(
        &self,
        subject: Uuid,
        kind: SubjectKind,
    ) -> Result<Aes256Gcm, PersonalDataError> {
        if let Some((key, at)) = self
            .writing_keys
            .lock()
            .expect("not poisoned")
            .get(&subject)
        {
            if at.elapsed() < WRITING_KEY_TTL {
                return Ok(key.clone());
            }
        }
        let key = self.fetch_key_for_writing(subject, kind).await?;
        let mut cache = self.writing_keys.lock().expect("not poisoned");
        if cache.len() >= WRITING_KEYS_CACHED {
            cache.clear();
        }
        cache.insert(subject, (key.clone(), Instant::now()));
        Ok(key)
    }

    async fn fetch_key_for_writing(
        &self,
        subject: Uuid,
        kind: SubjectKind,
    ) -> Result<Aes256Gcm, PersonalDataError> {
        let fresh = Aes256Gcm::generate_key(OsRng);
        let wrapped = self.wrap(subject, &fresh);
        sqlx::query(
            "INSERT INTO event_store.subject_keys (subject_id, kind, wrapped_key, master_key_id) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (subject_id) DO NOTHING",
        )
        .bind(subject)
        .bind(kind.as_str())
        .bind(&wrapped)
        .bind(&self.master_key_id)
        .execute(&self.pool)
        .await?;
        let keys = self.keys_of(&[subject]).await?;
        match keys.get(&subject) {
            Some(Some(key)) => Ok(key.clone()),
            _ => Err(PersonalDataError::Erased(subject)),
        }
    }

    fn wrap(&self, subject: Uuid, key: &Key<Aes256Gcm>) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut wrapped = nonce.to_vec();
        wrapped.extend(
            self.master
                .encrypt(
                    &nonce,
                    Payload {
                        msg: key.as_slice(),
                        aad: subject.as_bytes(),
                    },
                )
                .expect("AES-GCM encrypts 32 bytes"),
        );
        wrapped
    }

    /// The keys of `subjects` that exist: `Some(None)` for an erased one.
    async fn keys_of(
        &self,
        subjects: &[Uuid],
    ) -> Result<HashMap<Uuid, Option<Aes256Gcm>>, PersonalDataError> {
        let rows: Vec<(Uuid, Option<Vec<u8>>, String)> = sqlx::query_as(
            "SELECT subject_id, wrapped_key, master_key_id FROM event_store.subject_keys \
             WHERE subject_id = ANY($1)",
        )
        .bind(subjects)
        .fetch_all(&self.pool)
        .await?;
        let mut keys = HashMap::with_capacity(rows.len());
        for (subject, wrapped, key_id) in rows {
            let key = match wrapped {
                None => None,
                Some(wrapped) => Some(Aes256Gcm::new(&self.unwrap(subject, &wrapped, &key_id)?)),
            };
            keys.insert(subject, key);
        }
        Ok(keys)
    }

    /// The data key `wrapped` under the master key `key_id`, the current one
    /// or one being rotated out.
    fn unwrap(
        &self,
        subject: Uuid,
        wrapped: &[u8],
        key_id: &str,
    ) -> Result<Key<Aes256Gcm>, PersonalDataError> {
        let master = if key_id == self.master_key_id {
            &self.master
        } else {
            self.previous_masters
                .get(key_id)
                .ok_or_else(|| PersonalDataError::Unwrap(subject, key_id.to_owned()))?
        };
        if wrapped.len() <= NONCE_BYTES {
            return Err(PersonalDataError::Unwrap(subject, key_id.to_owned()));
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_BYTES);
        let key = master
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: subject.as_bytes(),
                },
            )
            .map_err(|_| PersonalDataError::Unwrap(subject, key_id.to_owned()))?;
        Ok(*Key::<Aes256Gcm>::from_slice(&key))
    }

    /// Re-wraps every live data key that is not under the current master key,
    /// `batch` rows per transaction: the step of a master-key rotation that
    /// lets the old key be retired. The data keys, and so the events, do not
    /// change. A key erased meanwhile stays erased (the update asks for a
    /// wrapped key still there); rows locked by another rewrap are left to
    /// it. Returns how many keys were re-wrapped.
    pub async fn rewrap(&self, batch: i64) -> Result<u64, PersonalDataError> {
        let mut total = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let rows: Vec<(Uuid, Vec<u8>, String)> = sqlx::query_as(
                "SELECT subject_id, wrapped_key, master_key_id FROM event_store.subject_keys \
                 WHERE wrapped_key IS NOT NULL AND master_key_id <> $1 \
                 ORDER BY subject_id LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(&self.master_key_id)
            .bind(batch.max(1))
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                tx.commit().await?;
                return Ok(total);
            }
            for (subject, wrapped, key_id) in &rows {
                let key = self.unwrap(*subject, wrapped, key_id)?;
                sqlx::query(
                    "UPDATE event_store.subject_keys SET wrapped_key = $2, master_key_id = $3 \
                     WHERE subject_id = $1 AND wrapped_key IS NOT NULL",
                )
                .bind(subject)
                .bind(self.wrap(*subject, &key))
                .bind(&self.master_key_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            total += rows.len() as u64;
            tracing::info!(
                rewrapped = total,
                "data keys re-wrapped under the current master key"
            );
        }
    }

    /// How many live data keys are wrapped under each master key: what tells
    /// an operator that a retired key may be dropped.
    pub async fn keys_by_master(&self) -> Result<Vec<(String, i64)>, PersonalDataError> {
        Ok(sqlx::query_as(
            "SELECT master_key_id, count(*) FROM event_store.subject_keys \
             WHERE wrapped_key IS NOT NULL GROUP BY master_key_id ORDER BY master_key_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Seals the personal fields of an event of `subject` in place.
    pub async fn seal_payload(
        &self,
        subject: Uuid,
        aggregate_type: &str,
        event_type: &str,
        payload: &mut Value,
    ) -> Result<(), PersonalDataError> {
        let fields = (self.personal_fields)(aggregate_type, event_type);
        let Some(map) = body_mut(payload, event_type) else {
            return Ok(());
        };
        if !fields
            .iter()
            .any(|f| map.get(*f).is_some_and(|v| !v.is_null()))
        {
            return Ok(());
        }
        let key = self.key_for_writing(subject, SubjectKind::Person).await?;
        for field in fields {
            if let Some(value) = map.get_mut(*field).filter(|v| !v.is_null()) {
                *value = Value::String(seal(&key, subject, field, value));
            }
        }
        Ok(())
    }

    /// Seals the client address and agent of `metadata` under the acting
    /// person's key, or the guest key of the day `at` when nobody is logged
    /// in.
    pub async fn seal_metadata(
        &self,
        metadata: &mut EventMetadata,
        at: DateTime<Utc>,
    ) -> Result<(), PersonalDataError> {
        if metadata.client_ip.is_none() && metadata.user_agent.is_none() {
            return Ok(());
        }
        let person = metadata
            .user_id
            .as_deref()
            .and_then(|id| Uuid::parse_str(id).ok());
        let (subject, kind) = match person {
            Some(person) => (person, SubjectKind::Person),
            None => (guest_subject(at.date_naive()), SubjectKind::GuestDay),
        };
        let key = self.key_for_writing(subject, kind).await?;
        for (field, value) in METADATA_FIELDS
            .iter()
            .zip([&mut metadata.client_ip, &mut metadata.user_agent])
        {
            if let Some(clear) = value.take() {
                *value = Some(seal(&key, subject, field, &Value::String(clear)));
            }
        }
        Ok(())
    }

    /// Opens every sealed value of `events` in place, in one key lookup:
    /// an erased person's values become the domain's placeholders (their
    /// metadata values nothing).
    pub async fn open(&self, events: &mut [RecordedEvent]) -> Result<(), PersonalDataError> {
        let mut subjects: Vec<Uuid> = Vec::new();
        for event in events.iter() {
            for value in sealed_values(event) {
                if let Some((subject, _)) = parse_sealed(value) {
                    subjects.push(subject);
                }
            }
        }
        if subjects.is_empty() {
            return Ok(());
        }
        subjects.sort_unstable();
        subjects.dedup();
        let keys = self.keys_of(&subjects).await?;
        for event in events.iter_mut() {
            self.open_event(event, &keys)?;
        }
        Ok(())
    }

    fn open_event(
        &self,
        event: &mut RecordedEvent,
        keys: &HashMap<Uuid, Option<Aes256Gcm>>,
    ) -> Result<(), PersonalDataError> {
        if let Some(map) = body_mut(&mut event.payload, &event.event_type) {
            for (field, value) in map.iter_mut() {
                let Some((subject, sealed)) = value.as_str().and_then(parse_sealed) else {
                    continue;
                };
                *value = match keys.get(&subject) {
                    Some(Some(key)) => open(key, subject, field, sealed)?,
                    // Erased, or a key lost with a restore that predates it:
                    // either way nothing can be read.
                    _ => (self.erased_value)(
                        &event.aggregate_type,
                        &event.event_type,
                        field,
                        subject,
                    ),
                };
            }
        }
        let metadata = &mut event.metadata;
        for (field, value) in METADATA_FIELDS
            .iter()
            .zip([&mut metadata.client_ip, &mut metadata.user_agent])
        {
            let Some((subject, sealed)) = value.as_deref().and_then(parse_sealed) else {
                continue;
            };
            *value = match keys.get(&subject) {
                Some(Some(key)) => match open(key, subject, field, sealed)? {
                    Value::String(clear) => Some(clear),
                    _ => None,
                },
                _ => None,
            };
        }
        Ok(())
    }

    /// Destroys `subject`'s key; false when there was none left to destroy.
    pub async fn erase(&self, subject: Uuid) -> Result<bool, PersonalDataError> {
        self.writing_keys
            .lock()
            .expect("not poisoned")
            .remove(&subject);
        let erased = sqlx::query(
            "INSERT INTO event_store.subject_keys (subject_id, wrapped_key, master_key_id, erased_at) \
             VALUES ($1, NULL, $2, now()) \
             ON CONFLICT (subject_id) DO UPDATE SET wrapped_key = NULL, erased_at = now() \
             WHERE event_store.subject_keys.wrapped_key IS NOT NULL",
        )
        .bind(subject)
        .bind(&self.master_key_id)
        .execute(&self.pool)
        .await?;
        Ok(erased.rows_affected() > 0)
    }

    /// Destroys the guest keys of days before `before`: the addresses of
    /// anonymous requests are kept only as long as the retention allows.
    pub async fn erase_guest_days_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<u64, PersonalDataError> {
        let erased = sqlx::query(
            "UPDATE event_store.subject_keys SET wrapped_key = NULL, erased_at = now() \
             WHERE kind = 'guest-day' AND wrapped_key IS NOT NULL AND created_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(erased.rows_affected())
    }

    /// Destroys again every key whose erasure the log records
    /// ([`ERASURE_EVENT_TYPE`] events on the person's stream): a key table
    /// restored from a backup older than an erasure must not bring the key
    /// back. Run at every start, before anything is read.
    pub async fn reapply_erasures(&self) -> Result<u64, PersonalDataError> {
        let erased = sqlx::query(
            "UPDATE event_store.subject_keys k SET wrapped_key = NULL, erased_at = now() \
             WHERE k.wrapped_key IS NOT NULL AND EXISTS (SELECT 1 FROM event_store.events e \
             WHERE e.event_type = $1 AND e.aggregate_id = k.subject_id::text)",
        )
        .bind(ERASURE_EVENT_TYPE)
        .execute(&self.pool)
        .await?;
        if erased.rows_affected() > 0 {
            tracing::warn!(
                keys = erased.rows_affected(),
                "destroyed data keys of erased people again (the key table was restored from before their erasure)"
            );
        }
        Ok(erased.rows_affected())
    }
}

fn aad(subject: Uuid, field: &str) -> Vec<u8> {
    let mut aad = subject.as_bytes().to_vec();
    aad.extend_from_slice(field.as_bytes());
    aad
}

fn seal(key: &Aes256Gcm, subject: Uuid, field: &str, value: &Value) -> String {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let clear = serde_json::to_vec(value).expect("a JSON value serializes");
    let mut sealed = nonce.to_vec();
    sealed.extend(
        key.encrypt(
            &nonce,
            Payload {
                msg: &clear,
                aad: &aad(subject, field),
            },
        )
        .expect("AES-GCM encrypts any message under 64 GiB"),
    );
    format!(
        "{SEALED_PREFIX}{subject}.{}",
        URL_SAFE_NO_PAD.encode(sealed)
    )
}

fn open(
    key: &Aes256Gcm,
    subject: Uuid,
    field: &str,
    sealed: &str,
) -> Result<Value, PersonalDataError> {
    let corrupt = || PersonalDataError::Corrupt {
        subject,
        field: field.to_owned(),
    };
    let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| corrupt())?;
    if bytes.len() <= NONCE_BYTES {
        return Err(corrupt());
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
    let clear = key
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad(subject, field),
            },
        )
        .map_err(|_| corrupt())?;
    serde_json::from_slice(&clear).map_err(|_| corrupt())
}

/// `(subject, base64 part)` of a sealed value.
fn parse_sealed(value: &str) -> Option<(Uuid, &str)> {
    let rest = value.strip_prefix(SEALED_PREFIX)?;
    let (subject, sealed) = rest.split_once('.')?;
    Some((Uuid::parse_str(subject).ok()?, sealed))
}

/// The fields of an event: the object under the variant's name, as serde
/// writes an enum (`{"UserRegistered": {...}}`), or the payload itself.
fn body_mut<'a>(
    payload: &'a mut Value,
    event_type: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let tagged = payload
        .as_object()
        .is_some_and(|map| map.len() == 1 && map.get(event_type).is_some_and(Value::is_object));
    match tagged {
        true => payload.get_mut(event_type)?.as_object_mut(),
        false => payload.as_object_mut(),
    }
}

fn body<'a>(payload: &'a Value, event_type: &str) -> Option<&'a serde_json::Map<String, Value>> {
    let map = payload.as_object()?;
    match map.get(event_type) {
        Some(Value::Object(inner)) if map.len() == 1 => Some(inner),
        _ => Some(map),
    }
}

fn sealed_values(event: &RecordedEvent) -> impl Iterator<Item = &str> {
    let payload = body(&event.payload, &event.event_type)
        .into_iter()
        .flat_map(|map| map.values().filter_map(Value::as_str));
    let metadata = [&event.metadata.client_ip, &event.metadata.user_agent]
        .into_iter()
        .filter_map(|v| v.as_deref());
    payload.chain(metadata)
}

/// Whether any value of `payload` or `metadata` is still sealed: for tests
/// and audits that look for personal data left in the clear.
pub fn is_sealed(value: &str) -> bool {
    parse_sealed(value).is_some()
}
