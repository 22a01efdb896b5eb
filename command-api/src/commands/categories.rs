//! `POST /v1/categories` and `PATCH /v1/categories/{id}`: creation claims the
//! slug; a patch merges into the current details (moving the slug claim when
//! it changes), moves the category in the tree (`parent_id`, with the cycle
//! check over the new parent's ancestors) and (de)activates it (`is_active`).

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::catalog::decisions;
use domain::catalog::{
    Category, CategoryCommand, CategoryEvent, CreateCategory, MoveCategory, UpdateCategory,
};
use domain::uniqueness::UniqueScope;
use infrastructure::event_store::StreamAppend;
use serde::Deserialize;
use tracing::{instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Admin;
use crate::command::{
    execute, key_appends, load_as, load_existing, load_key, load_new, require_reference, AppState,
    Plan, Receipt,
};
use crate::error::ApiError;
use crate::input::{self, checked, patch, Fields, Patch};
use crate::openapi::{
    CommandHeaders, Conflict, Forbidden, NotFound, PreconditionFailed, RuleBroken,
};
use crate::request::{ApiPath, CommandBody, CommandContext, CommandRequest};

/// Guards the ancestor walk against a corrupt (looping) tree.
const MAX_TREE_DEPTH: usize = 64;

/// The texts that may span lines; the domain allows tabs and line feeds in
/// the same ones, and nowhere else.
const CATEGORY_MULTI_LINE: &[&str] = &["description", "meta_description"];

impl CommandBody for CreateCategoryRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = CATEGORY_MULTI_LINE;
}

impl CommandBody for UpdateCategoryRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = CATEGORY_MULTI_LINE;
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCategoryRequest {
    /// Client-chosen id; a new UUID v7 when absent.
    pub category_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    pub name: String,
    /// Lower-case words of `a-z 0-9` joined by single hyphens.
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 255)]
    pub slug: String,
    pub description: Option<String>,
    /// An absolute `http(s)` URL, at most 500 characters.
    #[schema(pattern = r"^\s*https?://[^/\s]\S*\s*$")]
    pub image_url: Option<String>,
    pub meta_title: Option<String>,
    pub meta_description: Option<String>,
    pub meta_keywords: Option<Vec<String>>,
    pub sort_order: Option<i32>,
}

impl CreateCategoryRequest {
    fn into_command(self, at: DateTime<Utc>) -> Result<CreateCategory, ApiError> {
        let mut fields = Fields::new();
        let slug = fields.check("slug", input::slug(self.slug));
        let image_url = fields.check_opt("image_url", self.image_url, input::url);
        fields.finish()?;
        Ok(CreateCategory {
            category_id: self.category_id.unwrap_or_else(Uuid::now_v7),
            parent_id: self.parent_id,
            name: self.name,
            slug: checked(slug)?,
            description: self.description,
            image_url: checked(image_url)?,
            meta_title: self.meta_title,
            meta_description: self.meta_description,
            meta_keywords: self.meta_keywords.unwrap_or_default(),
            sort_order: self.sort_order.unwrap_or(0),
            at,
        })
    }
}

