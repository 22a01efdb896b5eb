//! Carts for the projector tests: the domain's cart events as the command
//! side records them (the seed's example cart among them), the two cart
//! projections over the test's stores, what each store holds as readers see
//! it, and the clean-up of the test's Mongo database and Redis keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::cart::{
    CartEvent, CartItem, CartOwner, CartStatus, CartSummary, SessionId, ShippingMethodCode,
    ShippingSelection,
};
use domain::values::{CouponCode, Money, PostalAddress, PostalAddressInput, Quantity, Sku, Url};
use futures::TryStreamExt;
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::settings::Settings;
use infrastructure::views::carts::cart_cache_generation_key;
use infrastructure::views::carts::cart_cache_generation_prefix;
use mongodb::bson::{doc, Document};
use projectors::projections::cart_cache::CartCache;
use projectors::projections::cart_documents::{CartDocuments, COLLECTION, TOMBSTONES};
use projectors::runtime::Projection;
use redis::AsyncCommands;
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::adapters::Adapter;
use super::Harness;

/// How long the test carts live, as the default policy.
pub const TTL: Duration = Duration::days(7);

pub fn user(id: Uuid) -> CartOwner {
    CartOwner::User { user_id: id }
}

/// A guest, by a session id of the shape the command API records (the hex
/// digest of the cart session).
pub fn guest() -> CartOwner {
    let digest = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    CartOwner::Guest {
        session_id: SessionId::parse(&digest).unwrap(),
    }
}

fn money(text: &str) -> Money {
    Money::new(text.parse::<Decimal>().unwrap()).unwrap()
}

/// A line of `quantity` × `unit_price` of `product`, black and 256GB.
pub fn line(product: Uuid, unit_price: &str, quantity: i64, at: DateTime<Utc>) -> CartItem {
    let unit = money(unit_price);
    let quantity = Quantity::new(quantity).unwrap();
    CartItem {
        product_id: product,
        variant_id: Some(Uuid::from_u128(product.as_u128() ^ 1)),
        sku: Sku::parse("IPH-15-PRO-256").unwrap(),
        name: "iPhone 15 Pro".into(),
        unit_price: unit,
        quantity,
        total_price: unit.times(quantity).unwrap(),
        options: BTreeMap::from([
            ("color".to_owned(), "black".to_owned()),
            ("storage".to_owned(), "256GB".to_owned()),
        ]),
        image_url: Some(Url::parse("https://cdn.example.com/iphone.png").unwrap()),
        added_at: at,
    }
}

/// The events of one cart, written as the command side decides them: every
/// change recomputes the summary and slides the expiry.
pub struct CartStory {
    pub cart_id: Uuid,
    pub owner: CartOwner,
    pub items: Vec<CartItem>,
    pub shipping: Option<ShippingSelection>,
    pub at: DateTime<Utc>,
    pub events: Vec<CartEvent>,
}

impl CartStory {
    pub fn open(owner: CartOwner, at: DateTime<Utc>) -> Self {
        let cart_id = Uuid::now_v7();
        Self {
            cart_id,
            events: vec![CartEvent::CartOpened {
                cart_id,
                owner: owner.clone(),
                expires_at: at + TTL,
                at,
            }],
            owner,
            items: Vec::new(),
            shipping: None,
            at,
        }
    }

    fn tick(&mut self) -> DateTime<Utc> {
        self.at += Duration::seconds(1);
        self.at
    }

    fn summary(&self) -> CartSummary {
        CartSummary::compute(&self.items, self.shipping.as_ref()).unwrap()
    }

    pub fn add(mut self, product: Uuid, unit_price: &str, quantity: i64) -> Self {
        let at = self.tick();
        let line = line(product, unit_price, quantity, at);
        self.items.push(line.clone());
        self.events.push(CartEvent::CartItemAdded {
            cart_id: self.cart_id,
            owner: self.owner.clone(),
            line,
            quantity_added: Quantity::new(quantity).unwrap(),
            items: self.items.clone(),
            summary: self.summary(),
            expires_at: at + TTL,
            at,
        });
        self
    }

