//! Request bodies, read under a size limit that fits the route and the server's
//! body-read timeout: a body announced larger than the limit is refused before a byte of
//! it is read, and a body sent without a length is cut off at the limit.

use crate::AppState;
use crate::error::AppError;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use http_body_util::BodyExt;
use std::time::Duration;

/// Body limit of small JSON commands (`PUT /api/capacity`, a task's outcome and note).
pub const COMMAND_BYTES: usize = 16 * 1024;

/// A request body of at most `LIMIT` bytes, read within the server's body timeout.
pub struct Limited<const LIMIT: usize>(pub Bytes);

impl<const LIMIT: usize> FromRequest<AppState> for Limited<LIMIT> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        read(&parts.headers, body, LIMIT, state.limits.body_timeout)
            .await
            .map(Limited)
    }
}

/// Reads a body of at most `limit` bytes within `timeout`.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, AppError> {
    let too_large = || AppError::TooLarge {
        what: "body".to_owned(),
        limit,
    };
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let reading = async {
        let mut body = body;
        let mut bytes = Vec::with_capacity(announced.map_or(0, |n| n as usize));
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| AppError::Malformed(format!("body could not be read: {e}")))?;
            if let Some(data) = frame.data_ref() {
                if bytes.len() + data.len() > limit {
                    return Err(too_large());
                }
                bytes.extend_from_slice(data);
            }
        }
        Ok(Bytes::from(bytes))
    };
    tokio::time::timeout(timeout, reading)
        .await
        .map_err(|_| AppError::BodyTimeout(timeout.as_millis()))?
}
