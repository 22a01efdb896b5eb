//! The account messages: what a user's request for a one-time code is told,
//! as the notification the `notifications` collection records and the email
//! that carries the code. Unlike order milestones they go by email only and
//! whatever the preferences say: they are how the person gets into their
//! account, and nobody opts out of that.
//!
//! The recorded notification never holds the code or the address (the
//! collection is readable by the client and outlives the code); only the
//! email does.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{
    ChannelOutcome, NotificationChannels, NotificationCommand, NotificationType, SkipReason,
};
use crate::user::{OneTimeCode, UserEvent};
use crate::values::Email;

/// The seed's `channels.email.reason` when a code's time ran out before it
/// could be sent (a worker that was down, a replay of old requests).
pub const EXPIRED_BEFORE_DELIVERY: &str = "Code expired before delivery";

/// One email to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingEmail {
    pub to: Email,
    pub subject: String,
    pub text: String,
}

/// A notification to record and the email to deliver for it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountMessage {
    pub notification_id: Uuid,
    pub user_id: Uuid,
    pub notification_type: NotificationType,
    pub title: String,
    pub message: String,
    /// Seed-shaped (camelCase keys), free of the code and the address.
    pub data: serde_json::Value,
    pub email: OutgoingEmail,
    /// After this the code is useless, and sending it only misleads.
    pub expires_at: DateTime<Utc>,
    pub requested_at: DateTime<Utc>,
}

/// The process manager for account messages: the message `event` calls for,
/// under `notification_id` (derived by the caller from the event, so that a
/// redelivery maps to the same notification). `None` for every event that
/// asks for no message.
pub fn account_message_for(event: &UserEvent, notification_id: Uuid) -> Option<AccountMessage> {
    let (notification_type, user_id, email, code, expires_at, at) = match event {
        UserEvent::UserEmailVerificationRequested {
            user_id,
            email,
            code,
            expires_at,
            at,
            ..
        } => (
            NotificationType::EmailVerification,
            user_id,
            email,
            code,
            expires_at,
            at,
        ),
        UserEvent::UserPasswordResetRequested {
            user_id,
            email,
            code,
            expires_at,
            at,
            ..
        } => (
            NotificationType::PasswordReset,
            user_id,
            email,
            code,
            expires_at,
            at,
        ),
        _ => return None,
    };
    let until = expires_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let (title, message, subject, text) = match notification_type {
        NotificationType::EmailVerification => (
            "Verify your email address",
            format!(
                "We sent a verification code to your email address. It is valid until {until}."
            ),
            "Your verification code",
            verification_text(code, &until),
        ),
        _ => (
            "Reset your password",
            format!(
                "We sent a password reset code to your email address. It is valid until {until}."
            ),
            "Your password reset code",
            reset_text(code, &until),
        ),
    };
    Some(AccountMessage {
        notification_id,
        user_id: *user_id,
        notification_type,
        title: title.to_owned(),
        message,
        data: json!({ "expiresAt": until }),
        email: OutgoingEmail {
            to: email.clone(),
            subject: subject.to_owned(),
            text,
        },
        expires_at: *expires_at,
        requested_at: *at,
    })
}

impl AccountMessage {
    /// The notification kept on its own stream, so that its recipient can
    /// mark it read like any other: by email only, and without the code or
    /// the address.
    pub fn notification(&self) -> NotificationCommand {
        let email_only = ChannelOutcome::Skipped {
            reason: SkipReason::EmailOnly,
        };
        NotificationCommand::CreateNotification {
            notification_id: self.notification_id,
            user_id: self.user_id,
            notification_type: self.notification_type,
            title: self.title.clone(),
            message: self.message.clone(),
            data: self.data.clone(),
            channels: NotificationChannels {
                email: ChannelOutcome::Sent {
                    sent_at: self.requested_at,
                },
                push: email_only,
                sms: email_only,
            },
            at: self.requested_at,
        }
    }
}

