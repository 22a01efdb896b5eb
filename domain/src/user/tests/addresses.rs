//! The address book: the first address is the default, there is never more
//! than one default, and removing the default promotes the newest address.

use proptest::prelude::*;

use super::*;

#[test]
fn the_first_address_becomes_the_default() {
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::AddAddress {
            address_id: addr_id(1),
            address: address("Bangkok"),
            at: at(),
        })
        .then_expect_events(vec![added(1, "Bangkok", true)]);
}

#[test]
fn later_addresses_do_not_take_the_default() {
    Given::with(())
        .given(vec![registered(), added(1, "Bangkok", true)])
        .when(UserCommand::AddAddress {
            address_id: addr_id(2),
            address: address("Chiang Mai"),
            at: at(),
        })
        .then_expect_events(vec![added(2, "Chiang Mai", false)]);
}

#[test]
fn an_address_id_cannot_be_added_twice() {
    Given::with(())
        .given(vec![registered(), added(1, "Bangkok", true)])
        .when(UserCommand::AddAddress {
            address_id: addr_id(1),
            address: address("Phuket"),
            at: at(),
        })
        .then_expect_error(UserError::AddressAlreadyExists {
            address_id: addr_id(1),
        });
}

#[test]
fn an_address_is_updated_and_keeps_its_default_flag() {
    Given::with(())
        .given(vec![registered(), added(1, "Bangkok", true)])
        .when(UserCommand::UpdateAddress {
            address_id: addr_id(1),
            address: address("Nonthaburi"),
            at: later(),
        })
        .then_expect_events(vec![UserEvent::UserAddressUpdated {
            user_id: user_id(),
            address_id: addr_id(1),
            address: address("Nonthaburi"),
            is_default: true,
            at: later(),
        }]);
}

#[test]
fn updating_a_non_default_address_says_so() {
    Given::with(())
        .given(vec![
            registered(),
            added(1, "Bangkok", true),
            added(2, "Phuket", false),
        ])
        .when(UserCommand::UpdateAddress {
            address_id: addr_id(2),
            address: address("Krabi"),
            at: later(),
        })
        .then_expect_events(vec![UserEvent::UserAddressUpdated {
            user_id: user_id(),
            address_id: addr_id(2),
            address: address("Krabi"),
            is_default: false,
            at: later(),
        }]);
}

#[test]
fn an_update_that_changes_nothing_emits_nothing() {
    Given::with(())
        .given(vec![registered(), added(1, "Bangkok", true)])
        .when(UserCommand::UpdateAddress {
            address_id: addr_id(1),
            address: address("Bangkok"),
            at: later(),
        })
        .then_expect_events(vec![]);
}

#[test]
fn unknown_addresses_are_refused_by_update_remove_and_set_default() {
    let unknown = addr_id(9);
    let commands = [
        UserCommand::UpdateAddress {
            address_id: unknown,
            address: address("Bangkok"),
            at: later(),
        },
        UserCommand::RemoveAddress {
            address_id: unknown,
            at: later(),
        },
        UserCommand::SetDefaultAddress {
            address_id: unknown,
            at: later(),
        },
    ];
    for command in commands {
        Given::with(())
            .given(vec![registered(), added(1, "Bangkok", true)])
            .when(command)
            .then_expect_error(UserError::AddressNotFound {
                address_id: unknown,
            });
    }
}

#[test]
fn a_removed_address_is_unknown_afterwards() {
    Given::with(())
        .given(vec![
            registered(),
            added(1, "Bangkok", true),
            UserEvent::UserAddressRemoved {
                user_id: user_id(),
                address_id: addr_id(1),
                was_default: true,
                new_default_address_id: None,
                at: later(),
            },
        ])
        .when(UserCommand::RemoveAddress {
            address_id: addr_id(1),
            at: later(),
        })
        .then_expect_error(UserError::AddressNotFound {
            address_id: addr_id(1),
        });
}

#[test]
fn removing_a_non_default_address_keeps_the_default() {
    Given::with(())
        .given(vec![
            registered(),
            added(1, "Bangkok", true),
            added(2, "Phuket", false),
        ])
        .when(UserCommand::RemoveAddress {
            address_id: addr_id(2),
            at: later(),
        })
        .then_expect_events(vec![UserEvent::UserAddressRemoved {
            user_id: user_id(),
            address_id: addr_id(2),
            was_default: false,
            new_default_address_id: Some(addr_id(1)),
            at: later(),
        }]);
}

#[test]
fn removing_the_default_promotes_the_most_recently_added_address() {
    Given::with(())
        .given(vec![
            registered(),
            added(1, "Bangkok", true),
            added(2, "Phuket", false),
            added(3, "Krabi", false),
        ])
        .when(UserCommand::RemoveAddress {
            address_id: addr_id(1),
            at: later(),
        })
        .then_expect_events(vec![UserEvent::UserAddressRemoved {
            user_id: user_id(),
            address_id: addr_id(1),
            was_default: true,
            new_default_address_id: Some(addr_id(3)),
            at: later(),
        }]);
}

