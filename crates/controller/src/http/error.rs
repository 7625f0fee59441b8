//! The one place where controller errors become HTTP responses.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cloison_ipam::IpamError;
use cloison_store::StoreError;
use serde::de::DeserializeOwned;

use crate::ControllerError;

pub use cloison_model::{ErrorBody, ErrorDetail};

impl ControllerError {
    /// Returns the HTTP status and error code for this error. A stale resource_version
    /// is 409 Conflict, as in Kubernetes.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ControllerError::*;
        match self {
            Invalid(_) | BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
            NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            AlreadyExists { .. } => (StatusCode::CONFLICT, "already_exists"),
            InUse { .. } => (StatusCode::CONFLICT, "in_use"),
            Overlap { .. } | UnderlayOverlap { .. } => (StatusCode::CONFLICT, "overlap"),
            Taken { .. } | PortTarget { .. } => (StatusCode::CONFLICT, "taken"),
            Ipam(IpamError::Exhausted { .. } | IpamError::VnisExhausted) => (StatusCode::CONFLICT, "exhausted"),
            Ipam(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
            StaleVersion { .. } => (StatusCode::CONFLICT, "stale_version"),
            Contention { .. } => (StatusCode::CONFLICT, "conflict"),
            Store(StoreError::Unavailable(_)) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            Store(_) | Corrupt { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ControllerError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        error_response(status, code, self.to_string())
    }
}

pub(crate) fn error_response(status: StatusCode, code: &str, message: String) -> Response {
    let body = ErrorBody {
        error: ErrorDetail { code: code.to_string(), message },
    };
    (status, Json(body)).into_response()
}

/// A JSON request body extractor. Its rejections (malformed JSON, missing field, wrong
/// content type) return the API's error body instead of axum's plain text.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> Response {
    let message = format!("invalid request body: {}", rejection.body_text());
    error_response(rejection.status(), "invalid_input", message)
}

/// Returns the API's error body for a malformed query string.
pub(crate) fn query_rejection(rejection: QueryRejection) -> Response {
    let message = format!("invalid query string: {}", rejection.body_text());
    error_response(StatusCode::BAD_REQUEST, "invalid_input", message)
}
