//! [`CartDocuments`] over MongoDB: `find_one` by `_id` in the seed's
//! `carts` collection, read back through the shared [`CartDocument`]. The
//! client is made on first use (so the API starts while MongoDB is down)
//! with short server-selection and connect timeouts, and every read is
//! bounded on its own: a MongoDB that does not answer is `Unavailable`
//! within seconds, never a hung request.

use std::time::Duration;

use infrastructure::settings::MongoSettings;
use infrastructure::views::carts::{CartDocument, CARTS_COLLECTION};
use mongodb::bson::{doc, Document};
use mongodb::error::ErrorKind;
use mongodb::options::ClientOptions;
use mongodb::Client;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{CartDocuments, StoredCart};
use crate::error::StoreError;
use crate::BoxFuture;

const STORE: &str = "mongodb";
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_millis(1500);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(3);

pub struct MongoCartDocuments {
    url: String,
    database: String,
    client: OnceCell<Client>,
}

impl MongoCartDocuments {
    /// Keeps the settings; parses and connects on first use.
    pub fn new(settings: &MongoSettings) -> Self {
        Self {
            url: settings.url.clone(),
            database: settings.database.clone(),
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&Client, StoreError> {
        self.client
            .get_or_try_init(|| async {
                let mut options = ClientOptions::parse(&self.url).await.map_err(classify)?;
                options.connect_timeout = Some(CONNECT_TIMEOUT);
                options.server_selection_timeout = Some(SERVER_SELECTION_TIMEOUT);
                options.app_name = Some("query-api".to_owned());
                Client::with_options(options).map_err(|e| StoreError::failed(STORE, e))
            })
            .await
    }

    /// Runs `operation` bounded; past the bound the store is unavailable.
    async fn bounded<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(OPERATION_TIMEOUT, operation)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::unavailable(
                    STORE,
                    anyhow::anyhow!("no answer within {OPERATION_TIMEOUT:?}"),
                ))
            })
    }

    #[tracing::instrument(name = "mongo_get_cart", skip(self), fields(cart_id = %id))]
    async fn fetch(&self, id: Uuid) -> Result<Option<StoredCart>, StoreError> {
        let found = self
            .bounded(async {
                self.client()
                    .await?
                    .database(&self.database)
                    .collection::<Document>(CARTS_COLLECTION)
                    .find_one(doc! { "_id": id.to_string() })
                    .await
                    .map_err(classify)
            })
            .await?;
        let Some(document) = found else {
            return Ok(None);
        };
        let (owner, cart, _) = CartDocument::from_document(document)
            .and_then(CartDocument::into_parts)
            .map_err(|e| {
                StoreError::failed(
                    STORE,
                    anyhow::Error::new(e).context(format!("cart document {id} cannot be read")),
                )
            })?;
        Ok(Some(StoredCart { owner, cart }))
    }
}

impl CartDocuments for MongoCartDocuments {
    fn get(&self, id: Uuid) -> BoxFuture<'_, Result<Option<StoredCart>, StoreError>> {
        Box::pin(self.fetch(id))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.bounded(async {
            self.client()
                .await?
                .database(&self.database)
                .run_command(doc! { "ping": 1 })
                .await
                .map(|_| ())
                .map_err(classify)
        }))
    }
}

fn classify(error: mongodb::error::Error) -> StoreError {
    match *error.kind {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => StoreError::unavailable(STORE, error),
        _ => StoreError::failed(STORE, error),
    }
}
