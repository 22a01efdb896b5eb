//! The shapes read models are stored in and served as, shared by the
//! projectors that write them and the query API that reads them: the product
//! representation (PostgreSQL row, Redis `product:{id}` cache), the search
//! document of the `products` index, category and brand rows, and the cart
//! (the Mongo `carts` document and the Redis `cart:{owner}` entry, in
//! [`carts`]). Those the query API serves as they are carry their OpenAPI
//! schemas (`ToSchema`).

use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod carts;

/// A product as read clients get it: the seed's `products` columns (without
/// the internal `cost_price`). Money is a string with two decimals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductView {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub short_description: Option<String>,
    pub category_id: Option<Uuid>,
    pub brand_id: Option<Uuid>,
    pub regular_price: Decimal,
    pub sale_price: Option<Decimal>,
    pub currency: String,
    pub track_inventory: bool,
    pub stock_quantity: i32,
    pub low_stock_threshold: i32,
    pub weight: Option<Decimal>,
    pub length: Option<Decimal>,
    pub width: Option<Decimal>,
    pub height: Option<Decimal>,
    pub meta_title: Option<String>,
    pub meta_description: Option<String>,
    pub meta_keywords: Vec<String>,
    pub status: String,
    pub featured: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    /// The `product_images` rows, by `sort_order` then id.
    #[serde(default)]
    pub images: Vec<ProductImageView>,
    /// The `product_attributes` rows, by `sort_order` then name.
    #[serde(default)]
    pub attributes: Vec<ProductAttributeView>,
    /// The `product_variants` rows, inactive ones included, by sku.
    #[serde(default)]
    pub variants: Vec<ProductVariantView>,
}

/// A `product_images` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductImageView {
    pub id: Uuid,
    pub url: String,
    pub alt_text: Option<String>,
    pub is_primary: bool,
    pub sort_order: i32,
}

/// A `product_attributes` row; the name is unique within its product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductAttributeView {
    pub id: Uuid,
    pub name: String,
    pub value: String,
    pub sort_order: i32,
}

/// A `product_variants` row. `stock_quantity` is the variant's own stock
/// (its inventory stream), not the product's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductVariantView {
    pub id: Uuid,
    pub sku: String,
    pub name: Option<String>,
    pub price: Decimal,
    pub stock_quantity: i32,
    pub attributes: std::collections::BTreeMap<String, String>,
    pub is_active: bool,
}

impl ProductView {
    /// Puts the child rows in the order every store serves them.
    pub fn sort_children(&mut self) {
        self.images
            .sort_by_key(|image| (image.sort_order, image.id));
        self.attributes
            .sort_by(|a, b| (a.sort_order, &a.name).cmp(&(b.sort_order, &b.name)));
        self.variants.sort_by(|a, b| a.sku.cmp(&b.sku));
    }

    /// What a buyer pays now: the sale price when there is one.
    pub fn effective_price(&self) -> Decimal {
        self.sale_price.unwrap_or(self.regular_price)
    }
}

/// The Redis `product:{id}` value: the seed's cache shape (`id`, `name`,
/// `price`, `stock`, `cachedAt`) around the full representation, so a cache hit
/// answers exactly as PostgreSQL would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedProduct {
    #[serde(flatten)]
    pub product: ProductView,
    /// The effective price, as the seed's number.
    pub price: f64,
    pub stock: i32,
    #[serde(rename = "cachedAt")]
    pub cached_at: DateTime<Utc>,
}

impl CachedProduct {
    pub fn new(product: ProductView, cached_at: DateTime<Utc>) -> Self {
        Self {
            price: decimal_to_json_number(product.effective_price()),
            stock: product.stock_quantity,
            product,
            cached_at,
        }
    }
}

/// Money as the seed's JSON numbers (search and cache documents). Amounts are
/// at most 10 digits with 2 decimals, which an f64 carries exactly to text and
/// back; the string form stays the API's.
pub fn decimal_to_json_number(amount: Decimal) -> f64 {
    amount.to_f64().unwrap_or_default()
}

