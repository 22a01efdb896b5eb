//! The user's value types and the event contract.

use cqrs_es::DomainEvent;

use super::*;

#[test]
fn only_argon2id_phc_strings_are_password_hashes() {
    assert_eq!(
        hash().expose(),
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
    );
    let refused = [
        "",
        "hunter2",
        "$argon2id$",
        "$argon2i$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "$argon2d$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        " $argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFz aA",
    ];
    for raw in refused {
        assert_eq!(
            PasswordHash::parse(raw),
            Err(PasswordHashError {
                length: raw.chars().count()
            }),
            "{raw:?}"
        );
    }
    let too_long = format!("$argon2id${}", "a".repeat(246));
    assert_eq!(too_long.len(), 256);
    assert!(PasswordHash::parse(&too_long).is_err());
    assert!(PasswordHash::parse(&too_long[..255]).is_ok());
}

#[test]
fn a_password_hash_never_shows_in_debug_or_errors() {
    let shown = format!("{:?}", registered());
    assert!(!shown.contains("c2FsdHNhbHQ"), "{shown}");
    let error = PasswordHash::parse("hunter2").unwrap_err().to_string();
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn a_password_hash_payload_goes_through_the_check() {
    let json = serde_json::to_value(hash()).unwrap();
    assert_eq!(json, json!(hash().expose()));
    assert_eq!(
        serde_json::from_value::<PasswordHash>(json).unwrap(),
        hash()
    );
    assert!(serde_json::from_value::<PasswordHash>(json!("plaintext")).is_err());
}

#[test]
fn names_and_reasons_are_trimmed_and_bounded() {
    assert_eq!(PersonName::parse("  Somchai ").unwrap().as_str(), "Somchai");
    assert!(PersonName::parse(" ").is_err());
    assert!(PersonName::parse(&"ก".repeat(100)).is_ok());
    assert!(PersonName::parse(&"ก".repeat(101)).is_err());
    match PersonName::parse_field("first_name", "") {
        Err(crate::values::ValueError::Text { field, .. }) => assert_eq!(field, "first_name"),
        other => panic!("{other:?}"),
    }
    assert!(serde_json::from_value::<PersonName>(json!("")).is_err());
    assert!(SuspensionReason::parse("").is_err());
    assert!(SuspensionReason::parse(&"x".repeat(501)).is_err());
    assert_eq!(SuspensionReason::parse(" spam ").unwrap().as_str(), "spam");
}

#[test]
fn genders_are_the_seed_check_values() {
    for (gender, text) in [
        (Gender::Male, "male"),
        (Gender::Female, "female"),
        (Gender::Other, "other"),
    ] {
        assert_eq!(serde_json::to_value(gender).unwrap(), json!(text));
    }
    assert!(serde_json::from_value::<Gender>(json!("unknown")).is_err());
}

#[test]
fn opt_out_needs_an_explicit_false() {
    let preferences = json!({"notifications": {"email": true, "push": false}});
    let cases = [
        (&preferences, "email", false),
        (&preferences, "push", true),
        (&preferences, "sms", false),
    ];
    for (prefs, channel, opted_out) in cases {
        assert_eq!(
            notification_channel_opted_out(prefs, channel),
            opted_out,
            "{channel}"
        );
    }
    assert!(!notification_channel_opted_out(&json!({}), "email"));
    assert!(!notification_channel_opted_out(&json!(null), "email"));
}

#[test]
fn event_types_are_the_variant_names_at_version_1_and_round_trip() {
    let events = one_of_each_event();
    assert_eq!(events.len(), 19);
    for event in events {
        let json = serde_json::to_value(&event).unwrap();
        let tag = json.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(event.event_type(), tag);
        assert_eq!(event.event_version(), "1");
        assert_eq!(event.user_id(), user_id());
        assert_eq!(json[&tag]["user_id"], json!(user_id()));
        assert_eq!(serde_json::from_value::<UserEvent>(json).unwrap(), event);
    }
}

#[test]
fn a_registration_event_has_the_seed_shape() {
    let json = serde_json::to_value(registered()).unwrap();
    let body = &json["UserRegistered"];
    assert_eq!(body["status"], json!("active"));
    assert_eq!(body["gender"], json!("male"));
    assert_eq!(body["date_of_birth"], json!("1990-05-20"));
    assert_eq!(body["email_verified"], json!(false));
    assert_eq!(body["phone"], json!("+66812345678"));
}

#[test]
fn a_user_state_survives_a_snapshot() {
    let user = state(vec![
        registered(),
        added(1, "Bangkok", true),
        suspended(),
        role_changed(UserRole::Customer, UserRole::Admin),
    ]);
    let snapshot = serde_json::to_value(&user).unwrap();
    assert_eq!(serde_json::from_value::<User>(snapshot).unwrap(), user);
}

#[test]
fn a_snapshot_from_before_roles_and_erasure_loads_as_a_live_customer() {
    let user = state(vec![registered()]);
    let mut snapshot = serde_json::to_value(&user).unwrap();
    let fields = snapshot.as_object_mut().unwrap();
    assert!(fields.remove("role").is_some() && fields.remove("erased").is_some());
    let loaded = serde_json::from_value::<User>(snapshot).unwrap();
    assert_eq!(loaded.role(), UserRole::Customer);
    assert!(!loaded.is_erased());
    assert_eq!(loaded, user);
}
