//! The products index against a real OpenSearch API (osmem-server): no
//! attribute a user can set breaks the mapping, every stored field is
//! declared, and a renamed category reaches every product that shows it,
//! also when the batch that renamed it is retried.

mod support;

use chrono::Utc;
use domain::catalog::{CategoryEvent, ProductEvent};
use domain::values::Slug;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use projectors::projections::product_search::ProductSearch;
use projectors::runtime::Projection;
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

struct Index {
    base: String,
    alias: String,
    client: reqwest::Client,
}

impl Index {
    fn of(h: &Harness) -> Self {
        Self {
            base: h
                .settings
                .elasticsearch
                .url
                .trim_end_matches('/')
                .to_owned(),
            alias: h.settings.elasticsearch.products_alias.clone(),
            client: reqwest::Client::new(),
        }
    }

    async fn search(&self, body: Value) -> Value {
        self.client
            .post(format!("{}/{}/_search", self.base, self.alias))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn source(&self, id: Uuid) -> Value {
        let doc: Value = self
            .client
            .get(format!("{}/{}/_doc/{id}", self.base, self.alias))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        doc["_source"].clone()
    }

    async fn refresh(&self) {
        self.client
            .post(format!("{}/{}*/_refresh", self.base, self.alias))
            .send()
            .await
            .unwrap();
    }

    async fn drop(&self) {
        let _ = self
            .client
            .delete(format!("{}/{}*", self.base, self.alias))
            .send()
            .await;
    }
}

async fn search_projection(h: &Harness) -> ProductSearch {
    let search = ProductSearch::connect(
        &h.settings.elasticsearch.url,
        &h.settings.elasticsearch.products_alias,
        Upcasters::default(),
    )
    .unwrap();
    search.reset().await.unwrap();
    search
}

/// Applies every event recorded after `seen`, and returns how many are seen.
async fn apply_new(h: &Harness, search: &ProductSearch, seen: usize) -> usize {
    let history = h.recorded().await;
    let letters = search
        .apply(&history[seen..])
        .await
        .expect("the index takes every event");
    assert!(letters.is_empty(), "{letters:?}");
    history.len()
}

fn attribute_set(product: Uuid, name: &str, value: &str) -> ProductEvent {
    ProductEvent::ProductAttributeSet {
        product_id: product,
        attribute_id: Uuid::now_v7(),
        name: name.into(),
        value: value.into(),
        sort_order: 0,
        at: Utc::now(),
    }
}

fn category_renamed(id: Uuid, name: &str) -> CategoryEvent {
    CategoryEvent::CategoryUpdated {
        category_id: id,
        name: name.into(),
        slug: Slug::parse("phones").unwrap(),
        description: None,
        image_url: None,
        meta_title: None,
        meta_description: None,
        meta_keywords: vec![],
        sort_order: 0,
        previous_slug: Slug::parse("phones").unwrap(),
        at: Utc::now(),
    }
}

#[tokio::test]
async fn attribute_names_that_break_a_dynamic_mapping_are_kept_and_filterable() {
    let h = harness().await;
    let index = Index::of(&h);
    let (_, _, products) = h.seed_catalog(2).await;
    let search = search_projection(&h).await;
    let mut seen = apply_new(&h, &search, 0).await;

    // `a` as a value, then `a.b`, which a dynamic mapping reads as an
    // object under `a`: the 400 that used to block the projection.
    let dotted = [
        attribute_set(products[0], "a", "1"),
        attribute_set(products[0], "a.b", "2"),
    ];
    h.append("product", &products[0].to_string(), 1, &dotted)
        .await;
    // More distinct names than a mapping's default field limit (1,000).
    let many: Vec<ProductEvent> = (0..1_100)
        .map(|n| attribute_set(products[1], &format!("colour-{n}"), "red"))
        .collect();
    h.append("product", &products[1].to_string(), 1, &many)
        .await;
    seen = apply_new(&h, &search, seen).await;
    assert!(seen > 1_100);
    index.refresh().await;

    assert_eq!(
        index.source(products[0]).await["attributes"],
        json!({ "a": "1", "a.b": "2" }),
        "the seed's attributes object, as set"
    );
    assert_eq!(
        index.source(products[1]).await["attributes"]
            .as_object()
            .unwrap()
            .len(),
        1_100
    );
    let filtered = index
        .search(json!({
            "query": { "nested": {
                "path": "attribute_filters",
                "query": { "bool": { "filter": [
                    { "term": { "attribute_filters.name": "a.b" } },
                    { "term": { "attribute_filters.value": "2" } }
                ] } }
            } }
        }))
        .await;
    let hits: Vec<&str> = filtered["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["_id"].as_str().unwrap())
        .collect();
    assert_eq!(hits, [products[0].to_string()]);

    // Nothing was added to the mapping by the documents: every field they
    // hold was declared when the index was created.
    let mapping: Value = index
        .client
        .get(format!("{}/{}/_mapping", index.base, index.alias))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mapping = mapping.as_object().unwrap().values().next().unwrap()["mappings"].clone();
    assert_eq!(mapping["dynamic"], "strict");
    let declared = infrastructure::views::products_index_body()["mappings"]["properties"].clone();
    assert_eq!(mapping["properties"], declared);
    index.drop().await;
}

/// What the first attempt of a batch left behind when it died right after
/// writing the category's new name to the lookups index.
async fn lookup_written_at(index: &Index, category: Uuid, version: i64, name: &str) {
    let aliased: Value = index
        .client
        .get(format!("{}/_alias/{}", index.base, index.alias))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let concrete = aliased.as_object().unwrap().keys().next().unwrap().clone();
    let response = index
        .client
        .put(format!(
            "{}/{concrete}-lookups/_doc/category:{category}?version={version}&version_type=external",
            index.base
        ))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
}

async fn products_named(index: &Index, name: &str) -> u64 {
    index.refresh().await;
    let found = index
        .search(json!({
            "size": 0,
            "track_total_hits": true,
            "query": { "match_phrase": { "category.name": name } }
        }))
        .await;
    found["hits"]["total"]["value"].as_u64().unwrap()
}

#[tokio::test]
async fn a_renamed_category_reaches_every_product_also_when_its_batch_is_retried() {
    let h = harness().await;
    let index = Index::of(&h);
    // More products than one page of the rename.
    let (category, _, products) = h.seed_catalog(1_050).await;
    let search = search_projection(&h).await;
    let mut seen = apply_new(&h, &search, 0).await;
    assert_eq!(products_named(&index, "Phones").await, 1_050);

    h.append(
        "category",
        &category.to_string(),
        1,
        &[category_renamed(category, "Mobile Phones")],
    )
    .await;
    let history: Vec<RecordedEvent> = h.recorded().await;
    let rename = history.last().unwrap().clone();
    assert_eq!(rename.version, 2);
    // The first attempt wrote the name and died before the products.
    lookup_written_at(&index, category, rename.version, "Mobile Phones").await;
    seen = apply_new(&h, &search, seen).await;
    assert_eq!(seen, history.len());

    assert_eq!(products_named(&index, "Mobile Phones").await, 1_050);
    assert_eq!(
        index.source(products[1_049]).await["category"]["name"],
        "Mobile Phones"
    );
    index.drop().await;
}

/// Every document with its version, in id order.
async fn documents(index: &Index) -> Value {
    index.refresh().await;
    let found = index
        .search(json!({ "size": 100, "version": true, "sort": [{ "id": "asc" }] }))
        .await;
    let docs: Vec<Value> = found["hits"]["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(
            |hit| json!({ "id": hit["_id"], "version": hit["_version"], "source": hit["_source"] }),
        )
        .collect();
    Value::Array(docs)
}

#[tokio::test]
async fn a_batch_folded_in_memory_indexes_what_one_event_at_a_time_indexes() {
    let h = harness().await;
    let index = Index::of(&h);
    let (category, _, products) = h.seed_catalog(3).await;
    h.append(
        "product",
        &products[0].to_string(),
        1,
        &[
            price_changed(products[0], 1000, 1500),
            attribute_set(products[0], "colour", "black"),
            attribute_set(products[0], "size", "6.1"),
        ],
    )
    .await;
    h.append(
        "inventory",
        "inventory:SKU-1",
        1,
        &[stock_initialized(products[1], "SKU-1", 3)],
    )
    .await;
    // Stock that arrives before its product, then the product.
    let late = Uuid::now_v7();
    h.append(
        "inventory",
        "inventory:LATE-1",
        0,
        &[stock_initialized(late, "LATE-1", 4)],
    )
    .await;
    h.append(
        "category",
        &category.to_string(),
        1,
        &[category_renamed(category, "Smartphones")],
    )
    .await;
    h.append(
        "product",
        &late.to_string(),
        0,
        &[
            product_created(late, "LATE-1", "late-1", Some(category), None, 700, 0),
            price_changed(late, 700, 650),
        ],
    )
    .await;
    let history = h.recorded().await;

    let reference = search_projection(&h).await.one_event_at_a_time();
    assert!(reference.apply(&history).await.unwrap().is_empty());
    let one_at_a_time = documents(&index).await;
    assert_eq!(one_at_a_time.as_array().unwrap().len(), 4);

    let search = search_projection(&h).await;
    assert!(search.apply(&history).await.unwrap().is_empty());
    assert_eq!(
        documents(&index).await,
        one_at_a_time,
        "the whole history as one batch"
    );
    // A redelivery changes nothing.
    assert!(search.apply(&history).await.unwrap().is_empty());
    assert_eq!(documents(&index).await, one_at_a_time);
    index.drop().await;
}
