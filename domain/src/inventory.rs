//! Placeholder until the inventory module lands.
