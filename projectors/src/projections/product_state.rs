//! The product representation (`ProductView`) folded from product events, and
//! the stock facts carried by inventory events. Shared by the document stores
//! (Redis cache, search index) that hold a product as one document.

use domain::catalog::ProductEvent;
use domain::inventory::InventoryEvent;
use infrastructure::views::ProductView;
use rust_decimal::Decimal;
use uuid::Uuid;

/// `view` after `event`; `None` while the product has not been created.
/// `initial_stock` is a stock level already known from inventory events that
/// arrived before the product did.
pub fn fold_product(
    view: Option<ProductView>,
    event: &ProductEvent,
    initial_stock: Option<i32>,
) -> Option<ProductView> {
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
        at,
        ..
    } = event
    {
        return Some(ProductView {
            id: *product_id,
            sku: sku.to_string(),
            name: name.clone(),
            slug: slug.to_string(),
            description: description.clone(),
            short_description: short_description.clone(),
            category_id: *category_id,
            brand_id: *brand_id,
            regular_price: regular_price.amount(),
            sale_price: sale_price.map(|p| p.amount()),
            currency: currency.to_string(),
            track_inventory: *track_inventory,
            stock_quantity: initial_stock.unwrap_or(*stock_quantity),
            low_stock_threshold: *low_stock_threshold,
            weight: weight.map(Decimal::from),
            length: length.map(Decimal::from),
            width: width.map(Decimal::from),
            height: height.map(Decimal::from),
            meta_title: meta_title.clone(),
            meta_description: meta_description.clone(),
            meta_keywords: meta_keywords.clone(),
            status: status.as_str().to_owned(),
            featured: *featured,
            created_at: *at,
            updated_at: *at,
            published_at: None,
        });
    }
    let mut view = view?;
    match event {
        ProductEvent::ProductCreated { .. } => unreachable!("handled above"),
        ProductEvent::ProductDetailsUpdated { details, at, .. } => {
            view.name = details.name.clone();
            view.slug = details.slug.to_string();
            view.description = details.description.clone();
            view.short_description = details.short_description.clone();
            view.category_id = details.category_id;
            view.brand_id = details.brand_id;
            view.weight = details.weight.map(Decimal::from);
            view.length = details.length.map(Decimal::from);
            view.width = details.width.map(Decimal::from);
            view.height = details.height.map(Decimal::from);
            view.meta_title = details.meta_title.clone();
            view.meta_description = details.meta_description.clone();
            view.meta_keywords = details.meta_keywords.clone();
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductPriceChanged {
            regular_price,
            sale_price,
            at,
            ..
        } => {
            view.regular_price = regular_price.amount();
            view.sale_price = sale_price.map(|p| p.amount());
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductStatusChanged {
            status,
            published_at,
            featured,
            at,
            ..
        } => {
            view.status = status.as_str().to_owned();
            view.published_at = *published_at;
            view.featured = *featured;
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductFeatured { at, .. } => {
            view.featured = true;
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductUnfeatured { at, .. } => {
            view.featured = false;
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductImageAdded { at, .. }
        | ProductEvent::ProductImageRemoved { at, .. }
        | ProductEvent::ProductPrimaryImageChanged { at, .. }
        | ProductEvent::ProductImagesReordered { at, .. }
        | ProductEvent::ProductAttributeSet { at, .. }
        | ProductEvent::ProductAttributeRemoved { at, .. }
        | ProductEvent::ProductVariantAdded { at, .. }
        | ProductEvent::ProductVariantUpdated { at, .. }
        | ProductEvent::ProductVariantDeactivated { at, .. }
        | ProductEvent::ProductVariantActivated { at, .. } => {
            view.updated_at = view.updated_at.max(*at)
        }
    }
    Some(view)
}

/// What an inventory event says about a stock row: the product's, or its
/// variant's when `variant_id` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockFact {
    pub product_id: Uuid,
    pub variant_id: Option<Uuid>,
    pub available: Option<i32>,
    pub track_inventory: Option<bool>,
    pub low_stock_threshold: Option<i32>,
}

pub fn stock_fact(event: &InventoryEvent) -> Option<StockFact> {
    let clamp = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    let fact = |product_id: &Uuid, variant_id: &Option<Uuid>| {
        Some(StockFact {
            product_id: *product_id,
            variant_id: *variant_id,
            available: None,
            track_inventory: None,
            low_stock_threshold: None,
        })
    };
    match event {
        InventoryEvent::StockInitialized {
            product_id,
            variant_id,
            quantity,
            low_stock_threshold,
            track_inventory,
            ..
        } => fact(product_id, variant_id).map(|f| StockFact {
            available: Some(*quantity),
            track_inventory: Some(*track_inventory),
            low_stock_threshold: Some(*low_stock_threshold),
            ..f
        }),
        InventoryEvent::StockAdjusted {
            product_id,
            variant_id,
            available,
            ..
        }
        | InventoryEvent::StockReserved {
            product_id,
            variant_id,
            available,
            ..
        }
        | InventoryEvent::StockReleased {
            product_id,
            variant_id,
            available,
            ..
        } => fact(product_id, variant_id).map(|f| StockFact {
            available: Some(clamp(*available)),
            ..f
        }),
        InventoryEvent::LowStockThresholdSet {
            product_id,
            variant_id,
            threshold,
            ..
        } => fact(product_id, variant_id).map(|f| StockFact {
            low_stock_threshold: Some(*threshold),
            ..f
        }),
        InventoryEvent::InventoryTrackingChanged {
            product_id,
            variant_id,
            track_inventory,
            ..
        } => fact(product_id, variant_id).map(|f| StockFact {
            track_inventory: Some(*track_inventory),
            ..f
        }),
        InventoryEvent::LowStockReached { .. }
        | InventoryEvent::OutOfStock { .. }
        | InventoryEvent::BackInStock { .. } => None,
    }
}

impl StockFact {
    /// Whether it concerns the product itself, which documents hold, rather
    /// than one of its variants.
    pub fn is_product_level(&self) -> bool {
        self.variant_id.is_none()
    }

    pub fn apply_to(&self, view: &mut ProductView) {
        if let Some(available) = self.available {
            view.stock_quantity = available;
        }
        if let Some(track) = self.track_inventory {
            view.track_inventory = track;
        }
        if let Some(threshold) = self.low_stock_threshold {
            view.low_stock_threshold = threshold;
        }
    }
}
