//! A hand-built bridge and VXLAN pair between two host namespaces, without cloison,
//! as the yardstick for the overlay's throughput.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::command::ip;
use crate::names::Node;
use crate::{Lab, LabError};

/// VNI of the reference pair, far from what the controller allocates first.
const REFERENCE_VNI: &str = "16777000";
/// UDP port of the reference pair, so it never shares cloison's VXLAN socket.
const REFERENCE_PORT: &str = "4790";
/// VXLAN over IPv4 adds 50 bytes to each frame.
const VXLAN_OVERHEAD: u32 = 50;

/// Containers of the reference pair: (namespace path, address) on each host.
#[derive(Debug, Clone)]
pub struct ReferencePair {
    pub ends: [(PathBuf, Ipv4Addr); 2],
}

/// Builds the pair between hosts `a` and `b` (host numbers), each end a container
/// behind a bridge and a VXLAN device whose remote is the other host, like
/// `ip link add refvx type vxlan id N local A remote B dstport P nolearning`.
pub fn build(lab: &Lab, a: u8, b: u8, underlay_mtu: u32) -> Result<ReferencePair, LabError> {
    let first = build_end(lab, a, b, underlay_mtu)?;
    let second = build_end(lab, b, a, underlay_mtu)?;
    Ok(ReferencePair { ends: [first, second] })
}

fn build_end(lab: &Lab, local: u8, remote: u8, underlay_mtu: u32) -> Result<(PathBuf, Ipv4Addr), LabError> {
    let host = lab.name().netns(Node::Host(local));
    let local_ip = Node::Host(local).underlay_ip().unwrap_or(Ipv4Addr::UNSPECIFIED).to_string();
    let remote_ip = Node::Host(remote).underlay_ip().unwrap_or(Ipv4Addr::UNSPECIFIED).to_string();
    let mtu = (underlay_mtu - VXLAN_OVERHEAD).to_string();
    let container_path = lab.add_container(&format!("h{local}"), "reference")?;
    let container = container_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();

    ip(&["-n", &host, "link", "add", "refbr", "mtu", &mtu, "type", "bridge"])?;
    ip(&["-n", &host, "link", "add", "refvx", "mtu", &mtu, "type", "vxlan", "id", REFERENCE_VNI, "local", &local_ip, "remote", &remote_ip, "dstport", REFERENCE_PORT, "nolearning"])?;
    ip(&["-n", &host, "link", "add", "refv", "mtu", &mtu, "type", "veth", "peer", "name", "eth0", "netns", &container, "mtu", &mtu])?;
    for dev in ["refvx", "refv"] {
        ip(&["-n", &host, "link", "set", dev, "master", "refbr", "up"])?;
    }
    ip(&["-n", &host, "link", "set", "refbr", "up"])?;

    let address = Ipv4Addr::new(192, 168, 77, local);
    ip(&["-n", &container, "addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
    ip(&["-n", &container, "link", "set", "eth0", "up"])?;
    Ok((container_path, address))
}
