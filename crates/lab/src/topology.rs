//! The lab's wiring: an underlay namespace holding a bridge, and one veth from that
//! bridge to each host namespace, to the controller namespace and to the `outside`
//! namespace, which stands for the world beyond the hosts and is their default
//! gateway.
//!
//! Every link is created from inside the underlay namespace (`ip -n`) and its peer
//! moved straight into the target namespace, so nothing ever appears in the
//! machine's own namespace.

use crate::command::ip;
use crate::names::{LabName, Node, OUTSIDE_IP, UNDERLAY_PREFIX, WORLD_IP};
use crate::{netns, LabError};

/// Name of the underlay bridge inside the underlay namespace.
pub const UNDERLAY_BRIDGE: &str = "br0";

/// Name of a node's underlay interface inside its own namespace.
pub const UNDERLAY_IFNAME: &str = "eth0";

/// Creates the underlay namespace and bridge, then the controller's, the outside's
/// and every host's namespace wired to it, all links at MTU `mtu`. Each host's
/// default route goes via the outside node.
pub(crate) fn build(lab: &LabName, hosts: usize, mtu: u32) -> Result<(), LabError> {
    let underlay = lab.netns(Node::Underlay);
    let mtu = mtu.to_string();
    netns::create(&underlay)?;
    // Like `ip link add br0 mtu M type bridge stp_state 0`: without STP a port
    // forwards as soon as it is up.
    ip(&["-n", &underlay, "link", "add", UNDERLAY_BRIDGE, "mtu", &mtu, "type", "bridge", "stp_state", "0"])?;
    ip(&["-n", &underlay, "link", "set", UNDERLAY_BRIDGE, "up"])?;
    connect(lab, Node::Controller, &mtu)?;
    build_outside(lab, &mtu)?;
    for host in 1..=hosts {
        let number = u8::try_from(host).map_err(|_| LabError::InvalidHostCount { count: hosts, max: u8::MAX.into() })?;
        connect(lab, Node::Host(number), &mtu)?;
        let target = lab.netns(Node::Host(number));
        ip(&["-n", &target, "route", "add", "default", "via", &OUTSIDE_IP.to_string()])?;
    }
    Ok(())
}

/// Creates the outside node: its underlay address, and the world address on its
/// loopback so that reaching it from a host takes the host's default route. The
/// address sits on the loopback because the `dummy` link type needs a kernel module that a
/// machine may lack.
fn build_outside(lab: &LabName, mtu: &str) -> Result<(), LabError> {
    connect(lab, Node::Outside, mtu)?;
    let outside = lab.netns(Node::Outside);
    ip(&["-n", &outside, "addr", "add", &format!("{WORLD_IP}/32"), "dev", "lo"])?;
    Ok(())
}

/// Creates `node`'s namespace and joins it to the underlay bridge with its address.
fn connect(lab: &LabName, node: Node, mtu: &str) -> Result<(), LabError> {
    let underlay = lab.netns(Node::Underlay);
    let target = lab.netns(node);
    netns::create(&target)?;
    let port = format!("p-{}", node.label());
    // Like `ip link add p-h1 mtu M type veth peer name eth0 netns cl-L.h1 mtu M`.
    ip(&["-n", &underlay, "link", "add", &port, "mtu", mtu, "type", "veth", "peer", "name", UNDERLAY_IFNAME, "netns", &target, "mtu", mtu])?;
    ip(&["-n", &underlay, "link", "set", &port, "master", UNDERLAY_BRIDGE, "up"])?;
    if let Some(address) = node.underlay_ip() {
        let cidr = format!("{address}/{UNDERLAY_PREFIX}");
        ip(&["-n", &target, "addr", "add", &cidr, "dev", UNDERLAY_IFNAME])?;
    }
    ip(&["-n", &target, "link", "set", UNDERLAY_IFNAME, "up"])?;
    Ok(())
}
