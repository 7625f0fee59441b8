//! Policy scale: the host's nftables ruleset generated from the policy crate's
//! synthetic state with 0, 10k and 100k group rules, loaded into a throw-away
//! namespace with `nft -f` as the agent's first apply does, then the latency of one
//! endpoint change through the agent's own path: the generator that reuses its last
//! run, the element diff and one nftables netlink batch.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cloison_dataplane::{Dataplane, NetlinkDataplane, NftElementsPlan};
use cloison_policy::{element_changes, synthetic_input, transition_script, Generator};

use crate::netns::{run_with_input, Netns};
use crate::report::Row;
use crate::stats::Summary;
use crate::BenchError;

const SCENARIO: &str = "policy";
/// Local endpoints of the synthetic state, all in the rules' group.
pub(crate) const ENDPOINTS: usize = 10;

/// Maximum duration of one `nft -f`, past which its rule count is given up.
const NFT_TIMEOUT_SECONDS: u32 = 180;

/// Costs measured for one rule count.
struct Measured {
    rules: usize,
    load: Duration,
    generate: Vec<Duration>,
    apply: Vec<Duration>,
    change: Vec<Duration>,
}

/// Measures each rule count in `rule_counts`, `changes` endpoint changes each. A
/// rule count whose load fails or times out adds a note instead of rows.
pub(crate) fn policy(prefix: &str, rule_counts: &[usize], changes: usize, notes: &mut Vec<String>) -> Result<Vec<Row>, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("cannot start the async runtime", e))?;
    let mut measured = Vec::new();
    for (index, rules) in rule_counts.iter().enumerate() {
        let netns = Netns::create(format!("{prefix}-pol{index}"))?;
        match runtime.block_on(measure(&netns, *rules, changes)) {
            Ok(result) => measured.push(result),
            Err(e) => notes.push(format!("policy: {rules} rules not measured: {e}")),
        }
    }
    if measured.is_empty() {
        return Err(BenchError::Empty { scenario: SCENARIO, reason: "no rule count loaded".into() });
    }
    Ok(rows(&measured))
}

/// Loads the tables for `rules` rules, then attaches `changes` more endpoints of
/// the rules' group one at a time, as the agent applies them.
async fn measure(netns: &Netns, rules: usize, changes: usize) -> Result<Measured, BenchError> {
    let run_dir = std::env::temp_dir().join(format!("{}-run", netns.name));
    let dataplane = NetlinkDataplane::in_namespace(netns.path(), run_dir).map_err(|e| BenchError::Peer {
        peer: "cloison".into(),
        operation: "open the dataplane",
        sandbox: netns.name.clone(),
        reason: e.to_string(),
    })?;
    let mut generator = Generator::default();
    let mut previous = generator.generate(&synthetic_input(rules, ENDPOINTS).as_input()).host;
    let started = Instant::now();
    nft(netns, &transition_script(&previous, None))?;
    let load = started.elapsed();
    let mut result = Measured { rules, load, generate: Vec::new(), apply: Vec::new(), change: Vec::new() };
    for change in 1..=changes {
        let input = synthetic_input(rules, ENDPOINTS + change);
        let started = Instant::now();
        let wanted = generator.generate(&input.as_input()).host;
        let changes = element_changes(&wanted, &previous).ok_or_else(|| BenchError::Empty {
            scenario: SCENARIO,
            reason: "an endpoint change needed more than element changes".into(),
        })?;
        let generated = started.elapsed();
        let plan = NftElementsPlan { namespace: None::<PathBuf>, changes };
        dataplane.apply_nftables_elements(&plan).await.map_err(|e| BenchError::Peer {
            peer: "cloison".into(),
            operation: "apply element changes",
            sandbox: netns.name.clone(),
            reason: e.to_string(),
        })?;
        result.change.push(started.elapsed());
        result.generate.push(generated);
        result.apply.push(started.elapsed() - generated);
        previous = wanted;
    }
    Ok(result)
}

/// Applies `script` in one `nft -f -` transaction inside `netns`.
pub(crate) fn nft(netns: &Netns, script: &str) -> Result<(), BenchError> {
    let mut command: Command = netns.command("timeout");
    command.args([&NFT_TIMEOUT_SECONDS.to_string(), "nft", "-f", "-"]);
    run_with_input(&mut command, script.as_bytes()).map(drop)
}

fn rows(measured: &[Measured]) -> Vec<Row> {
    let baseline = measured.iter().find(|m| m.rules == 0);
    let mut rows = Vec::new();
    for m in measured {
        let case = format!("{} group rules, {ENDPOINTS} endpoints", m.rules);
        let mut load = Row::single(SCENARIO, &case, "full ruleset load (nft -f)", "ms", m.load.as_secs_f64() * 1000.0);
        if let (Some(base), true) = (baseline, m.rules > 0) {
            load = load.with_ratio("0 rules", base.load.as_secs_f64() * 1000.0);
        }
        rows.push(load);
        for (label, samples, pick) in [
            ("one endpoint change, total", &m.change, (|b: &Measured| &b.change) as fn(&Measured) -> &Vec<Duration>),
            ("one endpoint change, generate and diff", &m.generate, |b: &Measured| &b.generate),
            ("one endpoint change, netlink apply", &m.apply, |b: &Measured| &b.apply),
        ] {
            let Some(summary) = Summary::of_durations(samples) else { continue };
            let mut row = Row::sampled(SCENARIO, &case, label, "ms", summary);
            if let (Some(base), true) = (baseline, m.rules > 0) {
                if let Some(base_summary) = Summary::of_durations(pick(base)) {
                    row = row.with_ratio("0 rules", base_summary.p50);
                }
            }
            rows.push(row);
        }
    }
    rows
}
