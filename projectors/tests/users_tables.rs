//! The users tables (`users`, `user_profiles`, `user_addresses`) against
//! real PostgreSQL, fed directly (no Kafka) with user events sealed as the
//! command API seals them: the seed's columns and defaults, every account
//! change, the single default address, redelivery, an email handed over
//! between two people, and erasure, live and replayed.

mod support;

use domain::user::{
    erased_value, Address, AddressType, Gender, PasswordHash, SuspensionReason, UserEvent,
    UserRole, UserStatus,
};
use domain::values::{PostalAddressInput, Url};
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use infrastructure::personal_data::is_sealed;
use projectors::projections::users_tables::{self, UsersTables};
use projectors::runtime::Projection;
use serde_json::{json, Value};
use support::adapters::{adapter_named, rebuilt_from_scratch};
use support::users::*;
use support::*;
use uuid::Uuid;

fn projection(h: &Harness) -> UsersTables {
    UsersTables::new(h.db.pool.clone(), Upcasters::default(), h.personal())
}

/// The user events recorded so far, in log order.
async fn user_events(h: &Harness) -> Vec<RecordedEvent> {
    h.recorded()
        .await
        .into_iter()
        .filter(|e| e.aggregate_type == "user")
        .collect()
}

/// Applies `events` as one batch, which must dead-letter nothing.
async fn apply(projection: &UsersTables, events: &[RecordedEvent]) {
    let letters = projection.apply(events).await.unwrap();
    assert!(letters.is_empty(), "dead letters: {letters:?}");
}

/// The events of `user` after `version`.
async fn events_of(h: &Harness, user: Uuid, after: i64) -> Vec<RecordedEvent> {
    user_events(h)
        .await
        .into_iter()
        .filter(|e| e.aggregate_id == user.to_string() && e.version > after)
        .collect()
}

async fn row(h: &Harness, table: &str, column: &str, id: Uuid) -> Option<Value> {
    sqlx::query_scalar(&format!(
        "SELECT to_jsonb(t) FROM read_model.{table} t WHERE {column} = $1"
    ))
    .bind(id)
    .fetch_optional(&h.db.pool)
    .await
    .unwrap()
}

async fn user_row(h: &Harness, id: Uuid) -> Value {
    row(h, "users", "id", id).await.expect("a users row")
}

/// `timestamptz` as `to_jsonb` writes it.
fn ts(minutes: i64) -> Value {
    json!(at(minutes).format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
}

/// The user's addresses: (id, street, is_default, updated_at), by street.
async fn addresses(h: &Harness, user: Uuid) -> Vec<(Uuid, String, bool, Value)> {
    let rows: Vec<(Uuid, String, bool, Value)> = sqlx::query_as(
        "SELECT id, street_address_1, is_default, to_jsonb(updated_at) FROM read_model.user_addresses \
         WHERE user_id = $1 ORDER BY street_address_1",
    )
    .bind(user)
    .fetch_all(&h.db.pool)
    .await
    .unwrap();
    rows
}

async fn count(h: &Harness, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&h.db.pool).await.unwrap()
}

