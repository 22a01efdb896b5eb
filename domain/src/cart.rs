//! Placeholder until the cart module lands.
