//! The namespaces of local endpoints, remembered by identity.
//!
//! An endpoint's sandbox is a path (`/run/netns/NAME`, `/proc/PID/ns/net`, a bind
//! mount), and another namespace can take that path once the container's is gone:
//! a namespace made again under the same name, or a reused process id. The agent
//! remembers the cookie of the namespace each endpoint was created in or adopted
//! from, and never creates the endpoint in another one. The repair pass records
//! the cookies in `<run-dir>/endpoint-namespaces.json`, so a restarted agent keeps
//! them. Cookies start again at boot, when `/run` starts empty.
//! NOTE: an endpoint created less than one repair pass (2 s) before the agent
//! stopped has no recorded cookie. If its interface is gone at the restart, it is
//! created in whatever namespace its path names then, unless that is the host's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cloison_dataplane::{DataplaneError, LocalEndpointPlan, NetnsCookie};
use serde::{Deserialize, Serialize};
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
    /// True once the recorded cookies were read from the run directory.
    loaded: bool,
    /// True when `known` changed since it was last written.
    changed: bool,
}

/// One endpoint's namespace as the run directory records it.
#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    sandbox: PathBuf,
    cookie: u64,
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
        let entry = cookie.map(|cookie| (plan.sandbox.clone(), cookie));
        if self.known.get(id) != entry.as_ref() {
            self.changed = true;
            match entry {
                Some(entry) => self.known.insert(id.to_string(), entry),
                None => self.known.remove(id),
            };
        }
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
        self.changed |= self.known.remove(id).is_some();
        self.replaced.remove(id);
    }

    /// Keeps only the endpoints for which `wanted` returns true.
    pub(super) fn retain(&mut self, wanted: impl Fn(&str) -> bool) {
        let before = self.known.len();
        self.known.retain(|id, _| wanted(id));
        self.changed |= self.known.len() != before;
        self.replaced.retain(|id| wanted(id));
    }

    /// Reads the cookies a previous run of the agent recorded in `run_dir`, once.
    /// Cookies recorded since are kept.
    pub(super) fn load(&mut self, run_dir: &Path) {
        if std::mem::replace(&mut self.loaded, true) {
            return;
        }
        let path = file(run_dir);
        let recorded: BTreeMap<String, Recorded> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                warn!(path = %path.display(), %error, "ignoring unreadable endpoint namespaces");
                BTreeMap::new()
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => {
                warn!(path = %path.display(), %error, "ignoring unreadable endpoint namespaces");
                BTreeMap::new()
            }
        };
        for (id, entry) in recorded {
            self.known.entry(id).or_insert((entry.sandbox, NetnsCookie(entry.cookie)));
        }
    }

    /// Writes the cookies to `run_dir` when they changed, through a temporary file
    /// so a crash leaves the old or the new content. A failed write is logged and
    /// retried at the next call.
    pub(super) fn save(&mut self, run_dir: &Path) {
        if !self.changed {
            return;
        }
        let recorded: BTreeMap<&String, Recorded> = self
            .known
            .iter()
            .map(|(id, (sandbox, cookie))| (id, Recorded { sandbox: sandbox.clone(), cookie: cookie.0 }))
            .collect();
        let path = file(run_dir);
        let temporary = path.with_extension("json.tmp");
        let result = serde_json::to_vec(&recorded)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::create_dir_all(run_dir).and_then(|()| std::fs::write(&temporary, bytes)))
            .and_then(|()| std::fs::rename(&temporary, &path));
        match result {
            Ok(()) => self.changed = false,
            Err(error) => warn!(path = %path.display(), %error, "recording endpoint namespaces failed"),
        }
    }
}

fn file(run_dir: &Path) -> PathBuf {
    run_dir.join("endpoint-namespaces.json")
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
