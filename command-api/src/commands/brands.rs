//! `POST /v1/brands` and `PATCH /v1/brands/{id}`: creation claims the slug; a
//! patch merges into the current details (moving the slug claim when it
//! changes) and (de)activates the brand (`is_active`).

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::catalog::decisions;
use domain::catalog::{Brand, BrandCommand, BrandEvent, CreateBrand, UpdateBrand};
use domain::uniqueness::UniqueScope;
use infrastructure::event_store::StreamAppend;
use serde::Deserialize;
use tracing::{instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use super::categories::merge_text;
use crate::auth::Admin;
use crate::command::{
    execute, key_appends, load_existing, load_key, load_new, AppState, Plan, Receipt,
};
use crate::error::ApiError;
use crate::input::{self, checked, patch, Fields, Patch};
use crate::openapi::{
    CommandHeaders, Conflict, Forbidden, NotFound, PreconditionFailed, RuleBroken,
};
use crate::request::{ApiPath, CommandBody, CommandContext, CommandRequest};

/// The texts that may span lines; the domain allows tabs and line feeds in
/// the same ones, and nowhere else.
const BRAND_MULTI_LINE: &[&str] = &["description"];

impl CommandBody for CreateBrandRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = BRAND_MULTI_LINE;
}

impl CommandBody for UpdateBrandRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = BRAND_MULTI_LINE;
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBrandRequest {
    /// Client-chosen id; a new UUID v7 when absent.
    pub brand_id: Option<Uuid>,
    pub name: String,
    /// Lower-case words of `a-z 0-9` joined by single hyphens.
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 255)]
    pub slug: String,
    pub description: Option<String>,
    /// An absolute `http(s)` URL, at most 500 characters.
    #[schema(pattern = r"^\s*https?://[^/\s]\S*\s*$")]
    pub logo_url: Option<String>,
    /// An absolute `http(s)` URL, at most 500 characters.
    #[schema(pattern = r"^\s*https?://[^/\s]\S*\s*$")]
    pub website_url: Option<String>,
}

impl CreateBrandRequest {
    fn into_command(self, at: DateTime<Utc>) -> Result<CreateBrand, ApiError> {
        let mut fields = Fields::new();
        let slug = fields.check("slug", input::slug(self.slug));
        let logo_url = fields.check_opt("logo_url", self.logo_url, input::url);
        let website_url = fields.check_opt("website_url", self.website_url, input::url);
        fields.finish()?;
        Ok(CreateBrand {
            brand_id: self.brand_id.unwrap_or_else(Uuid::now_v7),
            name: self.name,
            slug: checked(slug)?,
            description: self.description,
            logo_url: checked(logo_url)?,
            website_url: checked(website_url)?,
            at,
        })
    }
}

#[utoipa::path(
    post,
    path = "/v1/brands",
    tag = "catalog",
    operation_id = "create_brand",
    summary = "Create a brand",
    description = "Claims the slug (422 `slug-taken`).",
    security(("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = CreateBrandRequest,
    responses(
        (status = 201, description = "Created", body = Receipt),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(brand_id = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    // Catalog writes are the admins\' alone.
    _admin: Admin,
    request: CommandRequest<CreateBrandRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let command = body.into_command(context.at)?;
    Span::current().record("brand_id", tracing::field::display(command.brand_id));
    execute(&state, &context, || {
        plan_create(state.clone(), context.clone(), command.clone())
    })
    .await
}

async fn plan_create(
    state: AppState,
    context: CommandContext,
    command: CreateBrand,
) -> Result<Plan, ApiError> {
    let id = command.brand_id;
    let brand = load_new::<Brand>(&state, &context, "brand", id).await?;
    let slug_key = load_key(&state, UniqueScope::BrandSlug, command.slug.as_str()).await?;
    let decision = decisions::create_brand(&brand.aggregate, command, &slug_key.aggregate)?;
    let mut appends = vec![brand.append(&decision.events)];
    appends.extend(key_appends(&[&slug_key], &decision.unique_key_events)?);
    Ok(Plan::created("brands", id, appends))
}

/// A partial update: absent fields stay, `null` clears a nullable one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBrandRequest {
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String)]
    pub name: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = String, pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 255)]
    pub slug: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>, pattern = r"^\s*https?://[^/\s]\S*\s*$")]
    pub logo_url: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>, pattern = r"^\s*https?://[^/\s]\S*\s*$")]
    pub website_url: Patch<String>,
    /// Activates or deactivates the brand.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = bool)]
    pub is_active: Patch<bool>,
}

