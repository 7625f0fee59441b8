use thiserror::Error;

/// Failures of kernel operations. Netlink failures keep the kernel's errno.
#[derive(Debug, Error)]
pub enum DataplaneError {
    /// The kernel rejected a netlink request.
    #[error("{op} failed: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Sys {
        op: String,
        #[source]
        source: nix::Error,
    },
    /// The container's namespace could not be opened.
    #[error("cannot open network namespace {path}: {source}")]
    Sandbox {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An object of the name cloison wants exists and is not cloison's.
    #[error("interface {name} exists and is not owned by cloison (alias {alias:?}); remove or rename it")]
    NotOwned { name: String, alias: Option<String> },
    /// An object of the name cloison wants belongs to another cloison resource.
    #[error("interface {name} belongs to {owner}, not {expected}")]
    Collision {
        name: String,
        owner: String,
        expected: String,
    },
    /// The requested interface name is already taken inside the container.
    #[error("interface {ifname} already exists in namespace {sandbox}")]
    IfnameTaken { ifname: String, sandbox: String },
    /// The namespace at an endpoint's sandbox path is not the one the endpoint was
    /// created in, because its container's namespace went away and another took
    /// the path.
    #[error(
        "endpoint {endpoint_id} was created in another network namespace than the one now at {sandbox} \
         (netns cookie {expected}, now {found}), so its container is gone and the endpoint must be detached"
    )]
    NamespaceReplaced {
        endpoint_id: String,
        sandbox: String,
        expected: crate::NetnsCookie,
        found: crate::NetnsCookie,
    },
    /// An endpoint's sandbox path names the host's network namespace.
    #[error("network namespace {sandbox} is the host's own, where an endpoint would replace the host's addresses and default route")]
    HostNamespace { sandbox: String },
    /// An interface cloison needs is missing, such as the VXLAN device of a network
    /// that was not ensured on this host.
    #[error("interface {name} not found; ensure its network first")]
    NoSuchInterface { name: String },
    /// `nft` rejected a script or could not run.
    #[error("nft failed in {namespace}: {message}")]
    Nft { namespace: String, message: String },
    /// Any other I/O failure.
    #[error("{op} failed: {source}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
}

impl DataplaneError {
    /// Returns the kernel's errno when the failure came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        match self {
            DataplaneError::Netlink {
                source: rtnetlink::Error::NetlinkError(msg),
                ..
            } => msg.code.map(|c| -c.get()),
            DataplaneError::Sys { source, .. } => Some(*source as i32),
            DataplaneError::Sandbox { source, .. } | DataplaneError::Io { source, .. } => {
                source.raw_os_error()
            }
            DataplaneError::NoSuchInterface { .. } => Some(libc::ENODEV),
            _ => None,
        }
    }
}
