//! Contract of `ProductSearch`, run against `ElasticsearchProductSearch`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use infrastructure::views::SearchProduct;
use query_api::products::{
    ElasticsearchProductSearch, ProductSearch, ProductStatus, SearchQuery, SearchSort,
};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::support::{self, SearchCatalog, TestContext};

pub(crate) trait SearchHarness: Sized {
    type Search: ProductSearch;
    /// An adapter over a store that holds no products index yet.
    async fn start() -> Self;
    fn search(&self) -> &Self::Search;
    fn unreachable(&self) -> Self::Search;
    /// Indexes the documents as the search projector does; they are
    /// searchable when this returns.
    async fn put(&self, docs: &[SearchProduct]);
}

async fn find<H: SearchHarness>(harness: &H, query: SearchQuery) -> (u64, Vec<Uuid>) {
    let page = harness
        .search()
        .search(query)
        .await
        .expect("search answers");
    (page.total, page.hits.into_iter().map(|d| d.id).collect())
}

fn ids<const N: usize>(docs: [&SearchProduct; N]) -> Vec<Uuid> {
    docs.iter().map(|d| d.id).collect()
}

fn set(ids: &[Uuid]) -> BTreeSet<Uuid> {
    ids.iter().copied().collect()
}

pub(crate) async fn a_missing_index_is_an_empty_page<H: SearchHarness>() {
    let harness = H::start().await;
    let page = harness
        .search()
        .search(SearchQuery {
            text: Some("anything".into()),
            ..SearchQuery::default()
        })
        .await
        .expect("a fresh system answers");
    assert_eq!(page.total, 0);
    assert!(page.hits.is_empty());
}

pub(crate) async fn documents_come_back_as_indexed<H: SearchHarness>() {
    let harness = H::start().await;
    let catalog = SearchCatalog::new();
    harness.put(&catalog.all()).await;
    let page = harness
        .search()
        .search(SearchQuery::default())
        .await
        .unwrap();
    assert_eq!(page.total, 5);
    let iphone = page
        .hits
        .iter()
        .find(|d| d.id == catalog.iphone.id)
        .unwrap();
    assert_eq!(iphone, &catalog.iphone);
    let macbook = page
        .hits
        .iter()
        .find(|d| d.id == catalog.macbook.id)
        .unwrap();
    assert_eq!(macbook.price, 42900.99);
}

pub(crate) async fn text_matches_name_description_category_brand_and_tags<H: SearchHarness>() {
    let harness = H::start().await;
    let c = SearchCatalog::new();
    harness.put(&c.all()).await;
    let text = |q: &str| SearchQuery {
        text: Some(q.into()),
        ..SearchQuery::default()
    };
    let (total, found) = find(&harness, text("galaxy")).await;
    assert_eq!(total, 2);
    assert_eq!(set(&found), set(&ids([&c.galaxy_phone, &c.galaxy_book])));
    let (_, found) = find(&harness, text("laptop")).await;
    assert_eq!(found, ids([&c.macbook]), "description");
    let (_, found) = find(&harness, text("phones")).await;
    assert_eq!(
        set(&found),
        set(&ids([&c.iphone, &c.galaxy_phone])),
        "category name"
    );
    let (_, found) = find(&harness, text("samsung")).await;
    assert_eq!(
        set(&found),
        set(&ids([&c.galaxy_phone, &c.galaxy_book])),
        "brand name"
    );
    let (_, found) = find(&harness, text("android")).await;
    assert_eq!(found, ids([&c.galaxy_phone]), "tags");
    let (total, found) = find(&harness, text("nokia")).await;
    assert_eq!((total, found), (0, vec![]));
}

pub(crate) async fn relevance_ranks_a_name_match_first<H: SearchHarness>() {
    let harness = H::start().await;
    let mut in_description = support::search_doc("Pixel 8", 20000.0);
    in_description.description = Some("Faster than any galaxy phone".into());
    let in_name = support::search_doc("Galaxy S24", 29900.0);
    harness
        .put(&[in_description.clone(), in_name.clone()])
        .await;
    let (total, found) = find(
        &harness,
        SearchQuery {
            text: Some("galaxy".into()),
            sort: SearchSort::Relevance,
            ..SearchQuery::default()
        },
    )
    .await;
    assert_eq!(total, 2);
    assert_eq!(found, ids([&in_name, &in_description]));
}

