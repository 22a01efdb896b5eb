//! Roles: every account starts as a customer; a role change says what it
//! replaced, and asking for the current role changes nothing.

use super::*;

#[test]
fn a_registered_user_is_a_customer() {
    assert_eq!(state(vec![registered()]).role(), UserRole::Customer);
    assert_eq!(User::default().role(), UserRole::Customer);
}

#[test]
fn a_customer_is_made_an_admin() {
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::ChangeRole {
            role: UserRole::Admin,
            at: later(),
        })
        .then_expect_events(vec![role_changed(UserRole::Customer, UserRole::Admin)]);
}

#[test]
fn an_admin_is_made_a_customer_again() {
    let history = vec![
        registered(),
        role_changed(UserRole::Customer, UserRole::Admin),
    ];
    assert_eq!(state(history.clone()).role(), UserRole::Admin);
    Given::with(())
        .given(history)
        .when(UserCommand::ChangeRole {
            role: UserRole::Customer,
            at: later(),
        })
        .then_expect_events(vec![role_changed(UserRole::Admin, UserRole::Customer)]);
}

#[test]
fn changing_to_the_current_role_emits_nothing() {
    for (history, role) in [
        (vec![registered()], UserRole::Customer),
        (
            vec![
                registered(),
                role_changed(UserRole::Customer, UserRole::Admin),
            ],
            UserRole::Admin,
        ),
    ] {
        Given::with(())
            .given(history)
            .when(UserCommand::ChangeRole { role, at: later() })
            .then_expect_events(vec![]);
    }
}

#[test]
fn a_suspended_or_inactive_user_can_still_be_demoted() {
    for status in [UserStatus::Suspended, UserStatus::Inactive] {
        let mut history = history_in(status);
        history.insert(1, role_changed(UserRole::Customer, UserRole::Admin));
        Given::with(())
            .given(history)
            .when(UserCommand::ChangeRole {
                role: UserRole::Customer,
                at: later(),
            })
            .then_expect_events(vec![role_changed(UserRole::Admin, UserRole::Customer)]);
    }
}

#[test]
fn roles_are_spelled_in_snake_case_everywhere() {
    for (role, text) in [(UserRole::Customer, "customer"), (UserRole::Admin, "admin")] {
        assert_eq!(role.as_str(), text);
        assert_eq!(role.to_string(), text);
        assert_eq!(serde_json::to_value(role).unwrap(), json!(text));
        assert_eq!(
            serde_json::from_value::<UserRole>(json!(text)).unwrap(),
            role
        );
        assert_eq!(UserRole::parse(text), Ok(role));
    }
    assert_eq!(UserRole::default(), UserRole::Customer);
}

#[test]
fn an_unknown_role_is_refused() {
    for bad in ["", "Admin", " admin", "superuser", "customer\n"] {
        assert_eq!(
            UserRole::parse(bad),
            Err(crate::values::ValueError::Role(bad.into())),
            "{bad:?}"
        );
    }
    assert!(serde_json::from_value::<UserRole>(json!("root")).is_err());
}
