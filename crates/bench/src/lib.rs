//! cloison's benchmarks beside its peers. Every figure comes with the same figure of
//! the peer it replaces, measured in the same run on the same machine, so a table is
//! comparable with another machine's only through its ratios.
//!
//! Every scenario works in namespaces it creates and removes, never in the machine's
//! own network namespace.

mod attach;
mod control_plane;
mod daemon;
mod error;
mod lab_scenarios;
mod machine;
mod netns;
mod policy;
mod policy_throughput;
mod report;
mod stats;
mod throughput;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub use attach::{run_attach, AttachOptions};
pub use error::BenchError;
pub use machine::Machine;
pub use report::{Ratio, Report, Row};
pub use stats::Summary;

/// One group of measurements, selectable on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Attach,
    Converge,
    Churn,
    Throughput,
    Policy,
    ControlPlane,
    /// A real agent's memory with many remote endpoints.
    AgentMemory,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Attach,
        Scenario::Converge,
        Scenario::Churn,
        Scenario::Throughput,
        Scenario::Policy,
        Scenario::ControlPlane,
        Scenario::AgentMemory,
    ];
}

/// Scenarios and binaries of one run.
#[derive(Debug, Clone)]
pub struct Options {
    pub scenarios: Vec<Scenario>,
    /// Fewer repetitions and smaller scales, for a smoke run.
    pub quick: bool,
    pub cloison: PathBuf,
    pub cloison_cni: PathBuf,
    /// The command line, recorded in the report.
    pub command: String,
}

/// Runs every selected scenario in order. A scenario that fails adds a note and
/// the run goes on; the report is an error only when nothing was measured.
pub fn run(options: &Options) -> Result<Report, BenchError> {
    let started_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let prefix = format!("cb{}", std::process::id());
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for scenario in &options.scenarios {
        match run_one(*scenario, options, &prefix, &mut notes) {
            Ok(mut measured) => rows.append(&mut measured),
            Err(e) => notes.push(format!("{scenario:?} failed: {e}")),
        }
    }
    if rows.is_empty() {
        return Err(BenchError::Empty { scenario: "run", reason: notes.join("; ") });
    }
    Ok(Report { machine: Machine::describe(), command: options.command.clone(), quick: options.quick, started_at, rows, notes })
}

fn run_one(scenario: Scenario, options: &Options, prefix: &str, notes: &mut Vec<String>) -> Result<Vec<Row>, BenchError> {
    match scenario {
        Scenario::Attach => {
            let attach = AttachOptions {
                count: if options.quick { 20 } else { 200 },
                concurrency: 8,
                crowd: if options.quick { 30 } else { 300 },
                cloison: options.cloison.clone(),
                cloison_cni: options.cloison_cni.clone(),
                prefix: format!("{prefix}a"),
            };
            run_attach(&attach, notes)
        }
        Scenario::Converge => lab_scenarios::converge(&lab_name(prefix, "cv"), &options.cloison, if options.quick { 20 } else { 200 }),
        Scenario::Churn => lab_scenarios::churn(&lab_name(prefix, "ch"), &options.cloison, if options.quick { 99 } else { 1000 }),
        Scenario::Throughput => {
            let (rounds, seconds) = if options.quick { (1, 2) } else { (5, 5) };
            throughput::throughput(&lab_name(prefix, "tp"), &options.cloison, rounds, seconds)
        }
        Scenario::Policy => {
            let changes = if options.quick { 3 } else { 20 };
            let mut rows = policy::policy(prefix, &[0, 1_000, 10_000, 100_000], changes, notes)?;
            let (rounds, seconds) = if options.quick { (1, 2) } else { (5, 5) };
            rows.extend(policy_throughput::throughput(prefix, &[0, 10_000, 100_000], rounds, seconds)?);
            Ok(rows)
        }
        Scenario::ControlPlane => {
            let scale = if options.quick {
                control_plane::Scale { agents: 50, endpoints: 2_000, changes: 5, rss_limit_mib: 4096 }
            } else {
                control_plane::Scale { agents: 1_000, endpoints: 100_000, changes: 20, rss_limit_mib: 6144 }
            };
            control_plane::control_plane(prefix, &options.cloison, scale, notes)
        }
        Scenario::AgentMemory => {
            let remote = if options.quick { 1_000 } else { 10_000 };
            control_plane::agent_memory(&lab_name(prefix, "am"), &options.cloison, remote)
        }
    }
}

/// Returns a lab name unique to this run, within the 16 characters lab names allow.
fn lab_name(prefix: &str, tag: &str) -> String {
    let digits: String = prefix.chars().filter(char::is_ascii_digit).collect();
    format!("b{tag}{digits}")
}
