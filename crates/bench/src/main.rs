//! `cloison-bench`: runs the selected scenarios, prints the table and writes it as
//! markdown and JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use cloison_bench::{Options, Scenario};

/// Measure cloison beside the tools it replaces, in one run on this machine.
///
/// Needs root, iproute2, util-linux (nsenter), iperf3, and for the peers
/// containernetworking-plugins and netavark. Everything runs in namespaces the
/// benchmark creates and removes.
#[derive(Debug, Parser)]
#[command(name = "cloison-bench", version)]
struct Cli {
    /// Scenarios to run, in order.
    #[arg(value_enum, required = true)]
    scenarios: Vec<Selection>,
    /// Fewer repetitions and smaller scales: a smoke run, not a record.
    #[arg(long)]
    quick: bool,
    /// Directory that receives benchmarks.md and benchmarks.json.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The cloison binary; by default $CLOISON_BIN or the one next to this program.
    #[arg(long)]
    cloison: Option<PathBuf>,
    /// The cloison-cni binary; by default the one next to the cloison binary.
    #[arg(long)]
    cloison_cni: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Selection {
    Attach,
    Converge,
    Churn,
    Throughput,
    Policy,
    ControlPlane,
    /// A real agent's memory with many remote endpoints.
    AgentMemory,
    All,
}

fn scenarios(selections: &[Selection]) -> Vec<Scenario> {
    let mut chosen: Vec<Scenario> = Vec::new();
    for selection in selections {
        let add: &[Scenario] = match selection {
            Selection::Attach => &[Scenario::Attach],
            Selection::Converge => &[Scenario::Converge],
            Selection::Churn => &[Scenario::Churn],
            Selection::Throughput => &[Scenario::Throughput],
            Selection::Policy => &[Scenario::Policy],
            Selection::ControlPlane => &[Scenario::ControlPlane],
            Selection::AgentMemory => &[Scenario::AgentMemory],
            Selection::All => &Scenario::ALL,
        };
        for scenario in add {
            if !chosen.contains(scenario) {
                chosen.push(*scenario);
            }
        }
    }
    chosen
}

#[allow(clippy::print_stdout, clippy::print_stderr, reason = "the table and the errors are this program's output")]
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloison-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout, reason = "the table is this program's output")]
fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cloison = match cli.cloison {
        Some(path) => path,
        None => cloison_lab::find_cloison_binary().context("cannot find the cloison binary; pass --cloison")?,
    };
    let cloison_cni = cli.cloison_cni.unwrap_or_else(|| cloison.with_file_name("cloison-cni"));
    let command: Vec<String> = std::env::args().collect();
    let options = Options { scenarios: scenarios(&cli.scenarios), quick: cli.quick, cloison, cloison_cni, command: command.join(" ") };
    let report = cloison_bench::run(&options).context("the benchmark measured nothing")?;
    print!("{}", report.markdown());
    if let Some(dir) = cli.out {
        report.write(&dir).with_context(|| format!("cannot write the report to {}", dir.display()))?;
    }
    Ok(())
}
