//! axum's `Query` and `Path` extractors with Tend's error body: a query string or path
//! axum cannot read (a parameter given twice, a path that is not UTF-8) gets the same
//! JSON 400 naming what was wrong as every other bad input, not axum's plain text.

use crate::error::AppError;
use axum::extract::FromRequestParts;
use axum::extract::rejection::{PathRejection, QueryRejection};

/// The query string, deserialized into `T`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

/// The path parameters, deserialized into `T`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        let message = rejection.body_text();
        // serde names the parameter between backticks: "duplicate field `days`".
        let field = message
            .split('`')
            .nth(1)
            .filter(|name| !name.is_empty())
            .unwrap_or("query");
        AppError::invalid(field, message.clone())
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        AppError::invalid("path", rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code, reason = "only whether it deserializes matters")]
    struct Days {
        days: Option<String>,
    }

    #[tokio::test]
    async fn a_parameter_given_twice_is_named() {
        let request = Request::get("/api/reports/pace?days=1&days=2")
            .body(())
            .unwrap();
        let (mut parts, ()) = request.into_parts();
        let err = Query::<Days>::from_request_parts(&mut parts, &())
            .await
            .err()
            .expect("a repeated parameter is refused");
        match err {
            AppError::Invalid { field, message } => {
                assert_eq!(field, "days");
                assert!(message.contains("duplicate"), "{message}");
            }
            other => panic!("expected a 400 naming `days`, got {other:?}"),
        }
    }
}
