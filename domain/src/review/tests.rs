use super::*;
use chrono::TimeZone;
use cqrs_es::test::TestFramework;
use proptest::prelude::*;
use serde_json::json;

type Given = TestFramework<Review>;

const REVIEW: Uuid = Uuid::from_u128(0x1);
const PRODUCT: Uuid = Uuid::from_u128(0x2);
const AUTHOR: Uuid = Uuid::from_u128(0x3);
const VOTER: Uuid = Uuid::from_u128(0x4);
const OTHER_VOTER: Uuid = Uuid::from_u128(0x5);
const MODERATOR: Uuid = Uuid::from_u128(0x6);
const ORDER_A: Uuid = Uuid::from_u128(0xa);
const ORDER_B: Uuid = Uuid::from_u128(0xb);
const OTHER_PRODUCT: Uuid = Uuid::from_u128(0xc);

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap()
}

fn later() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 16, 9, 0, 0).unwrap()
}

fn stars(n: i64) -> Rating {
    Rating::new(n).unwrap()
}

fn image() -> ReviewImage {
    ReviewImage {
        url: Url::parse("https://cdn.ecommerce.local/reviews/img1.jpg").unwrap(),
        alt: "Product in use".into(),
    }
}

fn delivered(order_id: Uuid, product_ids: &[Uuid]) -> DeliveredOrder {
    DeliveredOrder {
        order_id,
        product_ids: product_ids.to_vec(),
    }
}

fn submit(order_id: Option<Uuid>, delivered_orders: Vec<DeliveredOrder>) -> ReviewCommand {
    ReviewCommand::SubmitReview {
        review_id: REVIEW,
        product_id: PRODUCT,
        user_id: AUTHOR,
        order_id,
        rating: stars(5),
        title: " Excellent product! ".into(),
        comment: "Really happy with this purchase. Great quality and fast delivery.".into(),
        images: vec![image()],
        existing_review_for_user_and_product: None,
        delivered_orders,
        at: at(),
    }
}

fn submitted(order_id: Option<Uuid>, verified: bool) -> ReviewEvent {
    ReviewEvent::ReviewSubmitted {
        review_id: REVIEW,
        product_id: PRODUCT,
        user_id: AUTHOR,
        order_id,
        rating: stars(5),
        title: "Excellent product!".into(),
        comment: "Really happy with this purchase. Great quality and fast delivery.".into(),
        images: vec![image()],
        verified,
        status: ReviewStatus::Pending,
        counted_rating_before: None,
        counted_rating_after: None,
        created_at: at(),
    }
}

fn moderate(decision: ModerationDecision) -> ReviewCommand {
    ReviewCommand::ModerateReview {
        decision,
        moderator_notes: " ok ".into(),
        at: later(),
    }
}

fn moderated(
    decision: ModerationDecision,
    previous_status: ReviewStatus,
    rating: i64,
) -> ReviewEvent {
    let counted_rating_before = (previous_status == ReviewStatus::Approved).then(|| stars(rating));
    match decision {
        ModerationDecision::Approve => ReviewEvent::ReviewApproved {
            review_id: REVIEW,
            product_id: PRODUCT,
            user_id: AUTHOR,
            rating: stars(rating),
            moderator_notes: "ok".into(),
            previous_status,
            status: ReviewStatus::Approved,
            counted_rating_before,
            counted_rating_after: Some(stars(rating)),
            moderated_at: later(),
        },
        ModerationDecision::Reject => ReviewEvent::ReviewRejected {
            review_id: REVIEW,
            product_id: PRODUCT,
            user_id: AUTHOR,
            rating: stars(rating),
            moderator_notes: "ok".into(),
            previous_status,
            status: ReviewStatus::Rejected,
            counted_rating_before,
            counted_rating_after: None,
            moderated_at: later(),
        },
    }
}

/// Events that bring the review to `status`.
fn history_to(status: ReviewStatus) -> Vec<ReviewEvent> {
    let mut events = vec![submitted(None, false)];
    match status {
        ReviewStatus::Pending => {}
        ReviewStatus::Approved => events.push(moderated(
            ModerationDecision::Approve,
            ReviewStatus::Pending,
            5,
        )),
        ReviewStatus::Rejected => events.push(moderated(
            ModerationDecision::Reject,
            ReviewStatus::Pending,
            5,
        )),
    }
    events
}

