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

/// mimalloc instead of glibc's malloc for every binary built on this crate (the `omni` binary, its
/// tests and benches). The engine allocates and frees many short-lived buffers across threads
/// (HTTP bodies, JSON values, rows); under glibc that was ≈ 20 % of ingest's CPU (BENCHMARKS §2).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
