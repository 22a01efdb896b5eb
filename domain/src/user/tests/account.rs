//! Registration, profile, email, phone, password and login rules.

use super::*;

#[test]
fn registration_opens_an_active_unverified_account() {
    Given::with(())
        .given_no_previous_events()
        .when(UserCommand::RegisterUser(register_cmd()))
        .then_expect_events(vec![registered()]);
}

#[test]
fn registered_state_has_seed_profile_defaults() {
    let user = state(vec![registered()]);
    assert_eq!(user.id(), Some(user_id()));
    assert_eq!(user.email(), Some(&email()));
    assert_eq!(user.status(), UserStatus::Active);
    assert!(!user.email_verified() && !user.phone_verified());
    assert_eq!(user.preferences(), &json!({}));
    assert_eq!(user.settings(), &json!({}));
    assert_eq!(user.created_at(), Some(at()));
    assert!(user.default_address().is_none());
}

#[test]
fn registering_an_existing_user_again_is_refused() {
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::RegisterUser(register_cmd()))
        .then_expect_error(UserError::AlreadyRegistered { user_id: user_id() });
}

#[test]
fn a_date_of_birth_after_registration_day_is_refused() {
    let tomorrow = at().date_naive().succ_opt().unwrap();
    Given::with(())
        .given_no_previous_events()
        .when(UserCommand::RegisterUser(RegisterUser {
            date_of_birth: Some(tomorrow),
            ..register_cmd()
        }))
        .then_expect_error(UserError::DateOfBirthInFuture {
            date_of_birth: tomorrow,
        });
}

#[test]
fn a_date_of_birth_on_registration_day_is_accepted() {
    let today = at().date_naive();
    let events = Given::with(())
        .given_no_previous_events()
        .when(UserCommand::RegisterUser(RegisterUser {
            date_of_birth: Some(today),
            ..register_cmd()
        }))
        .inspect_result()
        .unwrap();
    assert!(matches!(
        events.as_slice(),
        [UserEvent::UserRegistered { date_of_birth: Some(d), .. }] if *d == today
    ));
}

#[test]
fn every_command_but_registration_needs_a_registered_user() {
    for command in every_command_but_registration() {
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(UserError::NotRegistered);
    }
}

// ---- profile --------------------------------------------------------------

#[test]
fn a_profile_update_carries_every_new_value() {
    let avatar = avatar();
    let preferences =
        json!({"notifications": {"email": true, "push": true, "sms": false}, "language": "th"});
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::UpdateProfile(UpdateProfile {
            first_name: name("Somsak"),
            last_name: name("Rakdee"),
            gender: Some(Gender::Other),
            date_of_birth: None,
            avatar_url: Some(avatar.clone()),
            bio: Some("  Gadget fan  ".into()),
            preferences: preferences.clone(),
            settings: json!({"theme": "dark"}),
            ..profile_cmd()
        }))
        .then_expect_events(vec![UserEvent::UserProfileUpdated {
            user_id: user_id(),
            first_name: name("Somsak"),
            last_name: name("Rakdee"),
            phone: Some(phone()),
            phone_verified: false,
            date_of_birth: None,
            gender: Some(Gender::Other),
            avatar_url: Some(avatar),
            bio: Some("Gadget fan".into()),
            preferences,
            settings: json!({"theme": "dark"}),
            at: later(),
        }]);
}

fn profile_event_phone(events: &[UserEvent]) -> (Option<Phone>, bool) {
    match events {
        [UserEvent::UserProfileUpdated {
            phone,
            phone_verified,
            ..
        }] => (phone.clone(), *phone_verified),
        other => panic!("expected one UserProfileUpdated, got {other:?}"),
    }
}

#[test]
fn changing_the_phone_resets_its_verification() {
    let events = Given::with(())
        .given(vec![registered(), phone_verified()])
        .when(UserCommand::UpdateProfile(UpdateProfile {
            phone: Some(other_phone()),
            ..profile_cmd()
        }))
        .inspect_result()
        .unwrap();
    assert_eq!(profile_event_phone(&events), (Some(other_phone()), false));
}

#[test]
fn removing_the_phone_resets_its_verification() {
    let events = Given::with(())
        .given(vec![registered(), phone_verified()])
        .when(UserCommand::UpdateProfile(UpdateProfile {
            phone: None,
            ..profile_cmd()
        }))
        .inspect_result()
        .unwrap();
    assert_eq!(profile_event_phone(&events), (None, false));
}

#[test]
fn keeping_the_phone_keeps_its_verification() {
    let events = Given::with(())
        .given(vec![registered(), phone_verified()])
        .when(UserCommand::UpdateProfile(UpdateProfile {
            gender: Some(Gender::Female),
            ..profile_cmd()
        }))
        .inspect_result()
        .unwrap();
    assert_eq!(profile_event_phone(&events), (Some(phone()), true));
}

