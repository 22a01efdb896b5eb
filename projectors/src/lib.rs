//! The read side's workers: the projector runtime (`runtime`), the read models
//! it feeds (`projections`), and the process that runs them (`app`).

pub mod app;
pub mod projections;
pub mod runtime;
