//! The one error type of the HTTP layer: an HTTP status and an `ApiError` body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use notch_protocol::TxError;
use notch_protocol::api::{ApiError, codes};

use crate::store::StoreError;

#[derive(Clone, Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub error: ApiError,
}

impl Failure {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Failure {
            status,
            error: ApiError::new(code, message),
        }
    }
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::MALFORMED, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, message)
    }
    pub fn double_spend(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, codes::DOUBLE_SPEND, message)
    }
    /// The HTTP status for a transaction rule.
    pub fn tx(e: &TxError) -> Self {
        let code = e.code();
        let status = match code {
            codes::MALFORMED | codes::WRONG_NETWORK => StatusCode::BAD_REQUEST,
            codes::TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, code, e.to_string())
    }
    pub fn store(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        Self::unavailable(format!("the gateway's storage failed: {e}"))
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::store(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.error)).into_response()
    }
}
