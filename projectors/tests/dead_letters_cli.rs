//! `projectors dead-letters list|discard` against a real PostgreSQL.

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
