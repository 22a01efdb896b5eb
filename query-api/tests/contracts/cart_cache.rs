//! Contract of `CartCache`, run against `RedisCartCache`.

use std::time::{Duration, Instant};

use infrastructure::views::carts::{CachedCart, CartOwnerView};
use query_api::carts::{CartCache, RedisCartCache};
use query_api::error::StoreError;
use uuid::Uuid;

use crate::support::{self, TestContext};

/// What a contract run needs from an implementation: the adapter over a
/// fresh, isolated store, a way to seed that store as its writer would, and
/// the same adapter over a store that is down.
pub(crate) trait CartCacheHarness: Sized {
    type Cache: CartCache;
    async fn start() -> Self;
    fn cache(&self) -> &Self::Cache;
    fn unreachable(&self) -> Self::Cache;
    async fn put(&self, owner: &CartOwnerView, cart: &CachedCart);
    async fn put_raw(&self, owner: &CartOwnerView, raw: &str);
}

pub(crate) async fn a_missing_entry_is_a_miss<H: CartCacheHarness>() {
    let harness = H::start().await;
    let owner = support::user_owner(Uuid::now_v7());
    assert_eq!(
        harness.cache().get(&owner).await.expect("cache answers"),
        None
    );
}

pub(crate) async fn a_stored_entry_is_a_hit<H: CartCacheHarness>() {
    let harness = H::start().await;
    let owner = support::user_owner(Uuid::now_v7());
    let cart = support::seed_cart();
    harness.put(&owner, &cart).await;
    let found = harness.cache().get(&owner).await.expect("cache answers");
    assert_eq!(found, Some(cart));
}

pub(crate) async fn entries_are_per_owner<H: CartCacheHarness>() {
    let harness = H::start().await;
    let user = support::user_owner(Uuid::now_v7());
    let (_, guest) = support::guest_session();
    let (users_cart, guests_cart) = (support::seed_cart(), support::seed_cart());
    harness.put(&user, &users_cart).await;
    harness.put(&guest, &guests_cart).await;
    assert_eq!(harness.cache().get(&user).await.unwrap(), Some(users_cart));
    assert_eq!(
        harness.cache().get(&guest).await.unwrap(),
        Some(guests_cart)
    );
    let another = support::user_owner(Uuid::now_v7());
    assert_eq!(harness.cache().get(&another).await.unwrap(), None);
}

pub(crate) async fn an_undecodable_entry_is_a_failure_not_a_hit<H: CartCacheHarness>() {
    let harness = H::start().await;
    let owner = support::user_owner(Uuid::now_v7());
    harness
        .put_raw(&owner, "{\"items\": \"not the shape\"")
        .await;
    match harness.cache().get(&owner).await {
        Err(error @ StoreError::Failed { .. }) => assert_eq!(error.store(), "redis"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub(crate) async fn a_store_that_is_down_is_unavailable_fast<H: CartCacheHarness>() {
    let harness = H::start().await;
    let cache = harness.unreachable();
    let started = Instant::now();
    let owner = support::user_owner(Uuid::now_v7());
    let error = cache.get(&owner).await.expect_err("store is down");
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

pub(crate) async fn a_store_that_is_up_answers_ping<H: CartCacheHarness>() {
    let harness = H::start().await;
    harness.cache().ping().await.expect("ping");
}

macro_rules! cart_cache_contract {
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
        async fn entries_are_per_owner() {
            super::entries_are_per_owner::<$harness>().await;
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
        cache: RedisCartCache,
    }

    impl CartCacheHarness for RedisHarness {
        type Cache = RedisCartCache;

        async fn start() -> Self {
            let context = TestContext::new().await;
            let cache = RedisCartCache::new(&context.settings.redis).expect("adapter");
            Self { context, cache }
        }

        fn cache(&self) -> &RedisCartCache {
            &self.cache
        }

        fn unreachable(&self) -> RedisCartCache {
            let mut settings = self.context.settings.redis.clone();
            settings.url = support::DEAD_REDIS.into();
            RedisCartCache::new(&settings).expect("adapter")
        }

        async fn put(&self, owner: &CartOwnerView, cart: &CachedCart) {
            self.context.cart_cache_put(owner, cart).await;
        }

        async fn put_raw(&self, owner: &CartOwnerView, raw: &str) {
            self.context.cart_cache_put_raw(owner, raw).await;
        }
    }

    cart_cache_contract!(RedisHarness);

    /// Redis-specific: the seed's key, `cart:{userId}`, and `cart:guest:` for
    /// a guest's session.
    #[tokio::test]
    async fn entries_are_under_the_seeds_keys() {
        let harness = RedisHarness::start().await;
        let prefix = &harness.context.settings.redis.key_prefix;
        let user_id = Uuid::now_v7();
        let user = support::user_owner(user_id);
        assert_eq!(
            harness.context.cart_cache_key(&user),
            format!("{prefix}cart:{user_id}")
        );
        let (_, guest) = support::guest_session();
        let CartOwnerView::Guest { session_id } = &guest else {
            unreachable!()
        };
        assert_eq!(
            harness.context.cart_cache_key(&guest),
            format!("{prefix}cart:guest:{session_id}")
        );
    }

    /// Redis-specific: entries are read from the generation the pointer
    /// names, which a blue/green rebuild moves.
    #[tokio::test]
    async fn entries_are_read_from_the_live_generation() {
        use infrastructure::views::carts::{
            cart_cache_generation_key, cart_cache_generation_prefix, cart_cache_key,
        };
        let harness = RedisHarness::start().await;
        let owner = support::user_owner(Uuid::now_v7());
        let before = support::seed_cart();
        harness.context.cart_cache_put(&owner, &before).await;
        let rebuilt = support::seed_cart();
        let base = &harness.context.settings.redis.key_prefix;
        let mut redis = harness.context.redis().await;
        redis::cmd("SET")
            .arg(cart_cache_key(
                &cart_cache_generation_prefix(base, 3),
                &owner,
            ))
            .arg(serde_json::to_string(&rebuilt).unwrap())
            .query_async::<()>(&mut redis)
            .await
            .unwrap();
        assert_eq!(harness.cache.get(&owner).await.unwrap(), Some(before));
        redis::cmd("SET")
            .arg(cart_cache_generation_key(base))
            .arg(3)
            .query_async::<()>(&mut redis)
            .await
            .unwrap();
        assert_eq!(harness.cache.get(&owner).await.unwrap(), Some(rebuilt));
    }

    /// Redis-specific: the key prefix separates deployments sharing a server.
    #[tokio::test]
    async fn entries_of_another_key_prefix_are_invisible() {
        let harness = RedisHarness::start().await;
        let other = TestContext::new().await;
        let owner = support::user_owner(Uuid::now_v7());
        other.cart_cache_put(&owner, &support::seed_cart()).await;
        assert_eq!(harness.cache.get(&owner).await.unwrap(), None);
    }
}
