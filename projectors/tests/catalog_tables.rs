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

/// A catalog history that touches every column group and child table: a
/// category tree renamed and moved, a brand renamed and switched off and on,
/// a product stored before the batch and one created in it, with details,
/// prices, status, featuring, images, attributes, variants and stock for
/// both the product and a variant.
async fn a_catalog_history_touching_every_column(h: &Harness) -> Vec<RecordedEvent> {
    use chrono::Utc;
    use domain::catalog::product::{ProductDetails, ProductImagePosition};
    use domain::catalog::{BrandEvent, CategoryEvent, ProductEvent, ProductStatus};
    use domain::inventory::{InventoryEvent, StockAdjustmentReason};
    use domain::values::{Money, Price, Sku, Slug, Url};
    use rust_decimal::Decimal;

    let root = Uuid::now_v7();
    let child = Uuid::now_v7();
    let brand = Uuid::now_v7();
    let stored = Uuid::now_v7();
    let fresh = Uuid::now_v7();
    let variant = Uuid::now_v7();
    let (image_a, image_b) = (Uuid::now_v7(), Uuid::now_v7());
    let (size, colour) = (Uuid::now_v7(), Uuid::now_v7());
    let price = |baht: i64| Price::new(Decimal::new(baht * 100 + 50, 2)).unwrap();
    let url = |path: &str| Url::parse(&format!("https://cdn.example.com/{path}")).unwrap();
    let sku = |raw: &str| Sku::parse(raw).unwrap();

    h.append(
        "category",
        &root.to_string(),
        0,
        &[category_created(root, "Phones", "phones")],
    )
    .await;
    h.append(
        "brand",
        &brand.to_string(),
        0,
        &[brand_created(brand, "Apple", "apple")],
    )
    .await;
    h.append(
        "product",
        &stored.to_string(),
        0,
        &[product_created(
            stored,
            "STORED-1",
            "stored-1",
            Some(root),
            Some(brand),
            900,
            3,
        )],
    )
    .await;
    let mut child_created = category_created(child, "Cases", "cases");
    if let CategoryEvent::CategoryCreated { parent_id, .. } = &mut child_created {
        *parent_id = Some(root);
    }
    h.append(
        "category",
        &child.to_string(),
        0,
        &[
            child_created,
            CategoryEvent::CategoryUpdated {
                category_id: child,
                name: "Phone cases".into(),
                slug: Slug::parse("phone-cases").unwrap(),
                description: Some("Cases".into()),
                image_url: Some(url("cases.png")),
                meta_title: Some("Cases".into()),
                meta_description: None,
                meta_keywords: vec!["case".into(), "cover".into()],
                sort_order: 3,
                previous_slug: Slug::parse("cases").unwrap(),
                at: Utc::now(),
            },
            CategoryEvent::CategoryMoved {
                category_id: child,
                previous_parent_id: Some(root),
                parent_id: None,
                at: Utc::now(),
            },
        ],
    )
    .await;
    h.append(
        "category",
        &root.to_string(),
        1,
        &[
            CategoryEvent::CategoryDeactivated {
                category_id: root,
                at: Utc::now(),
            },
            CategoryEvent::CategoryUpdated {
                category_id: root,
                name: "Mobile phones".into(),
                slug: Slug::parse("mobile-phones").unwrap(),
                description: None,
                image_url: None,
                meta_title: None,
                meta_description: Some("All phones".into()),
                meta_keywords: vec![],
                sort_order: 1,
                previous_slug: Slug::parse("phones").unwrap(),
                at: Utc::now(),
            },
        ],
    )
    .await;
    h.append(
        "brand",
        &brand.to_string(),
        1,
        &[
            BrandEvent::BrandUpdated {
                brand_id: brand,
                name: "Apple Inc.".into(),
                slug: Slug::parse("apple-inc").unwrap(),
                description: Some("Cupertino".into()),
                logo_url: Some(url("apple.svg")),
                website_url: Some(url("")),
                previous_slug: Slug::parse("apple").unwrap(),
                at: Utc::now(),
            },
            BrandEvent::BrandDeactivated {
                brand_id: brand,
                at: Utc::now(),
            },
            BrandEvent::BrandActivated {
                brand_id: brand,
                at: Utc::now(),
            },
        ],
    )
    .await;
    let details = |name: &str, slug: &str, category: Uuid| ProductDetails {
        name: name.into(),
        slug: Slug::parse(slug).unwrap(),
        description: None,
        short_description: Some("Short".into()),
        category_id: Some(category),
        brand_id: None,
        weight: None,
        length: None,
        width: None,
        height: None,
        meta_title: Some(name.into()),
        meta_description: None,
        meta_keywords: vec!["new".into()],
    };
    h.append(
        "product",
        &stored.to_string(),
        1,
        &[
            ProductEvent::ProductDetailsUpdated {
                product_id: stored,
                details: details("Stored phone", "stored-phone", child),
                previous_slug: Slug::parse("stored-1").unwrap(),
                at: Utc::now(),
            },
            ProductEvent::ProductPriceChanged {
                product_id: stored,
                previous_regular_price: price(900),
                previous_sale_price: None,
                regular_price: price(950),
                sale_price: Some(price(899)),
                cost_price: Some(Money::new(Decimal::new(50000, 2)).unwrap()),
                at: Utc::now(),
            },
            ProductEvent::ProductStatusChanged {
                product_id: stored,
                previous_status: ProductStatus::Draft,
                status: ProductStatus::Active,
                published_at: Some(Utc::now()),
                featured: true,
                at: Utc::now(),
            },
            ProductEvent::ProductUnfeatured {
                product_id: stored,
                at: Utc::now(),
            },
        ],
    )
    .await;
    h.append(
        "product",
        &fresh.to_string(),
        0,
        &[
            product_created(
                fresh,
                "FRESH-1",
                "fresh-1",
                Some(child),
                Some(brand),
                1200,
                7,
            ),
            ProductEvent::ProductPriceChanged {
                product_id: fresh,
                previous_regular_price: price(1200),
                previous_sale_price: None,
                regular_price: price(1100),
                sale_price: None,
                cost_price: None,
                at: Utc::now(),
            },
            ProductEvent::ProductStatusChanged {
                product_id: fresh,
                previous_status: ProductStatus::Draft,
                status: ProductStatus::Active,
                published_at: Some(Utc::now()),
                featured: false,
                at: Utc::now(),
            },
            ProductEvent::ProductFeatured {
                product_id: fresh,
                at: Utc::now(),
            },
            ProductEvent::ProductImageAdded {
                product_id: fresh,
                image_id: image_a,
                url: url("a.jpg"),
                alt_text: Some("Front".into()),
                sort_order: 0,
                is_primary: true,
                at: Utc::now(),
            },
            ProductEvent::ProductImageAdded {
                product_id: fresh,
                image_id: image_b,
                url: url("b.jpg"),
                alt_text: None,
                sort_order: 1,
                is_primary: false,
                at: Utc::now(),
            },
            ProductEvent::ProductPrimaryImageChanged {
                product_id: fresh,
                image_id: image_b,
                previous_primary_image_id: Some(image_a),
                at: Utc::now(),
            },
            ProductEvent::ProductImagesReordered {
                product_id: fresh,
                images: vec![
                    ProductImagePosition {
                        image_id: image_b,
                        sort_order: 0,
                    },
                    ProductImagePosition {
                        image_id: image_a,
                        sort_order: 1,
                    },
                ],
                at: Utc::now(),
            },
            ProductEvent::ProductImageRemoved {
                product_id: fresh,
                image_id: image_a,
                new_primary_image_id: None,
                at: Utc::now(),
            },
            ProductEvent::ProductAttributeSet {
                product_id: fresh,
                attribute_id: size,
                name: "size".into(),
                value: "6.1".into(),
                sort_order: 0,
                at: Utc::now(),
            },
            ProductEvent::ProductAttributeSet {
                product_id: fresh,
                attribute_id: colour,
                name: "colour".into(),
                value: "black".into(),
                sort_order: 1,
                at: Utc::now(),
            },
            ProductEvent::ProductAttributeRemoved {
                product_id: fresh,
                attribute_id: size,
                name: "size".into(),
                at: Utc::now(),
            },
            ProductEvent::ProductVariantAdded {
                product_id: fresh,
                variant_id: variant,
                sku: sku("FRESH-1-BLK"),
                name: Some("Black".into()),
                price: price(1150),
                stock_quantity: 2,
                attributes: [("colour".to_owned(), "black".to_owned())].into(),
                is_active: true,
                at: Utc::now(),
            },
            ProductEvent::ProductVariantUpdated {
                product_id: fresh,
                variant_id: variant,
                sku: sku("FRESH-1-BLK"),
                name: Some("Jet black".into()),
                price: price(1160),
                attributes: [("colour".to_owned(), "jet".to_owned())].into(),
                at: Utc::now(),
            },
            ProductEvent::ProductVariantDeactivated {
                product_id: fresh,
                variant_id: variant,
                sku: sku("FRESH-1-BLK"),
                at: Utc::now(),
            },
        ],
    )
    .await;
    h.append(
        "inventory",
        "inventory:FRESH-1",
        0,
        &[
            stock_initialized(fresh, "FRESH-1", 7),
            InventoryEvent::StockAdjusted {
                sku: sku("FRESH-1"),
                product_id: fresh,
                variant_id: None,
                delta: 5,
                reason: StockAdjustmentReason::Restock,
                note: None,
                previous_available: 7,
                available: 12,
                at: Utc::now(),
            },
            InventoryEvent::LowStockThresholdSet {
                sku: sku("FRESH-1"),
                product_id: fresh,
                variant_id: None,
                previous_threshold: 5,
                threshold: 2,
                at: Utc::now(),
            },
            InventoryEvent::InventoryTrackingChanged {
                sku: sku("FRESH-1"),
                product_id: fresh,
                variant_id: None,
                track_inventory: false,
                at: Utc::now(),
            },
        ],
    )
    .await;
    h.append(
        "inventory",
        "inventory:FRESH-1-BLK",
        0,
        &[
            InventoryEvent::StockInitialized {
                sku: sku("FRESH-1-BLK"),
                product_id: fresh,
                variant_id: Some(variant),
                quantity: 2,
                low_stock_threshold: 1,
                track_inventory: true,
                at: Utc::now(),
            },
            InventoryEvent::StockAdjusted {
                sku: sku("FRESH-1-BLK"),
                product_id: fresh,
                variant_id: Some(variant),
                delta: -1,
                reason: StockAdjustmentReason::Damage,
                note: Some("dropped".into()),
                previous_available: 2,
                available: 1,
                at: Utc::now(),
            },
        ],
    )
    .await;
    h.recorded().await
}

