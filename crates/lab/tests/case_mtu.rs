//! An underlay smaller than 1500 bytes: the overlay MTU follows it, big transfers
//! complete, and oversized don't-fragment packets get an error instead of vanishing.

mod common;

use cloison_lab::traffic::ping_dont_fragment;
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

/// Sends `bytes` over one TCP connection from `client` to a receiver in `server` that
/// counts until end of stream, and returns that count. iperf3's own count can stop
/// before the last bytes in flight arrive, so it cannot tell a completed transfer.
fn transfer(lab: &cloison_lab::Lab, server: &std::path::Path, client: &std::path::Path, address: &str, bytes: u64) -> u64 {
    let receiver = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('{address}',5001))\ns.listen(1)\n\
         c,_=s.accept()\nn=0\nwhile True:\n    d=c.recv(65536)\n    if not d: break\n    n+=len(d)\nprint(n)\n"
    );
    let sender = format!(
        "import socket,time\nfor i in range(50):\n    try:\n        s=socket.create_connection(('{address}',5001))\n        break\n    except OSError:\n        time.sleep(0.1)\n\
         s.sendall(b'x'*{bytes})\ns.shutdown(socket.SHUT_WR)\ns.recv(1)\n"
    );
    let server_path = server.to_path_buf();
    let receiving = std::thread::spawn(move || {
        std::process::Command::new("nsenter")
            .arg(format!("--net={}", server_path.display()))
            .args(["--", "timeout", "60", "python3", "-c", &receiver])
            .output()
    });
    lab.exec_in_container(client, &["timeout", "60", "python3", "-c", &sender]).expect("sender");
    let output = receiving.join().expect("receiver thread").expect("receiver");
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or_else(|_| panic!("receiver output {output:?}"))
}

#[test]
fn small_underlay_mtu_is_honoured() {
    let lab = common::lab_with_mtu("case-mtu", 2, 1400);
    lab.create_network("blue", "web", "10.30.0.0/24", &[]).expect("network");
    let c1 = container(&lab, "h1", "c1", "blue", "web", "10.30.0.11");
    let c2 = container(&lab, "h2", "c2", "blue", "web", "10.30.0.12");

    assert_eq!(link_mtu(&lab, &c1.netns, "eth0"), OVERLAY_MTU.to_string(), "MTU of c1's eth0");
    assert_eq!(link_mtu(&lab, &c2.netns, "eth0"), OVERLAY_MTU.to_string(), "MTU of c2's eth0");

    let received = transfer(&lab, &c1.netns, &c2.netns, "10.30.0.11", 20_000_000);
    assert_eq!(received, 20_000_000, "bytes c1 received of 20 MB sent by c2");

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
