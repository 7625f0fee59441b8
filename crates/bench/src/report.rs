//! The table a run produces, rendered as markdown and JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::machine::Machine;
use crate::stats::Summary;
use crate::BenchError;

/// One figure `subject` reached in `case`, beside the peers it is compared with.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub case: String,
    pub subject: String,
    /// Unit of `value` and of the summary's fields.
    pub unit: String,
    /// The headline figure: the median for repeated samples, else the single value.
    pub value: f64,
    /// Spread of repeated samples; `None` for a figure measured once.
    pub summary: Option<Summary>,
    /// This row's `value` divided by the same figure of each peer in the same run.
    pub ratios: Vec<Ratio>,
}

/// `value` of a row divided by the value of the row of `peer`.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub peer: String,
    pub value: f64,
}

impl Row {
    /// Creates a row of repeated samples, headed by their median.
    pub fn sampled(scenario: &str, case: &str, subject: &str, unit: &str, summary: Summary) -> Row {
        Row {
            scenario: scenario.into(),
            case: case.into(),
            subject: subject.into(),
            unit: unit.into(),
            value: summary.p50,
            summary: Some(summary),
            ratios: Vec::new(),
        }
    }

    /// Creates a row of one figure measured once.
    pub fn single(scenario: &str, case: &str, subject: &str, unit: &str, value: f64) -> Row {
        Row {
            scenario: scenario.into(),
            case: case.into(),
            subject: subject.into(),
            unit: unit.into(),
            value,
            summary: None,
            ratios: Vec::new(),
        }
    }

    /// Adds the ratio of this row's value to `peer_value`; a zero peer adds nothing.
    pub fn with_ratio(mut self, peer: &str, peer_value: f64) -> Row {
        if peer_value != 0.0 {
            self.ratios.push(Ratio { peer: peer.into(), value: self.value / peer_value });
        }
        self
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    /// The command line that produced this report.
    pub command: String,
    pub quick: bool,
    /// Seconds since the Unix epoch when the run started.
    pub started_at: u64,
    pub rows: Vec<Row>,
    /// Scenarios that failed or measured less than asked, and why.
    pub notes: Vec<String>,
}

impl Report {
    /// Renders the machine, the command, the table and the notes as markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "Machine: {} CPUs ({}), {} MiB, kernel {}.", m.cpus, m.cpu_model, m.memory_mib, m.kernel);
        let _ = writeln!(out, "Command: `{}`{}.\n", self.command, if self.quick { " (quick run)" } else { "" });
        out.push_str("| scenario | case | subject | p50 or value | p90 | p99 | max | n | unit | ratio to peer |\n");
        out.push_str("|---|---|---|---:|---:|---:|---:|---:|---|---|\n");
        for row in &self.rows {
            out.push_str(&markdown_row(row));
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n\n");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }

    /// Writes `benchmarks.md` and `benchmarks.json` into `dir`, creating it.
    pub fn write(&self, dir: &Path) -> Result<(), BenchError> {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::io(format!("cannot create {}", dir.display()), e))?;
        let markdown = dir.join("benchmarks.md");
        std::fs::write(&markdown, self.markdown())
            .map_err(|e| BenchError::io(format!("cannot write {}", markdown.display()), e))?;
        let json = dir.join("benchmarks.json");
        let text = serde_json::to_string_pretty(self).map_err(|e| BenchError::io("cannot encode the report", e.into()))?;
        std::fs::write(&json, text).map_err(|e| BenchError::io(format!("cannot write {}", json.display()), e))
    }
}

fn markdown_row(row: &Row) -> String {
    let spread = |pick: fn(&Summary) -> f64| row.summary.as_ref().map_or("".to_string(), |s| figure(pick(s)));
    let count = row.summary.as_ref().map_or("1".to_string(), |s| s.count.to_string());
    let ratios: Vec<String> = row.ratios.iter().map(|r| format!("{:.2}× {}", r.value, r.peer)).collect();
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        row.scenario,
        row.case,
        row.subject,
        figure(row.value),
        spread(|s| s.p90),
        spread(|s| s.p99),
        spread(|s| s.max),
        count,
        row.unit,
        ratios.join(", ")
    )
}

/// Three significant figures, enough for figures whose run-to-run spread is larger.
fn figure(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rows: Vec<Row>) -> Report {
        let machine = Machine { cpus: 2, kernel: "6.1".into(), cpu_model: "cpu".into(), memory_mib: 1024 };
        Report { machine, command: "cloison-bench attach".into(), quick: true, started_at: 0, rows, notes: vec!["n".into()] }
    }

    #[test]
    fn markdown_has_one_line_per_row() {
        let summary = Summary::of(&[1.0, 2.0, 3.0]).expect("samples");
        let rows = vec![
            Row::sampled("attach", "sequential", "floor", "ms", summary),
            Row::sampled("attach", "sequential", "cloison", "ms", summary).with_ratio("floor", 1.0),
        ];
        let text = report(rows).markdown();
        assert!(text.contains("| attach | sequential | floor | 2.00 | 3.00 | 3.00 | 3.00 | 3 | ms |  |"), "{text}");
        assert!(text.contains("2.00× floor"), "{text}");
        assert!(text.contains("- n"), "{text}");
    }

    #[test]
    fn zero_peer_adds_no_ratio() {
        let row = Row::single("s", "c", "x", "MiB", 3.0).with_ratio("y", 0.0);
        assert!(row.ratios.is_empty());
    }
}
