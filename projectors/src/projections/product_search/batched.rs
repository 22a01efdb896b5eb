//! A run of product and stock events in a bounded number of requests: one
//! `_mget` of the documents, one of their stock lookups, one of the names the
//! changed documents show, and one `_bulk` of everything changed, each under
//! its external version. The events are folded per product in memory, as the
//! one-by-one path folds them. A write the index refuses as older (409: a
//! concurrent writer) sends that product's events down the one-by-one path,
//! which re-reads until it wins.

use std::collections::{BTreeMap, HashMap};

use domain::catalog::ProductEvent;
use domain::inventory::InventoryEvent;
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::StatusCode;
use elasticsearch::{BulkParts, MgetParts};
use infrastructure::event_store::RecordedEvent;
use infrastructure::views::ProductView;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    decode_stored, document_body, lookups_of, name_refs, pack, product_event_id, successful,
    unpack, ProductSearch, SearchError, Stored, StoredStock,
};
use crate::projections::product_state::{fold_product, stock_fact, EarlyStock, StockFact};
use crate::runtime::DeadLetter;

enum Change {
    Product(Box<ProductEvent>),
    Stock(StockFact),
}

/// One product's document and stock lookup while its events fold.
struct Fold<'e> {
    view: Option<ProductView>,
    attributes: serde_json::Map<String, Value>,
    product_version: i64,
    inventory_version: i64,
    document_changed: bool,
    stock: Option<StoredStock>,
    stock_version: i64,
    stock_changed: bool,
    events: Vec<(&'e RecordedEvent, Change)>,
}

impl Fold<'_> {
    fn fold(&mut self) {
        let events = std::mem::take(&mut self.events);
        for (event, change) in &events {
            match change {
                Change::Product(decoded) => self.product(event, decoded),
                Change::Stock(fact) => self.stock(event, *fact),
            }
        }
        self.events = events;
    }

    fn product(&mut self, event: &RecordedEvent, decoded: &ProductEvent) {
        if self.product_version >= event.version {
            return;
        }
        let absent = self.view.is_none();
        // Stock recorded before the document existed comes with it.
        let early = absent
            .then(|| self.stock.clone().map(StoredStock::into_fact))
            .flatten();
        let Some(mut view) = fold_product(
            self.view.clone(),
            decoded,
            &EarlyStock::product_only(early.and_then(|fact| fact.available)),
        ) else {
            return;
        };
        if absent {
            self.attributes.clear();
            self.inventory_version = if self.stock.is_some() {
                self.stock_version
            } else {
                0
            };
            if let Some(fact) = early {
                fact.apply_to(&mut view);
            }
        }
        match decoded {
            ProductEvent::ProductAttributeSet { name, value, .. } => {
                self.attributes
                    .insert(name.clone(), Value::String(value.clone()));
            }
            ProductEvent::ProductAttributeRemoved { name, .. } => {
                self.attributes.remove(name);
            }
            _ => {}
        }
        self.view = Some(view);
        self.product_version = event.version;
        self.document_changed = true;
    }

    fn stock(&mut self, event: &RecordedEvent, fact: StockFact) {
        if self.stock_version < event.version {
            self.stock
                .get_or_insert_with(StoredStock::default)
                .merge(fact);
            self.stock_version = event.version;
            self.stock_changed = true;
        }
        if let Some(view) = self.view.as_mut() {
            if self.inventory_version < event.version {
                fact.apply_to(view);
                self.inventory_version = event.version;
                self.document_changed = true;
            }
        }
    }
}

impl ProductSearch {
    /// The stored documents of `ids` in `index`, in order.
    async fn mget(&self, index: &str, ids: &[String]) -> Result<Vec<Option<Stored>>, SearchError> {
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
        let body: Value = successful(response).await?.json().await?;
        let docs = body["docs"].as_array().cloned().unwrap_or_default();
        Ok((0..ids.len())
            .map(|i| {
                let doc = docs.get(i)?;
                (doc["found"] == Value::Bool(true)).then(|| Stored {
                    version: doc["_version"].as_i64().unwrap_or(0),
                    source: doc["_source"].clone(),
                })
            })
            .collect())
    }

