//! The MongoDB `activity_logs` collection: one document per event, in the
//! seed's shape (userId, action, resource, resourceId, details with user agent
//! and IP address, timestamp), with the event's id, correlation and causation.
//!
//! The user agent and IP address come sealed in the event metadata
//! (`infrastructure::personal_data`) and are opened here: a person erased
//! before a rebuild has neither in the rebuilt log, and the erasure itself
//! removes both from the person's documents in the live log.
//!
//! A batch is one unordered insert. The unique index on `eventId` turns a
//! redelivered event into a duplicate-key error for that document alone,
//! which changes nothing. A missing unique index means the database lost the
//! collection, which triggers a rebuild.
//!
//! A blue/green rebuild writes `activity_logs_next` and renames it over
//! `activity_logs` (`renameCollection` with `dropTarget`), which readers see
//! in one step. Live workers write by name, so they follow the rename; the
//! log is append-only, so what they wrote just before it is replayed into the
//! new collection without any question of order.

use async_trait::async_trait;
use infrastructure::event_store::RecordedEvent;
use infrastructure::personal_data::{PersonalData, ERASURE_EVENT_TYPE};
use mongodb::bson::{doc, Bson, DateTime as BsonDateTime, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};

use crate::runtime::{DeadLetter, NextGeneration, Projection, ProjectionError};
use crate::stores;

pub const NAME: &str = "activity-log";
pub const COLLECTION: &str = "activity_logs";
const NEXT_COLLECTION: &str = "activity_logs_next";
const EVENT_ID_INDEX: &str = "eventId_1";
const TYPES: &[&str] = &[
    "category",
    "brand",
    "product",
    "inventory",
    "user",
    "cart",
    "order",
    "payment",
    "promotion",
    "coupon",
    "review",
    "notification",
];

pub struct ActivityLog {
    database: Database,
    collection: &'static str,
    personal: PersonalData,
}

impl ActivityLog {
    pub async fn connect(
        url: &str,
        database: &str,
        personal: PersonalData,
    ) -> anyhow::Result<Self> {
        let client = mongodb::Client::with_uri_str(url).await?;
        Ok(Self {
            database: client.database(database),
            collection: COLLECTION,
            personal,
        })
    }

    fn collection(&self) -> Collection<Document> {
        self.database.collection(self.collection)
    }

    /// The logs of people erased in `events` lose the address and agent they
    /// were written with: a rebuild would open them as nothing, and the live
    /// log must not keep more than a rebuild would.
    async fn forget_erased(&self, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        let erased: Vec<&str> = events
            .iter()
            .filter(|e| e.aggregate_type == "user" && e.event_type == ERASURE_EVENT_TYPE)
            .map(|e| e.aggregate_id.as_str())
            .collect();
        if erased.is_empty() {
            return Ok(());
        }
        self.collection()
            .update_many(
                doc! { "userId": { "$in": &erased } },
                doc! { "$set": { "details.ipAddress": Bson::Null, "details.userAgent": Bson::Null } },
            )
            .await
            .map_err(ProjectionError::unavailable)?;
        Ok(())
    }

    async fn create_indexes(&self) -> mongodb::error::Result<()> {
        let unique = IndexOptions::builder()
            .unique(true)
            .name(EVENT_ID_INDEX.to_owned())
            .build();
        self.collection()
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! { "eventId": 1 })
                    .options(unique)
                    .build(),
                IndexModel::builder().keys(doc! { "userId": 1 }).build(),
                IndexModel::builder()
                    .keys(doc! { "resource": 1, "resourceId": 1 })
                    .build(),
                IndexModel::builder().keys(doc! { "action": 1 }).build(),
                IndexModel::builder().keys(doc! { "timestamp": -1 }).build(),
            ])
            .await?;
        Ok(())
    }
}

/// `ProductCreated` → `product_created`.
pub fn action_of(event_type: &str) -> String {
    let mut action = String::with_capacity(event_type.len() + 4);
    for (i, c) in event_type.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                action.push('_');
            }
            action.push(c.to_ascii_lowercase());
        } else {
            action.push(c);
        }
    }
    action
}

/// The seed names resources by their table: `product` → `products`.
pub fn resource_of(aggregate_type: &str) -> String {
    match aggregate_type {
        "category" => "categories".to_owned(),
        "inventory" => "inventory".to_owned(),
        other => format!("{other}s"),
    }
}