#[test]
fn a_profile_update_that_changes_nothing_emits_nothing() {
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::UpdateProfile(UpdateProfile {
            // a blank bio means "no bio", which is what the user has
            bio: Some("   ".into()),
            ..profile_cmd()
        }))
        .then_expect_events(vec![]);
}

#[test]
fn a_future_date_of_birth_is_refused_on_update() {
    let next_day = later().date_naive().succ_opt().unwrap();
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::UpdateProfile(UpdateProfile {
            date_of_birth: Some(next_day),
            ..profile_cmd()
        }))
        .then_expect_error(UserError::DateOfBirthInFuture {
            date_of_birth: next_day,
        });
}

#[test]
fn control_characters_are_refused_in_the_bio_preferences_settings_and_user_agent() {
    for bad in ["a\u{0}b", "a\u{7}b"] {
        let commands = [
            UserCommand::UpdateProfile(UpdateProfile {
                bio: Some(bad.into()),
                ..profile_cmd()
            }),
            UserCommand::UpdateProfile(UpdateProfile {
                preferences: json!({ "language": bad }),
                ..profile_cmd()
            }),
            UserCommand::UpdateProfile(UpdateProfile {
                settings: json!({ bad: "dark" }),
                ..profile_cmd()
            }),
            UserCommand::RecordLogin {
                at: later(),
                ip_address: None,
                user_agent: Some(bad.into()),
            },
        ];
        for command in commands {
            let result = Given::with(())
                .given(vec![registered()])
                .when(command.clone())
                .inspect_result();
            assert!(result.is_err(), "{command:?}: {result:?}");
        }
    }
    // A bio may span lines.
    let result = Given::with(())
        .given(vec![registered()])
        .when(UserCommand::UpdateProfile(UpdateProfile {
            bio: Some("Gadget fan\nBangkok".into()),
            ..profile_cmd()
        }))
        .inspect_result();
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn preferences_must_be_an_object() {
    for value in [json!(null), json!([]), json!("email"), json!(1)] {
        Given::with(())
            .given(vec![registered()])
            .when(UserCommand::UpdateProfile(UpdateProfile {
                preferences: value.clone(),
                ..profile_cmd()
            }))
            .then_expect_error(UserError::PreferencesNotAnObject { value });
    }
}

#[test]
fn settings_must_be_an_object() {
    for value in [json!(null), json!([1]), json!(true)] {
        Given::with(())
            .given(vec![registered()])
            .when(UserCommand::UpdateProfile(UpdateProfile {
                settings: value.clone(),
                ..profile_cmd()
            }))
            .then_expect_error(UserError::SettingsNotAnObject { value });
    }
}

#[test]
fn notification_preferences_must_be_an_object_of_booleans() {
    for notifications in [
        json!("off"),
        json!({"sms": "no"}),
        json!({"email": null}),
        json!([false]),
    ] {
        Given::with(())
            .given(vec![registered()])
            .when(UserCommand::UpdateProfile(UpdateProfile {
                preferences: json!({ "notifications": notifications.clone() }),
                ..profile_cmd()
            }))
            .then_expect_error(UserError::InvalidNotificationPreferences {
                value: notifications,
            });
    }
}

#[test]
fn opt_outs_are_read_from_the_updated_preferences() {
    let update = UpdateProfile {
        preferences: json!({"notifications": {"email": true, "push": false, "sms": false}}),
        ..profile_cmd()
    };
    let user = state(vec![registered()]);
    let events = user.decide(UserCommand::UpdateProfile(update)).unwrap();
    let mut user = user;
    events.into_iter().for_each(|e| user.apply(e));
    assert!(!user.channel_opted_out("email"));
    assert!(user.channel_opted_out("push"));
    assert!(user.channel_opted_out("sms"));
    // never mentioned: stays on
    assert!(!user.channel_opted_out("line"));
    // a fresh account opted out of nothing
    assert!(!state(vec![registered()]).channel_opted_out("sms"));
}

// ---- email ------------------------------------------------------------------

#[test]
fn changing_the_email_resets_its_verification() {
    Given::with(())
        .given(vec![registered(), email_verified()])
        .when(UserCommand::ChangeEmail(ChangeEmail {
            email: new_email(),
            at: later(),
        }))
        .then_expect_events(vec![UserEvent::UserEmailChanged {
            user_id: user_id(),
            previous_email: email(),
            email: new_email(),
            email_verified: false,
            at: later(),
        }]);
}

#[test]
fn changing_to_the_current_email_is_refused() {
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::ChangeEmail(ChangeEmail {
            email: Email::parse("SomChai@Example.com").unwrap(),
            at: later(),
        }))
        .then_expect_error(UserError::EmailUnchanged { email: email() });
}

