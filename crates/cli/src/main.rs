//! `cloison`: the command-line interface, and the entry point of the controller and
//! agent processes.

mod admin;
mod args;
mod control;
mod daemon;
mod docker_driver;
mod groups;
mod publications;
mod lab;
mod logging;
mod memory;
mod output;
mod preflight;
mod snapshot;
mod status;
mod store;
mod subnets;
mod underlay;
mod verbs;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if matches!(cli.command, Command::Agent(_)) {
        memory::limit_arenas();
        builder.worker_threads(memory::agent_workers());
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            output::error(&anyhow::anyhow!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(&e);
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Up(args) => {
            logging::init(global)?;
            daemon::up(global, args).await
        }
        Command::Controller(args) => {
            logging::init(global)?;
            daemon::controller(args).await
        }
        Command::Agent(args) => {
            logging::init(global)?;
            daemon::agent(global, args).await
        }
        Command::Tenant(cmd) => verbs::tenant(global, cmd).await,
        Command::Network(cmd) => verbs::network(global, cmd).await,
        Command::Attach(args) => verbs::attach(global, args).await,
        Command::Detach(args) => verbs::detach(global, args).await,
        Command::Endpoint(cmd) => verbs::endpoint(global, cmd).await,
        Command::Group(cmd) => groups::group(global, cmd).await,
        Command::Publish(args) => publications::publish(global, args).await,
        Command::Unpublish(args) => publications::unpublish(global, args).await,
        Command::Publication(cmd) => publications::publication(global, cmd).await,
        Command::Status => status::status(global).await,
        Command::Lab(cmd) => lab::lab(global, cmd).await,
        Command::Admin(cmd) => admin::admin(global, cmd).await,
    }
}
