//! One dockerd on one lab host: creating networks, running and connecting
//! containers, the errors Docker users see, and start times beside Docker's bridge.

mod common;

use std::time::{Duration, Instant};

use common::{container_ip, create_network, docker, docker_err, dockerd, lab, wait_ping, IMAGE};

#[test]
fn docker_network_and_containers() {
    let lab = lab("dkone", 1);
    let dockerd = dockerd(&lab, "h1");
    create_network(&dockerd, "blue-net", "blue", &["--subnet", "10.61.0.0/24"]);

    let driver = docker(&dockerd, &["network", "inspect", "-f", "{{.Driver}} {{.IPAM.Driver}} {{(index .IPAM.Config 0).Subnet}}", "blue-net"]);
    assert_eq!(driver, "cloison cloison 10.61.0.0/24");

    docker(&dockerd, &["run", "-d", "--name", "c1", "--network", "blue-net", "--ip", "10.61.0.50", "--mac-address", "02:42:0a:3d:00:32", IMAGE, "sleep", "600"]);
    docker(&dockerd, &["run", "-d", "--name", "c2", "--network", "blue-net", IMAGE, "sleep", "600"]);
    let inside = docker(&dockerd, &["exec", "c1", "ip", "addr", "show", "eth0"]);
    assert!(inside.contains("10.61.0.50/24"), "{inside}");
    assert!(inside.contains("02:42:0a:3d:00:32"), "{inside}");
    let routes = docker(&dockerd, &["exec", "c1", "ip", "route"]);
    assert!(routes.contains("default via 10.61.0.1 dev eth0"), "{routes}");
    let links = docker(&dockerd, &["exec", "c1", "ip", "link"]);
    assert!(!links.contains("eth1"), "no docker_gwbridge interface: {links}");
    wait_ping(&dockerd, "c1", "10.61.0.1");
    let c2_ip = container_ip(&dockerd, "c2", "blue-net");
    assert_eq!(c2_ip, "10.61.0.2");
    wait_ping(&dockerd, "c1", &c2_ip);

    // The controller stores one endpoint per container, named after Docker's endpoint.
    let endpoints = lab.cli("ctl", &["endpoint", "ls", "--tenant", "blue"]).expect("endpoint ls");
    assert_eq!(endpoints.matches("docker-").count(), 4, "{endpoints}");

    create_network(&dockerd, "blue-two", "blue", &["--subnet", "10.62.0.0/24"]);
    docker(&dockerd, &["network", "connect", "blue-two", "c1"]);
    let second = docker(&dockerd, &["exec", "c1", "ip", "addr", "show", "eth1"]);
    assert!(second.contains("10.62.0.2/24"), "{second}");
    docker(&dockerd, &["network", "disconnect", "blue-two", "c1"]);
    let links = docker(&dockerd, &["exec", "c1", "ip", "link"]);
    assert!(!links.contains("eth1"), "{links}");
    docker(&dockerd, &["network", "rm", "blue-two"]);
    let networks = lab.cli("ctl", &["network", "ls", "--tenant", "blue"]).expect("network ls");
    assert!(!networks.contains("10.62.0.0/24"), "the driver deletes the network it created: {networks}");

    docker(&dockerd, &["rm", "-f", "c1", "c2"]);
    docker(&dockerd, &["network", "rm", "blue-net"]);
}

#[test]
fn docker_errors_are_readable() {
    let lab = lab("dkerr", 1);
    let dockerd = dockerd(&lab, "h1");

    let bad_tenant = docker_err(&dockerd, &["network", "create", "-d", "cloison", "--ipam-driver", "cloison", "--subnet", "10.71.0.0/24", "-o", "tenant=Bad_Tenant", "bad"]);
    assert!(bad_tenant.contains("Bad_Tenant"), "{bad_tenant}");

    let no_tenant = docker_err(&dockerd, &["network", "create", "-d", "cloison", "--ipam-driver", "cloison", "--subnet", "10.71.0.0/24", "nameless"]);
    assert!(no_tenant.contains("-o tenant=NAME"), "{no_tenant}");

    create_network(&dockerd, "red-net", "red", &["--subnet", "10.71.0.0/24"]);
    let overlap = docker_err(&dockerd, &["network", "create", "-d", "cloison", "--ipam-driver", "cloison", "--subnet", "10.71.0.0/25", "-o", "tenant=red", "-o", "network=other", "red-other"]);
    assert!(overlap.contains("overlaps"), "{overlap}");

    docker(&dockerd, &["run", "-d", "--name", "r1", "--network", "red-net", "--ip", "10.71.0.9", IMAGE, "sleep", "600"]);
    let taken = docker_err(&dockerd, &["run", "--rm", "--network", "red-net", "--ip", "10.71.0.9", IMAGE, "true"]);
    assert!(taken.contains("10.71.0.9 is already used by endpoint"), "{taken}");

    docker(&dockerd, &["run", "-d", "--name", "r2", "--network", "red-net", "-p", "8080:80", IMAGE, "sleep", "600"]);
    let taken = docker_err(&dockerd, &["run", "--rm", "--network", "red-net", "-p", "8080:80", IMAGE, "true"]);
    assert!(taken.contains("cannot publish 8080:80/tcp"), "{taken}");
    assert!(taken.contains("already taken"), "{taken}");
    let no_host_port = docker_err(&dockerd, &["run", "--rm", "--network", "red-net", "-p", "80", IMAGE, "true"]);
    assert!(no_host_port.contains("no host port"), "{no_host_port}");

    // Subnets chosen by the driver come from its pool and never overlap.
    create_network(&dockerd, "auto-one", "red", &[]);
    create_network(&dockerd, "auto-two", "red", &[]);
    let one = docker(&dockerd, &["network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", "auto-one"]);
    let two = docker(&dockerd, &["network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", "auto-two"]);
    assert!(one.starts_with("10.22"), "{one}");
    assert_ne!(one, two);

    docker(&dockerd, &["rm", "-f", "r1", "r2"]);
    for network in ["red-net", "auto-one", "auto-two"] {
        docker(&dockerd, &["network", "rm", network]);
    }
}

