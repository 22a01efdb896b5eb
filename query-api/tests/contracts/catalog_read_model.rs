//! Contract of `CatalogReadModel`, run against `PgCatalogReadModel`.

use std::time::{Duration, Instant};

use infrastructure::views::{BrandView, CategoryView, ProductView};
use query_api::catalog::{BrandFilter, CatalogReadModel, CategoryFilter, Page, PgCatalogReadModel};
use uuid::Uuid;

use crate::support::{self, TestContext};

pub(crate) trait ReadModelHarness: Sized {
    type ReadModel: CatalogReadModel;
    async fn start() -> Self;
    fn read_model(&self) -> &Self::ReadModel;
    fn unreachable(&self) -> Self::ReadModel;
    async fn put_category(&self, category: &CategoryView);
    async fn put_brand(&self, brand: &BrandView);
    async fn put_product(&self, product: &ProductView);
}

pub(crate) async fn an_unknown_product_is_none<H: ReadModelHarness>() {
    let harness = H::start().await;
    let found = harness.read_model().product(Uuid::new_v4()).await.unwrap();
    assert_eq!(found, None);
}

pub(crate) async fn a_product_reads_back_whole<H: ReadModelHarness>() {
    let harness = H::start().await;
    let category = support::category("Phones", 1);
    let brand = support::brand("Apple");
    harness.put_category(&category).await;
    harness.put_brand(&brand).await;
    let mut product = support::product("iPhone 15 Pro");
    product.category_id = Some(category.id);
    product.brand_id = Some(brand.id);
    product.length = Some(support::money("14.67"));
    product.meta_keywords = vec!["iphone".into(), "apple".into()];
    product.featured = true;
    // Its rows, in the order every store serves them.
    let image = |n: u128, sort_order, is_primary| infrastructure::views::ProductImageView {
        id: Uuid::from_u128(n),
        url: format!("https://cdn.example.com/{n}.jpg"),
        alt_text: (n == 1).then(|| "Front".to_owned()),
        is_primary,
        sort_order,
    };
    product.images = vec![image(2, 0, true), image(1, 1, false), image(3, 1, false)];
    let attribute =
        |name: &str, value: &str, sort_order| infrastructure::views::ProductAttributeView {
            id: Uuid::new_v4(),
            name: name.into(),
            value: value.into(),
            sort_order,
        };
    product.attributes = vec![
        attribute("Screen", "6.1\"\nSuper Retina", -1),
        attribute("Chip", "A17 Pro", 0),
        attribute("Colour", "Natural", 0),
    ];
    let variant =
        |sku: &str, price: &str, stock, is_active| infrastructure::views::ProductVariantView {
            id: Uuid::new_v4(),
            sku: sku.into(),
            name: Some(format!("{sku} name")),
            price: support::money(price),
            stock_quantity: stock,
            attributes: [("storage".to_owned(), sku.to_owned())].into(),
            is_active,
        };
    product.variants = vec![
        variant("IPH-15-P-128", "39900.00", 3, true),
        variant("IPH-15-P-256", "43900.50", 0, false),
    ];
    harness.put_product(&product).await;
    harness.put_product(&support::product("Another")).await;

    let found = harness.read_model().product(product.id).await.unwrap();
    assert_eq!(found, Some(product));
}

pub(crate) async fn categories_are_ordered_by_sort_order_then_name<H: ReadModelHarness>() {
    let harness = H::start().await;
    let b = support::category("Beta", 1);
    let a = support::category("Alpha", 2);
    let c = support::category("Gamma", 1);
    for category in [&a, &b, &c] {
        harness.put_category(category).await;
    }
    let listed = harness
        .read_model()
        .categories(CategoryFilter::default(), Page::first())
        .await
        .unwrap()
        .items;
    assert_eq!(listed, vec![b, c, a]);
}

