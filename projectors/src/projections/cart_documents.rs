//! The MongoDB `carts` collection: one document per open cart, `_id` the
//! cart's id, in the seed's shape ([`CartDocument`]: `userId` or `sessionId`,
//! `items`, `summary`, `createdAt`, `updatedAt`, `expiresAt`, money as
//! Decimal128) with the extras a cart view needs, and the seed's four
//! indexes (`userId`, `sessionId`, the `expiresAt` TTL, `updatedAt`).
//!
//! Every document holds `_version`, the cart stream's version it was folded
//! to. A batch reads the documents (and endings) of its carts in two
//! queries, folds each cart's events onto its document in memory
//! ([`cart_state`]), skipping what the document already holds, and writes
//! each cart with a compare-and-set on the version it read (a replace
//! filtered on `_version`, or an insert that fails on a duplicate `_id`). A
//! redelivered or older event therefore changes nothing, and a concurrent
//! writer makes the cart be read and folded again instead of losing an
//! update.
//!
//! A terminal event (checked out, expired, merged) deletes the document and
//! records the ending in `cart_tombstones` (`_id`, `_version`, `ending`,
//! `endedAt`, `expiresAt`), which a later redelivery reads: the cart is never
//! recreated. The ending is recorded before the document goes, and a batch
//! that wrote documents deletes again any of them that gained an ending
//! meanwhile, so no interleaving of two writers leaves an ended cart shown.
//! Endings expire (TTL) with the cart's last `expiresAt`, past which no
//! event of the cart can show it again (a cart past its expiry is not
//! written, as the TTL index would drop it).
//!
//! The TTL index of `cart_tombstones` is the marker that the read model was
//! built: a lost database has none (a write into it would create the
//! collections without indexes), which calls for a rebuild. While it is
//! there, `is_intact` also creates any of the seed's indexes that is
//! missing, which is idempotent.
//!
//! A blue/green rebuild writes `carts_next` and `cart_tombstones_next` and
//! renames them over the live collections (`renameCollection` with
//! `dropTarget`), which takes their indexes along.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use infrastructure::views::carts::{CartDocument, CARTS_COLLECTION};
use mongodb::bson::{doc, DateTime as BsonDateTime, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use uuid::Uuid;

use super::cart_state::{by_cart, CartEvents, CartFold, Ending, TYPES};
use crate::runtime::{DeadLetter, NextGeneration, Projection, ProjectionError};
use crate::stores;

pub const NAME: &str = "cart-documents";
pub const COLLECTION: &str = CARTS_COLLECTION;
pub const TOMBSTONES: &str = "cart_tombstones";
const NEXT_COLLECTION: &str = "carts_next";
const NEXT_TOMBSTONES: &str = "cart_tombstones_next";
/// The seed's indexes, by the names MongoDB gives them.
pub const SEED_INDEXES: [&str; 4] = ["userId_1", "sessionId_1", "expiresAt_1", "updatedAt_1"];
const TOMBSTONE_TTL_INDEX: &str = "expiresAt_1";
/// MongoDB's code for a duplicate key.
const DUPLICATE_KEY: i32 = 11000;
/// MongoDB's code for "namespace not found" (a dropped database).
const NAMESPACE_NOT_FOUND: i32 = 26;
/// Writes of one batch in flight at once.
const WRITES_IN_FLIGHT: usize = 16;

pub struct CartDocuments {
    database: Database,
    carts: &'static str,
    tombstones: &'static str,
    upcasters: Upcasters,
    batched: bool,
}

/// What the store holds for one cart.
#[derive(Default)]
struct Stored {
    document: Option<Document>,
    tombstone: Option<Document>,
}

/// One cart's write, guarded by what was read.
enum Write {
    /// Inserts the document (`read` is `None`) or replaces the one at
    /// version `read`.
    Put {
        document: Document,
        read: Option<i64>,
    },
    /// Removes the document at version `read`: it outlived its expiry.
    Drop { read: i64 },
    /// Records the ending (unless it is recorded already) and removes the
    /// document.
    End { tombstone: Option<Document> },
}

type WriteFuture<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = (usize, bool, Result<Outcome, ProjectionError>)>
            + Send
            + 'a,
    >,
>;

enum Outcome {
    Written,
    /// Another writer changed the cart since it was read.
    Conflict,
}

impl CartDocuments {
    pub async fn connect(url: &str, database: &str, upcasters: Upcasters) -> anyhow::Result<Self> {
        let client = mongodb::Client::with_uri_str(url).await?;
        Ok(Self {
            database: client.database(database),
            carts: COLLECTION,
            tombstones: TOMBSTONES,
            upcasters,
            batched: true,
        })
    }

    /// Applies every event on its own, each read, folded and written before
    /// the next: the reference the batched path is compared with.
    pub fn one_event_at_a_time(mut self) -> Self {
        self.batched = false;
        self
    }

    fn carts(&self) -> Collection<Document> {
        self.database.collection(self.carts)
    }

    fn tombstones(&self) -> Collection<Document> {
        self.database.collection(self.tombstones)
    }

    async fn create_indexes(&self) -> mongodb::error::Result<()> {
        let ttl = || {
            IndexOptions::builder()
                .expire_after(Duration::from_secs(0))
                .build()
        };
        self.carts()
            .create_indexes([
                IndexModel::builder().keys(doc! { "userId": 1 }).build(),
                IndexModel::builder().keys(doc! { "sessionId": 1 }).build(),
                IndexModel::builder()
                    .keys(doc! { "expiresAt": 1 })
                    .options(ttl())
                    .build(),
                IndexModel::builder().keys(doc! { "updatedAt": 1 }).build(),
            ])
            .await?;
        self.tombstones()
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "expiresAt": 1 })
                    .options(ttl())
                    .build(),
            )
            .await?;
        Ok(())
    }

    /// What the store holds for `carts`, in two queries.
    async fn read(&self, carts: &[Uuid]) -> mongodb::error::Result<HashMap<Uuid, Stored>> {
        let ids: Vec<String> = carts.iter().map(Uuid::to_string).collect();
        let filter = doc! { "_id": { "$in": &ids } };
        let (documents, tombstones) = tokio::try_join!(
            async {
                self.carts()
                    .find(filter.clone())
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            },
            async {
                self.tombstones()
                    .find(filter.clone())
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            },
        )?;
        let mut stored: HashMap<Uuid, Stored> = HashMap::new();
        let id_of = |document: &Document| {
            document
                .get_str("_id")
                .ok()
                .and_then(|id| id.parse::<Uuid>().ok())
        };
        for document in documents {
            if let Some(id) = id_of(&document) {
                stored.entry(id).or_default().document = Some(document);
            }
        }
        for tombstone in tombstones {
            if let Some(id) = id_of(&tombstone) {
                stored.entry(id).or_default().tombstone = Some(tombstone);
            }
        }
        Ok(stored)
    }

    /// Applies `cart`'s events on their own, reading again until the write
    /// wins over any concurrent writer.
    async fn apply_cart(&self, cart: &CartEvents<'_>) -> Result<Vec<DeadLetter>, ProjectionError> {
        loop {
            let mut stored = self
                .read(&[cart.cart_id])
                .await
                .map_err(ProjectionError::unavailable)?;
            let stored = stored.remove(&cart.cart_id).unwrap_or_default();
            let write = match plan(cart, &stored, Utc::now()) {
                Ok(Some(write)) => write,
                Ok(None) => return Ok(Vec::new()),
                Err(reason) => return Ok(cart.refused(&reason)),
            };
            let put = matches!(write, Write::Put { .. });
            match self.write(cart.cart_id, write).await? {
                Outcome::Written => {
                    if put {
                        self.remove_ended(&[cart.cart_id]).await?;
                    }
                    return Ok(Vec::new());
                }
                Outcome::Conflict => continue,
            }
        }
    }

    async fn write(&self, cart_id: Uuid, write: Write) -> Result<Outcome, ProjectionError> {
        let id = cart_id.to_string();
        let outcome = match write {
            Write::Put {
                document,
                read: Some(version),
            } => {
                let replaced = self
                    .carts()
                    .replace_one(doc! { "_id": &id, "_version": version }, document)
                    .await
                    .map_err(ProjectionError::unavailable)?;
                match replaced.matched_count {
                    0 => Outcome::Conflict,
                    _ => Outcome::Written,
                }
            }
            Write::Put {
                document,
                read: None,
            } => match self.carts().insert_one(document).await {
                Ok(_) => Outcome::Written,
                Err(error) if is_duplicate_key(&error) => Outcome::Conflict,
                Err(error) => return Err(ProjectionError::unavailable(error)),
            },
            Write::Drop { read } => {
                let deleted = self
                    .carts()
                    .delete_one(doc! { "_id": &id, "_version": read })
                    .await
                    .map_err(ProjectionError::unavailable)?;
                match deleted.deleted_count {
                    0 => Outcome::Conflict,
                    _ => Outcome::Written,
                }
            }
            Write::End { tombstone } => {
                if let Some(tombstone) = tombstone {
                    match self.tombstones().insert_one(tombstone).await {
                        // Recorded already: the first ending stands.
                        Ok(_) => {}
                        Err(error) if is_duplicate_key(&error) => {}
                        Err(error) => return Err(ProjectionError::unavailable(error)),
                    }
                }
                self.carts()
                    .delete_one(doc! { "_id": &id })
                    .await
                    .map_err(ProjectionError::unavailable)?;
                Outcome::Written
            }
        };
        Ok(outcome)
    }

    /// Deletes the documents among `written` whose cart has ended: an ending
    /// another writer recorded between this batch's read and its write.
    async fn remove_ended(&self, written: &[Uuid]) -> Result<(), ProjectionError> {
        if written.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = written.iter().map(Uuid::to_string).collect();
        let ended: Vec<String> = self
            .tombstones()
            .find(doc! { "_id": { "$in": &ids } })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(ProjectionError::unavailable)?
            .try_collect::<Vec<Document>>()
            .await
            .map_err(ProjectionError::unavailable)?
            .iter()
            .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
            .collect();
        if !ended.is_empty() {
            tracing::info!(
                projection = NAME,
                carts = ended.len(),
                "removing carts that ended while they were written"
            );
            self.carts()
                .delete_many(doc! { "_id": { "$in": ended } })
                .await
                .map_err(ProjectionError::unavailable)?;
        }
        Ok(())
    }

    /// The batch in two reads and one write per changed cart (at most
    /// [`WRITES_IN_FLIGHT`] at once); carts another writer changed meanwhile
    /// are applied again on their own.
    async fn apply_batch(
        &self,
        carts: &[CartEvents<'_>],
    ) -> Result<Vec<DeadLetter>, ProjectionError> {
        let ids: Vec<Uuid> = carts.iter().map(|c| c.cart_id).collect();
        let mut stored = self
            .read(&ids)
            .await
            .map_err(ProjectionError::unavailable)?;
        let now = Utc::now();
        let mut letters = Vec::new();
        let mut writes = Vec::new();
        let mut planned: Vec<&CartEvents> = Vec::new();
        for cart in carts {
            let read = stored.remove(&cart.cart_id).unwrap_or_default();
            match plan(cart, &read, now) {
                Ok(Some(write)) => {
                    planned.push(cart);
                    writes.push((cart, write));
                }
                Ok(None) => {}
                Err(reason) => letters.extend(cart.refused(&reason)),
            }
        }
        // Boxed one by one: a closure building them would not be `Send` for
        // every lifetime the projection's future needs.
        let mut pending: Vec<WriteFuture<'_>> = Vec::with_capacity(writes.len());
        for (index, (cart, write)) in writes.into_iter().enumerate() {
            let put = matches!(write, Write::Put { .. });
            let cart_id = cart.cart_id;
            pending.push(Box::pin(async move {
                (index, put, self.write(cart_id, write).await)
            }));
        }
        let outcomes: Vec<(usize, bool, Result<Outcome, ProjectionError>)> =
            futures::stream::iter(pending)
                .buffer_unordered(WRITES_IN_FLIGHT)
                .collect()
                .await;
        let mut put = Vec::new();
        let mut contended = Vec::new();
        for (index, is_put, outcome) in outcomes {
            match outcome? {
                Outcome::Written if is_put => put.push(planned[index].cart_id),
                Outcome::Written => {}
                Outcome::Conflict => contended.push(planned[index]),
            }
        }
        self.remove_ended(&put).await?;
        for cart in contended {
            letters.extend(self.apply_cart(cart).await?);
        }
        Ok(letters)
    }
}

