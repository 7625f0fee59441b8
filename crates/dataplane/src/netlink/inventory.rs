//! Inventory: everything on the host that carries cloison's mark, read back from
//! the kernel so that a restarted agent can adopt it or remove it.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use cloison_model::MacAddr;
use netlink_packet_route::link::{InfoKind, InfoVxlan};
use netlink_packet_route::AddressFamily;
use rtnetlink::Handle;

use super::fdb;
use super::links::{self, Link};
use crate::{names, DataplaneError, Inventory, OwnedEndpoint, OwnedNetwork, RemoteEndpointPlan};

/// Collects cloison's links, remote endpoint entries and router namespaces.
pub(super) async fn collect(host: &Handle, run_dir: &Path) -> Result<Inventory, DataplaneError> {
    let owned: Vec<Link> = links::dump(host)
        .await?
        .into_iter()
        .filter(|l| l.alias.as_deref().is_some_and(|a| a.starts_with(names::ALIAS_PREFIX)))
        .collect();
    let vxlans: BTreeMap<u32, String> = owned
        .iter()
        .filter(|l| l.kind == Some(InfoKind::Vxlan))
        .map(|l| (l.index, l.name.clone()))
        .collect();
    Ok(Inventory {
        networks: networks(&owned),
        endpoints: endpoints(&owned),
        remote_endpoints: remote_endpoints(host, &vxlans).await?,
        routers: routers(run_dir)?,
    })
}

/// Merges bridges and VXLAN devices per network id.
fn networks(owned: &[Link]) -> Vec<OwnedNetwork> {
    let prefix = names::network_alias("");
    let mut networks: BTreeMap<String, OwnedNetwork> = BTreeMap::new();
    for link in owned {
        let Some(id) = link.alias.as_deref().and_then(|a| a.strip_prefix(&prefix)) else {
            continue;
        };
        let network = networks.entry(id.to_string()).or_insert_with(|| OwnedNetwork {
            network_id: id.to_string(),
            vni: 0,
            bridge: None,
            vxlan: None,
        });
        match link.kind {
            Some(InfoKind::Vxlan) => {
                network.vxlan = Some(link.name.clone());
                network.vni = vni_of(link).unwrap_or(network.vni);
            }
            Some(InfoKind::Bridge) => {
                network.bridge = Some(link.name.clone());
                if network.vni == 0 {
                    network.vni = vni_from_bridge_name(&link.name).unwrap_or(0);
                }
            }
            _ => {}
        }
    }
    networks.into_values().collect()
}

fn vni_of(link: &Link) -> Option<u32> {
    link.vxlan.iter().find_map(|setting| match setting {
        InfoVxlan::Id(vni) => Some(*vni),
        _ => None,
    })
}

/// Reads the VNI back from a bridge name built by [`names::bridge`].
fn vni_from_bridge_name(name: &str) -> Option<u32> {
    u32::from_str_radix(name.strip_prefix("clb")?, 16).ok()
}

fn endpoints(owned: &[Link]) -> Vec<OwnedEndpoint> {
    let prefix = names::endpoint_alias("");
    owned
        .iter()
        .filter_map(|link| {
            let id = link.alias.as_deref()?.strip_prefix(&prefix)?;
            Some(OwnedEndpoint {
                endpoint_id: id.to_string(),
                host_ifname: link.name.clone(),
            })
        })
        .collect()
}

/// Merges the static FDB and neighbour entries of cloison's VXLAN devices per
/// MAC, in the order of the FDB dump. An FDB entry with no IPv4 neighbour entry is
/// reported with the IPv4 address `0.0.0.0`, so that the agent can still find and
/// remove it.
async fn remote_endpoints(
    host: &Handle,
    vxlans: &BTreeMap<u32, String>,
) -> Result<Vec<RemoteEndpointPlan>, DataplaneError> {
    // The repair pass calls this every 2 s, so the entries go straight into the
    // returned vector, without a sorted map to copy them from, and an index by
    // device and MAC finds them for their neighbour entries.
    let mut remotes: Vec<RemoteEndpointPlan> = Vec::new();
    let mut positions: HashMap<(u32, [u8; 6]), usize> = HashMap::new();
    for entry in fdb::fdb_entries(host).await? {
        let Some(vxlan) = vxlans.get(&entry.ifindex) else { continue };
        if entry.mac == [0; 6] || !entry.permanent {
            continue;
        }
        let plan = RemoteEndpointPlan {
            vxlan: vxlan.clone(),
            mac: MacAddr(entry.mac),
            ipv4: Ipv4Addr::UNSPECIFIED,
            ipv6: None,
            vtep: entry.vtep,
        };
        match positions.entry((entry.ifindex, entry.mac)) {
            Entry::Occupied(position) => remotes[*position.get()] = plan,
            Entry::Vacant(position) => {
                position.insert(remotes.len());
                remotes.push(plan);
            }
        }
    }
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        for neighbour in fdb::neighbours(host, family).await? {
            let Some(&position) = positions.get(&(neighbour.ifindex, neighbour.mac)) else { continue };
            let remote = &mut remotes[position];
            match neighbour.ip {
                IpAddr::V4(v4) if neighbour.permanent => remote.ipv4 = v4,
                IpAddr::V6(v6) if neighbour.permanent => remote.ipv6 = Some(v6),
                _ => {}
            }
        }
    }
    Ok(remotes)
}

/// Lists the files under `run_dir/netns`, where router namespaces are pinned.
fn routers(run_dir: &Path) -> Result<Vec<PathBuf>, DataplaneError> {
    let dir = run_dir.join("netns");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io_error(&dir, source)),
    };
    let mut routers = Vec::new();
    for entry in entries {
        routers.push(entry.map_err(|e| io_error(&dir, e))?.path());
    }
    routers.sort();
    Ok(routers)
}

fn io_error(dir: &Path, source: std::io::Error) -> DataplaneError {
    DataplaneError::Io {
        op: format!("list {}", dir.display()),
        source,
    }
}
