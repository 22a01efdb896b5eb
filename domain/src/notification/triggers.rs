//! The process manager's inputs: which order and payment facts call for a
//! notification, and with what. Guest orders (no user) notify no one here.

use uuid::Uuid;

use super::{NotificationTrigger, RecipientPreferences};
use crate::order::{Order, OrderEvent};
use crate::payment::PaymentEvent;
use crate::user::User;
use crate::values::OrderNumber;

/// Who an order's notifications go to, from the loaded order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecipient {
    pub order_id: Uuid,
    pub order_number: OrderNumber,
    pub user_id: Uuid,
}

impl OrderRecipient {
    /// `None` for an order never placed, or placed by a guest.
    pub fn of(order: &Order) -> Option<Self> {
        Some(Self {
            order_id: order.order_id()?,
            order_number: order.order_number()?.clone(),
            user_id: order.user_id()?,
        })
    }
}

/// What a buyer allows, from their account: the channels their preferences
/// opt out of, and whether they have a phone for sms. `None` for a user
/// never registered.
pub fn recipient_preferences(user: &User) -> Option<RecipientPreferences> {
    Some(RecipientPreferences {
        user_id: user.id()?,
        email_opt_in: !user.channel_opted_out("email"),
        push_opt_in: !user.channel_opted_out("push"),
        sms_opt_in: !user.channel_opted_out("sms"),
        has_phone: user.phone().is_some(),
    })
}

/// The order a payment event notifies about: a completed payment and a
/// completed refund do; nothing else a payment records does.
pub fn notified_order_of_payment(event: &PaymentEvent) -> Option<Uuid> {
    match event {
        PaymentEvent::PaymentCompleted { order_id, .. }
        | PaymentEvent::RefundCompleted { order_id, .. } => Some(*order_id),
        _ => None,
    }
}

/// The notification an order event calls for: confirmed, shipped (with its
/// tracking number), delivered and cancelled orders notify their buyer.
pub fn trigger_for_order_event(
    event: &OrderEvent,
    recipient: &OrderRecipient,
) -> Option<NotificationTrigger> {
    let OrderRecipient {
        order_id,
        order_number,
        user_id,
    } = recipient.clone();
    match event {
        OrderEvent::OrderConfirmed { .. } => Some(NotificationTrigger::OrderConfirmed {
            order_id,
            order_number,
            user_id,
        }),
        OrderEvent::OrderShipped {
            tracking_number, ..
        } => Some(NotificationTrigger::OrderShipped {
            order_id,
            order_number,
            user_id,
            tracking_number: Some(tracking_number.as_str().to_owned()),
        }),
        OrderEvent::OrderDelivered { .. } => Some(NotificationTrigger::OrderDelivered {
            order_id,
            order_number,
            user_id,
        }),
        OrderEvent::OrderCancelled { reason, .. } => Some(NotificationTrigger::OrderCancelled {
            order_id,
            order_number,
            user_id,
            reason: Some(reason.as_str().to_owned()),
        }),
        OrderEvent::OrderPlaced { .. }
        | OrderEvent::OrderProcessingStarted { .. }
        | OrderEvent::OrderRefunded { .. }
        | OrderEvent::OrderPaymentStatusChanged { .. }
        | OrderEvent::OrderAdminNoteAdded { .. } => None,
    }
}

