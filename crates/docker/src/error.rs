use thiserror::Error;

/// Failures of a driver call. The message reaches the Docker user verbatim, after
/// "Error response from daemon:", so each one names the value and the fix.
#[derive(Debug, Error)]
pub enum DriverError {
    /// The request carried an option or value cloison does not accept.
    #[error("{0}")]
    Invalid(String),
    /// Something the request refers to does not exist.
    #[error("{what} not found")]
    NotFound { what: String },
    /// The controller or the agent rejected the change; the message is theirs.
    #[error("cloison: {message}")]
    Cloison {
        /// HTTP status of the controller's reply, None when it was unreachable.
        status: Option<u16>,
        message: String,
    },
    /// The driver's record file could not be read or written.
    #[error("cannot access driver records {path}: {source}")]
    Records {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl DriverError {
    /// Returns true when the controller reported that the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DriverError::NotFound { .. } | DriverError::Cloison { status: Some(404), .. })
    }
}

impl From<cloison_ipam::IpamError> for DriverError {
    fn from(e: cloison_ipam::IpamError) -> Self {
        DriverError::Invalid(e.to_string())
    }
}