/// What `cart`'s events make of what is stored, `None` when they change
/// nothing, or why they cannot apply.
fn plan(
    cart: &CartEvents<'_>,
    stored: &Stored,
    now: DateTime<Utc>,
) -> Result<Option<Write>, String> {
    // An ending recorded beside a document is a write cut short between its
    // two steps: the document goes, whatever the events say.
    if stored.tombstone.is_some() {
        return Ok(stored
            .document
            .as_ref()
            .map(|_| Write::End { tombstone: None }));
    }
    let (mut state, read) = match &stored.document {
        None => (CartFold::Absent, None),
        Some(document) => {
            let (_, cart, version) = CartDocument::from_document(document.clone())
                .and_then(CartDocument::into_parts)
                .map_err(|error| {
                    format!(
                        "stored cart document {} cannot be read: {error}",
                        cart.cart_id
                    )
                })?;
            (
                CartFold::Open {
                    version,
                    cart: Box::new(cart),
                },
                Some(version),
            )
        }
    };
    if !cart.fold_onto(&mut state, now)? {
        return Ok(None);
    }
    Ok(match state {
        CartFold::Absent => None,
        CartFold::Open {
            version,
            cart: folded,
        } if folded.expires_at > now => Some(Write::Put {
            document: CartDocument::new(&cart.owner, &folded, version).to_document(),
            read,
        }),
        // Past its expiry: the TTL index would drop it.
        CartFold::Open { .. } => read.map(|read| Write::Drop { read }),
        CartFold::Ended {
            version,
            ending,
            at,
            keep_until,
        } => Some(Write::End {
            tombstone: Some(tombstone(cart.cart_id, version, ending, at, keep_until)),
        }),
    })
}

