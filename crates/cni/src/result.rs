//! The ADD result, written in the shape of the configuration's `cniVersion`.

use cloison_agent::LocalAttachment;
use serde_json::{json, Map, Value};

use crate::{CniError, ErrorCode, SpecVersion};

/// Builds the ADD result of an attachment: the host-side veth (which `bandwidth`
/// looks for), the container interface, its addresses and default routes.
/// Entries of `prev_result`, when cloison is not first in a list, come first.
pub fn add_result(version: SpecVersion, attachment: &LocalAttachment, netns: &str, prev_result: Option<&Value>) -> Value {
    let endpoint = &attachment.endpoint;
    let mut interfaces = list(prev_result, "interfaces");
    let mut ips = list(prev_result, "ips");
    let mut routes = list(prev_result, "routes");
    let host_index = interfaces.len();
    interfaces.push(json!({ "name": attachment.host_ifname }));
    let mut container = json!({ "name": endpoint.ifname, "mac": endpoint.mac.to_string(), "sandbox": netns });
    if version.interfaces_carry_mtu() {
        container["mtu"] = json!(attachment.mtu);
    }
    interfaces.push(container);
    let container_index = host_index + 1;

    let address4 = format!("{}/{}", endpoint.ipv4, attachment.subnet.prefix_len());
    ips.push(ip_entry(version, "4", &address4, &attachment.gateway.to_string(), container_index));
    routes.push(json!({ "dst": "0.0.0.0/0", "gw": attachment.gateway.to_string() }));
    if let (Some(ipv6), Some(subnet6)) = (endpoint.ipv6, attachment.subnet6) {
        let address6 = format!("{ipv6}/{}", subnet6.prefix_len());
        let gateway6 = attachment.gateway6.map(|g| g.to_string()).unwrap_or_default();
        ips.push(ip_entry(version, "6", &address6, &gateway6, container_index));
        if !gateway6.is_empty() {
            routes.push(json!({ "dst": "::/0", "gw": gateway6 }));
        }
    }

    let mut result = Map::new();
    result.insert("cniVersion".into(), json!(version.as_str()));
    result.insert("interfaces".into(), Value::Array(interfaces));
    result.insert("ips".into(), Value::Array(ips));
    result.insert("routes".into(), Value::Array(routes));
    if let Some(dns) = prev_result.and_then(|p| p.get("dns")) {
        result.insert("dns".into(), dns.clone());
    }
    Value::Object(result)
}

fn ip_entry(version: SpecVersion, family: &str, address: &str, gateway: &str, interface: usize) -> Value {
    let mut entry = json!({ "address": address, "interface": interface });
    if !gateway.is_empty() {
        entry["gateway"] = json!(gateway);
    }
    if version.ips_carry_version() {
        entry["version"] = json!(family);
    }
    entry
}

