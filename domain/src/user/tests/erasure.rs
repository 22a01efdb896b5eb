//! Erasure: the last command a stream accepts, from any status; the state
//! forgets the person, and the decision frees their email and phone.

use crate::uniqueness::{UniqueKey, UniqueKeyEvent, UniqueScope};

use super::*;

fn erase() -> UserCommand {
    UserCommand::EraseUser { at: later() }
}

fn held_by_user(scope: UniqueScope, index: &BlindIndex) -> UniqueKey {
    let mut key = UniqueKey::default();
    key.apply(UniqueKeyEvent::UniqueKeyClaimed {
        scope,
        key: index.as_str().to_owned(),
        owner_id: user_id(),
    });
    key
}

fn released(scope: UniqueScope, index: &BlindIndex) -> (String, UniqueKeyEvent) {
    (
        format!("{}:{}", scope.as_str(), index.as_str()),
        UniqueKeyEvent::UniqueKeyReleased {
            scope,
            key: index.as_str().to_owned(),
            owner_id: user_id(),
        },
    )
}

fn erased_history() -> Vec<UserEvent> {
    vec![
        registered(),
        added(1, "Bangkok", true),
        erased(UserStatus::Active),
    ]
}

#[test]
fn a_user_is_erased_from_any_status() {
    for status in UserStatus::ALL {
        Given::with(())
            .given(history_in(status))
            .when(erase())
            .then_expect_events(vec![erased(status)]);
    }
}

#[test]
fn an_erased_user_is_inactive_and_holds_no_personal_data() {
    let user = state(vec![
        registered(),
        phone_verified(),
        email_verified(),
        added(1, "Bangkok", true),
        role_changed(UserRole::Customer, UserRole::Admin),
        erased(UserStatus::Active),
    ]);
    assert!(user.is_erased());
    assert_eq!(user.status(), UserStatus::Inactive);
    assert_eq!(user.id(), Some(user_id()));
    assert_eq!(user.created_at(), Some(at()));
    assert_eq!(
        (
            user.email(),
            user.phone(),
            user.first_name(),
            user.last_name()
        ),
        (None, None, None, None)
    );
    assert_eq!(user.password_hash(), None);
    assert_eq!((user.date_of_birth(), user.gender()), (None, None));
    assert!(user.addresses().is_empty() && user.default_address().is_none());
    assert!(!user.email_verified() && !user.phone_verified());
    let snapshot = serde_json::to_string(&user).unwrap().to_lowercase();
    for clear in ["somchai", "jaidee", "+66812345678", "sukhumvit"] {
        assert!(!snapshot.contains(clear), "{clear} in {snapshot}");
    }
}

#[test]
fn every_later_command_is_refused() {
    for command in every_command_but_registration() {
        Given::with(())
            .given(erased_history())
            .when(command)
            .then_expect_error(UserError::Erased { user_id: user_id() });
    }
}

#[test]
fn a_second_erasure_is_refused() {
    Given::with(())
        .given(erased_history())
        .when(erase())
        .then_expect_error(UserError::Erased { user_id: user_id() });
}

#[test]
fn registering_on_an_erased_stream_is_refused() {
    Given::with(())
        .given(erased_history())
        .when(UserCommand::RegisterUser(register_cmd()))
        .then_expect_error(UserError::Erased { user_id: user_id() });
}

#[test]
fn an_erased_user_may_not_place_orders() {
    assert_eq!(
        state(erased_history()).can_place_orders(),
        Err(UserError::Erased { user_id: user_id() })
    );
}

#[test]
fn erasing_an_unregistered_stream_is_refused() {
    Given::with(())
        .given_no_previous_events()
        .when(erase())
        .then_expect_error(UserError::NotRegistered);
}

