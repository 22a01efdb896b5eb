//! Placeholder until the promotion module lands.
