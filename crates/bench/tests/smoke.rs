//! Runs `cloison-bench attach --quick` end to end and checks that the table and both
//! report files are produced. No figure is checked: timings depend on the machine.
//!
//! Needs root, iproute2, util-linux (nsenter), containernetworking-plugins and
//! netavark, and the `cloison` and `cloison-cni` binaries built in the same profile
//! (`cargo build -p cloison -p cloison-cni`).

use std::path::PathBuf;
use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_cloison-bench");

#[test]
#[ignore = "needs root and the cloison binaries; run with --ignored"]
fn attach_quick_writes_table() {
    let out = std::env::temp_dir().join(format!("cloison-bench-smoke-{}", std::process::id()));
    let cloison = PathBuf::from(BENCH).with_file_name("cloison");
    assert!(cloison.is_file(), "{} is missing; run `cargo build -p cloison -p cloison-cni` first", cloison.display());

    let output = Command::new(BENCH)
        .args(["attach", "--quick", "--out"])
        .arg(&out)
        .output()
        .expect("cloison-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "cloison-bench failed: {stderr}");

    assert!(stdout.contains("| scenario | case | subject |"), "no table header in {stdout}");
    assert!(stdout.contains("cloison (agent socket)"), "no agent socket row in {stdout}");
    assert!(stdout.contains("floor (ip -batch)"), "no floor row in {stdout}");
    let markdown = std::fs::read_to_string(out.join("benchmarks.md")).expect("benchmarks.md is written");
    assert!(markdown.contains("attach, sequential"), "no sequential row in {markdown}");
    let json = std::fs::read_to_string(out.join("benchmarks.json")).expect("benchmarks.json is written");
    let report: serde_json::Value = serde_json::from_str(&json).expect("benchmarks.json is JSON");
    assert!(report["rows"].as_array().is_some_and(|rows| !rows.is_empty()), "no rows in {json}");
    let _ = std::fs::remove_dir_all(&out);
}