#[utoipa::path(
    post,
    path = "/v1/categories",
    tag = "catalog",
    operation_id = "create_category",
    summary = "Create a category",
    description = "Claims the slug. `parent_id` must name an existing category (422 \
        `parent-category-not-found`); a client-chosen `category_id` that exists is a 422 `already-exists`, \
        or with `If-None-Match: *` a 412.",
    security(("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = CreateCategoryRequest,
    responses(
        (status = 201, description = "Created", body = Receipt),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(category_id = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    // Catalog writes are the admins\' alone.
    _admin: Admin,
    request: CommandRequest<CreateCategoryRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let command = body.into_command(context.at)?;
    Span::current().record("category_id", tracing::field::display(command.category_id));
    execute(&state, &context, || {
        plan_create(state.clone(), context.clone(), command.clone())
    })
    .await
}

async fn plan_create(
    state: AppState,
    context: CommandContext,
    command: CreateCategory,
) -> Result<Plan, ApiError> {
    let id = command.category_id;
    let category = load_new::<Category>(&state, &context, "category", id).await?;
    if let Some(parent_id) = command.parent_id.filter(|parent| *parent != id) {
        require_reference::<Category>(&state, "parent_id", "category", parent_id).await?;
    }
    let slug_key = load_key(&state, UniqueScope::CategorySlug, command.slug.as_str()).await?;
    let decision = decisions::create_category(&category.aggregate, command, &slug_key.aggregate)?;
    let mut appends = vec![category.append(&decision.events)];
    appends.extend(key_appends(&[&slug_key], &decision.unique_key_events)?);
    Ok(Plan::created("categories", id, appends))
}

/// A partial update: absent fields stay, `null` clears a nullable one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCategoryRequest {
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
    pub image_url: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub meta_title: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub meta_description: Patch<String>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Vec<String>>)]
    pub meta_keywords: Patch<Vec<String>>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = i32)]
    pub sort_order: Patch<i32>,
    /// Moves the category (`null`: to the root).
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Patch<Uuid>,
    /// Activates or deactivates the category.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = bool)]
    pub is_active: Patch<bool>,
}

impl UpdateCategoryRequest {
    fn changes_details(&self) -> bool {
        self.name.is_some()
            || self.slug.is_some()
            || self.description.is_some()
            || self.image_url.is_some()
            || self.meta_title.is_some()
            || self.meta_description.is_some()
            || self.meta_keywords.is_some()
            || self.sort_order.is_some()
    }

    fn part_count(&self) -> usize {
        usize::from(self.changes_details())
            + usize::from(self.parent_id.is_some())
            + usize::from(self.is_active.is_some())
    }

    /// Static checks, before anything is loaded.
    fn validate(&self) -> Result<(), ApiError> {
        let mut fields = Fields::new();
        if self.part_count() == 0 {
            fields.push("body", "give at least one field to change");
        }
        if self.is_active == Some(None) {
            fields.push("is_active", "must not be null");
        }
        fields.finish()
    }

    /// The current details with this patch merged in.
    fn merge(&self, current: UpdateCategory) -> Result<UpdateCategory, ApiError> {
        let mut fields = Fields::new();
        let patch = self.clone();
        let name = fields.merge_required("name", patch.name, current.name, input::text);
        let slug = fields.merge_required("slug", patch.slug, current.slug, input::slug);
        let image_url =
            fields.merge_nullable("image_url", patch.image_url, current.image_url, input::url);
        let sort_order = fields.merge_required(
            "sort_order",
            patch.sort_order,
            current.sort_order,
            Ok::<_, String>,
        );
        fields.finish()?;
        Ok(UpdateCategory {
            name: checked(name)?,
            slug: checked(slug)?,
            description: merge_text(patch.description, current.description),
            image_url: checked(image_url)?,
            meta_title: merge_text(patch.meta_title, current.meta_title),
            meta_description: merge_text(patch.meta_description, current.meta_description),
            meta_keywords: merge_keywords(patch.meta_keywords, current.meta_keywords),
            sort_order: checked(sort_order)?,
            at: current.at,
        })
    }
}

/// A nullable text column merged: absent keeps, `null` clears.
pub(crate) fn merge_text(patch: Patch<String>, current: Option<String>) -> Option<String> {
    match patch {
        None => current,
        Some(value) => value,
    }
}

/// `meta_keywords` merged: absent keeps, `null` clears to none.
pub(crate) fn merge_keywords(patch: Patch<Vec<String>>, current: Vec<String>) -> Vec<String> {
    match patch {
        None => current,
        Some(value) => value.unwrap_or_default(),
    }
}

#[utoipa::path(
    patch,
    path = "/v1/categories/{id}",
    tag = "catalog",
    operation_id = "update_category",
    summary = "Update, move or (de)activate a category",
    description = "Absent fields stay; `null` clears a nullable one (on `name`, `slug`, `sort_order` or \
        `is_active` it is a 400); `{}` is a 400. `parent_id` moves the category (422 `category-cycle` \
        under itself or a descendant), `is_active` toggles it.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The category"), CommandHeaders),
    request_body = UpdateCategoryRequest,
    responses(
        (status = 200, description = "Updated", body = Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(category_id = %id))]
