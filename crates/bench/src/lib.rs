//! cloison's benchmarks beside its peers. Every figure comes with the same figure of
//! the peer it replaces, measured in the same run on the same machine, so a table is
//! comparable with another machine's only through its ratios.
//!
//! Every scenario works in namespaces it creates and removes, never in the machine's
//! own network namespace.

mod attach;
mod daemon;
mod error;
mod machine;
mod netns;
mod report;
mod stats;

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
}

impl Scenario {
    pub const ALL: [Scenario; 6] =
        [Scenario::Attach, Scenario::Converge, Scenario::Churn, Scenario::Throughput, Scenario::Policy, Scenario::ControlPlane];
}

/// What a run measures and with which binaries.
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
                cloison: options.cloison.clone(),
                cloison_cni: options.cloison_cni.clone(),
                prefix: format!("{prefix}a"),
            };
            run_attach(&attach, notes)
        }
        other => Err(BenchError::Empty { scenario: "run", reason: format!("{other:?} is not implemented yet") }),
    }
}
