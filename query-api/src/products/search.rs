//! [`ProductSearch`] over Elasticsearch (or OpenSearch): one `_search` on the
//! products alias with a bool query built by [`search_body`].

use std::time::Duration;

use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::{StatusCode, Url};
use elasticsearch::{Elasticsearch, SearchParts};
use infrastructure::settings::ElasticsearchSettings;
use infrastructure::views::SearchProduct;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Cursor, ProductSearch, SearchPage, SearchQuery, SearchSort};
use crate::error::StoreError;
use crate::BoxFuture;

const STORE: &str = "elasticsearch";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Fields of the full-text search, with their boosts.
pub const TEXT_FIELDS: [&str; 6] = [
    "name^3",
    "description",
    "short_description",
    "category.name",
    "brand.name",
    "tags",
];

/// The `_search` body of a query: full text in `must`, exact filters in
/// `filter`, a deterministic sort (ties broken by id) and the page window.
pub fn search_body(query: &SearchQuery) -> Value {
    let mut must = Vec::new();
    if let Some(text) = &query.text {
        must.push(json!({
            "multi_match": { "query": text, "fields": TEXT_FIELDS }
        }));
    }
    let mut filter = Vec::new();
    if let Some(id) = query.category_id {
        filter.push(json!({ "term": { "category.id": id.to_string() } }));
    }
    if let Some(id) = query.brand_id {
        filter.push(json!({ "term": { "brand.id": id.to_string() } }));
    }
    if query.min_price.is_some() || query.max_price.is_some() {
        let mut range = serde_json::Map::new();
        if let Some(min) = query.min_price {
            range.insert("gte".into(), json!(min.to_string()));
        }
        if let Some(max) = query.max_price {
            range.insert("lte".into(), json!(max.to_string()));
        }
        filter.push(json!({ "range": { "price": range } }));
    }
    if let Some(status) = query.status {
        filter.push(json!({ "term": { "status": status.as_str() } }));
    }
    let query_clause = if must.is_empty() && filter.is_empty() {
        json!({ "match_all": {} })
    } else {
        json!({ "bool": { "must": must, "filter": filter } })
    };
    let primary = match query.sort {
        SearchSort::Relevance => json!({ "_score": { "order": "desc" } }),
        SearchSort::Newest => json!({ "createdAt": { "order": "desc" } }),
        SearchSort::PriceAsc => json!({ "price": { "order": "asc" } }),
        SearchSort::PriceDesc => json!({ "price": { "order": "desc" } }),
        SearchSort::NameAsc => json!({ "name.keyword": { "order": "asc" } }),
    };
    let mut body = json!({
        "query": query_clause,
        "sort": [primary, { "id": { "order": "asc" } }],
        "size": query.per_page,
        "track_total_hits": true
    });
    match &query.after {
        Some(cursor) => body["search_after"] = json!(cursor.after),
        None => body["from"] = json!(query.offset()),
    }
    body
}

pub struct ElasticsearchProductSearch {
    client: Elasticsearch,
    alias: String,
}

impl ElasticsearchProductSearch {
    pub fn new(settings: &ElasticsearchSettings) -> Result<Self, StoreError> {
        let url = Url::parse(&settings.url).map_err(|e| StoreError::failed(STORE, e))?;
        let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .timeout(REQUEST_TIMEOUT)
            .disable_proxy()
            .build()
            .map_err(|e| StoreError::failed(STORE, e))?;
        Ok(Self {
            client: Elasticsearch::new(transport),
            alias: settings.products_alias.clone(),
        })
    }

    /// The client, for callers that manage indexes (tests).
    pub fn client(&self) -> &Elasticsearch {
        &self.client
    }

    #[tracing::instrument(
        name = "es_search_products",
        skip_all,
        fields(alias = %self.alias, page = query.page, per_page = query.per_page)
    )]
    async fn run(&self, query: SearchQuery) -> Result<SearchPage, StoreError> {
        let body = search_body(&query);
        let response = self
            .client
            .search(SearchParts::Index(&[&self.alias]))
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status_code();
        if status == StatusCode::NOT_FOUND {
            let text = response.text().await.map_err(transport_error)?;
            if text.contains("index_not_found_exception") {
                tracing::debug!("search alias does not exist yet, answering an empty page");
                return Ok(SearchPage::default());
            }
            return Err(status_error(status, text));
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(status_error(status, text));
        }
        let page = decode(response, &query).await?;
        tracing::debug!(
            total = page.total,
            hits = page.hits.len(),
            "search answered"
        );
        Ok(page)
    }
}

