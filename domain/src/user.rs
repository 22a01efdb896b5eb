//! Placeholder until the user module lands.
