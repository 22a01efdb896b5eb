//! Blue/green generations of an Elasticsearch read model: each generation is
//! a concrete index named `{alias}-{timestamp}` (with any companion indexes
//! named after it), and readers query the alias. The swap moves the alias in
//! one `_aliases` call, then drops the indexes it pointed at before, their
//! companions, and any generation an interrupted rebuild left behind.

use chrono::Utc;
use elasticsearch::cat::CatIndicesParts;
use elasticsearch::http::response::Response;
use elasticsearch::http::StatusCode;
use elasticsearch::indices::{IndicesCreateParts, IndicesDeleteParts, IndicesGetAliasParts};
use elasticsearch::Elasticsearch;
use serde_json::{json, Value};

use crate::runtime::ProjectionError;

/// One alias and the generations behind it.
pub struct Alias<'a> {
    pub client: &'a Elasticsearch,
    pub alias: &'a str,
}

fn transport(error: elasticsearch::Error) -> ProjectionError {
    ProjectionError::unavailable(error)
}

/// A refusal the server would repeat (a 4xx other than 408 and 429) is a
/// rejection; anything else may pass.
async fn refused(response: Response) -> ProjectionError {
    let status = response.status_code();
    let body = response.text().await.unwrap_or_default();
    let error = anyhow::anyhow!("elasticsearch answered {status}: {body}");
    if status.is_client_error()
        && status != StatusCode::TOO_MANY_REQUESTS
        && status != StatusCode::REQUEST_TIMEOUT
    {
        ProjectionError::rejected(error)
    } else {
        ProjectionError::unavailable(error)
    }
}

impl Alias<'_> {
    /// The name of a new generation's index.
    pub fn new_generation_name(&self) -> String {
        format!("{}-{}", self.alias, Utc::now().format("%Y%m%d%H%M%S%3f"))
    }

    pub async fn create_index(&self, name: &str, body: Value) -> Result<(), ProjectionError> {
        let response = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(name))
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        if !response.status_code().is_success() {
            return Err(refused(response).await);
        }
        Ok(())
    }

    /// Deletes `name`; one that does not exist is not an error.
    pub async fn delete_index(&self, name: &str) -> Result<(), ProjectionError> {
        let response = self
            .client
            .indices()
            .delete(IndicesDeleteParts::Index(&[name]))
            .send()
            .await
            .map_err(transport)?;
        let status = response.status_code();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(refused(response).await)
        }
    }

    /// The concrete indexes the alias points at.
    pub async fn indexes(&self) -> Result<Vec<String>, ProjectionError> {
        let response = self
            .client
            .indices()
            .get_alias(IndicesGetAliasParts::Name(&[self.alias]))
            .send()
            .await
            .map_err(transport)?;
        if !response.status_code().is_success() {
            return Ok(vec![]);
        }
        Ok(response
            .json::<Value>()
            .await
            .map_err(transport)?
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// Points the alias at `fresh` in one step, then drops every index it
    /// pointed at before with its `companions`, and every other generation
    /// but `fresh` and its companions.
    pub async fn swap_to(
        &self,
        fresh: &str,
        companions: impl Fn(&str) -> Vec<String>,
    ) -> Result<(), ProjectionError> {
        let previous = self.indexes().await?;
        let mut actions = vec![json!({ "add": { "index": fresh, "alias": self.alias } })];
        actions.extend(
            previous
                .iter()
                .map(|old| json!({ "remove": { "index": old, "alias": self.alias } })),
        );
        let response = self
            .client
            .indices()
            .update_aliases()
            .body(json!({ "actions": actions }))
            .send()
            .await
            .map_err(transport)?;
        if !response.status_code().is_success() {
            return Err(refused(response).await);
        }
        for old in &previous {
            for companion in companions(old) {
                self.delete_index(&companion).await?;
            }
            self.delete_index(old).await?;
        }
        let mut keep = companions(fresh);
        keep.push(fresh.to_owned());
        for stale in self.abandoned(&keep).await? {
            self.delete_index(&stale).await?;
        }
        Ok(())
    }

    /// Generations of this alias's naming other than `keep`: what an
    /// interrupted rebuild created and never swapped in.
    async fn abandoned(&self, keep: &[String]) -> Result<Vec<String>, ProjectionError> {
        let response = self
            .client
            .cat()
            .indices(CatIndicesParts::Index(&[&format!("{}-*", self.alias)]))
            .format("json")
            .send()
            .await
            .map_err(transport)?;
        if !response.status_code().is_success() {
            return Ok(vec![]);
        }
        let listed: Value = response.json().await.map_err(transport)?;
        Ok(listed
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry["index"].as_str())
            .filter(|name| is_generation_of(self.alias, name))
            .filter(|name| !keep.iter().any(|k| k == name))
            .map(str::to_owned)
            .collect())
    }
}

/// True for the names generations get, `{alias}-{17 digits}` and their
/// companions `{alias}-{17 digits}-…`: an operator's own `{alias}-archive`
/// is never taken for an abandoned generation.
pub fn is_generation_of(alias: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(alias).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let stamp = rest.split_once('-').map_or(rest, |(stamp, _)| stamp);
    stamp.len() == 17 && stamp.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_generation_names_count_as_generations() {
        assert!(is_generation_of("products", "products-20261203101500123"));
        assert!(is_generation_of(
            "products",
            "products-20261203101500123-lookups"
        ));
        assert!(!is_generation_of("products", "products-archive"));
        assert!(!is_generation_of("products", "products-lookups"));
        assert!(!is_generation_of(
            "products",
            "products-v2-20261203101500123"
        ));
        assert!(!is_generation_of("products", "productsx-20261203101500123"));
    }
}
