"""Omni's fetch service: batched, polite, browser-impersonating HTTP fetching behind a JSON API."""

__version__ = "0.1.0"
