//! Placeholder until the payment module lands.