    pub fn coupon(mut self, code: &str) -> Self {
        let at = self.tick();
        self.events.push(CartEvent::CartCouponApplied {
            cart_id: self.cart_id,
            owner: self.owner.clone(),
            coupon_code: CouponCode::parse(code).unwrap(),
            previous_coupon_code: None,
            summary: self.summary(),
            expires_at: at + TTL,
            at,
        });
        self
    }

    pub fn ship_to(mut self) -> Self {
        let at = self.tick();
        let address = PostalAddress::new(PostalAddressInput {
            first_name: "Somying".into(),
            last_name: "Jaidee".into(),
            street_address_1: "9 Silom Rd".into(),
            city: "Bangkok".into(),
            state_province: "Bangkok".into(),
            postal_code: "10500".into(),
            country: Some("TH".into()),
            phone: Some("+66812345678".into()),
            ..Default::default()
        })
        .unwrap();
        self.events.push(CartEvent::CartShippingAddressSet {
            cart_id: self.cart_id,
            owner: self.owner.clone(),
            address,
            summary: self.summary(),
            expires_at: at + TTL,
            at,
        });
        self
    }

    pub fn ship_by(mut self, method: &str, fee: &str) -> Self {
        let at = self.tick();
        let selection = ShippingSelection {
            method: ShippingMethodCode::parse(method).unwrap(),
            fee: money(fee),
        };
        self.shipping = Some(selection.clone());
        self.events.push(CartEvent::CartShippingMethodSelected {
            cart_id: self.cart_id,
            owner: self.owner.clone(),
            shipping_method: selection,
            summary: self.summary(),
            expires_at: at + TTL,
            at,
        });
        self
    }

    /// The guest cart `guest`'s lines merged in (the user cart's half).
    pub fn merge_in(mut self, guest: &CartStory) -> Self {
        let at = self.tick();
        self.items.extend(guest.items.iter().cloned());
        self.events.push(CartEvent::GuestCartMerged {
            cart_id: self.cart_id,
            owner: self.owner.clone(),
            guest_cart_id: guest.cart_id,
            items: self.items.clone(),
            summary: self.summary(),
            expires_at: at + TTL,
            at,
        });
        self
    }

    /// The guest cart's half of a merge into `user_cart`.
    pub fn merged_into(mut self, user_cart: Uuid) -> Self {
        let at = self.tick();
        self.events.push(CartEvent::CartMergedInto {
            cart_id: self.cart_id,
            owner: self.owner.clone(),
            user_cart_id: user_cart,
            previous_status: CartStatus::Active,
            status: CartStatus::Merged,
            at,
        });
        self
    }

    pub fn check_out(mut self) -> Self {
        let at = self.tick();
        self.events.push(CartEvent::CartCheckedOut {
            cart_id: self.cart_id,
            owner: self.owner.clone(),
            order_id: Uuid::now_v7(),
            previous_status: CartStatus::Active,
            status: CartStatus::CheckedOut,
            at,
        });
        self
    }

    /// Expired as a sweeper records it, here brought forward to now: the
    /// projection ends the cart on the event, whatever the clock says.
    pub fn expire(mut self) -> Self {
        let at = self.tick();
        let expires_at = self.last_expiry();
        self.events.push(CartEvent::CartExpired {
            cart_id: self.cart_id,
            owner: self.owner.clone(),
            expires_at,
            previous_status: CartStatus::Active,
            status: CartStatus::Expired,
            at,
        });
        self
    }

    fn last_expiry(&self) -> DateTime<Utc> {
        self.events
            .iter()
            .rev()
            .find_map(|event| match event {
                CartEvent::CartOpened { expires_at, .. }
                | CartEvent::CartItemAdded { expires_at, .. }
                | CartEvent::CartCouponApplied { expires_at, .. }
                | CartEvent::CartShippingAddressSet { expires_at, .. }
                | CartEvent::CartShippingMethodSelected { expires_at, .. }
                | CartEvent::GuestCartMerged { expires_at, .. } => Some(*expires_at),
                _ => None,
            })
            .unwrap()
    }

