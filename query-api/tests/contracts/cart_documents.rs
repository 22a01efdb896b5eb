//! Contract of `CartDocuments`, run against `MongoCartDocuments`.

use std::time::{Duration, Instant};

use infrastructure::views::carts::{CachedCart, CartOwnerView};
use mongodb::bson::{doc, Document};
use query_api::carts::{CartDocuments, MongoCartDocuments, StoredCart};
use query_api::error::StoreError;
use uuid::Uuid;

use crate::support::{self, TestContext};

/// What a contract run needs from an implementation: the adapter over a
/// fresh, isolated store, a way to seed that store as its writer would, and
/// the same adapter over a store that is down.
pub(crate) trait DocumentsHarness: Sized {
    type Documents: CartDocuments;
    async fn start() -> Self;
    fn documents(&self) -> &Self::Documents;
    fn unreachable(&self) -> Self::Documents;
    async fn put(&self, owner: &CartOwnerView, cart: &CachedCart);
    async fn put_raw(&self, document: Document);
}

pub(crate) async fn a_missing_document_is_none<H: DocumentsHarness>() {
    let harness = H::start().await;
    let found = harness
        .documents()
        .get(Uuid::now_v7())
        .await
        .expect("store answers");
    assert_eq!(found, None);
}

pub(crate) async fn a_stored_document_is_found_with_its_owner<H: DocumentsHarness>() {
    let harness = H::start().await;
    let user = support::user_owner(Uuid::now_v7());
    let (_, guest) = support::guest_session();
    let (users_cart, guests_cart) = (support::seed_cart(), support::seed_cart());
    harness.put(&user, &users_cart).await;
    harness.put(&guest, &guests_cart).await;
    for (owner, cart) in [(user, users_cart), (guest, guests_cart)] {
        let found = harness.documents().get(cart.cart_id).await.unwrap();
        assert_eq!(found, Some(StoredCart { owner, cart }));
    }
}

pub(crate) async fn money_reads_back_exactly<H: DocumentsHarness>() {
    let harness = H::start().await;
    let owner = support::user_owner(Uuid::now_v7());
    let mut cart = support::seed_cart();
    cart.items[0].unit_price = support::money("0.10");
    cart.items[0].total_price = support::money("0.20");
    cart.summary.subtotal = support::money("99999999.99");
    harness.put(&owner, &cart).await;
    let found = harness
        .documents()
        .get(cart.cart_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.cart.items[0].unit_price.to_string(), "0.10");
    assert_eq!(found.cart.items[0].total_price.to_string(), "0.20");
    assert_eq!(found.cart.summary.subtotal.to_string(), "99999999.99");
}

pub(crate) async fn an_undecodable_document_is_a_failure<H: DocumentsHarness>() {
    let harness = H::start().await;
    let id = Uuid::now_v7();
    harness
        .put_raw(doc! { "_id": id.to_string(), "userId": "someone", "items": "not the shape" })
        .await;
    match harness.documents().get(id).await {
        Err(error @ StoreError::Failed { .. }) => assert_eq!(error.store(), "mongodb"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub(crate) async fn a_store_that_is_down_is_unavailable_fast<H: DocumentsHarness>() {
    let harness = H::start().await;
    let documents = harness.unreachable();
    let started = Instant::now();
    let error = documents
        .get(Uuid::now_v7())
        .await
        .expect_err("store is down");
    assert!(error.is_unavailable(), "{error:?}");
    assert!(documents
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

pub(crate) async fn a_store_that_is_up_answers_ping<H: DocumentsHarness>() {
    let harness = H::start().await;
    harness.documents().ping().await.expect("ping");
}

macro_rules! cart_documents_contract {
    ($harness:ty) => {
        #[tokio::test]
        async fn a_missing_document_is_none() {
            super::a_missing_document_is_none::<$harness>().await;
        }
        #[tokio::test]
        async fn a_stored_document_is_found_with_its_owner() {
            super::a_stored_document_is_found_with_its_owner::<$harness>().await;
        }
        #[tokio::test]
        async fn money_reads_back_exactly() {
            super::money_reads_back_exactly::<$harness>().await;
        }
        #[tokio::test]
        async fn an_undecodable_document_is_a_failure() {
            super::an_undecodable_document_is_a_failure::<$harness>().await;
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

mod mongo_adapter {
    use super::*;

    pub(crate) struct MongoHarness {
        context: TestContext,
        documents: MongoCartDocuments,
    }

    impl DocumentsHarness for MongoHarness {
        type Documents = MongoCartDocuments;

        async fn start() -> Self {
            let context = TestContext::new().await;
            let documents = MongoCartDocuments::new(&context.settings.mongo);
            Self { context, documents }
        }

        fn documents(&self) -> &MongoCartDocuments {
            &self.documents
        }

        fn unreachable(&self) -> MongoCartDocuments {
            let mut settings = self.context.settings.mongo.clone();
            settings.url = support::DEAD_MONGO.into();
            MongoCartDocuments::new(&settings)
        }

        async fn put(&self, owner: &CartOwnerView, cart: &CachedCart) {
            self.context.cart_document_put(owner, cart).await;
        }

        async fn put_raw(&self, document: Document) {
            self.context.cart_document_put_raw(document).await;
        }
    }

    cart_documents_contract!(MongoHarness);

    /// Mongo-specific: the seed's shape as stored, money as Decimal128.
    #[tokio::test]
    async fn documents_are_in_the_seeds_shape() {
        let harness = MongoHarness::start().await;
        let user_id = Uuid::now_v7();
        let cart = support::seed_cart();
        harness.put(&support::user_owner(user_id), &cart).await;
        let stored = harness
            .context
            .mongo()
            .await
            .collection::<Document>("carts")
            .find_one(doc! { "_id": cart.cart_id.to_string() })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.get_str("userId").unwrap(), user_id.to_string());
        let summary = stored.get_document("summary").unwrap();
        assert_eq!(
            summary.get("estimatedTotal"),
            Some(&mongodb::bson::Bson::Decimal128(
                "76826.00".parse().unwrap()
            ))
        );
    }

    /// Mongo-specific: each deployment reads its own database.
    #[tokio::test]
    async fn documents_of_another_database_are_invisible() {
        let harness = MongoHarness::start().await;
        let other = TestContext::new().await;
        let cart = support::seed_cart();
        other
            .cart_document_put(&support::user_owner(Uuid::now_v7()), &cart)
            .await;
        assert_eq!(harness.documents.get(cart.cart_id).await.unwrap(), None);
    }
}
