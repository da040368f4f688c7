//! The event tasks: terminal input, ticks, engine events, log lines and termination signals, all
//! multiplexed into one channel the console drains.

use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream, MouseEventKind};
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::engine::events::EngineEvent;

use super::action::Action;
use super::logs::LogBuffer;

/// Something the console must react to.
#[derive(Debug)]
pub enum Event {
    /// A key press.
    Key(crossterm::event::KeyEvent),
    /// An action (from the mouse, a tick, the engine, or a finished effect).
    Action(Action),
    /// The terminal was resized (the newest size wins; drawing coalesces bursts).
    Resize(u16, u16),
    /// SIGTERM, SIGHUP or the input closed: leave cleanly.
    Terminate,
}

/// How often ticks arrive (toast expiry, live refresh).
pub const TICK: Duration = Duration::from_millis(500);

/// Reads the terminal until aborted. Abort it before handing the terminal to another program.
pub fn spawn_input(tx: mpsc::UnboundedSender<Event>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = EventStream::new();
        while let Some(ev) = stream.next().await {
            let out = match ev {
                Ok(TermEvent::Key(k)) => Event::Key(k),
                Ok(TermEvent::Resize(w, h)) => Event::Resize(w, h),
                Ok(TermEvent::Mouse(m)) => match m.kind {
                    MouseEventKind::ScrollDown => Event::Action(Action::Scroll(3)),
                    MouseEventKind::ScrollUp => Event::Action(Action::Scroll(-3)),
                    _ => continue,
                },
                Ok(_) => continue,
                Err(_) => Event::Terminate,
            };
            let stop = matches!(out, Event::Terminate);
            if tx.send(out).is_err() || stop {
                break;
            }
        }
    })
}

/// Ticks, engine events, new log lines and termination signals, until the receiver closes.
pub fn spawn_background(
    tx: mpsc::UnboundedSender<Event>,
    mut engine: broadcast::Receiver<EngineEvent>,
    logs: LogBuffer,
    now: impl Fn() -> i64 + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut hup = signal(SignalKind::hangup()).ok();
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut seen = 0u64;
        let mut engine_open = true;
        loop {
            let ev = tokio::select! {
                _ = ticks.tick() => {
                    let (lines, n) = logs.since(seen);
                    seen = n;
                    if !lines.is_empty() && tx.send(Event::Action(Action::Logs(lines))).is_err() {
                        break;
                    }
                    Event::Action(Action::Tick(now()))
                }
                r = engine.recv(), if engine_open => match r {
                    Ok(e) => Event::Action(Action::Engine(e)),
                    // Missed events are fine: the periodic reload catches up.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => { engine_open = false; continue }
                },
                _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => Event::Terminate,
                _ = async { match hup.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => Event::Terminate,
            };
            if tx.send(ev).is_err() {
                break;
            }
        }
    })
}
