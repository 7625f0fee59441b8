//! Traffic probes run from inside a namespace: TCP servers and clients, UDP
//! datagrams, ICMP counters and nftables counters.
//!
//! Sockets are opened by a fresh thread that joined the namespace with `setns`, so
//! no external listener tool is needed and nothing runs in the machine's own
//! namespace.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use serde_json::Value;

use crate::harness::Netns;

/// Reply a [`TcpServer`] writes to every client, so a client tells a full round
/// trip from a connection that only opened.
const GREETING: &[u8] = b"cloison";

/// Runs `work` on a new thread inside the network namespace at `path`.
pub(crate) fn in_netns<T, F>(path: &str, work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let inside = path.to_string();
    std::thread::spawn(move || {
        enter(&inside);
        work()
    })
    .join()
    .unwrap_or_else(|_| panic!("a probe thread inside {path} panicked"))
}

fn enter(path: &str) {
    let file = File::open(path).unwrap_or_else(|e| panic!("cannot open namespace {path}: {e}"));
    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("cannot enter namespace {path}: {e}"));
}

/// A TCP server on one port of a namespace, answering every client with
/// [`GREETING`] until dropped.
pub(crate) struct TcpServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpServer {
    /// Listens on every IPv4 and IPv6 address of `ns` at `port`.
    pub(crate) fn start(ns: &Netns, port: u16) -> TcpServer {
        let path = ns.path();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            enter(&path);
            let listener = TcpListener::bind(("::", port))
                .unwrap_or_else(|e| panic!("cannot listen on port {port} in {path}: {e}"));
            listener
                .set_nonblocking(true)
                .expect("non-blocking listener");
            let _ = ready_tx.send(());
            serve(&listener, &flag);
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the TCP server did not start");
        TcpServer {
            stop,
            thread: Some(thread),
        }
    }
}

fn serve(listener: &TcpListener, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.write_all(GREETING);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Returns true when a TCP client in `ns` gets the server's greeting from `address`
/// within one second.
pub(crate) fn tcp_reaches(ns: &Netns, address: SocketAddr) -> bool {
    in_netns(&ns.path(), move || {
        let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        reply == GREETING
    })
}

/// Sends one UDP datagram from `ns` to `address`.
pub(crate) fn send_udp(ns: &Netns, address: SocketAddr, payload: &'static [u8]) {
    in_netns(&ns.path(), move || {
        let local: SocketAddr = if address.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .expect("valid wildcard address");
        let socket = UdpSocket::bind(local).expect("bind a UDP socket");
        socket
            .send_to(payload, address)
            .expect("send a UDP datagram");
    });
}

/// Polls `check` every 100 ms until it holds or `limit` passes; returns whether it held.
pub(crate) fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Returns the packet count of the named nftables counter in `ns`, like
/// `nft -j list counter FAMILY TABLE NAME`.
pub(crate) fn nft_counter(ns: &Netns, family: &str, table: &str, name: &str) -> u64 {
    let text = ns.exec_ok(&["nft", "-j", "list", "counter", family, table, name]);
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("nft printed invalid JSON ({e}): {text}"));
    json["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|item| item["counter"]["packets"].as_u64())
        .unwrap_or_else(|| panic!("no counter {family} {table} {name} in {text}"))
}

/// Returns a value of `/proc/net/snmp` (IPv4, such as `Icmp` `InEchos`) or
/// `/proc/net/snmp6` (such as `Icmp6InEchos`) as read inside `ns`.
pub(crate) fn snmp(ns: &Netns, group: &str, column: &str) -> u64 {
    if group == "Icmp6" {
        let text = ns.exec_ok(&["cat", "/proc/net/snmp6"]);
        let key = format!("Icmp6{column}");
        return text
            .lines()
            .filter_map(|line| line.split_once(char::is_whitespace))
            .find(|(name, _)| *name == key)
            .and_then(|(_, value)| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/net/snmp6"));
    }
    let text = ns.exec_ok(&["cat", "/proc/net/snmp"]);
    let prefix = format!("{group}:");
    let mut rows = text.lines().filter(|line| line.starts_with(&prefix));
    let (names, values) = (
        rows.next().unwrap_or_default(),
        rows.next().unwrap_or_default(),
    );
    let index = names
        .split_whitespace()
        .position(|name| name == column)
        .unwrap_or_else(|| panic!("no column {column} in the {group} rows of /proc/net/snmp"));
    values
        .split_whitespace()
        .nth(index)
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no value for {group} {column} in /proc/net/snmp"))
}