pub(crate) async fn categories_filter_by_activity_and_parent<H: ReadModelHarness>() {
    let harness = H::start().await;
    let root = support::category("Electronics", 0);
    let mut phones = support::category("Phones", 1);
    phones.parent_id = Some(root.id);
    let mut retired = support::category("Pagers", 2);
    retired.parent_id = Some(root.id);
    retired.is_active = false;
    for category in [&root, &phones, &retired] {
        harness.put_category(category).await;
    }
    let read_model = harness.read_model();
    let list = |filter: CategoryFilter| async move {
        read_model
            .categories(filter, Page::first())
            .await
            .unwrap()
            .items
    };
    let active = list(CategoryFilter {
        is_active: Some(true),
        parent_id: None,
    })
    .await;
    assert_eq!(active, vec![root.clone(), phones.clone()]);
    let inactive = list(CategoryFilter {
        is_active: Some(false),
        parent_id: None,
    })
    .await;
    assert_eq!(inactive, vec![retired.clone()]);
    let children = list(CategoryFilter {
        is_active: None,
        parent_id: Some(root.id),
    })
    .await;
    assert_eq!(children, vec![phones.clone(), retired.clone()]);
    let active_children = list(CategoryFilter {
        is_active: Some(true),
        parent_id: Some(root.id),
    })
    .await;
    assert_eq!(active_children, vec![phones]);
    let none = list(CategoryFilter {
        is_active: None,
        parent_id: Some(Uuid::new_v4()),
    })
    .await;
    assert!(none.is_empty());
}

