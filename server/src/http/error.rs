//! [`ApiError`]: what handlers return on failure. Clients get a status and `{"error": "..."}`;
//! the log keeps the detail of server-side failures. [`ApiQuery`] turns a query string that
//! does not parse into one, and [`json_errors`] gives the same shape to every other refusal
//! (a method not allowed, axum's own rejections).

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ogm_protocol::http::ErrorAnswer;
use serde::de::DeserializeOwned;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong; the message says how.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotImplemented(String),
    /// A dependency (the store) is down; try again later.
    #[error("{0}")]
    Unavailable(String),
    /// The request body is larger than the server reads.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// This client sent too many requests; it may try again after `retry_after`.
    #[error("too many requests; retry in {} s", retry_after_secs(*retry_after))]
    TooManyRequests { retry_after: Duration },
    /// The server is serving as many such requests as it allows at once.
    #[error("the server is busy; retry in {} s", retry_after_secs(*retry_after))]
    Overloaded { retry_after: Duration },
    /// The answer did not start within the request timeout.
    #[error("the request took longer than {} s", .0.as_secs_f64())]
    TimedOut(Duration),
    /// The client did not send the request's body within the body timeout.
    #[error("the request body took longer than {} s to arrive", .0.as_secs_f64())]
    BodyTimedOut(Duration),
    /// Something failed on our side; the client gets a generic message.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            ApiError::NotImplemented(m) => (StatusCode::NOT_IMPLEMENTED, m.clone()),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m.clone()),
            ApiError::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m.clone()),
            ApiError::TimedOut(_) => (StatusCode::SERVICE_UNAVAILABLE, self.to_string()),
            ApiError::BodyTimedOut(_) => (StatusCode::REQUEST_TIMEOUT, self.to_string()),
            ApiError::TooManyRequests { retry_after } | ApiError::Overloaded { retry_after } => {
                let status = match self {
                    ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                };
                let secs = retry_after_secs(*retry_after);
                return (
                    status,
                    [(header::RETRY_AFTER, secs.to_string())],
                    Json(ErrorAnswer {
                        error: self.to_string(),
                    }),
                )
                    .into_response();
            }
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal server error".to_owned(),
                )
            }
        };
        (status, Json(ErrorAnswer { error: message })).into_response()
    }
}

/// Whole seconds for `Retry-After`, at least 1.
fn retry_after_secs(d: Duration) -> u64 {
    (d.as_secs_f64().ceil() as u64).max(1)
}

/// axum's `Query`, refused with an [`ApiError`] (400 `{"error": ...}`) instead of axum's plain
/// text: a parameter given twice, say.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// Largest plain-text error body [`json_errors`] reads to quote it.
const MAX_QUOTED_ERROR: usize = 4096;

/// Middleware: an error answer (4xx, 5xx) that is not JSON already becomes `{"error": ...}`,
/// quoting its plain text (axum's rejections) or, when empty, saying what its status means.
/// HTML pages (the "dashboard not built" page) are left as they are.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return res;
    }
    let quoted = content_type.starts_with("text/plain");
    let (mut parts, body) = res.into_parts();
    let text = if quoted {
        axum::body::to_bytes(body, MAX_QUOTED_ERROR)
            .await
            .ok()
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .filter(|t| !t.is_empty())
    } else {
        None
    };
    let message = text.unwrap_or_else(|| match status {
        // axum adds `Allow` after this layer has run: the header says which are.
        StatusCode::METHOD_NOT_ALLOWED => format!("method {method} is not allowed on {path}"),
        _ => status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_string(&ErrorAnswer { error: message }).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}
