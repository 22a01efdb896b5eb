//! The `Brand` aggregate (`brands` table): a brand's details and whether it is
//! shown. Slug uniqueness takes outside state, so the command side creates and
//! updates brands through `catalog::decisions`.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{optional_text, LONG_TEXT_MAX, SHORT_TEXT_MAX};
use crate::values::{bounded_text, Slug, TextLayout, Url, ValueError};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Brand {
    state: Option<BrandState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BrandState {
    brand_id: Uuid,
    name: String,
    slug: Slug,
    description: Option<String>,
    logo_url: Option<Url>,
    website_url: Option<Url>,
    is_active: bool,
}

impl Brand {
    pub fn is_created(&self) -> bool {
        self.state.is_some()
    }
    pub fn id(&self) -> Option<Uuid> {
        self.state.as_ref().map(|s| s.brand_id)
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
    /// update into before sending `UpdateBrand`.
    pub fn details(&self, at: DateTime<Utc>) -> Option<UpdateBrand> {
        self.state.as_ref().map(|s| UpdateBrand {
            name: s.name.clone(),
            slug: s.slug.clone(),
            description: s.description.clone(),
            logo_url: s.logo_url.clone(),
            website_url: s.website_url.clone(),
            at,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateBrand {
    pub brand_id: Uuid,
    pub name: String,
    pub slug: Slug,
    pub description: Option<String>,
    pub logo_url: Option<Url>,
    pub website_url: Option<Url>,
    pub at: DateTime<Utc>,
}

/// The full new details (not a patch).
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateBrand {
    pub name: String,
    pub slug: Slug,
    pub description: Option<String>,
    pub logo_url: Option<Url>,
    pub website_url: Option<Url>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BrandCommand {
    CreateBrand(CreateBrand),
    UpdateBrand(UpdateBrand),
    ActivateBrand { at: DateTime<Utc> },
    DeactivateBrand { at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BrandEvent {
    BrandCreated {
        brand_id: Uuid,
        name: String,
        slug: Slug,
        description: Option<String>,
        logo_url: Option<Url>,
        website_url: Option<Url>,
        is_active: bool,
        at: DateTime<Utc>,
    },
    BrandUpdated {
        brand_id: Uuid,
        name: String,
        slug: Slug,
        description: Option<String>,
        logo_url: Option<Url>,
        website_url: Option<Url>,
        previous_slug: Slug,
        at: DateTime<Utc>,
    },
    BrandActivated {
        brand_id: Uuid,
        at: DateTime<Utc>,
    },
    BrandDeactivated {
        brand_id: Uuid,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for BrandEvent {
    fn event_type(&self) -> String {
        match self {
            BrandEvent::BrandCreated { .. } => "BrandCreated",
            BrandEvent::BrandUpdated { .. } => "BrandUpdated",
            BrandEvent::BrandActivated { .. } => "BrandActivated",
            BrandEvent::BrandDeactivated { .. } => "BrandDeactivated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BrandError {
    #[error("brand not found")]
    NotFound,
    #[error("brand {brand_id} already exists")]
    AlreadyExists { brand_id: Uuid },
    #[error("brand slug {slug} is already taken")]
    SlugTaken { slug: Slug },
    #[error("brand {brand_id} is already active")]
    AlreadyActive { brand_id: Uuid },
    #[error("brand {brand_id} is already inactive")]
    AlreadyInactive { brand_id: Uuid },
    #[error(transparent)]
    InvalidValue(#[from] ValueError),
}

impl Brand {
    /// The events `command` produces against the current state, without
    /// side effects; `handle` and the decisions both go through here.
    pub fn decide(&self, command: BrandCommand) -> Result<Vec<BrandEvent>, BrandError> {
        if let BrandCommand::CreateBrand(c) = command {
            if let Some(s) = &self.state {
                return Err(BrandError::AlreadyExists {
                    brand_id: s.brand_id,
                });
            }
            return Ok(vec![BrandEvent::BrandCreated {
                brand_id: c.brand_id,
                name: bounded_text("name", &c.name, SHORT_TEXT_MAX)?,
                slug: c.slug,
                description: optional_text(
                    "description",
                    c.description,
                    LONG_TEXT_MAX,
                    TextLayout::MultiLine,
                )?,
                logo_url: c.logo_url,
                website_url: c.website_url,
                is_active: true,
                at: c.at,
            }]);
        }
        let s = self.state.as_ref().ok_or(BrandError::NotFound)?;
        let brand_id = s.brand_id;
        let event = match command {
            BrandCommand::CreateBrand(_) => unreachable!("handled above"),
            BrandCommand::UpdateBrand(c) => BrandEvent::BrandUpdated {
                brand_id,
                name: bounded_text("name", &c.name, SHORT_TEXT_MAX)?,
                slug: c.slug,
                description: optional_text(
                    "description",
                    c.description,
                    LONG_TEXT_MAX,
                    TextLayout::MultiLine,
                )?,
                logo_url: c.logo_url,
                website_url: c.website_url,
                previous_slug: s.slug.clone(),
                at: c.at,
            },
            BrandCommand::ActivateBrand { at } => {
                if s.is_active {
                    return Err(BrandError::AlreadyActive { brand_id });
                }
                BrandEvent::BrandActivated { brand_id, at }
            }
            BrandCommand::DeactivateBrand { at } => {
                if !s.is_active {
                    return Err(BrandError::AlreadyInactive { brand_id });
                }
                BrandEvent::BrandDeactivated { brand_id, at }
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for Brand {
    const TYPE: &'static str = "brand";
    type Command = BrandCommand;
    type Event = BrandEvent;
    type Error = BrandError;
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
            BrandEvent::BrandCreated {
                brand_id,
                name,
                slug,
                description,
                logo_url,
                website_url,
                is_active,
                ..
            } => {
                self.state = Some(BrandState {
                    brand_id,
                    name,
                    slug,
                    description,
                    logo_url,
                    website_url,
                    is_active,
                })
            }
            BrandEvent::BrandUpdated {
                name,
                slug,
                description,
                logo_url,
                website_url,
                ..
            } => {
                if let Some(s) = &mut self.state {
                    s.name = name;
                    s.slug = slug;
                    s.description = description;
                    s.logo_url = logo_url;
                    s.website_url = website_url;
                }
            }
            BrandEvent::BrandActivated { .. } => {
                if let Some(s) = &mut self.state {
                    s.is_active = true;
                }
            }
            BrandEvent::BrandDeactivated { .. } => {
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
    use crate::catalog::category::tests::{at, slug};
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Brand>;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    pub(crate) fn create(brand_id: Uuid) -> CreateBrand {
        CreateBrand {
            brand_id,
            name: "Apple".into(),
            slug: slug("apple"),
            description: Some("  ".into()),
            logo_url: Some(url("https://cdn.example.com/apple.png")),
            website_url: Some(url("https://www.apple.com")),
            at: at(),
        }
    }

    pub(crate) fn created(brand_id: Uuid) -> BrandEvent {
        BrandEvent::BrandCreated {
            brand_id,
            name: "Apple".into(),
            slug: slug("apple"),
            description: None,
            logo_url: Some(url("https://cdn.example.com/apple.png")),
            website_url: Some(url("https://www.apple.com")),
            is_active: true,
            at: at(),
        }
    }

    pub(crate) fn update() -> UpdateBrand {
        UpdateBrand {
            name: "Apple Inc.".into(),
            slug: slug("apple-inc"),
            description: Some("Computers".into()),
            logo_url: None,
            website_url: Some(url("https://apple.com")),
            at: at(),
        }
    }

    #[test]
    fn a_brand_is_created_active() {
        let id = Uuid::new_v4();
        Given::with(())
            .given_no_previous_events()
            .when(BrandCommand::CreateBrand(create(id)))
            .then_expect_events(vec![created(id)]);
    }

    #[test]
    fn a_brand_cannot_be_created_twice() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id)])
            .when(BrandCommand::CreateBrand(create(Uuid::new_v4())))
            .then_expect_error(BrandError::AlreadyExists { brand_id: id });
    }

    #[test]
    fn an_overlong_name_is_refused() {
        let mut cmd = create(Uuid::new_v4());
        cmd.name = "b".repeat(256);
        Given::with(())
            .given_no_previous_events()
            .when(BrandCommand::CreateBrand(cmd))
            .then_expect_error(BrandError::InvalidValue(crate::values::length_error(
                "name",
                &"b".repeat(256),
                255,
            )));
    }

    type BrandEdit = fn(&mut CreateBrand, String);

    #[test]
    fn control_characters_are_refused_in_the_name_and_description() {
        use crate::catalog::category::tests::{unprintable, UNPRINTABLE};
        let id = Uuid::new_v4();
        let edits: [(&str, BrandEdit); 2] = [
            ("name", |c, t| c.name = t),
            ("description", |c, t| c.description = Some(t)),
        ];
        for bad in UNPRINTABLE {
            for (field, edit) in edits {
                let mut cmd = create(id);
                edit(&mut cmd, bad.to_owned());
                let update = UpdateBrand {
                    name: cmd.name.clone(),
                    description: cmd.description.clone(),
                    ..update()
                };
                Given::with(())
                    .given_no_previous_events()
                    .when(BrandCommand::CreateBrand(cmd))
                    .then_expect_error(BrandError::InvalidValue(unprintable(field, bad)));
                Given::with(())
                    .given(vec![created(id)])
                    .when(BrandCommand::UpdateBrand(update))
                    .then_expect_error(BrandError::InvalidValue(unprintable(field, bad)));
            }
        }
    }

    #[test]
    fn an_update_carries_every_new_detail_and_the_previous_slug() {
        let id = Uuid::new_v4();
        Given::with(())
            .given(vec![created(id)])
            .when(BrandCommand::UpdateBrand(update()))
            .then_expect_events(vec![BrandEvent::BrandUpdated {
                brand_id: id,
                name: "Apple Inc.".into(),
                slug: slug("apple-inc"),
                description: Some("Computers".into()),
                logo_url: None,
                website_url: Some(url("https://apple.com")),
                previous_slug: slug("apple"),
                at: at(),
            }]);
    }

    #[test]
    fn commands_on_a_missing_brand_are_refused() {
        for cmd in [
            BrandCommand::UpdateBrand(update()),
            BrandCommand::ActivateBrand { at: at() },
            BrandCommand::DeactivateBrand { at: at() },
        ] {
            Given::with(())
                .given_no_previous_events()
                .when(cmd)
                .then_expect_error(BrandError::NotFound);
        }
    }

    #[test]
    fn deactivate_then_activate_and_no_ops_refused() {
        let id = Uuid::new_v4();
        let deactivated = BrandEvent::BrandDeactivated {
            brand_id: id,
            at: at(),
        };
        Given::with(())
            .given(vec![created(id)])
            .when(BrandCommand::DeactivateBrand { at: at() })
            .then_expect_events(vec![deactivated.clone()]);
        Given::with(())
            .given(vec![created(id), deactivated.clone()])
            .when(BrandCommand::ActivateBrand { at: at() })
            .then_expect_events(vec![BrandEvent::BrandActivated {
                brand_id: id,
                at: at(),
            }]);
        Given::with(())
            .given(vec![created(id)])
            .when(BrandCommand::ActivateBrand { at: at() })
            .then_expect_error(BrandError::AlreadyActive { brand_id: id });
        Given::with(())
            .given(vec![created(id), deactivated])
            .when(BrandCommand::DeactivateBrand { at: at() })
            .then_expect_error(BrandError::AlreadyInactive { brand_id: id });
    }
}
