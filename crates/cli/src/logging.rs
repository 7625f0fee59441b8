use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::args::{GlobalArgs, LogFormat};

/// Installs the tracing subscriber of long-running commands, writing to stderr.
pub(crate) fn init(global: &GlobalArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&global.log_level)
        .with_context(|| format!("invalid --log-level {:?}", global.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match global.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
