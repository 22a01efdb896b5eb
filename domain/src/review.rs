//! Placeholder until the review module lands.
