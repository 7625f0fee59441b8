//! `cloison lab`: a multi-host laboratory on this machine, built from network
//! namespaces, with the demo and the convergence benchmark.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use cloison_lab::{ConvergeStart, DemoReport, Lab, LabName, LabSpec, LabSummary};

use crate::args::{GlobalArgs, OutputFormat};
use crate::output;

#[derive(Debug, Subcommand)]
pub(crate) enum LabCommand {
    /// Build a lab: an underlay bridge, a controller and N hosts running agents, each in its own namespace.
    Up(LabUpArgs),
    /// Remove a lab: its processes, namespaces and state; succeeds when it is already gone.
    Down(LabNameArg),
    /// Run a command inside a node's namespace (h1..hN, ctl, outside or underlay), with the CLI pointed at a host's agent.
    Exec(LabExecArgs),
    /// List the labs on this machine.
    Ls,
    /// Run the multi-host demo on a new 3-host lab: reachability, convergence, throughput.
    Demo(LabDemoArgs),
    /// Measure convergence (attach on h1 until the first reply on h2) over many tries.
    BenchConverge(LabBenchArgs),
}

#[derive(Debug, Args)]
pub(crate) struct LabNameArg {
    /// Lab name: 1 to 16 characters of a-z, 0-9 and '-', starting with a letter.
    #[arg(long)]
    pub(crate) name: String,
}

#[derive(Debug, Args)]
pub(crate) struct LabUpArgs {
    #[command(flatten)]
    pub(crate) lab: LabNameArg,
    /// Number of hosts.
    #[arg(long, default_value_t = 3)]
    pub(crate) hosts: usize,
    /// MTU of the underlay links and bridge, in bytes.
    #[arg(long, default_value_t = cloison_lab::DEFAULT_UNDERLAY_MTU)]
    pub(crate) underlay_mtu: u32,
    /// Seconds to wait for every agent to register.
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout: u64,
    #[command(flatten)]
    pub(crate) control_plane: ControlPlaneArgs,
}

/// Shape of a lab's control plane.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct ControlPlaneArgs {
    /// Members of an etcd cluster in the controller namespace holding the controllers'
    /// state; 0 runs one controller on the embedded store.
    #[arg(long = "etcd", value_name = "MEMBERS", default_value_t = 0)]
    pub(crate) etcd_members: usize,
    /// Number of controllers, on ports 7420, 7421 and so on; more than one needs --etcd.
    #[arg(long, default_value_t = 1)]
    pub(crate) controllers: usize,
}

#[derive(Debug, Args)]
pub(crate) struct LabExecArgs {
    #[command(flatten)]
    pub(crate) lab: LabNameArg,
    /// Node to run in: h1..hN, ctl, outside (the hosts' default gateway) or underlay.
    pub(crate) node: String,
    /// Command and its arguments.
    #[arg(last = true, required = true)]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LabDemoArgs {
    /// Name of the lab the demo builds and removes.
    #[arg(long, default_value = "demo")]
    pub(crate) name: String,
    /// MTU of the underlay links and bridge, in bytes.
    #[arg(long, default_value_t = cloison_lab::DEFAULT_UNDERLAY_MTU)]
    pub(crate) underlay_mtu: u32,
}

#[derive(Debug, Args)]
pub(crate) struct LabBenchArgs {
    /// Name of the lab the benchmark builds and removes.
    #[arg(long, default_value = "bench")]
    pub(crate) name: String,
    /// Number of attaches to measure.
    #[arg(long, default_value_t = 100)]
    pub(crate) tries: usize,
    /// Keep another endpoint of the network on h1 during the tries, so each attach
    /// joins a network the host already carries. Without it, each attach is the
    /// tenant's first endpoint on h1 and also sets up its network and router there.
    #[arg(long)]
    pub(crate) network_present: bool,
    /// With --etcd, a second lab runs the same tries over etcd after the lab on the
    /// embedded store, and one table shows both.
    #[command(flatten)]
    pub(crate) control_plane: ControlPlaneArgs,
}

/// Runs a `cloison lab` verb. The lab library blocks, so it runs on a blocking thread.
pub(crate) async fn lab(global: &GlobalArgs, command: LabCommand) -> anyhow::Result<()> {
    let format = global.output;
    tokio::task::spawn_blocking(move || run(format, command)).await.context("the lab task failed")?
}

fn run(format: OutputFormat, command: LabCommand) -> anyhow::Result<()> {
    match command {
        LabCommand::Up(args) => up(format, args),
        LabCommand::Down(args) => {
            let name = parse_name(&args.name)?;
            cloison_lab::down(&name)?;
            output::one(format, &serde_json::json!({ "removed": name.to_string() }), |_| format!("lab {name} removed"))
        }
        LabCommand::Exec(args) => exec(args),
        LabCommand::Ls => ls(format),
        LabCommand::Demo(args) => demo(format, args),
        LabCommand::BenchConverge(args) => bench(format, args),
    }
}

fn parse_name(name: &str) -> anyhow::Result<LabName> {
    Ok(name.parse::<LabName>()?)
}

fn up(format: OutputFormat, args: LabUpArgs) -> anyhow::Result<()> {
    let control = args.control_plane;
    let mut spec = LabSpec::new(&args.lab.name, args.hosts)?
        .with_underlay_mtu(args.underlay_mtu)
        .with_control_plane(control.etcd_members, control.controllers)?;
    spec.ready_timeout = Duration::from_secs(args.timeout);
    let lab = Lab::up(spec)?;
    let name = lab.name().to_string();
    let hosts = lab.host_labels();
    let controllers = lab.controller_urls();
    let etcd = (lab.etcd_members() > 0).then(|| lab.etcd_store_url());
    lab.keep_running();
    let summary = serde_json::json!({ "name": name, "hosts": hosts, "controller": controllers, "etcd": etcd });
    output::one(format, &summary, |_| {
        let store = etcd.clone().map_or("embedded store".to_string(), |url| format!("store {url}"));
        format!(
            "lab {name} is up: hosts {}, controller {controllers}, {store}\nrun commands with `cloison lab exec --name {name} h1 -- cloison status`; remove it with `cloison lab down --name {name}`",
            hosts.join(" "),
        )
    })
}

