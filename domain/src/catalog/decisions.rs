//! Catalog decisions that span an aggregate and other streams: sku and slug
//! claims (one `UniqueKey` stream per value) and the category tree's cycle
//! check. Each is a pure function of loaded states; the command side appends
//! everything a `Decision` holds in one atomic multi-stream append, with the
//! expected versions it loaded, so a racing claim fails the whole append.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::brand::{Brand, BrandCommand, BrandError, BrandEvent, CreateBrand, UpdateBrand};
use super::category::{
    Category, CategoryCommand, CategoryError, CategoryEvent, CreateCategory, MoveCategory,
    UpdateCategory,
};
use super::product::{
    AddProductVariant, CreateProduct, Product, ProductCommand, ProductDetails, ProductError,
    ProductEvent,
};
use crate::uniqueness::{unique_key_stream_id, UniqueKey, UniqueKeyEvent, UniqueScope};
use crate::values::Slug;

/// What a decision appends: `events` go to the owner's own stream (the
/// aggregate the command addressed); each of `unique_key_events` goes to the
/// unique-key stream named beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<E> {
    pub events: Vec<E>,
    pub unique_key_events: Vec<(String, UniqueKeyEvent)>,
}

/// Claims `key` for `owner_id`, or reports who holds it via `taken`.
fn claim<Err>(
    state: &UniqueKey,
    scope: UniqueScope,
    key: &str,
    owner_id: Uuid,
    taken: impl FnOnce() -> Err,
) -> Result<Vec<(String, UniqueKeyEvent)>, Err> {
    let stream = unique_key_stream_id(scope, key);
    state
        .claim(scope, key, owner_id)
        .map(|events| events.into_iter().map(|e| (stream.clone(), e)).collect())
        .map_err(|_| taken())
}

/// Releases `key` when `owner_id` holds it. A key the owner does not hold
/// (an imported row that never claimed it) has nothing to release, and refusing
/// would lock the owner out of ever changing its slug.
fn release_if_held(
    state: &UniqueKey,
    scope: UniqueScope,
    key: &str,
    owner_id: Uuid,
) -> Vec<(String, UniqueKeyEvent)> {
    let stream = unique_key_stream_id(scope, key);
    state
        .release(scope, key, owner_id)
        .map(|events| events.into_iter().map(|e| (stream.clone(), e)).collect())
        .unwrap_or_default()
}

/// The key events of a slug change: release the old, claim the new; none when
/// the slug stays.
fn change_slug<Err>(
    scope: UniqueScope,
    owner_id: Uuid,
    previous: &Slug,
    previous_key: &UniqueKey,
    new: &Slug,
    new_key: &UniqueKey,
    taken: impl FnOnce() -> Err,
) -> Result<Vec<(String, UniqueKeyEvent)>, Err> {
    if previous == new {
        return Ok(vec![]);
    }
    let mut events = claim(new_key, scope, new.as_str(), owner_id, taken)?;
    events.extend(release_if_held(
        previous_key,
        scope,
        previous.as_str(),
        owner_id,
    ));
    Ok(events)
}

/// Creates a product and claims its sku (`UniqueScope::Sku`, shared with
/// variants) and slug (`UniqueScope::ProductSlug`). `sku_key` and `slug_key`
/// are the loaded states of `sku:<SKU>` and `product_slug:<slug>`.
pub fn create_product(
    product: &Product,
    command: CreateProduct,
    sku_key: &UniqueKey,
    slug_key: &UniqueKey,
) -> Result<Decision<ProductEvent>, ProductError> {
    let (product_id, sku, slug) = (
        command.product_id,
        command.sku.clone(),
        command.slug.clone(),
    );
    let events = product.decide(ProductCommand::CreateProduct(command))?;
    let mut keys = claim(sku_key, UniqueScope::Sku, sku.as_str(), product_id, || {
        ProductError::SkuTaken { sku: sku.clone() }
    })?;
    keys.extend(claim(
        slug_key,
        UniqueScope::ProductSlug,
        slug.as_str(),
        product_id,
        || ProductError::SlugTaken { slug: slug.clone() },
    )?);
    Ok(Decision {
        events,
        unique_key_events: keys,
    })
}

