//! Payments: the payment-provider port the commands call, its adapters,
//! and the sandbox payment service that runs the whole flow on this
//! machine (`command-api payment-sandbox`).
//!
//! The port speaks in the platform's terms: a payment intent for a
//! payment id and an amount in THB, a refund of part of what was captured,
//! and the provider's webhooks, verified (signature, freshness) into a
//! [`WebhookEvent`]. A production provider plugs in behind the same trait.

pub mod provider;