    /// Applies a run of product and inventory events. Returns the dead
    /// letters and the events of products a concurrent writer got to first,
    /// for the one-by-one path.
    pub(super) async fn apply_run<'e>(
        &self,
        events: &[&'e RecordedEvent],
    ) -> Result<(Vec<DeadLetter>, Vec<&'e RecordedEvent>), SearchError> {
        let mut letters = Vec::new();
        let mut by_product: BTreeMap<Uuid, Vec<(&'e RecordedEvent, Change)>> = BTreeMap::new();
        for event in events.iter().copied() {
            let change = match event.aggregate_type.as_str() {
                "product" => match self.upcasters.decode::<ProductEvent>(event) {
                    Ok(decoded) => Some((
                        product_event_id(&decoded),
                        Change::Product(Box::new(decoded)),
                    )),
                    Err(error) => {
                        letters.push(DeadLetter::for_event(event, error.to_string()));
                        None
                    }
                },
                _ => match self.upcasters.decode::<InventoryEvent>(event) {
                    Ok(decoded) => stock_fact(&decoded)
                        .filter(StockFact::is_product_level)
                        .map(|fact| (fact.product_id, Change::Stock(fact))),
                    Err(error) => {
                        letters.push(DeadLetter::for_event(event, error.to_string()));
                        None
                    }
                },
            };
            if let Some((product_id, change)) = change {
                by_product
                    .entry(product_id)
                    .or_default()
                    .push((event, change));
            }
        }
        if by_product.is_empty() {
            return Ok((letters, Vec::new()));
        }
        let index = self.concrete_index().await?;
        let lookups = lookups_of(&index);
        let ids: Vec<String> = by_product.keys().map(Uuid::to_string).collect();
        let stock_ids: Vec<String> = ids.iter().map(|id| format!("stock:{id}")).collect();
        let documents = self.mget(&index, &ids).await?;
        let stocks = self.mget(&lookups, &stock_ids).await?;

        let mut folds: Vec<(String, Fold<'e>)> = Vec::new();
        for (((id, events), document), stock) in ids
            .iter()
            .zip(by_product.into_values())
            .zip(documents)
            .zip(stocks)
        {
            let decoded = (|| {
                let (view, attributes, versions) = match &document {
                    Some(stored) => (
                        Some(decode_stored::<ProductView>(
                            "search document",
                            id,
                            stored.source["view"].clone(),
                        )?),
                        stored.source["attributes"]
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                        unpack(stored.version),
                    ),
                    None => (None, serde_json::Map::new(), (0, 0)),
                };
                let (stock, stock_version) = match &stock {
                    Some(stored) => (
                        Some(decode_stored::<StoredStock>(
                            "stock lookup",
                            id,
                            stored.source.clone(),
                        )?),
                        stored.version,
                    ),
                    None => (None, 0),
                };
                Ok::<_, SearchError>((view, attributes, versions, stock, stock_version))
            })();
            match decoded {
                Ok((
                    view,
                    attributes,
                    (product_version, inventory_version),
                    stock,
                    stock_version,
                )) => {
                    let mut fold = Fold {
                        view,
                        attributes,
                        product_version,
                        inventory_version,
                        document_changed: false,
                        stock,
                        stock_version,
                        stock_changed: false,
                        events,
                    };
                    fold.fold();
                    folds.push((id.clone(), fold));
                }
                Err(SearchError::Undecodable(reason)) => letters.extend(
                    events
                        .iter()
                        .map(|(event, _)| DeadLetter::for_event(event, reason.clone())),
                ),
                Err(other) => return Err(other),
            }
        }

        let mut refs: Vec<String> = folds
            .iter()
            .filter(|(_, fold)| fold.document_changed)
            .filter_map(|(_, fold)| fold.view.as_ref())
            .flat_map(name_refs)
            .collect();
        refs.sort();
        refs.dedup();
        let names: HashMap<String, String> = refs
            .iter()
            .cloned()
            .zip(self.lookup_names(&refs).await?)
            .filter_map(|(key, name)| Some((key, name?)))
            .collect();

        let mut lines: Vec<JsonBody<Value>> = Vec::new();
        let mut owners: Vec<usize> = Vec::new();
        for (n, (id, fold)) in folds.iter_mut().enumerate() {
            if fold.stock_changed {
                let stock = fold.stock.as_ref().expect("a changed stock lookup exists");
                lines.push(
                    json!({ "index": {
                        "_index": lookups,
                        "_id": format!("stock:{id}"),
                        "version": fold.stock_version,
                        "version_type": "external"
                    } })
                    .into(),
                );
                lines.push(
                    serde_json::to_value(stock)
                        .expect("stock serializes")
                        .into(),
                );
                owners.push(n);
            }
            if fold.document_changed {
                if let Some(view) = &fold.view {
                    let body = document_body(view, std::mem::take(&mut fold.attributes), &names);
                    lines.push(
                        json!({ "index": {
                            "_index": index,
                            "_id": id,
                            "version": pack(fold.product_version, fold.inventory_version),
                            "version_type": "external"
                        } })
                        .into(),
                    );
                    lines.push(body.into());
                    owners.push(n);
                }
            }
        }
        if lines.is_empty() {
            return Ok((letters, Vec::new()));
        }
        let response = self.client.bulk(BulkParts::None).body(lines).send().await?;
        if response.status_code() == StatusCode::NOT_FOUND {
            self.forget_index();
            return Err(SearchError::Lost);
        }
        let outcome: Value = successful(response).await?.json().await?;
        let mut contended = vec![false; folds.len()];
        for (item, owner) in outcome["items"]
            .as_array()
            .into_iter()
            .flatten()
            .zip(owners)
        {
            let item = &item["index"];
            match item["status"].as_u64() {
                Some(200..=299) => {}
                Some(409) => contended[owner] = true,
                Some(404) => {
                    self.forget_index();
                    return Err(SearchError::Lost);
                }
                status => {
                    return Err(SearchError::Status {
                        status: StatusCode::from_u16(status.unwrap_or(500) as u16)
                            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        body: item["error"].to_string(),
                    })
                }
            }
        }
        let retried = folds
            .into_iter()
            .zip(contended)
            .filter(|(_, contended)| *contended)
            .flat_map(|((_, fold), _)| fold.events.into_iter().map(|(event, _)| event))
            .collect();
        Ok((letters, retried))
    }
}
