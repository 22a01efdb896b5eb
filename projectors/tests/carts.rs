//! The cart read models on the real servers: `cart-documents` (the seed's
//! Mongo `carts`) and `cart-cache` (the seed's Redis `cart:{userId}`), fed
//! with events appended to the real event store and applied directly. What
//! the projectors write is read back through the query API's own adapters,
//! so writer and reader are held to one shape.

mod support;

use chrono::Utc;
use infrastructure::views::carts::{cart_cache_key, CartOwnerView};
use mongodb::bson::{doc, Bson, Document};
use projectors::projections::cart_documents::{COLLECTION, SEED_INDEXES, TOMBSTONES};
use projectors::projections::cart_state::owner_of;
use projectors::runtime::worker::rebuild_beside_live;
use projectors::runtime::{DeadLetters, Projection, WorkerStats};
use query_api::carts::{
    CartCache as _, CartDocuments as _, CartView, MongoCartDocuments, RedisCartCache,
};
use redis::AsyncCommands;
use support::carts::*;
use support::*;
use uuid::Uuid;

/// Both projections, reset and marked built over the test's stores.
async fn fresh(h: &Harness) -> (impl Projection, impl Projection) {
    let (documents, cache) = (documents(h).await, cache(h).await);
    for projection in [&documents as &dyn Projection, &cache] {
        projection.reset().await.unwrap();
        projection.mark_rebuilt().await.unwrap();
    }
    (documents, cache)
}

async fn apply_all(
    projection: &dyn Projection,
    events: &[infrastructure::event_store::RecordedEvent],
) {
    let letters = projection.apply(events).await.unwrap();
    assert!(letters.is_empty(), "{}: {letters:?}", projection.name());
}

async fn document(h: &Harness, collection: &str, id: Uuid) -> Option<Document> {
    mongo(&h.settings)
        .await
        .collection::<Document>(collection)
        .find_one(doc! { "_id": id.to_string() })
        .await
        .unwrap()
}

async fn entry(h: &Harness, owner: &CartOwnerView) -> Option<serde_json::Value> {
    let mut redis = h.redis().await;
    let value: Option<String> = redis
        .get(cart_cache_key(&h.settings.redis.key_prefix, owner))
        .await
        .unwrap();
    value.map(|json| serde_json::from_str(&json).unwrap())
}

fn decimal(text: &str) -> Bson {
    Bson::Decimal128(text.parse().unwrap())
}

