//! The account status machine, exhaustively, and the checkout gate.

use super::*;

/// The only moves the brief allows; everything else, staying put included,
/// must be refused.
const ALLOWED: [(UserStatus, UserStatus); 5] = [
    (UserStatus::Active, UserStatus::Suspended),
    (UserStatus::Active, UserStatus::Inactive),
    (UserStatus::Suspended, UserStatus::Active),
    (UserStatus::Inactive, UserStatus::Active),
    (UserStatus::Suspended, UserStatus::Inactive),
];

fn reason() -> SuspensionReason {
    SuspensionReason::parse("chargeback fraud").unwrap()
}

fn command_to(status: UserStatus) -> UserCommand {
    match status {
        UserStatus::Suspended => UserCommand::SuspendUser {
            reason: reason(),
            at: later(),
        },
        UserStatus::Active => UserCommand::ReactivateUser { at: later() },
        UserStatus::Inactive => UserCommand::DeactivateUser { at: later() },
    }
}

fn event_to(from: UserStatus, to: UserStatus) -> UserEvent {
    let (user_id, at) = (user_id(), later());
    match to {
        UserStatus::Suspended => UserEvent::UserSuspended {
            user_id,
            reason: reason(),
            previous_status: from,
            status: to,
            at,
        },
        UserStatus::Active => UserEvent::UserReactivated {
            user_id,
            previous_status: from,
            status: to,
            at,
        },
        UserStatus::Inactive => UserEvent::UserDeactivated {
            user_id,
            previous_status: from,
            status: to,
            at,
        },
    }
}

#[test]
fn every_status_pair_is_allowed_or_refused_as_specified() {
    let mut checked = 0;
    for from in UserStatus::ALL {
        for to in UserStatus::ALL {
            let when = Given::with(()).given(history_in(from)).when(command_to(to));
            if ALLOWED.contains(&(from, to)) {
                when.then_expect_events(vec![event_to(from, to)]);
            } else {
                when.then_expect_error(UserError::InvalidStatusTransition { from, to });
            }
            assert_eq!(from.can_become(to), ALLOWED.contains(&(from, to)));
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
}

#[test]
fn applied_transitions_land_in_the_new_status() {
    for (from, to) in ALLOWED {
        let mut history = history_in(from);
        history.push(event_to(from, to));
        assert_eq!(state(history).status(), to, "{from} -> {to}");
    }
}

#[test]
fn a_reactivated_user_logs_in_again() {
    let mut history = history_in(UserStatus::Suspended);
    history.push(event_to(UserStatus::Suspended, UserStatus::Active));
    Given::with(())
        .given(history)
        .when(UserCommand::RecordLogin {
            at: later(),
            ip_address: None,
            user_agent: None,
        })
        .then_expect_events(vec![UserEvent::UserLoggedIn {
            user_id: user_id(),
            at: later(),
            ip_address: None,
            user_agent: None,
        }]);
}

#[test]
fn only_active_users_may_place_orders() {
    assert_eq!(
        state(history_in(UserStatus::Active)).can_place_orders(),
        Ok(())
    );
    assert_eq!(
        state(history_in(UserStatus::Suspended)).can_place_orders(),
        Err(UserError::Suspended { user_id: user_id() })
    );
    assert_eq!(
        state(history_in(UserStatus::Inactive)).can_place_orders(),
        Err(UserError::Inactive { user_id: user_id() })
    );
    assert_eq!(
        User::default().can_place_orders(),
        Err(UserError::NotRegistered)
    );
}

#[test]
fn statuses_serialize_as_the_seed_check_values() {
    for (status, text) in [
        (UserStatus::Active, "active"),
        (UserStatus::Inactive, "inactive"),
        (UserStatus::Suspended, "suspended"),
    ] {
        assert_eq!(serde_json::to_value(status).unwrap(), json!(text));
        assert_eq!(status.as_str(), text);
    }
}
