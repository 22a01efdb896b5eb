//! Placeholder until the notification module lands.
