//! `cloison lab demo`: two tenants with the same subnet on three hosts, their
//! reachability, convergence and throughput.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::converge::{measure, prepare_prober, ConvergenceSample, ConvergenceTarget};
use crate::traffic::{iperf3_throughput, ping_reply_ttls, set_default_ttl};
use crate::{check_prerequisites, names::Node, reference, Lab, LabError, LabSpec, TRAFFIC_TOOLS};

/// Both tenants' networks use this subnet.
const SUBNET: &str = "10.10.0.0/24";
const NETWORK: &str = "web";
/// Duration of each iperf3 run, in seconds.
const IPERF_SECONDS: u32 = 5;

/// The demo's endpoints: tenant, name, host, last byte of the address. r1's address
/// exists only in red and b1's and b2's only in blue, so a cross-tenant ping to them
/// must go unanswered. r2 and b3 share 10.10.0.13 to show that the same address in
/// two tenants reaches only the endpoint of the sender's tenant.
const ENDPOINTS: &[(&str, &str, &str, u8)] = &[
    ("blue", "b1", "h1", 11),
    ("blue", "b2", "h2", 12),
    ("blue", "b3", "h3", 13),
    ("red", "r1", "h1", 21),
    ("red", "r2", "h2", 13),
];

/// One cell of the reachability matrix.
#[derive(Debug, Clone, Serialize)]
pub struct PairResult {
    pub from: String,
    pub to: String,
    pub address: Ipv4Addr,
    /// Same tenant and network: the pair must reach each other.
    pub expected: bool,
    /// A reply came back from the target itself, recognised by its TTL, so an
    /// endpoint of another tenant with the same address does not count.
    pub seen: bool,
    /// Endpoints whose replies came back, `tenant/name`.
    pub replied: Vec<String>,
}

/// Throughput figures, in bits per second.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Throughput {
    pub overlay: f64,
    /// A hand-built bridge and VXLAN pair between the same two host namespaces.
    pub reference_vxlan: f64,
    /// The host namespaces to each other over the underlay, without VXLAN.
    pub underlay: f64,
}

/// Everything the demo measured.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub lab: String,
    pub reachability: Vec<PairResult>,
    pub convergence: ConvergenceSample,
    pub throughput: Throughput,
    /// Whether every reachability cell matched what was expected.
    pub ok: bool,
}

struct Member {
    tenant: &'static str,
    name: &'static str,
    netns: PathBuf,
    address: Ipv4Addr,
    /// Default TTL of the container's namespace, unique in the demo.
    ttl: u8,
}

/// Runs the demo on a new 3-host lab built from `spec`, then removes the lab.
pub fn run_demo(spec: LabSpec) -> Result<DemoReport, LabError> {
    check_prerequisites(TRAFFIC_TOOLS)?;
    let underlay_mtu = spec.underlay_mtu;
    let lab = Lab::up(LabSpec { hosts: 3, ..spec })?;
    for tenant in ["blue", "red"] {
        lab.create_network(tenant, NETWORK, SUBNET, &[])?;
    }
    let members = attach_members(&lab)?;
    let reachability = reachability_matrix(&members);
    let convergence = measure_convergence(&lab, &members)?;
    let throughput = measure_throughput(&lab, &members, underlay_mtu)?;
    let ok = reachability.iter().all(|pair| pair.expected == pair.seen);
    let report = DemoReport { lab: lab.name().to_string(), reachability, convergence, throughput, ok };
    lab.down()?;
    Ok(report)
}

fn attach_members(lab: &Lab) -> Result<Vec<Member>, LabError> {
    let mut members = Vec::new();
    for (index, &(tenant, name, host, last)) in ENDPOINTS.iter().enumerate() {
        let netns = lab.add_container(host, name)?;
        let address = Ipv4Addr::new(10, 10, 0, last);
        lab.attach(host, NETWORK, &netns, tenant, &["--ip", &address.to_string(), "--name", name])?;
        let ttl = FIRST_TTL + index as u8;
        set_default_ttl(&netns, ttl)?;
        members.push(Member { tenant, name, netns, address, ttl });
    }
    Ok(members)
}

/// Default TTL of the first member; the others count up from it.
const FIRST_TTL: u8 = 101;

