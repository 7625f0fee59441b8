//! Policy scale: the host's nftables ruleset generated from the policy crate's
//! synthetic state with 0, 10k and 100k group rules, loaded into a throw-away
//! namespace with `nft -f`, as the agent's dataplane applies it, and the latency of
//! one endpoint change with those rules loaded.

use std::process::Command;
use std::time::{Duration, Instant};

use cloison_policy::{generate, synthetic_input, transition_script, Table};

use crate::netns::{run_with_input, Netns};
use crate::report::Row;
use crate::stats::Summary;
use crate::BenchError;

const SCENARIO: &str = "policy";
/// Local endpoints of the synthetic state, all in the rules' group.
const ENDPOINTS: usize = 10;

/// Costs measured for one rule count.
struct Measured {
    rules: usize,
    load: Duration,
    generate: Vec<Duration>,
    apply: Vec<Duration>,
    change: Vec<Duration>,
}

/// Maximum duration of one `nft -f`, past which its rule count is given up. With 100k
/// rules, nft 1.0.6 on kernel 6.18 was still loading after nine minutes of system
/// time on a 2-CPU machine.
const NFT_TIMEOUT_SECONDS: u32 = 180;

/// Measures each rule count in `rule_counts`, `changes` endpoint changes each. A
/// rule count whose load fails or times out adds a note instead of rows.
pub(crate) fn policy(prefix: &str, rule_counts: &[usize], changes: usize, notes: &mut Vec<String>) -> Result<Vec<Row>, BenchError> {
    let mut measured = Vec::new();
    for (index, rules) in rule_counts.iter().enumerate() {
        let netns = Netns::create(format!("{prefix}-pol{index}"))?;
        match measure(&netns, *rules, changes) {
            Ok(result) => measured.push(result),
            Err(e) => notes.push(format!("policy: {rules} rules not measured (limit {NFT_TIMEOUT_SECONDS} s per nft -f): {e}")),
        }
    }
    if measured.is_empty() {
        return Err(BenchError::Empty { scenario: SCENARIO, reason: "no rule count loaded".into() });
    }
    Ok(rows(&measured))
}

/// Rule count from which only [`LARGE_CHANGES`] changes are timed, because one change
/// through `nft -f` already took 13 s with 10,000 rules on a 2-CPU machine.
const LARGE_RULES: usize = 100_000;
const LARGE_CHANGES: usize = 2;

fn measure(netns: &Netns, rules: usize, changes: usize) -> Result<Measured, BenchError> {
    let changes = if rules >= LARGE_RULES { changes.min(LARGE_CHANGES) } else { changes };
    let mut previous = host_tables(rules, ENDPOINTS);
    let started = Instant::now();
    nft(netns, &transition_script(&previous, None))?;
    let load = started.elapsed();
    let mut result = Measured { rules, load, generate: Vec::new(), apply: Vec::new(), change: Vec::new() };
    for change in 1..=changes {
        let started = Instant::now();
        let wanted = host_tables(rules, ENDPOINTS + change);
        let script = transition_script(&wanted, Some(&previous));
        let generated = started.elapsed();
        nft(netns, &script)?;
        result.change.push(started.elapsed());
        result.generate.push(generated);
        result.apply.push(started.elapsed() - generated);
        previous = wanted;
    }
    Ok(result)
}

/// The host tables the generator builds for `rules` rules and `endpoints` endpoints.
fn host_tables(rules: usize, endpoints: usize) -> Vec<Table> {
    let input = synthetic_input(rules, endpoints);
    generate(&input.as_input()).host
}

/// Applies `script` in one `nft -f -` transaction inside `netns`.
fn nft(netns: &Netns, script: &str) -> Result<(), BenchError> {
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
            ("one endpoint change, generate", &m.generate, |b: &Measured| &b.generate),
            ("one endpoint change, nft apply", &m.apply, |b: &Measured| &b.apply),
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
