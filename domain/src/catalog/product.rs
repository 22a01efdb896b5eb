//! The `Product` aggregate (`products` table and the rows it owns): details,
//! pricing, the status life cycle (draft, active, inactive, archived), the
//! featured flag, and the product's images, attributes and variants. Sku and
//! slug uniqueness take outside state, so creation, slug changes and new
//! variants go through `catalog::decisions`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{keywords, optional_text, Dimension, LONG_TEXT_MAX, SHORT_TEXT_MAX};
use crate::values::{
    bounded_multiline_text, bounded_text, Currency, Money, Price, Sku, Slug, TextLayout, Url,
    ValueError,
};

/// `product_attributes.name` and the keys of a variant's attributes: `VARCHAR(100)`.
pub const ATTRIBUTE_NAME_MAX: usize = 100;

/// `products.status`. The life cycle:
/// draft → active; active ↔ inactive; active | inactive → archived; archived is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    #[default]
    Draft,
    Active,
    Inactive,
    Archived,
}

impl ProductStatus {
    pub const ALL: [ProductStatus; 4] = [
        ProductStatus::Draft,
        ProductStatus::Active,
        ProductStatus::Inactive,
        ProductStatus::Archived,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ProductStatus::Draft => "draft",
            ProductStatus::Active => "active",
            ProductStatus::Inactive => "inactive",
            ProductStatus::Archived => "archived",
        }
    }

    /// Whether the life cycle allows `self → to`. A same-status "change" is not
    /// a transition.
    pub fn can_become(self, to: ProductStatus) -> bool {
        use ProductStatus::*;
        matches!(
            (self, to),
            (Draft, Active)
                | (Active, Inactive)
                | (Inactive, Active)
                | (Active, Archived)
                | (Inactive, Archived)
        )
    }
}

impl fmt::Display for ProductStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The editable non-price, non-status fields of a product. Updates carry the
/// full new value: the command side merges a partial update into
/// `Product::details()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductDetails {
    pub name: String,
    pub slug: Slug,
    pub description: Option<String>,
    pub short_description: Option<String>,
    pub category_id: Option<Uuid>,
    pub brand_id: Option<Uuid>,
    pub weight: Option<Dimension>,
    pub length: Option<Dimension>,
    pub width: Option<Dimension>,
    pub height: Option<Dimension>,
    pub meta_title: Option<String>,
    pub meta_description: Option<String>,
    pub meta_keywords: Vec<String>,
}

impl ProductDetails {
    /// Trims and bounds every text to its column.
    fn validated(self) -> Result<Self, ValueError> {
        Ok(Self {
            name: bounded_text("name", &self.name, SHORT_TEXT_MAX)?,
            description: optional_text(
                "description",
                self.description,
                LONG_TEXT_MAX,
                TextLayout::MultiLine,
            )?,
            short_description: optional_text(
                "short_description",
                self.short_description,
                LONG_TEXT_MAX,
                TextLayout::MultiLine,
            )?,
            meta_title: optional_text(
                "meta_title",
                self.meta_title,
                SHORT_TEXT_MAX,
                TextLayout::SingleLine,
            )?,
            meta_description: optional_text(
                "meta_description",
                self.meta_description,
                LONG_TEXT_MAX,
                TextLayout::MultiLine,
            )?,
            meta_keywords: keywords(self.meta_keywords)?,
            ..self
        })
    }
}

/// A `product_images` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductImage {
    pub image_id: Uuid,
    pub url: Url,
    pub alt_text: Option<String>,
    pub sort_order: i32,
    pub is_primary: bool,
}

/// An image's new `sort_order` after a reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductImagePosition {
    pub image_id: Uuid,
    pub sort_order: i32,
}

/// A `product_attributes` row; `name` is unique within the product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductAttribute {
    pub attribute_id: Uuid,
    pub name: String,
    pub value: String,
    pub sort_order: i32,
}

/// A `product_variants` row. `stock_quantity` is the initial stock: inventory
/// owns stock once the variant exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductVariant {
    pub variant_id: Uuid,
    pub sku: Sku,
    pub name: Option<String>,
    pub price: Price,
    pub stock_quantity: i32,
    pub attributes: BTreeMap<String, String>,
    pub is_active: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    state: Option<ProductState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ProductState {
    product_id: Uuid,
    sku: Sku,
    details: ProductDetails,
    regular_price: Price,
    sale_price: Option<Price>,
    cost_price: Option<Money>,
    currency: Currency,
    track_inventory: bool,
    stock_quantity: i32,
    low_stock_threshold: i32,
    status: ProductStatus,
    featured: bool,
    published_at: Option<DateTime<Utc>>,
    images: Vec<ProductImage>,
    attributes: Vec<ProductAttribute>,
    variants: Vec<ProductVariant>,
}

impl Product {
    pub fn is_created(&self) -> bool {
        self.state.is_some()
    }
    pub fn id(&self) -> Option<Uuid> {
        self.state.as_ref().map(|s| s.product_id)
    }
    pub fn details(&self) -> Option<&ProductDetails> {
        self.state.as_ref().map(|s| &s.details)
    }
    pub fn sku(&self) -> Option<&Sku> {
        self.state.as_ref().map(|s| &s.sku)
    }
    pub fn slug(&self) -> Option<&Slug> {
        self.state.as_ref().map(|s| &s.details.slug)
    }
    pub fn name(&self) -> Option<&str> {
        self.state.as_ref().map(|s| s.details.name.as_str())
    }
    pub fn status(&self) -> Option<ProductStatus> {
        self.state.as_ref().map(|s| s.status)
    }
    pub fn regular_price(&self) -> Option<Price> {
        self.state.as_ref().map(|s| s.regular_price)
    }
    pub fn sale_price(&self) -> Option<Price> {
        self.state.as_ref().and_then(|s| s.sale_price)
    }
    pub fn cost_price(&self) -> Option<Money> {
        self.state.as_ref().and_then(|s| s.cost_price)
    }
    /// What a buyer pays per unit today: the sale price when there is one.
    pub fn effective_price(&self) -> Option<Price> {
        self.state
            .as_ref()
            .map(|s| s.sale_price.unwrap_or(s.regular_price))
    }
    pub fn currency(&self) -> Option<&Currency> {
        self.state.as_ref().map(|s| &s.currency)
    }
    pub fn category_id(&self) -> Option<Uuid> {
        self.state.as_ref().and_then(|s| s.details.category_id)
    }
    pub fn brand_id(&self) -> Option<Uuid> {
        self.state.as_ref().and_then(|s| s.details.brand_id)
    }
    pub fn track_inventory(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.track_inventory)
    }
    /// The stock given at creation; inventory owns stock from then on.
    pub fn initial_stock_quantity(&self) -> Option<i32> {
        self.state.as_ref().map(|s| s.stock_quantity)
    }
    pub fn low_stock_threshold(&self) -> Option<i32> {
        self.state.as_ref().map(|s| s.low_stock_threshold)
    }
    pub fn is_featured(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.featured)
    }
    pub fn published_at(&self) -> Option<DateTime<Utc>> {
        self.state.as_ref().and_then(|s| s.published_at)
    }
    /// Images in insertion order (not sorted by `sort_order`).
    pub fn images(&self) -> &[ProductImage] {
        self.state.as_ref().map_or(&[], |s| &s.images)
    }
    pub fn primary_image(&self) -> Option<&ProductImage> {
        self.images().iter().find(|i| i.is_primary)
    }
    pub fn attributes(&self) -> &[ProductAttribute] {
        self.state.as_ref().map_or(&[], |s| &s.attributes)
    }
    pub fn variants(&self) -> &[ProductVariant] {
        self.state.as_ref().map_or(&[], |s| &s.variants)
    }
    pub fn variant(&self, variant_id: Uuid) -> Option<&ProductVariant> {
        self.variants().iter().find(|v| v.variant_id == variant_id)
    }
}

/// Every seed column of a new product. Status starts as draft, unfeatured.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateProduct {
    pub product_id: Uuid,
    pub sku: Sku,
    pub name: String,
    pub slug: Slug,
    pub description: Option<String>,
    pub short_description: Option<String>,
    pub category_id: Option<Uuid>,
    pub brand_id: Option<Uuid>,
    pub regular_price: Price,
    pub sale_price: Option<Price>,
    pub cost_price: Option<Money>,
    pub currency: Currency,
    pub track_inventory: bool,
    /// Initial stock, at least 0.
    pub stock_quantity: i32,
    /// At least 0.
    pub low_stock_threshold: i32,
    pub weight: Option<Dimension>,
    pub length: Option<Dimension>,
    pub width: Option<Dimension>,
    pub height: Option<Dimension>,
    pub meta_title: Option<String>,
    pub meta_description: Option<String>,
    pub meta_keywords: Vec<String>,
    pub at: DateTime<Utc>,
}

