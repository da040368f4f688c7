//! The simulated Mastodon-compatible platform (`omni sandbox`, `omni demo`, tests).
