//! The operator console (ratatui): event loop, actions, pure update, views.