#[test]
fn removing_the_newest_default_promotes_the_one_added_before_it() {
    Given::with(())
        .given(vec![
            registered(),
            added(1, "Bangkok", true),
            added(2, "Phuket", false),
            added(3, "Krabi", false),
            UserEvent::UserDefaultAddressSet {
                user_id: user_id(),
                address_id: addr_id(3),
                previous_default_address_id: Some(addr_id(1)),
                at: at(),
            },
        ])
        .when(UserCommand::RemoveAddress {
            address_id: addr_id(3),
            at: later(),
        })
        .then_expect_events(vec![UserEvent::UserAddressRemoved {
            user_id: user_id(),
            address_id: addr_id(3),
            was_default: true,
            new_default_address_id: Some(addr_id(2)),
            at: later(),
        }]);
}

#[test]
fn removing_the_last_address_leaves_no_default() {
    let removed = UserEvent::UserAddressRemoved {
        user_id: user_id(),
        address_id: addr_id(1),
        was_default: true,
        new_default_address_id: None,
        at: later(),
    };
    Given::with(())
        .given(vec![registered(), added(1, "Bangkok", true)])
        .when(UserCommand::RemoveAddress {
            address_id: addr_id(1),
            at: later(),
        })
        .then_expect_events(vec![removed.clone()]);
    // and the next address added becomes the default again
    Given::with(())
        .given(vec![registered(), added(1, "Bangkok", true), removed])
        .when(UserCommand::AddAddress {
            address_id: addr_id(2),
            address: address("Phuket"),
            at: later(),
        })
        .then_expect_events(vec![UserEvent::UserAddressAdded {
            user_id: user_id(),
            address_id: addr_id(2),
            address: address("Phuket"),
            is_default: true,
            at: later(),
        }]);
}

#[test]
fn another_address_becomes_the_default() {
    Given::with(())
        .given(vec![
            registered(),
            added(1, "Bangkok", true),
            added(2, "Phuket", false),
        ])
        .when(UserCommand::SetDefaultAddress {
            address_id: addr_id(2),
            at: later(),
        })
        .then_expect_events(vec![UserEvent::UserDefaultAddressSet {
            user_id: user_id(),
            address_id: addr_id(2),
            previous_default_address_id: Some(addr_id(1)),
            at: later(),
        }]);
}

#[test]
fn setting_the_current_default_again_emits_nothing() {
    Given::with(())
        .given(vec![
            registered(),
            added(1, "Bangkok", true),
            added(2, "Phuket", false),
        ])
        .when(UserCommand::SetDefaultAddress {
            address_id: addr_id(1),
            at: later(),
        })
        .then_expect_events(vec![]);
}

#[test]
fn checkout_reads_addresses_and_the_default() {
    let user = state(vec![
        registered(),
        added(1, "Bangkok", true),
        added(2, "Phuket", false),
        UserEvent::UserDefaultAddressSet {
            user_id: user_id(),
            address_id: addr_id(2),
            previous_default_address_id: Some(addr_id(1)),
            at: later(),
        },
    ]);
    assert_eq!(user.address(addr_id(1)), Some(&address("Bangkok")));
    assert_eq!(user.address(addr_id(9)), None);
    assert_eq!(user.default_address_id(), Some(addr_id(2)));
    assert_eq!(user.default_address(), Some(&address("Phuket")));
    let ids: Vec<Uuid> = user.addresses().iter().map(|a| a.address_id).collect();
    assert_eq!(ids, vec![addr_id(1), addr_id(2)]);
}

// ---- address values ----------------------------------------------------------

#[test]
fn an_address_snapshot_uses_the_seed_column_names() {
    let value = serde_json::to_value(address("Bangkok")).unwrap();
    assert_eq!(
        value,
        json!({
            "type": "home",
            "first_name": "Somchai",
            "last_name": "Jaidee",
            "company": null,
            "street_address_1": "123 Sukhumvit Rd",
            "street_address_2": null,
            "city": "Bangkok",
            "state_province": "Bangkok",
            "postal_code": "10110",
            "country": "TH",
            "phone": "+66812345678"
        })
    );
    let back: Address = serde_json::from_value(value).unwrap();
    assert_eq!(back, address("Bangkok"));
}

#[test]
fn an_address_defaults_to_home_in_thailand() {
    let address: Address = serde_json::from_value(json!({
        "first_name": "A", "last_name": "B", "street_address_1": "1 Rd",
        "city": "Bangkok", "state_province": "Bangkok", "postal_code": "10110",
        "country": "TH"
    }))
    .unwrap();
    assert_eq!(address.address_type(), AddressType::Home);
    let built = Address::new(
        AddressType::Home,
        PostalAddressInput {
            country: None,
            ..draft("Bangkok")
        },
    )
    .unwrap();
    assert_eq!(built.postal().country.as_str(), "TH");
}