/// Updates a product's details; when the slug changes, releases the previous
/// slug and claims the new one. `previous_slug_key` is the loaded state of
/// `product_slug:<product.slug()>`, `new_slug_key` that of
/// `product_slug:<details.slug>` (the same state twice when the slug stays).
pub fn update_product_details(
    product: &Product,
    details: ProductDetails,
    at: DateTime<Utc>,
    previous_slug_key: &UniqueKey,
    new_slug_key: &UniqueKey,
) -> Result<Decision<ProductEvent>, ProductError> {
    let new_slug = details.slug.clone();
    let events = product.decide(ProductCommand::UpdateProductDetails { details, at })?;
    let (Some(product_id), Some(previous_slug)) = (product.id(), product.slug()) else {
        return Err(ProductError::NotFound);
    };
    let keys = change_slug(
        UniqueScope::ProductSlug,
        product_id,
        previous_slug,
        previous_slug_key,
        &new_slug,
        new_slug_key,
        || ProductError::SlugTaken {
            slug: new_slug.clone(),
        },
    )?;
    Ok(Decision {
        events,
        unique_key_events: keys,
    })
}

/// Adds a variant and claims its sku in `UniqueScope::Sku` (shared with
/// products, owner: the variant id). `sku_key` is the loaded state of
/// `sku:<SKU>`.
pub fn add_product_variant(
    product: &Product,
    command: AddProductVariant,
    sku_key: &UniqueKey,
) -> Result<Decision<ProductEvent>, ProductError> {
    let (variant_id, sku) = (command.variant_id, command.sku.clone());
    let events = product.decide(ProductCommand::AddProductVariant(command))?;
    let keys = claim(sku_key, UniqueScope::Sku, sku.as_str(), variant_id, || {
        ProductError::SkuTaken { sku: sku.clone() }
    })?;
    Ok(Decision {
        events,
        unique_key_events: keys,
    })
}

/// Creates a category and claims its slug (`UniqueScope::CategorySlug`).
/// A new id cannot be anyone's ancestor, so no cycle check beyond "not its own
/// parent" is needed.
pub fn create_category(
    category: &Category,
    command: CreateCategory,
    slug_key: &UniqueKey,
) -> Result<Decision<CategoryEvent>, CategoryError> {
    let (category_id, slug) = (command.category_id, command.slug.clone());
    let events = category.decide(CategoryCommand::CreateCategory(command))?;
    let keys = claim(
        slug_key,
        UniqueScope::CategorySlug,
        slug.as_str(),
        category_id,
        || CategoryError::SlugTaken { slug: slug.clone() },
    )?;
    Ok(Decision {
        events,
        unique_key_events: keys,
    })
}

/// Updates a category's details, moving its slug claim when the slug changes
/// (keys as in `update_product_details`).
pub fn update_category(
    category: &Category,
    command: UpdateCategory,
    previous_slug_key: &UniqueKey,
    new_slug_key: &UniqueKey,
) -> Result<Decision<CategoryEvent>, CategoryError> {
    let new_slug = command.slug.clone();
    let events = category.decide(CategoryCommand::UpdateCategory(command))?;
    let (Some(category_id), Some(previous_slug)) = (category.id(), category.slug()) else {
        return Err(CategoryError::NotFound);
    };
    let keys = change_slug(
        UniqueScope::CategorySlug,
        category_id,
        previous_slug,
        previous_slug_key,
        &new_slug,
        new_slug_key,
        || CategoryError::SlugTaken {
            slug: new_slug.clone(),
        },
    )?;
    Ok(Decision {
        events,
        unique_key_events: keys,
    })
}

/// Moves a category in the tree. `command.parent_ancestor_ids` is the chain of
/// ids from the new parent up to the root, loaded by the caller; moving under
/// itself or under one of its descendants is `WouldCreateCycle`.
pub fn move_category(
    category: &Category,
    command: MoveCategory,
) -> Result<Vec<CategoryEvent>, CategoryError> {
    category.decide(CategoryCommand::MoveCategory(command))
}

/// Creates a brand and claims its slug (`UniqueScope::BrandSlug`).
pub fn create_brand(
    brand: &Brand,
    command: CreateBrand,
    slug_key: &UniqueKey,
) -> Result<Decision<BrandEvent>, BrandError> {
    let (brand_id, slug) = (command.brand_id, command.slug.clone());
    let events = brand.decide(BrandCommand::CreateBrand(command))?;
    let keys = claim(
        slug_key,
        UniqueScope::BrandSlug,
        slug.as_str(),
        brand_id,
        || BrandError::SlugTaken { slug: slug.clone() },
    )?;
    Ok(Decision {
        events,
        unique_key_events: keys,
    })
}