/// Pings every member from every other, all pairs at once. A pair whose sender holds
/// the target address itself is left out, because the sender would answer its own ping.
fn reachability_matrix(members: &[Member]) -> Vec<PairResult> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .iter()
            .flat_map(|from| members.iter().map(move |to| (from, to)))
            .filter(|(from, to)| from.name != to.name && from.address != to.address)
            .map(|(from, to)| scope.spawn(move || probe_pair(members, from, to)))
            .collect();
        handles.into_iter().filter_map(|handle| handle.join().ok()).collect()
    })
}

fn probe_pair(members: &[Member], from: &Member, to: &Member) -> PairResult {
    let ttls = ping_reply_ttls(&from.netns, to.address.into(), 3, Duration::from_millis(200)).unwrap_or_default();
    let mut replied: Vec<String> = members
        .iter()
        .filter(|m| ttls.contains(&m.ttl))
        .map(|m| format!("{}/{}", m.tenant, m.name))
        .collect();
    replied.dedup();
    PairResult {
        from: format!("{}/{}", from.tenant, from.name),
        to: format!("{}/{}", to.tenant, to.name),
        address: to.address,
        expected: from.tenant == to.tenant,
        seen: ttls.contains(&to.ttl),
        replied,
    }
}

/// Attaches blue `b4` on h3 while b1 on h1 pings its address.
fn measure_convergence(lab: &Lab, members: &[Member]) -> Result<ConvergenceSample, LabError> {
    let prober = member(members, "b1")?;
    prepare_prober(&prober.netns)?;
    let target = ConvergenceTarget { host: "h3", tenant: "blue", network: NETWORK, name: "b4", ip: Ipv4Addr::new(10, 10, 0, 14) };
    measure(lab, &prober.netns, target)
}

/// Overlay b2 (h2) to b1 (h1), the reference VXLAN pair between the same hosts, and
/// the underlay h2 to h1.
fn measure_throughput(lab: &Lab, members: &[Member], underlay_mtu: u32) -> Result<Throughput, LabError> {
    let (server, client) = (member(members, "b1")?, member(members, "b2")?);
    let overlay = iperf3_throughput(&server.netns, &client.netns, server.address, IPERF_SECONDS)?;

    let pair = reference::build(lab, 1, 2, underlay_mtu)?;
    let [(reference_server, reference_address), (reference_client, _)] = &pair.ends;
    let reference_vxlan = iperf3_throughput(reference_server, reference_client, *reference_address, IPERF_SECONDS)?;

    let h1_ip = Node::Host(1).underlay_ip().unwrap_or(Ipv4Addr::UNSPECIFIED);
    let underlay = iperf3_throughput(&lab.netns_path("h1")?, &lab.netns_path("h2")?, h1_ip, IPERF_SECONDS)?;
    Ok(Throughput { overlay, reference_vxlan, underlay })
}

fn member<'a>(members: &'a [Member], name: &str) -> Result<&'a Member, LabError> {
    members.iter().find(|m| m.name == name).ok_or_else(|| LabError::Output {
        command: "lab demo".to_string(),
        reason: format!("no member {name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses_of(tenant: &str) -> Vec<u8> {
        ENDPOINTS.iter().filter(|e| e.0 == tenant).map(|e| e.3).collect()
    }

    #[test]
    fn endpoints_have_tenant_only_addresses() {
        let (blue, red) = (addresses_of("blue"), addresses_of("red"));
        assert!(red.iter().any(|a| !blue.contains(a)), "every red address is also blue's: {red:?} {blue:?}");
        assert!(blue.iter().any(|a| !red.contains(a)), "every blue address is also red's: {blue:?} {red:?}");
    }

    #[test]
    fn endpoints_share_one_address() {
        let (blue, red) = (addresses_of("blue"), addresses_of("red"));
        assert!(red.iter().any(|a| blue.contains(a)), "no address is held by both tenants: {red:?} {blue:?}");
    }

    #[test]
    fn endpoints_unique_within_tenant() {
        for tenant in ["blue", "red"] {
            let mut addresses = addresses_of(tenant);
            let count = addresses.len();
            addresses.sort_unstable();
            addresses.dedup();
            assert_eq!(addresses.len(), count, "{tenant} reuses an address");
        }
    }
}
