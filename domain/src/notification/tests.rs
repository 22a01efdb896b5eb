use super::*;
use chrono::TimeZone;
use cqrs_es::test::TestFramework;
use rust_decimal_macros::dec;

type Given = TestFramework<Notification>;

const NOTIFICATION: Uuid = Uuid::from_u128(0x1);
const USER: Uuid = Uuid::from_u128(0x2);
const STRANGER: Uuid = Uuid::from_u128(0x3);
const ORDER: Uuid = Uuid::from_u128(0x4);

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap()
}

fn later() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, 11, 0, 0).unwrap()
}

fn number() -> OrderNumber {
    OrderNumber::allocate(2024, 1).unwrap()
}

fn everything_allowed() -> RecipientPreferences {
    RecipientPreferences {
        user_id: USER,
        email_opt_in: true,
        push_opt_in: true,
        sms_opt_in: true,
        has_phone: true,
    }
}

/// The seed's example recipient: email and push, no sms.
fn seed_recipient() -> RecipientPreferences {
    RecipientPreferences {
        sms_opt_in: false,
        ..everything_allowed()
    }
}

fn shipped() -> NotificationTrigger {
    NotificationTrigger::OrderShipped {
        order_id: ORDER,
        order_number: number(),
        user_id: USER,
        tracking_number: Some("TH123456789".into()),
    }
}

fn sent() -> ChannelOutcome {
    ChannelOutcome::Sent { sent_at: at() }
}

fn skipped(reason: SkipReason) -> ChannelOutcome {
    ChannelOutcome::Skipped { reason }
}

fn create_shipped() -> NotificationCommand {
    notifications_for(&shipped(), &seed_recipient(), NOTIFICATION, at()).unwrap()
}

fn created_shipped() -> NotificationEvent {
    NotificationEvent::NotificationCreated {
        notification_id: NOTIFICATION,
        user_id: USER,
        notification_type: NotificationType::OrderShipped,
        title: "Your order has been shipped!".into(),
        message: "Your order #ORD-2024-000001 is on its way.".into(),
        data: json!({
            "orderId": ORDER,
            "orderNumber": "ORD-2024-000001",
            "trackingNumber": "TH123456789"
        }),
        channels: NotificationChannels {
            email: sent(),
            push: sent(),
            sms: skipped(SkipReason::UserOptedOut),
        },
        read: false,
        created_at: at(),
    }
}

fn read_by(user_id: Uuid) -> NotificationCommand {
    NotificationCommand::MarkNotificationRead {
        user_id,
        at: later(),
    }
}

// ---- the process manager ---------------------------------------------------

#[test]
fn the_seed_shipping_notification_is_produced() {
    assert_eq!(
        notifications_for(&shipped(), &seed_recipient(), NOTIFICATION, at()),
        Some(NotificationCommand::CreateNotification {
            notification_id: NOTIFICATION,
            user_id: USER,
            notification_type: NotificationType::OrderShipped,
            title: "Your order has been shipped!".into(),
            message: "Your order #ORD-2024-000001 is on its way.".into(),
            data: json!({
                "orderId": ORDER,
                "orderNumber": "ORD-2024-000001",
                "trackingNumber": "TH123456789"
            }),
            channels: NotificationChannels {
                email: sent(),
                push: sent(),
                sms: skipped(SkipReason::UserOptedOut),
            },
            at: at(),
        })
    );
}

