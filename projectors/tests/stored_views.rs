//! A stored document that no longer decodes (the Redis cache entry, the
//! search document) is reported: the event that would fold onto it is
//! dead-lettered and the entry left as it was, never treated as absent, which
//! dropped the event silently. Fed directly, against real Redis and osmem.

mod support;

use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::views::product_cache_key;
use projectors::projections::product_cache::ProductCache;
use projectors::projections::product_search::ProductSearch;
use projectors::runtime::Projection;
use redis::AsyncCommands;
use support::*;

/// Reprices `product` and applies only that event: it must come back as a
/// dead letter saying the stored view cannot be decoded.
async fn reprice_is_dead_lettered(h: &Harness, product: uuid::Uuid, projection: &dyn Projection) {
    h.append(
        "product",
        &product.to_string(),
        1,
        &[price_changed(product, 1000, 990)],
    )
    .await;
    let change = h.recorded().await.pop().unwrap();
    let letters = projection
        .apply(std::slice::from_ref(&change))
        .await
        .unwrap();

    assert_eq!(letters.len(), 1, "reported, not dropped");
    assert_eq!(letters[0].event_id, Some(change.event_id));
    assert!(
        letters[0].reason.contains("cannot be decoded"),
        "{}",
        letters[0].reason
    );
}

#[tokio::test]
async fn a_cache_entry_that_does_not_decode_dead_letters_the_event_folding_onto_it() {
    let h = harness().await;
    let prefix = h.settings.redis.key_prefix.clone();
    let (_, _, products) = h.seed_catalog(1).await;
    let cache = ProductCache::connect(&h.settings.redis.url, &prefix, Upcasters::default())
        .await
        .expect("redis answers");
    let mut history = h.recorded().await;
    history.retain(|e| cache.aggregate_types().contains(&e.aggregate_type.as_str()));
    assert!(cache.apply(&history).await.unwrap().is_empty());

    let mut redis = redis::Client::open(h.settings.redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = product_cache_key(&prefix, products[0]);
    let _: () = redis
        .set(&key, "{\"not\": \"a cached product\"}")
        .await
        .unwrap();

    reprice_is_dead_lettered(&h, products[0], &cache).await;
    let stored: String = redis.get(&key).await.unwrap();
    assert_eq!(
        stored, "{\"not\": \"a cached product\"}",
        "left for the operator"
    );
    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    let _: () = redis.del(keys).await.unwrap();
}

#[tokio::test]
async fn a_search_document_that_does_not_decode_dead_letters_the_event_folding_onto_it() {
    let h = harness().await;
    let alias = h.settings.elasticsearch.products_alias.clone();
    let (_, _, products) = h.seed_catalog(1).await;
    let search =
        ProductSearch::connect(&h.settings.elasticsearch.url, &alias, Upcasters::default())
            .unwrap();
    search.reset().await.unwrap();
    assert!(search.apply(&h.recorded().await).await.unwrap().is_empty());

    let client = reqwest::Client::new();
    let update = client
        .post(format!(
            "http://127.0.0.1:9200/{alias}/_update/{}?refresh=true",
            products[0]
        ))
        .json(&serde_json::json!({ "doc": { "view": { "id": "not-a-uuid" } } }))
        .send()
        .await
        .unwrap();
    assert!(update.status().is_success(), "{:?}", update.text().await);

    reprice_is_dead_lettered(&h, products[0], &search).await;
    let _ = client
        .delete(format!("http://127.0.0.1:9200/{alias}*"))
        .send()
        .await;
}
