//! The one error type every handler returns, rendered as a JSON body with a status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The `code` of an error response, left on the response for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// What went wrong with a request, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The payload is malformed or a field is invalid; `field` is a path such as `batch[3].userId`.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The body could not be read as what the route expects (not JSON, bad gzip).
    #[error("{0}")]
    Malformed(String),
    #[error("missing or unknown credentials")]
    Unauthorized,
    #[error("this token may not use this route")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is valid but the resource is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge { what: String, limit: usize },
    /// The client sent its body too slowly.
    #[error("the body did not arrive within {0} ms")]
    BodyTimeout(u128),
    #[error("internal error")]
    Internal(#[from] tend_store::StoreError),
    /// Work the request asked for failed for a reason of the server's (logged).
    #[error("internal error")]
    Failed(String),
}

impl From<tend_engine::EngineError> for AppError {
    fn from(err: tend_engine::EngineError) -> Self {
        use tend_engine::EngineError;
        match err {
            EngineError::Store(e) => AppError::Internal(e),
            EngineError::NoSuchTask(_) => AppError::NotFound("task"),
            EngineError::TaskNotOpen(id) => {
                AppError::Conflict(format!("task {id} is already completed or skipped"))
            }
            EngineError::UnknownOutcome { .. } => AppError::invalid("outcome", err.to_string()),
            EngineError::Policy(e) => {
                AppError::Internal(tend_store::StoreError::Corrupt(e.to_string()))
            }
        }
    }
}

impl AppError {
    /// A field-level validation error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The body of every error response: `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for a program (`code`, `field`) and for a person (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The kind of error; also the `reason` label of `tend_ingest_rejected_total`.
    #[schema(value_type = ErrorCodeName)]
    pub code: &'static str,
    /// What was wrong, in words; never internals.
    pub message: String,
    /// Where: a field path such as `batch[3].traits.email`, a query parameter, or
    /// `body` for the body as a whole. Absent when the error is not about the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Every `code` an [`ErrorDetail`] can carry; the body carries it as a string.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code, reason = "only its OpenAPI schema is used")]
pub enum ErrorCodeName {
    /// A field is invalid (400); `field` names it.
    Invalid,
    /// The body is not what the route reads: not JSON, bad gzip (400).
    Malformed,
    /// No credentials, or unknown ones (401).
    Unauthorized,
    /// The credentials may not use this route (403).
    Forbidden,
    /// No such contact, task or route (404).
    NotFound,
    /// The resource is not in a state that allows it (409).
    Conflict,
    /// The body or one message is over its limit (413).
    TooLarge,
    /// The body did not arrive in time (408).
    Timeout,
    /// A fault of the server's, logged (500).
    Internal,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            AppError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid"),
            AppError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AppError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            AppError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            AppError::Internal(err) => {
                // Logged here, once; the client sees no internals.
                let error = tend_engine::redact::without_addresses(&err.to_string());
                tracing::error!(%error, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            AppError::Failed(reason) => {
                let error = tend_engine::redact::without_addresses(reason);
                tracing::error!(%error, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let field = match &self {
            AppError::Invalid { field, .. } => Some(field.clone()),
            // What was wrong is the body as a whole.
            AppError::Malformed(_) | AppError::BodyTimeout(_) => Some("body".to_owned()),
            AppError::TooLarge { what, .. } => Some(what.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                field,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(code));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"tend\", Bearer"),
            );
        }
        response
    }
}
