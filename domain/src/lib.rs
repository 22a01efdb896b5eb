//! The commerce write model: value objects, aggregates (each a `cqrs_es::Aggregate`),
//! their commands, events and errors, and the decisions that span aggregates.
//! Nothing here does I/O: the command side loads state, calls in, and appends
//! what comes back.

pub mod personal;
pub mod uniqueness;
pub mod values;

pub mod catalog;
pub mod user;

pub mod cart;
pub mod inventory;

pub mod order;
pub mod promotion;

pub mod notification;
pub mod payment;
pub mod review;
