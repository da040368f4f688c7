//! Omni: find, qualify and contact the right people on social platforms.
//!
//! The binary (`src/main.rs`) only parses the command line; everything lives here so the
//! integration tests and benchmarks drive the same code the operator runs.

pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod engine;
pub mod sandbox;
pub mod text;
pub mod tui;
