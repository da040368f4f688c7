//! Taking over the terminal and giving it back: raw mode and the alternate screen on the way in,
//! and a restore that runs on a normal exit, on an error, on SIGTERM and from the panic hook.

use std::io::{self, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::{cursor, execute};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

/// The console's terminal.
pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Whether the terminal is currently taken over (so restore runs once and only when needed).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Whether mouse capture is on (restore turns it off).
static MOUSE: AtomicBool = AtomicBool::new(false);

/// Enters raw mode and the alternate screen (and mouse capture when asked).
pub fn enter(mouse: bool) -> io::Result<Term> {
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    MOUSE.store(mouse, Ordering::SeqCst);
    let mut out = io::stdout();
    execute!(
        out,
        EnterAlternateScreen,
        EnableBracketedPaste,
        cursor::Hide
    )?;
    if mouse {
        execute!(out, EnableMouseCapture)?;
    }
    let mut term = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    term.clear()?;
    Ok(term)
}

/// Leaves the alternate screen and raw mode. Safe to call more than once and from any thread.
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    if MOUSE.load(Ordering::SeqCst) {
        let _ = execute!(out, DisableMouseCapture);
    }
    let _ = execute!(
        out,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        cursor::Show
    );
    let _ = disable_raw_mode();
    let _ = out.flush();
}

/// Restores the terminal before the default panic message prints, so a panic leaves a usable
/// shell and a readable message.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// Hands the terminal to another program (`$EDITOR`), then takes it back.
pub fn suspend_while<T>(term: &mut Term, mouse: bool, f: impl FnOnce() -> T) -> io::Result<T> {
    restore();
    let out = f();
    let mut fresh = enter(mouse)?;
    std::mem::swap(term, &mut fresh);
    // The swapped-out terminal has nothing to restore on drop.
    drop(fresh);
    term.clear()?;
    Ok(out)
}
