//! Translation of etcd client failures into [`StoreError`]s the controller can act on.

use cloison_store::StoreError;
use tonic::Code;

/// Message of etcd's status for a member that has lost its leader.
const NO_LEADER_MESSAGE: &str = "no leader";
/// Message of tonic's status for a connection that could not be opened.
const CONNECT_ERROR_MESSAGE: &str = "tcp connect error";

/// Maps an etcd client error. Every failure to reach a member or to get a response from a
/// quorum becomes [`StoreError::Unavailable`], which the API reports as 503, with a message
/// naming the members so an operator knows where to look.
pub(crate) fn store_error(error: etcd_client::Error, members: &str) -> StoreError {
    if !is_unavailable(&error) {
        return StoreError::Rejected(format!("etcd at {members}: {error}"));
    }
    let detail = match &error {
        etcd_client::Error::GRpcStatus(status) => match root_cause(status) {
            Some(cause) => format!("{}: {cause}", status.message()),
            None => status.message().to_string(),
        },
        other => other.to_string(),
    };
    unavailable(members, &detail)
}

/// Tells whether `error` is a failure to reach a member or a quorum.
pub(crate) fn is_unavailable(error: &etcd_client::Error) -> bool {
    use etcd_client::Error;
    match error {
        Error::TransportError(_) | Error::IoError(_) | Error::WatchError(_) => true,
        // A status built by tonic from a broken HTTP/2 connection carries that error as
        // its source; a status that etcd sent has none. tonic reports its own request
        // timeout as Cancelled; etcd reports a lost leader or a proposal that timed out
        // as Unavailable.
        Error::GRpcStatus(status) => {
            root_cause(status).is_some()
                || matches!(
                    status.code(),
                    Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted
                )
        }
        _ => false,
    }
}

/// Tells whether `error` shows that the request never reached a leader, so sending it
/// again cannot apply it twice: the connection was refused, or the member had no leader.
pub(crate) fn reached_no_leader(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            let refused = root_cause(status)
                .and_then(|cause| cause.downcast_ref::<std::io::Error>())
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
            let connect_failed = status.message().contains(CONNECT_ERROR_MESSAGE);
            refused || connect_failed || status.message().contains(NO_LEADER_MESSAGE)
        }
        _ => false,
    }
}

/// Tells whether `error` comes from a member without a leader, as during an election.
pub(crate) fn is_no_leader(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status) if status.message().contains(NO_LEADER_MESSAGE))
}

/// Returns the innermost source of `error`, which names the failing address or operation.
fn root_cause<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    let mut cause = error.source()?;
    while let Some(next) = cause.source() {
        cause = next;
    }
    Some(cause)
}

/// Builds the error every API caller sees while etcd is down or without quorum.
pub(crate) fn unavailable(members: &str, detail: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "etcd has no quorum or cannot be reached (members {members}): {detail}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_is_unavailable() {
        let status = tonic::Status::cancelled("Timeout expired");
        let err = store_error(etcd_client::Error::GRpcStatus(status), "h1:2379");
        let StoreError::Unavailable(message) = err else {
            panic!("expected Unavailable, got {err:?}");
        };
        assert!(
            message.contains("no quorum or cannot be reached"),
            "{message}"
        );
        assert!(message.contains("h1:2379"), "{message}");
    }

    #[test]
    fn invalid_argument_is_rejected() {
        let status =
            tonic::Status::invalid_argument("etcdserver: too many operations in txn request");
        let err = store_error(etcd_client::Error::GRpcStatus(status), "h1:2379");
        assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    }
}