fn approved() -> Vec<ReviewEvent> {
    history_to(ReviewStatus::Approved)
}

fn vote(voter_id: Uuid, helpful: HelpfulVote) -> ReviewCommand {
    ReviewCommand::VoteReviewHelpful {
        voter_id,
        helpful,
        at: later(),
    }
}

fn voted(voter_id: Uuid, helpful: HelpfulVote, yes_count: u32, no_count: u32) -> ReviewEvent {
    ReviewEvent::ReviewHelpfulVoted {
        review_id: REVIEW,
        product_id: PRODUCT,
        voter_id,
        helpful,
        yes_count,
        no_count,
        voted_at: later(),
    }
}

fn edit(editor_id: Uuid, rating: i64) -> ReviewCommand {
    ReviewCommand::EditReview {
        editor_id,
        rating: stars(rating),
        title: "Still good".into(),
        comment: "Battery could be better.".into(),
        images: vec![],
        at: later(),
    }
}

#[test]
fn review_texts_refuse_control_characters_and_only_the_comment_spans_lines() {
    let with = |title: &str, comment: &str, alt: &str| {
        let mut command = edit(AUTHOR, 4);
        if let ReviewCommand::EditReview {
            title: t,
            comment: c,
            images,
            ..
        } = &mut command
        {
            *t = title.into();
            *c = comment.into();
            images.push(ReviewImage {
                alt: alt.into(),
                ..image()
            });
        }
        command
    };
    let cases = [
        (with("a\u{0}b", "fine", "fine"), false),
        (with("fine", "a\u{7}b", "fine"), false),
        (with("fine", "fine", "a\u{0}b"), false),
        (with("two\nlines", "fine", "fine"), false),
        (with("fine", "two\nlines", "fine"), true),
    ];
    for (command, ok) in cases {
        let result = Given::with(())
            .given(approved())
            .when(command.clone())
            .inspect_result();
        assert_eq!(result.is_ok(), ok, "{command:?}: {result:?}");
    }
    let result = Given::with(())
        .given(history_to(ReviewStatus::Pending))
        .when(ReviewCommand::ModerateReview {
            decision: ModerationDecision::Approve,
            moderator_notes: "a\u{0}b".into(),
            at: later(),
        })
        .inspect_result();
    assert!(result.is_err(), "{result:?}");
}

fn edited(previous_status: ReviewStatus, counted_rating_before: Option<Rating>) -> ReviewEvent {
    ReviewEvent::ReviewEdited {
        review_id: REVIEW,
        product_id: PRODUCT,
        user_id: AUTHOR,
        rating: stars(3),
        title: "Still good".into(),
        comment: "Battery could be better.".into(),
        images: vec![],
        previous_status,
        status: ReviewStatus::Pending,
        counted_rating_before,
        counted_rating_after: None,
        edited_at: later(),
    }
}

fn remove(removed_by: Remover) -> ReviewCommand {
    ReviewCommand::RemoveReview {
        removed_by,
        at: later(),
    }
}

fn removed(
    previous_status: ReviewStatus,
    counted_rating_before: Option<Rating>,
    removed_by: Remover,
) -> ReviewEvent {
    ReviewEvent::ReviewRemoved {
        review_id: REVIEW,
        product_id: PRODUCT,
        user_id: AUTHOR,
        previous_status,
        counted_rating_before,
        counted_rating_after: None,
        removed_by,
        removed_at: later(),
    }
}

// ---- SubmitReview ----------------------------------------------------------

#[test]
fn a_review_without_a_delivered_purchase_is_submitted_unverified_and_pending() {
    Given::with(())
        .given_no_previous_events()
        .when(submit(None, vec![delivered(ORDER_A, &[OTHER_PRODUCT])]))
        .then_expect_events(vec![submitted(None, false)]);
}

#[test]
fn a_review_of_a_delivered_product_is_verified_with_that_order() {
    Given::with(())
        .given_no_previous_events()
        .when(submit(
            None,
            vec![delivered(ORDER_A, &[OTHER_PRODUCT, PRODUCT])],
        ))
        .then_expect_events(vec![submitted(Some(ORDER_A), true)]);
}

