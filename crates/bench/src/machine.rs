//! The machine a run measured, so a table is never read without it.

use serde::Serialize;

/// Description of the measured machine, for comparing its table with another machine's.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Online CPUs, as `nproc` reports them.
    pub cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// First `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// Total memory from /proc/meminfo, in MiB.
    pub memory_mib: u64,
}

impl Machine {
    /// Reads the machine's description; unknown fields become "unknown" rather than
    /// failing the run.
    pub fn describe() -> Machine {
        let cpus = std::thread::available_parallelism().map(usize::from).unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus,
            kernel,
            cpu_model: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            memory_mib: field(&meminfo, "MemTotal")
                .and_then(|v| v.split_whitespace().next().and_then(|kib| kib.parse::<u64>().ok()))
                .map_or(0, |kib| kib / 1024),
        }
    }
}

/// Value of the first `name: value` line of a /proc file.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_reads_first_match() {
        let text = "processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\nmodel name\t: Other\n";
        assert_eq!(field(text, "model name").as_deref(), Some("Some CPU @ 2.0GHz"));
        assert_eq!(field(text, "flags"), None);
    }
}
