//! The HTTP API (axum): router, handlers, auth, SSE events, metrics, OpenAPI.
