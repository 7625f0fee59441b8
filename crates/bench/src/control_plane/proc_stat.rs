//! CPU time and memory of a process, from /proc/PID/stat and /proc/PID/status.

use crate::BenchError;

/// Clock ticks per second of /proc/PID/stat's times; Linux reports them in USER_HZ,
/// which is 100 on every architecture it supports.
const USER_HZ: f64 = 100.0;

/// One reading of a process's resource use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessSample {
    /// User plus system CPU time since the process started.
    pub(crate) cpu_seconds: f64,
    /// VmRSS.
    pub(crate) rss_mib: f64,
    /// VmHWM, the largest RSS so far.
    pub(crate) peak_rss_mib: f64,
}

/// Reads the process `pid`.
pub(crate) fn sample(pid: u32) -> Result<ProcessSample, BenchError> {
    let read = |file: &str| {
        let path = format!("/proc/{pid}/{file}");
        std::fs::read_to_string(&path).map_err(|e| BenchError::io(format!("cannot read {path}"), e))
    };
    let stat = read("stat")?;
    let status = read("status")?;
    let invalid = || BenchError::Empty { scenario: "control-plane", reason: format!("unexpected /proc/{pid}/stat") };
    Ok(ProcessSample {
        cpu_seconds: cpu_ticks(&stat).ok_or_else(invalid)? as f64 / USER_HZ,
        rss_mib: status_kib(&status, "VmRSS").unwrap_or(0) as f64 / 1024.0,
        peak_rss_mib: status_kib(&status, "VmHWM").unwrap_or(0) as f64 / 1024.0,
    })
}

/// utime + stime: fields 14 and 15 of /proc/PID/stat, counted after the command
/// name, which may hold spaces and ends at the last ')'.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(&format!("{key}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_spaces_in_name() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 123 0 0";
        assert_eq!(cpu_ticks(stat), Some(12));
    }

    #[test]
    fn status_kib_reads_rss() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM"), Some(2048));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }
}
