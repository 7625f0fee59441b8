//! An underlay smaller than 1500 bytes: the overlay MTU follows it, big transfers
//! complete, and oversized don't-fragment packets get an error instead of vanishing.

mod common;

use cloison_lab::traffic::{iperf3_transfer, ping_dont_fragment};
use common::{container, ip};

/// Overlay MTU on a 1400-byte IPv4 underlay: 1400 - 50 bytes of VXLAN headers.
const OVERLAY_MTU: u32 = 1350;
/// ICMP payload filling a packet of the overlay MTU: 20 bytes IPv4, 8 bytes ICMP.
const FULL_PAYLOAD: u32 = OVERLAY_MTU - 28;

fn link_mtu(lab: &cloison_lab::Lab, netns: &std::path::Path, dev: &str) -> String {
    let out = lab.exec_in_container(netns, &["ip", "-o", "link", "show", "dev", dev]).expect("ip link show");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace().skip_while(|w| *w != "mtu").nth(1).unwrap_or_default().to_string()
}

/// Sends one UDP datagram of `size` bytes with don't-fragment set and returns
/// "sent" or "error <errno>".
fn send_udp_dont_fragment(lab: &cloison_lab::Lab, netns: &std::path::Path, target: &str, size: u32) -> String {
    // IP_MTU_DISCOVER is 10 and IP_PMTUDISC_DO is 2 in <linux/in.h>.
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.IPPROTO_IP,10,2)\n\
         try:\n    s.sendto(b'x'*{size},('{target}',9))\n    print('sent')\nexcept OSError as e:\n    print('error',e.errno)\n"
    );
    let out = lab.exec_in_container(netns, &["python3", "-c", &script]).expect("python3 (needed for the UDP check)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn small_underlay_mtu_is_honoured() {
    let lab = common::lab_with_mtu("case-mtu", 2, 1400);
    lab.create_network("blue", "web", "10.30.0.0/24", &[]).expect("network");
    let c1 = container(&lab, "h1", "c1", "blue", "web", "10.30.0.11");
    let c2 = container(&lab, "h2", "c2", "blue", "web", "10.30.0.12");

    assert_eq!(link_mtu(&lab, &c1.netns, "eth0"), OVERLAY_MTU.to_string(), "MTU of c1's eth0");
    assert_eq!(link_mtu(&lab, &c2.netns, "eth0"), OVERLAY_MTU.to_string(), "MTU of c2's eth0");

    let received = iperf3_transfer(&c1.netns, &c2.netns, ip("10.30.0.11"), 20_000_000).expect("20 MB from c2 to c1");
    assert!(received >= 20_000_000, "c1 received {received} of 20000000 bytes");

    let (passed, text) = ping_dont_fragment(&c2.netns, ip("10.30.0.11"), FULL_PAYLOAD).expect("ping");
    assert!(passed, "don't-fragment ping of {FULL_PAYLOAD} bytes (a full overlay packet) failed: {text}");
    let (passed, text) = ping_dont_fragment(&c2.netns, ip("10.30.0.11"), FULL_PAYLOAD + 1).expect("ping");
    assert!(!passed, "don't-fragment ping of {} bytes must not pass: {text}", FULL_PAYLOAD + 1);
    let lower = text.to_ascii_lowercase();
    assert!(
        lower.contains("message too long") || lower.contains("frag needed") || lower.contains("mtu"),
        "an oversized don't-fragment ping must get an error, got: {text}"
    );

    assert_eq!(send_udp_dont_fragment(&lab, &c2.netns, "10.30.0.11", 1472), "error 90", "1472-byte UDP with DF must fail with EMSGSIZE");
    assert_eq!(send_udp_dont_fragment(&lab, &c2.netns, "10.30.0.11", OVERLAY_MTU - 28), "sent", "UDP that fits the overlay MTU");
}