/// A new variant. Its sku shares `UniqueScope::Sku` with products, so the
/// command side adds variants through `decisions::add_product_variant`.
#[derive(Debug, Clone, PartialEq)]
pub struct AddProductVariant {
    pub variant_id: Uuid,
    pub sku: Sku,
    pub name: Option<String>,
    pub price: Price,
    /// Initial stock, at least 0.
    pub stock_quantity: i32,
    pub attributes: BTreeMap<String, String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProductCommand {
    CreateProduct(CreateProduct),
    UpdateProductDetails {
        details: ProductDetails,
        at: DateTime<Utc>,
    },
    ChangeProductPrice {
        regular_price: Price,
        sale_price: Option<Price>,
        cost_price: Option<Money>,
        at: DateTime<Utc>,
    },
    ChangeProductStatus {
        status: ProductStatus,
        at: DateTime<Utc>,
    },
    SetProductFeatured {
        featured: bool,
        at: DateTime<Utc>,
    },
    AddProductImage {
        image_id: Uuid,
        url: Url,
        alt_text: Option<String>,
        sort_order: i32,
        at: DateTime<Utc>,
    },
    RemoveProductImage {
        image_id: Uuid,
        at: DateTime<Utc>,
    },
    SetPrimaryProductImage {
        image_id: Uuid,
        at: DateTime<Utc>,
    },
    /// `image_ids` in their new order; must be exactly the current images.
    ReorderProductImages {
        image_ids: Vec<Uuid>,
        at: DateTime<Utc>,
    },
    /// Adds the attribute `name` or replaces its value and sort order.
    /// `attribute_id` is used only when the name is new.
    SetProductAttribute {
        attribute_id: Uuid,
        name: String,
        value: String,
        sort_order: i32,
        at: DateTime<Utc>,
    },
    RemoveProductAttribute {
        name: String,
        at: DateTime<Utc>,
    },
    AddProductVariant(AddProductVariant),
    /// The full new editable values; the sku never changes, and stock belongs
    /// to inventory.
    UpdateProductVariant {
        variant_id: Uuid,
        name: Option<String>,
        price: Price,
        attributes: BTreeMap<String, String>,
        at: DateTime<Utc>,
    },
    DeactivateProductVariant {
        variant_id: Uuid,
        at: DateTime<Utc>,
    },
    ActivateProductVariant {
        variant_id: Uuid,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProductEvent {
    ProductCreated {
        product_id: Uuid,
        sku: Sku,
        name: String,
        slug: Slug,
        description: Option<String>,
        short_description: Option<String>,
        category_id: Option<Uuid>,
        brand_id: Option<Uuid>,
        regular_price: Price,
        sale_price: Option<Price>,
        cost_price: Option<Money>,
        currency: Currency,
        track_inventory: bool,
        stock_quantity: i32,
        low_stock_threshold: i32,
        weight: Option<Dimension>,
        length: Option<Dimension>,
        width: Option<Dimension>,
        height: Option<Dimension>,
        meta_title: Option<String>,
        meta_description: Option<String>,
        meta_keywords: Vec<String>,
        status: ProductStatus,
        featured: bool,
        at: DateTime<Utc>,
    },
    ProductDetailsUpdated {
        product_id: Uuid,
        details: ProductDetails,
        previous_slug: Slug,
        at: DateTime<Utc>,
    },
    ProductPriceChanged {
        product_id: Uuid,
        previous_regular_price: Price,
        previous_sale_price: Option<Price>,
        regular_price: Price,
        sale_price: Option<Price>,
        cost_price: Option<Money>,
        at: DateTime<Utc>,
    },
    /// `featured` is the flag after the change: leaving `active` always
    /// unfeatures, so the read model sets the column from here and no separate
    /// `ProductUnfeatured` is emitted. `published_at` is the first activation
    /// time (kept across later changes), `None` until then.
    ProductStatusChanged {
        product_id: Uuid,
        previous_status: ProductStatus,
        status: ProductStatus,
        published_at: Option<DateTime<Utc>>,
        featured: bool,
        at: DateTime<Utc>,
    },
    ProductFeatured {
        product_id: Uuid,
        at: DateTime<Utc>,
    },
    ProductUnfeatured {
        product_id: Uuid,
        at: DateTime<Utc>,
    },
    /// `is_primary` is true for the product's first image.
    ProductImageAdded {
        product_id: Uuid,
        image_id: Uuid,
        url: Url,
        alt_text: Option<String>,
        sort_order: i32,
        is_primary: bool,
        at: DateTime<Utc>,
    },
    /// `new_primary_image_id` is the image promoted because the removed one
    /// was primary (the next by sort order), `None` when nothing changed or no
    /// image is left.
    ProductImageRemoved {
        product_id: Uuid,
        image_id: Uuid,
        new_primary_image_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
    ProductPrimaryImageChanged {
        product_id: Uuid,
        image_id: Uuid,
        previous_primary_image_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
    /// Every image with its new `sort_order` (0, 1, 2, ... in the new order).
    ProductImagesReordered {
        product_id: Uuid,
        images: Vec<ProductImagePosition>,
        at: DateTime<Utc>,
    },
    /// Insert or update of the attribute row `attribute_id`.
    ProductAttributeSet {
        product_id: Uuid,
        attribute_id: Uuid,
        name: String,
        value: String,
        sort_order: i32,
        at: DateTime<Utc>,
    },
    ProductAttributeRemoved {
        product_id: Uuid,
        attribute_id: Uuid,
        name: String,
        at: DateTime<Utc>,
    },
    ProductVariantAdded {
        product_id: Uuid,
        variant_id: Uuid,
        sku: Sku,
        name: Option<String>,
        price: Price,
        stock_quantity: i32,
        attributes: BTreeMap<String, String>,
        is_active: bool,
        at: DateTime<Utc>,
    },
    ProductVariantUpdated {
        product_id: Uuid,
        variant_id: Uuid,
        sku: Sku,
        name: Option<String>,
        price: Price,
        attributes: BTreeMap<String, String>,
        at: DateTime<Utc>,
    },
    ProductVariantDeactivated {
        product_id: Uuid,
        variant_id: Uuid,
        sku: Sku,
        at: DateTime<Utc>,
    },
    ProductVariantActivated {
        product_id: Uuid,
        variant_id: Uuid,
        sku: Sku,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> String {
        match self {
            ProductEvent::ProductCreated { .. } => "ProductCreated",
            ProductEvent::ProductDetailsUpdated { .. } => "ProductDetailsUpdated",
            ProductEvent::ProductPriceChanged { .. } => "ProductPriceChanged",
            ProductEvent::ProductStatusChanged { .. } => "ProductStatusChanged",
            ProductEvent::ProductFeatured { .. } => "ProductFeatured",
            ProductEvent::ProductUnfeatured { .. } => "ProductUnfeatured",
            ProductEvent::ProductImageAdded { .. } => "ProductImageAdded",
            ProductEvent::ProductImageRemoved { .. } => "ProductImageRemoved",
            ProductEvent::ProductPrimaryImageChanged { .. } => "ProductPrimaryImageChanged",
            ProductEvent::ProductImagesReordered { .. } => "ProductImagesReordered",
            ProductEvent::ProductAttributeSet { .. } => "ProductAttributeSet",
            ProductEvent::ProductAttributeRemoved { .. } => "ProductAttributeRemoved",
            ProductEvent::ProductVariantAdded { .. } => "ProductVariantAdded",
            ProductEvent::ProductVariantUpdated { .. } => "ProductVariantUpdated",
            ProductEvent::ProductVariantDeactivated { .. } => "ProductVariantDeactivated",
            ProductEvent::ProductVariantActivated { .. } => "ProductVariantActivated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProductError {
    #[error("product not found")]
    NotFound,
    #[error("product {product_id} already exists")]
    AlreadyExists { product_id: Uuid },
    #[error("product {product_id} is archived and can no longer change")]
    Archived { product_id: Uuid },
    #[error("sku {sku} is already taken")]
    SkuTaken { sku: Sku },
    #[error("product slug {slug} is already taken")]
    SlugTaken { slug: Slug },
    #[error("sale price {sale_price} must be below the regular price {regular_price}")]
    SalePriceNotBelowRegular {
        sale_price: Price,
        regular_price: Price,
    },
    #[error("stock quantity {stock_quantity} must not be negative")]
    NegativeStockQuantity { stock_quantity: i32 },
    #[error("low stock threshold {low_stock_threshold} must not be negative")]
    NegativeLowStockThreshold { low_stock_threshold: i32 },
    #[error("product {product_id} cannot go from {from} to {to}")]
    InvalidStatusTransition {
        product_id: Uuid,
        from: ProductStatus,
        to: ProductStatus,
    },
    #[error("product {product_id} is already {status}")]
    StatusUnchanged {
        product_id: Uuid,
        status: ProductStatus,
    },
    #[error("product {product_id} needs a category to be active")]
    ActivationRequiresCategory { product_id: Uuid },
    #[error("product {product_id} is active and must keep a category")]
    CategoryRequiredWhileActive { product_id: Uuid },
    #[error("product {product_id} is {status}; only an active product can be featured")]
    FeaturedRequiresActive {
        product_id: Uuid,
        status: ProductStatus,
    },
    #[error("product {product_id} is already featured")]
    AlreadyFeatured { product_id: Uuid },
    #[error("product {product_id} is not featured")]
    NotFeatured { product_id: Uuid },
    #[error("image {image_id} already exists")]
    ImageAlreadyExists { image_id: Uuid },
    #[error("image {image_id} not found")]
    ImageNotFound { image_id: Uuid },
    #[error("image {image_id} is already the primary image")]
    ImageAlreadyPrimary { image_id: Uuid },
    #[error("a reorder must list exactly the current images {expected:?}, got {given:?}")]
    ImageOrderMismatch {
        expected: Vec<Uuid>,
        given: Vec<Uuid>,
    },
    #[error("attribute {name:?} not found")]
    AttributeNotFound { name: String },
    #[error("variant {variant_id} already exists")]
    VariantAlreadyExists { variant_id: Uuid },
    #[error("variant {variant_id} not found")]
    VariantNotFound { variant_id: Uuid },
    #[error("variant attribute {name:?} is given twice")]
    DuplicateVariantAttributeName { name: String },
    #[error("active variant {variant_id} already has the attributes {attributes:?}")]
    VariantAttributesTaken {
        variant_id: Uuid,
        attributes: BTreeMap<String, String>,
    },
    #[error("variant {variant_id} is already active")]
    VariantAlreadyActive { variant_id: Uuid },
    #[error("variant {variant_id} is already inactive")]
    VariantAlreadyInactive { variant_id: Uuid },
    #[error(transparent)]
    InvalidValue(#[from] ValueError),
}

/// Trims and bounds a variant's attribute names and values; two names equal
/// after trimming would silently merge, so they are refused.
fn variant_attributes(
    raw: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ProductError> {
    let mut attributes = BTreeMap::new();
    for (name, value) in raw {
        let name = bounded_text("variant_attribute_name", &name, ATTRIBUTE_NAME_MAX)?;
        let value = bounded_text("variant_attribute_value", &value, SHORT_TEXT_MAX)?;
        if attributes.insert(name.clone(), value).is_some() {
            return Err(ProductError::DuplicateVariantAttributeName { name });
        }
    }
    Ok(attributes)
}

/// Two active variants of one product must differ in their attributes, or a
/// shopper's choice could not tell them apart.
fn check_combination_free(
    s: &ProductState,
    attributes: &BTreeMap<String, String>,
    except: Uuid,
) -> Result<(), ProductError> {
    match s
        .variants
        .iter()
        .find(|v| v.is_active && v.variant_id != except && &v.attributes == attributes)
    {
        Some(v) => Err(ProductError::VariantAttributesTaken {
            variant_id: v.variant_id,
            attributes: attributes.clone(),
        }),
        None => Ok(()),
    }
}

fn find_variant(s: &ProductState, variant_id: Uuid) -> Result<&ProductVariant, ProductError> {
    s.variants
        .iter()
        .find(|v| v.variant_id == variant_id)
        .ok_or(ProductError::VariantNotFound { variant_id })
}

fn find_image(s: &ProductState, image_id: Uuid) -> Result<&ProductImage, ProductError> {
    s.images
        .iter()
        .find(|i| i.image_id == image_id)
        .ok_or(ProductError::ImageNotFound { image_id })
}

fn check_sale_price(regular_price: Price, sale_price: Option<Price>) -> Result<(), ProductError> {
    match sale_price {
        Some(sale_price) if sale_price >= regular_price => {
            Err(ProductError::SalePriceNotBelowRegular {
                sale_price,
                regular_price,
            })
        }
        _ => Ok(()),
    }
}

impl Product {
    /// The events `command` produces against the current state, without
    /// side effects; `handle` and the decisions both go through here.
    pub fn decide(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        if let ProductCommand::CreateProduct(c) = command {
            return self.create(c);
        }
        let s = self.state.as_ref().ok_or(ProductError::NotFound)?;
        let product_id = s.product_id;
        if s.status == ProductStatus::Archived {
            return Err(ProductError::Archived { product_id });
        }
        let event = match command {
            ProductCommand::CreateProduct(_) => unreachable!("handled above"),
            ProductCommand::UpdateProductDetails { details, at } => {
                let details = details.validated()?;
                if s.status == ProductStatus::Active && details.category_id.is_none() {
                    return Err(ProductError::CategoryRequiredWhileActive { product_id });
                }
                ProductEvent::ProductDetailsUpdated {
                    product_id,
                    details,
                    previous_slug: s.details.slug.clone(),
                    at,
                }
            }
            ProductCommand::ChangeProductPrice {
                regular_price,
                sale_price,
                cost_price,
                at,
            } => {
                check_sale_price(regular_price, sale_price)?;
                ProductEvent::ProductPriceChanged {
                    product_id,
                    previous_regular_price: s.regular_price,
                    previous_sale_price: s.sale_price,
                    regular_price,
                    sale_price,
                    cost_price,
                    at,
                }
            }
            ProductCommand::ChangeProductStatus { status, at } => {
                if status == s.status {
                    return Err(ProductError::StatusUnchanged { product_id, status });
                }
                if !s.status.can_become(status) {
                    return Err(ProductError::InvalidStatusTransition {
                        product_id,
                        from: s.status,
                        to: status,
                    });
                }
                // The price is mandatory from creation on, so the category is
                // the only activation precondition that can be missing.
                if status == ProductStatus::Active && s.details.category_id.is_none() {
                    return Err(ProductError::ActivationRequiresCategory { product_id });
                }
                let published_at = match (s.published_at, status) {
                    (None, ProductStatus::Active) => Some(at),
                    (kept, _) => kept,
                };
                ProductEvent::ProductStatusChanged {
                    product_id,
                    previous_status: s.status,
                    status,
                    published_at,
                    featured: s.featured && status == ProductStatus::Active,
                    at,
                }
            }
            ProductCommand::SetProductFeatured { featured: true, at } => {
                if s.status != ProductStatus::Active {
                    return Err(ProductError::FeaturedRequiresActive {
                        product_id,
                        status: s.status,
                    });
                }
                if s.featured {
                    return Err(ProductError::AlreadyFeatured { product_id });
                }
                ProductEvent::ProductFeatured { product_id, at }
            }
            ProductCommand::SetProductFeatured {
                featured: false,
                at,
            } => {
                if !s.featured {
                    return Err(ProductError::NotFeatured { product_id });
                }
                ProductEvent::ProductUnfeatured { product_id, at }
            }
            ProductCommand::AddProductImage {
                image_id,
                url,
                alt_text,
                sort_order,
                at,
            } => {
                if s.images.iter().any(|i| i.image_id == image_id) {
                    return Err(ProductError::ImageAlreadyExists { image_id });
                }
                ProductEvent::ProductImageAdded {
                    product_id,
                    image_id,
                    url,
                    alt_text: optional_text(
                        "alt_text",
                        alt_text,
                        SHORT_TEXT_MAX,
                        TextLayout::SingleLine,
                    )?,
                    sort_order,
                    is_primary: s.images.is_empty(),
                    at,
                }
            }
            ProductCommand::RemoveProductImage { image_id, at } => {
                let removed = find_image(s, image_id)?;
                let new_primary_image_id = if removed.is_primary {
                    // The first by sort order; ties go to the earliest added.
                    s.images
                        .iter()
                        .filter(|i| i.image_id != image_id)
                        .min_by_key(|i| i.sort_order)
                        .map(|i| i.image_id)
                } else {
                    None
                };
                ProductEvent::ProductImageRemoved {
                    product_id,
                    image_id,
                    new_primary_image_id,
                    at,
                }
            }
            ProductCommand::SetPrimaryProductImage { image_id, at } => {
                if find_image(s, image_id)?.is_primary {
                    return Err(ProductError::ImageAlreadyPrimary { image_id });
                }
                ProductEvent::ProductPrimaryImageChanged {
                    product_id,
                    image_id,
                    previous_primary_image_id: s
                        .images
                        .iter()
                        .find(|i| i.is_primary)
                        .map(|i| i.image_id),
                    at,
                }
            }
            ProductCommand::ReorderProductImages { image_ids, at } => {
                let mut expected: Vec<Uuid> = s.images.iter().map(|i| i.image_id).collect();
                let mut given = image_ids.clone();
                expected.sort();
                given.sort();
                // Sorted equality also catches duplicates standing in for a missing id.
                if expected != given {
                    return Err(ProductError::ImageOrderMismatch {
                        expected: s.images.iter().map(|i| i.image_id).collect(),
                        given: image_ids,
                    });
                }
                ProductEvent::ProductImagesReordered {
                    product_id,
                    images: image_ids
                        .into_iter()
                        .zip(0..)
                        .map(|(image_id, sort_order)| ProductImagePosition {
                            image_id,
                            sort_order,
                        })
                        .collect(),
                    at,
                }
            }
            ProductCommand::SetProductAttribute {
                attribute_id,
                name,
                value,
                sort_order,
                at,
            } => {
                let name = bounded_text("attribute_name", &name, ATTRIBUTE_NAME_MAX)?;
                let value = bounded_multiline_text("attribute_value", &value, LONG_TEXT_MAX)?;
                let existing = s.attributes.iter().find(|a| a.name == name);
                if let Some(a) = existing {
                    if a.value == value && a.sort_order == sort_order {
                        // Setting what is already there is a no-op, not an error,
                        // so a client can retry a PUT safely.
                        return Ok(vec![]);
                    }
                }
                ProductEvent::ProductAttributeSet {
                    product_id,
                    attribute_id: existing.map_or(attribute_id, |a| a.attribute_id),
                    name,
                    value,
                    sort_order,
                    at,
                }
            }
            ProductCommand::RemoveProductAttribute { name, at } => {
                let trimmed = name.trim();
                let a = s
                    .attributes
                    .iter()
                    .find(|a| a.name == trimmed)
                    .ok_or(ProductError::AttributeNotFound { name: name.clone() })?;
                ProductEvent::ProductAttributeRemoved {
                    product_id,
                    attribute_id: a.attribute_id,
                    name: a.name.clone(),
                    at,
                }
            }
            ProductCommand::AddProductVariant(c) => {
                if s.variants.iter().any(|v| v.variant_id == c.variant_id) {
                    return Err(ProductError::VariantAlreadyExists {
                        variant_id: c.variant_id,
                    });
                }
                // The unique-key claim is the authority across products; this
                // catches a clash within the product even without it.
                if c.sku == s.sku || s.variants.iter().any(|v| v.sku == c.sku) {
                    return Err(ProductError::SkuTaken { sku: c.sku });
                }
                if c.stock_quantity < 0 {
                    return Err(ProductError::NegativeStockQuantity {
                        stock_quantity: c.stock_quantity,
                    });
                }
                let attributes = variant_attributes(c.attributes)?;
                check_combination_free(s, &attributes, c.variant_id)?;
                ProductEvent::ProductVariantAdded {
                    product_id,
                    variant_id: c.variant_id,
                    sku: c.sku,
                    name: optional_text(
                        "variant_name",
                        c.name,
                        SHORT_TEXT_MAX,
                        TextLayout::SingleLine,
                    )?,
                    price: c.price,
                    stock_quantity: c.stock_quantity,
                    attributes,
                    is_active: true,
                    at: c.at,
                }
            }
            ProductCommand::UpdateProductVariant {
                variant_id,
                name,
                price,
                attributes,
                at,
            } => {
                let variant = find_variant(s, variant_id)?;
                let attributes = variant_attributes(attributes)?;
                if variant.is_active {
                    check_combination_free(s, &attributes, variant_id)?;
                }
                ProductEvent::ProductVariantUpdated {
                    product_id,
                    variant_id,
                    sku: variant.sku.clone(),
                    name: optional_text(
                        "variant_name",
                        name,
                        SHORT_TEXT_MAX,
                        TextLayout::SingleLine,
                    )?,
                    price,
                    attributes,
                    at,
                }
            }
            ProductCommand::DeactivateProductVariant { variant_id, at } => {
                let variant = find_variant(s, variant_id)?;
                if !variant.is_active {
                    return Err(ProductError::VariantAlreadyInactive { variant_id });
                }
                ProductEvent::ProductVariantDeactivated {
                    product_id,
                    variant_id,
                    sku: variant.sku.clone(),
                    at,
                }
            }
            ProductCommand::ActivateProductVariant { variant_id, at } => {
                let variant = find_variant(s, variant_id)?;
                if variant.is_active {
                    return Err(ProductError::VariantAlreadyActive { variant_id });
                }
                check_combination_free(s, &variant.attributes, variant_id)?;
                ProductEvent::ProductVariantActivated {
                    product_id,
                    variant_id,
                    sku: variant.sku.clone(),
                    at,
                }
            }
        };
        Ok(vec![event])
    }

    fn create(&self, c: CreateProduct) -> Result<Vec<ProductEvent>, ProductError> {
        if let Some(s) = &self.state {
            return Err(ProductError::AlreadyExists {
                product_id: s.product_id,
            });
        }
        check_sale_price(c.regular_price, c.sale_price)?;
        if c.stock_quantity < 0 {
            return Err(ProductError::NegativeStockQuantity {
                stock_quantity: c.stock_quantity,
            });
        }
        if c.low_stock_threshold < 0 {
            return Err(ProductError::NegativeLowStockThreshold {
                low_stock_threshold: c.low_stock_threshold,
            });
        }
        let d = ProductDetails {
            name: c.name,
            slug: c.slug,
            description: c.description,
            short_description: c.short_description,
            category_id: c.category_id,
            brand_id: c.brand_id,
            weight: c.weight,
            length: c.length,
            width: c.width,
            height: c.height,
            meta_title: c.meta_title,
            meta_description: c.meta_description,
            meta_keywords: c.meta_keywords,
        }
        .validated()?;
        Ok(vec![ProductEvent::ProductCreated {
            product_id: c.product_id,
            sku: c.sku,
            name: d.name,
            slug: d.slug,
            description: d.description,
            short_description: d.short_description,
            category_id: d.category_id,
            brand_id: d.brand_id,
            regular_price: c.regular_price,
            sale_price: c.sale_price,
            cost_price: c.cost_price,
            currency: c.currency,
            track_inventory: c.track_inventory,
            stock_quantity: c.stock_quantity,
            low_stock_threshold: c.low_stock_threshold,
            weight: d.weight,
            length: d.length,
            width: d.width,
            height: d.height,
            meta_title: d.meta_title,
            meta_description: d.meta_description,
            meta_keywords: d.meta_keywords,
            status: ProductStatus::Draft,
            featured: false,
            at: c.at,
        }])
    }
}

impl Aggregate for Product {
    const TYPE: &'static str = "product";
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        if let ProductEvent::ProductCreated {
            product_id,
            sku,
            name,
            slug,
            description,
            short_description,
            category_id,
            brand_id,
            regular_price,
            sale_price,
            cost_price,
            currency,
            track_inventory,
            stock_quantity,
            low_stock_threshold,
            weight,
            length,
            width,
            height,
            meta_title,
            meta_description,
            meta_keywords,
            status,
            featured,
            ..
        } = event
        {
            self.state = Some(ProductState {
                product_id,
                sku,
                details: ProductDetails {
                    name,
                    slug,
                    description,
                    short_description,
                    category_id,
                    brand_id,
                    weight,
                    length,
                    width,
                    height,
                    meta_title,
                    meta_description,
                    meta_keywords,
                },
                regular_price,
                sale_price,
                cost_price,
                currency,
                track_inventory,
                stock_quantity,
                low_stock_threshold,
                status,
                featured,
                published_at: None,
                images: vec![],
                attributes: vec![],
                variants: vec![],
            });
            return;
        }
        let Some(s) = &mut self.state else { return };
        match event {
            ProductEvent::ProductCreated { .. } => {}
            ProductEvent::ProductDetailsUpdated { details, .. } => s.details = details,
            ProductEvent::ProductPriceChanged {
                regular_price,
                sale_price,
                cost_price,
                ..
            } => {
                s.regular_price = regular_price;
                s.sale_price = sale_price;
                s.cost_price = cost_price;
            }
            ProductEvent::ProductStatusChanged {
                status,
                published_at,
                featured,
                ..
            } => {
                s.status = status;
                s.published_at = published_at;
                s.featured = featured;
            }
            ProductEvent::ProductFeatured { .. } => s.featured = true,
            ProductEvent::ProductUnfeatured { .. } => s.featured = false,
            ProductEvent::ProductImageAdded {
                image_id,
                url,
                alt_text,
                sort_order,
                is_primary,
                ..
            } => s.images.push(ProductImage {
                image_id,
                url,
                alt_text,
                sort_order,
                is_primary,
            }),
            ProductEvent::ProductImageRemoved {
                image_id,
                new_primary_image_id,
                ..
            } => {
                s.images.retain(|i| i.image_id != image_id);
                if let Some(primary) = new_primary_image_id {
                    for i in &mut s.images {
                        i.is_primary = i.image_id == primary;
                    }
                }
            }
            ProductEvent::ProductPrimaryImageChanged { image_id, .. } => {
                for i in &mut s.images {
                    i.is_primary = i.image_id == image_id;
                }
            }
            ProductEvent::ProductImagesReordered { images, .. } => {
                for position in images {
                    if let Some(i) = s
                        .images
                        .iter_mut()
                        .find(|i| i.image_id == position.image_id)
                    {
                        i.sort_order = position.sort_order;
                    }
                }
            }
            ProductEvent::ProductAttributeSet {
                attribute_id,
                name,
                value,
                sort_order,
                ..
            } => {
                let attribute = ProductAttribute {
                    attribute_id,
                    name,
                    value,
                    sort_order,
                };
                match s
                    .attributes
                    .iter_mut()
                    .find(|a| a.attribute_id == attribute_id)
                {
                    Some(a) => *a = attribute,
                    None => s.attributes.push(attribute),
                }
            }
            ProductEvent::ProductAttributeRemoved { attribute_id, .. } => {
                s.attributes.retain(|a| a.attribute_id != attribute_id)
            }
            ProductEvent::ProductVariantAdded {
                variant_id,
                sku,
                name,
                price,
                stock_quantity,
                attributes,
                is_active,
                ..
            } => s.variants.push(ProductVariant {
                variant_id,
                sku,
                name,
                price,
                stock_quantity,
                attributes,
                is_active,
            }),
            ProductEvent::ProductVariantUpdated {
                variant_id,
                name,
                price,
                attributes,
                ..
            } => {
                if let Some(v) = s.variants.iter_mut().find(|v| v.variant_id == variant_id) {
                    v.name = name;
                    v.price = price;
                    v.attributes = attributes;
                }
            }
            ProductEvent::ProductVariantDeactivated { variant_id, .. } => {
                if let Some(v) = s.variants.iter_mut().find(|v| v.variant_id == variant_id) {
                    v.is_active = false;
                }
            }
            ProductEvent::ProductVariantActivated { variant_id, .. } => {
                if let Some(v) = s.variants.iter_mut().find(|v| v.variant_id == variant_id) {
                    v.is_active = true;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::category::tests::{at, slug};
    use chrono::Duration;
    use cqrs_es::test::TestFramework;
    use rust_decimal_macros::dec;

    type Given = TestFramework<Product>;

    pub(crate) fn price(amount: rust_decimal::Decimal) -> Price {
        Price::new(amount).unwrap()
    }

    pub(crate) fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    pub(crate) const CATEGORY: Uuid = Uuid::from_u128(0xC0FFEE);

    pub(crate) fn create(product_id: Uuid) -> CreateProduct {
        CreateProduct {
            product_id,
            sku: sku("iph-15-pro"),
            name: " iPhone 15 Pro ".into(),
            slug: slug("iphone-15-pro"),
            description: Some("A phone".into()),
            short_description: Some("".into()),
            category_id: Some(CATEGORY),
            brand_id: None,
            regular_price: price(dec!(41900)),
            sale_price: Some(price(dec!(35900))),
            cost_price: Some(Money::new(dec!(30000)).unwrap()),
            currency: Currency::thb(),
            track_inventory: true,
            stock_quantity: 50,
            low_stock_threshold: 5,
            weight: Some(Dimension::new(dec!(0.19)).unwrap()),
            length: None,
            width: None,
            height: None,
            meta_title: None,
            meta_description: None,
            meta_keywords: vec!["iphone".into()],
            at: at(),
        }
    }

    pub(crate) fn created(product_id: Uuid) -> ProductEvent {
        ProductEvent::ProductCreated {
            product_id,
            sku: sku("IPH-15-PRO"),
            name: "iPhone 15 Pro".into(),
            slug: slug("iphone-15-pro"),
            description: Some("A phone".into()),
            short_description: None,
            category_id: Some(CATEGORY),
            brand_id: None,
            regular_price: price(dec!(41900)),
            sale_price: Some(price(dec!(35900))),
            cost_price: Some(Money::new(dec!(30000)).unwrap()),
            currency: Currency::thb(),
            track_inventory: true,
            stock_quantity: 50,
            low_stock_threshold: 5,
            weight: Some(Dimension::new(dec!(0.19)).unwrap()),
            length: None,
            width: None,
            height: None,
            meta_title: None,
            meta_description: None,
            meta_keywords: vec!["iphone".into()],
            status: ProductStatus::Draft,
            featured: false,
            at: at(),
        }
    }

    pub(crate) fn created_without_category(product_id: Uuid) -> ProductEvent {
        let mut e = created(product_id);
        if let ProductEvent::ProductCreated { category_id, .. } = &mut e {
            *category_id = None;
        }
        e
    }

    pub(crate) fn status_changed(
        product_id: Uuid,
        from: ProductStatus,
        to: ProductStatus,
        published_at: Option<DateTime<Utc>>,
    ) -> ProductEvent {
        ProductEvent::ProductStatusChanged {
            product_id,
            previous_status: from,
            status: to,
            published_at,
            featured: false,
            at: at(),
        }
    }

    /// The events that bring a new product to `status` the allowed way.
    pub(crate) fn history_to(product_id: Uuid, status: ProductStatus) -> Vec<ProductEvent> {
        use ProductStatus::*;
        let mut events = vec![created(product_id)];
        let path: &[ProductStatus] = match status {
            Draft => &[],
            Active => &[Active],
            Inactive => &[Active, Inactive],
            Archived => &[Active, Archived],
        };
        let mut from = Draft;
        for &to in path {
            events.push(status_changed(product_id, from, to, Some(at())));
            from = to;
        }
        events
    }

    pub(crate) fn details() -> ProductDetails {
        ProductDetails {
            name: "iPhone 15 Pro Max".into(),
            slug: slug("iphone-15-pro-max"),
            description: None,
            short_description: Some(" Big ".into()),
            category_id: Some(CATEGORY),
            brand_id: Some(Uuid::from_u128(7)),
            weight: None,
            length: Some(Dimension::new(dec!(15.99)).unwrap()),
            width: None,
            height: None,
            meta_title: Some("Max".into()),
            meta_description: None,
            meta_keywords: vec![],
        }
    }

    fn set_status(status: ProductStatus) -> ProductCommand {
        ProductCommand::ChangeProductStatus { status, at: at() }
    }

    fn later() -> DateTime<Utc> {
        at() + Duration::days(3)
    }

    #[test]
    fn a_product_is_created_as_an_unfeatured_draft() {
        let id = Uuid::new_v4();
        Given::with(())
            .given_no_previous_events()
            .when(ProductCommand::CreateProduct(create(id)))
            .then_expect_events(vec![created(id)]);
    }

    #[test]
    fn a_product_cannot_be_created_twice() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id)])
            .when(ProductCommand::CreateProduct(create(Uuid::new_v4())))
            .then_expect_error(ProductError::AlreadyExists { product_id: id });
    }

    #[test]
    fn creation_refuses_a_sale_price_not_below_the_regular_price() {
        for sale in [dec!(41900), dec!(50000)] {
            let mut cmd = create(Uuid::new_v4());
            cmd.sale_price = Some(price(sale));
            Given::with(())
                .given_no_previous_events()
                .when(ProductCommand::CreateProduct(cmd))
                .then_expect_error(ProductError::SalePriceNotBelowRegular {
                    sale_price: price(sale),
                    regular_price: price(dec!(41900)),
                });
        }
    }

    #[test]
    fn creation_refuses_negative_stock_and_threshold() {
        let mut cmd = create(Uuid::new_v4());
        cmd.stock_quantity = -1;
        Given::with(())
            .given_no_previous_events()
            .when(ProductCommand::CreateProduct(cmd))
            .then_expect_error(ProductError::NegativeStockQuantity { stock_quantity: -1 });
        let mut cmd = create(Uuid::new_v4());
        cmd.low_stock_threshold = -5;
        Given::with(())
            .given_no_previous_events()
            .when(ProductCommand::CreateProduct(cmd))
            .then_expect_error(ProductError::NegativeLowStockThreshold {
                low_stock_threshold: -5,
            });
    }

    #[test]
    fn creation_bounds_texts_to_their_columns() {
        let mut cmd = create(Uuid::new_v4());
        cmd.meta_title = Some("t".repeat(256));
        Given::with(())
            .given_no_previous_events()
            .when(ProductCommand::CreateProduct(cmd))
            .then_expect_error(ProductError::InvalidValue(crate::values::length_error(
                "meta_title",
                &"t".repeat(256),
                255,
            )));
        let mut cmd = create(Uuid::new_v4());
        cmd.name = "".into();
        Given::with(())
            .given_no_previous_events()
            .when(ProductCommand::CreateProduct(cmd))
            .then_expect_error(ProductError::InvalidValue(crate::values::length_error(
                "name", "", 255,
            )));
    }

    #[test]
    fn commands_on_a_missing_product_are_refused() {
        for cmd in [
            ProductCommand::UpdateProductDetails {
                details: details(),
                at: at(),
            },
            set_status(ProductStatus::Active),
            ProductCommand::SetProductFeatured {
                featured: true,
                at: at(),
            },
        ] {
            Given::with(())
                .given_no_previous_events()
                .when(cmd)
                .then_expect_error(ProductError::NotFound);
        }
    }

    #[test]
    fn details_update_carries_the_full_details_and_previous_slug() {
        let id = Uuid::new_v4();
        let mut expected = details();
        expected.short_description = Some("Big".into());
        Given::with(())
            .given(vec![created(id)])
            .when(ProductCommand::UpdateProductDetails {
                details: details(),
                at: at(),
            })
            .then_expect_events(vec![ProductEvent::ProductDetailsUpdated {
                product_id: id,
                details: expected,
                previous_slug: slug("iphone-15-pro"),
                at: at(),
            }]);
    }

    #[test]
    fn an_active_product_cannot_drop_its_category_but_a_draft_can() {
        let id = Uuid::new_v4();
        let mut without = details();
        without.category_id = None;
        Given::with(())
            .given(history_to(id, ProductStatus::Active))
            .when(ProductCommand::UpdateProductDetails {
                details: without.clone(),
                at: at(),
            })
            .then_expect_error(ProductError::CategoryRequiredWhileActive { product_id: id });
        let events = Given::with(())
            .given(vec![created(id)])
            .when(ProductCommand::UpdateProductDetails {
                details: without,
                at: at(),
            })
            .inspect_result()
            .unwrap();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn price_change_carries_previous_and_new_prices() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id)])
            .when(ProductCommand::ChangeProductPrice {
                regular_price: price(dec!(39900)),
                sale_price: None,
                cost_price: None,
                at: at(),
            })
            .then_expect_events(vec![ProductEvent::ProductPriceChanged {
                product_id: id,
                previous_regular_price: price(dec!(41900)),
                previous_sale_price: Some(price(dec!(35900))),
                regular_price: price(dec!(39900)),
                sale_price: None,
                cost_price: None,
                at: at(),
            }]);
    }

    #[test]
    fn price_change_refuses_a_sale_price_not_below_regular() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id)])
            .when(ProductCommand::ChangeProductPrice {
                regular_price: price(dec!(100)),
                sale_price: Some(price(dec!(100))),
                cost_price: None,
                at: at(),
            })
            .then_expect_error(ProductError::SalePriceNotBelowRegular {
                sale_price: price(dec!(100)),
                regular_price: price(dec!(100)),
            });
    }

    #[test]
    fn every_status_pair_follows_the_life_cycle() {
        use ProductStatus::*;
        let allowed = [
            (Draft, Active),
            (Active, Inactive),
            (Inactive, Active),
            (Active, Archived),
            (Inactive, Archived),
        ];
        for from in ProductStatus::ALL {
            for to in ProductStatus::ALL {
                let id = Uuid::new_v4();
                let result = Given::with(())
                    .given(history_to(id, from))
                    .when(set_status(to))
                    .inspect_result();
                let expected = if from == Archived {
                    Err(ProductError::Archived { product_id: id })
                } else if from == to {
                    Err(ProductError::StatusUnchanged {
                        product_id: id,
                        status: to,
                    })
                } else if allowed.contains(&(from, to)) {
                    Ok(vec![status_changed(id, from, to, Some(at()))])
                } else {
                    Err(ProductError::InvalidStatusTransition {
                        product_id: id,
                        from,
                        to,
                    })
                };
                assert_eq!(result, expected, "{from} -> {to}");
                assert_eq!(from.can_become(to), allowed.contains(&(from, to)));
            }
        }
    }

    #[test]
    fn activation_requires_a_category() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created_without_category(id)])
            .when(set_status(ProductStatus::Active))
            .then_expect_error(ProductError::ActivationRequiresCategory { product_id: id });
    }

    #[test]
    fn published_at_is_set_at_first_activation_and_kept() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id)])
            .when(set_status(ProductStatus::Active))
            .then_expect_events(vec![status_changed(
                id,
                ProductStatus::Draft,
                ProductStatus::Active,
                Some(at()),
            )]);
        Given::with(())
            .given(history_to(id, ProductStatus::Inactive))
            .when(ProductCommand::ChangeProductStatus {
                status: ProductStatus::Active,
                at: later(),
            })
            .then_expect_events(vec![ProductEvent::ProductStatusChanged {
                product_id: id,
                previous_status: ProductStatus::Inactive,
                status: ProductStatus::Active,
                published_at: Some(at()),
                featured: false,
                at: later(),
            }]);
    }

    #[test]
    fn an_active_product_is_featured_and_unfeatured() {
        let id = Uuid::new_v4();
        let mut history = history_to(id, ProductStatus::Active);
        Given::with(())
            .given(history.clone())
            .when(ProductCommand::SetProductFeatured {
                featured: true,
                at: at(),
            })
            .then_expect_events(vec![ProductEvent::ProductFeatured {
                product_id: id,
                at: at(),
            }]);
        history.push(ProductEvent::ProductFeatured {
            product_id: id,
            at: at(),
        });
        Given::with(())
            .given(history.clone())
            .when(ProductCommand::SetProductFeatured {
                featured: true,
                at: at(),
            })
            .then_expect_error(ProductError::AlreadyFeatured { product_id: id });
        Given::with(())
            .given(history)
            .when(ProductCommand::SetProductFeatured {
                featured: false,
                at: at(),
            })
            .then_expect_events(vec![ProductEvent::ProductUnfeatured {
                product_id: id,
                at: at(),
            }]);
    }

    #[test]
    fn only_an_active_product_can_be_featured() {
        for status in [ProductStatus::Draft, ProductStatus::Inactive] {
            let id = Uuid::new_v4();
            Given::with(())
                .given(history_to(id, status))
                .when(ProductCommand::SetProductFeatured {
                    featured: true,
                    at: at(),
                })
                .then_expect_error(ProductError::FeaturedRequiresActive {
                    product_id: id,
                    status,
                });
        }
    }

    #[test]
    fn unfeaturing_an_unfeatured_product_is_refused() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(history_to(id, ProductStatus::Active))
            .when(ProductCommand::SetProductFeatured {
                featured: false,
                at: at(),
            })
            .then_expect_error(ProductError::NotFeatured { product_id: id });
    }

    #[test]
    fn leaving_active_unfeatures_in_the_status_event() {
        for to in [ProductStatus::Inactive, ProductStatus::Archived] {
            let id = Uuid::new_v4();
            let mut history = history_to(id, ProductStatus::Active);
            history.push(ProductEvent::ProductFeatured {
                product_id: id,
                at: at(),
            });
            Given::with(())
                .given(history)
                .when(set_status(to))
                .then_expect_events(vec![status_changed(
                    id,
                    ProductStatus::Active,
                    to,
                    Some(at()),
                )]);
        }
        // Coming back to active does not refeature.
        let id = Uuid::new_v4();
        let mut product = Product::default();
        for e in history_to(id, ProductStatus::Active) {
            product.apply(e);
        }
        product.apply(ProductEvent::ProductFeatured {
            product_id: id,
            at: at(),
        });
        assert!(product.is_featured());
        product.apply(status_changed(
            id,
            ProductStatus::Active,
            ProductStatus::Inactive,
            Some(at()),
        ));
        assert!(!product.is_featured());
    }

    #[test]
    fn an_archived_product_refuses_every_command() {
        let id = Uuid::new_v4();
        for cmd in [
            ProductCommand::UpdateProductDetails {
                details: details(),
                at: at(),
            },
            ProductCommand::ChangeProductPrice {
                regular_price: price(dec!(1)),
                sale_price: None,
                cost_price: None,
                at: at(),
            },
            set_status(ProductStatus::Active),
            ProductCommand::SetProductFeatured {
                featured: true,
                at: at(),
            },
            ProductCommand::SetProductFeatured {
                featured: false,
                at: at(),
            },
        ] {
            Given::with(())
                .given(history_to(id, ProductStatus::Archived))
                .when(cmd)
                .then_expect_error(ProductError::Archived { product_id: id });
        }
    }

    #[test]
    fn accessors_reflect_the_applied_history() {
        let id = Uuid::new_v4();
        let mut product = Product::default();
        assert!(!product.is_created());
        assert_eq!(product.status(), None);
        for e in history_to(id, ProductStatus::Active) {
            product.apply(e);
        }
        assert!(product.is_created());
        assert_eq!(product.sku(), Some(&sku("IPH-15-PRO")));
        assert_eq!(product.slug(), Some(&slug("iphone-15-pro")));
        assert_eq!(product.status(), Some(ProductStatus::Active));
        assert_eq!(product.regular_price(), Some(price(dec!(41900))));
        assert_eq!(product.sale_price(), Some(price(dec!(35900))));
        assert_eq!(product.effective_price(), Some(price(dec!(35900))));
        assert_eq!(product.category_id(), Some(CATEGORY));
        assert_eq!(product.published_at(), Some(at()));
        assert_eq!(product.details().unwrap().name, "iPhone 15 Pro");
    }

    #[test]
    fn status_serializes_as_the_seed_check_values() {
        for status in ProductStatus::ALL {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
        assert_eq!(
            created(Uuid::nil()).event_type(),
            "ProductCreated".to_owned()
        );
        assert_eq!(created(Uuid::nil()).event_version(), "1");
    }

    // ---- images ----

    fn image(n: u128) -> Uuid {
        Uuid::from_u128(0x1000 + n)
    }

    fn image_added(product_id: Uuid, n: u128, sort_order: i32, is_primary: bool) -> ProductEvent {
        ProductEvent::ProductImageAdded {
            product_id,
            image_id: image(n),
            url: Url::parse(&format!("https://cdn.example.com/{n}.jpg")).unwrap(),
            alt_text: None,
            sort_order,
            is_primary,
            at: at(),
        }
    }

    fn add_image(n: u128, sort_order: i32) -> ProductCommand {
        ProductCommand::AddProductImage {
            image_id: image(n),
            url: Url::parse(&format!("https://cdn.example.com/{n}.jpg")).unwrap(),
            alt_text: Some("  ".into()),
            sort_order,
            at: at(),
        }
    }

    /// Images 1 (sort 5, primary), 2 (sort 3), 3 (sort 1), 4 (sort 1).
    fn with_images(product_id: Uuid) -> Vec<ProductEvent> {
        vec![
            created(product_id),
            image_added(product_id, 1, 5, true),
            image_added(product_id, 2, 3, false),
            image_added(product_id, 3, 1, false),
            image_added(product_id, 4, 1, false),
        ]
    }

    #[test]
    fn the_first_image_is_primary_and_later_ones_are_not() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id)])
            .when(add_image(1, 5))
            .then_expect_events(vec![image_added(id, 1, 5, true)]);
        Given::with(())
            .given(vec![created(id), image_added(id, 1, 5, true)])
            .when(add_image(2, 0))
            .then_expect_events(vec![image_added(id, 2, 0, false)]);
    }

    #[test]
    fn an_image_id_is_added_once_and_alt_text_is_bounded() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id), image_added(id, 1, 5, true)])
            .when(add_image(1, 0))
            .then_expect_error(ProductError::ImageAlreadyExists { image_id: image(1) });
        Given::with(())
            .given(vec![created(id)])
            .when(ProductCommand::AddProductImage {
                image_id: image(1),
                url: Url::parse("https://cdn.example.com/1.jpg").unwrap(),
                alt_text: Some("a".repeat(256)),
                sort_order: 0,
                at: at(),
            })
            .then_expect_error(ProductError::InvalidValue(crate::values::length_error(
                "alt_text",
                &"a".repeat(256),
                255,
            )));
    }

    #[test]
    fn removing_the_primary_promotes_the_next_by_sort_order_earliest_first() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(with_images(id))
            .when(ProductCommand::RemoveProductImage {
                image_id: image(1),
                at: at(),
            })
            .then_expect_events(vec![ProductEvent::ProductImageRemoved {
                product_id: id,
                image_id: image(1),
                new_primary_image_id: Some(image(3)),
                at: at(),
            }]);
    }

    #[test]
    fn removing_another_image_or_the_last_one_promotes_nothing() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(with_images(id))
            .when(ProductCommand::RemoveProductImage {
                image_id: image(2),
                at: at(),
            })
            .then_expect_events(vec![ProductEvent::ProductImageRemoved {
                product_id: id,
                image_id: image(2),
                new_primary_image_id: None,
                at: at(),
            }]);
        Given::with(())
            .given(vec![created(id), image_added(id, 1, 0, true)])
            .when(ProductCommand::RemoveProductImage {
                image_id: image(1),
                at: at(),
            })
            .then_expect_events(vec![ProductEvent::ProductImageRemoved {
                product_id: id,
                image_id: image(1),
                new_primary_image_id: None,
                at: at(),
            }]);
    }

    #[test]
    fn an_unknown_image_cannot_be_removed_or_made_primary() {
        let id = Uuid::new_v4();
        for cmd in [
            ProductCommand::RemoveProductImage {
                image_id: image(9),
                at: at(),
            },
            ProductCommand::SetPrimaryProductImage {
                image_id: image(9),
                at: at(),
            },
        ] {
            Given::with(())
                .given(with_images(id))
                .when(cmd)
                .then_expect_error(ProductError::ImageNotFound { image_id: image(9) });
        }
    }

    #[test]
    fn the_primary_image_changes_but_not_to_itself() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(with_images(id))
            .when(ProductCommand::SetPrimaryProductImage {
                image_id: image(2),
                at: at(),
            })
            .then_expect_events(vec![ProductEvent::ProductPrimaryImageChanged {
                product_id: id,
                image_id: image(2),
                previous_primary_image_id: Some(image(1)),
                at: at(),
            }]);
        Given::with(())
            .given(with_images(id))
            .when(ProductCommand::SetPrimaryProductImage {
                image_id: image(1),
                at: at(),
            })
            .then_expect_error(ProductError::ImageAlreadyPrimary { image_id: image(1) });
    }

    #[test]
    fn a_reorder_numbers_every_current_image_in_the_new_order() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(with_images(id))
            .when(ProductCommand::ReorderProductImages {
                image_ids: vec![image(4), image(2), image(1), image(3)],
                at: at(),
            })
            .then_expect_events(vec![ProductEvent::ProductImagesReordered {
                product_id: id,
                images: [4, 2, 1, 3]
                    .into_iter()
                    .zip(0..)
                    .map(|(n, sort_order)| ProductImagePosition {
                        image_id: image(n),
                        sort_order,
                    })
                    .collect(),
                at: at(),
            }]);
    }

    #[test]
    fn a_reorder_must_list_exactly_the_current_images() {
        let id = Uuid::new_v4();
        let current = vec![image(1), image(2), image(3), image(4)];
        for given in [
            vec![image(1), image(2), image(3)],
            vec![image(1), image(2), image(3), image(4), image(5)],
            vec![image(1), image(2), image(3), image(3)],
            vec![image(1), image(2), image(3), image(9)],
        ] {
            Given::with(())
                .given(with_images(id))
                .when(ProductCommand::ReorderProductImages {
                    image_ids: given.clone(),
                    at: at(),
                })
                .then_expect_error(ProductError::ImageOrderMismatch {
                    expected: current.clone(),
                    given,
                });
        }
    }

    #[derive(Debug, Clone)]
    enum ImageOp {
        Add(u128, i32),
        Remove(u128),
        SetPrimary(u128),
    }

    fn image_op() -> impl proptest::strategy::Strategy<Value = ImageOp> {
        use proptest::prelude::*;
        prop_oneof![
            (0u128..6, -3i32..3).prop_map(|(n, o)| ImageOp::Add(n, o)),
            (0u128..6).prop_map(ImageOp::Remove),
            (0u128..6).prop_map(ImageOp::SetPrimary),
        ]
    }

    proptest::proptest! {
        #[test]
        fn there_is_exactly_one_primary_once_there_is_any_image(
            ops in proptest::collection::vec(image_op(), 0..40)
        ) {
            let id = Uuid::new_v4();
            let mut product = Product::default();
            product.apply(created(id));
            for op in ops {
                let cmd = match op {
                    ImageOp::Add(n, o) => add_image(n, o),
                    ImageOp::Remove(n) => ProductCommand::RemoveProductImage { image_id: image(n), at: at() },
                    ImageOp::SetPrimary(n) => ProductCommand::SetPrimaryProductImage { image_id: image(n), at: at() },
                };
                if let Ok(events) = product.decide(cmd) {
                    for e in events {
                        product.apply(e);
                    }
                }
                let primaries = product.images().iter().filter(|i| i.is_primary).count();
                proptest::prop_assert_eq!(primaries, usize::from(!product.images().is_empty()));
            }
        }
    }

    // ---- attributes ----

    fn attribute_id(n: u128) -> Uuid {
        Uuid::from_u128(0x2000 + n)
    }

    fn set_attribute(n: u128, name: &str, value: &str, sort_order: i32) -> ProductCommand {
        ProductCommand::SetProductAttribute {
            attribute_id: attribute_id(n),
            name: name.into(),
            value: value.into(),
            sort_order,
            at: at(),
        }
    }

    fn attribute_set(id: Uuid, n: u128, name: &str, value: &str, sort_order: i32) -> ProductEvent {
        ProductEvent::ProductAttributeSet {
            product_id: id,
            attribute_id: attribute_id(n),
            name: name.into(),
            value: value.into(),
            sort_order,
            at: at(),
        }
    }

    #[test]
    fn a_new_attribute_is_added_with_the_command_id() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id)])
            .when(set_attribute(1, " Color ", " Black ", 0))
            .then_expect_events(vec![attribute_set(id, 1, "Color", "Black", 0)]);
    }

    #[test]
    fn setting_an_existing_attribute_keeps_its_id() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id), attribute_set(id, 1, "Color", "Black", 0)])
            .when(set_attribute(2, "Color", "White", 1))
            .then_expect_events(vec![attribute_set(id, 1, "Color", "White", 1)]);
    }

    #[test]
    fn setting_an_attribute_to_what_it_is_changes_nothing() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id), attribute_set(id, 1, "Color", "Black", 0)])
            .when(set_attribute(2, "Color", "Black", 0))
            .then_expect_events(vec![]);
    }

    #[test]
    fn attribute_name_and_value_are_bounded() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id)])
            .when(set_attribute(1, &"n".repeat(101), "v", 0))
            .then_expect_error(ProductError::InvalidValue(crate::values::length_error(
                "attribute_name",
                &"n".repeat(101),
                100,
            )));
        Given::with(())
            .given(vec![created(id)])
            .when(set_attribute(1, "Color", " ", 0))
            .then_expect_error(ProductError::InvalidValue(crate::values::length_error(
                "attribute_value",
                " ",
                LONG_TEXT_MAX,
            )));
    }

    #[test]
    fn an_attribute_is_removed_by_name_and_an_unknown_one_is_refused() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id), attribute_set(id, 1, "Color", "Black", 0)])
            .when(ProductCommand::RemoveProductAttribute {
                name: "Color".into(),
                at: at(),
            })
            .then_expect_events(vec![ProductEvent::ProductAttributeRemoved {
                product_id: id,
                attribute_id: attribute_id(1),
                name: "Color".into(),
                at: at(),
            }]);
        Given::with(())
            .given(vec![created(id)])
            .when(ProductCommand::RemoveProductAttribute {
                name: "Color".into(),
                at: at(),
            })
            .then_expect_error(ProductError::AttributeNotFound {
                name: "Color".into(),
            });
    }

    // ---- variants ----

    fn variant_id(n: u128) -> Uuid {
        Uuid::from_u128(0x3000 + n)
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn add_variant(n: u128, variant_sku: &str, pairs: &[(&str, &str)]) -> ProductCommand {
        ProductCommand::AddProductVariant(AddProductVariant {
            variant_id: variant_id(n),
            sku: sku(variant_sku),
            name: Some(" 256GB Black ".into()),
            price: price(dec!(45900)),
            stock_quantity: 10,
            attributes: attrs(pairs),
            at: at(),
        })
    }

    fn variant_added(id: Uuid, n: u128, variant_sku: &str, pairs: &[(&str, &str)]) -> ProductEvent {
        ProductEvent::ProductVariantAdded {
            product_id: id,
            variant_id: variant_id(n),
            sku: sku(variant_sku),
            name: Some("256GB Black".into()),
            price: price(dec!(45900)),
            stock_quantity: 10,
            attributes: attrs(pairs),
            is_active: true,
            at: at(),
        }
    }

    fn variant_deactivated(id: Uuid, n: u128, variant_sku: &str) -> ProductEvent {
        ProductEvent::ProductVariantDeactivated {
            product_id: id,
            variant_id: variant_id(n),
            sku: sku(variant_sku),
            at: at(),
        }
    }

    const BLACK: &[(&str, &str)] = &[("color", "black"), ("storage", "256GB")];
    const WHITE: &[(&str, &str)] = &[("color", "white"), ("storage", "256GB")];

    #[test]
    fn a_variant_is_added_active_with_trimmed_values() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id)])
            .when(add_variant(
                1,
                "IPH-BLK",
                &[(" color ", " black "), ("storage", "256GB")],
            ))
            .then_expect_events(vec![variant_added(id, 1, "IPH-BLK", BLACK)]);
    }

    #[test]
    fn a_variant_id_is_added_once() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id), variant_added(id, 1, "IPH-BLK", BLACK)])
            .when(add_variant(1, "IPH-WHT", WHITE))
            .then_expect_error(ProductError::VariantAlreadyExists {
                variant_id: variant_id(1),
            });
    }

    #[test]
    fn a_variant_sku_must_differ_from_the_product_and_its_other_variants() {
        let id = Uuid::new_v4();
        for taken in ["IPH-15-PRO", "IPH-BLK"] {
            Given::with(())
                .given(vec![created(id), variant_added(id, 1, "IPH-BLK", BLACK)])
                .when(add_variant(2, taken, WHITE))
                .then_expect_error(ProductError::SkuTaken { sku: sku(taken) });
        }
    }

    #[test]
    fn a_variant_refuses_negative_stock_and_merged_attribute_names() {
        let id = Uuid::new_v4();
        let ProductCommand::AddProductVariant(mut cmd) = add_variant(1, "IPH-BLK", BLACK) else {
            unreachable!()
        };
        cmd.stock_quantity = -1;
        Given::with(())
            .given(vec![created(id)])
            .when(ProductCommand::AddProductVariant(cmd))
            .then_expect_error(ProductError::NegativeStockQuantity { stock_quantity: -1 });
        Given::with(())
            .given(vec![created(id)])
            .when(add_variant(
                1,
                "IPH-BLK",
                &[("color", "black"), ("color ", "white")],
            ))
            .then_expect_error(ProductError::DuplicateVariantAttributeName {
                name: "color".into(),
            });
    }

    #[test]
    fn two_active_variants_cannot_share_an_attribute_combination() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id), variant_added(id, 1, "IPH-BLK", BLACK)])
            .when(add_variant(2, "IPH-BLK-2", BLACK))
            .then_expect_error(ProductError::VariantAttributesTaken {
                variant_id: variant_id(1),
                attributes: attrs(BLACK),
            });
    }

    #[test]
    fn an_inactive_variant_frees_its_combination() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![
                created(id),
                variant_added(id, 1, "IPH-BLK", BLACK),
                variant_deactivated(id, 1, "IPH-BLK"),
            ])
            .when(add_variant(2, "IPH-BLK-2", BLACK))
            .then_expect_events(vec![variant_added(id, 2, "IPH-BLK-2", BLACK)]);
    }

    fn update_variant(n: u128, pairs: &[(&str, &str)]) -> ProductCommand {
        ProductCommand::UpdateProductVariant {
            variant_id: variant_id(n),
            name: None,
            price: price(dec!(44900)),
            attributes: attrs(pairs),
            at: at(),
        }
    }

    #[test]
    fn a_variant_update_keeps_the_sku() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id), variant_added(id, 1, "IPH-BLK", BLACK)])
            .when(update_variant(1, WHITE))
            .then_expect_events(vec![ProductEvent::ProductVariantUpdated {
                product_id: id,
                variant_id: variant_id(1),
                sku: sku("IPH-BLK"),
                name: None,
                price: price(dec!(44900)),
                attributes: attrs(WHITE),
                at: at(),
            }]);
    }

    #[test]
    fn a_variant_update_cannot_take_another_active_combination_or_a_missing_variant() {
        let id = Uuid::new_v4();
        let history = vec![
            created(id),
            variant_added(id, 1, "IPH-BLK", BLACK),
            variant_added(id, 2, "IPH-WHT", WHITE),
        ];
        Given::with(())
            .given(history.clone())
            .when(update_variant(2, BLACK))
            .then_expect_error(ProductError::VariantAttributesTaken {
                variant_id: variant_id(1),
                attributes: attrs(BLACK),
            });
        Given::with(())
            .given(history)
            .when(update_variant(9, BLACK))
            .then_expect_error(ProductError::VariantNotFound {
                variant_id: variant_id(9),
            });
    }

    #[test]
    fn a_variant_is_deactivated_and_activated_once_each() {
        let id = Uuid::new_v4();
        let active = vec![created(id), variant_added(id, 1, "IPH-BLK", BLACK)];
        let mut inactive = active.clone();
        inactive.push(variant_deactivated(id, 1, "IPH-BLK"));
        let deactivate = ProductCommand::DeactivateProductVariant {
            variant_id: variant_id(1),
            at: at(),
        };
        let activate = ProductCommand::ActivateProductVariant {
            variant_id: variant_id(1),
            at: at(),
        };
        Given::with(())
            .given(active.clone())
            .when(deactivate.clone())
            .then_expect_events(vec![variant_deactivated(id, 1, "IPH-BLK")]);
        Given::with(())
            .given(inactive.clone())
            .when(deactivate)
            .then_expect_error(ProductError::VariantAlreadyInactive {
                variant_id: variant_id(1),
            });
        Given::with(())
            .given(inactive)
            .when(activate.clone())
            .then_expect_events(vec![ProductEvent::ProductVariantActivated {
                product_id: id,
                variant_id: variant_id(1),
                sku: sku("IPH-BLK"),
                at: at(),
            }]);
        Given::with(())
            .given(active)
            .when(activate)
            .then_expect_error(ProductError::VariantAlreadyActive {
                variant_id: variant_id(1),
            });
    }

    #[test]
    fn reactivation_is_refused_when_the_combination_was_reused() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![
                created(id),
                variant_added(id, 1, "IPH-BLK", BLACK),
                variant_deactivated(id, 1, "IPH-BLK"),
                variant_added(id, 2, "IPH-BLK-2", BLACK),
            ])
            .when(ProductCommand::ActivateProductVariant {
                variant_id: variant_id(1),
                at: at(),
            })
            .then_expect_error(ProductError::VariantAttributesTaken {
                variant_id: variant_id(2),
                attributes: attrs(BLACK),
            });
    }

    #[test]
    fn an_archived_product_refuses_images_attributes_and_variants() {
        let id = Uuid::new_v4();
        let mut history = history_to(id, ProductStatus::Archived);
        history.push(image_added(id, 1, 0, true));
        history.push(attribute_set(id, 1, "Color", "Black", 0));
        history.push(variant_added(id, 1, "IPH-BLK", BLACK));
        for cmd in [
            add_image(2, 0),
            ProductCommand::RemoveProductImage {
                image_id: image(1),
                at: at(),
            },
            ProductCommand::SetPrimaryProductImage {
                image_id: image(1),
                at: at(),
            },
            ProductCommand::ReorderProductImages {
                image_ids: vec![image(1)],
                at: at(),
            },
            set_attribute(2, "Size", "L", 0),
            ProductCommand::RemoveProductAttribute {
                name: "Color".into(),
                at: at(),
            },
            add_variant(2, "IPH-WHT", WHITE),
            update_variant(1, WHITE),
            ProductCommand::DeactivateProductVariant {
                variant_id: variant_id(1),
                at: at(),
            },
            ProductCommand::ActivateProductVariant {
                variant_id: variant_id(1),
                at: at(),
            },
        ] {
            Given::with(())
                .given(history.clone())
                .when(cmd)
                .then_expect_error(ProductError::Archived { product_id: id });
        }
    }

    #[test]
    fn owned_rows_are_replayed_into_state() {
        let id = Uuid::new_v4();
        let mut product = Product::default();
        for e in with_images(id) {
            product.apply(e);
        }
        product.apply(ProductEvent::ProductImageRemoved {
            product_id: id,
            image_id: image(1),
            new_primary_image_id: Some(image(3)),
            at: at(),
        });
        assert_eq!(product.primary_image().unwrap().image_id, image(3));
        product.apply(attribute_set(id, 1, "Color", "Black", 0));
        product.apply(attribute_set(id, 1, "Color", "White", 0));
        assert_eq!(product.attributes().len(), 1);
        assert_eq!(product.attributes()[0].value, "White");
        product.apply(variant_added(id, 1, "IPH-BLK", BLACK));
        product.apply(variant_deactivated(id, 1, "IPH-BLK"));
        assert!(!product.variant(variant_id(1)).unwrap().is_active);
        assert_eq!(product.variants().len(), 1);
    }

    // ---- control characters ----

    use crate::catalog::category::tests::{unprintable, UNPRINTABLE};

    /// `result` is the refusal of `text` given as `field`.
    fn refused_text(
        result: &Result<Vec<ProductEvent>, ProductError>,
        field: &'static str,
        text: &str,
    ) -> bool {
        *result == Err(ProductError::InvalidValue(unprintable(field, text)))
    }

    type DetailsEdit = fn(&mut ProductDetails, String);

    const DETAILS_TEXTS: [(&str, DetailsEdit); 6] = [
        ("name", |d, t| d.name = t),
        ("description", |d, t| d.description = Some(t)),
        ("short_description", |d, t| d.short_description = Some(t)),
        ("meta_title", |d, t| d.meta_title = Some(t)),
        ("meta_description", |d, t| d.meta_description = Some(t)),
        ("meta_keywords", |d, t| d.meta_keywords = vec![t]),
    ];

    #[test]
    fn control_characters_are_refused_in_every_text_of_the_details() {
        let id = Uuid::new_v4();
        for (field, edit) in DETAILS_TEXTS {
            for bad in UNPRINTABLE {
                let mut details = details();
                edit(&mut details, bad.to_owned());
                let mut create = create(id);
                create.name = details.name.clone();
                create.description = details.description.clone();
                create.short_description = details.short_description.clone();
                create.meta_title = details.meta_title.clone();
                create.meta_description = details.meta_description.clone();
                create.meta_keywords = details.meta_keywords.clone();
                let created_result = Given::with(())
                    .given_no_previous_events()
                    .when(ProductCommand::CreateProduct(create))
                    .inspect_result();
                let updated_result = Given::with(())
                    .given(vec![created(id)])
                    .when(ProductCommand::UpdateProductDetails { details, at: at() })
                    .inspect_result();
                for result in [created_result, updated_result] {
                    assert!(
                        refused_text(&result, field, bad),
                        "{field} {bad:?}: {result:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn control_characters_are_refused_in_alt_texts_attributes_and_variants() {
        let id = Uuid::new_v4();
        for bad in UNPRINTABLE {
            let cases: Vec<(&str, Vec<ProductEvent>, ProductCommand)> = vec![
                (
                    "alt_text",
                    vec![created(id)],
                    ProductCommand::AddProductImage {
                        image_id: image(1),
                        url: Url::parse("https://cdn.example.com/1.jpg").unwrap(),
                        alt_text: Some(bad.into()),
                        sort_order: 0,
                        at: at(),
                    },
                ),
                (
                    "attribute_name",
                    vec![created(id)],
                    set_attribute(1, bad, "Black", 0),
                ),
                (
                    "attribute_value",
                    vec![created(id)],
                    set_attribute(1, "Color", bad, 0),
                ),
                (
                    "variant_attribute_name",
                    vec![created(id)],
                    add_variant(1, "IPH-BLK", &[(bad, "black")]),
                ),
                (
                    "variant_attribute_value",
                    vec![created(id)],
                    add_variant(1, "IPH-BLK", &[("color", bad)]),
                ),
                (
                    "variant_name",
                    vec![created(id)],
                    ProductCommand::AddProductVariant(AddProductVariant {
                        name: Some(bad.into()),
                        ..match add_variant(1, "IPH-BLK", BLACK) {
                            ProductCommand::AddProductVariant(v) => v,
                            _ => unreachable!(),
                        }
                    }),
                ),
                (
                    "variant_attribute_name",
                    vec![created(id), variant_added(id, 1, "IPH-BLK", BLACK)],
                    update_variant(1, &[(bad, "black")]),
                ),
                (
                    "variant_attribute_value",
                    vec![created(id), variant_added(id, 1, "IPH-BLK", BLACK)],
                    update_variant(1, &[("color", bad)]),
                ),
                (
                    "variant_name",
                    vec![created(id), variant_added(id, 1, "IPH-BLK", BLACK)],
                    ProductCommand::UpdateProductVariant {
                        variant_id: variant_id(1),
                        name: Some(bad.into()),
                        price: price(dec!(44900)),
                        attributes: attrs(BLACK),
                        at: at(),
                    },
                ),
            ];
            for (field, history, cmd) in cases {
                let result = Given::with(()).given(history).when(cmd).inspect_result();
                assert!(
                    refused_text(&result, field, bad),
                    "{field} {bad:?}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn long_texts_keep_tabs_and_newlines_short_ones_refuse_them() {
        let id = Uuid::new_v4();
        let mut long = details();
        long.description = Some("Line one\n\tLine two".into());
        long.short_description = Some("Short\nsweet".into());
        long.meta_description = Some("Buy\tit".into());
        let events = Given::with(())
            .given(vec![created(id)])
            .when(ProductCommand::UpdateProductDetails {
                details: long.clone(),
                at: at(),
            })
            .inspect_result()
            .unwrap();
        let ProductEvent::ProductDetailsUpdated {
            details: stored, ..
        } = &events[0]
        else {
            panic!("{events:?}");
        };
        assert_eq!(stored.description, long.description);
        assert_eq!(stored.short_description, long.short_description);
        assert_eq!(stored.meta_description, long.meta_description);
        let result = Given::with(())
            .given(vec![created(id)])
            .when(set_attribute(
                1,
                "Specs",
                "Weight: 187 g\nBattery: 3274 mAh",
                0,
            ))
            .inspect_result();
        assert!(result.is_ok(), "{result:?}");
        for (field, edit) in DETAILS_TEXTS
            .into_iter()
            .filter(|(f, _)| matches!(*f, "name" | "meta_title" | "meta_keywords"))
        {
            for bad in ["lines\nbreak", "table\tcell", "carri\rage"] {
                let mut details = details();
                edit(&mut details, bad.to_owned());
                let result = Given::with(())
                    .given(vec![created(id)])
                    .when(ProductCommand::UpdateProductDetails { details, at: at() })
                    .inspect_result();
                assert!(
                    refused_text(&result, field, bad),
                    "{field} {bad:?}: {result:?}"
                );
            }
        }
    }
}