/// Runs the command in the lab and exits with its status, as a shell would.
fn exec(args: LabExecArgs) -> anyhow::Result<()> {
    let lab = Lab::open(&parse_name(&args.lab.name)?)?;
    let (program, rest) = args.command.split_first().context("no command given after --")?;
    let status = lab
        .command(&args.node, program)?
        .args(rest)
        .status()
        .with_context(|| format!("cannot run {program} in {}", args.node))?;
    // A command killed by a signal exits like a shell reports it: 128 + signal.
    let code = status
        .code()
        .unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
    std::process::exit(code);
}

fn ls(format: OutputFormat) -> anyhow::Result<()> {
    let labs: Vec<LabSummary> = cloison_lab::list()?;
    output::table(format, &labs, &["NAME", "HOSTS", "PROCESSES", "NAMESPACES"], |lab| {
        vec![
            lab.name.clone(),
            lab.hosts.map_or("-".to_string(), |h| h.to_string()),
            format!("{}/{} running", lab.running, lab.recorded),
            lab.namespaces.to_string(),
        ]
    })
}

fn demo(format: OutputFormat, args: LabDemoArgs) -> anyhow::Result<()> {
    let spec = LabSpec::new(&args.name, 3)?.with_underlay_mtu(args.underlay_mtu);
    let report = cloison_lab::run_demo(spec)?;
    output::one(format, &report, render_demo)?;
    anyhow::ensure!(report.ok, "the reachability matrix differs from what is expected");
    Ok(())
}

fn render_demo(report: &DemoReport) -> String {
    let mut lines = vec![format!(
        "Reachability by ping (lab {}; each container has its own TTL, which names the endpoint that replied):",
        report.lab
    )];
    lines.push(format!("  {:<10} {:<10} {:<11} {:<8} {:<8} {:<10}", "FROM", "TO", "ADDRESS", "EXPECTED", "SEEN", "REPLY FROM"));
    for pair in &report.reachability {
        let mark = if pair.expected == pair.seen { "" } else { "  <-- differs" };
        lines.push(format!(
            "  {:<10} {:<10} {:<11} {:<8} {:<8} {:<10}{mark}",
            pair.from,
            pair.to,
            pair.address.to_string(),
            reach(pair.expected),
            reach(pair.seen),
            if pair.replied.is_empty() { "-".to_string() } else { pair.replied.join(",") }
        ));
    }
    let c = &report.convergence;
    lines.push(String::new());
    lines.push(format!(
        "Convergence: attach on h3 returned after {:.1} ms; first reply on h1 after {:.1} ms",
        millis(c.attach),
        millis(c.first_reply)
    ));
    let t = &report.throughput;
    lines.push(format!(
        "Throughput (iperf3, TCP, h2 to h1): overlay {:.2} Gbit/s, hand-built VXLAN {:.2} Gbit/s (ratio {:.2}), underlay {:.2} Gbit/s",
        t.overlay / 1e9,
        t.reference_vxlan / 1e9,
        t.overlay / t.reference_vxlan,
        t.underlay / 1e9
    ));
    lines.push(if report.ok { "Result: as expected".to_string() } else { "Result: DIFFERS from expected".to_string() });
    lines.join("\n")
}

fn reach(reached: bool) -> &'static str {
    if reached {
        "reach"
    } else {
        "no"
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn bench(format: OutputFormat, args: LabBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=cloison_lab::MAX_TRIES).contains(&args.tries),
        "invalid --tries {}: use 1 to {}",
        args.tries,
        cloison_lab::MAX_TRIES
    );
    let embedded = LabSpec::new(&args.name, 2)?;
    let mut specs = vec![embedded.clone()];
    let control = args.control_plane;
    if control.etcd_members > 0 {
        specs.push(embedded.with_control_plane(control.etcd_members, control.controllers)?);
    }
    let mut rows = Vec::new();
    // The labs run one after the other under the same name: each removes itself.
    for spec in specs {
        let store = cloison_lab::describe_control_plane(&spec);
        let start = if args.network_present { ConvergeStart::NetworkPresent } else { ConvergeStart::FirstOnHost };
        let report = cloison_lab::bench_converge(spec, args.tries, start)?;
        rows.push(BenchRow { store, report });
    }
    output::table(format, &rows, &["STORE", "TRIES", "ATTACH P50", "ATTACH P90", "REPLY P50", "REPLY P99", "REPLY MAX"], |row| {
        let (attach, reply) = (&row.report.attach, &row.report.first_reply);
        vec![
            row.store.clone(),
            reply.count.to_string(),
            format!("{:.1} ms", millis(attach.p50)),
            format!("{:.1} ms", millis(attach.p90)),
            format!("{:.1} ms", millis(reply.p50)),
            format!("{:.1} ms", millis(reply.p99)),
            format!("{:.1} ms", millis(reply.max)),
        ]
    })?;
    if format == OutputFormat::Text {
        println!("ATTACH: `cloison attach` on h1 through its agent socket, CLI start included.");
        println!("REPLY: from the start of that attach to the first ping reply on h2, probe every 2 ms.");
    }
    Ok(())
}

/// One store's line of the benchmark table.
#[derive(Debug, serde::Serialize)]
struct BenchRow {
    store: String,
    #[serde(flatten)]
    report: cloison_lab::BenchReport,
}
