//! The product representation (`ProductView`) folded from product events, and
//! the stock facts carried by inventory events. Shared by the document stores
//! (Redis cache, search index) that hold a product as one document.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use domain::catalog::ProductEvent;
use domain::inventory::InventoryEvent;
use infrastructure::views::{
    ProductAttributeView, ProductImageView, ProductVariantView, ProductView,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The latest stock inventory events gave for a product (its level,
/// tracking, threshold and the time of the latest) and its variants' levels,
/// kept beside a document because those events can arrive before the
/// product or variant they concern: a creation folded later starts from
/// them rather than from its initial values, as the tables do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlyStock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_inventory: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_stock_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variants: BTreeMap<Uuid, i32>,
}

impl EarlyStock {
    /// Reads a stored record: a bare number (the product's level, as
    /// records were written before variants were cached) or the JSON
    /// object. Anything else is no record.
    pub fn parse(stored: Option<&str>) -> Self {
        let Some(stored) = stored else {
            return Self::default();
        };
        if let Ok(level) = stored.parse::<i32>() {
            return Self::product_only(Some(level));
        }
        serde_json::from_str(stored).unwrap_or_default()
    }

    /// Records `fact`; whether that changed the record.
    pub fn record(&mut self, fact: &StockFact) -> bool {
        let before = self.clone();
        match fact.variant_id {
            Some(variant_id) => {
                if let Some(available) = fact.available {
                    self.variants.insert(variant_id, available);
                }
            }
            None => {
                self.product = fact.available.or(self.product);
                self.track_inventory = fact.track_inventory.or(self.track_inventory);
                self.low_stock_threshold = fact.low_stock_threshold.or(self.low_stock_threshold);
                self.updated_at = self.updated_at.max(Some(fact.at));
            }
        }
        *self != before
    }

    /// Only the product's own level, for a store that holds no more.
    pub fn product_only(level: Option<i32>) -> Self {
        Self {
            product: level,
            ..Self::default()
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("stock record serializes")
    }
}

/// `view` after `event`; `None` while the product has not been created.
/// `early` holds stock levels already known from inventory events that
/// arrived before the product or a variant did.
pub fn fold_product(
    view: Option<ProductView>,
    event: &ProductEvent,
    early: &EarlyStock,
) -> Option<ProductView> {
    let mut view = fold_fields(view, event, early)?;
    view.sort_children();
    Some(view)
}

fn fold_fields(
    view: Option<ProductView>,
    event: &ProductEvent,
    early: &EarlyStock,
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
            track_inventory: early.track_inventory.unwrap_or(*track_inventory),
            stock_quantity: early.product.unwrap_or(*stock_quantity),
            low_stock_threshold: early.low_stock_threshold.unwrap_or(*low_stock_threshold),
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
            updated_at: early.updated_at.map_or(*at, |stock_at| stock_at.max(*at)),
            published_at: None,
            images: Vec::new(),
            attributes: Vec::new(),
            variants: Vec::new(),
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
        ProductEvent::ProductImageAdded {
            image_id,
            url,
            alt_text,
            sort_order,
            is_primary,
            at,
            ..
        } => {
            view.images.retain(|image| image.id != *image_id);
            if *is_primary {
                view.images.iter_mut().for_each(|i| i.is_primary = false);
            }
            view.images.push(ProductImageView {
                id: *image_id,
                url: url.to_string(),
                alt_text: alt_text.clone(),
                is_primary: *is_primary,
                sort_order: *sort_order,
            });
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductImageRemoved {
            image_id,
            new_primary_image_id,
            at,
            ..
        } => {
            view.images.retain(|image| image.id != *image_id);
            if let Some(primary) = new_primary_image_id {
                set_primary(&mut view, *primary);
            }
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductPrimaryImageChanged { image_id, at, .. } => {
            set_primary(&mut view, *image_id);
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductImagesReordered { images, at, .. } => {
            for position in images {
                if let Some(image) = view.images.iter_mut().find(|i| i.id == position.image_id) {
                    image.sort_order = position.sort_order;
                }
            }
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductAttributeSet {
            attribute_id,
            name,
            value,
            sort_order,
            at,
            ..
        } => {
            view.attributes
                .retain(|a| a.id != *attribute_id && a.name != *name);
            view.attributes.push(ProductAttributeView {
                id: *attribute_id,
                name: name.clone(),
                value: value.clone(),
                sort_order: *sort_order,
            });
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductAttributeRemoved {
            attribute_id, at, ..
        } => {
            view.attributes.retain(|a| a.id != *attribute_id);
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductVariantAdded {
            variant_id,
            sku,
            name,
            price,
            stock_quantity,
            attributes,
            is_active,
            at,
            ..
        } => {
            view.variants.retain(|v| v.id != *variant_id);
            view.variants.push(ProductVariantView {
                id: *variant_id,
                sku: sku.to_string(),
                name: name.clone(),
                price: price.amount(),
                stock_quantity: early
                    .variants
                    .get(variant_id)
                    .copied()
                    .unwrap_or(*stock_quantity),
                attributes: attributes.clone(),
                is_active: *is_active,
            });
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductVariantUpdated {
            variant_id,
            sku,
            name,
            price,
            attributes,
            at,
            ..
        } => {
            if let Some(variant) = view.variants.iter_mut().find(|v| v.id == *variant_id) {
                variant.sku = sku.to_string();
                variant.name = name.clone();
                variant.price = price.amount();
                variant.attributes = attributes.clone();
            }
            view.updated_at = view.updated_at.max(*at);
        }
        ProductEvent::ProductVariantDeactivated { variant_id, at, .. }
        | ProductEvent::ProductVariantActivated { variant_id, at, .. } => {
            let active = matches!(event, ProductEvent::ProductVariantActivated { .. });
            if let Some(variant) = view.variants.iter_mut().find(|v| v.id == *variant_id) {
                variant.is_active = active;
            }
            view.updated_at = view.updated_at.max(*at);
        }
    }
    Some(view)
}

fn set_primary(view: &mut ProductView, image_id: Uuid) {
    for image in &mut view.images {
        image.is_primary = image.id == image_id;
    }
}

/// What an inventory event says about a stock row: the product's, or its
/// variant's when `variant_id` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockFact {
    pub product_id: Uuid,
    /// When it happened: a product's row counts as updated then.
    pub at: DateTime<Utc>,
    pub variant_id: Option<Uuid>,
    pub available: Option<i32>,
    pub track_inventory: Option<bool>,
    pub low_stock_threshold: Option<i32>,
}

pub fn stock_fact(event: &InventoryEvent) -> Option<StockFact> {
    let clamp = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    let at = inventory_event_time(event);
    let fact = |product_id: &Uuid, variant_id: &Option<Uuid>| {
        Some(StockFact {
            product_id: *product_id,
            at,
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

/// When an inventory event happened.
pub fn inventory_event_time(event: &InventoryEvent) -> DateTime<Utc> {
    match event {
        InventoryEvent::StockInitialized { at, .. }
        | InventoryEvent::StockAdjusted { at, .. }
        | InventoryEvent::LowStockThresholdSet { at, .. }
        | InventoryEvent::InventoryTrackingChanged { at, .. }
        | InventoryEvent::StockReserved { at, .. }
        | InventoryEvent::StockReleased { at, .. }
        | InventoryEvent::LowStockReached { at, .. }
        | InventoryEvent::OutOfStock { at, .. }
        | InventoryEvent::BackInStock { at, .. } => *at,
    }
}

impl StockFact {
    /// Whether it concerns the product itself, which documents hold, rather
    /// than one of its variants.
    pub fn is_product_level(&self) -> bool {
        self.variant_id.is_none()
    }

    /// [`StockFact::apply_to`] as the `products` row takes it: a change of
    /// the product's own stock moves its `updated_at` too. For the stores
    /// that must answer as the tables do (the Redis cache); the search
    /// document's `updatedAt` follows the product's own events, because its
    /// stock lookup keeps no time and an early stock fact would otherwise
    /// give another document than a late one.
    pub fn apply_to_row(&self, view: &mut ProductView) {
        if self.variant_id.is_none() {
            view.updated_at = view.updated_at.max(self.at);
        }
        self.apply_to(view);
    }

    /// Applies the fact to the product, or to its variant (only the level:
    /// a variant row has no threshold or tracking flag of its own).
    pub fn apply_to(&self, view: &mut ProductView) {
        if let Some(variant_id) = self.variant_id {
            if let (Some(available), Some(variant)) = (
                self.available,
                view.variants.iter_mut().find(|v| v.id == variant_id),
            ) {
                variant.stock_quantity = available;
            }
            return;
        }
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

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use domain::catalog::ProductImagePosition;
    use domain::values::{Currency, Price, Sku, Slug, Url};

    use super::*;

    fn created(product_id: Uuid) -> ProductEvent {
        ProductEvent::ProductCreated {
            product_id,
            sku: Sku::parse("FOLD-1").unwrap(),
            name: "Fold".into(),
            slug: Slug::parse("fold").unwrap(),
            description: None,
            short_description: None,
            category_id: None,
            brand_id: None,
            regular_price: Price::new(Decimal::new(1000, 2)).unwrap(),
            sale_price: None,
            cost_price: None,
            currency: Currency::thb(),
            track_inventory: true,
            stock_quantity: 3,
            low_stock_threshold: 5,
            weight: None,
            length: None,
            width: None,
            height: None,
            meta_title: None,
            meta_description: None,
            meta_keywords: vec![],
            status: domain::catalog::ProductStatus::Draft,
            featured: false,
            at: Utc::now(),
        }
    }

    fn image(product_id: Uuid, image_id: Uuid, sort_order: i32, is_primary: bool) -> ProductEvent {
        ProductEvent::ProductImageAdded {
            product_id,
            image_id,
            url: Url::parse(&format!("https://cdn.example.com/{image_id}.jpg")).unwrap(),
            alt_text: None,
            sort_order,
            is_primary,
            at: Utc::now(),
        }
    }

    fn fold_all(events: &[ProductEvent], early: &EarlyStock) -> ProductView {
        events
            .iter()
            .fold(None, |view, event| fold_product(view, event, early))
            .expect("created")
    }

    #[test]
    fn images_follow_primary_changes_reorders_and_removals() {
        let id = Uuid::now_v7();
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let at = Utc::now();
        let view = fold_all(
            &[
                created(id),
                image(id, a, 0, true),
                image(id, b, 1, false),
                image(id, c, 2, false),
                ProductEvent::ProductPrimaryImageChanged {
                    product_id: id,
                    image_id: c,
                    previous_primary_image_id: Some(a),
                    at,
                },
                ProductEvent::ProductImagesReordered {
                    product_id: id,
                    images: [(c, 0), (b, 1), (a, 2)]
                        .map(|(image_id, sort_order)| ProductImagePosition {
                            image_id,
                            sort_order,
                        })
                        .into(),
                    at,
                },
                ProductEvent::ProductImageRemoved {
                    product_id: id,
                    image_id: c,
                    new_primary_image_id: Some(b),
                    at,
                },
            ],
            &EarlyStock::default(),
        );
        let images: Vec<(Uuid, bool, i32)> = view
            .images
            .iter()
            .map(|i| (i.id, i.is_primary, i.sort_order))
            .collect();
        assert_eq!(images, [(b, true, 1), (a, false, 2)]);
    }

    #[test]
    fn an_attribute_set_again_replaces_its_row_and_keeps_the_order_by_sort_then_name() {
        let id = Uuid::now_v7();
        let (chip, screen) = (Uuid::now_v7(), Uuid::now_v7());
        let set =
            |attribute_id, name: &str, value: &str, sort_order| ProductEvent::ProductAttributeSet {
                product_id: id,
                attribute_id,
                name: name.into(),
                value: value.into(),
                sort_order,
                at: Utc::now(),
            };
        let view = fold_all(
            &[
                created(id),
                set(screen, "Screen", "6.1", 0),
                set(chip, "Chip", "A16", 0),
                set(chip, "Chip", "A17 Pro", 0),
            ],
            &EarlyStock::default(),
        );
        let attributes: Vec<(&str, &str)> = view
            .attributes
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(attributes, [("Chip", "A17 Pro"), ("Screen", "6.1")]);
    }

    #[test]
    fn a_variant_starts_from_stock_known_before_it_and_follows_later_stock() {
        let id = Uuid::now_v7();
        let (early, late) = (Uuid::now_v7(), Uuid::now_v7());
        let added = |variant_id, sku: &str| ProductEvent::ProductVariantAdded {
            product_id: id,
            variant_id,
            sku: Sku::parse(sku).unwrap(),
            name: None,
            price: Price::new(Decimal::new(1500, 2)).unwrap(),
            stock_quantity: 1,
            attributes: [("size".to_owned(), sku.to_owned())].into(),
            is_active: true,
            at: Utc::now(),
        };
        let mut known = EarlyStock::default();
        let fact = |variant_id, available| StockFact {
            product_id: id,
            at: Utc::now(),
            variant_id: Some(variant_id),
            available: Some(available),
            track_inventory: None,
            low_stock_threshold: None,
        };
        assert!(known.record(&fact(early, 8)));
        assert!(
            !known.record(&fact(early, 8)),
            "the same level changes nothing"
        );
        let mut view = fold_all(
            &[created(id), added(early, "V-B"), added(late, "V-A")],
            &known,
        );
        fact(late, 6).apply_to(&mut view);
        let stock: Vec<(&str, i32)> = view
            .variants
            .iter()
            .map(|v| (v.sku.as_str(), v.stock_quantity))
            .collect();
        assert_eq!(stock, [("V-A", 6), ("V-B", 8)]);
        assert_eq!(
            view.stock_quantity, 3,
            "a variant's stock is not the product's"
        );
    }

    /// As the tables apply a parked stock event once the row exists: the
    /// product starts with the threshold, tracking and time it carried.
    #[test]
    fn stock_known_before_the_product_gives_it_its_threshold_tracking_and_time() {
        let id = Uuid::now_v7();
        let created = created(id);
        let ProductEvent::ProductCreated { at: created_at, .. } = created else {
            unreachable!()
        };
        let later = created_at + chrono::TimeDelta::seconds(5);
        let mut known = EarlyStock::default();
        assert!(known.record(&StockFact {
            product_id: id,
            at: later,
            variant_id: None,
            available: None,
            track_inventory: Some(false),
            low_stock_threshold: Some(9),
        }));
        let view = fold_all(&[created], &known);
        assert_eq!(
            (
                view.track_inventory,
                view.low_stock_threshold,
                view.stock_quantity
            ),
            (false, 9, 3)
        );
        assert_eq!(view.updated_at, later);
        assert_eq!(view.created_at, created_at);
    }

    #[test]
    fn a_stock_record_of_the_older_layout_reads_as_the_products_level() {
        assert_eq!(EarlyStock::parse(Some("42")).product, Some(42));
        let mut record = EarlyStock::product_only(Some(1));
        let variant = Uuid::now_v7();
        record.variants.insert(variant, 7);
        assert_eq!(EarlyStock::parse(Some(&record.encode())), record);
        assert_eq!(EarlyStock::parse(None), EarlyStock::default());
    }
}
