//! Omni's integration tests: one binary, one module per area.

mod common;
mod criteria;
mod llm;
mod outreach;
mod platforms;
mod queue;
mod queue_model;
mod sandbox;
mod worker_process;
