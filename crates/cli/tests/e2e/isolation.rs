//! Two tenants with the same subnet never reach each other.

use crate::harness::{text, Host, Netns};

/// MACs given to the red tenant's endpoints, so a red MAC is recognisable anywhere.
const RED_MACS: [&str; 3] = [
    "0a:ee:00:00:00:01",
    "0a:ee:00:00:00:02",
    "0a:ee:00:00:00:03",
];

/// Returns the lines of `ip neigh` in `container` that carry a link-layer address.
fn learned_neighbours(container: &Netns) -> Vec<String> {
    container
        .exec_ok(&["ip", "neigh", "show"])
        .lines()
        .filter(|line| line.contains("lladdr"))
        .map(str::to_string)
        .collect()
}

#[test]
fn tenants_same_subnet_isolated() {
    let host = Host::start("iso");
    host.create_network("blue", "web", "10.10.0.0/24");
    host.create_network("red", "web", "10.10.0.0/24");

    // Blue: two default endpoints (.2, .3) and one at an address red never uses.
    let blue: Vec<Netns> = (0..3).map(|_| Netns::new("blue")).collect();
    let b1 = host.attach("blue", "web", &blue[0], &[]);
    let b2 = host.attach("blue", "web", &blue[1], &[]);
    host.attach("blue", "web", &blue[2], &["--ip", "10.10.0.50"]);
    assert_eq!(text(&b1, "ipv4"), "10.10.0.2");
    assert_eq!(text(&b2, "ipv4"), "10.10.0.3");

    // Red: two endpoints at addresses blue does not have, and one sharing blue's .2.
    let red: Vec<Netns> = (0..3).map(|_| Netns::new("red")).collect();
    host.attach(
        "red",
        "web",
        &red[0],
        &["--ip", "10.10.0.102", "--mac", RED_MACS[0]],
    );
    host.attach(
        "red",
        "web",
        &red[1],
        &["--ip", "10.10.0.103", "--mac", RED_MACS[1]],
    );
    let r3 = host.attach(
        "red",
        "web",
        &red[2],
        &["--ip", "10.10.0.2", "--mac", RED_MACS[2]],
    );
    assert_eq!(text(&r3, "ipv4"), "10.10.0.2");

    // Inside each tenant, endpoints reach each other.
    assert!(blue[0].ping("10.10.0.3", 3), "blue .2 cannot reach blue .3");
    assert!(
        blue[1].ping("10.10.0.50", 3),
        "blue .3 cannot reach blue .50"
    );
    assert!(
        red[0].ping("10.10.0.103", 3),
        "red .102 cannot reach red .103"
    );
    assert!(red[1].ping("10.10.0.2", 3), "red .103 cannot reach red .2");

    // Across tenants, no reply comes back when each side probes the other's own addresses.
    for (i, container) in blue.iter().enumerate() {
        for address in ["10.10.0.102", "10.10.0.103"] {
            assert!(
                !container.ping(address, 2),
                "blue endpoint {i} reached red {address}"
            );
        }
    }
    for (i, container) in red.iter().enumerate() {
        for address in ["10.10.0.3", "10.10.0.50"] {
            assert!(
                !container.ping(address, 2),
                "red endpoint {i} reached blue {address}"
            );
        }
    }

    // The shared address .2 resolves to the tenant's own endpoint on each side.
    assert!(blue[1].ping("10.10.0.2", 2), "blue .3 cannot reach blue .2");
    assert!(red[0].ping("10.10.0.2", 2), "red .102 cannot reach red .2");

    // ARP from one tenant never gets a reply from the other. No blue neighbour table
    // contains a red MAC, and the red-only addresses stay unresolved in blue.
    for (i, container) in blue.iter().enumerate() {
        for line in learned_neighbours(container) {
            for mac in RED_MACS {
                assert!(
                    !line.contains(mac),
                    "blue endpoint {i} learned red MAC {mac}: {line}"
                );
            }
            assert!(
                !line.starts_with("10.10.0.102 "),
                "blue endpoint {i} resolved red .102: {line}"
            );
            assert!(
                !line.starts_with("10.10.0.103 "),
                "blue endpoint {i} resolved red .103: {line}"
            );
        }
    }
    let blue_macs: Vec<String> = host
        .endpoints()
        .iter()
        .filter(|e| text(e, "tenant") == "blue")
        .map(|e| text(e, "mac"))
        .collect();
    assert_eq!(blue_macs.len(), 3);
    for (i, container) in red.iter().enumerate() {
        for line in learned_neighbours(container) {
            for mac in &blue_macs {
                assert!(
                    !line.contains(mac.as_str()),
                    "red endpoint {i} learned blue MAC {mac}: {line}"
                );
            }
            assert!(
                !line.starts_with("10.10.0.3 "),
                "red endpoint {i} resolved blue .3: {line}"
            );
            assert!(
                !line.starts_with("10.10.0.50 "),
                "red endpoint {i} resolved blue .50: {line}"
            );
        }
    }
}
