//! The decisions that reach beyond the user's stream: email and phone claims,
//! named by blind index.

use crate::uniqueness::{UniqueKey, UniqueKeyEvent, UniqueScope};

use super::*;

fn free() -> UniqueKey {
    UniqueKey::default()
}

fn held_by(scope: UniqueScope, index: &BlindIndex, owner_id: Uuid) -> UniqueKey {
    let mut key = UniqueKey::default();
    key.apply(UniqueKeyEvent::UniqueKeyClaimed {
        scope,
        key: index.as_str().to_owned(),
        owner_id,
    });
    key
}

fn email_held_by(index: &BlindIndex, owner_id: Uuid) -> UniqueKey {
    held_by(UniqueScope::UserEmail, index, owner_id)
}

fn phone_held_by(index: &BlindIndex, owner_id: Uuid) -> UniqueKey {
    held_by(UniqueScope::UserPhone, index, owner_id)
}

fn claim<'a>(key: &'a UniqueKey, index: &'a BlindIndex) -> Claim<'a> {
    Claim { key, index }
}

fn stream(scope: UniqueScope, index: &BlindIndex) -> String {
    format!("{}:{}", scope.as_str(), index.as_str())
}

fn claimed(scope: UniqueScope, index: &BlindIndex) -> (String, UniqueKeyEvent) {
    (
        stream(scope, index),
        UniqueKeyEvent::UniqueKeyClaimed {
            scope,
            key: index.as_str().to_owned(),
            owner_id: user_id(),
        },
    )
}

fn released(scope: UniqueScope, index: &BlindIndex) -> (String, UniqueKeyEvent) {
    (
        stream(scope, index),
        UniqueKeyEvent::UniqueKeyReleased {
            scope,
            key: index.as_str().to_owned(),
            owner_id: user_id(),
        },
    )
}

fn change_to_new_email() -> ChangeEmail {
    ChangeEmail {
        email: new_email(),
        at: later(),
    }
}

fn update_to_other_phone() -> UpdateProfile {
    UpdateProfile {
        phone: Some(other_phone()),
        ..profile_cmd()
    }
}

/// Every clear personal value of the fixture, as it would appear in JSON.
fn clear_values() -> Vec<String> {
    vec![
        email().to_string(),
        new_email().to_string(),
        phone().to_string(),
        other_phone().to_string(),
    ]
}

fn assert_no_clear_value(decision: &UserDecision) {
    for (stream_id, event) in &decision.unique_key_events {
        let json = format!("{stream_id} {}", serde_json::to_string(event).unwrap());
        for clear in clear_values() {
            assert!(!json.contains(&clear), "{clear} in {json}");
        }
    }
}

// ---- stream ids -------------------------------------------------------------

#[test]
fn claim_streams_are_named_by_the_blind_index_alone() {
    let hex = email_index().as_str().to_owned();
    assert_eq!(email_stream_id(&email_index()), format!("user_email:{hex}"));
    assert_eq!(
        phone_stream_id(&phone_index()),
        format!("user_phone:{}", phone_index().as_str())
    );
    // The same digest names different streams in the two scopes.
    assert_ne!(email_stream_id(&index('c')), phone_stream_id(&index('c')));
}

// ---- registration -------------------------------------------------------------

#[test]
fn registering_claims_the_email_and_the_phone_by_index() {
    let (email_key, phone_key) = (free(), free());
    let decision = register_user(
        &User::default(),
        claim(&email_key, &email_index()),
        Some(claim(&phone_key, &phone_index())),
        register_cmd(),
    )
    .unwrap();
    assert_eq!(
        decision,
        UserDecision {
            events: vec![registered()],
            unique_key_events: vec![
                claimed(UniqueScope::UserEmail, &email_index()),
                claimed(UniqueScope::UserPhone, &phone_index()),
            ],
        }
    );
    assert_no_clear_value(&decision);
}

#[test]
fn registering_with_a_taken_email_is_refused() {
    let (taken, phone_key) = (email_held_by(&email_index(), other_user_id()), free());
    assert_eq!(
        register_user(
            &User::default(),
            claim(&taken, &email_index()),
            Some(claim(&phone_key, &phone_index())),
            register_cmd()
        ),
        Err(UserError::EmailTaken { email: email() })
    );
}

#[test]
fn registering_with_a_phone_held_by_another_user_is_refused() {
    let (email_key, taken) = (free(), phone_held_by(&phone_index(), other_user_id()));
    assert_eq!(
        register_user(
            &User::default(),
            claim(&email_key, &email_index()),
            Some(claim(&taken, &phone_index())),
            register_cmd()
        ),
        Err(UserError::PhoneTaken { phone: phone() })
    );
}