fn tombstone(
    cart_id: Uuid,
    version: i64,
    ending: Ending,
    at: DateTime<Utc>,
    keep_until: DateTime<Utc>,
) -> Document {
    doc! {
        "_id": cart_id.to_string(),
        "_version": version,
        "ending": ending.as_str(),
        "endedAt": BsonDateTime::from_millis(at.timestamp_millis()),
        "expiresAt": BsonDateTime::from_millis(keep_until.timestamp_millis()),
    }
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    matches!(
        *error.kind,
        ErrorKind::Write(WriteFailure::WriteError(ref e)) if e.code == DUPLICATE_KEY
    )
}

async fn index_names(collection: &Collection<Document>) -> Result<Vec<String>, ProjectionError> {
    collection
        .list_index_names()
        .await
        .or_else(|error| match *error.kind {
            ErrorKind::Command(ref c) if c.code == NAMESPACE_NOT_FOUND => Ok(Vec::new()),
            _ => Err(error),
        })
        .map_err(ProjectionError::unavailable)
}

#[async_trait]
impl Projection for CartDocuments {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        TYPES
    }

    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        let (carts, mut letters) = by_cart(events, &self.upcasters);
        if carts.is_empty() {
            return Ok(letters);
        }
        if self.batched {
            letters.extend(self.apply_batch(&carts).await?);
        } else {
            for cart in &carts {
                for index in 0..cart.events.len() {
                    letters.extend(self.apply_cart(&cart.single(index)).await?);
                }
            }
        }
        Ok(letters)
    }

    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        let built = index_names(&self.tombstones())
            .await?
            .iter()
            .any(|name| name == TOMBSTONE_TTL_INDEX);
        if !built {
            return Ok(false);
        }
        let present = index_names(&self.carts()).await?;
        if SEED_INDEXES
            .iter()
            .any(|name| !present.iter().any(|p| p == name))
        {
            tracing::warn!(projection = NAME, present = ?present, "creating missing cart indexes");
            self.create_indexes()
                .await
                .map_err(ProjectionError::unavailable)?;
        }
        Ok(true)
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.carts()
            .drop()
            .await
            .map_err(ProjectionError::unavailable)?;
        self.tombstones()
            .drop()
            .await
            .map_err(ProjectionError::unavailable)?;
        self.create_indexes()
            .await
            .map_err(ProjectionError::unavailable)
    }

    async fn next_generation(&self) -> Result<Option<Box<dyn NextGeneration>>, ProjectionError> {
        let next = CartDocuments {
            database: self.database.clone(),
            carts: NEXT_COLLECTION,
            tombstones: NEXT_TOMBSTONES,
            upcasters: self.upcasters.clone(),
            batched: self.batched,
        };
        next.reset().await?;
        Ok(Some(Box::new(next)))
    }
}

#[async_trait]
impl NextGeneration for CartDocuments {
    fn projection(&self) -> &dyn Projection {
        self
    }

    /// Endings first: a swap cut short between the two renames leaves the
    /// live carts beside endings that know at least as much.
    async fn swap(self: Box<Self>) -> Result<(), ProjectionError> {
        stores::mongo::rename_over(&self.database, self.tombstones, TOMBSTONES).await?;
        stores::mongo::rename_over(&self.database, self.carts, COLLECTION).await
    }
}