/// Fetches `http://ADDRESS:PORT/` from lab host `host` with curl, retrying for up to 10 s while the publication reaches the dataplane.
fn fetch(lab: &cloison_lab::Lab, host: &str, address: &str, port: u16) -> Result<String, String> {
    let url = format!("http://{address}:{port}/");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match lab.exec(host, &["curl", "-sS", "-m", "2", &url]) {
            Ok(output) => return Ok(String::from_utf8_lossy(&output.stdout).to_string()),
            Err(e) if Instant::now() > deadline => return Err(e.to_string()),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn docker_published_port_reachable() {
    let lab = lab("dkpub", 1);
    let dockerd = dockerd(&lab, "h1");
    create_network(&dockerd, "pub-net", "pub", &["--subnet", "10.63.0.0/24"]);
    let script = "mkdir -p /www && echo published-ok > /www/index.html && httpd -f -p 80 -h /www";
    docker(&dockerd, &["run", "-d", "--name", "web", "--network", "pub-net", "-p", "18080:80", "-p", "15353:53/udp", IMAGE, "sh", "-c", script]);

    let publications = lab.cli("ctl", &["publication", "ls", "--tenant", "pub"]).expect("publication ls");
    assert!(publications.contains("18080"), "{publications}");
    assert!(publications.contains("15353"), "{publications}");
    let node = lab.node("h1").unwrap_or_else(|e| panic!("{e}"));
    let h1 = node.underlay_ip().map(|ip| ip.to_string()).expect("h1 has an underlay address");
    let page = fetch(&lab, "h1", &h1, 18080);
    assert_eq!(page.as_deref().map(str::trim), Ok("published-ok"), "h1 to its own address, port 18080");

    // Stopping the container revokes its ports, and removing it deletes the endpoint.
    docker(&dockerd, &["stop", "-t", "1", "web"]);
    let publications = lab.cli("ctl", &["publication", "ls", "--tenant", "pub"]).expect("publication ls");
    assert!(!publications.contains("18080"), "publication left after docker stop: {publications}");
    docker(&dockerd, &["start", "web"]);
    let page = fetch(&lab, "h1", &h1, 18080);
    assert_eq!(page.as_deref().map(str::trim), Ok("published-ok"), "h1 to port 18080 after docker start");

    docker(&dockerd, &["rm", "-f", "web"]);
    let publications = lab.cli("ctl", &["publication", "ls", "--tenant", "pub"]).expect("publication ls");
    assert!(!publications.contains("18080"), "publication left after docker rm: {publications}");
    docker(&dockerd, &["network", "rm", "pub-net"]);
}

/// Returns the median wall time of `docker run --rm --network NETWORK IMAGE true`.
fn median_run(dockerd: &cloison_lab::Dockerd, network: &str, runs: usize) -> Duration {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            docker(dockerd, &["run", "--rm", "--network", network, IMAGE, "true"]);
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
fn docker_run_start_time() {
    let lab = lab("dktime", 1);
    let dockerd = dockerd(&lab, "h1");
    create_network(&dockerd, "cloison-net", "bench", &["--subnet", "10.81.0.0/24"]);
    docker(&dockerd, &["network", "create", "-d", "bridge", "--subnet", "10.82.0.0/24", "bridge-net"]);

    // Warm both paths once, so neither pays for the first container of the daemon.
    median_run(&dockerd, "bridge-net", 1);
    median_run(&dockerd, "cloison-net", 1);
    let bridge = median_run(&dockerd, "bridge-net", 7);
    let cloison = median_run(&dockerd, "cloison-net", 7);
    // The figure is the point of this test; `--nocapture` shows it.
    #[allow(clippy::print_stdout)]
    {
        println!("docker run --rm median of 7: --network cloison-net {cloison:?}, --network bridge-net {bridge:?}");
    }
    assert!(cloison < bridge * 3, "cloison {cloison:?} against bridge {bridge:?}");

    docker(&dockerd, &["network", "rm", "cloison-net", "bridge-net"]);
}
