//! The `Category` aggregate: a node of the category tree (`categories` table),
//! its details, its place in the tree and whether it is shown. Slug uniqueness
//! and the tree-wide cycle check take outside state, so the command side goes
//! through `catalog::decisions` for creation, update and moves.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{keywords, optional_text, LONG_TEXT_MAX, SHORT_TEXT_MAX};
use crate::values::{bounded_text, Slug, TextLayout, Url, ValueError};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Category {
    state: Option<CategoryState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CategoryState {
    category_id: Uuid,
    parent_id: Option<Uuid>,
    name: String,
    slug: Slug,
    description: Option<String>,
    image_url: Option<Url>,
    meta_title: Option<String>,
    meta_description: Option<String>,
    meta_keywords: Vec<String>,
    sort_order: i32,
    is_active: bool,
}

impl Category {
    pub fn is_created(&self) -> bool {
        self.state.is_some()
    }
    pub fn id(&self) -> Option<Uuid> {
        self.state.as_ref().map(|s| s.category_id)
    }
    pub fn parent_id(&self) -> Option<Uuid> {
        self.state.as_ref().and_then(|s| s.parent_id)
    }
    pub fn name(&self) -> Option<&str> {
        self.state.as_ref().map(|s| s.name.as_str())
    }
    pub fn slug(&self) -> Option<&Slug> {
        self.state.as_ref().map(|s| &s.slug)
    }
    pub fn is_active(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.is_active)
    }
    /// The current editable details, for the command side to merge a partial
    /// update into before sending `UpdateCategory`.
    pub fn details(&self, at: DateTime<Utc>) -> Option<UpdateCategory> {
        self.state.as_ref().map(|s| UpdateCategory {
            name: s.name.clone(),
            slug: s.slug.clone(),
            description: s.description.clone(),
            image_url: s.image_url.clone(),
            meta_title: s.meta_title.clone(),
            meta_description: s.meta_description.clone(),
            meta_keywords: s.meta_keywords.clone(),
            sort_order: s.sort_order,
            at,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateCategory {
    pub category_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub slug: Slug,
    pub description: Option<String>,
    pub image_url: Option<Url>,
    pub meta_title: Option<String>,
    pub meta_description: Option<String>,
    pub meta_keywords: Vec<String>,
    pub sort_order: i32,
    pub at: DateTime<Utc>,
}

/// The full new details (not a patch).
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateCategory {
    pub name: String,
    pub slug: Slug,
    pub description: Option<String>,
    pub image_url: Option<Url>,
    pub meta_title: Option<String>,
    pub meta_description: Option<String>,
    pub meta_keywords: Vec<String>,
    pub sort_order: i32,
    pub at: DateTime<Utc>,
}

/// `parent_ancestor_ids` is the chain from the new parent up to the root
/// (the new parent first; including it is optional). The aggregate sees only
/// itself, so the tree walk is the caller's plain input.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveCategory {
    pub parent_id: Option<Uuid>,
    pub parent_ancestor_ids: Vec<Uuid>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CategoryCommand {
    CreateCategory(CreateCategory),
    UpdateCategory(UpdateCategory),
    MoveCategory(MoveCategory),
    ActivateCategory { at: DateTime<Utc> },
    DeactivateCategory { at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CategoryEvent {
    CategoryCreated {
        category_id: Uuid,
        parent_id: Option<Uuid>,
        name: String,
        slug: Slug,
        description: Option<String>,
        image_url: Option<Url>,
        meta_title: Option<String>,
        meta_description: Option<String>,
        meta_keywords: Vec<String>,
        sort_order: i32,
        is_active: bool,
        at: DateTime<Utc>,
    },
    CategoryUpdated {
        category_id: Uuid,
        name: String,
        slug: Slug,
        description: Option<String>,
        image_url: Option<Url>,
        meta_title: Option<String>,
        meta_description: Option<String>,
        meta_keywords: Vec<String>,
        sort_order: i32,
        previous_slug: Slug,
        at: DateTime<Utc>,
    },
    CategoryMoved {
        category_id: Uuid,
        previous_parent_id: Option<Uuid>,
        parent_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
    CategoryActivated {
        category_id: Uuid,
        at: DateTime<Utc>,
    },
    CategoryDeactivated {
        category_id: Uuid,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for CategoryEvent {
    fn event_type(&self) -> String {
        match self {
            CategoryEvent::CategoryCreated { .. } => "CategoryCreated",
            CategoryEvent::CategoryUpdated { .. } => "CategoryUpdated",
            CategoryEvent::CategoryMoved { .. } => "CategoryMoved",
            CategoryEvent::CategoryActivated { .. } => "CategoryActivated",
            CategoryEvent::CategoryDeactivated { .. } => "CategoryDeactivated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CategoryError {
    #[error("category not found")]
    NotFound,
    #[error("category {category_id} already exists")]
    AlreadyExists { category_id: Uuid },
    #[error("category slug {slug} is already taken")]
    SlugTaken { slug: Slug },
    #[error("moving category {category_id} under {new_parent_id} would create a cycle")]
    WouldCreateCycle {
        category_id: Uuid,
        new_parent_id: Uuid,
    },
    #[error("category {category_id} already has parent {parent_id:?}")]
    ParentUnchanged {
        category_id: Uuid,
        parent_id: Option<Uuid>,
    },
    #[error("category {category_id} is already active")]
    AlreadyActive { category_id: Uuid },
    #[error("category {category_id} is already inactive")]
    AlreadyInactive { category_id: Uuid },
    #[error(transparent)]
    InvalidValue(#[from] ValueError),
}

impl Category {
    /// The events `command` produces against the current state, without
    /// side effects; `handle` and the decisions both go through here.
    pub fn decide(&self, command: CategoryCommand) -> Result<Vec<CategoryEvent>, CategoryError> {
        if let CategoryCommand::CreateCategory(c) = command {
            if let Some(s) = &self.state {
                return Err(CategoryError::AlreadyExists {
                    category_id: s.category_id,
                });
            }
            if c.parent_id == Some(c.category_id) {
                return Err(CategoryError::WouldCreateCycle {
                    category_id: c.category_id,
                    new_parent_id: c.category_id,
                });
            }
            return Ok(vec![CategoryEvent::CategoryCreated {
                category_id: c.category_id,
                parent_id: c.parent_id,
                name: bounded_text("name", &c.name, SHORT_TEXT_MAX)?,
                slug: c.slug,
                description: optional_text(
                    "description",
                    c.description,
                    LONG_TEXT_MAX,
                    TextLayout::MultiLine,
                )?,
                image_url: c.image_url,
                meta_title: optional_text(
                    "meta_title",
                    c.meta_title,
                    SHORT_TEXT_MAX,
                    TextLayout::SingleLine,
                )?,
                meta_description: optional_text(
                    "meta_description",
                    c.meta_description,
                    LONG_TEXT_MAX,
                    TextLayout::MultiLine,
                )?,
                meta_keywords: keywords(c.meta_keywords)?,
                sort_order: c.sort_order,
                is_active: true,
                at: c.at,
            }]);
        }
        let s = self.state.as_ref().ok_or(CategoryError::NotFound)?;
        let category_id = s.category_id;
        let event = match command {
            CategoryCommand::CreateCategory(_) => unreachable!("handled above"),
            CategoryCommand::UpdateCategory(c) => CategoryEvent::CategoryUpdated {
                category_id,
                name: bounded_text("name", &c.name, SHORT_TEXT_MAX)?,
                slug: c.slug,
                description: optional_text(
                    "description",
                    c.description,
                    LONG_TEXT_MAX,
                    TextLayout::MultiLine,
                )?,
                image_url: c.image_url,
                meta_title: optional_text(
                    "meta_title",
                    c.meta_title,
                    SHORT_TEXT_MAX,
                    TextLayout::SingleLine,
                )?,
                meta_description: optional_text(
                    "meta_description",
                    c.meta_description,
                    LONG_TEXT_MAX,
                    TextLayout::MultiLine,
                )?,
                meta_keywords: keywords(c.meta_keywords)?,
                sort_order: c.sort_order,
                previous_slug: s.slug.clone(),
                at: c.at,
            },
            CategoryCommand::MoveCategory(c) => {
                if c.parent_id == s.parent_id {
                    return Err(CategoryError::ParentUnchanged {
                        category_id,
                        parent_id: s.parent_id,
                    });
                }
                if let Some(new_parent_id) = c.parent_id {
                    // Under itself, or under any node whose ancestors include it
                    // (a descendant), the tree would loop.
                    if new_parent_id == category_id || c.parent_ancestor_ids.contains(&category_id)
                    {
                        return Err(CategoryError::WouldCreateCycle {
                            category_id,
                            new_parent_id,
                        });
                    }
                }
                CategoryEvent::CategoryMoved {
                    category_id,
                    previous_parent_id: s.parent_id,
                    parent_id: c.parent_id,
                    at: c.at,
                }
            }
            CategoryCommand::ActivateCategory { at } => {
                if s.is_active {
                    return Err(CategoryError::AlreadyActive { category_id });
                }
                CategoryEvent::CategoryActivated { category_id, at }
            }
            CategoryCommand::DeactivateCategory { at } => {
                if !s.is_active {
                    return Err(CategoryError::AlreadyInactive { category_id });
                }
                CategoryEvent::CategoryDeactivated { category_id, at }
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for Category {
    const TYPE: &'static str = "category";
    type Command = CategoryCommand;
    type Event = CategoryEvent;
    type Error = CategoryError;
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
        match event {
            CategoryEvent::CategoryCreated {
                category_id,
                parent_id,
                name,
                slug,
                description,
                image_url,
                meta_title,
                meta_description,
                meta_keywords,
                sort_order,
                is_active,
                ..
            } => {
                self.state = Some(CategoryState {
                    category_id,
                    parent_id,
                    name,
                    slug,
                    description,
                    image_url,
                    meta_title,
                    meta_description,
                    meta_keywords,
                    sort_order,
                    is_active,
                })
            }
            CategoryEvent::CategoryUpdated {
                name,
                slug,
                description,
                image_url,
                meta_title,
                meta_description,
                meta_keywords,
                sort_order,
                ..
            } => {
                if let Some(s) = &mut self.state {
                    s.name = name;
                    s.slug = slug;
                    s.description = description;
                    s.image_url = image_url;
                    s.meta_title = meta_title;
                    s.meta_description = meta_description;
                    s.meta_keywords = meta_keywords;
                    s.sort_order = sort_order;
                }
            }
            CategoryEvent::CategoryMoved { parent_id, .. } => {
                if let Some(s) = &mut self.state {
                    s.parent_id = parent_id;
                }
            }
            CategoryEvent::CategoryActivated { .. } => {
                if let Some(s) = &mut self.state {
                    s.is_active = true;
                }
            }
            CategoryEvent::CategoryDeactivated { .. } => {
                if let Some(s) = &mut self.state {
                    s.is_active = false;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::values::TextError;
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Category>;

    pub(crate) fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap()
    }

    pub(crate) fn slug(s: &str) -> Slug {
        Slug::parse(s).unwrap()
    }

    pub(crate) fn create(category_id: Uuid, parent_id: Option<Uuid>) -> CreateCategory {
        CreateCategory {
            category_id,
            parent_id,
            name: " Smartphones ".into(),
            slug: slug("smartphones"),
            description: Some("Phones".into()),
            image_url: Some(Url::parse("https://cdn.example.com/c.jpg").unwrap()),
            meta_title: Some("Smartphones".into()),
            meta_description: None,
            meta_keywords: vec!["phone".into()],
            sort_order: 2,
            at: at(),
        }
    }

    pub(crate) fn created(category_id: Uuid, parent_id: Option<Uuid>) -> CategoryEvent {
        CategoryEvent::CategoryCreated {
            category_id,
            parent_id,
            name: "Smartphones".into(),
            slug: slug("smartphones"),
            description: Some("Phones".into()),
            image_url: Some(Url::parse("https://cdn.example.com/c.jpg").unwrap()),
            meta_title: Some("Smartphones".into()),
            meta_description: None,
            meta_keywords: vec!["phone".into()],
            sort_order: 2,
            is_active: true,
            at: at(),
        }
    }

    pub(crate) fn update() -> UpdateCategory {
        UpdateCategory {
            name: "Mobile phones".into(),
            slug: slug("mobile-phones"),
            description: None,
            image_url: None,
            meta_title: None,
            meta_description: Some("All phones".into()),
            meta_keywords: vec![],
            sort_order: 1,
            at: at(),
        }
    }

    fn moved(parent_id: Option<Uuid>, ancestors: Vec<Uuid>) -> CategoryCommand {
        CategoryCommand::MoveCategory(MoveCategory {
            parent_id,
            parent_ancestor_ids: ancestors,
            at: at(),
        })
    }

    #[test]
    fn a_category_is_created_active_with_trimmed_text() {
        let id = Uuid::new_v4();
        let parent = Uuid::new_v4();
        Given::with(())
            .given_no_previous_events()
            .when(CategoryCommand::CreateCategory(create(id, Some(parent))))
            .then_expect_events(vec![created(id, Some(parent))]);
    }

    #[test]
    fn a_category_cannot_be_created_twice() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id, None)])
            .when(CategoryCommand::CreateCategory(create(
                Uuid::new_v4(),
                None,
            )))
            .then_expect_error(CategoryError::AlreadyExists { category_id: id });
    }

    #[test]
    fn a_category_cannot_be_created_under_itself() {
        let id = Uuid::new_v4();
        Given::with(())
            .given_no_previous_events()
            .when(CategoryCommand::CreateCategory(create(id, Some(id))))
            .then_expect_error(CategoryError::WouldCreateCycle {
                category_id: id,
                new_parent_id: id,
            });
    }

    #[test]
    fn a_blank_or_overlong_name_is_refused() {
        let id = Uuid::new_v4();
        for name in ["  ".to_owned(), "x".repeat(256)] {
            let mut cmd = create(id, None);
            cmd.name = name.clone();
            Given::with(())
                .given_no_previous_events()
                .when(CategoryCommand::CreateCategory(cmd))
                .then_expect_error(CategoryError::InvalidValue(crate::values::length_error(
                    "name", &name, 255,
                )));
        }
    }

    /// Texts with a NUL (which PostgreSQL's JSONB refuses), a BEL and a line
    /// separator: none of them may reach an event.
    pub(crate) const UNPRINTABLE: [&str; 3] = [
        "Smart\u{0}phones",
        "Smart\u{7}phones",
        "Smart\u{2028}phones",
    ];

    /// The refusal of `text`, one of `UNPRINTABLE`, given as `field`.
    pub(crate) fn unprintable(field: &'static str, text: &str) -> ValueError {
        ValueError::Text {
            field,
            reason: TextError::ForbiddenCharacter {
                character: text.chars().nth(5).unwrap(),
                index: 5,
            },
        }
    }

    type CategoryEdit = fn(&mut CreateCategory, String);

    const CATEGORY_TEXTS: [(&str, CategoryEdit); 5] = [
        ("name", |c, t| c.name = t),
        ("description", |c, t| c.description = Some(t)),
        ("meta_title", |c, t| c.meta_title = Some(t)),
        ("meta_description", |c, t| c.meta_description = Some(t)),
        ("meta_keywords", |c, t| {
            c.meta_keywords = vec!["phone".into(), t]
        }),
    ];

    #[test]
    fn control_characters_are_refused_in_every_text_of_a_creation() {
        for (field, edit) in CATEGORY_TEXTS {
            for bad in UNPRINTABLE {
                let mut cmd = create(Uuid::new_v4(), None);
                edit(&mut cmd, bad.to_owned());
                Given::with(())
                    .given_no_previous_events()
                    .when(CategoryCommand::CreateCategory(cmd))
                    .then_expect_error(CategoryError::InvalidValue(unprintable(field, bad)));
            }
        }
    }

    #[test]
    fn control_characters_are_refused_in_every_text_of_an_update() {
        let id = Uuid::new_v4();
        for (field, edit) in CATEGORY_TEXTS {
            for bad in UNPRINTABLE {
                let mut create = create(id, None);
                edit(&mut create, bad.to_owned());
                let cmd = UpdateCategory {
                    name: create.name,
                    description: create.description,
                    meta_title: create.meta_title,
                    meta_description: create.meta_description,
                    meta_keywords: create.meta_keywords,
                    ..update()
                };
                Given::with(())
                    .given(vec![created(id, None)])
                    .when(CategoryCommand::UpdateCategory(cmd))
                    .then_expect_error(CategoryError::InvalidValue(unprintable(field, bad)));
            }
        }
    }

    #[test]
    fn descriptions_keep_tabs_and_newlines_names_do_not() {
        let id = Uuid::new_v4();
        let mut cmd = create(id, None);
        cmd.description = Some("Phones\n\tand more".into());
        cmd.meta_description = Some("All\nphones".into());
        let events = Given::with(())
            .given_no_previous_events()
            .when(CategoryCommand::CreateCategory(cmd))
            .inspect_result()
            .unwrap();
        let CategoryEvent::CategoryCreated {
            description,
            meta_description,
            ..
        } = &events[0]
        else {
            panic!("{events:?}");
        };
        assert_eq!(description.as_deref(), Some("Phones\n\tand more"));
        assert_eq!(meta_description.as_deref(), Some("All\nphones"));
        for bad in ["Smart\nphones", "Smart\tphones", "Smart\rphones"] {
            let mut cmd = create(id, None);
            cmd.name = bad.into();
            Given::with(())
                .given_no_previous_events()
                .when(CategoryCommand::CreateCategory(cmd))
                .then_expect_error(CategoryError::InvalidValue(unprintable("name", bad)));
        }
    }

    #[test]
    fn an_update_carries_every_new_detail_and_the_previous_slug() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id, None)])
            .when(CategoryCommand::UpdateCategory(update()))
            .then_expect_events(vec![CategoryEvent::CategoryUpdated {
                category_id: id,
                name: "Mobile phones".into(),
                slug: slug("mobile-phones"),
                description: None,
                image_url: None,
                meta_title: None,
                meta_description: Some("All phones".into()),
                meta_keywords: vec![],
                sort_order: 1,
                previous_slug: slug("smartphones"),
                at: at(),
            }]);
    }

    #[test]
    fn commands_on_a_missing_category_are_refused() {
        for cmd in [
            CategoryCommand::UpdateCategory(update()),
            CategoryCommand::ActivateCategory { at: at() },
            CategoryCommand::DeactivateCategory { at: at() },
            moved(None, vec![]),
        ] {
            Given::with(())
                .given_no_previous_events()
                .when(cmd)
                .then_expect_error(CategoryError::NotFound);
        }
    }

    #[test]
    fn a_category_moves_to_another_parent_or_to_the_root() {
        let (id, old, new) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        Given::with(())
            .given(vec![created(id, Some(old))])
            .when(moved(Some(new), vec![new, Uuid::new_v4()]))
            .then_expect_events(vec![CategoryEvent::CategoryMoved {
                category_id: id,
                previous_parent_id: Some(old),
                parent_id: Some(new),
                at: at(),
            }]);
        Given::with(())
            .given(vec![created(id, Some(old))])
            .when(moved(None, vec![]))
            .then_expect_events(vec![CategoryEvent::CategoryMoved {
                category_id: id,
                previous_parent_id: Some(old),
                parent_id: None,
                at: at(),
            }]);
    }

    #[test]
    fn moving_under_itself_is_a_cycle() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id, None)])
            .when(moved(Some(id), vec![id]))
            .then_expect_error(CategoryError::WouldCreateCycle {
                category_id: id,
                new_parent_id: id,
            });
    }

    #[test]
    fn moving_under_a_descendant_is_a_cycle_at_any_depth() {
        let id = Uuid::new_v4();
        let (child, grandchild) = (Uuid::new_v4(), Uuid::new_v4());
        // grandchild -> child -> id -> root
        for (new_parent, chain) in [
            (child, vec![child, id]),
            (grandchild, vec![grandchild, child, id]),
            // The chain may also start above the new parent.
            (grandchild, vec![child, id]),
        ] {
            Given::with(())
                .given(vec![created(id, None)])
                .when(moved(Some(new_parent), chain))
                .then_expect_error(CategoryError::WouldCreateCycle {
                    category_id: id,
                    new_parent_id: new_parent,
                });
        }
    }

    #[test]
    fn moving_to_the_current_parent_is_refused() {
        let (id, parent) = (Uuid::new_v4(), Uuid::new_v4());
        Given::with(())
            .given(vec![created(id, Some(parent))])
            .when(moved(Some(parent), vec![parent]))
            .then_expect_error(CategoryError::ParentUnchanged {
                category_id: id,
                parent_id: Some(parent),
            });
        Given::with(())
            .given(vec![created(id, None)])
            .when(moved(None, vec![]))
            .then_expect_error(CategoryError::ParentUnchanged {
                category_id: id,
                parent_id: None,
            });
    }

    #[test]
    fn deactivate_then_activate() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id, None)])
            .when(CategoryCommand::DeactivateCategory { at: at() })
            .then_expect_events(vec![CategoryEvent::CategoryDeactivated {
                category_id: id,
                at: at(),
            }]);
        Given::with(())
            .given(vec![
                created(id, None),
                CategoryEvent::CategoryDeactivated {
                    category_id: id,
                    at: at(),
                },
            ])
            .when(CategoryCommand::ActivateCategory { at: at() })
            .then_expect_events(vec![CategoryEvent::CategoryActivated {
                category_id: id,
                at: at(),
            }]);
    }

    #[test]
    fn no_op_activation_changes_are_refused() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id, None)])
            .when(CategoryCommand::ActivateCategory { at: at() })
            .then_expect_error(CategoryError::AlreadyActive { category_id: id });
        Given::with(())
            .given(vec![
                created(id, None),
                CategoryEvent::CategoryDeactivated {
                    category_id: id,
                    at: at(),
                },
            ])
            .when(CategoryCommand::DeactivateCategory { at: at() })
            .then_expect_error(CategoryError::AlreadyInactive { category_id: id });
    }

    #[test]
    fn details_round_trip_through_apply() {
        let id = Uuid::new_v4();
        let mut category = Category::default();
        category.apply(created(id, None));
        let details = category.details(at()).unwrap();
        assert_eq!(details.slug, slug("smartphones"));
        assert_eq!(details.name, "Smartphones");
        assert_eq!(category.id(), Some(id));
        assert!(category.is_active());
        assert_eq!(
            CategoryEvent::CategoryMoved {
                category_id: id,
                previous_parent_id: None,
                parent_id: None,
                at: at()
            }
            .event_type(),
            "CategoryMoved"
        );
    }
}