#[test]
fn checkout_snapshots_the_postal_part() {
    let work = Address::new(
        AddressType::Work,
        PostalAddressInput {
            first_name: "  Somchai ".into(),
            company: Some("  ".into()),
            street_address_2: Some(" Floor 12 ".into()),
            ..draft("Bangkok")
        },
    )
    .unwrap();
    assert_eq!(work.address_type(), AddressType::Work);
    let postal = work.clone().into_postal();
    assert_eq!(&postal, work.postal());
    assert_eq!(postal.first_name, "Somchai");
    assert_eq!(postal.company, None);
    assert_eq!(postal.street_address_2.as_deref(), Some("Floor 12"));
    assert_eq!(postal.phone, Some(phone()));
}

#[test]
fn address_fields_respect_the_seed_lengths() {
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(&str, PostalAddressInput)> = vec![
        (
            "first_name",
            PostalAddressInput {
                first_name: long(101),
                ..draft("B")
            },
        ),
        (
            "first_name",
            PostalAddressInput {
                first_name: " ".into(),
                ..draft("B")
            },
        ),
        (
            "last_name",
            PostalAddressInput {
                last_name: long(101),
                ..draft("B")
            },
        ),
        (
            "company",
            PostalAddressInput {
                company: Some(long(101)),
                ..draft("B")
            },
        ),
        (
            "street_address_1",
            PostalAddressInput {
                street_address_1: long(256),
                ..draft("B")
            },
        ),
        (
            "street_address_2",
            PostalAddressInput {
                street_address_2: Some(long(256)),
                ..draft("B")
            },
        ),
        (
            "city",
            PostalAddressInput {
                city: long(101),
                ..draft("B")
            },
        ),
        (
            "state_province",
            PostalAddressInput {
                state_province: long(101),
                ..draft("B")
            },
        ),
        (
            "postal_code",
            PostalAddressInput {
                postal_code: long(21),
                ..draft("B")
            },
        ),
    ];
    for (field, bad) in cases {
        match Address::new(AddressType::Home, bad) {
            Err(crate::values::ValueError::Text { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected a text error, got {other:?}"),
        }
    }
    let longest = PostalAddressInput {
        first_name: long(100),
        company: Some(long(100)),
        street_address_1: long(255),
        postal_code: long(20),
        ..draft("B")
    };
    assert!(Address::new(AddressType::Other, longest).is_ok());
}

#[test]
fn a_hand_built_postal_address_is_checked_again() {
    let mut postal = address("Bangkok").into_postal();
    postal.city = "x".repeat(101);
    assert!(matches!(
        Address::from_postal(AddressType::Home, postal),
        Err(crate::values::ValueError::Text { field: "city", .. })
    ));
}

#[test]
fn an_address_payload_cannot_smuggle_an_invalid_value() {
    let bad_country = json!({
        "first_name": "A", "last_name": "B", "street_address_1": "1 Rd",
        "city": "Bangkok", "state_province": "Bangkok", "postal_code": "10110",
        "country": "XX"
    });
    assert!(serde_json::from_value::<Address>(bad_country).is_err());
    let blank_city = json!({
        "first_name": "A", "last_name": "B", "street_address_1": "1 Rd",
        "city": " ", "state_province": "Bangkok", "postal_code": "10110"
    });
    assert!(serde_json::from_value::<Address>(blank_city).is_err());
    let bad_type = json!({
        "type": "office", "first_name": "A", "last_name": "B", "street_address_1": "1 Rd",
        "city": "Bangkok", "state_province": "Bangkok", "postal_code": "10110"
    });
    assert!(serde_json::from_value::<Address>(bad_type).is_err());
}

// ---- the default invariant over arbitrary histories --------------------------

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Remove(u8),
    SetDefault(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6).prop_map(Op::Add),
        (0u8..6).prop_map(Op::Remove),
        (0u8..6).prop_map(Op::SetDefault),
    ]
}

proptest! {
    #[test]
    fn there_is_exactly_one_default_whenever_there_is_an_address(ops in proptest::collection::vec(op(), 0..40)) {
        let mut user = state(vec![registered()]);
        for op in ops {
            let command = match op {
                Op::Add(n) => UserCommand::AddAddress {
                    address_id: addr_id(n.into()), address: address("Bangkok"), at: at(),
                },
                Op::Remove(n) => UserCommand::RemoveAddress { address_id: addr_id(n.into()), at: at() },
                Op::SetDefault(n) => UserCommand::SetDefaultAddress { address_id: addr_id(n.into()), at: at() },
            };
            if let Ok(events) = user.decide(command) {
                events.into_iter().for_each(|e| user.apply(e));
            }
            match user.default_address_id() {
                None => prop_assert!(user.addresses().is_empty()),
                Some(id) => prop_assert!(user.address(id).is_some()),
            }
        }
    }
}
