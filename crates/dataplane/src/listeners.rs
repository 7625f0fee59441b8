//! Sockets of the host's own services: TCP listeners and bound UDP sockets, as
//! `/proc/net/{tcp,tcp6,udp,udp6}` list them. A publication must not take a port
//! such a service already uses, or its traffic would go to the endpoint.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A TCP listener or a bound UDP socket of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    /// `true` for UDP, `false` for TCP.
    pub udp: bool,
    /// The bound address: unspecified for every address of the host.
    pub address: IpAddr,
    pub port: u16,
}

/// The kernel's state number of a listening TCP socket (`TCP_LISTEN`).
const TCP_LISTEN: &str = "0A";
/// The kernel's state number of an unconnected UDP socket (`TCP_CLOSE`).
const UDP_UNCONNECTED: &str = "07";

/// Parses one `/proc/net/{tcp,tcp6,udp,udp6}` table and returns its listeners.
/// Lines that do not parse are skipped: the header, and any format change.
pub fn parse_proc_net(text: &str, udp: bool) -> Vec<Listener> {
    let listening = if udp { UDP_UNCONNECTED } else { TCP_LISTEN };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state) = (fields.get(1)?, fields.get(3)?);
            if *state != listening {
                return None;
            }
            let (address, port) = local.split_once(':')?;
            Some(Listener { udp, address: parse_address(address)?, port: u16::from_str_radix(port, 16).ok()? })
        })
        .collect()
}

/// Parses an address as `/proc/net` prints it: each 32-bit word of the address as
/// the host reads it from memory, in hexadecimal, so its native-endian bytes are
/// the address bytes.
fn parse_address(hex: &str) -> Option<IpAddr> {
    let mut bytes = Vec::with_capacity(16);
    for i in 0..hex.len() / 8 {
        let word = u32::from_str_radix(hex.get(8 * i..8 * i + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    match <[u8; 4]>::try_from(bytes.as_slice()) {
        Ok(v4) => Some(IpAddr::V4(Ipv4Addr::from(v4))),
        Err(_) => <[u8; 16]>::try_from(bytes.as_slice()).ok().map(|v6| IpAddr::V6(Ipv6Addr::from(v6))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1CFC 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0B00C80A:1CFC 0C00C80A:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
";

    #[test]
    fn tcp_listeners_parsed() {
        let listeners = parse_proc_net(TCP, false);
        assert_eq!(
            listeners,
            vec![
                Listener { udp: false, address: IpAddr::V4(Ipv4Addr::UNSPECIFIED), port: 7420 },
                Listener { udp: false, address: IpAddr::V4(Ipv4Addr::LOCALHOST), port: 22 },
            ]
        );
    }

    #[test]
    fn udp6_socket_parsed() {
        let text = "  sl  local_address                         remote_address                        st\n   0: 00000000000000000000000001000000:12B5 00000000000000000000000000000000:0000 07 0\n";
        let listeners = parse_proc_net(text, true);
        assert_eq!(listeners, vec![Listener { udp: true, address: IpAddr::V6(Ipv6Addr::LOCALHOST), port: 4789 }]);
    }
}