#[test]
fn registering_with_a_phone_but_without_its_claim_is_refused() {
    let email_key = free();
    assert_eq!(
        register_user(
            &User::default(),
            claim(&email_key, &email_index()),
            None,
            register_cmd()
        ),
        Err(UserError::PhoneClaimMissing)
    );
}

#[test]
fn registering_without_a_phone_claims_only_the_email() {
    let command = RegisterUser {
        phone: None,
        ..register_cmd()
    };
    let (email_key, phone_key) = (free(), phone_held_by(&phone_index(), other_user_id()));
    for phone_claim in [None, Some(claim(&phone_key, &phone_index()))] {
        let decision = register_user(
            &User::default(),
            claim(&email_key, &email_index()),
            phone_claim,
            command.clone(),
        )
        .unwrap();
        assert_eq!(
            decision,
            UserDecision {
                events: vec![registered_without_phone()],
                unique_key_events: vec![claimed(UniqueScope::UserEmail, &email_index())],
            }
        );
    }
}

#[test]
fn claims_already_held_by_the_registering_user_are_not_claimed_again() {
    let email_key = email_held_by(&email_index(), user_id());
    let phone_key = phone_held_by(&phone_index(), user_id());
    let decision = register_user(
        &User::default(),
        claim(&email_key, &email_index()),
        Some(claim(&phone_key, &phone_index())),
        register_cmd(),
    )
    .unwrap();
    assert_eq!(decision.events, vec![registered()]);
    assert_eq!(decision.unique_key_events, vec![]);
}

#[test]
fn registering_on_an_existing_stream_is_refused_before_claiming() {
    let existing = state(vec![registered()]);
    let key = free();
    assert_eq!(
        register_user(
            &existing,
            claim(&key, &email_index()),
            Some(claim(&key, &phone_index())),
            register_cmd()
        ),
        Err(UserError::AlreadyRegistered { user_id: user_id() })
    );
}

// ---- email change -------------------------------------------------------------

#[test]
fn changing_email_claims_the_new_and_releases_the_old() {
    let user = state(vec![registered(), email_verified()]);
    let (new_key, previous_key) = (free(), email_held_by(&email_index(), user_id()));
    let decision = change_email(
        &user,
        claim(&new_key, &new_email_index()),
        claim(&previous_key, &email_index()),
        change_to_new_email(),
    )
    .unwrap();
    assert_eq!(
        decision,
        UserDecision {
            events: vec![UserEvent::UserEmailChanged {
                user_id: user_id(),
                previous_email: email(),
                email: new_email(),
                email_verified: false,
                at: later(),
            }],
            unique_key_events: vec![
                claimed(UniqueScope::UserEmail, &new_email_index()),
                released(UniqueScope::UserEmail, &email_index()),
            ],
        }
    );
    assert_no_clear_value(&decision);
}

#[test]
fn changing_to_a_taken_email_is_refused() {
    let user = state(vec![registered()]);
    let taken = email_held_by(&new_email_index(), other_user_id());
    let own = email_held_by(&email_index(), user_id());
    assert_eq!(
        change_email(
            &user,
            claim(&taken, &new_email_index()),
            claim(&own, &email_index()),
            change_to_new_email(),
        ),
        Err(UserError::EmailTaken { email: new_email() })
    );
}

#[test]
fn an_old_email_the_user_does_not_hold_is_not_released() {
    let user = state(vec![registered()]);
    let new_key = free();
    for previous_key in [free(), email_held_by(&email_index(), other_user_id())] {
        let decision = change_email(
            &user,
            claim(&new_key, &new_email_index()),
            claim(&previous_key, &email_index()),
            change_to_new_email(),
        )
        .unwrap();
        assert_eq!(
            decision.unique_key_events,
            vec![claimed(UniqueScope::UserEmail, &new_email_index())]
        );
    }
}

#[test]
fn changing_to_the_same_email_is_refused_by_the_decision_too() {
    let user = state(vec![registered()]);
    let own = email_held_by(&email_index(), user_id());
    assert_eq!(
        change_email(
            &user,
            claim(&own, &email_index()),
            claim(&own, &email_index()),
            ChangeEmail {
                email: email(),
                at: later(),
            },
        ),
        Err(UserError::EmailUnchanged { email: email() })
    );
}

#[test]
fn changing_email_on_an_empty_stream_is_refused() {
    let key = free();
    assert_eq!(
        change_email(
            &User::default(),
            claim(&key, &new_email_index()),
            claim(&key, &email_index()),
            change_to_new_email(),
        ),
        Err(UserError::NotRegistered)
    );
}

