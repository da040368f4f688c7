//! Request extractors whose failures are [`ApiError`]s naming the offending field: JSON bodies
//! (422, or 413 over the size limit), campaign files as JSON or TOML, query strings and path
//! parameters (400).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode};

/// A JSON request body, parsed strictly: syntax errors, unknown fields and wrong types are 422
/// naming the field.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// The format of a campaign file in a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `application/json`
    Json,
    /// `application/toml` (also `text/toml`, `application/x-toml`)
    Toml,
}

/// A document sent as JSON or TOML (chosen by `Content-Type`), converted to a JSON value so the
/// engine validates one shape; syntax errors are 422.
#[derive(Debug, Clone)]
pub struct JsonOrToml(pub serde_json::Value, pub FileFormat);

impl<S: Send + Sync> FromRequest<S> for JsonOrToml {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let format = if is_json(req.headers()) {
            FileFormat::Json
        } else if content_type(req.headers()).is_some_and(|ct| ct.ends_with("toml")) {
            FileFormat::Toml
        } else {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the campaign file as `Content-Type: application/json` or `application/toml`",
            ));
        };
        let bytes = read_body(req, state).await?;
        let value = match format {
            FileFormat::Json => parse_json::<serde_json::Value>(&bytes)?,
            FileFormat::Toml => {
                let text = std::str::from_utf8(&bytes).map_err(|e| {
                    ApiError::new(
                        ErrorCode::Invalid,
                        format!("the TOML body is not UTF-8: {e}"),
                    )
                })?;
                let table: toml::Table = toml::from_str(text).map_err(|e| {
                    ApiError::new(ErrorCode::Invalid, format!("invalid TOML: {}", e.message()))
                })?;
                serde_json::to_value(table)
                    .map_err(|e| ApiError::new(ErrorCode::Invalid, format!("invalid TOML: {e}")))?
            }
        };
        Ok(JsonOrToml(value, format))
    }
}

/// Query parameters; a parameter of the wrong type or out of range is 400 naming it.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let (field, message) = describe(&e.path().to_string(), &e.inner().to_string());
                ApiError::new(ErrorCode::BadRequest, message)
                    .with_field(field.unwrap_or_else(|| "query".into()))
            })
    }
}

/// Path parameters; one that does not parse is 400 naming it.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                use axum::extract::path::ErrorKind;
                let message = e.body_text();
                // Name the parameter even when serde only knows its position (a lone `{id}`).
                let names: Vec<String> =
                    axum::extract::RawPathParams::from_request_parts(parts, state)
                        .await
                        .map(|raw| raw.iter().map(|(k, _)| k.to_string()).collect())
                        .unwrap_or_default();
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
                    ErrorKind::ParseErrorAtIndex { index, .. } => names.get(*index).cloned(),
                    ErrorKind::ParseError { .. } if names.len() == 1 => names.first().cloned(),
                    _ => None,
                };
                let err = ApiError::new(ErrorCode::BadRequest, message);
                Err(match field {
                    Some(f) => err.with_field(f),
                    None => err,
                })
            }
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// Parses JSON into `T`; failures are 422 naming the field (a dotted path like `filters.min_followers`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| json_error(&e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| json_error(".", &e))?;
    Ok(value)
}

/// Converts a JSON value into `T`; failures are 422 naming the field. For backends that receive a
/// campaign file as [`serde_json::Value`] and deserialize it into the engine's model.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| json_error(&e.path().to_string(), e.inner()))
}

fn json_error(path: &str, e: &serde_json::Error) -> ApiError {
    let (field, message) = describe(path, &e.to_string());
    let message = if e.is_syntax() || e.is_eof() {
        format!("malformed JSON: {message}")
    } else {
        message
    };
    let err = ApiError::new(ErrorCode::Invalid, message);
    match field {
        Some(f) => err.with_field(f),
        None => err,
    }
}

/// The field an error is about, and its message. serde reports an unknown or missing field at
/// its parent's path with the name in backticks; that name completes the path.
fn describe(path: &str, message: &str) -> (Option<String>, String) {
    let parent = if path == "." || path == "?" {
        None
    } else {
        Some(path.to_string())
    };
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next())
        .map(str::to_string);
    let field = match (parent, named) {
        // For an unknown field the path already ends in it; for a missing one it is the parent.
        (Some(p), Some(n)) if p == n || p.ends_with(&format!(".{n}")) => Some(p),
        (Some(p), Some(n)) => Some(format!("{p}.{n}")),
        (p, n) => n.or(p),
    };
    (field, message.to_string())
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "the request body is larger than the server accepts",
                )
            } else {
                ApiError::new(
                    ErrorCode::BadRequest,
                    format!("could not read the request body: {}", e.body_text()),
                )
            }
        })
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

fn is_json(headers: &HeaderMap) -> bool {
    content_type(headers).is_some_and(|ct| ct == "application/json" || ct.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        size: u32,
    }

    fn field_of(body: &str) -> Option<String> {
        parse_json::<Outer>(body.as_bytes()).unwrap_err().field
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{"name": 3}"#).as_deref(), Some("name"));
        assert_eq!(
            field_of(r#"{"name": "a", "bogus": 1}"#).as_deref(),
            Some("bogus")
        );
        assert_eq!(
            field_of(r#"{"name": "a", "inner": {"size": "big"}}"#).as_deref(),
            Some("inner.size")
        );
        assert_eq!(
            field_of(r#"{"name": "a", "inner": {"size": 1, "x": 2}}"#).as_deref(),
            Some("inner.x")
        );
        assert_eq!(field_of(r#"{"inner": null}"#).as_deref(), Some("name"));
        assert_eq!(
            field_of(r#"{"name": "a", "inner": {}}"#).as_deref(),
            Some("inner.size")
        );
    }

    #[test]
    fn malformed_json_is_invalid() {
        let e = parse_json::<Outer>(b"{\"name\": ").unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid);
        assert!(e.message.starts_with("malformed JSON"), "{}", e.message);
        let e = parse_json::<Outer>(br#"{"name": "a"} trailing"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid);
    }
}
