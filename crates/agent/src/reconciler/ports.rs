//! Published ports that a host service already uses. Programming such a
//! publication would send the service's traffic to the endpoint (an SSH server, the
//! controller's own API), so it waits until the port is free. A publication keeps
//! its port once programmed, like a bound socket.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use cloison_dataplane::Listener;
use cloison_model::{Publication, PublishProtocol};
use tracing::{info, warn};

use super::{Inner, Reconciler};

/// The publications of this host that are programmed, and those waiting for their port.
#[derive(Debug, Default)]
pub(super) struct PortGuard {
    programmed: BTreeSet<String>,
    waiting: BTreeSet<String>,
}

impl Reconciler {
    /// Returns the publications to program when some of this host's new ones must
    /// wait for their port, `None` when all of them may be programmed.
    pub(super) async fn admitted_publications(&self, inner: &mut Inner) -> Option<BTreeMap<String, Publication>> {
        let host = self.ctx.host.as_str();
        let own: BTreeSet<String> = inner.desired.publications.values().filter(|p| p.host == host).map(|p| p.id.clone()).collect();
        let guard = &mut inner.policy.ports;
        guard.programmed.retain(|id| own.contains(id));
        let new: Vec<&Publication> = inner.desired.publications.values().filter(|p| p.host == host && !guard.programmed.contains(&p.id)).collect();
        if new.is_empty() {
            guard.waiting.clear();
            return None;
        }
        let listeners = match self.dataplane.host_listeners().await {
            Ok(listeners) => listeners,
            Err(error) => {
                warn!(%error, "listing the host's listening sockets failed; programming new publications unchecked");
                Vec::new()
            }
        };
        let waiting = guard.sort(new, &listeners);
        guard.waiting = waiting;

        if guard.waiting.is_empty() {
            return None;
        }
        let waiting = &guard.waiting;
        Some(inner.desired.publications.iter().filter(|(_, p)| !waiting.contains(&p.id)).map(|(k, p)| (k.clone(), p.clone())).collect())
    }
}

impl PortGuard {
    /// Marks the new publications whose port is free as programmed, logs those that
    /// start waiting or stop waiting, and returns the ids of those that wait.
    fn sort(&mut self, new: Vec<&Publication>, listeners: &[Listener]) -> BTreeSet<String> {
        let mut waiting = BTreeSet::new();
        for publication in new {
            match listeners.iter().find(|l| clashes(publication, l)) {
                Some(listener) => {
                    if !self.waiting.contains(&publication.id) {
                        warn!(publication.name = %publication.name, tenant.name = %publication.tenant, host_port = publication.host_port, listener = %listener.address,
                            "a host service already uses this port; the publication waits until it is free (unpublish it or stop the service)");
                    }
                    waiting.insert(publication.id.clone());
                }
                None => {
                    if self.waiting.contains(&publication.id) {
                        info!(publication.name = %publication.name, host_port = publication.host_port, "port is free now; programming the publication");
                    }
                    self.programmed.insert(publication.id.clone());
                }
            }
        }
        waiting
    }
}

/// Returns true when `publication` would take traffic meant for `listener`: same
/// protocol and port, and an address in common. A publication without a host
/// address takes every IPv4 address of the host.
fn clashes(publication: &Publication, listener: &Listener) -> bool {
    let udp = publication.protocol == PublishProtocol::Udp;
    if listener.udp != udp || listener.port != publication.host_port {
        return false;
    }
    // NOTE: /proc/net/tcp6 does not show IPV6_V6ONLY, so an IPv6-only listener on
    // [::] is taken for a dual-stack one and delays the IPv4 publication.
    let ipv4_capable = match listener.address {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.is_unspecified() || v6.to_ipv4_mapped().is_some(),
    };
    match publication.host_ip {
        None => ipv4_capable,
        Some(address) => listener.address.is_unspecified() || listener.address == address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(host_ip: Option<&str>, port: u16, protocol: PublishProtocol) -> Publication {
        Publication {
            id: "p".into(),
            tenant: "t".into(),
            name: "e-p".into(),
            endpoint: "e".into(),
            endpoint_id: "e".into(),
            host: "h1".into(),
            host_ip: host_ip.map(|a| a.parse().expect("address")),
            host_port: port,
            port: 80,
            protocol,
            resource_version: 0,
        }
    }

    fn listener(address: &str, port: u16, udp: bool) -> Listener {
        Listener { udp, address: address.parse().expect("address"), port }
    }

    #[test]
    fn clash_cases() {
        let any = publication(None, 22, PublishProtocol::Tcp);
        assert!(clashes(&any, &listener("0.0.0.0", 22, false)), "wildcard listener");
        assert!(clashes(&any, &listener("127.0.0.1", 22, false)), "loopback listener");
        assert!(clashes(&any, &listener("::", 22, false)), "dual-stack listener");
        assert!(!clashes(&any, &listener("fd00::1", 22, false)), "IPv6-only listener");
        assert!(!clashes(&any, &listener("0.0.0.0", 22, true)), "other protocol");
        assert!(!clashes(&any, &listener("0.0.0.0", 23, false)), "other port");
        let bound = publication(Some("10.0.0.1"), 53, PublishProtocol::Udp);
        assert!(clashes(&bound, &listener("10.0.0.1", 53, true)), "same address");
        assert!(clashes(&bound, &listener("0.0.0.0", 53, true)), "wildcard listener");
        assert!(!clashes(&bound, &listener("10.0.0.2", 53, true)), "other address");
    }
}
