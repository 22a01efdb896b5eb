//! Blue/green generations of a MongoDB read model: the new generation is a
//! collection of its own, renamed over the live one (`renameCollection` with
//! `dropTarget`), which readers see in one step; the indexes go with it.

use mongodb::bson::doc;
use mongodb::Database;

use crate::runtime::ProjectionError;

/// Makes `next` the collection `live` in one step, dropping the old `live`.
pub async fn rename_over(
    database: &Database,
    next: &str,
    live: &str,
) -> Result<(), ProjectionError> {
    let name = database.name();
    database
        .client()
        .database("admin")
        .run_command(doc! {
            "renameCollection": format!("{name}.{next}"),
            "to": format!("{name}.{live}"),
            "dropTarget": true,
        })
        .await
        .map_err(ProjectionError::unavailable)?;
    Ok(())
}