#[test]
fn the_placeholder_domain_of_erased_people_cannot_be_taken() {
    // A live account at an erased person's placeholder would collide with
    // that person's erasure in the read model.
    let placeholder = Email::parse(&format!("erased-{}@erased.invalid", other_user_id())).unwrap();
    Given::with(())
        .given_no_previous_events()
        .when(UserCommand::RegisterUser(RegisterUser {
            email: placeholder.clone(),
            ..register_cmd()
        }))
        .then_expect_error(UserError::EmailReserved);
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::ChangeEmail(ChangeEmail {
            email: placeholder,
            at: later(),
        }))
        .then_expect_error(UserError::EmailReserved);
}

#[test]
fn a_phone_is_verified() {
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::VerifyPhone { at: at() })
        .then_expect_events(vec![phone_verified()]);
}

#[test]
fn verifying_without_a_phone_is_refused() {
    Given::with(())
        .given(vec![registered_without_phone()])
        .when(UserCommand::VerifyPhone { at: at() })
        .then_expect_error(UserError::NoPhone { user_id: user_id() });
}

#[test]
fn verifying_a_verified_phone_is_refused() {
    Given::with(())
        .given(vec![registered(), phone_verified()])
        .when(UserCommand::VerifyPhone { at: at() })
        .then_expect_error(UserError::PhoneAlreadyVerified { phone: phone() });
}

// ---- password and login -------------------------------------------------------

#[test]
fn a_password_change_replaces_the_hash() {
    let event = UserEvent::UserPasswordChanged {
        user_id: user_id(),
        password_hash: new_hash(),
        at: later(),
    };
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::ChangePassword {
            password_hash: new_hash(),
            at: later(),
        })
        .then_expect_events(vec![event.clone()]);
    assert_eq!(
        state(vec![registered(), event]).password_hash(),
        Some(&new_hash())
    );
}

#[test]
fn an_active_user_logs_in() {
    let ip = ip();
    let event = UserEvent::UserLoggedIn {
        user_id: user_id(),
        at: later(),
        ip_address: Some(ip),
        user_agent: Some("Mozilla/5.0".into()),
    };
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::RecordLogin {
            at: later(),
            ip_address: Some(ip),
            user_agent: Some(" Mozilla/5.0 ".into()),
        })
        .then_expect_events(vec![event.clone()]);
    assert_eq!(
        state(vec![registered(), event]).last_login_at(),
        Some(later())
    );
}

#[test]
fn a_blank_user_agent_is_recorded_as_absent() {
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::RecordLogin {
            at: later(),
            ip_address: None,
            user_agent: Some("  ".into()),
        })
        .then_expect_events(vec![UserEvent::UserLoggedIn {
            user_id: user_id(),
            at: later(),
            ip_address: None,
            user_agent: None,
        }]);
}

#[test]
fn a_suspended_user_cannot_log_in() {
    Given::with(())
        .given(history_in(UserStatus::Suspended))
        .when(UserCommand::RecordLogin {
            at: later(),
            ip_address: None,
            user_agent: None,
        })
        .then_expect_error(UserError::Suspended { user_id: user_id() });
}

#[test]
fn an_inactive_user_cannot_log_in() {
    Given::with(())
        .given(history_in(UserStatus::Inactive))
        .when(UserCommand::RecordLogin {
            at: later(),
            ip_address: None,
            user_agent: None,
        })
        .then_expect_error(UserError::Inactive { user_id: user_id() });
}

// ---- what order notifications may use --------------------------------------

#[test]
fn a_buyers_notification_channels_follow_their_opt_outs_and_their_phone() {
    use crate::notification::triggers::recipient_preferences;
    use crate::notification::RecipientPreferences;

    let opted_out_of_sms = UserEvent::UserProfileUpdated {
        user_id: user_id(),
        first_name: name("Somchai"),
        last_name: name("Jaidee"),
        phone: Some(phone()),
        phone_verified: false,
        date_of_birth: None,
        gender: None,
        avatar_url: None,
        bio: None,
        preferences: json!({"notifications": {"email": true, "sms": false}}),
        settings: json!({}),
        at: later(),
    };
    assert_eq!(
        recipient_preferences(&state(vec![registered(), opted_out_of_sms])),
        Some(RecipientPreferences {
            user_id: user_id(),
            email_opt_in: true,
            push_opt_in: true,
            sms_opt_in: false,
            has_phone: true,
        }),
        "a channel never mentioned stays on"
    );
    assert_eq!(
        recipient_preferences(&state(vec![registered_without_phone()])).map(|p| p.has_phone),
        Some(false)
    );
    assert_eq!(recipient_preferences(&User::default()), None);
}
