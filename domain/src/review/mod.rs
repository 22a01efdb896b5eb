//! The review aggregate (Mongo `reviews`): one stream per product review, from
//! submission through moderation, helpful votes, edits and removal.
//!
//! It owns the review rules: one review per user and product, `verified` derived
//! from the user's delivered orders (never taken from the client), only approved
//! reviews count toward a product's rating, and helpful votes are one per user,
//! never on one's own review, only on approved reviews. Every event says what the
//! review contributed to its product's rating before and after
//! (`counted_rating_before` / `counted_rating_after`), so a rating projection
//! subtracts the one and adds the other without re-deriving anything.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

use crate::values::{
    bounded_multiline_text, bounded_text, unforbidden_text, Rating, TextError, TextLayout, Url,
    ValueError,
};

#[cfg(test)]
mod tests;

pub const TITLE_MAX_CHARS: usize = 200;
pub const COMMENT_MAX_CHARS: usize = 5000;
pub const ALT_MAX_CHARS: usize = 255;
pub const MAX_IMAGES: usize = 10;

/// The seed's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    #[default]
    Pending,
    Approved,
    Rejected,
}

impl ReviewStatus {
    pub const ALL: [ReviewStatus; 3] = [
        ReviewStatus::Pending,
        ReviewStatus::Approved,
        ReviewStatus::Rejected,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Rejected => "rejected",
        }
    }
}

impl fmt::Display for ReviewStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerationDecision {
    Approve,
    Reject,
}

impl ModerationDecision {
    pub fn status(&self) -> ReviewStatus {
        match self {
            ModerationDecision::Approve => ReviewStatus::Approved,
            ModerationDecision::Reject => ReviewStatus::Rejected,
        }
    }
}

/// The seed's `helpful.yes` / `helpful.no`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelpfulVote {
    Yes,
    No,
}

/// One picture attached to a review. `alt` may be empty (decorative images).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewImage {
    pub url: Url,
    pub alt: String,
}

/// Who removes a review: its author, or a moderator on the author's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Remover {
    Author { user_id: Uuid },
    Moderator { moderator_id: Uuid },
}

/// One of the reviewer's delivered orders and the products in it, as the
/// command side loads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredOrder {
    pub order_id: Uuid,
    pub product_ids: Vec<Uuid>,
}

/// The outcome of `verify_purchase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurchaseVerification {
    pub verified: bool,
    /// The delivered order that proves the purchase; `None` when unverified.
    pub order_id: Option<Uuid>,
}

/// A review is a verified purchase iff one of the user's delivered orders holds
/// the product. The order the client names is preferred when it is one of them;
/// otherwise the first such order is used. A claimed order that proves nothing
/// is dropped rather than stored, so `order_id` always means "bought here".
pub fn verify_purchase(
    product_id: Uuid,
    claimed_order_id: Option<Uuid>,
    delivered_orders: &[DeliveredOrder],
) -> PurchaseVerification {
    let proves = |order: &&DeliveredOrder| order.product_ids.contains(&product_id);
    let chosen = claimed_order_id
        .and_then(|claimed| {
            delivered_orders
                .iter()
                .filter(proves)
                .find(|order| order.order_id == claimed)
        })
        .or_else(|| delivered_orders.iter().find(proves));
    PurchaseVerification {
        verified: chosen.is_some(),
        order_id: chosen.map(|order| order.order_id),
    }
}

