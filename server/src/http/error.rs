//! [`ApiError`]: what handlers return on failure. Clients get a status and `{"error": "..."}`;
//! the log keeps the detail of server-side failures.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

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
    TooManyRequests { retry_after: std::time::Duration },
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
            ApiError::TooManyRequests { retry_after } => {
                let secs = retry_after_secs(*retry_after);
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, secs.to_string())],
                    Json(serde_json::json!({ "error": self.to_string() })),
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
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// Whole seconds for `Retry-After`, at least 1.
fn retry_after_secs(d: std::time::Duration) -> u64 {
    (d.as_secs_f64().ceil() as u64).max(1)
}