impl UpdateBrandRequest {
    fn changes_details(&self) -> bool {
        self.name.is_some()
            || self.slug.is_some()
            || self.description.is_some()
            || self.logo_url.is_some()
            || self.website_url.is_some()
    }

    fn validate(&self) -> Result<(), ApiError> {
        let mut fields = Fields::new();
        if !self.changes_details() && self.is_active.is_none() {
            fields.push("body", "give at least one field to change");
        }
        if self.is_active == Some(None) {
            fields.push("is_active", "must not be null");
        }
        fields.finish()
    }

    fn merge(&self, current: UpdateBrand) -> Result<UpdateBrand, ApiError> {
        let mut fields = Fields::new();
        let patch = self.clone();
        let name = fields.merge_required("name", patch.name, current.name, input::text);
        let slug = fields.merge_required("slug", patch.slug, current.slug, input::slug);
        let logo_url =
            fields.merge_nullable("logo_url", patch.logo_url, current.logo_url, input::url);
        let website_url = fields.merge_nullable(
            "website_url",
            patch.website_url,
            current.website_url,
            input::url,
        );
        fields.finish()?;
        Ok(UpdateBrand {
            name: checked(name)?,
            slug: checked(slug)?,
            description: merge_text(patch.description, current.description),
            logo_url: checked(logo_url)?,
            website_url: checked(website_url)?,
            at: current.at,
        })
    }
}

#[utoipa::path(
    patch,
    path = "/v1/brands/{id}",
    tag = "catalog",
    operation_id = "update_brand",
    summary = "Update or (de)activate a brand",
    description = "Absent fields stay; `null` clears a nullable one (on `name`, `slug` or `is_active` it \
        is a 400); `{}` is a 400.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The brand"), CommandHeaders),
    request_body = UpdateBrandRequest,
    responses(
        (status = 200, description = "Updated", body = Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(brand_id = %id))]
pub async fn update(
    State(state): State<AppState>,
    // Catalog writes are the admins\' alone.
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<UpdateBrandRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    body.validate()?;
    execute(&state, &context, || {
        plan_update(state.clone(), context.clone(), id, body.clone())
    })
    .await
}

async fn plan_update(
    state: AppState,
    context: CommandContext,
    id: Uuid,
    patch: UpdateBrandRequest,
) -> Result<Plan, ApiError> {
    let loaded = load_existing::<Brand>(&state, &context, "brand", id).await?;
    let at = context.at;
    let mut brand = loaded.aggregate.clone();
    let mut events: Vec<BrandEvent> = Vec::new();
    let mut key_changes: Vec<StreamAppend> = Vec::new();

    if patch.changes_details() {
        let current = brand
            .details(at)
            .ok_or_else(|| ApiError::not_found("brand", id))?;
        let previous_slug = current.slug.clone();
        let details = patch.merge(current)?;
        let previous_key = load_key(&state, UniqueScope::BrandSlug, previous_slug.as_str()).await?;
        let new_key = if details.slug == previous_slug {
            previous_key.clone()
        } else {
            load_key(&state, UniqueScope::BrandSlug, details.slug.as_str()).await?
        };
        let decision =
            decisions::update_brand(&brand, details, &previous_key.aggregate, &new_key.aggregate)?;
        key_changes = key_appends(&[&previous_key, &new_key], &decision.unique_key_events)?;
        for event in decision.events {
            brand.apply(event.clone());
            events.push(event);
        }
    }

    if let Some(Some(active)) = patch.is_active {
        if active != brand.is_active() || !patch.changes_details() {
            let command = if active {
                BrandCommand::ActivateBrand { at }
            } else {
                BrandCommand::DeactivateBrand { at }
            };
            events.extend(brand.decide(command)?);
        }
    }

    let mut appends = vec![loaded.append(&events)];
    appends.extend(key_changes);
    Ok(Plan::updated(id, appends))
}