fn verification_text(code: &OneTimeCode, until: &str) -> String {
    format!(
        "Your verification code is {}.\n\n\
         Enter it in the shop to confirm that this address is yours. \
         It is valid until {until} and works once.\n\n\
         If you did not ask for it, ignore this email.\n",
        code.as_str()
    )
}

fn reset_text(code: &OneTimeCode, until: &str) -> String {
    format!(
        "Your password reset code is {}.\n\n\
         Enter it with your new password to set it. \
         It is valid until {until} and works once.\n\n\
         If you did not ask for a new password, ignore this email: \
         your password stays as it is.\n",
        code.as_str()
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::user::PasswordHash;
    use crate::values::BlindIndex;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap()
    }

    fn expires() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 15, 10, 45, 0).unwrap()
    }

    fn requested(reset: bool) -> UserEvent {
        let user_id = Uuid::from_u128(7);
        let email = Email::parse("somchai@example.com").unwrap();
        let code = OneTimeCode::parse("48213907").unwrap();
        let code_hash = BlindIndex::parse(&"c".repeat(64)).unwrap();
        if reset {
            UserEvent::UserPasswordResetRequested {
                user_id,
                email,
                code,
                code_hash,
                expires_at: expires(),
                at: at(),
            }
        } else {
            UserEvent::UserEmailVerificationRequested {
                user_id,
                email,
                code,
                code_hash,
                expires_at: expires(),
                at: at(),
            }
        }
    }

    #[test]
    fn a_code_request_becomes_an_email_with_the_code_and_a_notification_without() {
        for (reset, kind) in [
            (false, NotificationType::EmailVerification),
            (true, NotificationType::PasswordReset),
        ] {
            let id = Uuid::from_u128(99);
            let message = account_message_for(&requested(reset), id).unwrap();
            assert_eq!(message.notification_id, id);
            assert_eq!(message.user_id, Uuid::from_u128(7));
            assert_eq!(message.notification_type, kind);
            assert_eq!(message.email.to.as_str(), "somchai@example.com");
            assert!(message.email.text.contains("48213907"));
            assert!(message.email.text.contains("2024-01-15T10:45:00Z"));
            assert_eq!(message.expires_at, expires());
            let recorded = format!("{} {} {}", message.title, message.message, message.data);
            assert!(!recorded.contains("48213907"), "{recorded}");
            assert!(!recorded.contains("somchai"), "{recorded}");
            assert_eq!(message.data, json!({"expiresAt": "2024-01-15T10:45:00Z"}));
        }
    }

    #[test]
    fn an_account_message_is_kept_as_an_email_only_notification_without_the_code() {
        let message = account_message_for(&requested(false), Uuid::from_u128(99)).unwrap();
        let NotificationCommand::CreateNotification {
            notification_id,
            user_id,
            notification_type,
            title,
            message: text,
            data,
            channels,
            at: created_at,
        } = message.notification()
        else {
            panic!("a create")
        };
        assert_eq!(
            (notification_id, user_id, notification_type),
            (
                Uuid::from_u128(99),
                Uuid::from_u128(7),
                NotificationType::EmailVerification
            )
        );
        assert_eq!(created_at, at());
        assert!(matches!(channels.email, ChannelOutcome::Sent { .. }));
        for skipped in [channels.push, channels.sms] {
            assert_eq!(
                skipped,
                ChannelOutcome::Skipped {
                    reason: SkipReason::EmailOnly
                }
            );
        }
        let kept = format!("{title} {text} {data}");
        assert!(
            !kept.contains("48213907") && !kept.contains("somchai"),
            "{kept}"
        );
    }

    #[test]
    fn other_events_ask_for_no_message() {
        let event = UserEvent::UserPasswordReset {
            user_id: Uuid::from_u128(7),
            password_hash: PasswordHash::parse("$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA").unwrap(),
            at: at(),
        };
        assert_eq!(account_message_for(&event, Uuid::from_u128(1)), None);
    }
}