/// Updates a brand's details, moving its slug claim when the slug changes
/// (keys as in `update_product_details`).
pub fn update_brand(
    brand: &Brand,
    command: UpdateBrand,
    previous_slug_key: &UniqueKey,
    new_slug_key: &UniqueKey,
) -> Result<Decision<BrandEvent>, BrandError> {
    let new_slug = command.slug.clone();
    let events = brand.decide(BrandCommand::UpdateBrand(command))?;
    let (Some(brand_id), Some(previous_slug)) = (brand.id(), brand.slug()) else {
        return Err(BrandError::NotFound);
    };
    let keys = change_slug(
        UniqueScope::BrandSlug,
        brand_id,
        previous_slug,
        previous_slug_key,
        &new_slug,
        new_slug_key,
        || BrandError::SlugTaken {
            slug: new_slug.clone(),
        },
    )?;
    Ok(Decision {
        events,
        unique_key_events: keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::category::tests::{at, slug};
    use crate::catalog::{brand, category, product};
    use cqrs_es::Aggregate;

    fn key_held_by(owner_id: Uuid, scope: UniqueScope, key: &str) -> UniqueKey {
        let mut state = UniqueKey::default();
        state.apply(UniqueKeyEvent::UniqueKeyClaimed {
            scope,
            key: key.into(),
            owner_id,
        });
        state
    }

    fn claimed(scope: UniqueScope, key: &str, owner_id: Uuid) -> (String, UniqueKeyEvent) {
        (
            unique_key_stream_id(scope, key),
            UniqueKeyEvent::UniqueKeyClaimed {
                scope,
                key: key.into(),
                owner_id,
            },
        )
    }

    fn released(scope: UniqueScope, key: &str, owner_id: Uuid) -> (String, UniqueKeyEvent) {
        (
            unique_key_stream_id(scope, key),
            UniqueKeyEvent::UniqueKeyReleased {
                scope,
                key: key.into(),
                owner_id,
            },
        )
    }

    fn loaded<A: Aggregate>(events: Vec<A::Event>) -> A {
        let mut a = A::default();
        for e in events {
            a.apply(e);
        }
        a
    }

    const SKU: &str = "IPH-15-PRO";
    const SLUG: &str = "iphone-15-pro";

    #[test]
    fn product_creation_claims_sku_and_slug() {
        let id = Uuid::new_v4();
        let free = UniqueKey::default();
        let decision = create_product(
            &Product::default(),
            product::tests::create(id),
            &free,
            &free,
        )
        .unwrap();
        assert_eq!(
            decision,
            Decision {
                events: vec![product::tests::created(id)],
                unique_key_events: vec![
                    claimed(UniqueScope::Sku, SKU, id),
                    claimed(UniqueScope::ProductSlug, SLUG, id),
                ],
            }
        );
    }

    #[test]
    fn product_creation_refuses_a_taken_sku_or_slug() {
        let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
        let free = UniqueKey::default();
        let sku_taken = key_held_by(other, UniqueScope::Sku, SKU);
        let slug_taken = key_held_by(other, UniqueScope::ProductSlug, SLUG);
        assert_eq!(
            create_product(
                &Product::default(),
                product::tests::create(id),
                &sku_taken,
                &free
            ),
            Err(ProductError::SkuTaken {
                sku: product::tests::sku(SKU)
            })
        );
        assert_eq!(
            create_product(
                &Product::default(),
                product::tests::create(id),
                &free,
                &slug_taken
            ),
            Err(ProductError::SlugTaken { slug: slug(SLUG) })
        );
    }

    #[test]
    fn product_creation_checks_the_product_before_the_keys() {
        let id = Uuid::new_v4();
        let mut cmd = product::tests::create(id);
        cmd.stock_quantity = -3;
        let taken = key_held_by(Uuid::new_v4(), UniqueScope::Sku, SKU);
        assert_eq!(
            create_product(&Product::default(), cmd, &taken, &taken),
            Err(ProductError::NegativeStockQuantity { stock_quantity: -3 })
        );
    }

    #[test]
    fn product_slug_change_releases_the_old_and_claims_the_new() {
        let id = Uuid::new_v4();
        let product: Product = loaded(vec![product::tests::created(id)]);
        let old_key = key_held_by(id, UniqueScope::ProductSlug, SLUG);
        let details = product::tests::details();
        let decision =
            update_product_details(&product, details, at(), &old_key, &UniqueKey::default())
                .unwrap();
        assert_eq!(decision.events.len(), 1);
        assert_eq!(
            decision.unique_key_events,
            vec![
                claimed(UniqueScope::ProductSlug, "iphone-15-pro-max", id),
                released(UniqueScope::ProductSlug, SLUG, id),
            ]
        );
    }

    #[test]
    fn product_slug_change_to_a_taken_slug_is_refused() {
        let id = Uuid::new_v4();
        let product: Product = loaded(vec![product::tests::created(id)]);
        let old_key = key_held_by(id, UniqueScope::ProductSlug, SLUG);
        let taken = key_held_by(
            Uuid::new_v4(),
            UniqueScope::ProductSlug,
            "iphone-15-pro-max",
        );
        assert_eq!(
            update_product_details(&product, product::tests::details(), at(), &old_key, &taken),
            Err(ProductError::SlugTaken {
                slug: slug("iphone-15-pro-max")
            })
        );
    }

    #[test]
    fn product_details_update_without_slug_change_touches_no_key() {
        let id = Uuid::new_v4();
        let product: Product = loaded(vec![product::tests::created(id)]);
        let key = key_held_by(id, UniqueScope::ProductSlug, SLUG);
        let mut details = product::tests::details();
        details.slug = slug(SLUG);
        let decision = update_product_details(&product, details, at(), &key, &key).unwrap();
        assert_eq!(decision.events.len(), 1);
        assert!(decision.unique_key_events.is_empty());
    }

    #[test]
    fn an_unheld_previous_slug_is_not_released() {
        let id = Uuid::new_v4();
        let product: Product = loaded(vec![product::tests::created(id)]);
        let decision = update_product_details(
            &product,
            product::tests::details(),
            at(),
            &UniqueKey::default(),
            &UniqueKey::default(),
        )
        .unwrap();
        assert_eq!(
            decision.unique_key_events,
            vec![claimed(UniqueScope::ProductSlug, "iphone-15-pro-max", id)]
        );
    }

    #[test]
    fn product_details_update_on_a_missing_or_archived_product_is_refused() {
        let free = UniqueKey::default();
        assert_eq!(
            update_product_details(
                &Product::default(),
                product::tests::details(),
                at(),
                &free,
                &free
            ),
            Err(ProductError::NotFound)
        );
        let id = Uuid::new_v4();
        let archived: Product = loaded(product::tests::history_to(
            id,
            product::ProductStatus::Archived,
        ));
        assert_eq!(
            update_product_details(&archived, product::tests::details(), at(), &free, &free),
            Err(ProductError::Archived { product_id: id })
        );
    }

    #[test]
    fn category_creation_claims_its_slug_or_is_refused() {
        let id = Uuid::new_v4();
        let decision = create_category(
            &Category::default(),
            category::tests::create(id, None),
            &UniqueKey::default(),
        )
        .unwrap();
        assert_eq!(
            decision,
            Decision {
                events: vec![category::tests::created(id, None)],
                unique_key_events: vec![claimed(UniqueScope::CategorySlug, "smartphones", id)],
            }
        );
        let taken = key_held_by(Uuid::new_v4(), UniqueScope::CategorySlug, "smartphones");
        assert_eq!(
            create_category(
                &Category::default(),
                category::tests::create(id, None),
                &taken
            ),
            Err(CategoryError::SlugTaken {
                slug: slug("smartphones")
            })
        );
    }

    #[test]
    fn category_update_moves_the_slug_claim() {
        let id = Uuid::new_v4();
        let category: Category = loaded(vec![category::tests::created(id, None)]);
        let old_key = key_held_by(id, UniqueScope::CategorySlug, "smartphones");
        let decision = update_category(
            &category,
            category::tests::update(),
            &old_key,
            &UniqueKey::default(),
        )
        .unwrap();
        assert_eq!(
            decision.unique_key_events,
            vec![
                claimed(UniqueScope::CategorySlug, "mobile-phones", id),
                released(UniqueScope::CategorySlug, "smartphones", id),
            ]
        );
        let taken = key_held_by(Uuid::new_v4(), UniqueScope::CategorySlug, "mobile-phones");
        assert_eq!(
            update_category(&category, category::tests::update(), &old_key, &taken),
            Err(CategoryError::SlugTaken {
                slug: slug("mobile-phones")
            })
        );
    }

    #[test]
    fn category_move_refuses_cycles_and_allows_other_parents() {
        let (id, child, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let category: Category = loaded(vec![category::tests::created(id, None)]);
        let cases = [
            (child, vec![child, id], false),
            (id, vec![id], false),
            (other, vec![other], true),
        ];
        for (new_parent, chain, ok) in cases {
            let result = move_category(
                &category,
                MoveCategory {
                    parent_id: Some(new_parent),
                    parent_ancestor_ids: chain,
                    at: at(),
                },
            );
            if ok {
                assert_eq!(
                    result,
                    Ok(vec![CategoryEvent::CategoryMoved {
                        category_id: id,
                        previous_parent_id: None,
                        parent_id: Some(new_parent),
                        at: at(),
                    }])
                );
            } else {
                assert_eq!(
                    result,
                    Err(CategoryError::WouldCreateCycle {
                        category_id: id,
                        new_parent_id: new_parent,
                    })
                );
            }
        }
    }

    #[test]
    fn brand_creation_and_update_claim_slugs() {
        let id = Uuid::new_v4();
        let decision = create_brand(
            &Brand::default(),
            brand::tests::create(id),
            &UniqueKey::default(),
        )
        .unwrap();
        assert_eq!(
            decision,
            Decision {
                events: vec![brand::tests::created(id)],
                unique_key_events: vec![claimed(UniqueScope::BrandSlug, "apple", id)],
            }
        );
        let taken = key_held_by(Uuid::new_v4(), UniqueScope::BrandSlug, "apple");
        assert_eq!(
            create_brand(&Brand::default(), brand::tests::create(id), &taken),
            Err(BrandError::SlugTaken {
                slug: slug("apple")
            })
        );

        let brand: Brand = loaded(vec![brand::tests::created(id)]);
        let old_key = key_held_by(id, UniqueScope::BrandSlug, "apple");
        let decision = update_brand(
            &brand,
            brand::tests::update(),
            &old_key,
            &UniqueKey::default(),
        )
        .unwrap();
        assert_eq!(
            decision.unique_key_events,
            vec![
                claimed(UniqueScope::BrandSlug, "apple-inc", id),
                released(UniqueScope::BrandSlug, "apple", id),
            ]
        );
        let taken = key_held_by(Uuid::new_v4(), UniqueScope::BrandSlug, "apple-inc");
        assert_eq!(
            update_brand(&brand, brand::tests::update(), &old_key, &taken),
            Err(BrandError::SlugTaken {
                slug: slug("apple-inc")
            })
        );
    }

    #[test]
    fn recreating_with_own_keys_is_still_refused_by_the_aggregate() {
        let id = Uuid::new_v4();
        let product: Product = loaded(vec![product::tests::created(id)]);
        let sku_key = key_held_by(id, UniqueScope::Sku, SKU);
        let slug_key = key_held_by(id, UniqueScope::ProductSlug, SLUG);
        assert_eq!(
            create_product(&product, product::tests::create(id), &sku_key, &slug_key),
            Err(ProductError::AlreadyExists { product_id: id })
        );
    }

    #[test]
    fn a_variant_claims_its_sku_for_itself() {
        let id = Uuid::new_v4();
        let variant_id = Uuid::new_v4();
        let product: Product = loaded(vec![product::tests::created(id)]);
        let command = AddProductVariant {
            variant_id,
            sku: product::tests::sku("iph-blk"),
            name: None,
            price: product::tests::price(rust_decimal_macros::dec!(45900)),
            stock_quantity: 0,
            attributes: Default::default(),
            at: at(),
        };
        let decision =
            add_product_variant(&product, command.clone(), &UniqueKey::default()).unwrap();
        assert_eq!(decision.events.len(), 1);
        assert_eq!(
            decision.unique_key_events,
            vec![claimed(UniqueScope::Sku, "IPH-BLK", variant_id)]
        );
        // Another product's sku, or another product's variant.
        let taken = key_held_by(Uuid::new_v4(), UniqueScope::Sku, "IPH-BLK");
        assert_eq!(
            add_product_variant(&product, command, &taken),
            Err(ProductError::SkuTaken {
                sku: product::tests::sku("IPH-BLK")
            })
        );
    }
}