pub(crate) async fn filters_narrow_the_results<H: SearchHarness>() {
    let harness = H::start().await;
    let c = SearchCatalog::new();
    harness.put(&c.all()).await;
    let by_name = SearchSort::NameAsc;
    let (_, found) = find(
        &harness,
        SearchQuery {
            category_id: Some(c.phones),
            sort: by_name,
            ..SearchQuery::default()
        },
    )
    .await;
    assert_eq!(found, ids([&c.galaxy_phone, &c.iphone]), "category");
    let (_, found) = find(
        &harness,
        SearchQuery {
            brand_id: Some(c.apple),
            sort: by_name,
            ..SearchQuery::default()
        },
    )
    .await;
    assert_eq!(found, ids([&c.airpods, &c.macbook, &c.iphone]), "brand");
    let (_, found) = find(
        &harness,
        SearchQuery {
            min_price: Some("29900.50".parse().unwrap()),
            max_price: Some(Decimal::from(35900)),
            sort: SearchSort::PriceAsc,
            ..SearchQuery::default()
        },
    )
    .await;
    assert_eq!(
        found,
        ids([&c.galaxy_phone, &c.galaxy_book, &c.iphone]),
        "price range, bounds included"
    );
    let (_, found) = find(
        &harness,
        SearchQuery {
            min_price: Some("40000".parse().unwrap()),
            ..SearchQuery::default()
        },
    )
    .await;
    assert_eq!(found, ids([&c.macbook]), "min price alone");
    let (_, found) = find(
        &harness,
        SearchQuery {
            max_price: Some("8000".parse().unwrap()),
            ..SearchQuery::default()
        },
    )
    .await;
    assert_eq!(found, ids([&c.airpods]), "max price alone");
    let (_, found) = find(
        &harness,
        SearchQuery {
            status: Some(ProductStatus::Draft),
            ..SearchQuery::default()
        },
    )
    .await;
    assert_eq!(found, ids([&c.galaxy_book]), "status");
    let (total, found) = find(
        &harness,
        SearchQuery {
            text: Some("galaxy".into()),
            category_id: Some(c.laptops),
            brand_id: Some(c.samsung),
            status: Some(ProductStatus::Draft),
            ..SearchQuery::default()
        },
    )
    .await;
    assert_eq!((total, found), (1, ids([&c.galaxy_book])), "combined");
}

pub(crate) async fn every_sort_order_holds<H: SearchHarness>() {
    let harness = H::start().await;
    let c = SearchCatalog::new();
    harness.put(&c.all()).await;
    let sorted = |sort| SearchQuery {
        sort,
        ..SearchQuery::default()
    };
    let (_, found) = find(&harness, sorted(SearchSort::Newest)).await;
    assert_eq!(
        found,
        ids([
            &c.iphone,
            &c.macbook,
            &c.galaxy_phone,
            &c.airpods,
            &c.galaxy_book
        ])
    );
    let (_, found) = find(&harness, sorted(SearchSort::PriceAsc)).await;
    assert_eq!(
        found,
        ids([
            &c.airpods,
            &c.galaxy_phone,
            &c.galaxy_book,
            &c.iphone,
            &c.macbook
        ])
    );
    let (_, found) = find(&harness, sorted(SearchSort::PriceDesc)).await;
    assert_eq!(
        found,
        ids([
            &c.macbook,
            &c.iphone,
            &c.galaxy_book,
            &c.galaxy_phone,
            &c.airpods
        ])
    );
    // `name.keyword` sorts by bytes: upper case before lower case.
    let (_, found) = find(&harness, sorted(SearchSort::NameAsc)).await;
    assert_eq!(
        found,
        ids([
            &c.airpods,
            &c.galaxy_book,
            &c.galaxy_phone,
            &c.macbook,
            &c.iphone
        ])
    );
}

pub(crate) async fn ties_are_broken_by_id<H: SearchHarness>() {
    let harness = H::start().await;
    let docs: Vec<SearchProduct> = (0..4)
        .map(|i| support::search_doc(&format!("Same price {i}"), 100.0))
        .collect();
    harness.put(&docs).await;
    let mut expected: Vec<Uuid> = docs.iter().map(|d| d.id).collect();
    expected.sort_by_key(|id| id.to_string());
    let (_, found) = find(
        &harness,
        SearchQuery {
            sort: SearchSort::PriceAsc,
            ..SearchQuery::default()
        },
    )
    .await;
    assert_eq!(found, expected);
}

pub(crate) async fn pages_partition_the_results<H: SearchHarness>() {
    let harness = H::start().await;
    let c = SearchCatalog::new();
    harness.put(&c.all()).await;
    let page = |page| SearchQuery {
        sort: SearchSort::PriceAsc,
        page,
        per_page: 2,
        ..SearchQuery::default()
    };
    let mut seen = Vec::new();
    for (number, size) in [(1, 2), (2, 2), (3, 1), (4, 0)] {
        let (total, found) = find(&harness, page(number)).await;
        assert_eq!(total, 5, "page {number}");
        assert_eq!(found.len(), size, "page {number}");
        seen.extend(found);
    }
    assert_eq!(
        seen,
        ids([
            &c.airpods,
            &c.galaxy_phone,
            &c.galaxy_book,
            &c.iphone,
            &c.macbook
        ])
    );
}