/// One review per user and product. `existing_review_for_user_and_product` is
/// the user's live (not removed) review of the product, if any.
pub fn ensure_first_review(
    product_id: Uuid,
    user_id: Uuid,
    existing_review_for_user_and_product: Option<Uuid>,
) -> Result<(), ReviewError> {
    match existing_review_for_user_and_product {
        Some(existing_review_id) => Err(ReviewError::AlreadyReviewed {
            product_id,
            user_id,
            existing_review_id,
        }),
        None => Ok(()),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Review {
    review_id: Option<Uuid>,
    product_id: Uuid,
    user_id: Uuid,
    order_id: Option<Uuid>,
    rating: Option<Rating>,
    title: String,
    comment: String,
    images: Vec<ReviewImage>,
    verified: bool,
    status: ReviewStatus,
    moderator_notes: String,
    votes: BTreeMap<Uuid, HelpfulVote>,
    removed: bool,
}

impl Review {
    /// `None` until `ReviewSubmitted`.
    pub fn review_id(&self) -> Option<Uuid> {
        self.review_id
    }
    pub fn product_id(&self) -> Uuid {
        self.product_id
    }
    pub fn user_id(&self) -> Uuid {
        self.user_id
    }
    pub fn order_id(&self) -> Option<Uuid> {
        self.order_id
    }
    pub fn rating(&self) -> Option<Rating> {
        self.rating
    }
    pub fn title(&self) -> &str {
        &self.title
    }
    pub fn comment(&self) -> &str {
        &self.comment
    }
    pub fn images(&self) -> &[ReviewImage] {
        &self.images
    }
    pub fn verified(&self) -> bool {
        self.verified
    }
    pub fn status(&self) -> ReviewStatus {
        self.status
    }
    pub fn moderator_notes(&self) -> &str {
        &self.moderator_notes
    }
    pub fn is_removed(&self) -> bool {
        self.removed
    }
    pub fn vote_of(&self, voter_id: Uuid) -> Option<HelpfulVote> {
        self.votes.get(&voter_id).copied()
    }
    /// `(yes, no)`.
    pub fn helpful_counts(&self) -> (u32, u32) {
        self.votes
            .values()
            .fold((0, 0), |(yes, no), vote| match vote {
                HelpfulVote::Yes => (yes + 1, no),
                HelpfulVote::No => (yes, no + 1),
            })
    }

    /// The rating this review currently adds to its product's: only an
    /// approved, live review counts.
    pub fn counted_rating(&self) -> Option<Rating> {
        match (self.status, self.removed) {
            (ReviewStatus::Approved, false) => self.rating,
            _ => None,
        }
    }

    /// The events `command` produces against the current state, without applying them.
    pub fn decide(&self, command: ReviewCommand) -> Result<Vec<ReviewEvent>, ReviewError> {
        if let ReviewCommand::SubmitReview {
            review_id,
            product_id,
            user_id,
            order_id,
            rating,
            title,
            comment,
            images,
            existing_review_for_user_and_product,
            delivered_orders,
            at,
        } = command
        {
            if let Some(existing) = self.review_id {
                return Err(ReviewError::AlreadySubmitted {
                    review_id: existing,
                });
            }
            ensure_first_review(product_id, user_id, existing_review_for_user_and_product)?;
            let content = Content::check(rating, &title, &comment, images)?;
            let purchase = verify_purchase(product_id, order_id, &delivered_orders);
            return Ok(vec![ReviewEvent::ReviewSubmitted {
                review_id,
                product_id,
                user_id,
                order_id: purchase.order_id,
                rating: content.rating,
                title: content.title,
                comment: content.comment,
                images: content.images,
                verified: purchase.verified,
                status: ReviewStatus::Pending,
                counted_rating_before: None,
                counted_rating_after: None,
                created_at: at,
            }]);
        }

        let review_id = self.review_id.ok_or(ReviewError::NotSubmitted)?;
        if self.removed {
            return Err(ReviewError::Removed { review_id });
        }
        let rating = self.rating.expect("a submitted review has a rating");
        let previous_status = self.status;
        let counted_rating_before = self.counted_rating();
        match command {
            ReviewCommand::SubmitReview { .. } => unreachable!("handled above"),
            ReviewCommand::ModerateReview {
                decision,
                moderator_notes,
                at,
            } => {
                let status = decision.status();
                // Moderators may change their minds, but a decision that changes
                // nothing is a stale screen, not a new fact.
                if previous_status == status {
                    return Err(ReviewError::InvalidTransition {
                        from: previous_status,
                        to: status,
                    });
                }
                unforbidden_text("moderator_notes", &moderator_notes, TextLayout::MultiLine)?;
                let moderator_notes = moderator_notes.trim().to_owned();
                let (product_id, user_id) = (self.product_id, self.user_id);
                Ok(vec![match decision {
                    ModerationDecision::Approve => ReviewEvent::ReviewApproved {
                        review_id,
                        product_id,
                        user_id,
                        rating,
                        moderator_notes,
                        previous_status,
                        status,
                        counted_rating_before,
                        counted_rating_after: Some(rating),
                        moderated_at: at,
                    },
                    ModerationDecision::Reject => ReviewEvent::ReviewRejected {
                        review_id,
                        product_id,
                        user_id,
                        rating,
                        moderator_notes,
                        previous_status,
                        status,
                        counted_rating_before,
                        counted_rating_after: None,
                        moderated_at: at,
                    },
                }])
            }
            ReviewCommand::VoteReviewHelpful {
                voter_id,
                helpful,
                at,
            } => {
                if voter_id == self.user_id {
                    return Err(ReviewError::CannotVoteOwnReview { voter_id });
                }
                if self.status != ReviewStatus::Approved {
                    return Err(ReviewError::NotApproved {
                        review_id,
                        status: self.status,
                    });
                }
                if let Some(vote) = self.vote_of(voter_id) {
                    return Err(ReviewError::AlreadyVoted { voter_id, vote });
                }
                let (yes, no) = self.helpful_counts();
                let (yes_count, no_count) = match helpful {
                    HelpfulVote::Yes => (yes + 1, no),
                    HelpfulVote::No => (yes, no + 1),
                };
                Ok(vec![ReviewEvent::ReviewHelpfulVoted {
                    review_id,
                    product_id: self.product_id,
                    voter_id,
                    helpful,
                    yes_count,
                    no_count,
                    voted_at: at,
                }])
            }
            ReviewCommand::EditReview {
                editor_id,
                rating,
                title,
                comment,
                images,
                at,
            } => {
                if editor_id != self.user_id {
                    return Err(ReviewError::NotAuthor { user_id: editor_id });
                }
                let content = Content::check(rating, &title, &comment, images)?;
                let unchanged = Some(content.rating) == self.rating
                    && content.title == self.title
                    && content.comment == self.comment
                    && content.images == self.images;
                // Re-saving the same text must not pull an approved review
                // out of its product's rating.
                if unchanged {
                    return Ok(vec![]);
                }
                Ok(vec![ReviewEvent::ReviewEdited {
                    review_id,
                    product_id: self.product_id,
                    user_id: self.user_id,
                    rating: content.rating,
                    title: content.title,
                    comment: content.comment,
                    images: content.images,
                    previous_status,
                    status: ReviewStatus::Pending,
                    counted_rating_before,
                    counted_rating_after: None,
                    edited_at: at,
                }])
            }
            ReviewCommand::RemoveReview { removed_by, at } => {
                if let Remover::Author { user_id } = removed_by {
                    if user_id != self.user_id {
                        return Err(ReviewError::NotAuthor { user_id });
                    }
                }
                Ok(vec![ReviewEvent::ReviewRemoved {
                    review_id,
                    product_id: self.product_id,
                    user_id: self.user_id,
                    previous_status,
                    counted_rating_before,
                    counted_rating_after: None,
                    removed_by,
                    removed_at: at,
                }])
            }
        }
    }
}

/// The author-supplied part of a review, checked against the seed's limits.
struct Content {
    rating: Rating,
    title: String,
    comment: String,
    images: Vec<ReviewImage>,
}

impl Content {
    fn check(
        rating: Rating,
        title: &str,
        comment: &str,
        images: Vec<ReviewImage>,
    ) -> Result<Self, ReviewError> {
        let title = bounded_text("title", title, TITLE_MAX_CHARS)?;
        let comment = bounded_multiline_text("comment", comment, COMMENT_MAX_CHARS)?;
        if images.len() > MAX_IMAGES {
            return Err(ReviewError::TooManyImages {
                count: images.len(),
                max: MAX_IMAGES,
            });
        }
        let images = images
            .into_iter()
            .map(|image| {
                unforbidden_text("alt", &image.alt, TextLayout::SingleLine)?;
                let alt = image.alt.trim();
                let length = alt.chars().count();
                if length > ALT_MAX_CHARS {
                    return Err(ValueError::Text {
                        field: "alt",
                        reason: TextError::TooLong {
                            max: ALT_MAX_CHARS,
                            length,
                        },
                    });
                }
                Ok(ReviewImage {
                    alt: alt.to_owned(),
                    url: image.url,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            rating,
            title,
            comment,
            images,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReviewCommand {
    /// `existing_review_for_user_and_product` and `delivered_orders` are plain
    /// input the command side loads (see `ensure_first_review`, `verify_purchase`);
    /// `order_id` is only the client's hint.
    SubmitReview {
        review_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        order_id: Option<Uuid>,
        rating: Rating,
        title: String,
        comment: String,
        images: Vec<ReviewImage>,
        existing_review_for_user_and_product: Option<Uuid>,
        delivered_orders: Vec<DeliveredOrder>,
        at: DateTime<Utc>,
    },
    ModerateReview {
        decision: ModerationDecision,
        moderator_notes: String,
        at: DateTime<Utc>,
    },
    VoteReviewHelpful {
        voter_id: Uuid,
        helpful: HelpfulVote,
        at: DateTime<Utc>,
    },
    EditReview {
        editor_id: Uuid,
        rating: Rating,
        title: String,
        comment: String,
        images: Vec<ReviewImage>,
        at: DateTime<Utc>,
    },
    RemoveReview {
        removed_by: Remover,
        at: DateTime<Utc>,
    },
}

/// `counted_rating_before` / `counted_rating_after`: the rating the review
/// added to its product's aggregate rating before and after the event (`None`:
/// it did not count). A projection subtracts the first and adds the second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReviewEvent {
    ReviewSubmitted {
        review_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        order_id: Option<Uuid>,
        rating: Rating,
        title: String,
        comment: String,
        images: Vec<ReviewImage>,
        verified: bool,
        status: ReviewStatus,
        counted_rating_before: Option<Rating>,
        counted_rating_after: Option<Rating>,
        created_at: DateTime<Utc>,
    },
    ReviewApproved {
        review_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        rating: Rating,
        moderator_notes: String,
        previous_status: ReviewStatus,
        status: ReviewStatus,
        counted_rating_before: Option<Rating>,
        counted_rating_after: Option<Rating>,
        moderated_at: DateTime<Utc>,
    },
    ReviewRejected {
        review_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        rating: Rating,
        moderator_notes: String,
        previous_status: ReviewStatus,
        status: ReviewStatus,
        counted_rating_before: Option<Rating>,
        counted_rating_after: Option<Rating>,
        moderated_at: DateTime<Utc>,
    },
    ReviewHelpfulVoted {
        review_id: Uuid,
        product_id: Uuid,
        voter_id: Uuid,
        helpful: HelpfulVote,
        /// The review's totals including this vote.
        yes_count: u32,
        no_count: u32,
        voted_at: DateTime<Utc>,
    },
    ReviewEdited {
        review_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        rating: Rating,
        title: String,
        comment: String,
        images: Vec<ReviewImage>,
        previous_status: ReviewStatus,
        /// Always `pending`: an edit goes back to moderation.
        status: ReviewStatus,
        counted_rating_before: Option<Rating>,
        counted_rating_after: Option<Rating>,
        edited_at: DateTime<Utc>,
    },
    ReviewRemoved {
        review_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        previous_status: ReviewStatus,
        counted_rating_before: Option<Rating>,
        counted_rating_after: Option<Rating>,
        removed_by: Remover,
        removed_at: DateTime<Utc>,
    },
}

impl DomainEvent for ReviewEvent {
    fn event_type(&self) -> String {
        match self {
            ReviewEvent::ReviewSubmitted { .. } => "ReviewSubmitted",
            ReviewEvent::ReviewApproved { .. } => "ReviewApproved",
            ReviewEvent::ReviewRejected { .. } => "ReviewRejected",
            ReviewEvent::ReviewHelpfulVoted { .. } => "ReviewHelpfulVoted",
            ReviewEvent::ReviewEdited { .. } => "ReviewEdited",
            ReviewEvent::ReviewRemoved { .. } => "ReviewRemoved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReviewError {
    #[error("review has not been submitted")]
    NotSubmitted,
    #[error("review {review_id} has already been submitted")]
    AlreadySubmitted { review_id: Uuid },
    #[error("user {user_id} already reviewed product {product_id} (review {existing_review_id})")]
    AlreadyReviewed {
        product_id: Uuid,
        user_id: Uuid,
        existing_review_id: Uuid,
    },
    #[error(transparent)]
    InvalidValue(#[from] ValueError),
    #[error("a review holds at most {max} images, got {count}")]
    TooManyImages { count: usize, max: usize },
    #[error("a review cannot go from {from} to {to}")]
    InvalidTransition {
        from: ReviewStatus,
        to: ReviewStatus,
    },
    #[error("user {user_id} is not the review's author")]
    NotAuthor { user_id: Uuid },
    #[error("review {review_id} has been removed")]
    Removed { review_id: Uuid },
    #[error("user {voter_id} already voted on this review")]
    AlreadyVoted { voter_id: Uuid, vote: HelpfulVote },
    #[error("user {voter_id} cannot vote on their own review")]
    CannotVoteOwnReview { voter_id: Uuid },
    #[error("review {review_id} is {status}, only approved reviews take votes")]
    NotApproved {
        review_id: Uuid,
        status: ReviewStatus,
    },
}

impl Aggregate for Review {
    const TYPE: &'static str = "review";
    type Command = ReviewCommand;
    type Event = ReviewEvent;
    type Error = ReviewError;
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
            ReviewEvent::ReviewSubmitted {
                review_id,
                product_id,
                user_id,
                order_id,
                rating,
                title,
                comment,
                images,
                verified,
                status,
                ..
            } => {
                self.review_id = Some(review_id);
                self.product_id = product_id;
                self.user_id = user_id;
                self.order_id = order_id;
                self.rating = Some(rating);
                self.title = title;
                self.comment = comment;
                self.images = images;
                self.verified = verified;
                self.status = status;
            }
            ReviewEvent::ReviewApproved {
                moderator_notes,
                status,
                ..
            }
            | ReviewEvent::ReviewRejected {
                moderator_notes,
                status,
                ..
            } => {
                self.moderator_notes = moderator_notes;
                self.status = status;
            }
            ReviewEvent::ReviewHelpfulVoted {
                voter_id, helpful, ..
            } => {
                self.votes.insert(voter_id, helpful);
            }
            ReviewEvent::ReviewEdited {
                rating,
                title,
                comment,
                images,
                status,
                ..
            } => {
                self.rating = Some(rating);
                self.title = title;
                self.comment = comment;
                self.images = images;
                self.status = status;
            }
            ReviewEvent::ReviewRemoved { .. } => self.removed = true,
        }
    }
}