/// The Redis key of a product's cache entry, under the prefix of the cache's
/// generation ([`product_cache_generation_prefix`]).
pub fn product_cache_key(prefix: &str, product_id: Uuid) -> String {
    format!("{prefix}product:{product_id}")
}

/// The key naming the product cache's live generation. A blue/green rebuild
/// writes a new generation under its own prefix and then moves this pointer,
/// which readers see in one step; absent means generation 0.
pub fn product_cache_generation_key(prefix: &str) -> String {
    format!("{prefix}generation:product-cache")
}

/// The prefix of one generation of the product cache: the configured prefix
/// itself for generation 0, which keeps the seed's `product:{id}` right after
/// it, and `{prefix}g{N}:` for a later one.
pub fn product_cache_generation_prefix(prefix: &str, generation: u64) -> String {
    match generation {
        0 => prefix.to_owned(),
        n => format!("{prefix}g{n}:"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NamedRef {
    pub id: Uuid,
    pub name: Option<String>,
}

/// A document of the `products` index: the seed's mapping, plus the fields the
/// query API filters and sorts on (sku, slug, status, featured, currency,
/// regular and sale price).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchProduct {
    pub id: Uuid,
    pub sku: String,
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub short_description: Option<String>,
    pub category: Option<NamedRef>,
    pub brand: Option<NamedRef>,
    pub price: f64,
    pub regular_price: f64,
    pub sale_price: Option<f64>,
    pub currency: String,
    pub stock: i32,
    pub rating: Option<f32>,
    pub tags: Vec<String>,
    /// The seed's `attributes` object, kept as given in `_source` but not
    /// indexed: its names are user input, and mapping them dynamically lets
    /// one product break the index for every other (`a` beside `a.b`, or
    /// more names than the field limit).
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// The same attributes as name/value pairs, which is what filters on an
    /// attribute query (`nested`), whatever the names are.
    #[serde(default)]
    pub attribute_filters: Vec<AttributeFilter>,
    pub status: String,
    pub featured: bool,
    #[serde(rename = "createdAt")]
    pub created_at: DateTime<Utc>,
    #[serde(rename = "updatedAt")]
    pub updated_at: DateTime<Utc>,
}

/// One attribute of a search document, as a filterable pair. A value that is
/// not a string is kept as its JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeFilter {
    pub name: String,
    pub value: String,
}

impl AttributeFilter {
    pub fn all_of(attributes: &serde_json::Map<String, serde_json::Value>) -> Vec<Self> {
        attributes
            .iter()
            .map(|(name, value)| Self {
                name: name.clone(),
                value: match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                },
            })
            .collect()
    }
}

/// Stamped in the products index's `_meta`: an index built with an older
/// mapping is rebuilt.
pub const PRODUCTS_MAPPING_VERSION: u64 = 2;

