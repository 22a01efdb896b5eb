//! Outgoing mail: one SMTP relay, configured by URL (`smtp://host:port` in
//! the clear, as the local aiosmtpd speaks; `smtp://...?tls=required` for
//! STARTTLS and `smtps://` for implicit TLS, with credentials in the URL's
//! user info, as lettre reads it). The URL may hold a password, so it is a
//! secret: never logged, redacted in `Debug`.
//!
//! A refusal is told apart from an outage, because the caller records the
//! first and retries the second: a permanent SMTP reply (5xx) or an address
//! the relay cannot take will not change on retry; a transient reply (4xx),
//! a timeout or a refused connection may.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Clone, Deserialize)]
pub struct SmtpSettings {
    pub url: SecretString,
    /// The `From` of every message, `Name <address>` or a bare address.
    pub from: String,
    /// Bounds each SMTP command, connection included.
    pub timeout_ms: u64,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &"***")
            .field("from", &self.from)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("smtp settings are invalid: {0}")]
    Settings(String),
    /// The relay will not take this message, now or later.
    #[error("the mail was refused: {0}")]
    Refused(String),
    /// The relay could not be reached or asked to come back later.
    #[error("the mail relay is unavailable: {0}")]
    Unavailable(String),
}

/// One email, in plain text.
#[derive(Debug, Clone)]
pub struct Mail<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    /// The `Message-ID`, without angle brackets: a stable one lets the
    /// recipient's side drop a message sent twice.
    pub message_id: Option<String>,
}

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(settings: &SmtpSettings) -> Result<Self, MailError> {
        let from = settings
            .from
            .parse::<Mailbox>()
            .map_err(|e| MailError::Settings(format!("smtp.from: {e}")))?;
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.url.expose_secret())
                // lettre's message quotes the URL; say only what is wrong.
                .map_err(|_| MailError::Settings("smtp.url is not a valid SMTP URL".to_owned()))?
                .timeout(Some(Duration::from_millis(settings.timeout_ms)))
                .build();
        Ok(Self { transport, from })
    }

    /// Whether the relay answers an SMTP greeting and `NOOP` now: what tells an
    /// outage from a message the relay refuses.
    pub async fn check(&self) -> Result<(), MailError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Unavailable(
                "the relay did not answer NOOP".to_owned(),
            )),
            Err(error) => Err(MailError::Unavailable(error.to_string())),
        }
    }

    /// Sends `mail`, or says why not. An address that does not parse is a
    /// refusal: no retry will make it deliverable.
    pub async fn send(&self, mail: Mail<'_>) -> Result<(), MailError> {
        let to = mail
            .to
            .parse::<Mailbox>()
            .map_err(|e| MailError::Refused(format!("invalid recipient: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .message_id(mail.message_id.map(|id| format!("<{id}>")))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text.to_owned())
            .map_err(|e| MailError::Refused(e.to_string()))?;
        let started = std::time::Instant::now();
        let result = self.transport.send(message).await;
        metrics::histogram!("mail_send_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(_) => {
                metrics::counter!("mail_sent_total", "outcome" => "sent").increment(1);
                Ok(())
            }
            Err(error) if error.is_permanent() => {
                metrics::counter!("mail_sent_total", "outcome" => "refused").increment(1);
                Err(MailError::Refused(error.to_string()))
            }
            Err(error) => {
                metrics::counter!("mail_sent_total", "outcome" => "unavailable").increment(1);
                Err(MailError::Unavailable(error.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, from: &str) -> SmtpSettings {
        SmtpSettings {
            url: SecretString::from(url.to_owned()),
            from: from.to_owned(),
            timeout_ms: 1000,
        }
    }

    #[test]
    fn bad_settings_are_refused_without_echoing_the_url() {
        let error = Mailer::new(&settings("nonsense://user:hunter2@x", "Shop <a@b.c>"))
            .err()
            .unwrap()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(Mailer::new(&settings("smtp://127.0.0.1:2525", "not an address")).is_err());
        let shown = format!("{:?}", settings("smtp://u:hunter2@x:25", "a@b.c"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
