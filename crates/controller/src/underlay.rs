//! The check that keeps hosts' underlay addresses out of overlay subnets.
//!
//! Each tenant's router routes the subnets of the tenant's networks into those networks.
//! A subnet containing a host's underlay address would therefore send the router's
//! replies to that host (published ports, egress NAT) into the network instead.

use std::net::IpAddr;

use cloison_model::{Host, NetworkSpec};

use crate::ControllerError;

/// Fails when the IPv4 or IPv6 subnet of `spec` contains the underlay address of one
/// of `hosts`, naming the first such host.
pub(crate) fn check_subnets(spec: &NetworkSpec, hosts: &[Host]) -> Result<(), ControllerError> {
    for host in hosts {
        let subnet = match host.underlay_ip {
            IpAddr::V4(address) if spec.subnet.contains(&address) => Some(spec.subnet.to_string()),
            IpAddr::V4(_) => None,
            IpAddr::V6(address) => spec.subnet6.filter(|s| s.contains(&address)).map(|s| s.to_string()),
        };
        if let Some(subnet) = subnet {
            return Err(ControllerError::UnderlayOverlap {
                subnet,
                address: host.underlay_ip.to_string(),
                host: host.name.clone(),
            });
        }
    }
    Ok(())
}
