//! The repair pass's nftables counts against a real kernel, inside a throw-away
//! namespace: a set of 100,000 elements is counted exactly, and so are the changes
//! made behind the agent's back. Needs root, iproute2 and `nft`.

#![allow(clippy::print_stderr)]

mod support;

use std::net::Ipv4Addr;
use std::time::Instant;

use cloison_dataplane::{Dataplane, NetlinkDataplane, NftCounts, NftablesPlan};
use support::{require_root, Netns, RunDir};

const TABLE: &str = "inet cltest";
const ELEMENTS: u32 = 100_000;

/// A table shaped like cloison's: a concatenated interval set (the group rules),
/// a plain set and a map, used by one rule.
const TABLE_SCRIPT: &str = "table inet cltest {
    set allow { type ipv4_addr . inet_service; flags interval; }
    set ports { type ifname; elements = { \"clh1\", \"clh2\" } }
    map zone { typeof iifname : ct zone; }
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip saddr . tcp dport @allow accept
    }
}
";

/// Returns `add element` lines putting `count` distinct `address . port` elements in `allow`.
fn elements_script(count: u32) -> String {
    let mut script = String::new();
    let base = u32::from(Ipv4Addr::new(172, 16, 0, 0));
    for chunk in (0..count).collect::<Vec<_>>().chunks(5000) {
        let elements: Vec<String> = chunk.iter().map(|i| format!("{} . {}", Ipv4Addr::from(base + i), 1000 + i % 50_000)).collect();
        script.push_str(&format!("add element inet cltest allow {{ {} }}\n", elements.join(", ")));
    }
    script
}

async fn apply(dataplane: &NetlinkDataplane, script: String) {
    let plan = NftablesPlan { namespace: None, script, tables: vec![TABLE.to_string()], forwarding: None };
    dataplane.apply_nftables(&plan).await.expect("nft -f");
}

async fn counts(dataplane: &NetlinkDataplane) -> NftCounts {
    dataplane.nftables_counts(None, &[TABLE.to_string()]).await.expect("count nftables objects")
}

#[tokio::test]
async fn large_set_and_changes_counted() {
    require_root();
    let netns = Netns::new("nftcount");
    let run_dir = RunDir::new();
    let dataplane = NetlinkDataplane::in_namespace(netns.path(), run_dir.path.clone()).expect("open namespace");
    apply(&dataplane, TABLE_SCRIPT.to_string()).await;
    apply(&dataplane, elements_script(ELEMENTS)).await;

    let started = Instant::now();
    let counted = counts(&dataplane).await;
    eprintln!("counting a table with {ELEMENTS} set elements took {:?}", started.elapsed());

    let expected: NftCounts = [
        (TABLE.to_string(), 1),
        (format!("{TABLE} set allow"), ELEMENTS as usize),
        (format!("{TABLE} set ports"), 2),
        (format!("{TABLE} set zone"), 0),
        (format!("{TABLE} chain forward"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(counted, expected);

    apply(&dataplane, "delete element inet cltest allow { 172.16.0.7 . 1007 }\n".to_string()).await;
    assert_eq!(counts(&dataplane).await.get(&format!("{TABLE} set allow")), Some(&(ELEMENTS as usize - 1)), "one element deleted");

    // Not `allow`: flushing 100,000 concatenated intervals took 42 s of kernel time
    // on Linux 6.18, where deleting the whole table takes milliseconds.
    apply(&dataplane, "flush set inet cltest ports\nflush chain inet cltest forward\n".to_string()).await;
    let flushed = counts(&dataplane).await;
    assert_eq!(flushed.get(&format!("{TABLE} set ports")), Some(&0), "set flushed: {flushed:?}");
    assert_eq!(flushed.get(&format!("{TABLE} chain forward")), Some(&0), "chain flushed: {flushed:?}");

    apply(&dataplane, "flush ruleset\n".to_string()).await;
    assert_eq!(counts(&dataplane).await, NftCounts::new(), "nothing is left after a flushed ruleset");
}

/// CPU seconds (user and system) of this process and its waited-for children.
/// The peak RSS of one `nft` is measured outside, with `/usr/bin/time`.
fn cpu_seconds() -> f64 {
    let read = |who| {
        // SAFETY: getrusage(2) only writes the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is a valid, writable rusage.
        unsafe { libc::getrusage(who, &mut usage) };
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let (own, children) = (read(libc::RUSAGE_SELF), read(libc::RUSAGE_CHILDREN));
    seconds(own.ru_utime) + seconds(own.ru_stime) + seconds(children.ru_utime) + seconds(children.ru_stime)
}

/// Peak resident memory of this process, in KiB, from /proc/self/status.
fn own_peak_rss() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|kb| kb.parse().ok()).unwrap_or(0)
}

#[tokio::test]
#[ignore = "measurement, not a check; run explicitly in release"]
async fn count_cost() {
    require_root();
    let netns = Netns::new("nftcost");
    let run_dir = RunDir::new();
    let dataplane = NetlinkDataplane::in_namespace(netns.path(), run_dir.path.clone()).expect("open namespace");
    // CLOISON_NFT_SCRIPT names a ruleset to load instead, such as the agent's host
    // tables for `cloison_policy::synthetic_input(100_000, 10)`.
    match std::env::var("CLOISON_NFT_SCRIPT") {
        Ok(path) => apply(&dataplane, std::fs::read_to_string(path).expect("read CLOISON_NFT_SCRIPT")).await,
        Err(_) => {
            apply(&dataplane, TABLE_SCRIPT.to_string()).await;
            apply(&dataplane, elements_script(ELEMENTS)).await;
        }
    }
    let tables = dataplane.list_nftables(None).await.expect("list tables");

    let (cpu, rss, started) = (cpu_seconds(), own_peak_rss(), Instant::now());
    let counted = dataplane.nftables_counts(None, &tables).await.expect("count nftables objects");
    let after = cpu_seconds();
    let sets: usize = counted.iter().filter(|(key, _)| key.contains(" set ")).map(|(_, count)| count).sum();
    eprintln!(
        "counts: {:?} wall, {:.3} s CPU, own peak RSS {} → {} KiB; {sets} set elements in {tables:?}",
        started.elapsed(),
        after - cpu,
        rss,
        own_peak_rss(),
    );

    // The former check: the whole ruleset as JSON, parsed in the agent.
    let started = Instant::now();
    let output = std::process::Command::new("ip")
        .args(["netns", "exec", &netns.name, "nft", "-j", "list", "ruleset"])
        .output()
        .expect("run nft");
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("nft JSON");
    let elements: usize = document["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("set").or_else(|| o.get("map"))?.get("elem")?.as_array().map(Vec::len))
        .sum();
    let end = cpu_seconds();
    eprintln!(
        "nft -j list ruleset + parse: {:?} wall, {:.3} s CPU, own peak RSS {} KiB; {elements} elements",
        started.elapsed(),
        end - after,
        own_peak_rss()
    );
}