fn optional(value: &Option<String>) -> Bson {
    value
        .as_ref()
        .map_or(Bson::Null, |v| Bson::String(v.clone()))
}

pub fn activity_document(event: &RecordedEvent) -> Document {
    let meta = &event.metadata;
    doc! {
        "eventId": event.event_id.to_string(),
        "userId": optional(&meta.user_id),
        "action": action_of(&event.event_type),
        "resource": resource_of(&event.aggregate_type),
        "resourceId": &event.aggregate_id,
        "details": {
            "userAgent": optional(&meta.user_agent),
            "ipAddress": optional(&meta.client_ip),
            "referrer": Bson::Null,
            "eventType": &event.event_type,
            "schemaVersion": event.schema_version,
            "version": event.version,
            "position": event.position,
            "correlationId": meta.correlation_id.to_string(),
            "causationId": meta.causation_id.to_string(),
        },
        "timestamp": BsonDateTime::from_millis(event.recorded_at.timestamp_millis()),
    }
}

/// MongoDB's code for a duplicate key.
const DUPLICATE_KEY: i32 = 11000;

/// The dead letters of an unordered insert's write errors: a duplicate key
/// is an event logged already; any other error is the server refusing that
/// one document (too large, invalid), which it would refuse again.
fn refused_documents(
    events: &[RecordedEvent],
    write_errors: Option<&[mongodb::error::IndexedWriteError]>,
) -> Vec<DeadLetter> {
    write_errors
        .unwrap_or_default()
        .iter()
        .filter(|error| error.code != DUPLICATE_KEY)
        .filter_map(|error| {
            let event = events.get(error.index)?;
            Some(DeadLetter::for_event(
                event,
                format!(
                    "mongodb refused the document ({}): {}",
                    error.code, error.message
                ),
            ))
        })
        .collect()
}

#[async_trait]
impl Projection for ActivityLog {
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
        let mut opened = events.to_vec();
        self.personal
            .open(&mut opened)
            .await
            .map_err(ProjectionError::unavailable)?;
        let documents: Vec<Document> = opened.iter().map(activity_document).collect();
        // One unordered round trip for the batch: a document already there
        // (a redelivery) fails alone on the unique `eventId` index while the
        // others go in.
        let result = self
            .collection()
            .insert_many(documents)
            .ordered(false)
            .await;
        let refused = match result {
            Ok(_) => Vec::new(),
            Err(error) => match *error.kind {
                mongodb::error::ErrorKind::InsertMany(ref failure)
                    if failure.write_concern_error.is_none() =>
                {
                    refused_documents(events, failure.write_errors.as_deref())
                }
                _ => return Err(ProjectionError::unavailable(error)),
            },
        };
        self.forget_erased(&opened).await?;
        Ok(refused)
    }

    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        let names = self
            .collection()
            .list_index_names()
            .await
            .or_else(|error| match *error.kind {
                // A dropped database answers "namespace not found".
                mongodb::error::ErrorKind::Command(ref c) if c.code == 26 => Ok(Vec::new()),
                _ => Err(error),
            })
            .map_err(ProjectionError::unavailable)?;
        Ok(names.iter().any(|n| n == EVENT_ID_INDEX))
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.collection()
            .drop()
            .await
            .map_err(ProjectionError::unavailable)?;
        self.create_indexes()
            .await
            .map_err(ProjectionError::unavailable)
    }

    async fn next_generation(&self) -> Result<Option<Box<dyn NextGeneration>>, ProjectionError> {
        let next = ActivityLog {
            database: self.database.clone(),
            collection: NEXT_COLLECTION,
            personal: self.personal.clone(),
        };
        next.reset().await?;
        Ok(Some(Box::new(next)))
    }
}

#[async_trait]
impl NextGeneration for ActivityLog {
    fn projection(&self) -> &dyn Projection {
        self
    }

    async fn swap(self: Box<Self>) -> Result<(), ProjectionError> {
        stores::mongo::rename_over(&self.database, self.collection, COLLECTION).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_resources_follow_the_seed() {
        assert_eq!(action_of("ProductCreated"), "product_created");
        assert_eq!(action_of("StockAdjusted"), "stock_adjusted");
        assert_eq!(resource_of("product"), "products");
        assert_eq!(resource_of("category"), "categories");
    }
}
