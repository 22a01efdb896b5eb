//! The relational catalog projection against real PostgreSQL, fed directly
//! (no Kafka): idempotence, foreign keys across out-of-order aggregates, slug
//! hand-over, and dead letters.

mod support;

use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use projectors::projections::catalog_tables::CatalogTables;
use projectors::runtime::Projection;
use support::*;
use uuid::Uuid;

async fn product_row(pool: &sqlx::PgPool, id: Uuid) -> Option<(String, String, Option<Uuid>, i32)> {
    sqlx::query_as(
        "SELECT sku, regular_price::text, category_id, stock_quantity FROM read_model.products WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// A category, a product in it (created, then repriced) and its stock, with
/// the category's events apart from the others: the partitions of the
/// product and the stock may run ahead of the category's.
async fn a_product_and_its_stock_before_their_category(
    h: &Harness,
) -> (Uuid, Uuid, Vec<RecordedEvent>, Vec<RecordedEvent>) {
    let category = Uuid::now_v7();
    let product = Uuid::now_v7();
    h.append(
        "category",
        &category.to_string(),
        0,
        &[category_created(category, "Phones", "phones")],
    )
    .await;
    h.append(
        "product",
        &product.to_string(),
        0,
        &[
            product_created(
                product,
                "IPH-15",
                "iphone-15",
                Some(category),
                None,
                35900,
                45,
            ),
            price_changed(product, 35900, 34900),
        ],
    )
    .await;
    h.append(
        "inventory",
        "inventory:IPH-15",
        0,
        &[stock_initialized(product, "IPH-15", 45)],
    )
    .await;
    let (category_events, others) = h
        .recorded()
        .await
        .into_iter()
        .partition(|e| e.aggregate_type == "category");
    (category, product, category_events, others)
}

#[tokio::test]
async fn applies_catalog_events_once_even_when_redelivered() {
    let h = harness().await;
    let (category, _, products) = h.seed_catalog(2).await;
    h.append(
        "product",
        &products[0].to_string(),
        1,
        &[price_changed(products[0], 1000, 1250)],
    )
    .await;
    let projection = CatalogTables::new(h.db.pool.clone(), Upcasters::default());
    let events = h.recorded().await;
    assert!(projection.apply(&events).await.unwrap().is_empty());
    let first = dump_catalog(&h.db.pool).await;
    // Redelivery of everything, and of an older prefix, changes nothing.
    projection.apply(&events).await.unwrap();
    projection.apply(&events[..3]).await.unwrap();
    assert_eq!(dump_catalog(&h.db.pool).await, first);
    let row = product_row(&h.db.pool, products[0]).await.unwrap();
    assert_eq!(
        row,
        ("SKU-0".to_owned(), "1250.00".to_owned(), Some(category), 10)
    );
}

#[tokio::test]
async fn a_product_seen_before_its_category_waits_for_it_and_keeps_its_order() {
    let h = harness().await;
    let (category, product, category_events, others) =
        a_product_and_its_stock_before_their_category(&h).await;
    let projection = CatalogTables::new(h.db.pool.clone(), Upcasters::default());

    // The product's partition and the stock's partition run ahead of the category's.
    projection.apply(&others).await.unwrap();
    assert!(
        product_row(&h.db.pool, product).await.is_none(),
        "held back, not inserted without its category"
    );
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM read_model.parked_events")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(parked, 3, "the product's two events and the stock wait");

    projection.apply(&category_events).await.unwrap();
    let row = product_row(&h.db.pool, product)
        .await
        .expect("released once the category exists");
    assert_eq!(
        row,
        (
            "IPH-15".to_owned(),
            "34900.00".to_owned(),
            Some(category),
            45
        )
    );
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM read_model.parked_events")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(parked, 0);
}

#[tokio::test]
async fn a_slug_freed_by_a_rename_not_yet_projected_is_waited_for() {
    let h = harness().await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    h.append(
        "product",
        &first.to_string(),
        0,
        &[product_created(
            first,
            "A-1",
            "shared-slug",
            None,
            None,
            100,
            1,
        )],
    )
    .await;
    let projection = CatalogTables::new(h.db.pool.clone(), Upcasters::default());
    projection.apply(&h.recorded().await).await.unwrap();

    // The first product renames its slug, then the second takes the old one.
    let rename = {
        let mut details = match product_created(first, "A-1", "shared-slug", None, None, 100, 1) {
            domain::catalog::ProductEvent::ProductCreated { name, .. } => name,
            _ => unreachable!(),
        };
        details.push_str(" renamed");
        domain::catalog::ProductEvent::ProductDetailsUpdated {
            product_id: first,
            details: domain::catalog::ProductDetails {
                name: details,
                slug: domain::values::Slug::parse("new-slug").unwrap(),
                description: None,
                short_description: None,
                category_id: None,
                brand_id: None,
                weight: None,
                length: None,
                width: None,
                height: None,
                meta_title: None,
                meta_description: None,
                meta_keywords: vec![],
            },
            previous_slug: domain::values::Slug::parse("shared-slug").unwrap(),
            at: chrono::Utc::now(),
        }
    };
    h.append("product", &first.to_string(), 1, &[rename]).await;
    h.append(
        "product",
        &second.to_string(),
        0,
        &[product_created(
            second,
            "B-1",
            "shared-slug",
            None,
            None,
            200,
            1,
        )],
    )
    .await;
    let recorded = h.recorded().await;
    let rename_event = recorded
        .iter()
        .find(|e| e.event_type == "ProductDetailsUpdated")
        .unwrap()
        .clone();
    let second_created = recorded
        .iter()
        .find(|e| e.aggregate_id == second.to_string())
        .unwrap()
        .clone();

    // The second product's partition is ahead: its slug is still taken.
    assert!(projection
        .apply(std::slice::from_ref(&second_created))
        .await
        .unwrap()
        .is_empty());
    assert!(product_row(&h.db.pool, second).await.is_none());
    projection.apply(&[rename_event]).await.unwrap();
    assert!(
        product_row(&h.db.pool, second).await.is_some(),
        "released when the slug was freed"
    );
}

#[tokio::test]
async fn an_event_that_can_never_apply_is_dead_lettered_and_does_not_block_its_stream() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(1).await;
    h.append(
        "product",
        &products[0].to_string(),
        1,
        &[price_changed(products[0], 1000, 1100)],
    )
    .await;
    let mut events = h.recorded().await;
    let price_change = events
        .iter_mut()
        .find(|e| e.event_type == "ProductPriceChanged")
        .unwrap();
    // A payload that breaks the event's schema (a negative price).
    price_change.payload["ProductPriceChanged"]["regular_price"] = serde_json::json!("-5");
    let projection = CatalogTables::new(h.db.pool.clone(), Upcasters::default());
    let letters = projection.apply(&events).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event_id, Some(price_change_id(&events)));
    assert!(
        letters[0].reason.contains("invalid money amount: -5"),
        "{}",
        letters[0].reason
    );
    let row = product_row(&h.db.pool, products[0]).await.unwrap();
    assert_eq!(row.1, "1000.00", "the bad event changed nothing");
}