pub(crate) async fn brands_are_ordered_by_name_and_filter_by_activity<H: ReadModelHarness>() {
    let harness = H::start().await;
    assert!(harness
        .read_model()
        .brands(BrandFilter::default(), Page::first())
        .await
        .unwrap()
        .items
        .is_empty());
    let samsung = support::brand("Samsung");
    let apple = support::brand("Apple");
    let mut nokia = support::brand("Nokia");
    nokia.is_active = false;
    for brand in [&samsung, &apple, &nokia] {
        harness.put_brand(brand).await;
    }
    let all = harness
        .read_model()
        .brands(BrandFilter::default(), Page::first())
        .await
        .unwrap()
        .items;
    assert_eq!(all, vec![apple.clone(), nokia.clone(), samsung.clone()]);
    let active = harness
        .read_model()
        .brands(
            BrandFilter {
                is_active: Some(true),
            },
            Page::first(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(active, vec![apple, samsung]);
    let inactive = harness
        .read_model()
        .brands(
            BrandFilter {
                is_active: Some(false),
            },
            Page::first(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(inactive, vec![nokia]);
}

/// Keyset pages walk a listing in its order, each item once, however long
/// it is; the last page gives no key.
pub(crate) async fn listings_page_by_key_to_the_end<H: ReadModelHarness>() {
    let harness = H::start().await;
    let mut categories = Vec::new();
    for n in 0..7 {
        // Equal sort orders and names, so that the key's later parts count.
        let category = support::category(if n % 2 == 0 { "Same" } else { "Other" }, n % 3);
        harness.put_category(&category).await;
        categories.push(category);
    }
    for n in 0..5 {
        harness
            .put_brand(&support::brand(if n % 2 == 0 { "Twin" } else { "Solo" }))
            .await;
    }
    let read_model = harness.read_model();
    let whole = read_model
        .categories(
            CategoryFilter::default(),
            Page {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(whole.items.len(), 7);
    assert_eq!(whole.next, None);
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = read_model
            .categories(CategoryFilter::default(), Page { limit: 3, after })
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        walked.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(walked, whole.items);

    let whole = read_model
        .brands(
            BrandFilter::default(),
            Page {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap();
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = read_model
            .brands(BrandFilter::default(), Page { limit: 2, after })
            .await
            .unwrap();
        walked.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(walked.len(), 5);
    assert_eq!(walked, whole.items);
}

pub(crate) async fn a_store_that_is_down_is_unavailable<H: ReadModelHarness>() {
    let harness = H::start().await;
    let read_model = harness.unreachable();
    let started = Instant::now();
    let error = read_model.product(Uuid::new_v4()).await.expect_err("down");
    assert!(error.is_unavailable(), "{error:?}");
    let error = read_model
        .categories(CategoryFilter::default(), Page::first())
        .await
        .expect_err("down");
    assert!(error.is_unavailable(), "{error:?}");
    assert!(read_model.ping().await.expect_err("down").is_unavailable());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

pub(crate) async fn a_store_that_is_up_answers_ping<H: ReadModelHarness>() {
    let harness = H::start().await;
    harness.read_model().ping().await.expect("ping");
}

macro_rules! catalog_read_model_contract {
    ($harness:ty) => {
        #[tokio::test]
        async fn an_unknown_product_is_none() {
            super::an_unknown_product_is_none::<$harness>().await;
        }
        #[tokio::test]
        async fn a_product_reads_back_whole() {
            super::a_product_reads_back_whole::<$harness>().await;
        }
        #[tokio::test]
        async fn categories_are_ordered_by_sort_order_then_name() {
            super::categories_are_ordered_by_sort_order_then_name::<$harness>().await;
        }
        #[tokio::test]
        async fn categories_filter_by_activity_and_parent() {
            super::categories_filter_by_activity_and_parent::<$harness>().await;
        }
        #[tokio::test]
        async fn brands_are_ordered_by_name_and_filter_by_activity() {
            super::brands_are_ordered_by_name_and_filter_by_activity::<$harness>().await;
        }
        #[tokio::test]
        async fn listings_page_by_key_to_the_end() {
            super::listings_page_by_key_to_the_end::<$harness>().await;
        }
        #[tokio::test]
        async fn a_store_that_is_down_is_unavailable() {
            super::a_store_that_is_down_is_unavailable::<$harness>().await;
        }
        #[tokio::test]
        async fn a_store_that_is_up_answers_ping() {
            super::a_store_that_is_up_answers_ping::<$harness>().await;
        }
    };
}

mod postgres_adapter {
    use std::str::FromStr;

    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use super::*;

    pub(crate) struct PostgresHarness {
        context: TestContext,
        read_model: PgCatalogReadModel,
    }

    impl ReadModelHarness for PostgresHarness {
        type ReadModel = PgCatalogReadModel;

        async fn start() -> Self {
            let context = TestContext::new().await;
            let read_model = PgCatalogReadModel::new(context.pool().clone());
            Self {
                context,
                read_model,
            }
        }

        fn read_model(&self) -> &PgCatalogReadModel {
            &self.read_model
        }

        fn unreachable(&self) -> PgCatalogReadModel {
            let pool = PgPoolOptions::new()
                .acquire_timeout(Duration::from_secs(2))
                .connect_lazy_with(PgConnectOptions::from_str(support::DEAD_POSTGRES).unwrap());
            PgCatalogReadModel::new(pool)
        }

        async fn put_category(&self, category: &CategoryView) {
            self.context.insert_category(category).await;
        }

        async fn put_brand(&self, brand: &BrandView) {
            self.context.insert_brand(brand).await;
        }

        async fn put_product(&self, product: &ProductView) {
            self.context.insert_product(product).await;
        }
    }

    catalog_read_model_contract!(PostgresHarness);

    /// PostgreSQL-specific: the seed's columns are nullable with defaults; a
    /// row with NULLs still reads as a complete view, and the internal cost
    /// price is never part of it.
    #[tokio::test]
    async fn null_columns_read_as_their_defaults() {
        let harness = PostgresHarness::start().await;
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO read_model.products (id, sku, name, slug, regular_price, cost_price, \
             currency, track_inventory, stock_quantity, low_stock_threshold, meta_keywords, status, \
             featured) VALUES ($1, 'SKU-NULLS', 'Bare', 'bare', 10.50, 3.00, NULL, NULL, NULL, NULL, \
             NULL, NULL, NULL)",
        )
        .bind(id)
        .execute(harness.context.pool())
        .await
        .unwrap();
        let product = harness.read_model.product(id).await.unwrap().unwrap();
        assert_eq!(product.regular_price.to_string(), "10.50");
        assert_eq!(product.currency, "THB");
        assert!(product.track_inventory);
        assert_eq!(product.stock_quantity, 0);
        assert_eq!(product.low_stock_threshold, 5);
        assert!(product.meta_keywords.is_empty());
        assert_eq!(product.status, "draft");
        assert!(!product.featured);
        let json = serde_json::to_value(&product).unwrap();
        assert!(json.get("cost_price").is_none());

        let category_id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO read_model.categories (id, name, slug, meta_keywords, sort_order, is_active) \
             VALUES ($1, 'Bare', 'bare', NULL, NULL, NULL)",
        )
        .bind(category_id)
        .execute(harness.context.pool())
        .await
        .unwrap();
        let categories = harness
            .read_model
            .categories(
                CategoryFilter {
                    is_active: Some(true),
                    parent_id: None,
                },
                Page::first(),
            )
            .await
            .unwrap()
            .items;
        assert_eq!(categories.len(), 1);
        assert_eq!(categories[0].sort_order, 0);
        assert!(categories[0].meta_keywords.is_empty());
    }
}