#[test]
fn a_client_order_that_proves_nothing_is_neither_verified_nor_kept() {
    // The client names an order that was not delivered (or lacks the product).
    Given::with(())
        .given_no_previous_events()
        .when(submit(
            Some(ORDER_B),
            vec![delivered(ORDER_A, &[OTHER_PRODUCT])],
        ))
        .then_expect_events(vec![submitted(None, false)]);
}

#[test]
fn verify_purchase_table() {
    let orders = [
        delivered(ORDER_A, &[PRODUCT]),
        delivered(ORDER_B, &[PRODUCT, OTHER_PRODUCT]),
    ];
    let without_product = [delivered(ORDER_B, &[OTHER_PRODUCT])];
    type Case<'a> = (
        &'a str,
        Option<Uuid>,
        &'a [DeliveredOrder],
        bool,
        Option<Uuid>,
    );
    let cases: [Case; 6] = [
        ("no delivered orders", None, &[], false, None),
        (
            "claimed but nothing delivered",
            Some(ORDER_A),
            &[],
            false,
            None,
        ),
        ("first proving order", None, &orders, true, Some(ORDER_A)),
        (
            "claimed proving order wins",
            Some(ORDER_B),
            &orders,
            true,
            Some(ORDER_B),
        ),
        (
            "unknown claim falls back",
            Some(Uuid::from_u128(0xff)),
            &orders,
            true,
            Some(ORDER_A),
        ),
        (
            "claimed order without the product",
            Some(ORDER_B),
            &without_product,
            false,
            None,
        ),
    ];
    for (name, claimed, delivered_orders, verified, order_id) in cases {
        assert_eq!(
            verify_purchase(PRODUCT, claimed, delivered_orders),
            PurchaseVerification { verified, order_id },
            "{name}"
        );
    }
}

#[test]
fn a_user_reviews_a_product_once() {
    let existing = Uuid::from_u128(0x99);
    let mut command = submit(None, vec![]);
    if let ReviewCommand::SubmitReview {
        existing_review_for_user_and_product,
        ..
    } = &mut command
    {
        *existing_review_for_user_and_product = Some(existing);
    }
    Given::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(ReviewError::AlreadyReviewed {
            product_id: PRODUCT,
            user_id: AUTHOR,
            existing_review_id: existing,
        });
    assert_eq!(ensure_first_review(PRODUCT, AUTHOR, None), Ok(()));
}

#[test]
fn a_review_is_submitted_once() {
    Given::with(())
        .given(vec![submitted(None, false)])
        .when(submit(None, vec![]))
        .then_expect_error(ReviewError::AlreadySubmitted { review_id: REVIEW });
}

#[test]
fn title_comment_and_alt_are_bounded() {
    let cases: Vec<(ReviewCommand, ReviewError)> = {
        let with = |title: String, comment: String, alt: String| {
            let mut command = submit(None, vec![]);
            if let ReviewCommand::SubmitReview {
                title: t,
                comment: c,
                images,
                ..
            } = &mut command
            {
                *t = title;
                *c = comment;
                images[0].alt = alt;
            }
            command
        };
        let text = |field, value: &str, max| {
            ReviewError::InvalidValue(crate::values::length_error(field, value, max))
        };
        let ok = "fine".to_owned();
        vec![
            (
                with("  ".into(), ok.clone(), ok.clone()),
                text("title", "  ", 200),
            ),
            (
                with("t".repeat(201), ok.clone(), ok.clone()),
                text("title", &"t".repeat(201), 200),
            ),
            (
                with(ok.clone(), String::new(), ok.clone()),
                text("comment", "", 5000),
            ),
            (
                with(ok.clone(), "c".repeat(5001), ok.clone()),
                text("comment", &"c".repeat(5001), 5000),
            ),
            (
                with(ok.clone(), ok.clone(), "a".repeat(256)),
                text("alt", &"a".repeat(256), 255),
            ),
        ]
    };
    for (command, error) in cases {
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(error);
    }
}

