//! Omni's integration tests: one binary, one module per area.

mod api;
mod common;
mod queue;
mod worker_process;
mod queue_model;
