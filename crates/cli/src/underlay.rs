//! Discovery of this host's underlay address and MTU.

use std::net::{IpAddr, Ipv4Addr};

/// Returns the first global IPv4 address of the interface carrying the default
/// route, or 127.0.0.1 when there is none (a single host needs no underlay).
pub(crate) fn default_underlay_ip() -> IpAddr {
    default_route_interface()
        .and_then(|ifname| interface_ipv4(&ifname))
        .map(IpAddr::V4)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn default_route_interface() -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&"00000000")).then(|| fields[0].to_string())
    })
}

fn interface_ipv4(ifname: &str) -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifaddr| {
        if ifaddr.interface_name != ifname {
            return None;
        }
        ifaddr.address?.as_sockaddr_in().map(|s| s.ip())
    })
}
