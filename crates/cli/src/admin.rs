//! `cloison admin export` and `import`: store snapshots, read and written by talking to
//! the store directly rather than through a controller, so they work while no controller
//! runs. A redb store can be open in one process only, so stop its controller first.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::args::GlobalArgs;
use crate::output;
use crate::snapshot;
use crate::store::{open_store, StoreArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Write every key of a store to a versioned JSON snapshot.
    #[command(
        after_help = "Examples:\n  cloison admin export --data-dir /var/lib/cloison --file cloison.json\n  cloison admin export --store etcd://10.0.0.1:2379,10.0.0.2:2379 > cloison.json"
    )]
    Export(ExportArgs),
    /// Load a snapshot into an empty store; stop every controller of that store first.
    #[command(
        after_help = "Moving from redb to etcd:\n  cloison admin export --data-dir /var/lib/cloison --file cloison.json\n  cloison admin import --store etcd://10.0.0.1:2379 --file cloison.json\n  then start the controllers with --store etcd://... and restart the agents."
    )]
    Import(ImportArgs),
}

/// Options of `cloison admin export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// File to write the snapshot to (default: standard output).
    #[arg(long)]
    pub(crate) file: Option<PathBuf>,
}

/// Options of `cloison admin import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Snapshot written by `cloison admin export`.
    #[arg(long)]
    pub(crate) file: PathBuf,
    /// Import into a store that already has keys, deleting every key the snapshot lacks.
    #[arg(long)]
    pub(crate) force: bool,
}

pub(crate) async fn admin(global: &GlobalArgs, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Export(args) => export(args).await,
        AdminCommand::Import(args) => import(global, args).await,
    }
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let store = open_store(&args.store).await?;
    let snapshot = snapshot::export(store.as_ref()).await?;
    let text = serde_json::to_string_pretty(&snapshot)?;
    match &args.file {
        Some(path) => std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write the snapshot to {}", path.display()))?,
        None => output::raw(&text),
    }
    Ok(())
}

async fn import(global: &GlobalArgs, args: ImportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read the snapshot {}", args.file.display()))?;
    let snapshot =
        snapshot::parse(&text).with_context(|| format!("cannot import {}", args.file.display()))?;
    let store = open_store(&args.store).await?;
    let report = snapshot::import(store.as_ref(), &snapshot, args.force).await?;
    output::one(global.output, &report, |r| {
        format!(
            "imported {} keys into {} (revision {}), deleted {}",
            r.written,
            args.store.describe(),
            r.revision,
            r.deleted
        )
    })
}
