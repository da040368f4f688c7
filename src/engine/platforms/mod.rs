//! Platform adapters: the Platform trait and its implementations (mastodon first).