#[test]
fn limits_themselves_are_accepted() {
    let mut command = submit(None, vec![]);
    if let ReviewCommand::SubmitReview {
        title,
        comment,
        images,
        ..
    } = &mut command
    {
        *title = "t".repeat(200);
        *comment = "c".repeat(5000);
        *images = vec![
            ReviewImage {
                alt: String::new(),
                ..image()
            };
            10
        ];
    }
    let events = Given::with(())
        .given_no_previous_events()
        .when(command)
        .inspect_result()
        .unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn a_review_holds_at_most_ten_images() {
    let mut command = submit(None, vec![]);
    if let ReviewCommand::SubmitReview { images, .. } = &mut command {
        *images = vec![image(); 11];
    }
    Given::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(ReviewError::TooManyImages { count: 11, max: 10 });
}

#[test]
fn nothing_but_submission_is_accepted_before_submission() {
    for command in [
        moderate(ModerationDecision::Approve),
        vote(VOTER, HelpfulVote::Yes),
        edit(AUTHOR, 3),
        remove(Remover::Author { user_id: AUTHOR }),
    ] {
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(ReviewError::NotSubmitted);
    }
}

// ---- ModerateReview --------------------------------------------------------

#[test]
fn moderation_table_over_every_status_and_decision() {
    for from in ReviewStatus::ALL {
        for decision in [ModerationDecision::Approve, ModerationDecision::Reject] {
            let to = decision.status();
            let result = Given::with(())
                .given(history_to(from))
                .when(moderate(decision));
            if from == to {
                result.then_expect_error(ReviewError::InvalidTransition { from, to });
            } else {
                result.then_expect_events(vec![moderated(decision, from, 5)]);
            }
        }
    }
}

#[test]
fn approval_makes_the_rating_count_and_rejection_takes_it_back() {
    let approve = Given::with(())
        .given(history_to(ReviewStatus::Pending))
        .when(moderate(ModerationDecision::Approve))
        .inspect_result()
        .unwrap();
    assert!(matches!(
        &approve[..],
        [ReviewEvent::ReviewApproved {
            counted_rating_before: None,
            counted_rating_after: Some(r),
            ..
        }] if r.get() == 5
    ));
    let reject = Given::with(())
        .given(approved())
        .when(moderate(ModerationDecision::Reject))
        .inspect_result()
        .unwrap();
    assert!(matches!(
        &reject[..],
        [ReviewEvent::ReviewRejected {
            counted_rating_before: Some(r),
            counted_rating_after: None,
            ..
        }] if r.get() == 5
    ));
}

// ---- VoteReviewHelpful -----------------------------------------------------

#[test]
fn a_helpful_vote_on_an_approved_review_is_counted() {
    Given::with(())
        .given(approved())
        .when(vote(VOTER, HelpfulVote::Yes))
        .then_expect_events(vec![voted(VOTER, HelpfulVote::Yes, 1, 0)]);
}

#[test]
fn vote_counts_include_earlier_votes() {
    let mut given = approved();
    given.push(voted(VOTER, HelpfulVote::Yes, 1, 0));
    Given::with(())
        .given(given)
        .when(vote(OTHER_VOTER, HelpfulVote::No))
        .then_expect_events(vec![voted(OTHER_VOTER, HelpfulVote::No, 1, 1)]);
}

#[test]
fn a_user_votes_once_per_review() {
    let mut given = approved();
    given.push(voted(VOTER, HelpfulVote::Yes, 1, 0));
    for helpful in [HelpfulVote::Yes, HelpfulVote::No] {
        Given::with(())
            .given(given.clone())
            .when(vote(VOTER, helpful))
            .then_expect_error(ReviewError::AlreadyVoted {
                voter_id: VOTER,
                vote: HelpfulVote::Yes,
            });
    }
}

#[test]
fn the_author_cannot_vote_on_their_own_review() {
    Given::with(())
        .given(approved())
        .when(vote(AUTHOR, HelpfulVote::Yes))
        .then_expect_error(ReviewError::CannotVoteOwnReview { voter_id: AUTHOR });
}

#[test]
fn only_approved_reviews_take_votes() {
    for status in [ReviewStatus::Pending, ReviewStatus::Rejected] {
        Given::with(())
            .given(history_to(status))
            .when(vote(VOTER, HelpfulVote::Yes))
            .then_expect_error(ReviewError::NotApproved {
                review_id: REVIEW,
                status,
            });
    }
}

// ---- EditReview ------------------------------------------------------------

#[test]
fn editing_sends_the_review_back_to_moderation_from_every_status() {
    for status in ReviewStatus::ALL {
        let counted = (status == ReviewStatus::Approved).then(|| stars(5));
        Given::with(())
            .given(history_to(status))
            .when(edit(AUTHOR, 3))
            .then_expect_events(vec![edited(status, counted)]);
    }
}

#[test]
fn only_the_author_edits() {
    Given::with(())
        .given(approved())
        .when(edit(VOTER, 3))
        .then_expect_error(ReviewError::NotAuthor { user_id: VOTER });
}

#[test]
fn an_edit_that_changes_nothing_keeps_the_review_approved() {
    Given::with(())
        .given(approved())
        .when(ReviewCommand::EditReview {
            editor_id: AUTHOR,
            rating: stars(5),
            title: "Excellent product!  ".into(),
            comment: "Really happy with this purchase. Great quality and fast delivery.".into(),
            images: vec![image()],
            at: later(),
        })
        .then_expect_events(vec![]);
}

#[test]
fn an_edit_is_checked_like_a_submission() {
    let mut command = edit(AUTHOR, 3);
    if let ReviewCommand::EditReview { images, .. } = &mut command {
        *images = vec![image(); 11];
    }
    Given::with(())
        .given(approved())
        .when(command)
        .then_expect_error(ReviewError::TooManyImages { count: 11, max: 10 });
    let mut command = edit(AUTHOR, 3);
    if let ReviewCommand::EditReview { title, .. } = &mut command {
        *title = String::new();
    }
    Given::with(())
        .given(approved())
        .when(command)
        .then_expect_error(ReviewError::InvalidValue(crate::values::length_error(
            "title", "", 200,
        )));
}

// ---- RemoveReview ----------------------------------------------------------

#[test]
fn the_author_or_a_moderator_removes_a_review() {
    for remover in [
        Remover::Author { user_id: AUTHOR },
        Remover::Moderator {
            moderator_id: MODERATOR,
        },
    ] {
        Given::with(())
            .given(approved())
            .when(remove(remover))
            .then_expect_events(vec![removed(
                ReviewStatus::Approved,
                Some(stars(5)),
                remover,
            )]);
        Given::with(())
            .given(history_to(ReviewStatus::Pending))
            .when(remove(remover))
            .then_expect_events(vec![removed(ReviewStatus::Pending, None, remover)]);
    }
}

#[test]
fn another_user_cannot_remove_a_review() {
    Given::with(())
        .given(approved())
        .when(remove(Remover::Author { user_id: VOTER }))
        .then_expect_error(ReviewError::NotAuthor { user_id: VOTER });
}

#[test]
fn a_removed_review_refuses_everything() {
    let remover = Remover::Author { user_id: AUTHOR };
    let mut given = approved();
    given.push(removed(ReviewStatus::Approved, Some(stars(5)), remover));
    for command in [
        moderate(ModerationDecision::Approve),
        moderate(ModerationDecision::Reject),
        vote(VOTER, HelpfulVote::Yes),
        edit(AUTHOR, 3),
        remove(remover),
        remove(Remover::Moderator {
            moderator_id: MODERATOR,
        }),
    ] {
        Given::with(())
            .given(given.clone())
            .when(command)
            .then_expect_error(ReviewError::Removed { review_id: REVIEW });
    }
    Given::with(())
        .given(given)
        .when(submit(None, vec![]))
        .then_expect_error(ReviewError::AlreadySubmitted { review_id: REVIEW });
}

// ---- serialization ---------------------------------------------------------

#[test]
fn enums_serialize_as_the_seed_values() {
    assert_eq!(
        ReviewStatus::ALL.map(|s| serde_json::to_value(s).unwrap()),
        [json!("pending"), json!("approved"), json!("rejected")]
    );
    assert_eq!(
        serde_json::to_value(HelpfulVote::Yes).unwrap(),
        json!("yes")
    );
    assert_eq!(
        serde_json::to_value(Remover::Moderator {
            moderator_id: MODERATOR
        })
        .unwrap(),
        json!({"role": "moderator", "moderator_id": MODERATOR})
    );
}

#[test]
fn events_round_trip_and_name_themselves_by_variant() {
    let remover = Remover::Author { user_id: AUTHOR };
    let events = vec![
        submitted(Some(ORDER_A), true),
        moderated(ModerationDecision::Approve, ReviewStatus::Pending, 5),
        moderated(ModerationDecision::Reject, ReviewStatus::Approved, 5),
        voted(VOTER, HelpfulVote::No, 0, 1),
        edited(ReviewStatus::Approved, Some(stars(5))),
        removed(ReviewStatus::Pending, None, remover),
    ];
    let names: Vec<String> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        names,
        [
            "ReviewSubmitted",
            "ReviewApproved",
            "ReviewRejected",
            "ReviewHelpfulVoted",
            "ReviewEdited",
            "ReviewRemoved"
        ]
    );
    for event in events {
        let value = serde_json::to_value(&event).unwrap();
        assert!(value.get(event.event_type()).is_some(), "{value}");
        assert_eq!(serde_json::from_value::<ReviewEvent>(value).unwrap(), event);
        assert_eq!(event.event_version(), "1");
    }
}