#[tokio::test]
async fn the_seed_cart_lands_in_mongo_as_decimal128_and_in_redis_as_the_seed_entry() {
    let h = harness().await;
    let _clean = CleanUp::of(&h);
    let member = Uuid::now_v7();
    let story = seed_cart(user(member));
    story.record(&h, 0).await;
    let (documents, cache) = fresh(&h).await;
    let history = cart_history(&h).await;
    apply_all(&documents, &history).await;
    apply_all(&cache, &history).await;

    let stored = document(&h, COLLECTION, story.cart_id)
        .await
        .expect("the document");
    let mut fields: Vec<&str> = stored.keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "_id",
            "_version",
            "couponCode",
            "createdAt",
            "expiresAt",
            "items",
            "shippingAddress",
            "shippingMethod",
            "summary",
            "updatedAt",
            "userId"
        ],
        "the seed's fields, the documented extras and the version guard"
    );
    assert_eq!(stored.get_str("userId").unwrap(), member.to_string());
    assert_eq!(stored.get_i64("_version").unwrap(), 5);
    let item = stored.get_array("items").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    let line = &story.items[0];
    assert_eq!(
        item.get_str("productId").unwrap(),
        line.product_id.to_string()
    );
    assert_eq!(
        item.get_str("productVariantId").unwrap(),
        line.variant_id.unwrap().to_string()
    );
    assert_eq!(item.get_i64("quantity").unwrap(), 2);
    assert_eq!(item.get("unitPrice"), Some(&decimal("35900.00")));
    assert_eq!(item.get("totalPrice"), Some(&decimal("71800.00")));
    assert!(matches!(item.get("addedAt"), Some(Bson::DateTime(_))));
    assert_eq!(
        item.get_document("options").unwrap(),
        &doc! { "color": "black", "storage": "256GB" }
    );
    assert_eq!(item.get_str("sku").unwrap(), "IPH-15-PRO-256");
    assert_eq!(item.get_str("name").unwrap(), "iPhone 15 Pro");
    assert_eq!(
        item.get_str("imageUrl").unwrap(),
        "https://cdn.example.com/iphone.png"
    );
    let summary = stored.get_document("summary").unwrap();
    assert_eq!(summary.get_i64("itemCount").unwrap(), 2);
    assert_eq!(summary.get("subtotal"), Some(&decimal("71800.00")));
    assert_eq!(summary.get("estimatedTax"), Some(&decimal("5026.00")));
    assert_eq!(summary.get("estimatedTotal"), Some(&decimal("76826.00")));
    assert_eq!(summary.get("shippingFee"), Some(&decimal("50.00")));
    assert_eq!(stored.get_str("couponCode").unwrap(), "WELCOME10");
    assert_eq!(stored.get_str("shippingMethod").unwrap(), "standard");
    let address = stored.get_document("shippingAddress").unwrap();
    assert_eq!(address.get_str("streetAddress1").unwrap(), "9 Silom Rd");
    assert_eq!(address.get_str("country").unwrap(), "TH");
    for field in ["createdAt", "updatedAt", "expiresAt"] {
        assert!(
            matches!(stored.get(field), Some(Bson::DateTime(_))),
            "{field}"
        );
    }

    let owner = owner_of(&story.owner);
    let cached = entry(&h, &owner).await.expect("the seed's cart:{userId}");
    assert_eq!(cached["cartId"], story.cart_id.to_string());
    assert_eq!(cached["items"][0]["unitPrice"], "35900.00");
    assert_eq!(cached["items"][0]["totalPrice"], "71800.00");
    assert_eq!(cached["summary"]["subtotal"], "71800.00");
    assert_eq!(cached["summary"]["estimatedTax"], "5026.00");
    assert_eq!(cached["summary"]["estimatedTotal"], "76826.00");
    assert!(cached["updatedAt"].is_string());
    // The key lives as long as the cart: until its last expires_at.
    let mut redis = h.redis().await;
    let expire_at_ms: i64 = redis::cmd("PEXPIRETIME")
        .arg(cart_cache_key(&h.settings.redis.key_prefix, &owner))
        .query_async(&mut redis)
        .await
        .unwrap();
    let expires_at = stored.get_datetime("expiresAt").unwrap().timestamp_millis();
    assert_eq!(expire_at_ms, expires_at);

    // The query API's adapters read back the same cart from either store.
    let from_mongo = MongoCartDocuments::new(&h.settings.mongo)
        .get(story.cart_id)
        .await
        .unwrap()
        .expect("a document");
    assert_eq!(from_mongo.owner, owner);
    let from_redis = RedisCartCache::new(&h.settings.redis)
        .unwrap()
        .get(&owner)
        .await
        .unwrap()
        .expect("an entry");
    assert_eq!(from_redis, from_mongo.cart);
    let view = CartView::of(owner, from_redis);
    assert_eq!(view.items[0].item_id, line.key().item_id());
}

