//! Helpers of the tests that run real dockerd instances on lab hosts.
//!
//! They need root, Debian's docker.io and busybox-static, the lab's tools and a
//! built `cloison` binary (`cargo build -p cloison`, or `CLOISON_BIN`). When
//! dockerd cannot start, a test fails with dockerd's own error.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use cloison_lab::{check_prerequisites, Dockerd, Lab, LabSpec, REQUIRED_TOOLS, BUSYBOX_IMAGE};

pub(crate) const IMAGE: &str = BUSYBOX_IMAGE;

/// Builds a lab called `name`, removing a leftover of an aborted run first.
pub(crate) fn lab(name: &str, hosts: usize) -> Lab {
    if let Err(e) = check_prerequisites(REQUIRED_TOOLS) {
        panic!("cannot run Docker lab tests: {e}");
    }
    let _ = cloison_lab::down(&name.parse().expect("valid lab name"));
    let spec = LabSpec::new(name, hosts).expect("lab spec");
    Lab::up(spec).unwrap_or_else(|e| panic!("lab {name} did not come up: {e}"))
}

/// Starts dockerd on `host` and imports the busybox image into it.
pub(crate) fn dockerd(lab: &Lab, host: &str) -> Dockerd {
    let dockerd = lab
        .start_dockerd(host)
        .unwrap_or_else(|e| panic!("dockerd cannot run on lab host {host}: {e}"));
    dockerd
        .import_busybox()
        .unwrap_or_else(|e| panic!("cannot import the busybox image: {e}"));
    dockerd
}

/// Runs `docker ARGS`, panicking with Docker's message when it fails.
pub(crate) fn docker(dockerd: &Dockerd, args: &[&str]) -> String {
    dockerd.run_ok(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `docker ARGS` that must fail and returns Docker's error message.
pub(crate) fn docker_err(dockerd: &Dockerd, args: &[&str]) -> String {
    let output = dockerd.run(args).unwrap_or_else(|e| panic!("{e}"));
    assert!(!output.status.success(), "docker {} succeeded but must fail", args.join(" "));
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Creates a cloison network through Docker.
pub(crate) fn create_network(dockerd: &Dockerd, name: &str, tenant: &str, extra: &[&str]) -> String {
    let tenant = format!("tenant={tenant}");
    let mut args = vec!["network", "create", "-d", "cloison", "--ipam-driver", "cloison", "-o", &tenant];
    args.extend_from_slice(extra);
    args.push(name);
    docker(dockerd, &args)
}

/// Waits until `container` on `dockerd` can ping `target`.
pub(crate) fn wait_ping(dockerd: &Dockerd, container: &str, target: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let output = dockerd
            .run(&["exec", container, "ping", "-c", "1", "-W", "1", target])
            .unwrap_or_else(|e| panic!("{e}"));
        if output.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{container} cannot ping {target}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

/// Returns the IPv4 address Docker reports for `container` on `network`.
pub(crate) fn container_ip(dockerd: &Dockerd, container: &str, network: &str) -> String {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    docker(dockerd, &["inspect", "-f", &format, container])
}
