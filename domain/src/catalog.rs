//! Placeholder until the catalog module lands.