#[tokio::test]
async fn the_seed_indexes_exist_and_a_missing_one_is_created_again() {
    let h = harness().await;
    let _clean = CleanUp::of(&h);
    let documents = documents(&h).await;
    assert!(!documents.is_intact().await.unwrap(), "nothing built yet");
    documents.reset().await.unwrap();
    assert!(documents.is_intact().await.unwrap());
    let carts = mongo(&h.settings).await.collection::<Document>(COLLECTION);
    let indexes = || async {
        let mut names = carts.list_index_names().await.unwrap();
        names.sort();
        names
    };
    let mut expected: Vec<String> = SEED_INDEXES.iter().map(|s| s.to_string()).collect();
    expected.push("_id_".into());
    expected.sort();
    assert_eq!(indexes().await, expected);
    let models: Vec<mongodb::IndexModel> = {
        use futures::TryStreamExt;
        carts
            .list_indexes()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    let ttl = models
        .into_iter()
        .find(|model| model.keys.contains_key("expiresAt"))
        .expect("the expiresAt index");
    assert_eq!(
        ttl.options.and_then(|o| o.expire_after),
        Some(std::time::Duration::ZERO),
        "a TTL index with expireAfterSeconds 0"
    );

    carts.drop_index("updatedAt_1").await.unwrap();
    assert!(
        documents.is_intact().await.unwrap(),
        "the data is still there"
    );
    assert_eq!(indexes().await, expected, "and the index is back");

    mongo(&h.settings).await.drop().await.unwrap();
    assert!(
        !documents.is_intact().await.unwrap(),
        "a lost database calls for a rebuild"
    );
}

#[tokio::test]
async fn a_batch_writes_what_one_event_at_a_time_writes() {
    let h = harness().await;
    let _clean = CleanUp::of(&h);
    seed_carts(&h).await;
    let history = cart_history(&h).await;

    let reference_documents = documents(&h).await.one_event_at_a_time();
    let reference_cache = cache(&h).await.one_event_at_a_time();
    for projection in [&reference_documents as &dyn Projection, &reference_cache] {
        projection.reset().await.unwrap();
        apply_all(projection, &history).await;
    }
    let (mongo_one, redis_one) = (
        mongo_snapshot(&h.settings).await,
        redis_snapshot(&h.settings).await,
    );
    assert_eq!(
        mongo_one["carts"].as_array().unwrap().len(),
        3,
        "the open carts"
    );
    assert_eq!(mongo_one["endings"].as_array().unwrap().len(), 3);

    let (documents, cache) = fresh(&h).await;
    apply_all(&documents, &history).await;
    apply_all(&cache, &history).await;
    assert_eq!(mongo_snapshot(&h.settings).await, mongo_one, "mongo");
    assert_eq!(redis_snapshot(&h.settings).await, redis_one, "redis");
}

#[tokio::test]
async fn a_redelivery_or_an_older_event_changes_nothing() {
    let h = harness().await;
    let _clean = CleanUp::of(&h);
    let stories = seed_carts(&h).await;
    let history = cart_history(&h).await;
    let (documents, cache) = fresh(&h).await;
    for projection in [&documents as &dyn Projection, &cache] {
        apply_all(projection, &history).await;
    }
    let (mongo_live, redis_live) = (
        mongo_snapshot(&h.settings).await,
        redis_snapshot(&h.settings).await,
    );
    let first_cart: Vec<_> = history
        .iter()
        .filter(|e| e.aggregate_id == stories[0].cart_id.to_string())
        .cloned()
        .collect();
    for projection in [&documents as &dyn Projection, &cache] {
        apply_all(projection, &history).await;
        apply_all(projection, &history[..history.len() / 2]).await;
        // Older events one by one, newest first.
        for event in first_cart.iter().rev() {
            apply_all(projection, std::slice::from_ref(event)).await;
        }
    }
    assert_eq!(mongo_snapshot(&h.settings).await, mongo_live);
    assert_eq!(redis_snapshot(&h.settings).await, redis_live);
}

#[tokio::test]
async fn checkout_expiry_and_merge_delete_the_cart_and_a_redelivery_does_not_bring_it_back() {
    let h = harness().await;
    let _clean = CleanUp::of(&h);
    let now = Utc::now();
    let checked_out = seed_cart(user(Uuid::now_v7()));
    let expired = CartStory::open(guest(), now).add(Uuid::now_v7(), "99.00", 1);
    let guest_cart = CartStory::open(guest(), now).add(Uuid::now_v7(), "500.00", 2);
    let member = user(Uuid::now_v7());
    let user_cart = CartStory::open(member.clone(), now).add(Uuid::now_v7(), "100.00", 1);
    for story in [&checked_out, &expired, &guest_cart, &user_cart] {
        story.record(&h, 0).await;
    }
    let (documents, cache) = fresh(&h).await;
    let before_the_end = cart_history(&h).await;
    for projection in [&documents as &dyn Projection, &cache] {
        apply_all(projection, &before_the_end).await;
    }
    for story in [&checked_out, &expired, &guest_cart, &user_cart] {
        assert!(document(&h, COLLECTION, story.cart_id).await.is_some());
        assert!(entry(&h, &owner_of(&story.owner)).await.is_some());
    }

    let (checked_out, expired) = (checked_out.check_out(), expired.expire());
    let user_cart = user_cart.merge_in(&guest_cart);
    let guest_cart = guest_cart.merged_into(user_cart.cart_id);
    checked_out.record(&h, 5).await;
    expired.record(&h, 2).await;
    user_cart.record(&h, 2).await;
    guest_cart.record(&h, 2).await;
    let history = cart_history(&h).await;
    let endings: Vec<_> = history[before_the_end.len()..].to_vec();
    for projection in [&documents as &dyn Projection, &cache] {
        apply_all(projection, &endings).await;
    }
    for (story, ending) in [
        (&checked_out, "checked_out"),
        (&expired, "expired"),
        (&guest_cart, "merged"),
    ] {
        assert_eq!(
            document(&h, COLLECTION, story.cart_id).await,
            None,
            "{ending}"
        );
        let tombstone = document(&h, TOMBSTONES, story.cart_id).await.unwrap();
        assert_eq!(tombstone.get_str("ending").unwrap(), ending);
        assert_eq!(entry(&h, &owner_of(&story.owner)).await, None, "{ending}");
    }
    // The user's cart took the guest's line in.
    let merged = document(&h, COLLECTION, user_cart.cart_id).await.unwrap();
    assert_eq!(merged.get_array("items").unwrap().len(), 2);
    let shown = entry(&h, &owner_of(&member)).await.unwrap();
    assert_eq!(shown["items"].as_array().unwrap().len(), 2);

    // Everything again, and the ended carts' history one event at a time.
    let mongo_after = mongo_snapshot(&h.settings).await;
    let redis_after = redis_snapshot(&h.settings).await;
    for projection in [&documents as &dyn Projection, &cache] {
        apply_all(projection, &history).await;
        for event in &before_the_end {
            apply_all(projection, std::slice::from_ref(event)).await;
        }
    }
    assert_eq!(mongo_snapshot(&h.settings).await, mongo_after);
    assert_eq!(redis_snapshot(&h.settings).await, redis_after);
    for story in [&checked_out, &expired, &guest_cart] {
        assert_eq!(document(&h, COLLECTION, story.cart_id).await, None);
        assert_eq!(entry(&h, &owner_of(&story.owner)).await, None);
    }
}

#[tokio::test]
async fn a_guest_cart_is_keyed_by_its_session() {
    let h = harness().await;
    let _clean = CleanUp::of(&h);
    let owner = guest();
    let story = CartStory::open(owner.clone(), Utc::now()).add(Uuid::now_v7(), "35900.00", 2);
    story.record(&h, 0).await;
    let (documents, cache) = fresh(&h).await;
    let history = cart_history(&h).await;
    apply_all(&documents, &history).await;
    apply_all(&cache, &history).await;

    let session = owner.session_id().unwrap().as_str().to_owned();
    let stored = document(&h, COLLECTION, story.cart_id).await.unwrap();
    assert_eq!(stored.get_str("sessionId").unwrap(), session);
    assert!(!stored.contains_key("userId"));
    let key = format!("{}cart:guest:{session}", h.settings.redis.key_prefix);
    let mut redis = h.redis().await;
    let value: Option<String> = redis.get(&key).await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&value.expect(&key)).unwrap();
    assert_eq!(value["cartId"], story.cart_id.to_string());
}

