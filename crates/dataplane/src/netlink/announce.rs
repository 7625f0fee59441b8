//! Announcing a new endpoint: a gratuitous ARP and an unsolicited neighbour
//! advertisement, sent as raw frames from inside its sandbox so that peers and
//! the gateway replace stale entries for its addresses at once.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use cloison_model::MacAddr;

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const BROADCAST: [u8; 6] = [0xff; 6];
/// `ff02::1`, all nodes, and its Ethernet multicast address.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// Opens a send-only packet socket in the calling thread's namespace. Protocol 0
/// means the socket receives nothing.
pub(super) fn open_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends one gratuitous ARP request for `ip` out of interface `ifindex`.
pub(super) fn send_gratuitous_arp(socket: &OwnedFd, ifindex: u32, mac: MacAddr, ip: Ipv4Addr) -> io::Result<()> {
    send(socket, ifindex, ETH_P_ARP, BROADCAST, &arp_frame(mac.0, ip))
}

/// Sends one unsolicited neighbour advertisement (override flag set) for `ip`
/// to all nodes, out of interface `ifindex`.
pub(super) fn send_unsolicited_na(socket: &OwnedFd, ifindex: u32, mac: MacAddr, ip: Ipv6Addr) -> io::Result<()> {
    send(socket, ifindex, ETH_P_IPV6, ALL_NODES_MAC, &na_frame(mac.0, ip))
}

/// Builds the 42-byte Ethernet frame of an ARP request whose sender and target
/// addresses are both `ip`, the form of gratuitous ARP that Linux peers accept.
fn arp_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut frame = [0u8; 42];
    frame[0..6].copy_from_slice(&BROADCAST);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    // Hardware Ethernet (1), protocol IPv4, address lengths 6 and 4, op request (1).
    frame[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&ip.octets());
    // Target hardware address stays zero.
    frame[38..42].copy_from_slice(&ip.octets());
    frame
}

/// Builds the 86-byte Ethernet frame of a neighbour advertisement for `ip` with a
/// target link-layer address option, from `ip` to `ff02::1`, hop limit 255.
fn na_frame(mac: [u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    let mut icmp = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    icmp.extend_from_slice(&ip.octets());
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&mac);
    let checksum = icmpv6_checksum(ip, ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

    let mut frame = Vec::with_capacity(86);
    frame.extend_from_slice(&ALL_NODES_MAC);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    // Version 6, no traffic class or flow label, payload length, ICMPv6 (58), hop limit 255.
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[58, 255]);
    frame.extend_from_slice(&ip.octets());
    frame.extend_from_slice(&ALL_NODES.octets());
    frame.extend_from_slice(&icmp);
    frame
}

/// Computes the ICMPv6 checksum over the IPv6 pseudo-header and the message (RFC 4443).
fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40 + message.len());
    pseudo.extend_from_slice(&source.octets());
    pseudo.extend_from_slice(&destination.octets());
    pseudo.extend_from_slice(&(message.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(message);
    let mut sum: u32 = pseudo
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn send(socket: &OwnedFd, ifindex: u32, protocol: u16, destination: [u8; 6], frame: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data, so all-zero is a valid value.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol.to_be();
    address.sll_ifindex = i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    address.sll_halen = 6;
    address.sll_addr[..6].copy_from_slice(&destination);
    // SAFETY: frame and address outlive the call, and the lengths passed are theirs.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            std::ptr::addr_of!(address).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_frame_is_gratuitous_request() {
        let frame = arp_frame([0x0a, 1, 2, 3, 4, 5], Ipv4Addr::new(10, 0, 0, 7));
        assert_eq!(&frame[0..6], &BROADCAST);
        assert_eq!(&frame[12..14], &[0x08, 0x06]);
        assert_eq!(&frame[20..22], &[0, 1], "operation is request");
        assert_eq!(&frame[28..32], &[10, 0, 0, 7], "sender address");
        assert_eq!(&frame[38..42], &[10, 0, 0, 7], "target address");
    }

    #[test]
    fn na_checksum_verifies_to_zero() {
        let ip: Ipv6Addr = "fd00::7".parse().expect("literal address");
        let frame = na_frame([0x0a, 1, 2, 3, 4, 5], ip);
        assert_eq!(frame.len(), 86);
        // Summing a message that includes its own checksum yields 0 after complement.
        assert_eq!(icmpv6_checksum(ip, ALL_NODES, &frame[54..]), 0);
    }
}
