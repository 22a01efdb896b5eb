//! Tests of the order module: the aggregate's rules (given/when/then), the
//! checkout and cancellation decisions, and the builders they share.

mod aggregate;
mod cancellation;
mod checkout;
mod support;