#[test]
fn every_trigger_has_its_type_title_message_and_data() {
    let amount = Money::new(dec!(35900)).unwrap();
    let thb = Currency::thb();
    let n = number();
    let cases = [
        (
            NotificationTrigger::OrderConfirmed {
                order_id: ORDER,
                order_number: n.clone(),
                user_id: USER,
            },
            NotificationType::OrderConfirmed,
            "Your order has been confirmed!",
            "Your order #ORD-2024-000001 has been confirmed.",
            json!({"orderId": ORDER, "orderNumber": "ORD-2024-000001"}),
        ),
        (
            NotificationTrigger::PaymentReceived {
                order_id: ORDER,
                order_number: n.clone(),
                user_id: USER,
                amount,
                currency: thb.clone(),
            },
            NotificationType::PaymentReceived,
            "Payment received",
            "We received your payment of 35900.00 THB for order #ORD-2024-000001.",
            json!({"orderId": ORDER, "orderNumber": "ORD-2024-000001", "amount": "35900.00", "currency": "THB"}),
        ),
        (
            NotificationTrigger::OrderShipped {
                order_id: ORDER,
                order_number: n.clone(),
                user_id: USER,
                tracking_number: None,
            },
            NotificationType::OrderShipped,
            "Your order has been shipped!",
            "Your order #ORD-2024-000001 is on its way.",
            json!({"orderId": ORDER, "orderNumber": "ORD-2024-000001"}),
        ),
        (
            NotificationTrigger::OrderDelivered {
                order_id: ORDER,
                order_number: n.clone(),
                user_id: USER,
            },
            NotificationType::OrderDelivered,
            "Your order has been delivered!",
            "Your order #ORD-2024-000001 has been delivered.",
            json!({"orderId": ORDER, "orderNumber": "ORD-2024-000001"}),
        ),
        (
            NotificationTrigger::OrderCancelled {
                order_id: ORDER,
                order_number: n.clone(),
                user_id: USER,
                reason: Some(" Out of stock ".into()),
            },
            NotificationType::OrderCancelled,
            "Your order has been cancelled",
            "Your order #ORD-2024-000001 has been cancelled: Out of stock",
            json!({"orderId": ORDER, "orderNumber": "ORD-2024-000001", "reason": "Out of stock"}),
        ),
        (
            NotificationTrigger::OrderCancelled {
                order_id: ORDER,
                order_number: n.clone(),
                user_id: USER,
                reason: Some("  ".into()),
            },
            NotificationType::OrderCancelled,
            "Your order has been cancelled",
            "Your order #ORD-2024-000001 has been cancelled.",
            json!({"orderId": ORDER, "orderNumber": "ORD-2024-000001"}),
        ),
        (
            NotificationTrigger::RefundCompleted {
                order_id: ORDER,
                order_number: n,
                user_id: USER,
                amount,
                currency: thb,
            },
            NotificationType::RefundCompleted,
            "Your refund has been completed",
            "A refund of 35900.00 THB for order #ORD-2024-000001 has been completed.",
            json!({"orderId": ORDER, "orderNumber": "ORD-2024-000001", "amount": "35900.00", "currency": "THB"}),
        ),
    ];
    for (trigger, expected_type, expected_title, expected_message, expected_data) in cases {
        let Some(NotificationCommand::CreateNotification {
            notification_type,
            title,
            message,
            data,
            user_id,
            ..
        }) = notifications_for(&trigger, &everything_allowed(), NOTIFICATION, at())
        else {
            panic!("no notification for {trigger:?}");
        };
        assert_eq!(
            (
                notification_type,
                title.as_str(),
                message.as_str(),
                &data,
                user_id
            ),
            (
                expected_type,
                expected_title,
                expected_message,
                &expected_data,
                USER
            ),
            "{trigger:?}"
        );
    }
}

#[test]
fn channels_follow_opt_ins_and_sms_needs_a_phone() {
    for bits in 0..16u8 {
        let recipient = RecipientPreferences {
            user_id: USER,
            email_opt_in: bits & 1 != 0,
            push_opt_in: bits & 2 != 0,
            sms_opt_in: bits & 4 != 0,
            has_phone: bits & 8 != 0,
        };
        let by = |opt_in: bool| {
            if opt_in {
                sent()
            } else {
                skipped(SkipReason::UserOptedOut)
            }
        };
        let sms = match (recipient.sms_opt_in, recipient.has_phone) {
            (false, _) => skipped(SkipReason::UserOptedOut),
            (true, false) => skipped(SkipReason::NoPhoneNumber),
            (true, true) => sent(),
        };
        let Some(NotificationCommand::CreateNotification { channels, .. }) =
            notifications_for(&shipped(), &recipient, NOTIFICATION, at())
        else {
            panic!("{recipient:?}")
        };
        assert_eq!(
            channels,
            NotificationChannels {
                email: by(recipient.email_opt_in),
                push: by(recipient.push_opt_in),
                sms,
            },
            "{recipient:?}"
        );
    }
}

#[test]
fn someone_elses_milestone_produces_nothing() {
    let stranger = RecipientPreferences {
        user_id: STRANGER,
        ..everything_allowed()
    };
    assert_eq!(
        notifications_for(&shipped(), &stranger, NOTIFICATION, at()),
        None
    );
}

// ---- the aggregate ---------------------------------------------------------

#[test]
fn a_notification_is_created_unread_with_its_channel_outcomes() {
    Given::with(())
        .given_no_previous_events()
        .when(create_shipped())
        .then_expect_events(vec![created_shipped()]);
}

#[test]
fn creating_the_same_notification_again_changes_nothing() {
    let redelivered = notifications_for(&shipped(), &seed_recipient(), NOTIFICATION, later());
    Given::with(())
        .given(vec![created_shipped()])
        .when(redelivered.unwrap())
        .then_expect_events(vec![]);
}

