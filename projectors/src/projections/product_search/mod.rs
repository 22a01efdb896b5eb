//! The Elasticsearch `products` index, written through an alias so it can be
//! rebuilt into a fresh index and swapped.
//!
//! A product document gathers three kinds of stream: the product's own, its
//! sku's inventory, and the names of its category and brand. Its external
//! version packs the two streams it is built from, `product << 32 | inventory`,
//! so Elasticsearch itself refuses a redelivered or older event; each write
//! reads the document, folds the event in and indexes it under the packed
//! version, and re-reads when a concurrent write won. Runs of product and
//! stock events are folded the same way in memory and written with one
//! `_bulk` (`batched`). Names, and stock that
//! arrives before its product, live in a side index (`{alias}-lookups`) under
//! their own streams' versions. osmem-server keeps indexes in memory only: a
//! missing alias means the store lost the read model, which is then rebuilt.

mod batched;

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::catalog::{BrandEvent, CategoryEvent, ProductEvent};
use domain::inventory::InventoryEvent;
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::StatusCode;
use elasticsearch::indices::{
    IndicesExistsParts, IndicesGetAliasParts, IndicesGetMappingParts, IndicesRefreshParts,
};
use elasticsearch::params::VersionType;
use elasticsearch::{BulkParts, Elasticsearch, GetParts, IndexParts, MgetParts, SearchParts};
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use infrastructure::views::{
    decimal_to_json_number, products_index_body, AttributeFilter, NamedRef, ProductView,
    SearchProduct, PRODUCTS_MAPPING_VERSION,
};
use serde_json::{json, Value};
use uuid::Uuid;

use super::product_cache::product_id_of as product_event_id;
use super::product_state::{fold_product, stock_fact, EarlyStock, StockFact};
use crate::runtime::{DeadLetter, NextGeneration, Projection, ProjectionError};
use crate::stores;

pub const NAME: &str = "product-search";
const TYPES: &[&str] = &["category", "brand", "product", "inventory"];
const LOW_BITS: i64 = 0xFFFF_FFFF;
/// Products renamed per page when a category or brand is renamed.
const RENAME_PAGE: usize = 1_000;

pub struct ProductSearch {
    client: Elasticsearch,
    alias: String,
    upcasters: Upcasters,
    /// The concrete index behind the alias, once known.
    index: Mutex<Option<String>>,
    /// A new generation writes its own concrete index, whatever the alias
    /// points at.
    pinned: bool,
    batched: bool,
}