#[tokio::test]
async fn a_registration_opens_the_sealed_fields_and_writes_the_seeds_defaults() {
    let h = harness().await;
    let tables = projection(&h);
    tables.reset().await.unwrap();
    let user = Uuid::now_v7();
    h.append_user(
        user,
        0,
        &[registered(
            user,
            "Somchai@Example.com",
            Some("+66 81 234 5678"),
            0,
        )],
    )
    .await;

    let events = user_events(&h).await;
    let body = &events[0].payload["UserRegistered"];
    for field in [
        "email",
        "password_hash",
        "first_name",
        "last_name",
        "phone",
        "date_of_birth",
        "gender",
    ] {
        assert!(
            body[field].as_str().is_some_and(is_sealed),
            "{field} is sealed in the log"
        );
    }
    apply(&tables, &events).await;

    assert_eq!(
        user_row(&h, user).await,
        json!({
            "id": user,
            "email": "somchai@example.com",
            "password_hash": PASSWORD_HASH,
            "first_name": "Somchai",
            "last_name": "Jaidee",
            "phone": "+66812345678",
            "date_of_birth": "1990-04-13",
            "gender": "male",
            "status": "active",
            "email_verified": false,
            "phone_verified": false,
            "created_at": ts(0),
            "updated_at": ts(0),
            "last_login_at": null,
        })
    );
    assert_eq!(
        row(&h, "user_profiles", "user_id", user).await,
        Some(json!({
            "id": user,
            "user_id": user,
            "avatar_url": null,
            "bio": null,
            "preferences": {},
            "settings": {},
            "created_at": ts(0),
            "updated_at": ts(0),
        }))
    );
    assert!(addresses(&h, user).await.is_empty());
    let version: i64 = sqlx::query_scalar(
        "SELECT version FROM read_model.projected_versions WHERE projection = $1 AND aggregate_id = $2",
    )
    .bind(users_tables::NAME)
    .bind(user.to_string())
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(version, 1);
}

#[tokio::test]
async fn profile_email_verification_login_and_status_changes_reach_the_rows() {
    let h = harness().await;
    let tables = projection(&h);
    tables.reset().await.unwrap();
    let user = Uuid::now_v7();
    h.append_user(
        user,
        0,
        &[registered(
            user,
            "somchai@example.com",
            Some("+66812345678"),
            0,
        )],
    )
    .await;
    apply(&tables, &user_events(&h).await).await;

    // The profile: the users columns and the profile row.
    h.append_user(
        user,
        1,
        &[profile_updated(user, "Somsak", Some("+66899998888"), 1)],
    )
    .await;
    apply(&tables, &events_of(&h, user, 1).await).await;
    let account = user_row(&h, user).await;
    assert_eq!(account["first_name"], "Somsak");
    assert_eq!(account["phone"], "+66899998888");
    assert_eq!(account["phone_verified"], false);
    assert_eq!(account["updated_at"], ts(1));
    assert_eq!(account["created_at"], ts(0));
    let profile = row(&h, "user_profiles", "user_id", user).await.unwrap();
    assert_eq!(
        profile["avatar_url"],
        "https://cdn.example.com/a/somchai.png"
    );
    assert_eq!(profile["bio"], "Coffee and phones");
    assert_eq!(
        profile["preferences"],
        json!({"notifications": {"email": false}})
    );
    assert_eq!(profile["settings"], json!({"language": "th"}));
    assert_eq!(profile["created_at"], ts(0));
    assert_eq!(profile["updated_at"], ts(1));

    // Email, verification, password, login.
    let new_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdHNhbHQ$bmV3aGFzaG5ld2hhc2g";
    h.append_user(
        user,
        2,
        &[
            UserEvent::UserEmailVerified {
                user_id: user,
                email: email("somchai@example.com"),
                at: at(2),
            },
            UserEvent::UserEmailChanged {
                user_id: user,
                previous_email: email("somchai@example.com"),
                email: email("somchai.j@example.com"),
                email_verified: false,
                at: at(3),
            },
        ],
    )
    .await;
    apply(&tables, &events_of(&h, user, 2).await[..1]).await;
    assert_eq!(user_row(&h, user).await["email_verified"], true);
    apply(&tables, &events_of(&h, user, 3).await).await;
    let account = user_row(&h, user).await;
    assert_eq!(account["email"], "somchai.j@example.com");
    assert_eq!(
        account["email_verified"], false,
        "a new address is proven again"
    );
    assert_eq!(account["updated_at"], ts(3));

    h.append_user(
        user,
        4,
        &[
            UserEvent::UserEmailVerified {
                user_id: user,
                email: email("somchai.j@example.com"),
                at: at(4),
            },
            UserEvent::UserPhoneVerified {
                user_id: user,
                phone: phone("+66899998888"),
                at: at(5),
            },
            UserEvent::UserPasswordChanged {
                user_id: user,
                password_hash: PasswordHash::parse(new_hash).unwrap(),
                at: at(6),
            },
            UserEvent::UserLoggedIn {
                user_id: user,
                at: at(7),
                ip_address: Some("203.0.113.9".parse().unwrap()),
                user_agent: Some("Mozilla/5.0".into()),
            },
        ],
    )
    .await;
    apply(&tables, &events_of(&h, user, 4).await).await;
    let account = user_row(&h, user).await;
    assert_eq!(account["email_verified"], true);
    assert_eq!(account["phone_verified"], true);
    assert_eq!(account["phone"], "+66899998888");
    assert_eq!(account["password_hash"], new_hash);
    assert_eq!(account["last_login_at"], ts(7));
    assert_eq!(account["updated_at"], ts(7));

    // Status moves; a role change has no column to write.
    let status_events = [
        UserEvent::UserSuspended {
            user_id: user,
            reason: SuspensionReason::parse("chargebacks").unwrap(),
            previous_status: UserStatus::Active,
            status: UserStatus::Suspended,
            at: at(8),
        },
        UserEvent::UserReactivated {
            user_id: user,
            previous_status: UserStatus::Suspended,
            status: UserStatus::Active,
            at: at(9),
        },
        UserEvent::UserDeactivated {
            user_id: user,
            previous_status: UserStatus::Active,
            status: UserStatus::Inactive,
            at: at(10),
        },
    ];
    for (n, (event, status)) in status_events
        .into_iter()
        .zip(["suspended", "active", "inactive"])
        .enumerate()
    {
        let version = 8 + n as i64;
        h.append_user(user, version, &[event]).await;
        apply(&tables, &events_of(&h, user, version).await).await;
        let account = user_row(&h, user).await;
        assert_eq!(account["status"], status);
        assert_eq!(account["updated_at"], ts(8 + n as i64));
    }
    let before = user_row(&h, user).await;
    h.append_user(
        user,
        11,
        &[UserEvent::UserRoleChanged {
            user_id: user,
            previous_role: UserRole::Customer,
            role: UserRole::Admin,
            at: at(11),
        }],
    )
    .await;
    apply(&tables, &events_of(&h, user, 11).await).await;
    assert_eq!(user_row(&h, user).await, before, "no role column");
}

