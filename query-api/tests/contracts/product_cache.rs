//! Contract of `ProductCache`, run against `RedisProductCache`.

use std::time::{Duration, Instant};

use infrastructure::views::{CachedProduct, ProductView};
use query_api::error::StoreError;
use query_api::products::{ProductCache, RedisProductCache};
use uuid::Uuid;

use crate::support::{self, TestContext};

/// What a contract run needs from an implementation: the adapter over a
/// fresh, isolated store, a way to seed that store as its writer would, and
/// the same adapter over a store that is down.
pub(crate) trait CacheHarness: Sized {
    type Cache: ProductCache;
    async fn start() -> Self;
    fn cache(&self) -> &Self::Cache;
    fn unreachable(&self) -> Self::Cache;
    async fn put(&self, product: &ProductView) -> CachedProduct;
    async fn put_raw(&self, id: Uuid, raw: &str);
}

pub(crate) async fn a_missing_entry_is_a_miss<H: CacheHarness>() {
    let harness = H::start().await;
    let found = harness
        .cache()
        .get(Uuid::new_v4())
        .await
        .expect("cache answers");
    assert_eq!(found, None);
}

pub(crate) async fn a_stored_entry_is_a_hit<H: CacheHarness>() {
    let harness = H::start().await;
    let product = support::product("iPhone 15 Pro");
    let stored = harness.put(&product).await;
    let found = harness
        .cache()
        .get(product.id)
        .await
        .expect("cache answers");
    assert_eq!(found, Some(stored));
    assert_eq!(found.unwrap().product, product);
}

pub(crate) async fn entries_are_per_product<H: CacheHarness>() {
    let harness = H::start().await;
    let first = support::product("First");
    let second = support::product("Second");
    harness.put(&first).await;
    harness.put(&second).await;
    let found = harness.cache().get(second.id).await.unwrap().unwrap();
    assert_eq!(found.product, second);
}

pub(crate) async fn an_undecodable_entry_is_a_failure_not_a_hit<H: CacheHarness>() {
    let harness = H::start().await;
    let id = Uuid::new_v4();
    harness.put_raw(id, "{\"id\": \"not the shape\"").await;
    match harness.cache().get(id).await {
        Err(error @ StoreError::Failed { .. }) => assert_eq!(error.store(), "redis"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub(crate) async fn a_store_that_is_down_is_unavailable_fast<H: CacheHarness>() {
    let harness = H::start().await;
    let cache = harness.unreachable();
    let started = Instant::now();
    let error = cache.get(Uuid::new_v4()).await.expect_err("store is down");
    assert!(error.is_unavailable(), "{error:?}");
    assert!(cache
        .ping()
        .await
        .expect_err("store is down")
        .is_unavailable());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

pub(crate) async fn a_store_that_is_up_answers_ping<H: CacheHarness>() {
    let harness = H::start().await;
    harness.cache().ping().await.expect("ping");
}

macro_rules! product_cache_contract {
    ($harness:ty) => {
        #[tokio::test]
        async fn a_missing_entry_is_a_miss() {
            super::a_missing_entry_is_a_miss::<$harness>().await;
        }
        #[tokio::test]
        async fn a_stored_entry_is_a_hit() {
            super::a_stored_entry_is_a_hit::<$harness>().await;
        }
        #[tokio::test]
        async fn entries_are_per_product() {
            super::entries_are_per_product::<$harness>().await;
        }
        #[tokio::test]
        async fn an_undecodable_entry_is_a_failure_not_a_hit() {
            super::an_undecodable_entry_is_a_failure_not_a_hit::<$harness>().await;
        }
        #[tokio::test]
        async fn a_store_that_is_down_is_unavailable_fast() {
            super::a_store_that_is_down_is_unavailable_fast::<$harness>().await;
        }
        #[tokio::test]
        async fn a_store_that_is_up_answers_ping() {
            super::a_store_that_is_up_answers_ping::<$harness>().await;
        }
    };
}

mod redis_adapter {
    use super::*;

    pub(crate) struct RedisHarness {
        context: TestContext,
        cache: RedisProductCache,
    }

    impl CacheHarness for RedisHarness {
        type Cache = RedisProductCache;

        async fn start() -> Self {
            let context = TestContext::new().await;
            let cache = RedisProductCache::new(&context.settings.redis).expect("adapter");
            Self { context, cache }
        }

        fn cache(&self) -> &RedisProductCache {
            &self.cache
        }

        fn unreachable(&self) -> RedisProductCache {
            let mut settings = self.context.settings.redis.clone();
            settings.url = support::DEAD_REDIS.into();
            RedisProductCache::new(&settings).expect("adapter")
        }

        async fn put(&self, product: &ProductView) -> CachedProduct {
            self.context.cache_put(product).await
        }

        async fn put_raw(&self, id: Uuid, raw: &str) {
            self.context.cache_put_raw(id, raw).await;
        }
    }

    product_cache_contract!(RedisHarness);

    /// Redis-specific: entries are read from the generation the pointer
    /// names, which a blue/green rebuild moves; the old generation's entries
    /// are no longer seen.
    #[tokio::test]
    async fn entries_are_read_from_the_live_generation() {
        use infrastructure::views::{
            product_cache_generation_key, product_cache_generation_prefix, product_cache_key,
        };
        let harness = RedisHarness::start().await;
        let before = support::product("Before the rebuild");
        harness.context.cache_put(&before).await;
        let rebuilt = support::product("Rebuilt");
        let entry = CachedProduct::new(rebuilt.clone(), chrono::Utc::now());
        let base = &harness.context.settings.redis.key_prefix;
        let mut redis = harness.context.redis().await;
        redis::cmd("SET")
            .arg(product_cache_key(
                &product_cache_generation_prefix(base, 2),
                rebuilt.id,
            ))
            .arg(serde_json::to_string(&entry).unwrap())
            .query_async::<()>(&mut redis)
            .await
            .unwrap();
        assert_eq!(
            harness.cache.get(rebuilt.id).await.unwrap(),
            None,
            "not live yet"
        );
        assert!(harness.cache.get(before.id).await.unwrap().is_some());

        redis::cmd("SET")
            .arg(product_cache_generation_key(base))
            .arg(2)
            .query_async::<()>(&mut redis)
            .await
            .unwrap();
        assert_eq!(harness.cache.get(rebuilt.id).await.unwrap(), Some(entry));
        assert_eq!(harness.cache.get(before.id).await.unwrap(), None);
    }

    /// Redis-specific: the key prefix separates deployments sharing a server.
    #[tokio::test]
    async fn entries_of_another_key_prefix_are_invisible() {
        let harness = RedisHarness::start().await;
        let other = TestContext::new().await;
        let product = support::product("Elsewhere");
        other.cache_put(&product).await;
        assert_eq!(harness.cache.get(product.id).await.unwrap(), None);
        assert!(RedisProductCache::new(&other.settings.redis)
            .unwrap()
            .get(product.id)
            .await
            .unwrap()
            .is_some());
    }
}
