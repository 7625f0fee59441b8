//! dockerd on several lab hosts, restarts of dockerd and of the agent, and
//! Compose services on an external cloison network.

mod common;

use common::{container_ip, create_network, docker, dockerd, lab, wait_ping, IMAGE};

#[test]
fn containers_on_two_hosts_talk() {
    let lab = lab("dktwo", 2);
    let h1 = dockerd(&lab, "h1");
    let h2 = dockerd(&lab, "h2");
    // Both daemons bind their Docker network to one cloison network.
    for dockerd in [&h1, &h2] {
        create_network(dockerd, "shared", "green", &["--subnet", "10.91.0.0/24", "-o", "network=shared"]);
    }
    let networks = lab.cli("ctl", &["network", "ls", "--tenant", "green"]).expect("network ls");
    assert_eq!(networks.matches("10.91.0.0/24").count(), 1, "{networks}");

    docker(&h1, &["run", "-d", "--name", "ca", "--network", "shared", IMAGE, "sleep", "600"]);
    docker(&h2, &["run", "-d", "--name", "cb", "--network", "shared", IMAGE, "sleep", "600"]);
    let a_ip = container_ip(&h1, "ca", "shared");
    let b_ip = container_ip(&h2, "cb", "shared");
    assert_ne!(a_ip, b_ip, "addresses come from one cloison network");
    wait_ping(&h2, "cb", &a_ip);
    wait_ping(&h1, "ca", &b_ip);

    docker(&h1, &["rm", "-f", "ca"]);
    docker(&h1, &["network", "rm", "shared"]);
    let networks = lab.cli("ctl", &["network", "ls", "--tenant", "green"]).expect("network ls");
    assert!(networks.contains("10.91.0.0/24"), "h2 still uses the network: {networks}");
    docker(&h2, &["rm", "-f", "cb"]);
    docker(&h2, &["network", "rm", "shared"]);
}

#[test]
fn state_survives_restarts() {
    let mut lab = lab("dkrestart", 1);
    let mut dockerd = dockerd(&lab, "h1");
    create_network(&dockerd, "keep", "gold", &["--subnet", "10.93.0.0/24"]);
    docker(&dockerd, &["run", "-d", "--name", "k1", "--network", "keep", IMAGE, "sleep", "600"]);
    wait_ping(&dockerd, "k1", "10.93.0.1");

    // Agent restart: the running container keeps its network, new ones get one.
    lab.kill_agent("h1").expect("kill agent");
    lab.start_agent("h1").expect("start agent");
    wait_ping(&dockerd, "k1", "10.93.0.1");
    docker(&dockerd, &["run", "-d", "--name", "k2", "--network", "keep", IMAGE, "sleep", "600"]);
    wait_ping(&dockerd, "k2", &container_ip(&dockerd, "k1", "keep"));

    // dockerd restart: Docker does not replay CreateNetwork; the agent's records serve.
    dockerd.restart(&lab).expect("restart dockerd");
    let listed = docker(&dockerd, &["network", "inspect", "-f", "{{.Driver}} {{(index .IPAM.Config 0).Subnet}}", "keep"]);
    assert_eq!(listed, "cloison 10.93.0.0/24");
    docker(&dockerd, &["run", "-d", "--name", "k3", "--network", "keep", IMAGE, "sleep", "600"]);
    wait_ping(&dockerd, "k3", "10.93.0.1");

    // Both down, agent back last.
    lab.kill_agent("h1").expect("kill agent");
    dockerd.restart(&lab).expect("restart dockerd");
    lab.start_agent("h1").expect("start agent");
    docker(&dockerd, &["run", "-d", "--name", "k4", "--network", "keep", IMAGE, "sleep", "600"]);
    wait_ping(&dockerd, "k4", "10.93.0.1");

    docker(&dockerd, &["rm", "-f", "k1", "k2", "k3", "k4"]);
    docker(&dockerd, &["network", "rm", "keep"]);
}

#[test]
fn compose_services_reach_by_name() {
    let lab = lab("dkcompose", 1);
    let dockerd = dockerd(&lab, "h1");
    create_network(&dockerd, "front", "teal", &["--subnet", "10.95.0.0/24"]);
    let file = dockerd.dir.join("compose.yml");
    let compose = format!(
        "version: \"3\"\nservices:\n  web:\n    image: {IMAGE}\n    command: [\"sleep\", \"600\"]\n  db:\n    image: {IMAGE}\n    command: [\"sleep\", \"600\"]\nnetworks:\n  default:\n    external: true\n    name: front\n"
    );
    std::fs::write(&file, compose).expect("write compose file");
    let file = file.display().to_string();
    let compose = |args: &[&str]| {
        let output = std::process::Command::new("docker-compose")
            .args(["-p", "fig", "-f", &file])
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", dockerd.socket().display()))
            .output()
            .expect("docker-compose runs; install the Debian package docker-compose");
        assert!(output.status.success(), "docker-compose {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    };
    compose(&["up", "-d"]);
    wait_ping(&dockerd, "fig_web_1", "db");
    wait_ping(&dockerd, "fig_db_1", "web");
    compose(&["down"]);
    docker(&dockerd, &["network", "rm", "front"]);
}