fn price_change_id(events: &[infrastructure::event_store::RecordedEvent]) -> Uuid {
    events
        .iter()
        .find(|e| e.event_type == "ProductPriceChanged")
        .unwrap()
        .event_id
}

async fn dead_letters_of(pool: &sqlx::PgPool, event_id: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM read_model.dead_letters WHERE projection = 'catalog-tables' AND event_id = $1",
    )
    .bind(event_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_dead_letter_commits_with_the_batch_and_is_recorded_once() {
    let h = harness().await;
    let (_, _, products) = h.seed_catalog(1).await;
    h.append(
        "product",
        &products[0].to_string(),
        1,
        &[price_changed(products[0], 1000, 1100)],
    )
    .await;
    let mut events = h.recorded().await;
    let bad = events
        .iter_mut()
        .find(|e| e.event_type == "ProductPriceChanged")
        .unwrap();
    bad.payload["ProductPriceChanged"]["regular_price"] = serde_json::json!("-5");
    let bad_id = bad.event_id;
    let projection = CatalogTables::new(h.db.pool.clone(), Upcasters::default());

    projection.apply(&events).await.unwrap();
    // Stored by the projection's own transaction, not left to the caller
    // after the commit, where a crash would lose it.
    assert_eq!(dead_letters_of(&h.db.pool, bad_id).await, 1);

    // A rebuild dead-letters it again, and the worker records what apply
    // returned once more: still one record.
    projection.reset().await.unwrap();
    let letters = projection.apply(&events).await.unwrap();
    assert_eq!(letters.len(), 1);
    projectors::runtime::DeadLetters::new(h.db.pool.clone())
        .record("catalog-tables", &[letters[0].clone(), letters[0].clone()])
        .await
        .unwrap();
    assert_eq!(dead_letters_of(&h.db.pool, bad_id).await, 1);
}

#[tokio::test]
async fn an_sku_conflict_is_dead_lettered_rather_than_parked() {
    let h = harness().await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    for (id, slug) in [(first, "first-phone"), (second, "second-phone")] {
        h.append(
            "product",
            &id.to_string(),
            0,
            &[product_created(id, "SAME-SKU", slug, None, None, 1000, 1)],
        )
        .await;
    }
    let projection = CatalogTables::new(h.db.pool.clone(), Upcasters::default());
    let letters = projection.apply(&h.recorded().await).await.unwrap();

    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM read_model.parked_events")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(parked, 0, "a taken SKU is never freed by waiting");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].aggregate_id, Some(second.to_string()));
    assert!(letters[0].reason.contains("sku"), "{}", letters[0].reason);
}

async fn parked_count(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM read_model.parked_events")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_children_of_a_dead_lettered_parent_are_dead_lettered_with_it() {
    let h = harness().await;
    let (category, product, mut category_events, others) =
        a_product_and_its_stock_before_their_category(&h).await;
    let projection = CatalogTables::new(h.db.pool.clone(), Upcasters::default());
    projection.apply(&others).await.unwrap();
    assert_eq!(
        parked_count(&h.db.pool).await,
        3,
        "they wait for the category"
    );

    // The category's creation can never apply: what waits for it never could.
    category_events[0].payload["CategoryCreated"]["slug"] = serde_json::json!("");
    let letters = projection.apply(&category_events).await.unwrap();

    assert_eq!(parked_count(&h.db.pool).await, 0, "nothing waits forever");
    assert_eq!(letters.len(), 4, "{letters:?}");
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM read_model.dead_letters")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 4);
    assert!(letters
        .iter()
        .filter(|l| l.aggregate_id.as_deref() != Some(category.to_string().as_str()))
        .all(|l| l.reason.starts_with("waits on an event dead-lettered")));
    assert!(product_row(&h.db.pool, product).await.is_none());
}

#[tokio::test]
async fn an_event_parked_past_its_maximum_age_is_dead_lettered_with_its_queue() {
    let h = harness().await;
    let product = Uuid::now_v7();
    let missing_category = Uuid::now_v7();
    h.append(
        "product",
        &product.to_string(),
        0,
        &[
            product_created(product, "P-1", "p-1", Some(missing_category), None, 1000, 1),
            price_changed(product, 1000, 900),
        ],
    )
    .await;
    let projection = CatalogTables::new(h.db.pool.clone(), Upcasters::default())
        .with_parked_max_age(std::time::Duration::from_secs(600));
    projection.apply(&h.recorded().await).await.unwrap();
    assert_eq!(parked_count(&h.db.pool).await, 2);

    // Younger than the bound: still waiting.
    assert!(projection.apply(&[]).await.unwrap().is_empty());
    assert_eq!(parked_count(&h.db.pool).await, 2);

    sqlx::query("UPDATE read_model.parked_events SET parked_at = now() - interval '11 minutes'")
        .execute(&h.db.pool)
        .await
        .unwrap();
    let letters = projection.apply(&[]).await.unwrap();
    assert_eq!(parked_count(&h.db.pool).await, 0);
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(
        letters[0]
            .reason
            .contains(&format!("waiting for category:{missing_category}")),
        "{}",
        letters[0].reason
    );
    assert_eq!(letters[1].version, Some(2));
}
