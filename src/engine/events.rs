//! The engine's event stream: what changed, for the console, the API's SSE and `--wait`.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::db::jobs::{JobId, JobStatus};

/// Something that happened in the engine.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EngineEvent {
    /// A job changed state or reported progress.
    Job {
        id: JobId,
        kind: String,
        status: JobStatus,
        progress: i64,
        message: Option<String>,
    },
    /// A free-form notice (leads created, messages sent, replies ingested, …).
    Notice { topic: String, message: String },
}

/// A broadcast bus of engine events; slow receivers lose the oldest events, never block the engine.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<EngineEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl EventBus {
    /// A bus keeping up to `capacity` events per slow receiver.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self { tx }
    }

    /// Publishes an event (dropped when nobody listens).
    pub fn publish(&self, event: EngineEvent) {
        let _ = self.tx.send(event);
    }

    /// A new receiver of future events.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.tx.subscribe()
    }
}
