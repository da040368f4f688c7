//! Pipeline stages: discover, scrape, enrich, candidates, qualify, dispatch, feedback, learn.
//! Each stage is a job handler registered here; every write it makes is idempotent.

pub mod candidates;
pub mod canonical;
pub mod dispatch;
pub mod features;
pub mod feedback;
pub mod ingest;
pub mod learn;
pub mod qualify;
pub mod score;
pub mod system;

use crate::engine::service::Ctx;
use crate::engine::worker::Registry;

/// Registers every stage's handler.
pub fn register(registry: &mut Registry<Ctx>) {
    system::register(registry);
    ingest::register(registry);
    candidates::register(registry);
    qualify::register(registry);
    dispatch::register(registry);
    feedback::register(registry);
    learn::register(registry);
}
