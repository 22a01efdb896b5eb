//! The MongoDB `notifications` collection that the account mail and the
//! order notifications both write: its indexes, and whether it still has
//! them. Both workers keep their documents through a rebuild, because the
//! documents record deliveries that must not happen twice.

use mongodb::bson::doc;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

pub const COLLECTION: &str = "notifications";
pub const NOTIFICATION_ID_INDEX: &str = "notificationId_1";
/// The reader's listing: a user's own, unread first, newest first.
pub const UNREAD_FIRST_INDEX: &str = "userId_1_read_1_createdAt_-1";

pub async fn create_indexes<T: Send + Sync>(
    collection: &Collection<T>,
) -> mongodb::error::Result<()> {
    let unique = IndexOptions::builder()
        .unique(true)
        .name(NOTIFICATION_ID_INDEX.to_owned())
        .build();
    collection
        .create_indexes([
            IndexModel::builder()
                .keys(doc! { "notificationId": 1 })
                .options(unique)
                .build(),
            IndexModel::builder()
                .keys(doc! { "userId": 1, "createdAt": -1 })
                .build(),
            IndexModel::builder()
                .keys(doc! { "userId": 1, "read": 1, "createdAt": -1 })
                .options(
                    IndexOptions::builder()
                        .name(UNREAD_FIRST_INDEX.to_owned())
                        .build(),
                )
                .build(),
        ])
        .await?;
    Ok(())
}

/// False once the collection lost its unique index (a dropped database, a
/// restarted in-memory server), which would let a redelivery record, and
/// mail, a notification twice.
pub async fn has_indexes<T: Send + Sync>(
    collection: &Collection<T>,
) -> mongodb::error::Result<bool> {
    let names = collection
        .list_index_names()
        .await
        .or_else(|error| match *error.kind {
            // A dropped database answers "namespace not found".
            mongodb::error::ErrorKind::Command(ref c) if c.code == 26 => Ok(Vec::new()),
            _ => Err(error),
        })?;
    Ok(names.iter().any(|n| n == NOTIFICATION_ID_INDEX))
}