// ---- profile update -------------------------------------------------------------

#[test]
fn a_new_phone_is_claimed_and_the_previous_one_released() {
    let user = state(vec![registered()]);
    let (new_key, previous_key) = (free(), phone_held_by(&phone_index(), user_id()));
    let decision = update_profile(
        &user,
        Some(claim(&new_key, &other_phone_index())),
        Some(claim(&previous_key, &phone_index())),
        update_to_other_phone(),
    )
    .unwrap();
    assert!(matches!(
        decision.events.as_slice(),
        [UserEvent::UserProfileUpdated { phone: Some(p), .. }] if *p == other_phone()
    ));
    assert_eq!(
        decision.unique_key_events,
        vec![
            claimed(UniqueScope::UserPhone, &other_phone_index()),
            released(UniqueScope::UserPhone, &phone_index()),
        ]
    );
    assert_no_clear_value(&decision);
}

#[test]
fn a_profile_update_to_a_phone_held_by_another_user_is_refused() {
    let user = state(vec![registered()]);
    let taken = phone_held_by(&other_phone_index(), other_user_id());
    let own = phone_held_by(&phone_index(), user_id());
    assert_eq!(
        update_profile(
            &user,
            Some(claim(&taken, &other_phone_index())),
            Some(claim(&own, &phone_index())),
            update_to_other_phone(),
        ),
        Err(UserError::PhoneTaken {
            phone: other_phone()
        })
    );
}

#[test]
fn a_previous_phone_the_user_does_not_hold_is_not_released() {
    let user = state(vec![registered()]);
    let new_key = free();
    for previous_key in [free(), phone_held_by(&phone_index(), other_user_id())] {
        let decision = update_profile(
            &user,
            Some(claim(&new_key, &other_phone_index())),
            Some(claim(&previous_key, &phone_index())),
            update_to_other_phone(),
        )
        .unwrap();
        assert_eq!(
            decision.unique_key_events,
            vec![claimed(UniqueScope::UserPhone, &other_phone_index())]
        );
    }
}

#[test]
fn removing_the_phone_releases_it_and_claims_nothing() {
    let user = state(vec![registered()]);
    let own = phone_held_by(&phone_index(), user_id());
    let decision = update_profile(
        &user,
        None,
        Some(claim(&own, &phone_index())),
        UpdateProfile {
            phone: None,
            ..profile_cmd()
        },
    )
    .unwrap();
    assert_eq!(decision.events.len(), 1);
    assert_eq!(
        decision.unique_key_events,
        vec![released(UniqueScope::UserPhone, &phone_index())]
    );
}

#[test]
fn a_first_phone_is_claimed_with_nothing_to_release() {
    let user = state(vec![registered_without_phone()]);
    let new_key = free();
    let decision = update_profile(
        &user,
        Some(claim(&new_key, &phone_index())),
        None,
        profile_cmd(),
    )
    .unwrap();
    assert_eq!(
        decision.unique_key_events,
        vec![claimed(UniqueScope::UserPhone, &phone_index())]
    );
}

#[test]
fn a_changed_phone_without_its_claims_is_refused() {
    let user = state(vec![registered()]);
    let (new_key, own) = (free(), phone_held_by(&phone_index(), user_id()));
    for (new_phone, previous_phone) in [
        (None, Some(claim(&own, &phone_index()))),
        (Some(claim(&new_key, &other_phone_index())), None),
    ] {
        assert_eq!(
            update_profile(&user, new_phone, previous_phone, update_to_other_phone()),
            Err(UserError::PhoneClaimMissing)
        );
    }
}

#[test]
fn keeping_ones_phone_claims_nothing() {
    let user = state(vec![registered()]);
    let command = UpdateProfile {
        bio: Some("hello".into()),
        ..profile_cmd()
    };
    // Not even a claim held by someone else, which a number inherited from
    // before phone claims may have: its user must still edit the profile.
    let taken = phone_held_by(&phone_index(), other_user_id());
    for phone_claim in [None, Some(claim(&taken, &phone_index()))] {
        let decision = update_profile(&user, phone_claim, phone_claim, command.clone()).unwrap();
        assert_eq!(decision.events.len(), 1);
        assert_eq!(decision.unique_key_events, vec![]);
    }
}

#[test]
fn a_profile_update_on_an_empty_stream_is_refused() {
    assert_eq!(
        update_profile(&User::default(), None, None, profile_cmd()),
        Err(UserError::NotRegistered)
    );
}