/// The index body: the seed's mapping and the extra filter fields. Every
/// field a document holds is declared, and `dynamic: strict` refuses any
/// other, so no input can add to the mapping.
pub fn products_index_body() -> serde_json::Value {
    serde_json::json!({
        "mappings": {
            "dynamic": "strict",
            "_meta": { "mapping_version": PRODUCTS_MAPPING_VERSION },
            "properties": {
                "id": { "type": "keyword" },
                "name": {
                    "type": "text",
                    "analyzer": "standard",
                    "fields": { "keyword": { "type": "keyword" } }
                },
                "description": { "type": "text" },
                "category": {
                    "properties": {
                        "id": { "type": "keyword" },
                        "name": { "type": "text" }
                    }
                },
                "brand": {
                    "properties": {
                        "id": { "type": "keyword" },
                        "name": { "type": "text" }
                    }
                },
                "price": { "type": "double" },
                "stock": { "type": "integer" },
                "rating": { "type": "float" },
                "tags": { "type": "keyword" },
                "attributes": { "type": "object", "enabled": false },
                "attribute_filters": {
                    "type": "nested",
                    "properties": {
                        "name": { "type": "keyword" },
                        "value": { "type": "keyword" }
                    }
                },
                "createdAt": { "type": "date" },
                "updatedAt": { "type": "date" },
                "sku": { "type": "keyword" },
                "slug": { "type": "keyword" },
                "short_description": { "type": "text" },
                "regular_price": { "type": "double" },
                "sale_price": { "type": "double" },
                "currency": { "type": "keyword" },
                "status": { "type": "keyword" },
                "featured": { "type": "boolean" },
                // The representation a document was folded from, for the
                // next event's fold: stored, never searched.
                "view": { "type": "object", "enabled": false }
            }
        }
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryView {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub image_url: Option<String>,
    pub meta_title: Option<String>,
    pub meta_description: Option<String>,
    pub meta_keywords: Vec<String>,
    pub sort_order: i32,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BrandView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    pub website_url: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_product_has_the_seed_keys_around_the_representation() {
        let product = ProductView {
            id: Uuid::nil(),
            sku: "IPH-15".into(),
            name: "iPhone 15 Pro".into(),
            slug: "iphone-15-pro".into(),
            description: None,
            short_description: None,
            category_id: None,
            brand_id: None,
            regular_price: Decimal::new(3990000, 2),
            sale_price: Some(Decimal::new(3590000, 2)),
            currency: "THB".into(),
            track_inventory: true,
            stock_quantity: 45,
            low_stock_threshold: 5,
            weight: None,
            length: None,
            width: None,
            height: None,
            meta_title: None,
            meta_description: None,
            meta_keywords: vec![],
            status: "active".into(),
            featured: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            published_at: None,
            images: vec![ProductImageView {
                id: Uuid::nil(),
                url: "https://cdn.example.com/iphone.jpg".into(),
                alt_text: None,
                is_primary: true,
                sort_order: 0,
            }],
            attributes: vec![],
            variants: vec![ProductVariantView {
                id: Uuid::nil(),
                sku: "IPH-15-256".into(),
                name: Some("256 GB".into()),
                price: Decimal::new(4390000, 2),
                stock_quantity: 7,
                attributes: [("storage".to_owned(), "256 GB".to_owned())].into(),
                is_active: true,
            }],
        };
        let json = serde_json::to_value(CachedProduct::new(product.clone(), Utc::now())).unwrap();
        assert_eq!(json["id"], serde_json::json!(Uuid::nil()));
        assert_eq!(json["name"], "iPhone 15 Pro");
        assert_eq!(json["price"], serde_json::json!(35900.0));
        assert_eq!(json["stock"], 45);
        assert!(json["cachedAt"].is_string());
        assert_eq!(json["regular_price"], "39900.00");
        assert_eq!(json["variants"][0]["price"], "43900.00");
        let back: CachedProduct = serde_json::from_value(json).unwrap();
        assert_eq!(back.product, product);
    }
}

#[cfg(test)]
mod compatibility {
    use super::*;

    /// Entries written before images, attributes and variants were part of
    /// the representation still decode (with none of them).
    #[test]
    fn a_product_stored_without_child_rows_decodes_with_none() {
        let json = serde_json::json!({
            "id": Uuid::nil(), "sku": "A-1", "name": "A", "slug": "a",
            "description": null, "short_description": null, "category_id": null,
            "brand_id": null, "regular_price": "10.00", "sale_price": null,
            "currency": "THB", "track_inventory": true, "stock_quantity": 1,
            "low_stock_threshold": 5, "weight": null, "length": null, "width": null,
            "height": null, "meta_title": null, "meta_description": null,
            "meta_keywords": [], "status": "draft", "featured": false,
            "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:00Z",
            "published_at": null
        });
        let view: ProductView = serde_json::from_value(json).unwrap();
        assert!(view.images.is_empty() && view.attributes.is_empty() && view.variants.is_empty());
    }
}
