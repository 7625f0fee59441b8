//! The body of every error response of cloison's APIs, the controller's and the
//! agent socket's alike.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of every error response: `{"error":{"code":"not_found","message":"..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A machine-readable code and a message for people.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// One of `invalid_input`, `not_found`, `already_exists`, `in_use`, `overlap`,
    /// `taken`, `exhausted`, `stale_version`, `conflict`, `store_unavailable`, `internal`.
    pub code: String,
    pub message: String,
}
