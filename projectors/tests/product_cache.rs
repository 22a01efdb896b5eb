//! The Redis product cache on a real Redis: the keys one write touches share a
//! cluster slot, a cache built on an earlier run of the server (which a
//! restart from an older snapshot may have rolled back) or with an older
//! entry layout is not trusted, and a variant's stock reaches its entry
//! whatever the order of arrival.

mod support;

use domain::catalog::ProductEvent;
use domain::inventory::InventoryEvent;
use domain::values::{Price, Sku};
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::views::product_cache_key;
use projectors::projections::product_cache::ProductCache;
use projectors::runtime::Projection;
use redis::AsyncCommands;
use support::*;

/// Redis Cluster's slot of `key`: CRC16 (XMODEM) of its hash tag, the part
/// between the first `{` and the next `}` when that is not empty, or else of
/// the whole key.
fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match key.find('{') {
        Some(open) => match key[open + 1..].find('}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    let mut crc: u16 = 0;
    for byte in hashed {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[test]
fn the_slot_function_agrees_with_redis() {
    // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    assert_eq!(slot("123456789"), 12739);
    assert_eq!(slot("foo"), 12182);
    assert_eq!(slot("{user1000}.following"), slot("user1000"));
}

async fn built_cache(h: &Harness) -> ProductCache {
    let cache = ProductCache::connect(
        &h.settings.redis.url,
        &h.settings.redis.key_prefix,
        Upcasters::default(),
    )
    .await
    .expect("redis answers");
    cache.reset().await.unwrap();
    let mut history = h.recorded().await;
    history.retain(|e| cache.aggregate_types().contains(&e.aggregate_type.as_str()));
    assert!(cache.apply(&history).await.unwrap().is_empty());
    cache.mark_rebuilt().await.unwrap();
    cache
}

async fn clean(h: &Harness) {
    let mut redis = h.redis().await;
    let keys: Vec<String> = redis
        .keys(format!("{}*", h.settings.redis.key_prefix))
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis.del(keys).await.unwrap();
    }
}

#[tokio::test]
async fn every_key_written_for_a_product_shares_the_slot_of_its_entry() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(3).await;
    let _cache = built_cache(&h).await;
    let prefix = &h.settings.redis.key_prefix;
    let mut redis = h.redis().await;
    for id in &products {
        let entry = product_cache_key(prefix, *id);
        assert_eq!(entry, format!("{prefix}product:{id}"), "the seed's key");
        let keys: Vec<String> = redis.keys(format!("{prefix}*{id}*")).await.unwrap();
        // The entry, its stream's version, the stock stream's version and
        // the early stock.
        assert!(keys.len() >= 3, "{keys:?}");
        for key in keys {
            assert_eq!(slot(&key), slot(&entry), "{key} beside {entry}");
        }
    }
    clean(&h).await;
}

#[tokio::test]
async fn a_cache_built_on_an_earlier_run_of_the_server_is_rebuilt() {
    let h = harness().await;
    h.seed_catalog(1).await;
    let cache = built_cache(&h).await;
    assert!(cache.is_intact().await.unwrap(), "built on this run");

    // What a server restarted from a snapshot holds: the marker of the run
    // that took the snapshot.
    let marker = format!(
        "{}projection:product-cache:initialized",
        h.settings.redis.key_prefix
    );
    let mut redis = h.redis().await;
    let _: () = redis
        .set(&marker, "0123456789abcdef0123456789abcdef01234567")
        .await
        .unwrap();
    assert!(
        !cache.is_intact().await.unwrap(),
        "a marker of another run calls for a rebuild"
    );

    cache.mark_rebuilt().await.unwrap();
    assert!(cache.is_intact().await.unwrap());
    clean(&h).await;
}

/// Every product entry, without the time it was cached at, by key.
async fn entries(h: &Harness) -> serde_json::Map<String, serde_json::Value> {
    let mut redis = h.redis().await;
    let mut keys: Vec<String> = redis
        .keys(format!("{}product:*", h.settings.redis.key_prefix))
        .await
        .unwrap();
    keys.sort();
    let mut entries = serde_json::Map::new();
    for key in keys {
        let json: String = redis.get(&key).await.unwrap();
        let mut entry: serde_json::Value = serde_json::from_str(&json).unwrap();
        entry.as_object_mut().unwrap().remove("cachedAt");
        entries.insert(key, entry);
    }
    entries
}

#[tokio::test]
async fn a_batch_folded_in_memory_caches_what_one_event_at_a_time_caches() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(3).await;
    h.append(
        "product",
        &products[0].to_string(),
        1,
        &[
            price_changed(products[0], 1000, 1500),
            price_changed(products[0], 1500, 1400),
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
    let late = uuid::Uuid::now_v7();
    h.append(
        "inventory",
        "inventory:LATE-1",
        0,
        &[stock_initialized(late, "LATE-1", 4)],
    )
    .await;
    h.append(
        "product",
        &late.to_string(),
        0,
        &[product_created(
            late, "LATE-1", "late-1", None, None, 700, 0,
        )],
    )
    .await;
    // What the cache's topics carry.
    let history: Vec<_> = h
        .recorded()
        .await
        .into_iter()
        .filter(|e| matches!(e.aggregate_type.as_str(), "product" | "inventory"))
        .collect();
    let connect = || {
        ProductCache::connect(
            &h.settings.redis.url,
            &h.settings.redis.key_prefix,
            Upcasters::default(),
        )
    };

    let reference = connect().await.unwrap().one_event_at_a_time();
    reference.reset().await.unwrap();
    assert!(reference.apply(&history).await.unwrap().is_empty());
    let one_at_a_time = entries(&h).await;
    assert_eq!(one_at_a_time.len(), 4);
    assert_eq!(
        one_at_a_time[&product_cache_key(&h.settings.redis.key_prefix, late)]["stock"],
        4,
        "early stock reaches the product"
    );

    let cache = connect().await.unwrap();
    cache.reset().await.unwrap();
    assert!(cache.apply(&history).await.unwrap().is_empty());
    assert_eq!(
        entries(&h).await,
        one_at_a_time,
        "the whole history as one batch"
    );
    // A redelivery, and an older part of it, change nothing.
    assert!(cache.apply(&history).await.unwrap().is_empty());
    assert!(cache.apply(&history[..4]).await.unwrap().is_empty());
    assert_eq!(entries(&h).await, one_at_a_time);
    clean(&h).await;
}

#[tokio::test]
async fn a_cache_of_an_older_entry_layout_is_rebuilt() {
    let h = harness().await;
    h.seed_catalog(1).await;
    let cache = built_cache(&h).await;
    // What the cache wrote before entries held the product's rows: the
    // server's run alone.
    let mut redis = h.redis().await;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut redis)
        .await
        .unwrap();
    let run_id = info
        .lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .unwrap()
        .trim()
        .to_owned();
    let marker = format!(
        "{}projection:product-cache:initialized",
        h.settings.redis.key_prefix
    );
    let _: () = redis.set(&marker, &run_id).await.unwrap();
    assert!(
        !cache.is_intact().await.unwrap(),
        "entries of the older layout lack the product's rows"
    );
    clean(&h).await;
}

fn variant_added(product: uuid::Uuid, variant: uuid::Uuid, sku: &str, stock: i32) -> ProductEvent {
    ProductEvent::ProductVariantAdded {
        product_id: product,
        variant_id: variant,
        sku: Sku::parse(sku).unwrap(),
        name: Some(sku.to_owned()),
        price: Price::new(rust_decimal::Decimal::new(1000, 2)).unwrap(),
        stock_quantity: stock,
        attributes: [("color".to_owned(), sku.to_owned())].into(),
        is_active: true,
        at: chrono::Utc::now(),
    }
}

fn variant_stock_adjusted(
    product: uuid::Uuid,
    variant: uuid::Uuid,
    sku: &str,
    previous: i64,
    available: i64,
) -> InventoryEvent {
    InventoryEvent::StockAdjusted {
        sku: Sku::parse(sku).unwrap(),
        product_id: product,
        variant_id: Some(variant),
        delta: i32::try_from(available - previous).unwrap(),
        reason: domain::inventory::StockAdjustmentReason::Restock,
        note: None,
        previous_available: previous,
        available,
        at: chrono::Utc::now(),
    }
}

/// Variants' stock travels on the inventory topic, apart from the variant:
/// whichever comes first, the entry ends with the latest level, on the
/// one-by-one path and in a batch alike.
#[tokio::test]
async fn a_variants_stock_reaches_its_entry_whichever_arrives_first() {
    let h = harness().await;
    let product = uuid::Uuid::now_v7();
    let (early, late) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    h.append(
        "product",
        &product.to_string(),
        0,
        &[product_created(
            product, "VAR-P", "var-p", None, None, 100, 3,
        )],
    )
    .await;
    // The early variant's stock moves before the variant itself is known.
    let mut early_stock = stock_initialized(product, "VAR-EARLY", 4);
    if let InventoryEvent::StockInitialized { variant_id, .. } = &mut early_stock {
        *variant_id = Some(early);
    }
    h.append(
        "inventory",
        "inventory:VAR-EARLY",
        0,
        &[
            early_stock,
            variant_stock_adjusted(product, early, "VAR-EARLY", 4, 9),
        ],
    )
    .await;
    h.append(
        "product",
        &product.to_string(),
        1,
        &[
            variant_added(product, early, "VAR-EARLY", 4),
            variant_added(product, late, "VAR-LATE", 2),
        ],
    )
    .await;
    // The late variant's stock moves after it is cached.
    h.append(
        "inventory",
        "inventory:VAR-LATE",
        0,
        &[variant_stock_adjusted(product, late, "VAR-LATE", 2, 5)],
    )
    .await;
    let history: Vec<_> = h
        .recorded()
        .await
        .into_iter()
        .filter(|e| matches!(e.aggregate_type.as_str(), "product" | "inventory"))
        .collect();
    let connect = || {
        ProductCache::connect(
            &h.settings.redis.url,
            &h.settings.redis.key_prefix,
            Upcasters::default(),
        )
    };
    let key = product_cache_key(&h.settings.redis.key_prefix, product);
    let stock_of = |entries: &serde_json::Map<String, serde_json::Value>| -> Vec<(String, i64)> {
        entries[&key]["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["sku"].as_str().unwrap().to_owned(),
                    v["stock_quantity"].as_i64().unwrap(),
                )
            })
            .collect()
    };

    let reference = connect().await.unwrap().one_event_at_a_time();
    reference.reset().await.unwrap();
    assert!(reference.apply(&history).await.unwrap().is_empty());
    let one_at_a_time = entries(&h).await;
    assert_eq!(
        stock_of(&one_at_a_time),
        [("VAR-EARLY".to_owned(), 9), ("VAR-LATE".to_owned(), 5)]
    );
    assert_eq!(one_at_a_time[&key]["stock"], 3, "the product's own stock");

    let batched = connect().await.unwrap();
    batched.reset().await.unwrap();
    assert!(batched.apply(&history).await.unwrap().is_empty());
    assert_eq!(entries(&h).await, one_at_a_time);
    clean(&h).await;
}
