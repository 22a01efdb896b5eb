//! The fields that identify a person, and the placeholders an erased
//! person's events read with: every event must still decode, and nothing
//! personal may be left in the clear.

use cqrs_es::DomainEvent;
use serde_json::Value;

use super::*;

/// Every clear personal value the fixture puts into `one_of_each_event()`,
/// lower-cased (the check is case-insensitive).
fn clear_values() -> Vec<String> {
    [
        email().as_str(),
        new_email().as_str(),
        "somchai",
        "jaidee",
        phone().as_str(),
        "sukhumvit",
        "nonthaburi",
        "1990-05-20",
        "192.168.1.1",
        "mozilla",
        avatar().as_str(),
        hash().expose(),
        code().as_str(),
        new_hash().expose(),
    ]
    .into_iter()
    .map(str::to_lowercase)
    .collect()
}

/// The body of a serialized event: the object under its variant name.
fn body(json: &mut Value) -> &mut serde_json::Map<String, Value> {
    let (_, body) = json.as_object_mut().unwrap().iter_mut().next().unwrap();
    body.as_object_mut().unwrap()
}

/// `event` as it reads once its person's key is destroyed.
fn erased_json(event: &UserEvent) -> Value {
    let mut json = serde_json::to_value(event).unwrap();
    let event_type = event.event_type();
    for field in personal_fields(&event_type) {
        body(&mut json).insert(
            (*field).to_owned(),
            erased_value(&event_type, field, event.user_id()),
        );
    }
    json
}

#[test]
fn every_personal_field_is_a_field_of_its_event() {
    for event in one_of_each_event() {
        let event_type = event.event_type();
        let mut json = serde_json::to_value(&event).unwrap();
        let body = body(&mut json);
        for field in personal_fields(&event_type) {
            assert!(body.contains_key(*field), "{event_type} has no {field}");
        }
    }
}

#[test]
fn an_erased_event_still_decodes() {
    for event in one_of_each_event() {
        let json = erased_json(&event);
        let decoded = serde_json::from_value::<UserEvent>(json.clone())
            .unwrap_or_else(|e| panic!("{} does not decode: {e}\n{json}", event.event_type()));
        assert_eq!(decoded.event_type(), event.event_type());
        assert_eq!(decoded.user_id(), event.user_id());
        assert_eq!(decoded.at(), event.at());
    }
}

#[test]
fn no_clear_personal_value_is_left_after_erasure() {
    let fixture = serde_json::to_string(&one_of_each_event())
        .unwrap()
        .to_lowercase();
    for clear in clear_values() {
        // The fixture must hold every value, or its absence below proves nothing.
        assert!(fixture.contains(&clear), "the fixture lacks {clear}");
    }
    for event in one_of_each_event() {
        let shown = erased_json(&event).to_string().to_lowercase();
        for clear in clear_values() {
            assert!(!shown.contains(&clear), "{clear} left in {shown}");
        }
    }
}

#[test]
fn events_without_personal_data_list_no_field() {
    for event_type in [
        "UserSuspended",
        "UserReactivated",
        "UserDeactivated",
        "UserAddressRemoved",
        "UserDefaultAddressSet",
        "UserRoleChanged",
        "UserErased",
        "NoSuchEvent",
    ] {
        assert_eq!(personal_fields(event_type), &[] as &[&str], "{event_type}");
    }
    assert_eq!(
        personal_fields("UserEmailChanged"),
        &["previous_email", "email"]
    );
    assert_eq!(
        personal_fields("UserLoggedIn"),
        &["ip_address", "user_agent"]
    );
}

#[test]
fn optional_fields_read_as_absent() {
    let cases = [
        ("UserRegistered", "phone"),
        ("UserRegistered", "date_of_birth"),
        ("UserRegistered", "gender"),
        ("UserProfileUpdated", "phone"),
        ("UserProfileUpdated", "avatar_url"),
        ("UserProfileUpdated", "bio"),
        ("UserLoggedIn", "ip_address"),
        ("UserLoggedIn", "user_agent"),
    ];
    for (event_type, field) in cases {
        assert_eq!(
            erased_value(event_type, field, user_id()),
            Value::Null,
            "{event_type}.{field}"
        );
    }
}

#[test]
fn placeholders_parse_and_the_email_and_phone_differ_per_person() {
    let of = |event_type: &str, field: &str, id: Uuid| {
        erased_value(event_type, field, id)
            .as_str()
            .unwrap()
            .to_owned()
    };
    let email = of("UserRegistered", "email", user_id());
    assert_eq!(email, format!("erased-{}@erased.invalid", user_id()));
    assert_eq!(Email::parse(&email).unwrap().as_str(), email);
    assert_ne!(email, of("UserRegistered", "email", other_user_id()));
    for (event_type, field) in [
        ("UserEmailChanged", "email"),
        ("UserEmailChanged", "previous_email"),
        ("UserEmailVerified", "email"),
        ("UserEmailVerificationRequested", "email"),
        ("UserPasswordResetRequested", "email"),
    ] {
        assert_eq!(of(event_type, field, user_id()), email);
    }

    let phone = of("UserPhoneVerified", "phone", user_id());
    assert_eq!(Phone::parse(&phone).unwrap().as_str(), phone);
    assert!(phone.starts_with("+0"), "{phone}");
    assert_ne!(phone, of("UserPhoneVerified", "phone", other_user_id()));

    for event_type in ["UserRegistered", "UserProfileUpdated"] {
        for field in ["first_name", "last_name"] {
            assert_eq!(of(event_type, field, user_id()), "Erased");
        }
    }
    for event_type in [
        "UserEmailVerificationRequested",
        "UserPasswordResetRequested",
    ] {
        let code = of(event_type, "code", user_id());
        assert!(OneTimeCode::parse(&code).is_ok(), "{code}");
    }
    for event_type in ["UserRegistered", "UserPasswordChanged", "UserPasswordReset"] {
        let hash = of(event_type, "password_hash", user_id());
        assert!(PasswordHash::parse(&hash).is_ok(), "{hash}");
    }

    for event_type in ["UserAddressAdded", "UserAddressUpdated"] {
        let address: Address =
            serde_json::from_value(erased_value(event_type, "address", user_id())).unwrap();
        let postal = address.postal();
        assert_eq!(postal.street_address_1, "Erased");
        assert_eq!(postal.country.as_str(), "TH");
        assert_eq!(postal.phone, None);
    }
}
