//! Payments: the payment-provider port the commands call, its adapters,
//! and the sandbox payment service that runs the whole flow on this
//! machine (`command-api payment-sandbox`).
//!
//! The port speaks in the platform's terms: a payment intent for a
//! payment id and an amount in THB, a refund of part of what was captured,
//! and the provider's webhooks, verified (signature, freshness) into a
//! [`WebhookEvent`]. A production provider plugs in behind the same trait.

pub mod provider;
pub mod sandbox;
pub mod sandbox_client;

/// The provider `settings` name, ready to call.
pub fn configured(
    settings: &infrastructure::settings::PaymentSettings,
) -> anyhow::Result<std::sync::Arc<dyn provider::PaymentProvider>> {
    match settings.provider.as_str() {
        "sandbox" => Ok(std::sync::Arc::new(
            sandbox_client::SandboxProvider::new(&settings.sandbox)
                .map_err(|error| anyhow::anyhow!("the sandbox payment adapter: {error}"))?,
        )),
        other => anyhow::bail!("payments.provider {other:?} is not a provider this build has"),
    }
}
