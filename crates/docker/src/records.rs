//! The driver's own records, keyed by Docker's network id. Docker does not replay
//! `CreateNetwork` after a restart of either daemon, so these survive in a file.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::DriverError;

/// The cloison network a Docker network is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkBinding {
    pub tenant: String,
    pub network: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// True when this driver created the cloison network, so `docker network rm`
    /// may delete it; a network that existed before is only unbound.
    pub created: bool,
}

/// Docker network id to binding, stored as JSON at `path` (None: memory only).
#[derive(Debug, Default)]
pub struct Records {
    path: Option<PathBuf>,
    networks: BTreeMap<String, NetworkBinding>,
}

impl Records {
    /// Loads the records from `path`, starting empty when the file does not exist.
    pub fn load(path: &Path) -> Result<Self, DriverError> {
        let error = |source| DriverError::Records {
            path: path.display().to_string(),
            source,
        };
        let networks = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| error(e.into()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(error(e)),
        };
        Ok(Self {
            path: Some(path.to_path_buf()),
            networks,
        })
    }

    /// Returns records kept in memory only, for tests.
    pub fn in_memory() -> Self {
        Self::default()
    }

    pub fn get(&self, network_id: &str) -> Option<&NetworkBinding> {
        self.networks.get(network_id)
    }

    /// Returns every binding whose subnet is `subnet`, with its Docker network id.
    pub fn with_subnet(&self, subnet: Ipv4Net) -> impl Iterator<Item = (&String, &NetworkBinding)> {
        self.networks.iter().filter(move |(_, b)| b.subnet == subnet)
    }

    /// Returns the subnets of every binding.
    pub fn subnets(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        self.networks.values().map(|b| b.subnet)
    }

    /// Returns how many Docker networks of this daemon are bound to one cloison network.
    pub fn count_bound(&self, tenant: &str, network: &str) -> usize {
        self.networks
            .values()
            .filter(|b| b.tenant == tenant && b.network == network)
            .count()
    }

    /// Stores a binding and writes the file before returning.
    pub fn insert(&mut self, network_id: &str, binding: NetworkBinding) -> Result<(), DriverError> {
        self.networks.insert(network_id.to_string(), binding);
        self.save()
    }

    /// Removes a binding and writes the file before returning.
    pub fn remove(&mut self, network_id: &str) -> Result<Option<NetworkBinding>, DriverError> {
        let removed = self.networks.remove(network_id);
        self.save()?;
        Ok(removed)
    }

    /// Writes the file through a temporary file and a rename, so a crash leaves
    /// the old or the new records, never half of them.
    fn save(&self) -> Result<(), DriverError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let error = |source| DriverError::Records {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(error)?;
        }
        let bytes = serde_json::to_vec_pretty(&self.networks).map_err(|e| error(e.into()))?;
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, bytes).map_err(error)?;
        std::fs::rename(&temporary, path).map_err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> NetworkBinding {
        NetworkBinding {
            tenant: "blue".into(),
            network: "web".into(),
            subnet: "10.1.0.0/24".parse().expect("subnet"),
            gateway: Ipv4Addr::new(10, 1, 0, 1),
            created: true,
        }
    }

    #[test]
    fn records_survive_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker.json");
        let mut records = Records::load(&path).expect("empty");
        records.insert("abc", binding()).expect("insert");
        let reloaded = Records::load(&path).expect("reload");
        assert_eq!(reloaded.get("abc"), Some(&binding()));
        assert_eq!(reloaded.count_bound("blue", "web"), 1);
    }

    #[test]
    fn corrupt_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker.json");
        std::fs::write(&path, b"{not json").expect("write");
        let err = Records::load(&path).expect_err("corrupt");
        assert!(err.to_string().contains("docker.json"), "{err}");
    }
}