fn list(result: Option<&Value>, key: &str) -> Vec<Value> {
    result
        .and_then(|r| r.get(key))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Checks that the result cached from ADD (`prevResult` of CHECK) still describes
/// the attachment: the container interface with its MAC in `netns`, and its IPv4
/// address.
pub fn check_prev_result(prev_result: Option<&Value>, attachment: &LocalAttachment, netns: &str) -> Result<(), CniError> {
    let endpoint = &attachment.endpoint;
    let failed = |what: String| CniError::new(ErrorCode::CheckFailed, "attachment does not match the ADD result", what);
    let Some(prev) = prev_result else {
        return Err(CniError::config("prevResult is missing; CHECK needs the result of ADD"));
    };
    let mac = endpoint.mac.to_string();
    let interface = list(Some(prev), "interfaces").into_iter().position(|i| {
        i.get("name").and_then(Value::as_str) == Some(endpoint.ifname.as_str())
            && i.get("sandbox").and_then(Value::as_str) == Some(netns)
    });
    let Some(index) = interface else {
        return Err(failed(format!("prevResult has no interface {} in {netns}", endpoint.ifname)));
    };
    let listed_mac = list(Some(prev), "interfaces")[index].get("mac").and_then(Value::as_str).map(str::to_lowercase);
    if listed_mac.as_deref() != Some(mac.as_str()) {
        let listed = listed_mac.map_or_else(|| "no MAC".to_string(), |listed| format!("MAC {listed}"));
        return Err(failed(format!("interface {} has MAC {mac}, but prevResult lists {listed}", endpoint.ifname)));
    }
    let address4 = format!("{}/{}", endpoint.ipv4, attachment.subnet.prefix_len());
    let listed = list(Some(prev), "ips")
        .iter()
        .any(|ip| ip.get("address").and_then(Value::as_str) == Some(address4.as_str()));
    if !listed {
        return Err(failed(format!("prevResult does not list address {address4}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloison_model::Endpoint;

    fn attachment() -> LocalAttachment {
        let endpoint = Endpoint {
            id: "e1".into(),
            tenant: "acme".into(),
            name: "cni-x".into(),
            network: "front".into(),
            network_id: "n1".into(),
            host: "h1".into(),
            mac: "02:00:00:00:00:05".parse().expect("mac"),
            ipv4: "10.1.0.5".parse().expect("ip"),
            ipv6: Some("fd00::5".parse().expect("ip")),
            ifname: "eth0".into(),
            sandbox: "/run/netns/c1".into(),
            groups: vec![],
            labels: Default::default(),
            resource_version: 1,
        };
        LocalAttachment {
            endpoint,
            subnet: "10.1.0.0/24".parse().expect("net"),
            gateway: "10.1.0.1".parse().expect("ip"),
            subnet6: Some("fd00::/64".parse().expect("net")),
            gateway6: Some("fd00::1".parse().expect("ip")),
            mtu: 1450,
            host_ifname: "cle000000000001".into(),
        }
    }

    #[test]
    fn v1_result_has_no_ip_version() {
        let r = add_result(SpecVersion::V1_0_0, &attachment(), "/run/netns/c1", None);
        assert_eq!(r["cniVersion"], "1.0.0");
        assert_eq!(r["ips"][0]["address"], "10.1.0.5/24");
        assert_eq!(r["ips"][0]["interface"], 1);
        assert!(r["ips"][0].get("version").is_none());
        assert!(r["interfaces"][1].get("mtu").is_none());
    }

    #[test]
    fn v031_result_tags_ip_versions() {
        let r = add_result(SpecVersion::V0_3_1, &attachment(), "/run/netns/c1", None);
        assert_eq!(r["ips"][0]["version"], "4");
        assert_eq!(r["ips"][1]["version"], "6");
        assert_eq!(r["routes"][1]["dst"], "::/0");
    }

    #[test]
    fn v11_result_carries_mtu() {
        let r = add_result(SpecVersion::V1_1_0, &attachment(), "/run/netns/c1", None);
        assert_eq!(r["interfaces"][1]["mtu"], 1450);
        assert_eq!(r["interfaces"][1]["sandbox"], "/run/netns/c1");
    }

    #[test]
    fn prev_result_entries_come_first() {
        let prev = json!({"interfaces": [{"name": "lo0"}], "ips": [], "dns": {"nameservers": ["10.1.0.1"]}});
        let r = add_result(SpecVersion::V1_0_0, &attachment(), "/run/netns/c1", Some(&prev));
        assert_eq!(r["interfaces"][0]["name"], "lo0");
        assert_eq!(r["ips"][0]["interface"], 2);
        assert_eq!(r["dns"]["nameservers"][0], "10.1.0.1");
    }

    #[test]
    fn check_accepts_own_result_and_rejects_other_mac() {
        let a = attachment();
        let r = add_result(SpecVersion::V1_0_0, &a, "/run/netns/c1", None);
        assert!(check_prev_result(Some(&r), &a, "/run/netns/c1").is_ok());
        let mut other = r.clone();
        other["interfaces"][1]["mac"] = json!("02:00:00:00:00:06");
        let err = check_prev_result(Some(&other), &a, "/run/netns/c1").expect_err("MAC differs");
        assert_eq!(err.code.number(), 102);
        assert_eq!(err.details, "interface eth0 has MAC 02:00:00:00:00:05, but prevResult lists MAC 02:00:00:00:00:06");
    }

    #[test]
    fn check_names_missing_prev_result_mac() {
        let a = attachment();
        let mut r = add_result(SpecVersion::V1_0_0, &a, "/run/netns/c1", None);
        if let Some(interface) = r["interfaces"][1].as_object_mut() {
            interface.remove("mac");
        }
        let err = check_prev_result(Some(&r), &a, "/run/netns/c1").expect_err("MAC missing");
        assert_eq!(err.code.number(), 102);
        assert_eq!(err.details, "interface eth0 has MAC 02:00:00:00:00:05, but prevResult lists no MAC");
    }
}