#[tokio::test]
async fn the_address_book_keeps_exactly_one_default() {
    let h = harness().await;
    let tables = projection(&h);
    tables.reset().await.unwrap();
    let user = Uuid::now_v7();
    let (home, work, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    h.append_user(
        user,
        0,
        &[
            registered(user, "somchai@example.com", None, 0),
            address_added(user, home, postal("Somchai", "1 Home Rd"), true, 1),
            address_added(user, work, postal("Somchai", "2 Work Rd"), false, 2),
        ],
    )
    .await;
    apply(&tables, &user_events(&h).await).await;
    assert_eq!(
        addresses(&h, user).await,
        vec![
            (home, "1 Home Rd".into(), true, ts(1)),
            (work, "2 Work Rd".into(), false, ts(2))
        ]
    );
    let stored = row(&h, "user_addresses", "id", work).await.unwrap();
    assert_eq!(
        stored,
        json!({
            "id": work,
            "user_id": user,
            "type": "home",
            "first_name": "Somchai",
            "last_name": "Jaidee",
            "company": null,
            "street_address_1": "2 Work Rd",
            "street_address_2": "Soi 7",
            "city": "Bangkok",
            "state_province": "Bangkok",
            "postal_code": "10110",
            "country": "TH",
            "phone": "+66812223333",
            "is_default": false,
            "created_at": ts(2),
            "updated_at": ts(2),
        })
    );

    // The default moves; the edit of the old default keeps it off.
    let work_address = Address::new(
        AddressType::Work,
        PostalAddressInput {
            first_name: "Somchai".into(),
            last_name: "Jaidee".into(),
            company: Some("Acme".into()),
            street_address_1: "2 Work Rd".into(),
            street_address_2: None,
            city: "Nonthaburi".into(),
            state_province: "Nonthaburi".into(),
            postal_code: "11000".into(),
            country: None,
            phone: None,
        },
    )
    .unwrap();
    h.append_user(
        user,
        3,
        &[
            UserEvent::UserDefaultAddressSet {
                user_id: user,
                address_id: work,
                previous_default_address_id: Some(home),
                at: at(3),
            },
            UserEvent::UserAddressUpdated {
                user_id: user,
                address_id: work,
                address: work_address,
                is_default: true,
                at: at(4),
            },
            address_added(user, other, postal("Somchai", "3 Other Rd"), false, 5),
        ],
    )
    .await;
    apply(&tables, &events_of(&h, user, 3).await).await;
    assert_eq!(
        addresses(&h, user).await,
        vec![
            (home, "1 Home Rd".into(), false, ts(3)),
            (work, "2 Work Rd".into(), true, ts(4)),
            (other, "3 Other Rd".into(), false, ts(5)),
        ]
    );
    let edited = row(&h, "user_addresses", "id", work).await.unwrap();
    assert_eq!(edited["type"], "work");
    assert_eq!(edited["company"], "Acme");
    assert_eq!(edited["city"], "Nonthaburi");
    assert_eq!(edited["street_address_2"], Value::Null);
    assert_eq!(edited["created_at"], ts(2));

    // Removing the default promotes the one the event names.
    h.append_user(
        user,
        6,
        &[UserEvent::UserAddressRemoved {
            user_id: user,
            address_id: work,
            was_default: true,
            new_default_address_id: Some(other),
            at: at(6),
        }],
    )
    .await;
    apply(&tables, &events_of(&h, user, 6).await).await;
    assert_eq!(
        addresses(&h, user).await,
        vec![
            (home, "1 Home Rd".into(), false, ts(3)),
            (other, "3 Other Rd".into(), true, ts(6))
        ]
    );

    h.append_user(
        user,
        7,
        &[
            UserEvent::UserAddressRemoved {
                user_id: user,
                address_id: home,
                was_default: false,
                new_default_address_id: Some(other),
                at: at(7),
            },
            UserEvent::UserAddressRemoved {
                user_id: user,
                address_id: other,
                was_default: true,
                new_default_address_id: None,
                at: at(8),
            },
        ],
    )
    .await;
    apply(&tables, &events_of(&h, user, 7).await[..1]).await;
    assert_eq!(
        addresses(&h, user).await,
        vec![(other, "3 Other Rd".into(), true, ts(6))],
        "a removal that leaves the default alone does not touch it"
    );
    apply(&tables, &events_of(&h, user, 8).await).await;
    assert!(addresses(&h, user).await.is_empty());
}

#[tokio::test]
async fn a_redelivered_batch_or_an_older_part_of_it_changes_nothing() {
    let h = harness().await;
    let adapter = adapter_named(&h, users_tables::NAME).await;
    let tables = adapter.projection();
    tables.reset().await.unwrap();
    let users = h.seed_users(3).await;
    h.append_user(
        users[1],
        3,
        &[
            address_added(
                users[1],
                Uuid::now_v7(),
                postal("Somchai", "5 Second Rd"),
                true,
                3,
            ),
            profile_updated(users[1], "Somsri", None, 4),
        ],
    )
    .await;
    let events = user_events(&h).await;
    assert!(tables.apply(&events).await.unwrap().is_empty());
    let applied = adapter.snapshot().await;

    assert!(tables.apply(&events).await.unwrap().is_empty());
    assert!(tables
        .apply(&events[..events.len() / 2])
        .await
        .unwrap()
        .is_empty());
    for event in events.iter().rev() {
        assert!(tables
            .apply(std::slice::from_ref(event))
            .await
            .unwrap()
            .is_empty());
    }
    assert_eq!(
        adapter.snapshot().await,
        applied,
        "redelivery changes nothing"
    );
    assert_eq!(rebuilt_from_scratch(&h, adapter.as_ref()).await, applied);
}

/// Everything that identifies the person erased in
/// `erasure_leaves_placeholders_and_a_rebuild_holds_nothing_of_the_person`.
const CLEAR: &[&str] = &[
    "kanokwan",
    "Kanokwan",
    "Srisuk",
    "+66811112222",
    "+66822223333",
    "1985-02-03",
    "77 Ratchada",
    "88 Rama 9",
    "Lat Phrao",
    "female",
    "a2Fub2t3YW4",
    "Tea and cats",
];

const KANOKWAN_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$a2Fub2t3YW4$ZXJhc2VkLWluLXRlc3Q";

fn kanokwan_address(street: &str) -> Address {
    Address::new(
        AddressType::Home,
        PostalAddressInput {
            first_name: "Kanokwan".into(),
            last_name: "Srisuk".into(),
            company: None,
            street_address_1: street.into(),
            street_address_2: None,
            city: "Lat Phrao".into(),
            state_province: "Bangkok".into(),
            postal_code: "10900".into(),
            country: Some("TH".into()),
            phone: Some("+66811112222".into()),
        },
    )
    .unwrap()
}

/// The whole life of a person who is then erased: every event with
/// personal fields.
fn kanokwan(user: Uuid) -> Vec<UserEvent> {
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    vec![
        UserEvent::UserRegistered {
            user_id: user,
            email: email("kanokwan@example.com"),
            password_hash: PasswordHash::parse(KANOKWAN_HASH).unwrap(),
            first_name: name("Kanokwan"),
            last_name: name("Srisuk"),
            phone: Some(phone("+66811112222")),
            date_of_birth: chrono::NaiveDate::from_ymd_opt(1985, 2, 3),
            gender: Some(Gender::Female),
            status: UserStatus::Active,
            email_verified: false,
            phone_verified: false,
            at: at(0),
        },
        UserEvent::UserPhoneVerified {
            user_id: user,
            phone: phone("+66811112222"),
            at: at(1),
        },
        UserEvent::UserProfileUpdated {
            user_id: user,
            first_name: name("Kanokwan"),
            last_name: name("Srisuk"),
            phone: Some(phone("+66822223333")),
            phone_verified: false,
            date_of_birth: chrono::NaiveDate::from_ymd_opt(1985, 2, 3),
            gender: Some(Gender::Female),
            avatar_url: Some(Url::parse("https://cdn.example.com/kanokwan.png").unwrap()),
            bio: Some("Tea and cats".into()),
            preferences: json!({"notifications": {"sms": false}}),
            settings: json!({"currency": "THB"}),
            at: at(2),
        },
        UserEvent::UserPhoneVerified {
            user_id: user,
            phone: phone("+66822223333"),
            at: at(3),
        },
        UserEvent::UserEmailChanged {
            user_id: user,
            previous_email: email("kanokwan@example.com"),
            email: email("kanokwan.s@example.com"),
            email_verified: false,
            at: at(4),
        },
        UserEvent::UserEmailVerified {
            user_id: user,
            email: email("kanokwan.s@example.com"),
            at: at(5),
        },
        UserEvent::UserPasswordChanged {
            user_id: user,
            password_hash: PasswordHash::parse(KANOKWAN_HASH).unwrap(),
            at: at(6),
        },
        UserEvent::UserLoggedIn {
            user_id: user,
            at: at(7),
            ip_address: Some("198.51.100.7".parse().unwrap()),
            user_agent: Some("Kanokwan's phone".into()),
        },
        UserEvent::UserAddressAdded {
            user_id: user,
            address_id: first,
            address: kanokwan_address("77 Ratchada Rd"),
            is_default: true,
            at: at(8),
        },
        UserEvent::UserAddressAdded {
            user_id: user,
            address_id: second,
            address: kanokwan_address("88 Rama 9 Rd"),
            is_default: false,
            at: at(9),
        },
        UserEvent::UserAddressUpdated {
            user_id: user,
            address_id: second,
            address: kanokwan_address("88 Rama 9 Rd"),
            is_default: false,
            at: at(10),
        },
        UserEvent::UserDefaultAddressSet {
            user_id: user,
            address_id: second,
            previous_default_address_id: Some(first),
            at: at(11),
        },
    ]
}

fn erased(user: Uuid, when: i64) -> UserEvent {
    UserEvent::UserErased {
        user_id: user,
        previous_status: UserStatus::Active,
        status: UserStatus::Inactive,
        at: at(when),
    }
}

async fn users_dead_letters(h: &Harness) -> i64 {
    count(
        h,
        "SELECT count(*) FROM read_model.dead_letters WHERE projection = 'users-tables'",
    )
    .await
}

#[tokio::test]
async fn erasure_leaves_placeholders_and_a_rebuild_holds_nothing_of_the_person() {
    let h = harness().await;
    let adapter = adapter_named(&h, users_tables::NAME).await;
    let tables = adapter.projection();
    tables.reset().await.unwrap();
    let bystanders = h.seed_users(2).await;
    let user = Uuid::now_v7();
    let life = kanokwan(user);
    h.append_user(user, 0, &life).await;
    // Live: applied while the person's key still opens their values.
    assert!(tables
        .apply(&user_events(&h).await)
        .await
        .unwrap()
        .is_empty());
    let before = adapter.snapshot().await.to_string();
    assert!(before.contains("kanokwan.s@example.com") && before.contains("Tea and cats"));

    // The erasure: the key destroyed, then the event, as the command side does.
    assert!(h.personal().erase(user).await.unwrap());
    h.append_user(user, life.len() as i64, &[erased(user, 20)])
        .await;
    assert!(tables
        .apply(&events_of(&h, user, life.len() as i64).await)
        .await
        .unwrap()
        .is_empty());

    let account = user_row(&h, user).await;
    assert_eq!(
        account,
        json!({
            "id": user,
            "email": format!("erased-{user}@erased.invalid"),
            "password_hash": erased_value("UserRegistered", "password_hash", user),
            "first_name": null,
            "last_name": null,
            "phone": null,
            "date_of_birth": null,
            "gender": null,
            "status": "inactive",
            "email_verified": false,
            "phone_verified": false,
            "created_at": ts(0),
            "updated_at": ts(20),
            "last_login_at": ts(7),
        })
    );
    assert_eq!(row(&h, "user_profiles", "user_id", user).await, None);
    assert!(addresses(&h, user).await.is_empty());
    for bystander in &bystanders {
        assert_eq!(user_row(&h, *bystander).await["status"], "active");
        assert_eq!(addresses(&h, *bystander).await.len(), 1);
    }
    let live = adapter.snapshot().await;

    // A replay opens the person's events to the domain's placeholders.
    let rebuilt = rebuilt_from_scratch(&h, adapter.as_ref()).await;
    assert_eq!(rebuilt, live, "a rebuild equals the live erased state");
    assert_eq!(users_dead_letters(&h).await, 0);
    let text = rebuilt.to_string();
    for clear in CLEAR {
        assert!(!text.contains(clear), "{clear:?} is left in {text}");
    }
    // Nor in the projection's bookkeeping.
    let bookkeeping: String = sqlx::query_scalar(
        "SELECT coalesce(string_agg(t::text, ' '), '') FROM (\
         SELECT to_jsonb(p)::text AS t FROM read_model.parked_events p WHERE projection = 'users-tables' \
         UNION ALL SELECT to_jsonb(d)::text FROM read_model.dead_letters d WHERE projection = 'users-tables' \
         UNION ALL SELECT to_jsonb(v)::text FROM read_model.projected_versions v WHERE projection = 'users-tables') x",
    )
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    for clear in CLEAR {
        assert!(
            !bookkeeping.contains(clear),
            "{clear:?} is left in {bookkeeping}"
        );
    }
}

/// The domain's placeholder phone (`+0` and 14 digits of the id) of two
/// erased people may be the same; it never reaches the unique `phone`.
#[tokio::test]
async fn erased_people_whose_placeholder_phones_coincide_replay_without_conflict() {
    let h = harness().await;
    let adapter = adapter_named(&h, users_tables::NAME).await;
    let tables = adapter.projection();
    tables.reset().await.unwrap();
    let base = Uuid::now_v7().as_u128() / 2;
    let people = [
        Uuid::from_u128(base),
        Uuid::from_u128(base + 100_000_000_000_000),
    ];
    assert_eq!(
        erased_value("UserPhoneVerified", "phone", people[0]),
        erased_value("UserPhoneVerified", "phone", people[1]),
    );
    for (n, person) in people.iter().enumerate() {
        let number = format!("+6681000000{n}");
        h.append_user(
            *person,
            0,
            &[
                registered(
                    *person,
                    &format!("person-{n}@example.com"),
                    Some(&number),
                    0,
                ),
                UserEvent::UserPhoneVerified {
                    user_id: *person,
                    phone: phone(&number),
                    at: at(1),
                },
            ],
        )
        .await;
    }
    assert!(tables
        .apply(&user_events(&h).await)
        .await
        .unwrap()
        .is_empty());
    for person in people {
        assert!(h.personal().erase(person).await.unwrap());
        h.append_user(person, 2, &[erased(person, 5)]).await;
        assert!(tables
            .apply(&events_of(&h, person, 2).await)
            .await
            .unwrap()
            .is_empty());
    }
    let live = adapter.snapshot().await;

    assert_eq!(rebuilt_from_scratch(&h, adapter.as_ref()).await, live);
    assert_eq!(users_dead_letters(&h).await, 0);
    for person in people {
        let account = user_row(&h, person).await;
        assert_eq!(account["phone"], Value::Null);
        assert_eq!(account["phone_verified"], false);
    }
}

/// An email given up by one person and taken by another: the new holder's
/// partition may run ahead of the old holder's. The new holder's events
/// wait, sealed, for the release, then apply in order.
#[tokio::test]
async fn an_email_handed_over_waits_for_its_previous_holder() {
    let h = harness().await;
    let tables = projection(&h);
    tables.reset().await.unwrap();
    let (old, new) = (Uuid::now_v7(), Uuid::now_v7());
    h.append_user(
        old,
        0,
        &[registered(
            old,
            "shared@example.com",
            Some("+66810000001"),
            0,
        )],
    )
    .await;
    apply(&tables, &user_events(&h).await).await;
    h.append_user(
        old,
        1,
        &[UserEvent::UserEmailChanged {
            user_id: old,
            previous_email: email("shared@example.com"),
            email: email("moved@example.com"),
            email_verified: false,
            at: at(1),
        }],
    )
    .await;
    h.append_user(
        new,
        0,
        &[
            registered(new, "shared@example.com", None, 2),
            profile_updated(new, "Newcomer", None, 3),
        ],
    )
    .await;

    // The newcomer's partition first, one event per batch.
    for event in events_of(&h, new, 0).await {
        apply(&tables, std::slice::from_ref(&event)).await;
    }
    assert_eq!(row(&h, "users", "id", new).await, None, "parked");
    let parked: Vec<(String, String)> = sqlx::query_as(
        "SELECT waiting_for, envelope::text FROM read_model.parked_events \
         WHERE projection = 'users-tables' ORDER BY version",
    )
    .fetch_all(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(parked.len(), 2);
    assert_eq!(parked[0].0, format!("user_values:{old}"));
    assert_eq!(parked[1].0, format!("aggregate:{new}"));
    for (_, envelope) in &parked {
        assert!(!envelope.contains("shared@example.com"), "parked sealed");
    }

    apply(&tables, &events_of(&h, old, 1).await).await;
    let newcomer = user_row(&h, new).await;
    assert_eq!(newcomer["email"], "shared@example.com");
    assert_eq!(newcomer["first_name"], "Newcomer");
    assert_eq!(user_row(&h, old).await["email"], "moved@example.com");
    assert_eq!(
        count(&h, "SELECT count(*) FROM read_model.parked_events").await,
        0
    );
    assert_eq!(users_dead_letters(&h).await, 0);

    // A replay, in log order, needs no parking and ends the same.
    let adapter = adapter_named(&h, users_tables::NAME).await;
    let live = adapter.snapshot().await;
    assert_eq!(rebuilt_from_scratch(&h, adapter.as_ref()).await, live);
}
