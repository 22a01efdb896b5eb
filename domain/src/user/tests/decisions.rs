//! The decisions that reach beyond the user's stream: email claims and the
//! phone check.

use crate::uniqueness::{UniqueKey, UniqueKeyEvent, UniqueScope};

use super::*;

fn key_owned_by(email: &Email, owner_id: Uuid) -> UniqueKey {
    let mut key = UniqueKey::default();
    key.apply(UniqueKeyEvent::UniqueKeyClaimed {
        scope: UniqueScope::UserEmail,
        key: email.as_str().to_owned(),
        owner_id,
    });
    key
}

fn claimed(email: &Email) -> (String, UniqueKeyEvent) {
    (
        format!("user_email:{email}"),
        UniqueKeyEvent::UniqueKeyClaimed {
            scope: UniqueScope::UserEmail,
            key: email.as_str().to_owned(),
            owner_id: user_id(),
        },
    )
}

#[test]
fn email_claim_streams_are_case_insensitive() {
    let upper = Email::parse("SOMCHAI@Example.COM").unwrap();
    assert_eq!(email_stream_id(&upper), "user_email:somchai@example.com");
    assert_eq!(email_stream_id(&upper), email_stream_id(&email()));
}

#[test]
fn registering_with_a_free_email_claims_it() {
    let decision = register_user(
        &User::default(),
        &UniqueKey::default(),
        None,
        register_cmd(),
    )
    .unwrap();
    assert_eq!(
        decision,
        UserDecision {
            events: vec![registered()],
            unique_key_events: vec![claimed(&email())],
        }
    );
}

#[test]
fn registering_with_a_taken_email_is_refused() {
    let taken = key_owned_by(&email(), other_user_id());
    assert_eq!(
        register_user(&User::default(), &taken, None, register_cmd()),
        Err(UserError::EmailTaken { email: email() })
    );
}

#[test]
fn registering_with_a_phone_held_by_another_user_is_refused() {
    assert_eq!(
        register_user(
            &User::default(),
            &UniqueKey::default(),
            Some(other_user_id()),
            register_cmd()
        ),
        Err(UserError::PhoneTaken { phone: phone() })
    );
}

#[test]
fn without_a_phone_the_phone_owner_is_irrelevant() {
    let command = RegisterUser {
        phone: None,
        ..register_cmd()
    };
    let decision = register_user(
        &User::default(),
        &UniqueKey::default(),
        Some(other_user_id()),
        command,
    )
    .unwrap();
    assert_eq!(decision.events, vec![registered_without_phone()]);
}

#[test]
fn registering_on_an_existing_stream_is_refused_before_claiming() {
    let existing = state(vec![registered()]);
    assert_eq!(
        register_user(&existing, &UniqueKey::default(), None, register_cmd()),
        Err(UserError::AlreadyRegistered { user_id: user_id() })
    );
}

#[test]
fn changing_email_claims_the_new_and_releases_the_old() {
    let user = state(vec![registered(), email_verified()]);
    let decision = change_email(
        &user,
        &UniqueKey::default(),
        &key_owned_by(&email(), user_id()),
        ChangeEmail {
            email: new_email(),
            at: later(),
        },
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
                claimed(&new_email()),
                (
                    "user_email:somchai@example.com".to_owned(),
                    UniqueKeyEvent::UniqueKeyReleased {
                        scope: UniqueScope::UserEmail,
                        key: email().as_str().to_owned(),
                        owner_id: user_id(),
                    }
                ),
            ],
        }
    );
}

#[test]
fn changing_to_a_taken_email_is_refused() {
    let user = state(vec![registered()]);
    assert_eq!(
        change_email(
            &user,
            &key_owned_by(&new_email(), other_user_id()),
            &key_owned_by(&email(), user_id()),
            ChangeEmail {
                email: new_email(),
                at: later(),
            },
        ),
        Err(UserError::EmailTaken { email: new_email() })
    );
}

#[test]
fn an_old_email_the_user_does_not_hold_is_not_released() {
    let user = state(vec![registered()]);
    for previous_key in [
        UniqueKey::default(),
        key_owned_by(&email(), other_user_id()),
    ] {
        let decision = change_email(
            &user,
            &UniqueKey::default(),
            &previous_key,
            ChangeEmail {
                email: new_email(),
                at: later(),
            },
        )
        .unwrap();
        assert_eq!(decision.unique_key_events, vec![claimed(&new_email())]);
    }
}

#[test]
fn changing_to_the_same_email_is_refused_by_the_decision_too() {
    let user = state(vec![registered()]);
    let own = key_owned_by(&email(), user_id());
    assert_eq!(
        change_email(
            &user,
            &own,
            &own,
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
    assert_eq!(
        change_email(
            &User::default(),
            &UniqueKey::default(),
            &UniqueKey::default(),
            ChangeEmail {
                email: new_email(),
                at: later(),
            },
        ),
        Err(UserError::NotRegistered)
    );
}

#[test]
fn a_profile_update_to_a_phone_held_by_another_user_is_refused() {
    let user = state(vec![registered()]);
    let command = UpdateProfile {
        phone: Some(other_phone()),
        ..profile_cmd()
    };
    assert_eq!(
        update_profile(&user, Some(other_user_id()), command.clone()),
        Err(UserError::PhoneTaken {
            phone: other_phone()
        })
    );
    let events = update_profile(&user, None, command).unwrap();
    assert!(matches!(
        events.as_slice(),
        [UserEvent::UserProfileUpdated { phone: Some(p), .. }] if *p == other_phone()
    ));
}

#[test]
fn keeping_ones_own_phone_passes_the_check() {
    let user = state(vec![registered()]);
    let command = UpdateProfile {
        bio: Some("hello".into()),
        ..profile_cmd()
    };
    assert_eq!(
        update_profile(&user, Some(user_id()), command.clone())
            .unwrap()
            .len(),
        1
    );
    // an unchanged number is not re-checked against a legacy duplicate
    assert_eq!(
        update_profile(&user, Some(other_user_id()), command)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_profile_update_on_an_empty_stream_is_refused() {
    assert_eq!(
        update_profile(&User::default(), None, profile_cmd()),
        Err(UserError::NotRegistered)
    );
}

#[test]
fn phone_availability_table() {
    let cases = [
        (None, true),
        (Some(user_id()), true),
        (Some(other_user_id()), false),
    ];
    for (owner, available) in cases {
        assert_eq!(
            ensure_phone_available(user_id(), &phone(), owner).is_ok(),
            available,
            "{owner:?}"
        );
    }
}