/// One owner's carts come one after the other, on partitions that keep no
/// order between them: whichever order they arrive in, the owner's entry
/// shows the cart opened last, and the end of the earlier one leaves it.
#[tokio::test]
async fn the_owners_entry_shows_their_latest_cart_whatever_the_order_of_arrival() {
    let h = harness().await;
    let _clean = CleanUp::of(&h);
    let member = user(Uuid::now_v7());
    let earlier = seed_cart(member.clone()).check_out();
    let later = CartStory::open(member.clone(), Utc::now() + chrono::Duration::minutes(1)).add(
        Uuid::now_v7(),
        "10.00",
        1,
    );
    earlier.record(&h, 0).await;
    later.record(&h, 0).await;
    let history = cart_history(&h).await;
    let of = |story: &CartStory| -> Vec<_> {
        history
            .iter()
            .filter(|e| e.aggregate_id == story.cart_id.to_string())
            .cloned()
            .collect()
    };
    let (earlier_events, later_events) = (of(&earlier), of(&later));
    let (_, cache) = fresh(&h).await;
    // The later cart first, then the earlier one's whole life.
    apply_all(&cache, &later_events).await;
    apply_all(&cache, &earlier_events[..2]).await;
    let shown = entry(&h, &owner_of(&member)).await.unwrap();
    assert_eq!(
        shown["cartId"],
        later.cart_id.to_string(),
        "the later cart stays"
    );
    apply_all(&cache, &earlier_events[2..]).await;
    let shown = entry(&h, &owner_of(&member)).await.unwrap();
    assert_eq!(
        shown["cartId"],
        later.cart_id.to_string(),
        "its end leaves the entry"
    );

    // The earlier cart first, open when the later one arrives.
    let (_, cache) = fresh(&h).await;
    apply_all(&cache, &earlier_events[..2]).await;
    let shown = entry(&h, &owner_of(&member)).await.unwrap();
    assert_eq!(shown["cartId"], earlier.cart_id.to_string());
    apply_all(&cache, &later_events).await;
    apply_all(&cache, &earlier_events[2..]).await;
    let shown = entry(&h, &owner_of(&member)).await.unwrap();
    assert_eq!(shown["cartId"], later.cart_id.to_string());
}

