//! Given/when/then tests for the user aggregate and its decisions, split by
//! concern; shared fixtures live here.

mod account;
mod addresses;
mod decisions;
mod status;
mod values;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::values::{Email, Phone, PostalAddressInput};

type Given = TestFramework<User>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap()
}

fn later() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 2, 1, 8, 0, 0).unwrap()
}

fn user_id() -> Uuid {
    Uuid::from_u128(0x1001)
}

fn other_user_id() -> Uuid {
    Uuid::from_u128(0x2002)
}

fn email() -> Email {
    Email::parse("somchai@example.com").unwrap()
}

fn new_email() -> Email {
    Email::parse("somchai.j@example.co.th").unwrap()
}

fn phone() -> Phone {
    Phone::parse("+66812345678").unwrap()
}

fn other_phone() -> Phone {
    Phone::parse("+66899999999").unwrap()
}

fn hash() -> PasswordHash {
    PasswordHash::parse("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo").unwrap()
}

fn new_hash() -> PasswordHash {
    PasswordHash::parse("$argon2id$v=19$m=65536,t=3,p=4$bmV3c2FsdA$bmV3aGFzaA").unwrap()
}

fn name(raw: &str) -> PersonName {
    PersonName::parse(raw).unwrap()
}

fn dob() -> NaiveDate {
    NaiveDate::from_ymd_opt(1990, 5, 20).unwrap()
}

fn register_cmd() -> RegisterUser {
    RegisterUser {
        user_id: user_id(),
        email: email(),
        password_hash: hash(),
        first_name: name("Somchai"),
        last_name: name("Jaidee"),
        phone: Some(phone()),
        date_of_birth: Some(dob()),
        gender: Some(Gender::Male),
        at: at(),
    }
}

fn registered() -> UserEvent {
    UserEvent::UserRegistered {
        user_id: user_id(),
        email: email(),
        password_hash: hash(),
        first_name: name("Somchai"),
        last_name: name("Jaidee"),
        phone: Some(phone()),
        date_of_birth: Some(dob()),
        gender: Some(Gender::Male),
        status: UserStatus::Active,
        email_verified: false,
        phone_verified: false,
        at: at(),
    }
}

fn registered_without_phone() -> UserEvent {
    match registered() {
        UserEvent::UserRegistered {
            user_id,
            email,
            password_hash,
            first_name,
            last_name,
            date_of_birth,
            gender,
            status,
            email_verified,
            phone_verified,
            at,
            ..
        } => UserEvent::UserRegistered {
            user_id,
            email,
            password_hash,
            first_name,
            last_name,
            phone: None,
            date_of_birth,
            gender,
            status,
            email_verified,
            phone_verified,
            at,
        },
        _ => unreachable!(),
    }
}

fn phone_verified() -> UserEvent {
    UserEvent::UserPhoneVerified {
        user_id: user_id(),
        phone: phone(),
        at: at(),
    }
}

fn email_verified() -> UserEvent {
    UserEvent::UserEmailVerified {
        user_id: user_id(),
        email: email(),
        at: at(),
    }
}

fn suspended() -> UserEvent {
    UserEvent::UserSuspended {
        user_id: user_id(),
        reason: SuspensionReason::parse("chargeback fraud").unwrap(),
        previous_status: UserStatus::Active,
        status: UserStatus::Suspended,
        at: at(),
    }
}

fn deactivated() -> UserEvent {
    UserEvent::UserDeactivated {
        user_id: user_id(),
        previous_status: UserStatus::Active,
        status: UserStatus::Inactive,
        at: at(),
    }
}

/// The events that leave a registered user in `status`.
fn history_in(status: UserStatus) -> Vec<UserEvent> {
    match status {
        UserStatus::Active => vec![registered()],
        UserStatus::Suspended => vec![registered(), suspended()],
        UserStatus::Inactive => vec![registered(), deactivated()],
    }
}

/// The profile exactly as `registered()` left it, ready to be tweaked.
fn profile_cmd() -> UpdateProfile {
    UpdateProfile {
        first_name: name("Somchai"),
        last_name: name("Jaidee"),
        phone: Some(phone()),
        date_of_birth: Some(dob()),
        gender: Some(Gender::Male),
        avatar_url: None,
        bio: None,
        preferences: json!({}),
        settings: json!({}),
        at: later(),
    }
}

fn draft(city: &str) -> PostalAddressInput {
    PostalAddressInput {
        first_name: "Somchai".into(),
        last_name: "Jaidee".into(),
        company: None,
        street_address_1: "123 Sukhumvit Rd".into(),
        street_address_2: None,
        city: city.into(),
        state_province: "Bangkok".into(),
        postal_code: "10110".into(),
        country: None,
        phone: Some("+66 81-234-5678".into()),
    }
}

fn address(city: &str) -> Address {
    Address::new(AddressType::Home, draft(city)).unwrap()
}

fn addr_id(n: u128) -> Uuid {
    Uuid::from_u128(0xA000 + n)
}

fn added(n: u128, city: &str, is_default: bool) -> UserEvent {
    UserEvent::UserAddressAdded {
        user_id: user_id(),
        address_id: addr_id(n),
        address: address(city),
        is_default,
        at: at(),
    }
}

/// The state a stream reaches after `events`.
fn state(events: Vec<UserEvent>) -> User {
    let mut user = User::default();
    for event in events {
        user.apply(event);
    }
    user
}
