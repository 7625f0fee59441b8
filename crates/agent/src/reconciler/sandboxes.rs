//! The namespaces of local endpoints, remembered by identity.
//!
//! An endpoint's sandbox is a path (`/run/netns/NAME`, `/proc/PID/ns/net`, a bind
//! mount), and another namespace can take that path once the container's is gone:
//! a namespace made again under the same name, or a reused process id. The agent
//! remembers the cookie of the namespace each endpoint was created in or adopted
//! from, and never creates the endpoint in another one. The memory lives in
//! memory only, so after a restart the first ensure of an endpoint records it.
//! NOTE: an endpoint whose interface is gone when the agent starts is therefore
//! created in whatever namespace its path names then, unless that is the host's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cloison_dataplane::{DataplaneError, LocalEndpointPlan, NetnsCookie};
use tracing::warn;

use super::Inner;

/// Namespace identities of local endpoints, and the endpoints whose namespace was
/// replaced.
#[derive(Debug, Default)]
pub(super) struct Sandboxes {
    /// The sandbox path and namespace cookie of each endpoint's last ensure.
    known: BTreeMap<String, (PathBuf, NetnsCookie)>,
    /// Endpoints whose path now names another namespace. They are never created
    /// again, because the namespace they lived in is gone for good. Only a detach
    /// removes them.
    replaced: BTreeSet<String>,
}

impl Sandboxes {
    /// Returns the namespace endpoint `id` must be created in, when it was ensured
    /// at the same sandbox path before.
    pub(super) fn expected(&self, id: &str, plan: &LocalEndpointPlan) -> Option<NetnsCookie> {
        self.known
            .get(id)
            .filter(|(path, _)| *path == plan.sandbox)
            .map(|(_, cookie)| *cookie)
    }

    /// Records the namespace endpoint `id` was just ensured in, `None` for a
    /// handoff endpoint.
    pub(super) fn record(&mut self, id: &str, plan: &LocalEndpointPlan, cookie: Option<NetnsCookie>) {
        match cookie {
            Some(cookie) => self.known.insert(id.to_string(), (plan.sandbox.clone(), cookie)),
            None => self.known.remove(id),
        };
    }

    /// Marks endpoint `id` as one whose namespace was replaced.
    pub(super) fn mark_replaced(&mut self, id: &str) {
        self.replaced.insert(id.to_string());
    }

    /// Returns true when endpoint `id`'s namespace was replaced.
    pub(super) fn is_replaced(&self, id: &str) -> bool {
        self.replaced.contains(id)
    }

    /// Returns the endpoints whose namespace was replaced.
    pub(super) fn replaced(&self) -> impl Iterator<Item = &str> {
        self.replaced.iter().map(String::as_str)
    }

    /// Forgets endpoint `id`, once it is detached or deleted.
    pub(super) fn forget(&mut self, id: &str) {
        self.known.remove(id);
        self.replaced.remove(id);
    }

    /// Keeps only the endpoints for which `wanted` returns true.
    pub(super) fn retain(&mut self, wanted: impl Fn(&str) -> bool) {
        self.known.retain(|id, _| wanted(id));
        self.replaced.retain(|id| wanted(id));
    }
}

impl Inner {
    /// Leaves endpoint `id` alone for good once `error` found another namespace at
    /// its sandbox path, and warns once with the command that removes it.
    pub(super) fn leave_replaced(&mut self, id: &str, plan: &LocalEndpointPlan, error: &DataplaneError) {
        self.sandboxes.mark_replaced(id);
        self.applied.broken.remove(id);
        self.reported.remove(id);
        let detach = match self.desired.endpoints.get(id) {
            Some(endpoint) => format!("cloison detach {} --tenant {}", endpoint.name, endpoint.tenant),
            None => "cloison detach NAME --tenant TENANT".to_string(),
        };
        warn!(
            endpoint.id = %id,
            sandbox = %plan.sandbox.display(),
            %error,
            %detach,
            "another network namespace took the endpoint's sandbox path, so the endpoint is left alone until it is detached"
        );
    }
}