#[derive(Debug, thiserror::Error)]
enum SearchError {
    #[error("elasticsearch request failed")]
    Transport(#[from] elasticsearch::Error),
    #[error("elasticsearch answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("the products index is gone")]
    Lost,
    /// A stored document the event would fold onto does not decode: the
    /// event is dead-lettered with this reason, never applied as if the
    /// document were absent.
    #[error("{0}")]
    Undecodable(String),
}

fn decode_stored<T: serde::de::DeserializeOwned>(
    what: &str,
    id: &str,
    value: Value,
) -> Result<T, SearchError> {
    serde_json::from_value(value).map_err(|error| {
        SearchError::Undecodable(format!("stored {what} {id} cannot be decoded: {error}"))
    })
}

impl From<SearchError> for ProjectionError {
    fn from(error: SearchError) -> Self {
        match error {
            SearchError::Lost => ProjectionError::Lost,
            // A 4xx other than "too many requests" or a timeout refuses what
            // was sent (a mapping conflict, a field limit): sending it again
            // fails the same way.
            SearchError::Status { status, .. }
                if status.is_client_error()
                    && status != StatusCode::TOO_MANY_REQUESTS
                    && status != StatusCode::REQUEST_TIMEOUT =>
            {
                ProjectionError::rejected(error)
            }
            other => ProjectionError::unavailable(other),
        }
    }
}

/// `response` when it succeeded, or its status and body as the error.
async fn successful(
    response: elasticsearch::http::response::Response,
) -> Result<elasticsearch::http::response::Response, SearchError> {
    let status = response.status_code();
    if status.is_success() {
        return Ok(response);
    }
    Err(SearchError::Status {
        status,
        body: response.text().await.unwrap_or_default(),
    })
}

/// A stored document with its packed version.
struct Stored {
    version: i64,
    source: Value,
}

fn pack(product_version: i64, inventory_version: i64) -> i64 {
    (product_version << 32) | (inventory_version & LOW_BITS)
}

fn unpack(version: i64) -> (i64, i64) {
    (version >> 32, version & LOW_BITS)
}

impl ProductSearch {
    pub fn connect(url: &str, alias: &str, upcasters: Upcasters) -> anyhow::Result<Self> {
        // A request that never answers must fail (and be retried), not hang.
        let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url.parse()?))
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self {
            client: Elasticsearch::new(transport),
            alias: alias.to_owned(),
            upcasters,
            index: Mutex::new(None),
            pinned: false,
            batched: true,
        })
    }

    /// Applies every event on its own, reading and writing its document:
    /// the reference the batched path is compared with.
    pub fn one_event_at_a_time(mut self) -> Self {
        self.batched = false;
        self
    }

    /// The side index of the live generation (or of a pinned one).
    async fn lookups(&self) -> Result<String, SearchError> {
        Ok(lookups_of(&self.concrete_index().await?))
    }

    async fn concrete_index(&self) -> Result<String, SearchError> {
        if let Some(index) = self.index.lock().expect("index lock").clone() {
            return Ok(index);
        }
        let response = self
            .client
            .indices()
            .get_alias(IndicesGetAliasParts::Name(&[&self.alias]))
            .send()
            .await?;
        if response.status_code() == StatusCode::NOT_FOUND {
            return Err(SearchError::Lost);
        }
        let body: Value = response.json().await?;
        let index = body
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .ok_or(SearchError::Lost)?;
        *self.index.lock().expect("index lock") = Some(index.clone());
        Ok(index)
    }

    async fn get(&self, index: &str, id: &str) -> Result<Option<Stored>, SearchError> {
        let response = self.client.get(GetParts::IndexId(index, id)).send().await?;
        let status = response.status_code();
        let body: Value = response.json().await?;
        if status == StatusCode::NOT_FOUND {
            if body.get("found") == Some(&Value::Bool(false)) {
                return Ok(None);
            }
            self.forget_index();
            return Err(SearchError::Lost);
        }
        if !status.is_success() {
            return Err(SearchError::Status {
                status,
                body: body.to_string(),
            });
        }
        Ok(Some(Stored {
            version: body["_version"].as_i64().unwrap_or(0),
            source: body["_source"].clone(),
        }))
    }

    /// Indexes `body` under external `version`; false when the stored version
    /// is already as new (`gte` allows equal, for refreshing names).
    async fn put(
        &self,
        index: &str,
        id: &str,
        version: i64,
        gte: bool,
        body: &Value,
    ) -> Result<bool, SearchError> {
        let version_type = if gte {
            VersionType::ExternalGte
        } else {
            VersionType::External
        };
        let response = self
            .client
            .index(IndexParts::IndexId(index, id))
            .version(version)
            .version_type(version_type)
            .body(body)
            .send()
            .await?;
        let status = response.status_code();
        if status == StatusCode::CONFLICT {
            return Ok(false);
        }
        if status == StatusCode::NOT_FOUND {
            self.forget_index();
            return Err(SearchError::Lost);
        }
        if !status.is_success() {
            return Err(SearchError::Status {
                status,
                body: response.text().await.unwrap_or_default(),
            });
        }
        Ok(true)
    }

    fn forget_index(&self) {
        if !self.pinned {
            *self.index.lock().expect("index lock") = None;
        }
    }

    async fn lookup_names(&self, refs: &[String]) -> Result<Vec<Option<String>>, SearchError> {
        if refs.is_empty() {
            return Ok(vec![]);
        }
        let response = self
            .client
            .mget(MgetParts::Index(&self.lookups().await?))
            .body(json!({ "ids": refs }))
            .send()
            .await?;
        if response.status_code() == StatusCode::NOT_FOUND {
            return Err(SearchError::Lost);
        }
        let body: Value = response.json().await?;
        Ok(body["docs"]
            .as_array()
            .map(|docs| {
                docs.iter()
                    .map(|d| d["_source"]["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_else(|| vec![None; refs.len()]))
    }

    async fn search_document(
        &self,
        view: &ProductView,
        attributes: serde_json::Map<String, Value>,
    ) -> Result<Value, SearchError> {
        let refs = name_refs(view);
        let names: HashMap<String, String> = refs
            .iter()
            .cloned()
            .zip(self.lookup_names(&refs).await?)
            .filter_map(|(key, name)| Some((key, name?)))
            .collect();
        Ok(document_body(view, attributes, &names))
    }

    async fn apply_product(
        &self,
        event: &RecordedEvent,
        decoded: &ProductEvent,
    ) -> Result<(), SearchError> {
        let index = self.concrete_index().await?;
        let id = product_event_id(decoded).to_string();
        loop {
            let stored = self.get(&index, &id).await?;
            let (stored_pv, stored_iv) = stored.as_ref().map_or((0, 0), |s| unpack(s.version));
            if stored_pv >= event.version {
                return Ok(());
            }
            let (view, mut attributes) = match &stored {
                Some(s) => (
                    Some(decode_stored::<ProductView>(
                        "search document",
                        &id,
                        s.source["view"].clone(),
                    )?),
                    s.source["attributes"]
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ),
                None => (None, serde_json::Map::new()),
            };
            let (early_stock, inventory_version) = match &stored {
                Some(_) => (None, stored_iv),
                None => self.early_stock(&id).await?,
            };
            let Some(mut view) = fold_product(
                view,
                decoded,
                &EarlyStock::product_only(early_stock.and_then(|f| f.available)),
            ) else {
                return Ok(());
            };
            if let Some(fact) = early_stock {
                fact.apply_to(&mut view);
            }
            match decoded {
                ProductEvent::ProductAttributeSet { name, value, .. } => {
                    attributes.insert(name.clone(), Value::String(value.clone()));
                }
                ProductEvent::ProductAttributeRemoved { name, .. } => {
                    attributes.remove(name);
                }
                _ => {}
            }
            let body = self.search_document(&view, attributes).await?;
            if self
                .put(
                    &index,
                    &id,
                    pack(event.version, inventory_version),
                    false,
                    &body,
                )
                .await?
            {
                return Ok(());
            }
        }
    }

    /// Stock recorded before the product's document existed, with its version.
    async fn early_stock(&self, product_id: &str) -> Result<(Option<StockFact>, i64), SearchError> {
        match self
            .get(&self.lookups().await?, &format!("stock:{product_id}"))
            .await?
        {
            None => Ok((None, 0)),
            Some(stored) => Ok((
                Some(
                    decode_stored::<StoredStock>("stock lookup", product_id, stored.source)?
                        .into_fact(),
                ),
                stored.version,
            )),
        }
    }

    async fn apply_inventory(
        &self,
        event: &RecordedEvent,
        fact: StockFact,
    ) -> Result<(), SearchError> {
        let index = self.concrete_index().await?;
        let id = fact.product_id.to_string();
        // The lookup keeps the latest stock even while the product is absent.
        let lookup_id = format!("stock:{id}");
        let lookups = self.lookups().await?;
        let previous = self.get(&lookups, &lookup_id).await?;
        let mut stored_stock = match &previous {
            Some(s) => decode_stored::<StoredStock>("stock lookup", &id, s.source.clone())?,
            None => StoredStock::default(),
        };
        stored_stock.merge(fact);
        self.put(
            &lookups,
            &lookup_id,
            event.version,
            false,
            &serde_json::to_value(&stored_stock).expect("stock serializes"),
        )
        .await?;
        loop {
            let Some(stored) = self.get(&index, &id).await? else {
                return Ok(());
            };
            let (stored_pv, stored_iv) = unpack(stored.version);
            if stored_iv >= event.version {
                return Ok(());
            }
            let Ok(mut view) = serde_json::from_value::<ProductView>(stored.source["view"].clone())
            else {
                return Ok(());
            };
            fact.apply_to(&mut view);
            let attributes = stored.source["attributes"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let body = self.search_document(&view, attributes).await?;
            if self
                .put(&index, &id, pack(stored_pv, event.version), false, &body)
                .await?
            {
                return Ok(());
            }
        }
    }

    /// Records a category's or brand's name, then refreshes the documents that
    /// show it.
    async fn apply_name(
        &self,
        event: &RecordedEvent,
        field: &str,
        id: Uuid,
        name: &str,
    ) -> Result<(), SearchError> {
        // `gte`: a batch retried after this write must still rename the
        // products; only a newer name (a later event, which renames them
        // itself) stops it.
        let lookups = self.lookups().await?;
        let written = self
            .put(
                &lookups,
                &format!("{field}:{id}"),
                event.version,
                true,
                &json!({ "name": name }),
            )
            .await?;
        if !written {
            return Ok(());
        }
        let index = self.concrete_index().await?;
        // A product indexed a moment ago (say, in this very batch, before its
        // category's name was known) is invisible to a search until a refresh;
        // without one it would keep an empty name.
        self.client
            .indices()
            .refresh(IndicesRefreshParts::Index(&[&index]))
            .send()
            .await?;
        // Every product that shows the name, a page at a time in `id`
        // order: a search stops at 10,000 hits, a catalog does not.
        let mut after: Option<Value> = None;
        loop {
            let mut query = json!({
                "size": RENAME_PAGE,
                "_source": false,
                "sort": [{ "id": "asc" }],
                "query": { "term": { format!("{field}.id"): id.to_string() } }
            });
            if let Some(after) = after.take() {
                query["search_after"] = after;
            }
            let response = self
                .client
                .search(SearchParts::Index(&[&index]))
                .body(query)
                .send()
                .await?;
            if response.status_code() == StatusCode::NOT_FOUND {
                return Err(SearchError::Lost);
            }
            let page: Value = successful(response).await?.json().await?;
            let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
            let ids: Vec<String> = hits
                .iter()
                .filter_map(|d| d["_id"].as_str().map(str::to_owned))
                .collect();
            self.rename_in(&index, field, name, ids).await?;
            match hits.last() {
                Some(last) if hits.len() == RENAME_PAGE => after = Some(last["sort"].clone()),
                _ => return Ok(()),
            }
        }
    }

    /// Sets `field`'s name in each of `ids`: one `_mget` and one `_bulk` per
    /// round, each document under the external version it was read at
    /// (`external_gte`), so a document that changed in between answers 409
    /// and is read again in the next round.
    async fn rename_in(
        &self,
        index: &str,
        field: &str,
        name: &str,
        mut ids: Vec<String>,
    ) -> Result<(), SearchError> {
        while !ids.is_empty() {
            let response = self
                .client
                .mget(MgetParts::Index(index))
                .body(json!({ "ids": ids }))
                .send()
                .await?;
            if response.status_code() == StatusCode::NOT_FOUND {
                self.forget_index();
                return Err(SearchError::Lost);
            }
            let found: Value = response.json().await?;
            let mut lines: Vec<JsonBody<Value>> = Vec::new();
            for doc in found["docs"].as_array().into_iter().flatten() {
                let (Some(id), Some(version)) = (doc["_id"].as_str(), doc["_version"].as_i64())
                else {
                    continue;
                };
                let mut body = doc["_source"].clone();
                if body[field]["name"].as_str() == Some(name) {
                    continue;
                }
                body[field]["name"] = Value::String(name.to_owned());
                lines.push(
                    json!({ "index": {
                        "_index": index,
                        "_id": id,
                        "version": version,
                        "version_type": "external_gte"
                    } })
                    .into(),
                );
                lines.push(body.into());
            }
            if lines.is_empty() {
                return Ok(());
            }
            let response = self.client.bulk(BulkParts::None).body(lines).send().await?;
            let outcome: Value = successful(response).await?.json().await?;
            let mut changed = Vec::new();
            for item in outcome["items"].as_array().into_iter().flatten() {
                let item = &item["index"];
                match item["status"].as_u64() {
                    Some(200..=299) => {}
                    Some(409) => changed.extend(item["_id"].as_str().map(str::to_owned)),
                    _ => {
                        return Err(SearchError::Status {
                            status: StatusCode::from_u16(
                                item["status"].as_u64().unwrap_or(500) as u16
                            )
                            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                            body: item["error"].to_string(),
                        })
                    }
                }
            }
            ids = changed;
        }
        Ok(())
    }

    /// Applies and empties `run`; the events a concurrent writer got to
    /// first go one by one.
    async fn apply_batched(
        &self,
        run: &mut Vec<&RecordedEvent>,
        letters: &mut Vec<DeadLetter>,
    ) -> Result<(), SearchError> {
        if run.is_empty() {
            return Ok(());
        }
        let (batch_letters, contended) = self.apply_run(run).await?;
        run.clear();
        letters.extend(batch_letters);
        for event in contended {
            if let Some(letter) = self.apply_event(event).await? {
                letters.push(letter);
            }
        }
        Ok(())
    }

    async fn apply_event(&self, event: &RecordedEvent) -> Result<Option<DeadLetter>, SearchError> {
        match self.apply_decoded(event).await {
            Err(SearchError::Undecodable(reason)) => Ok(Some(DeadLetter::for_event(event, reason))),
            other => other,
        }
    }

    async fn apply_decoded(
        &self,
        event: &RecordedEvent,
    ) -> Result<Option<DeadLetter>, SearchError> {
        let undecodable = |error: infrastructure::event_store::EventStoreError| {
            Some(DeadLetter::for_event(event, error.to_string()))
        };
        match event.aggregate_type.as_str() {
            "product" => match self.upcasters.decode::<ProductEvent>(event) {
                Ok(decoded) => self.apply_product(event, &decoded).await.map(|_| None),
                Err(error) => Ok(undecodable(error)),
            },
            "inventory" => match self.upcasters.decode::<InventoryEvent>(event) {
                Ok(decoded) => match stock_fact(&decoded).filter(StockFact::is_product_level) {
                    Some(fact) => self.apply_inventory(event, fact).await.map(|_| None),
                    None => Ok(None),
                },
                Err(error) => Ok(undecodable(error)),
            },
            "category" => match self.upcasters.decode::<CategoryEvent>(event) {
                Ok(CategoryEvent::CategoryCreated {
                    category_id, name, ..
                })
                | Ok(CategoryEvent::CategoryUpdated {
                    category_id, name, ..
                }) => self
                    .apply_name(event, "category", category_id, &name)
                    .await
                    .map(|_| None),
                Ok(_) => Ok(None),
                Err(error) => Ok(undecodable(error)),
            },
            "brand" => match self.upcasters.decode::<BrandEvent>(event) {
                Ok(BrandEvent::BrandCreated { brand_id, name, .. })
                | Ok(BrandEvent::BrandUpdated { brand_id, name, .. }) => self
                    .apply_name(event, "brand", brand_id, &name)
                    .await
                    .map(|_| None),
                Ok(_) => Ok(None),
                Err(error) => Ok(undecodable(error)),
            },
            other => Ok(Some(DeadLetter::for_event(
                event,
                format!("unexpected aggregate type {other}"),
            ))),
        }
    }

    async fn mapping_version(&self, index: &str) -> Result<Option<u64>, SearchError> {
        let response = self
            .client
            .indices()
            .get_mapping(IndicesGetMappingParts::Index(&[index]))
            .send()
            .await?;
        if response.status_code() == StatusCode::NOT_FOUND {
            return Err(SearchError::Lost);
        }
        let body: Value = successful(response).await?.json().await?;
        Ok(body[index]["mappings"]["_meta"]["mapping_version"].as_u64())
    }

    async fn index_exists(&self, index: &str) -> Result<bool, SearchError> {
        let response = self
            .client
            .indices()
            .exists(IndicesExistsParts::Index(&[index]))
            .send()
            .await?;
        Ok(response.status_code().is_success())
    }

    /// Makes newly written documents visible to searches (tests, demos).
    pub async fn refresh(&self) -> anyhow::Result<()> {
        self.client
            .indices()
            .refresh(IndicesRefreshParts::Index(&[&self.alias]))
            .send()
            .await?;
        Ok(())
    }

    fn generations(&self) -> stores::search::Alias<'_> {
        stores::search::Alias {
            client: &self.client,
            alias: &self.alias,
        }
    }

    /// An empty generation beside the live one: a concrete products index
    /// and its side index, which nothing reads until the alias points there.
    async fn create_generation(&self) -> Result<ProductSearch, ProjectionError> {
        let generations = self.generations();
        let fresh = generations.new_generation_name();
        generations
            .create_index(&fresh, products_index_body())
            .await?;
        generations
            .create_index(&lookups_of(&fresh), lookups_index_body())
            .await?;
        Ok(ProductSearch {
            client: self.client.clone(),
            alias: self.alias.clone(),
            upcasters: self.upcasters.clone(),
            index: Mutex::new(Some(fresh)),
            pinned: true,
            batched: self.batched,
        })
    }

    /// Points the alias at `fresh`, dropping the generations before it, and
    /// the single side index of releases before each generation had its own.
    async fn swap_alias_to(&self, fresh: &str) -> Result<(), ProjectionError> {
        let generations = self.generations();
        generations
            .swap_to(fresh, |index| vec![lookups_of(index)])
            .await?;
        generations
            .delete_index(&format!("{}-lookups", self.alias))
            .await
    }

    async fn reset_indexes(&self) -> Result<(), ProjectionError> {
        let next = self.create_generation().await?;
        let fresh = next.concrete_index().await?;
        self.swap_alias_to(&fresh).await?;
        *self.index.lock().expect("index lock") = Some(fresh);
        Ok(())
    }
}

/// The side index that goes with a concrete products index.
fn lookups_of(index: &str) -> String {
    format!("{index}-lookups")
}

/// The side index: category and brand names (`{"name"}`) and stock that
/// arrived before its product (`StoredStock`), under their streams' versions.
/// Only read by id, so nothing in it is indexed.
fn lookups_index_body() -> Value {
    json!({
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "name": { "type": "keyword", "index": false },
                "product_id": { "type": "keyword", "index": false },
                "available": { "type": "integer", "index": false },
                "track_inventory": { "type": "boolean", "index": false },
                "low_stock_threshold": { "type": "integer", "index": false }
            }
        }
    })
}

/// The lookup ids of the category and brand names a document shows.
fn name_refs(view: &ProductView) -> Vec<String> {
    let mut refs = Vec::new();
    if let Some(id) = view.category_id {
        refs.push(format!("category:{id}"));
    }
    if let Some(id) = view.brand_id {
        refs.push(format!("brand:{id}"));
    }
    refs
}

/// The indexed document of `view`, with the names found in `names` (by
/// lookup id) and the view itself, which the next event folds onto.
fn document_body(
    view: &ProductView,
    attributes: serde_json::Map<String, Value>,
    names: &HashMap<String, String>,
) -> Value {
    let category = view.category_id.map(|id| NamedRef {
        id,
        name: names.get(&format!("category:{id}")).cloned(),
    });
    let brand = view.brand_id.map(|id| NamedRef {
        id,
        name: names.get(&format!("brand:{id}")).cloned(),
    });
    let document = SearchProduct {
        id: view.id,
        sku: view.sku.clone(),
        slug: view.slug.clone(),
        name: view.name.clone(),
        description: view.description.clone(),
        short_description: view.short_description.clone(),
        category,
        brand,
        price: decimal_to_json_number(view.effective_price()),
        regular_price: decimal_to_json_number(view.regular_price),
        sale_price: view.sale_price.map(decimal_to_json_number),
        currency: view.currency.clone(),
        stock: view.stock_quantity,
        rating: None,
        tags: view.meta_keywords.clone(),
        attribute_filters: AttributeFilter::all_of(&attributes),
        attributes,
        status: view.status.clone(),
        featured: view.featured,
        created_at: view.created_at,
        updated_at: view.updated_at,
    };
    let mut body = serde_json::to_value(document).expect("search documents serialize");
    // Kept out of the index's searchable fields.
    body["view"] = serde_json::to_value(view).expect("views serialize");
    body
}

/// The stock facts of a product, as kept in the lookups index.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct StoredStock {
    product_id: Option<Uuid>,
    available: Option<i32>,
    track_inventory: Option<bool>,
    low_stock_threshold: Option<i32>,
}

impl StoredStock {
    fn merge(&mut self, fact: StockFact) {
        self.product_id = Some(fact.product_id);
        self.available = fact.available.or(self.available);
        self.track_inventory = fact.track_inventory.or(self.track_inventory);
        self.low_stock_threshold = fact.low_stock_threshold.or(self.low_stock_threshold);
    }

    fn into_fact(self) -> StockFact {
        StockFact {
            product_id: self.product_id.unwrap_or_default(),
            // The lookup keeps no time, and the document's `updatedAt` does
            // not follow stock (`StockFact::apply_to_row`).
            at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
            variant_id: None,
            available: self.available,
            track_inventory: self.track_inventory,
            low_stock_threshold: self.low_stock_threshold,
        }
    }
}

#[async_trait]
impl Projection for ProductSearch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        TYPES
    }

    /// Runs of product and stock events go batched (`batched`); a category
    /// or brand name ends the run before it, and is applied on its own, so
    /// that everything still applies in log order.
    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        let mut letters = Vec::new();
        let mut run: Vec<&RecordedEvent> = Vec::new();
        for event in events {
            if self.batched && matches!(event.aggregate_type.as_str(), "product" | "inventory") {
                run.push(event);
                continue;
            }
            self.apply_batched(&mut run, &mut letters).await?;
            if let Some(letter) = self.apply_event(event).await? {
                letters.push(letter);
            }
        }
        self.apply_batched(&mut run, &mut letters).await?;
        Ok(letters)
    }

    /// False when an index is gone, or was built with an older mapping.
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        self.forget_index();
        let index = match self.concrete_index().await {
            Ok(index) => index,
            Err(SearchError::Lost) => return Ok(false),
            Err(other) => return Err(other.into()),
        };
        if self.mapping_version(&index).await? != Some(PRODUCTS_MAPPING_VERSION) {
            tracing::warn!(
                projection = NAME,
                %index,
                wanted = PRODUCTS_MAPPING_VERSION,
                "products index has an older mapping"
            );
            return Ok(false);
        }
        Ok(self.index_exists(&lookups_of(&index)).await?)
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.reset_indexes().await
    }

    async fn next_generation(&self) -> Result<Option<Box<dyn NextGeneration>>, ProjectionError> {
        Ok(Some(Box::new(self.create_generation().await?)))
    }

    fn generation_swapped(&self) {
        self.forget_index();
    }
}

#[async_trait]
impl NextGeneration for ProductSearch {
    fn projection(&self) -> &dyn Projection {
        self
    }

    async fn swap(self: Box<Self>) -> Result<(), ProjectionError> {
        let fresh = self.concrete_index().await?;
        self.swap_alias_to(&fresh).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_versions_order_by_product_then_inventory() {
        assert_eq!(unpack(pack(3, 7)), (3, 7));
        assert!(pack(2, 0) > pack(1, 1_000_000));
        assert!(pack(2, 5) > pack(2, 4));
    }
}