#[test]
fn the_erasure_decision_releases_the_email_and_phone_the_user_holds() {
    let user = state(vec![registered()]);
    let email_key = held_by_user(UniqueScope::UserEmail, &email_index());
    let phone_key = held_by_user(UniqueScope::UserPhone, &phone_index());
    let decision = erase_user(
        &user,
        Claim {
            key: &email_key,
            index: &email_index(),
        },
        Some(Claim {
            key: &phone_key,
            index: &phone_index(),
        }),
        later(),
    )
    .unwrap();
    assert_eq!(
        decision,
        UserDecision {
            events: vec![erased(UserStatus::Active)],
            unique_key_events: vec![
                released(UniqueScope::UserEmail, &email_index()),
                released(UniqueScope::UserPhone, &phone_index()),
            ],
        }
    );
}

#[test]
fn claims_held_by_someone_else_are_left_alone() {
    let user = state(vec![registered()]);
    let mut others = UniqueKey::default();
    others.apply(UniqueKeyEvent::UniqueKeyClaimed {
        scope: UniqueScope::UserEmail,
        key: email_index().as_str().to_owned(),
        owner_id: other_user_id(),
    });
    let free = UniqueKey::default();
    let decision = erase_user(
        &user,
        Claim {
            key: &others,
            index: &email_index(),
        },
        Some(Claim {
            key: &free,
            index: &phone_index(),
        }),
        later(),
    )
    .unwrap();
    assert_eq!(decision.events, vec![erased(UserStatus::Active)]);
    assert_eq!(decision.unique_key_events, vec![]);
}

#[test]
fn erasing_a_user_with_a_phone_needs_its_claim() {
    let email_key = held_by_user(UniqueScope::UserEmail, &email_index());
    let email = Claim {
        key: &email_key,
        index: &email_index(),
    };
    assert_eq!(
        erase_user(&state(vec![registered()]), email, None, later()),
        Err(UserError::PhoneClaimMissing)
    );
    // Without a phone there is nothing to release but the email.
    let decision = erase_user(
        &state(vec![registered_without_phone()]),
        email,
        None,
        later(),
    )
    .unwrap();
    assert_eq!(
        decision.unique_key_events,
        vec![released(UniqueScope::UserEmail, &email_index())]
    );
}

#[test]
fn the_erasure_decision_is_refused_on_an_erased_stream() {
    let key = UniqueKey::default();
    let claim = Claim {
        key: &key,
        index: &email_index(),
    };
    assert_eq!(
        erase_user(&state(erased_history()), claim, Some(claim), later()),
        Err(UserError::Erased { user_id: user_id() })
    );
}

#[test]
fn an_erased_users_email_and_phone_can_be_registered_again() {
    let user = state(vec![registered()]);
    let mut email_key = held_by_user(UniqueScope::UserEmail, &email_index());
    let mut phone_key = held_by_user(UniqueScope::UserPhone, &phone_index());
    let decision = erase_user(
        &user,
        Claim {
            key: &email_key,
            index: &email_index(),
        },
        Some(Claim {
            key: &phone_key,
            index: &phone_index(),
        }),
        later(),
    )
    .unwrap();
    let [(_, email_released), (_, phone_released)] = decision.unique_key_events.as_slice() else {
        panic!("{:?}", decision.unique_key_events);
    };
    email_key.apply(email_released.clone());
    phone_key.apply(phone_released.clone());

    let newcomer = RegisterUser {
        user_id: other_user_id(),
        ..register_cmd()
    };
    let decision = register_user(
        &User::default(),
        Claim {
            key: &email_key,
            index: &email_index(),
        },
        Some(Claim {
            key: &phone_key,
            index: &phone_index(),
        }),
        newcomer,
    )
    .unwrap();
    assert_eq!(decision.events.len(), 1);
    assert_eq!(decision.unique_key_events.len(), 2);
    assert!(decision.unique_key_events.iter().all(|(_, event)| matches!(
        event,
        UniqueKeyEvent::UniqueKeyClaimed { owner_id, .. } if *owner_id == other_user_id()
    )));
}
