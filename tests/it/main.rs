//! Omni's integration tests: one binary, one module per area.

mod api;
mod candidates;
mod common;
mod crawler;
mod criteria;
mod learning;
mod llm;
mod outreach;
mod pipeline;
mod platforms;
mod queue;
mod queue_model;
mod sandbox;
mod tui;
mod worker_process;