    /// Appends every event not appended yet, as the command side would.
    pub async fn record(&self, h: &Harness, from_version: usize) {
        h.append(
            "cart",
            &self.cart_id.to_string(),
            from_version as i64,
            &self.events[from_version..],
        )
        .await;
    }
}

/// The seed's example cart for `owner`: 2 × 35900 (subtotal 71800, tax
/// 5026, total 76826), with a coupon held, an address and a shipping method.
pub fn seed_cart(owner: CartOwner) -> CartStory {
    CartStory::open(owner, Utc::now())
        .add(Uuid::now_v7(), "35900.00", 2)
        .coupon("WELCOME10")
        .ship_to()
        .ship_by("standard", "50.00")
}

/// Carts of every kind, recorded: two open (a user's, a guest's), one
/// checked out, one expired, and a guest cart merged into its user's.
pub async fn seed_carts(h: &Harness) -> Vec<CartStory> {
    let now = Utc::now();
    let open = seed_cart(user(Uuid::now_v7()));
    let guest_open = CartStory::open(guest(), now).add(Uuid::now_v7(), "1290.50", 3);
    let checked_out = seed_cart(user(Uuid::now_v7())).check_out();
    let expired = CartStory::open(guest(), now)
        .add(Uuid::now_v7(), "99.00", 1)
        .expire();
    let member = user(Uuid::now_v7());
    let guest_cart = CartStory::open(guest(), now).add(Uuid::now_v7(), "500.00", 1);
    let user_cart = CartStory::open(member, now)
        .add(Uuid::now_v7(), "35900.00", 1)
        .merge_in(&guest_cart);
    let guest_cart = guest_cart.merged_into(user_cart.cart_id);
    let stories = vec![
        open,
        guest_open,
        checked_out,
        expired,
        guest_cart,
        user_cart,
    ];
    for story in &stories {
        story.record(h, 0).await;
    }
    stories
}

pub async fn documents(h: &Harness) -> CartDocuments {
    CartDocuments::connect(
        &h.settings.mongo.url,
        &h.settings.mongo.database,
        Upcasters::default(),
    )
    .await
    .expect("mongo url")
}

pub async fn cache(h: &Harness) -> CartCache {
    CartCache::connect(
        &h.settings.redis.url,
        &h.settings.redis.key_prefix,
        Upcasters::default(),
    )
    .await
    .expect("redis url")
}

/// The cart events of the log, in order.
pub async fn cart_history(h: &Harness) -> Vec<infrastructure::event_store::RecordedEvent> {
    h.recorded()
        .await
        .into_iter()
        .filter(|e| e.aggregate_type == "cart")
        .collect()
}

pub async fn mongo(settings: &Settings) -> mongodb::Database {
    mongodb::Client::with_uri_str(&settings.mongo.url)
        .await
        .unwrap()
        .database(&settings.mongo.database)
}