pub async fn update(
    State(state): State<AppState>,
    // Catalog writes are the admins\' alone.
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
    request: CommandRequest<UpdateCategoryRequest>,
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
    patch: UpdateCategoryRequest,
) -> Result<Plan, ApiError> {
    let loaded = load_existing::<Category>(&state, &context, "category", id).await?;
    let at = context.at;
    let only_one_part = patch.part_count() == 1;
    // Each part decides against the state the previous parts left.
    let mut category = loaded.aggregate.clone();
    let mut events = Vec::new();
    let mut other_appends: Vec<StreamAppend> = Vec::new();

    if patch.changes_details() {
        let current = category
            .details(at)
            .ok_or_else(|| ApiError::not_found("category", id))?;
        let previous_slug = current.slug.clone();
        let details = patch.merge(current)?;
        let previous_key =
            load_key(&state, UniqueScope::CategorySlug, previous_slug.as_str()).await?;
        let new_key = if details.slug == previous_slug {
            previous_key.clone()
        } else {
            load_key(&state, UniqueScope::CategorySlug, details.slug.as_str()).await?
        };
        let decision = decisions::update_category(
            &category,
            details,
            &previous_key.aggregate,
            &new_key.aggregate,
        )?;
        other_appends.extend(key_appends(
            &[&previous_key, &new_key],
            &decision.unique_key_events,
        )?);
        apply_all(&mut category, &decision.events, &mut events);
    }

    if let Some(parent_id) = patch.parent_id {
        if parent_id != category.parent_id() || only_one_part {
            let (parent_ancestor_ids, asserts) = match parent_id {
                Some(parent_id) => ancestors(&state, id, parent_id).await?,
                None => (vec![], vec![]),
            };
            let moved = decisions::move_category(
                &category,
                MoveCategory {
                    parent_id,
                    parent_ancestor_ids,
                    at,
                },
            )?;
            other_appends.extend(asserts);
            apply_all(&mut category, &moved, &mut events);
        }
    }

    if let Some(Some(active)) = patch.is_active {
        if active != category.is_active() || only_one_part {
            let command = if active {
                CategoryCommand::ActivateCategory { at }
            } else {
                CategoryCommand::DeactivateCategory { at }
            };
            let toggled = category.decide(command)?;
            apply_all(&mut category, &toggled, &mut events);
        }
    }

    let mut appends = vec![loaded.append(&events)];
    appends.extend(other_appends);
    Ok(Plan::updated(id, appends))
}

fn apply_all(category: &mut Category, new: &[CategoryEvent], events: &mut Vec<CategoryEvent>) {
    for event in new {
        category.apply(event.clone());
        events.push(event.clone());
    }
}

/// The chain from `parent_id` up to the root, for the cycle check, with an
/// empty append asserting each link's version: a concurrent move of any of
/// them fails this append, and the retry sees the new tree.
async fn ancestors(
    state: &AppState,
    category_id: Uuid,
    parent_id: Uuid,
) -> Result<(Vec<Uuid>, Vec<StreamAppend>), ApiError> {
    let parent = require_reference::<Category>(state, "parent_id", "category", parent_id).await?;
    let mut chain = vec![parent_id];
    let mut asserts = Vec::new();
    let mut next = parent.aggregate.parent_id();
    if parent_id != category_id {
        asserts.push(parent.append(&[]));
    }
    while let Some(ancestor_id) = next {
        if chain.contains(&ancestor_id) || chain.len() >= MAX_TREE_DEPTH {
            break;
        }
        chain.push(ancestor_id);
        if ancestor_id == category_id {
            // Moving under a descendant: the domain refuses it.
            break;
        }
        match load_as::<Category>(state, &ancestor_id.to_string()).await? {
            Some(ancestor) if ancestor.version > 0 => {
                next = ancestor.aggregate.parent_id();
                asserts.push(ancestor.append(&[]));
            }
            _ => break,
        }
    }
    Ok((chain, asserts))
}
