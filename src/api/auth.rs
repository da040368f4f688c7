//! Bearer-token authentication: when a token is configured every route but `/healthz` requires
//! `Authorization: Bearer <token>`, compared in constant time.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ApiError, ErrorCode};
use super::AppState;

/// A configured bearer token, kept as its SHA-256 so comparisons take the same time whatever
/// the length or content of the guess.
#[derive(Clone)]
pub struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Wraps a secret.
    pub fn new(secret: &str) -> Self {
        Token(Sha256::digest(secret.as_bytes()).into())
    }

    /// True when `candidate` is the secret (constant time).
    pub fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        self.0.ct_eq(&digest).into()
    }
}

/// Routes anyone may call: liveness probes cannot carry secrets.
const PUBLIC_PATHS: [&str; 1] = ["/healthz"];

/// Middleware rejecting requests without the right bearer token (401).
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    if PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match given {
        Some(candidate) if token.matches(candidate) => next.run(request).await,
        Some(_) => ApiError::new(ErrorCode::Unauthorized, "the bearer token is wrong").into_response(),
        None => ApiError::new(
            ErrorCode::Unauthorized,
            "this server requires `Authorization: Bearer <token>` (the token is in the environment variable named by [api] token_env)",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_only_itself() {
        let t = Token::new("s3cret");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3cret "));
        assert!(!t.matches(""));
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