/// The notification a payment event calls for: a completed payment and a
/// completed refund notify the order's buyer, with the amount.
pub fn trigger_for_payment_event(
    event: &PaymentEvent,
    recipient: &OrderRecipient,
) -> Option<NotificationTrigger> {
    let OrderRecipient {
        order_id,
        order_number,
        user_id,
    } = recipient.clone();
    match event {
        PaymentEvent::PaymentCompleted {
            amount, currency, ..
        } => Some(NotificationTrigger::PaymentReceived {
            order_id,
            order_number,
            user_id,
            amount: *amount,
            currency: currency.clone(),
        }),
        PaymentEvent::RefundCompleted {
            amount, currency, ..
        } => Some(NotificationTrigger::RefundCompleted {
            order_id,
            order_number,
            user_id,
            amount: *amount,
            currency: currency.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use cqrs_es::test::TestFramework;
    use rust_decimal::Decimal;
    use serde_json::json;

    use super::*;
    use crate::notification::{
        notifications_for, ChannelOutcome, Notification, NotificationEvent, NotificationType,
        RecipientPreferences,
    };
    use crate::order::order::TrackingNumber;
    use crate::order::{OrderNote, OrderStatus};
    use crate::payment::{OrderPaymentStatus, PaymentStatus};
    use crate::values::{Currency, Money};

    fn recipient() -> OrderRecipient {
        OrderRecipient {
            order_id: Uuid::from_u128(1),
            order_number: OrderNumber::allocate(2024, 1).unwrap(),
            user_id: Uuid::from_u128(2),
        }
    }

    fn preferences(sms_opt_in: bool) -> RecipientPreferences {
        RecipientPreferences {
            user_id: Uuid::from_u128(2),
            email_opt_in: true,
            push_opt_in: true,
            sms_opt_in,
            has_phone: true,
        }
    }

    /// Runs the trigger through the process manager and the notification
    /// aggregate, as the command side will.
    fn notify(trigger: &NotificationTrigger, sms_opt_in: bool) -> NotificationEvent {
        let at = Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap();
        let command = notifications_for(trigger, &preferences(sms_opt_in), Uuid::from_u128(3), at)
            .expect("the buyer is the recipient");
        let mut events = TestFramework::<Notification>::with(())
            .given_no_previous_events()
            .when(command)
            .inspect_result()
            .expect("a notification is created");
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn a_shipped_order_notifies_its_buyer_with_the_tracking_number() {
        let shipped = OrderEvent::OrderShipped {
            order_id: Uuid::from_u128(1),
            previous_status: OrderStatus::Processing,
            status: OrderStatus::Shipped,
            tracking_number: TrackingNumber::parse("TH123456789").unwrap(),
            shipped_at: Utc::now(),
        };
        let trigger = trigger_for_order_event(&shipped, &recipient()).unwrap();
        let NotificationEvent::NotificationCreated {
            notification_type,
            data,
            channels,
            message,
            ..
        } = notify(&trigger, false)
        else {
            panic!("expected a created notification")
        };
        assert_eq!(notification_type, NotificationType::OrderShipped);
        assert_eq!(data["trackingNumber"], json!("TH123456789"));
        assert!(message.contains("ORD-2024-000001"), "{message}");
        assert!(matches!(channels.email, ChannelOutcome::Sent { .. }));
        assert!(
            matches!(channels.sms, ChannelOutcome::Skipped { .. }),
            "the buyer opted out of sms"
        );
    }

    #[test]
    fn confirmed_delivered_and_cancelled_orders_notify_and_other_steps_do_not() {
        let at = Utc::now();
        let (id, status) = (Uuid::from_u128(1), OrderStatus::Confirmed);
        let cases = [
            (
                OrderEvent::OrderConfirmed {
                    order_id: id,
                    previous_status: OrderStatus::Pending,
                    status,
                    at,
                },
                Some(NotificationType::OrderConfirmed),
            ),
            (
                OrderEvent::OrderDelivered {
                    order_id: id,
                    previous_status: OrderStatus::Shipped,
                    status: OrderStatus::Delivered,
                    delivered_at: at,
                },
                Some(NotificationType::OrderDelivered),
            ),
            (
                OrderEvent::OrderCancelled {
                    order_id: id,
                    previous_status: OrderStatus::Pending,
                    status: OrderStatus::Cancelled,
                    reason: OrderNote::parse("changed my mind").unwrap(),
                    refund_requested: None,
                    at,
                },
                Some(NotificationType::OrderCancelled),
            ),
            (
                OrderEvent::OrderProcessingStarted {
                    order_id: id,
                    previous_status: OrderStatus::Confirmed,
                    status: OrderStatus::Processing,
                    at,
                },
                None,
            ),
        ];
        for (event, expected) in cases {
            let made = trigger_for_order_event(&event, &recipient()).map(|trigger| {
                match notify(&trigger, true) {
                    NotificationEvent::NotificationCreated {
                        notification_type, ..
                    } => notification_type,
                    other => panic!("unexpected {other:?}"),
                }
            });
            assert_eq!(made, expected, "{event:?}");
        }
    }

    #[test]
    fn a_completed_payment_notifies_payment_received_with_the_amount() {
        let completed = PaymentEvent::PaymentCompleted {
            payment_id: Uuid::from_u128(9),
            order_id: Uuid::from_u128(1),
            amount: Money::new(Decimal::new(7682600, 2)).unwrap(),
            currency: Currency::thb(),
            provider_transaction_id: "ch_1".into(),
            provider_response: json!({}),
            previous_status: PaymentStatus::Processing,
            status: PaymentStatus::Completed,
            order_payment_status: OrderPaymentStatus::Paid,
            processed_at: Utc::now(),
        };
        let trigger = trigger_for_payment_event(&completed, &recipient()).unwrap();
        assert!(matches!(
            trigger,
            NotificationTrigger::PaymentReceived { ref amount, .. } if amount.amount() == Decimal::new(7682600, 2)
        ));
        assert!(matches!(
            notify(&trigger, true),
            NotificationEvent::NotificationCreated {
                notification_type: NotificationType::PaymentReceived,
                ..
            }
        ));
    }

    #[test]
    fn only_completed_payments_and_refunds_name_an_order_to_notify() {
        let (payment_id, order_id) = (Uuid::from_u128(9), Uuid::from_u128(1));
        let amount = Money::new(Decimal::new(7682600, 2)).unwrap();
        let completed = PaymentEvent::PaymentCompleted {
            payment_id,
            order_id,
            amount,
            currency: Currency::thb(),
            provider_transaction_id: "ch_1".into(),
            provider_response: json!({}),
            previous_status: PaymentStatus::Processing,
            status: PaymentStatus::Completed,
            order_payment_status: OrderPaymentStatus::Paid,
            processed_at: Utc::now(),
        };
        let failed = PaymentEvent::PaymentFailed {
            payment_id,
            order_id,
            amount,
            currency: Currency::thb(),
            provider_transaction_id: "ch_1".into(),
            provider_response: json!({}),
            previous_status: PaymentStatus::Processing,
            status: PaymentStatus::Failed,
            order_payment_status: OrderPaymentStatus::Failed,
            processed_at: Utc::now(),
        };
        assert_eq!(notified_order_of_payment(&completed), Some(order_id));
        assert_eq!(notified_order_of_payment(&failed), None);
    }

    #[test]
    fn a_guest_order_has_no_recipient() {
        assert_eq!(OrderRecipient::of(&Order::default()), None);
    }
}