#[tokio::test]
async fn a_blue_green_rebuild_swaps_in_what_the_live_read_models_hold() {
    let h = harness().await;
    let _clean = CleanUp::of(&h);
    let stories = seed_carts(&h).await;
    let history = cart_history(&h).await;
    let (documents, cache) = fresh(&h).await;
    for projection in [&documents as &dyn Projection, &cache] {
        apply_all(projection, &history).await;
    }
    let (mongo_live, redis_live) = (
        mongo_snapshot(&h.settings).await,
        redis_snapshot(&h.settings).await,
    );
    let dead_letters = DeadLetters::new(h.db.pool.clone());
    for projection in [&documents as &dyn Projection, &cache] {
        rebuild_beside_live(
            projection,
            &h.store,
            &dead_letters,
            &worker_options(),
            &WorkerStats::new(),
        )
        .await
        .unwrap();
        assert!(
            projection.is_intact().await.unwrap(),
            "{}",
            projection.name()
        );
    }
    assert_eq!(mongo_snapshot(&h.settings).await, mongo_live);
    let mut redis = h.redis().await;
    let live: Option<u64> = redis
        .get(infrastructure::views::carts::cart_cache_generation_key(
            &h.settings.redis.key_prefix,
        ))
        .await
        .unwrap();
    assert_eq!(live, Some(1), "the cache moved to its next generation");
    assert_eq!(redis_snapshot(&h.settings).await, redis_live);
    // Readers follow: the query API's adapter reads the new generation, and
    // the live projection writes there after the swap.
    cache.generation_swapped();
    let owner = owner_of(&stories[0].owner);
    let cached = RedisCartCache::new(&h.settings.redis)
        .unwrap()
        .get(&owner)
        .await
        .unwrap()
        .expect("the entry in the new generation");
    assert_eq!(cached.cart_id, stories[0].cart_id);
    let old_key = cart_cache_key(&h.settings.redis.key_prefix, &owner);
    let old: Option<String> = redis.get(&old_key).await.unwrap();
    assert_eq!(old, None, "the old generation is gone");
}

#[tokio::test]
async fn a_flushed_cache_or_a_dropped_database_is_noticed() {
    let h = harness().await;
    let _clean = CleanUp::of(&h);
    let (documents, cache) = fresh(&h).await;
    assert!(documents.is_intact().await.unwrap());
    assert!(cache.is_intact().await.unwrap());
    let mut redis = h.redis().await;
    let _: () = redis
        .del(format!(
            "{}projection:cart-cache:initialized",
            h.settings.redis.key_prefix
        ))
        .await
        .unwrap();
    assert!(!cache.is_intact().await.unwrap(), "no marker");
    mongo(&h.settings).await.drop().await.unwrap();
    assert!(!documents.is_intact().await.unwrap(), "no tombstone index");
}

/// The `projectors` application runs both cart projections from Kafka: a
/// cart recorded while it runs reaches both stores, as the query API reads
/// them, and its checkout takes it out of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projectors_application_runs_both_cart_projections_from_kafka() {
    let h = harness().await;
    let _clean = CleanUp::of(&h);
    let mut settings = h.settings.clone();
    settings.projectors.only = vec!["cart-documents".into(), "cart-cache".into()];
    let app = projectors::app::Application::build(settings)
        .await
        .expect("projectors start; the servers come from `scripts/services up`");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let documents = MongoCartDocuments::new(&h.settings.mongo);
    let cache = RedisCartCache::new(&h.settings.redis).unwrap();

    let story = seed_cart(user(Uuid::now_v7()));
    story.record(&h, 0).await;
    h.relay_all().await;
    let owner = owner_of(&story.owner);
    eventually("the cart in both stores", || async {
        let document = documents.get(story.cart_id).await.ok().flatten();
        let entry = cache.get(&owner).await.ok().flatten();
        (document.is_some() && entry.is_some()).then_some(())
    })
    .await;

    let story = story.check_out();
    story.record(&h, 5).await;
    h.relay_all().await;
    eventually("the checked-out cart out of both stores", || async {
        let document = documents.get(story.cart_id).await.ok()?;
        let entry = cache.get(&owner).await.ok()?;
        (document.is_none() && entry.is_none()).then_some(())
    })
    .await;
    let _ = stop.send(());
    running.await.unwrap();
}