// ---- property: the rating projection never needs to re-derive -------------

fn any_command() -> impl Strategy<Value = ReviewCommand> {
    let rating = (1i64..=5).prop_map(stars);
    prop_oneof![
        prop_oneof![
            Just(ModerationDecision::Approve),
            Just(ModerationDecision::Reject)
        ]
        .prop_map(moderate),
        (rating.clone(), "[a-z]{1,3}").prop_map(|(rating, title)| ReviewCommand::EditReview {
            editor_id: AUTHOR,
            rating,
            title,
            comment: "c".into(),
            images: vec![],
            at: later(),
        }),
        Just(remove(Remover::Moderator {
            moderator_id: MODERATOR
        })),
        (0u128..4, any::<bool>()).prop_map(|(voter, yes)| vote(
            Uuid::from_u128(0x100 + voter),
            if yes {
                HelpfulVote::Yes
            } else {
                HelpfulVote::No
            }
        )),
    ]
}

fn contribution(event: &ReviewEvent) -> Option<(Option<Rating>, Option<Rating>)> {
    match event {
        ReviewEvent::ReviewSubmitted {
            counted_rating_before,
            counted_rating_after,
            ..
        }
        | ReviewEvent::ReviewApproved {
            counted_rating_before,
            counted_rating_after,
            ..
        }
        | ReviewEvent::ReviewRejected {
            counted_rating_before,
            counted_rating_after,
            ..
        }
        | ReviewEvent::ReviewEdited {
            counted_rating_before,
            counted_rating_after,
            ..
        }
        | ReviewEvent::ReviewRemoved {
            counted_rating_before,
            counted_rating_after,
            ..
        } => Some((*counted_rating_before, *counted_rating_after)),
        ReviewEvent::ReviewHelpfulVoted { .. } => None,
    }
}

