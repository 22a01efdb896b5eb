//! `projectors dead-letters list|retry|discard` against a real PostgreSQL.

mod support;

use projectors::operator::dead_letters;
use projectors::runtime::{DeadLetter, DeadLetters};
use support::*;
use uuid::Uuid;

fn letter(aggregate: &str, reason: &str) -> DeadLetter {
    DeadLetter {
        event_id: Some(Uuid::now_v7()),
        aggregate_type: Some("product".into()),
        aggregate_id: Some(aggregate.into()),
        version: Some(1),
        source: "position:1".into(),
        reason: reason.into(),
        raw_message: "{}".into(),
    }
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[tokio::test]
async fn an_operator_lists_and_discards_dead_letters() {
    let h = harness().await;
    let store = DeadLetters::new(h.db.pool.clone());
    store
        .record(
            "product-search",
            &[letter("p-1", "mapper_parsing_exception")],
        )
        .await
        .unwrap();
    store
        .record(
            "product-cache",
            &[letter("p-2", "stored entry\tcannot be decoded")],
        )
        .await
        .unwrap();

    let all = dead_letters(&h.settings, &args(&["list", "--json"]))
        .await
        .unwrap();
    let listed: Vec<serde_json::Value> = serde_json::from_str(&all).unwrap();
    assert_eq!(listed.len(), 2);
    let search_id = listed[0]["id"].as_i64().unwrap();
    assert_eq!(listed[0]["projection"], "product-search");
    assert_eq!(listed[0]["reason"], "mapper_parsing_exception");

    let table = dead_letters(&h.settings, &args(&["list", "product-cache"]))
        .await
        .unwrap();
    assert_eq!(
        table.lines().count(),
        2,
        "a header and one letter:\n{table}"
    );
    assert!(table.contains("product/p-2"), "{table}");
    assert!(
        table.contains("stored entry cannot be decoded"),
        "tabs folded: {table}"
    );

    let out = dead_letters(
        &h.settings,
        &args(&["discard", &search_id.to_string(), "999999"]),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "discarded 1 dead letter(s); no dead letter with id [999999]"
    );
    let left = dead_letters(&h.settings, &args(&["list", "--json"]))
        .await
        .unwrap();
    let left: Vec<serde_json::Value> = serde_json::from_str(&left).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["projection"], "product-cache");

    assert!(dead_letters(&h.settings, &args(&["discard", "x"]))
        .await
        .is_err());
    assert!(dead_letters(&h.settings, &args(&["discard"]))
        .await
        .is_err());
    assert!(dead_letters(&h.settings, &args(&["retry"])).await.is_err());
}

/// `retry` re-drives a dead-lettered aggregate from the event store once its
/// cause is gone, clears its letters, and leaves the read model as a fresh
/// rebuild would; a letter whose event still does not apply is kept.
#[tokio::test]
async fn an_operator_retries_dead_letters_once_their_cause_is_fixed() {
    use infrastructure::event_store::aggregates::Upcasters;
    use projectors::projections::catalog_tables::{self, CatalogTables};
    use projectors::runtime::{Projection, WorkerStats};

    let h = harness().await;
    let (category, brand, products) = h.seed_catalog(2).await;
    let held = products[0];
    h.append(
        "product",
        &held.to_string(),
        1,
        &[price_changed(held, 1000, 1500)],
    )
    .await;
    let events = h.recorded().await;
    let tables = CatalogTables::new(h.db.pool.clone(), Upcasters::default());
    let (dead, live): (Vec<_>, Vec<_>) = events
        .iter()
        .cloned()
        .partition(|e| e.aggregate_id == held.to_string());
    assert!(tables.apply(&live).await.unwrap().is_empty());
    // Refused by a fault since fixed: the product and its price change.
    let store = DeadLetters::new(h.db.pool.clone());
    let letters: Vec<DeadLetter> = dead
        .iter()
        .map(|e| DeadLetter::for_event(e, "refused by a fault since fixed"))
        .collect();
    store.record(catalog_tables::NAME, &letters).await.unwrap();
    let listed: Vec<serde_json::Value> = serde_json::from_str(
        &dead_letters(&h.settings, &args(&["list", "--json"]))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(listed.len(), 2);
    let head = listed[0]["id"].as_i64().unwrap();

    let out = dead_letters(&h.settings, &args(&["retry", &head.to_string()]))
        .await
        .unwrap();
    assert!(out.contains("applied"), "{out}");
    assert_eq!(
        dead_letters(&h.settings, &args(&["list"])).await.unwrap(),
        "no dead letters",
        "the follower's letter went with the head's"
    );
    let price: Option<String> =
        sqlx::query_scalar("SELECT regular_price::text FROM read_model.products WHERE id = $1")
            .bind(held)
            .fetch_optional(&h.db.pool)
            .await
            .unwrap();
    assert_eq!(price.as_deref(), Some("1500.00"));
    let retried = dump_catalog(&h.db.pool).await;
    projectors::runtime::rebuild::rebuild(
        &tables,
        &h.store,
        &store,
        &worker_options(),
        &WorkerStats::new(),
    )
    .await
    .unwrap();
    assert_eq!(dump_catalog(&h.db.pool).await, retried);

    // A product whose sku another product holds still cannot apply.
    let clash = uuid::Uuid::now_v7();
    h.append(
        "product",
        &clash.to_string(),
        0,
        &[product_created(
            clash,
            "SKU-1",
            "clash",
            Some(category),
            Some(brand),
            700,
            1,
        )],
    )
    .await;
    let last = h.recorded().await.pop().unwrap();
    let refused = tables.apply(std::slice::from_ref(&last)).await.unwrap();
    assert_eq!(refused.len(), 1);
    let listed: Vec<serde_json::Value> = serde_json::from_str(
        &dead_letters(&h.settings, &args(&["list", "--json"]))
            .await
            .unwrap(),
    )
    .unwrap();
    let id = listed[0]["id"].as_i64().unwrap();
    let out = dead_letters(&h.settings, &args(&["retry", &id.to_string()]))
        .await
        .unwrap();
    assert!(out.contains("still refused"), "{out}");
    assert_eq!(
        dead_letters(&h.settings, &args(&["list", "--json"]))
            .await
            .map(|l| serde_json::from_str::<Vec<serde_json::Value>>(&l)
                .unwrap()
                .len())
            .unwrap(),
        1,
        "kept"
    );
}