impl ProductSearch for ElasticsearchProductSearch {
    fn search(&self, query: SearchQuery) -> BoxFuture<'_, Result<SearchPage, StoreError>> {
        Box::pin(self.run(query))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let response = self.client.ping().send().await.map_err(transport_error)?;
            let status = response.status_code();
            if status.is_success() {
                Ok(())
            } else {
                Err(status_error(status, String::new()))
            }
        })
    }
}

#[derive(Deserialize)]
struct SearchResponseBody {
    hits: Hits,
}

#[derive(Deserialize)]
struct Hits {
    total: Total,
    hits: Vec<Hit>,
}

/// `hits.total` is `{ "value": n, "relation": "eq" }`, or a bare number in
/// old servers.
#[derive(Deserialize)]
#[serde(untagged)]
enum Total {
    Object { value: u64 },
    Number(u64),
}

#[derive(Deserialize)]
struct Hit {
    #[serde(rename = "_source")]
    source: SearchProduct,
    /// The hit's sort values, for the next page's `search_after`.
    #[serde(default)]
    sort: Vec<Value>,
}

async fn decode(response: Response, query: &SearchQuery) -> Result<SearchPage, StoreError> {
    let bytes = response.bytes().await.map_err(transport_error)?;
    let body: SearchResponseBody = serde_json::from_slice(&bytes).map_err(|e| {
        StoreError::failed(
            STORE,
            anyhow::Error::new(e).context("search response does not hold product documents"),
        )
    })?;
    let total = match body.hits.total {
        Total::Object { value } | Total::Number(value) => value,
    };
    // Scores are not exact enough across servers to resume from (osmem
    // rounds them), so relevance pages go by number only.
    let full =
        body.hits.hits.len() == query.per_page as usize && query.sort != SearchSort::Relevance;
    let next = body
        .hits
        .hits
        .last()
        .filter(|last| full && last.sort.len() == 2)
        .map(|last| Cursor {
            sort: query.sort,
            after: last.sort.clone(),
        });
    Ok(SearchPage {
        total,
        hits: body.hits.hits.into_iter().map(|h| h.source).collect(),
        next,
    })
}

fn transport_error(error: elasticsearch::Error) -> StoreError {
    // No answer at all (refused, reset, timed out) or an answer the client
    // could not read: the server is not usable right now.
    let answered = error.status_code().is_some() || error.is_json();
    if answered {
        StoreError::failed(STORE, error)
    } else {
        StoreError::unavailable(STORE, error)
    }
}

fn status_error(status: StatusCode, body: String) -> StoreError {
    let mut body = body;
    body.truncate(500);
    let error = anyhow::anyhow!("{STORE} answered {status}: {body}");
    let overloaded = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::BAD_GATEWAY
        || status == StatusCode::SERVICE_UNAVAILABLE
        || status == StatusCode::GATEWAY_TIMEOUT;
    if overloaded {
        StoreError::unavailable(STORE, error)
    } else {
        StoreError::failed(STORE, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::products::ProductStatus;
    use rust_decimal::Decimal;
    use uuid::Uuid;

    #[test]
    fn a_bare_listing_matches_all_newest_first() {
        let body = search_body(&SearchQuery::default());
        assert_eq!(body["query"], json!({ "match_all": {} }));
        assert_eq!(body["sort"][0], json!({ "createdAt": { "order": "desc" } }));
        assert_eq!(body["sort"][1], json!({ "id": { "order": "asc" } }));
        assert_eq!(body["from"], 0);
        assert_eq!(body["size"], 20);
        assert_eq!(body["track_total_hits"], true);
    }

    #[test]
    fn text_and_filters_make_a_bool_query() {
        let category = Uuid::new_v4();
        let query = SearchQuery {
            text: Some("iphone".into()),
            category_id: Some(category),
            min_price: Some(Decimal::new(1000, 2)),
            max_price: Some(Decimal::new(250000, 2)),
            status: Some(ProductStatus::Active),
            sort: SearchSort::NameAsc,
            page: 3,
            per_page: 10,
            ..SearchQuery::default()
        };
        let body = search_body(&query);
        let multi_match = &body["query"]["bool"]["must"][0]["multi_match"];
        assert_eq!(multi_match["query"], "iphone");
        assert_eq!(multi_match["fields"][0], "name^3");
        let filter = body["query"]["bool"]["filter"].as_array().unwrap();
        assert_eq!(
            filter[0],
            json!({ "term": { "category.id": category.to_string() } })
        );
        assert_eq!(
            filter[1],
            json!({ "range": { "price": { "gte": "10.00", "lte": "2500.00" } } })
        );
        assert_eq!(filter[2], json!({ "term": { "status": "active" } }));
        assert_eq!(
            body["sort"][0],
            json!({ "name.keyword": { "order": "asc" } })
        );
        assert_eq!(body["from"], 20);
        assert_eq!(body["size"], 10);
    }
}
