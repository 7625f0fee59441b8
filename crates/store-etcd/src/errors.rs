//! Translation of etcd client failures into [`StoreError`]s the controller can act on.

use cloison_store::StoreError;
use tonic::Code;

/// Maps an etcd client error. Every failure to reach a member or to get a response from a
/// quorum becomes [`StoreError::Unavailable`], which the API reports as 503, with a message
/// naming the members so an operator knows where to look.
pub(crate) fn store_error(error: etcd_client::Error, members: &str) -> StoreError {
    use etcd_client::Error;
    match error {
        Error::TransportError(e) => unavailable(members, &e.to_string()),
        Error::IoError(e) => unavailable(members, &e.to_string()),
        Error::GRpcStatus(status) => status_error(&status, members),
        Error::WatchError(message) => unavailable(members, &message),
        other => StoreError::Rejected(format!("etcd at {members}: {other}")),
    }
}

fn status_error(status: &tonic::Status, members: &str) -> StoreError {
    // A status built by tonic from a broken HTTP/2 connection carries that error as its
    // source; a status that etcd sent has none.
    if let Some(cause) = root_cause(status) {
        return unavailable(members, &format!("{}: {cause}", status.message()));
    }
    match status.code() {
        // tonic reports its own request timeout as Cancelled; etcd reports a lost leader or
        // a proposal that timed out as Unavailable.
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
            unavailable(members, status.message())
        }
        _ => StoreError::Rejected(format!("etcd at {members}: {}", status.message())),
    }
}

/// Returns the innermost source of `error`, which names the failing address or operation.
fn root_cause(error: &dyn std::error::Error) -> Option<&dyn std::error::Error> {
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
        assert!(message.contains("no quorum or cannot be reached"), "{message}");
        assert!(message.contains("h1:2379"), "{message}");
    }

    #[test]
    fn invalid_argument_is_rejected() {
        let status = tonic::Status::invalid_argument("etcdserver: too many operations in txn request");
        let err = store_error(etcd_client::Error::GRpcStatus(status), "h1:2379");
        assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    }
}
