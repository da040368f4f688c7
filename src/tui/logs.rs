//! A tracing layer that keeps the last N events in memory for the Logs view, because the console
//! owns the terminal and must never print log lines onto it.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// One log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Unix ms.
    pub at: i64,
    /// Level name (`INFO`, `WARN`, …).
    pub level: &'static str,
    /// The event's target (module path).
    pub target: String,
    /// The message and its fields, `key=value`, stripped of control characters.
    pub message: String,
}

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    /// Count of lines ever pushed, so readers can ask for what is new.
    pushed: u64,
}

/// The ring buffer, shared between the layer (writer) and the console (reader).
#[derive(Debug, Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<Ring>>,
    capacity: usize,
}

impl LogBuffer {
    /// A buffer keeping the last `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Ring::default())),
            capacity: capacity.max(1),
        }
    }

    /// Adds a line, dropping the oldest when full.
    pub fn push(&self, line: LogLine) {
        // A poisoned lock only means another thread panicked mid-push; the ring is still usable.
        let mut ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if ring.lines.len() == self.capacity {
            ring.lines.pop_front();
        }
        ring.lines.push_back(line);
        ring.pushed += 1;
    }

    /// Lines pushed since `seen` (a count returned by an earlier call), and the new count.
    pub fn since(&self, seen: u64) -> (Vec<LogLine>, u64) {
        let ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let new = (ring.pushed - seen.min(ring.pushed)).min(ring.lines.len() as u64) as usize;
        let lines = ring
            .lines
            .iter()
            .skip(ring.lines.len() - new)
            .cloned()
            .collect();
        (lines, ring.pushed)
    }

    /// The layer that writes into this buffer.
    pub fn layer(&self) -> RingLayer {
        RingLayer {
            buffer: self.clone(),
        }
    }
}

/// A `tracing_subscriber` layer storing events in a [`LogBuffer`].
#[derive(Debug, Clone)]
pub struct RingLayer {
    buffer: LogBuffer,
}

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = MessageVisitor(String::new());
        event.record(&mut v);
        self.buffer.push(LogLine {
            at: chrono::Utc::now().timestamp_millis(),
            level: level_name(event.metadata().level()),
            target: event.metadata().target().to_string(),
            message: crate::text::strip_control(v.0.trim()).replace('\n', " "),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn keeps_the_last_lines_and_reports_only_new_ones() {
        let buf = LogBuffer::new(3);
        let subscriber = tracing_subscriber::registry().with(buf.layer());
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..5 {
                tracing::info!(n = i, "line \u{1b}[31m{i}");
            }
        });
        let (lines, seen) = buf.since(0);
        assert_eq!(seen, 5);
        assert_eq!(
            lines.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
            ["line 2 n=2", "line 3 n=3", "line 4 n=4"]
        );
        assert_eq!(lines[0].level, "INFO");
        let (none, _) = buf.since(seen);
        assert!(none.is_empty());
    }
}
