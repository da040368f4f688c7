//! The engine: the queue, the scheduler, the pipeline stages and the service API that the console,
//! the HTTP API and the CLI all call.

pub mod browse;
pub mod campaigns;
pub mod clock;
pub mod criteria;
pub mod events;
pub mod llm;
pub mod outreach;
pub mod pipeline;
pub mod platforms;
pub mod queue;
pub mod scheduler;
pub mod service;
pub mod storage;
pub mod worker;

pub use service::{Engine, Mode};
