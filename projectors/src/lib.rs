//! The read side's workers: the projector runtime (`runtime`), the read models
//! it feeds (`projections`), the process that runs them (`app`) and its health
//! endpoint (`health`).

pub mod app;
pub mod health;
pub mod projections;
pub mod runtime;
