//! `GET /events`: engine events as Server-Sent Events, resumable with `Last-Event-ID`.
//!
//! A pump task numbers every event from [`Engine::subscribe`](crate::engine::Engine::subscribe)
//! and keeps the most recent ones in a ring buffer. A client that reconnects with the last id it
//! saw gets the buffered events after it, then live ones, without gaps or duplicates. Ids start
//! at the server's start time in microseconds, so they keep increasing across restarts and an id
//! from an earlier run replays the whole buffer.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::{broadcast, watch};

use crate::engine::events::EngineEvent;

/// An engine event with its stream id.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped {
    /// Strictly increasing id (the SSE `id:`).
    pub id: u64,
    /// The event.
    pub event: EngineEvent,
}

struct Ring {
    next_id: u64,
    buf: VecDeque<Arc<Stamped>>,
}

/// The numbered, buffered event stream shared by every SSE client.
pub struct EventLog {
    ring: Mutex<Ring>,
    capacity: usize,
    live: broadcast::Sender<Arc<Stamped>>,
}

/// What a (re)connecting client gets: buffered events to replay, then a live receiver.
pub struct Subscription {
    /// Buffered events after the client's last id, oldest first.
    pub backlog: Vec<Arc<Stamped>>,
    /// True when events after the client's last id were already dropped from the buffer.
    pub gap: bool,
    /// Events pushed after the backlog was taken.
    pub live: broadcast::Receiver<Arc<Stamped>>,
}

impl EventLog {
    /// A log keeping the last `capacity` events, numbering from `first_id`.
    pub fn new(capacity: usize, first_id: u64) -> Self {
        let (live, _) = broadcast::channel(capacity.max(16));
        Self {
            ring: Mutex::new(Ring {
                next_id: first_id.max(1),
                buf: VecDeque::new(),
            }),
            capacity: capacity.max(1),
            live,
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding this lock leaves the ring consistent (each update is one push or
        // pop), so a poisoned lock is still safe to use.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers `event`, buffers it and sends it to live subscribers; returns its id.
    pub fn push(&self, event: EngineEvent) -> u64 {
        let mut ring = self.ring();
        let id = ring.next_id;
        ring.next_id += 1;
        let stamped = Arc::new(Stamped { id, event });
        if ring.buf.len() == self.capacity {
            ring.buf.pop_front();
        }
        ring.buf.push_back(stamped.clone());
        // Sent under the lock so live order equals id order and a subscriber's backlog and live
        // stream meet exactly.
        let _ = self.live.send(stamped);
        id
    }

    /// Buffered events with an id above `after` (all when `None`), and whether some were lost.
    pub fn since(&self, after: Option<u64>) -> (Vec<Arc<Stamped>>, bool) {
        let ring = self.ring();
        Self::since_locked(&ring, after)
    }

    fn since_locked(ring: &Ring, after: Option<u64>) -> (Vec<Arc<Stamped>>, bool) {
        let Some(after) = after else {
            return (Vec::new(), false);
        };
        let items: Vec<_> = ring.buf.iter().filter(|e| e.id > after).cloned().collect();
        let oldest = ring.buf.front().map(|e| e.id).unwrap_or(ring.next_id);
        // Ids below the current run's first id come from an earlier run: replaying the buffer is
        // all we can do, and saying so is honest.
        let gap = after + 1 < oldest;
        (items, gap)
    }

    /// Subscribes a client that last saw `after` (None: only future events).
    pub fn subscribe(&self, after: Option<u64>) -> Subscription {
        let ring = self.ring();
        let live = self.live.subscribe();
        let (backlog, gap) = Self::since_locked(&ring, after);
        Subscription { backlog, gap, live }
    }

    /// The id the next event will get.
    pub fn next_id(&self) -> u64 {
        self.ring().next_id
    }
}

/// Feeds engine events into `log` until the engine's bus closes or `stop` turns true.
pub async fn pump(
    mut rx: broadcast::Receiver<EngineEvent>,
    log: Arc<EventLog>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            got = rx.recv() => match got {
                Ok(event) => { log.push(event); }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "SSE event pump fell behind the engine; events were dropped");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

fn sse_event(e: &Stamped) -> Event {
    let data = serde_json::to_value(&e.event).unwrap_or(serde_json::Value::Null);
    // The event's `type` tag names the SSE event, so clients can listen per kind.
    let name = data
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("event")
        .to_string();
    Event::default()
        .id(e.id.to_string())
        .event(name)
        .data(data.to_string())
}

fn gap_event(after: u64) -> Event {
    Event::default()
        .event("gap")
        .data(serde_json::json!({ "after": after, "message": "some events after this id are no longer buffered" }).to_string())
}

struct Cursor {
    pending: VecDeque<Event>,
    last: Option<u64>,
    live: broadcast::Receiver<Arc<Stamped>>,
    log: Arc<EventLog>,
    stop: watch::Receiver<bool>,
}

/// The SSE response for a client that last saw `after`; ends when `stop` turns true.
pub fn stream(
    log: Arc<EventLog>,
    after: Option<u64>,
    stop: watch::Receiver<bool>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let sub = log.subscribe(after);
    let mut pending = VecDeque::new();
    if sub.gap {
        pending.push_back(gap_event(after.unwrap_or(0)));
    }
    let mut last = after;
    for e in &sub.backlog {
        pending.push_back(sse_event(e));
        last = Some(e.id);
    }
    let cursor = Cursor {
        pending,
        last,
        live: sub.live,
        log,
        stop,
    };
    let s = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(ev) = c.pending.pop_front() {
                return Some((Ok(ev), c));
            }
            if *c.stop.borrow() {
                return None;
            }
            tokio::select! {
                _ = c.stop.changed() => return None,
                got = c.live.recv() => match got {
                    Ok(e) => {
                        if c.last.is_some_and(|l| e.id <= l) {
                            continue;
                        }
                        c.last = Some(e.id);
                        return Some((Ok(sse_event(&e)), c));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // This client was too slow for the live channel: catch up from the ring.
                        let (missed, gap) = c.log.since(c.last.or(Some(0)));
                        if gap {
                            c.pending.push_back(gap_event(c.last.unwrap_or(0)));
                        }
                        for e in missed {
                            c.last = Some(e.id);
                            c.pending.push_back(sse_event(&e));
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(n: u32) -> EngineEvent {
        EngineEvent::Notice {
            topic: "t".into(),
            message: n.to_string(),
        }
    }

    #[test]
    fn resumes_after_the_last_seen_id_without_duplicates() {
        let log = EventLog::new(8, 100);
        for i in 0..5 {
            log.push(notice(i));
        }
        let (items, gap) = log.since(Some(102));
        assert!(!gap);
        assert_eq!(
            items.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![103, 104]
        );
    }

    #[test]
    fn reports_a_gap_when_the_buffer_dropped_events() {
        let log = EventLog::new(3, 1);
        for i in 0..6 {
            log.push(notice(i));
        }
        let (items, gap) = log.since(Some(1));
        assert!(gap);
        assert_eq!(
            items.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![4, 5, 6]
        );
        let (_, gap) = log.since(Some(3));
        assert!(!gap);
    }

    #[test]
    fn a_new_subscriber_gets_no_backlog_but_every_later_event() {
        let log = EventLog::new(8, 1);
        log.push(notice(0));
        let mut sub = log.subscribe(None);
        assert!(sub.backlog.is_empty());
        log.push(notice(1));
        assert_eq!(sub.live.try_recv().unwrap().id, 2);
    }
}
