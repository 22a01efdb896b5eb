//! Cart fixtures: the seed's example cart, owners, a guest's cart session as
//! the command API hands one out, and the cart stores written as the
//! projectors write them.

use std::sync::atomic::Ordering;

use chrono::Utc;
use infrastructure::views::carts::{
    cart_cache_key, CachedCart, CachedCartItem, CachedCartSummary, CartDocument, CartOwnerView,
    CARTS_COLLECTION,
};
use uuid::Uuid;

use super::{money, TestContext};

impl TestContext {
    /// The test's Mongo database (dropped with the context).
    pub async fn mongo(&self) -> mongodb::Database {
        self.used_mongo.store(true, Ordering::SeqCst);
        mongodb::Client::with_uri_str(&self.settings.mongo.url)
            .await
            .expect("mongo url")
            .database(&self.settings.mongo.database)
    }

    /// Writes the cart's document as the cart-documents projector does.
    pub async fn cart_document_put(&self, owner: &CartOwnerView, cart: &CachedCart) {
        let document = CartDocument::new(owner, cart, 1).to_document();
        self.cart_document_put_raw(document).await;
    }

    pub async fn cart_document_put_raw(&self, document: mongodb::bson::Document) {
        self.mongo()
            .await
            .collection::<mongodb::bson::Document>(CARTS_COLLECTION)
            .insert_one(document)
            .await
            .expect("MongoDB answers; start it with `scripts/services up`");
    }

    pub fn cart_cache_key(&self, owner: &CartOwnerView) -> String {
        cart_cache_key(&self.settings.redis.key_prefix, owner)
    }

    /// Writes the owner's cart entry as the cart-cache projector does.
    pub async fn cart_cache_put(&self, owner: &CartOwnerView, cart: &CachedCart) {
        self.cart_cache_put_raw(owner, &serde_json::to_string(cart).unwrap())
            .await;
    }

    pub async fn cart_cache_put_raw(&self, owner: &CartOwnerView, value: &str) {
        let mut redis = self.redis().await;
        redis::cmd("SET")
            .arg(self.cart_cache_key(owner))
            .arg(value)
            .query_async::<()>(&mut redis)
            .await
            .expect("redis set");
    }
}

/// The seed's example cart (2 × 35900 → subtotal 71800, tax 5026, total
/// 76826), opened a minute ago and expiring in a week.
pub fn seed_cart() -> CachedCart {
    let now = infrastructure::views::carts::to_millis(Utc::now());
    let opened = now - chrono::Duration::minutes(1);
    CachedCart {
        cart_id: Uuid::now_v7(),
        items: vec![CachedCartItem {
            product_id: Uuid::now_v7(),
            product_variant_id: Some(Uuid::now_v7()),
            quantity: 2,
            unit_price: money("35900.00"),
            total_price: money("71800.00"),
            added_at: now,
            options: [
                ("color".to_owned(), "black".to_owned()),
                ("storage".to_owned(), "256GB".to_owned()),
            ]
            .into(),
            sku: "IPH-15-PRO-256".into(),
            name: "iPhone 15 Pro".into(),
            image_url: Some("https://cdn.example.com/iphone.png".into()),
        }],
        summary: CachedCartSummary {
            item_count: 2,
            subtotal: money("71800.00"),
            estimated_tax: money("5026.00"),
            estimated_total: money("76826.00"),
            shipping_fee: Some(money("50.00")),
        },
        coupon_code: Some("WELCOME10".into()),
        shipping_address: None,
        shipping_method: Some("standard".into()),
        created_at: opened,
        updated_at: now,
        expires_at: now + chrono::Duration::days(7),
    }
}

pub fn user_owner(user_id: Uuid) -> CartOwnerView {
    CartOwnerView::User { user_id }
}

/// A cart session as the command API hands one out (32 random bytes,
/// base64url), and the owner it names (its digest).
pub fn guest_session() -> (String, CartOwnerView) {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let digest = infrastructure::sessions::SessionToken::parse(&token)
        .expect("a token of the command API's shape")
        .digest();
    (token, CartOwnerView::Guest { session_id: digest })
}
