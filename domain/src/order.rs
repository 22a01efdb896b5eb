//! Placeholder until the order module lands.
