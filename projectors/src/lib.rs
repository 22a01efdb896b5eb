//! The read side's workers: the projector runtime (`runtime`), the read models
//! it feeds (`projections`), what each kind of store gives them all
//! (`stores`), the process that runs them (`app`), its health endpoint
//! (`health`) and the operator's commands (`operator`).

pub mod app;
pub mod health;
pub mod operator;
pub mod projections;
pub mod runtime;
pub mod stores;