proptest! {
    #[test]
    fn a_projection_summing_the_deltas_matches_the_aggregate(
        commands in proptest::collection::vec(any_command(), 0..30)
    ) {
        let mut review = Review::default();
        let (mut count, mut sum) = (0i64, 0i64);
        let apply = |review: &mut Review, event: ReviewEvent, count: &mut i64, sum: &mut i64| {
            if let Some((before, after)) = contribution(&event) {
                // The event's "before" is exactly what the projection holds.
                assert_eq!(before, review.counted_rating());
                if let Some(r) = before { *count -= 1; *sum -= i64::from(r.get()); }
                if let Some(r) = after { *count += 1; *sum += i64::from(r.get()); }
            }
            review.apply(event);
        };
        for event in review.decide(submit(None, vec![])).unwrap() {
            apply(&mut review, event, &mut count, &mut sum);
        }
        for command in commands {
            if let Ok(events) = review.decide(command) {
                for event in events {
                    apply(&mut review, event, &mut count, &mut sum);
                }
            }
            let expected = review.counted_rating().map(|r| i64::from(r.get()));
            prop_assert_eq!(count, i64::from(expected.is_some()));
            prop_assert_eq!(sum, expected.unwrap_or(0));
            let (yes, no) = review.helpful_counts();
            prop_assert!(review.vote_of(AUTHOR).is_none());
            prop_assert!(yes + no <= 4);
        }
    }
}