async fn redis_of(settings: &Settings) -> redis::aio::MultiplexedConnection {
    redis::Client::open(settings.redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("redis answers; start it with `scripts/services up`")
}

async fn all_documents(database: &mongodb::Database, collection: &str) -> Vec<Document> {
    database
        .collection::<Document>(collection)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .expect("MongoDB answers; start it with `scripts/services up`")
        .try_collect()
        .await
        .unwrap()
}

/// The cart documents and the endings, by id.
pub async fn mongo_snapshot(settings: &Settings) -> Value {
    let database = mongo(settings).await;
    serde_json::json!({
        "carts": serde_json::to_value(all_documents(&database, COLLECTION).await).unwrap(),
        "endings": serde_json::to_value(all_documents(&database, TOMBSTONES).await).unwrap(),
    })
}

/// The live generation's cart entries and cart states, by key without the
/// generation's prefix; the marker left out.
pub async fn redis_snapshot(settings: &Settings) -> Value {
    let mut redis = redis_of(settings).await;
    let base = &settings.redis.key_prefix;
    let live: Option<u64> = redis.get(cart_cache_generation_key(base)).await.unwrap();
    let prefix = cart_cache_generation_prefix(base, live.unwrap_or(0));
    let mut keys: Vec<String> = redis.keys(format!("{prefix}cart:*")).await.unwrap();
    keys.extend(
        redis
            .keys::<_, Vec<String>>(format!("{prefix}projection:cart-cache:{{*"))
            .await
            .unwrap(),
    );
    keys.sort();
    let mut entries = serde_json::Map::new();
    for key in keys {
        let value: String = redis.get(&key).await.unwrap();
        // The prefix also sits in the state keys' hash tags.
        entries.insert(
            key.replace(&prefix, ""),
            serde_json::from_str(&value).unwrap(),
        );
    }
    Value::Object(entries)
}

/// Drops the test's Mongo database and deletes its Redis keys when dropped,
/// even when the test fails.
pub struct CleanUp {
    mongo_url: String,
    database: String,
    redis_url: String,
    prefix: String,
}

impl CleanUp {
    pub fn of(h: &Harness) -> Self {
        Self {
            mongo_url: h.settings.mongo.url.clone(),
            database: h.settings.mongo.database.clone(),
            redis_url: h.settings.redis.url.clone(),
            prefix: h.settings.redis.key_prefix.clone(),
        }
    }
}

impl Drop for CleanUp {
    fn drop(&mut self) {
        let (mongo_url, database) = (self.mongo_url.clone(), self.database.clone());
        let (redis_url, pattern) = (self.redis_url.clone(), format!("{}*", self.prefix));
        // Drop cannot await: a helper thread with its own runtime cleans up.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                if let Ok(client) = mongodb::Client::with_uri_str(&mongo_url).await {
                    let _ = client.database(&database).drop().await;
                }
                let mut redis = redis::Client::open(redis_url.as_str())
                    .ok()?
                    .get_multiplexed_async_connection()
                    .await
                    .ok()?;
                let keys: Vec<String> = redis.keys(&pattern).await.ok()?;
                if !keys.is_empty() {
                    let _: () = redis.del(keys).await.ok()?;
                }
                Some(())
            })
        })
        .join();
    }
}

/// Both cart projections as contract-suite adapters.
pub async fn adapters(h: &Harness) -> Vec<Arc<dyn Adapter>> {
    vec![
        Arc::new(DocumentsAdapter(
            Arc::new(documents(h).await),
            h.settings.clone(),
        )),
        Arc::new(CacheAdapter(Arc::new(cache(h).await), h.settings.clone())),
    ]
}

/// The cart documents as a contract-suite adapter.
pub struct DocumentsAdapter(pub Arc<CartDocuments>, pub Settings);

#[async_trait::async_trait]
impl Adapter for DocumentsAdapter {
    fn projection(&self) -> Arc<dyn Projection> {
        self.0.clone()
    }
    async fn snapshot(&self) -> Value {
        mongo_snapshot(&self.1).await
    }
    async fn cleanup(&self) {
        mongo(&self.1).await.drop().await.unwrap();
    }
}

/// The cart cache as a contract-suite adapter.
pub struct CacheAdapter(pub Arc<CartCache>, pub Settings);

#[async_trait::async_trait]
impl Adapter for CacheAdapter {
    fn projection(&self) -> Arc<dyn Projection> {
        self.0.clone()
    }
    async fn snapshot(&self) -> Value {
        redis_snapshot(&self.1).await
    }
    async fn cleanup(&self) {
        let mut redis = redis_of(&self.1).await;
        let keys: Vec<String> = redis
            .keys(format!("{}*", self.1.redis.key_prefix))
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis.del(keys).await.unwrap();
        }
    }
}