/// Cursors walk every sort order but relevance in the order a single page
/// would show, each hit once, and the last page gives no cursor.
pub(crate) async fn cursors_walk_every_sort_order_to_the_end<H: SearchHarness>() {
    let harness = H::start().await;
    let c = SearchCatalog::new();
    harness.put(&c.all()).await;
    for sort in [
        SearchSort::Newest,
        SearchSort::PriceAsc,
        SearchSort::PriceDesc,
        SearchSort::NameAsc,
    ] {
        let text = None::<String>;
        let whole = harness
            .search()
            .search(SearchQuery {
                text: text.clone(),
                sort,
                per_page: 100,
                ..SearchQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(whole.next, None, "{sort:?}: one page holds everything");
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let page = harness
                .search()
                .search(SearchQuery {
                    text: text.clone(),
                    sort,
                    per_page: 2,
                    after: after.clone(),
                    ..SearchQuery::default()
                })
                .await
                .unwrap();
            walked.extend(page.hits.iter().map(|h| h.id));
            match page.next {
                Some(next) if !page.hits.is_empty() => after = Some(next),
                _ => break,
            }
            assert!(walked.len() <= whole.hits.len(), "{sort:?}: the walk ends");
        }
        let expected: Vec<Uuid> = whole.hits.iter().map(|h| h.id).collect();
        assert_eq!(walked, expected, "{sort:?}");
    }
}

pub(crate) async fn a_store_that_is_down_is_unavailable<H: SearchHarness>() {
    let harness = H::start().await;
    let search = harness.unreachable();
    let started = Instant::now();
    let error = search
        .search(SearchQuery::default())
        .await
        .expect_err("down");
    assert!(error.is_unavailable(), "{error:?}");
    assert!(search.ping().await.expect_err("down").is_unavailable());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

pub(crate) async fn a_store_that_is_up_answers_ping<H: SearchHarness>() {
    let harness = H::start().await;
    harness.search().ping().await.expect("ping");
}

macro_rules! product_search_contract {
    ($harness:ty) => {
        #[tokio::test]
        async fn a_missing_index_is_an_empty_page() {
            super::a_missing_index_is_an_empty_page::<$harness>().await;
        }
        #[tokio::test]
        async fn documents_come_back_as_indexed() {
            super::documents_come_back_as_indexed::<$harness>().await;
        }
        #[tokio::test]
        async fn text_matches_name_description_category_brand_and_tags() {
            super::text_matches_name_description_category_brand_and_tags::<$harness>().await;
        }
        #[tokio::test]
        async fn relevance_ranks_a_name_match_first() {
            super::relevance_ranks_a_name_match_first::<$harness>().await;
        }
        #[tokio::test]
        async fn filters_narrow_the_results() {
            super::filters_narrow_the_results::<$harness>().await;
        }
        #[tokio::test]
        async fn every_sort_order_holds() {
            super::every_sort_order_holds::<$harness>().await;
        }
        #[tokio::test]
        async fn ties_are_broken_by_id() {
            super::ties_are_broken_by_id::<$harness>().await;
        }
        #[tokio::test]
        async fn pages_partition_the_results() {
            super::pages_partition_the_results::<$harness>().await;
        }
        #[tokio::test]
        async fn cursors_walk_every_sort_order_to_the_end() {
            super::cursors_walk_every_sort_order_to_the_end::<$harness>().await;
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

mod elasticsearch_adapter {
    use super::*;

    pub(crate) struct ElasticsearchHarness {
        context: TestContext,
        search: ElasticsearchProductSearch,
    }

    impl SearchHarness for ElasticsearchHarness {
        type Search = ElasticsearchProductSearch;

        async fn start() -> Self {
            let context = TestContext::new().await;
            let search =
                ElasticsearchProductSearch::new(&context.settings.elasticsearch).expect("adapter");
            Self { context, search }
        }

        fn search(&self) -> &ElasticsearchProductSearch {
            &self.search
        }

        fn unreachable(&self) -> ElasticsearchProductSearch {
            let mut settings = self.context.settings.elasticsearch.clone();
            settings.url = support::DEAD_ELASTICSEARCH.into();
            ElasticsearchProductSearch::new(&settings).expect("adapter")
        }

        async fn put(&self, docs: &[SearchProduct]) {
            self.context.index_products(docs).await;
        }
    }

    product_search_contract!(ElasticsearchHarness);

    /// Elasticsearch-specific: an alias that exists over an empty index is
    /// an empty page too.
    #[tokio::test]
    async fn an_empty_index_is_an_empty_page() {
        let harness = ElasticsearchHarness::start().await;
        harness.context.create_search_index().await;
        let page = harness.search.search(SearchQuery::default()).await.unwrap();
        assert_eq!(page.total, 0);
        assert!(page.hits.is_empty());
    }
}