/// Applies `events` in batches of `size`, as a worker would cut them.
async fn apply_in_batches(projection: &CatalogTables, events: &[RecordedEvent], size: usize) {
    for batch in events.chunks(size) {
        let letters = projection.apply(batch).await.expect("batch applies");
        assert!(letters.is_empty(), "no dead letters: {letters:?}");
    }
}

#[tokio::test]
async fn a_batch_written_set_based_leaves_the_rows_the_event_by_event_path_leaves() {
    let h = harness().await;
    let events = a_catalog_history_touching_every_column(&h).await;
    let exact = CatalogTables::new(h.db.pool.clone(), Upcasters::default()).event_by_event();
    apply_in_batches(&exact, &events, 3).await;
    let reference = dump_catalog(&h.db.pool).await;
    assert_eq!(exact.set_based_batches(), 0);

    for size in [3, 7, events.len()] {
        exact.reset().await.unwrap();
        let set = CatalogTables::new(h.db.pool.clone(), Upcasters::default());
        apply_in_batches(&set, &events, size).await;
        assert_eq!(
            dump_catalog(&h.db.pool).await,
            reference,
            "batches of {size} written set-based"
        );
        assert_eq!(
            set.set_based_batches() as usize,
            events.len().div_ceil(size),
            "every batch of {size} took the set-based path"
        );
        // A redelivery of all of it changes nothing.
        apply_in_batches(&set, &events, size).await;
        assert_eq!(dump_catalog(&h.db.pool).await, reference);
    }
}

#[tokio::test]
async fn an_event_parked_by_another_worker_is_released_by_a_set_based_batch() {
    let h = harness().await;
    let (category, product, category_events, others) =
        a_product_and_its_stock_before_their_category(&h).await;
    let projection = CatalogTables::new(h.db.pool.clone(), Upcasters::default());
    // The product's partition ran ahead: its events wait for the category.
    projection.apply(&others).await.unwrap();
    assert!(parked_count(&h.db.pool).await > 0);
    // The category's batch touches no parked aggregate, so it goes set-based
    // and hands the waiting events on.
    projection.apply(&category_events).await.unwrap();
    assert_eq!(projection.set_based_batches(), 1);
    assert_eq!(parked_count(&h.db.pool).await, 0);
    assert_eq!(
        product_row(&h.db.pool, product).await.unwrap(),
        (
            "IPH-15".to_owned(),
            "34900.00".to_owned(),
            Some(category),
            45
        )
    );
}
