//! Given/when/then tests for the user aggregate and its decisions, split by
//! concern; shared fixtures live here.

mod account;
mod addresses;
mod codes;
mod decisions;
mod erasure;
mod password;
mod personal;
mod roles;
mod status;
mod values;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::values::{BlindIndex, Email, Phone, PostalAddressInput, Url};

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

/// A stand-in for the command side's keyed digest: any 64 hex characters do,
/// the domain never computes one.
fn index(fill: char) -> BlindIndex {
    BlindIndex::parse(&fill.to_string().repeat(64)).unwrap()
}

fn email_index() -> BlindIndex {
    index('e')
}

fn new_email_index() -> BlindIndex {
    index('f')
}

fn phone_index() -> BlindIndex {
    index('a')
}

fn other_phone_index() -> BlindIndex {
    index('b')
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

/// The code every fixture issues, and the digest the tests treat as its own.
fn code() -> OneTimeCode {
    OneTimeCode::parse("48213907").unwrap()
}

fn code_hash() -> BlindIndex {
    index('c')
}

fn wrong_code_hash() -> BlindIndex {
    index('d')
}

/// Issued at `at()`, valid until `expires_at`.
fn issued_code_until(expires_at: DateTime<Utc>) -> IssuedCode {
    IssuedCode {
        code: code(),
        code_hash: code_hash(),
        expires_at,
    }
}

fn issued_code() -> IssuedCode {
    issued_code_until(later())
}

fn verification_requested(expires_at: DateTime<Utc>) -> UserEvent {
    UserEvent::UserEmailVerificationRequested {
        user_id: user_id(),
        email: email(),
        code: code(),
        code_hash: code_hash(),
        expires_at,
        at: at(),
    }
}

fn reset_requested(expires_at: DateTime<Utc>) -> UserEvent {
    UserEvent::UserPasswordResetRequested {
        user_id: user_id(),
        email: email(),
        code: code(),
        code_hash: code_hash(),
        expires_at,
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

fn ip() -> std::net::IpAddr {
    "192.168.1.1".parse().unwrap()
}

fn avatar() -> Url {
    Url::parse("https://cdn.example.com/u/1.jpg").unwrap()
}

fn role_changed(previous_role: UserRole, role: UserRole) -> UserEvent {
    UserEvent::UserRoleChanged {
        user_id: user_id(),
        previous_role,
        role,
        at: later(),
    }
}

fn erased(previous_status: UserStatus) -> UserEvent {
    UserEvent::UserErased {
        user_id: user_id(),
        previous_status,
        status: UserStatus::Inactive,
        at: later(),
    }
}

/// Every command but registration, each valid on a registered user, so that
/// a refusal can only come from the state of the stream.
fn every_command_but_registration() -> Vec<UserCommand> {
    vec![
        UserCommand::UpdateProfile(profile_cmd()),
        UserCommand::ChangeEmail(ChangeEmail {
            email: new_email(),
            at: at(),
        }),
        UserCommand::RequestEmailVerification {
            code: issued_code(),
            at: at(),
        },
        UserCommand::VerifyEmail {
            code_hash: code_hash(),
            at: at(),
        },
        UserCommand::RequestPasswordReset {
            code: issued_code(),
            at: at(),
        },
        UserCommand::ResetPassword {
            code_hash: code_hash(),
            password_hash: new_hash(),
            at: at(),
        },
        UserCommand::VerifyPhone { at: at() },
        UserCommand::ChangePassword {
            password_hash: new_hash(),
            at: at(),
        },
        UserCommand::RecordLogin {
            at: at(),
            ip_address: None,
            user_agent: None,
        },
        UserCommand::SuspendUser {
            reason: SuspensionReason::parse("spam").unwrap(),
            at: at(),
        },
        UserCommand::ReactivateUser { at: at() },
        UserCommand::DeactivateUser { at: at() },
        UserCommand::AddAddress {
            address_id: addr_id(1),
            address: address("Bangkok"),
            at: at(),
        },
        UserCommand::UpdateAddress {
            address_id: addr_id(1),
            address: address("Bangkok"),
            at: at(),
        },
        UserCommand::RemoveAddress {
            address_id: addr_id(1),
            at: at(),
        },
        UserCommand::SetDefaultAddress {
            address_id: addr_id(1),
            at: at(),
        },
        UserCommand::ChangeRole {
            role: UserRole::Admin,
            at: at(),
        },
        UserCommand::EraseUser { at: at() },
    ]
}

/// One event of every variant, each holding every personal value it can
/// (the fixture's email, names, phone, street, IP and user agent), so that
/// the event contract and the erasure tests see every field filled.
fn one_of_each_event() -> Vec<UserEvent> {
    vec![
        registered(),
        UserEvent::UserProfileUpdated {
            user_id: user_id(),
            first_name: name("Somchai"),
            last_name: name("Jaidee"),
            phone: Some(phone()),
            phone_verified: false,
            date_of_birth: Some(dob()),
            gender: Some(Gender::Male),
            avatar_url: Some(avatar()),
            bio: Some("Somchai from Sukhumvit".into()),
            preferences: json!({"notifications": {"sms": false}}),
            settings: json!({"theme": "dark"}),
            at: at(),
        },
        UserEvent::UserEmailChanged {
            user_id: user_id(),
            previous_email: email(),
            email: new_email(),
            email_verified: false,
            at: at(),
        },
        email_verified(),
        verification_requested(later()),
        reset_requested(later()),
        UserEvent::UserPasswordReset {
            user_id: user_id(),
            password_hash: new_hash(),
            at: at(),
        },
        phone_verified(),
        UserEvent::UserPasswordChanged {
            user_id: user_id(),
            password_hash: new_hash(),
            at: at(),
        },
        UserEvent::UserLoggedIn {
            user_id: user_id(),
            at: at(),
            ip_address: Some(ip()),
            user_agent: Some("Mozilla/5.0".into()),
        },
        suspended(),
        UserEvent::UserReactivated {
            user_id: user_id(),
            previous_status: UserStatus::Suspended,
            status: UserStatus::Active,
            at: at(),
        },
        deactivated(),
        added(1, "Bangkok", true),
        UserEvent::UserAddressUpdated {
            user_id: user_id(),
            address_id: addr_id(1),
            address: address("Nonthaburi"),
            is_default: true,
            at: at(),
        },
        UserEvent::UserAddressRemoved {
            user_id: user_id(),
            address_id: addr_id(1),
            was_default: true,
            new_default_address_id: None,
            at: at(),
        },
        UserEvent::UserDefaultAddressSet {
            user_id: user_id(),
            address_id: addr_id(1),
            previous_default_address_id: None,
            at: at(),
        },
        role_changed(UserRole::Customer, UserRole::Admin),
        erased(UserStatus::Active),
    ]
}