#[test]
fn a_notification_id_cannot_be_reused_for_other_content() {
    let other = NotificationTrigger::OrderDelivered {
        order_id: ORDER,
        order_number: number(),
        user_id: USER,
    };
    Given::with(())
        .given(vec![created_shipped()])
        .when(notifications_for(&other, &seed_recipient(), NOTIFICATION, at()).unwrap())
        .then_expect_error(NotificationError::AlreadyCreated {
            notification_id: NOTIFICATION,
        });
}

#[test]
fn the_recipient_marks_it_read() {
    Given::with(())
        .given(vec![created_shipped()])
        .when(read_by(USER))
        .then_expect_events(vec![NotificationEvent::NotificationRead {
            notification_id: NOTIFICATION,
            user_id: USER,
            read: true,
            read_at: later(),
        }]);
}

#[test]
fn reading_twice_changes_nothing() {
    Given::with(())
        .given(vec![
            created_shipped(),
            NotificationEvent::NotificationRead {
                notification_id: NOTIFICATION,
                user_id: USER,
                read: true,
                read_at: at(),
            },
        ])
        .when(read_by(USER))
        .then_expect_events(vec![]);
}

#[test]
fn only_the_recipient_marks_it_read() {
    for given in [
        vec![created_shipped()],
        vec![
            created_shipped(),
            NotificationEvent::NotificationRead {
                notification_id: NOTIFICATION,
                user_id: USER,
                read: true,
                read_at: at(),
            },
        ],
    ] {
        Given::with(())
            .given(given)
            .when(read_by(STRANGER))
            .then_expect_error(NotificationError::NotRecipient { user_id: STRANGER });
    }
}

#[test]
fn an_unknown_notification_cannot_be_read() {
    Given::with(())
        .given_no_previous_events()
        .when(read_by(USER))
        .then_expect_error(NotificationError::NotFound);
}

// ---- serialization ---------------------------------------------------------

#[test]
fn channels_serialize_to_the_seed_shape() {
    let channels = NotificationChannels {
        email: sent(),
        push: sent(),
        sms: skipped(SkipReason::UserOptedOut),
    };
    let value = serde_json::to_value(channels).unwrap();
    assert_eq!(
        value,
        json!({
            "email": {"sent": true, "sentAt": "2024-01-15T10:30:00Z"},
            "push": {"sent": true, "sentAt": "2024-01-15T10:30:00Z"},
            "sms": {"sent": false, "reason": "User opted out"}
        })
    );
    assert_eq!(
        serde_json::from_value::<NotificationChannels>(value).unwrap(),
        channels
    );
    assert_eq!(
        serde_json::to_value(skipped(SkipReason::NoPhoneNumber)).unwrap(),
        json!({"sent": false, "reason": "No phone number"})
    );
}

#[test]
fn inconsistent_channel_records_are_refused() {
    for bad in [
        json!({"sent": true}),
        json!({"sent": false}),
        json!({"sent": true, "sentAt": "2024-01-15T10:30:00Z", "reason": "User opted out"}),
        json!({"sent": false, "sentAt": "2024-01-15T10:30:00Z"}),
        json!({"sent": false, "reason": "Because"}),
    ] {
        assert!(
            serde_json::from_value::<ChannelOutcome>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn types_serialize_as_the_seed_values() {
    let types = [
        NotificationType::OrderConfirmed,
        NotificationType::PaymentReceived,
        NotificationType::OrderShipped,
        NotificationType::OrderDelivered,
        NotificationType::OrderCancelled,
        NotificationType::RefundCompleted,
    ]
    .map(|t| serde_json::to_value(t).unwrap());
    assert_eq!(
        types,
        [
            json!("order_confirmed"),
            json!("payment_received"),
            json!("order_shipped"),
            json!("order_delivered"),
            json!("order_cancelled"),
            json!("refund_completed")
        ]
    );
}

#[test]
fn events_round_trip_and_name_themselves_by_variant() {
    let events = vec![
        created_shipped(),
        NotificationEvent::NotificationRead {
            notification_id: NOTIFICATION,
            user_id: USER,
            read: true,
            read_at: later(),
        },
    ];
    for (event, name) in events
        .into_iter()
        .zip(["NotificationCreated", "NotificationRead"])
    {
        assert_eq!(event.event_type(), name);
        assert_eq!(event.event_version(), "1");
        let value = serde_json::to_value(&event).unwrap();
        assert!(value.get(name).is_some(), "{value}");
        assert_eq!(
            serde_json::from_value::<NotificationEvent>(value).unwrap(),
            event
        );
    }
}
