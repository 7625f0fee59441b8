//! The network configuration a runtime writes to the plugin's stdin.

use std::net::IpAddr;
use std::path::PathBuf;

use cloison_model::{validate_ifname, validate_name, MacAddr};
use serde::Deserialize;
use serde_json::Value;

use crate::{CniArgs, CniError, ErrorCode, SpecVersion};

/// Agent socket used when the configuration names none.
pub const DEFAULT_AGENT_SOCKET: &str = "/run/cloison/agent.sock";

/// cloison's network configuration, as the runtime passes it for one plugin of a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    /// The CNI network name, recorded on each endpoint so GC finds its attachments.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// The cloison network the containers join.
    #[serde(default)]
    pub network: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub agent_socket: Option<PathBuf>,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// Attachments GC must keep; 1.1.0 calls the key `cni.dev/valid-attachments`,
    /// drafts before it `cni.dev/attachments`.
    #[serde(rename = "cni.dev/valid-attachments", alias = "cni.dev/attachments", default)]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// Values of the capabilities cloison declares, passed by the runtime in `runtimeConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// `ips` capability: addresses, with or without a prefix length.
    #[serde(default)]
    pub ips: Vec<String>,
    /// `mac` capability.
    #[serde(default)]
    pub mac: Option<String>,
    /// `portMappings` capability.
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
}

/// One published port; `portmap`, chained after cloison, programs it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default, rename = "hostIP")]
    pub host_ip: Option<String>,
}

/// One container interface GC must keep.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// What the runtime asked for, after validation: addresses and MAC for the endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    pub ipv4: Option<std::net::Ipv4Addr>,
    pub ipv6: Option<std::net::Ipv6Addr>,
    pub mac: Option<MacAddr>,
}

/// Reads the configuration's `cniVersion` before anything else, so every later
/// error can be reported in the version the runtime speaks.
pub fn parse_version(stdin: &[u8]) -> Result<(Value, SpecVersion), CniError> {
    let value: Value = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(ErrorCode::Decode, "cannot decode the network configuration", format!("stdin is not JSON: {e}"))
    })?;
    let text = value
        .get("cniVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| CniError::config("cniVersion is missing; it must be a string such as \"1.1.0\""))?;
    let version = SpecVersion::parse(text)?;
    Ok((value, version))
}

impl NetConf {
    /// Decodes and validates the configuration of the commands that reach a network.
    pub fn from_value(value: Value) -> Result<Self, CniError> {
        let conf: NetConf = serde_json::from_value(value).map_err(|e| CniError::config(e.to_string()))?;
        if conf.plugin_type != "cloison" {
            return Err(CniError::config(format!("type is {:?}; this plugin serves type \"cloison\"", conf.plugin_type)));
        }
        if conf.name.is_empty() {
            return Err(CniError::config("name is missing; it names the CNI network"));
        }
        if conf.tenant.is_empty() {
            return Err(CniError::config("tenant is missing; it names the cloison tenant that owns the network"));
        }
        if conf.network.is_empty() {
            return Err(CniError::config("network is missing; it names the cloison network the containers join"));
        }
        validate_name("tenant", &conf.tenant).map_err(|e| CniError::config(e.to_string()))?;
        validate_name("network", &conf.network).map_err(|e| CniError::config(e.to_string()))?;
        Ok(conf)
    }

    pub fn agent_socket(&self) -> PathBuf {
        self.agent_socket.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_AGENT_SOCKET))
    }

    /// Merges the `ips` and `mac` capabilities with `CNI_ARGS`; capabilities win
    /// because the runtime set them for this network specifically.
    pub fn requested(&self, args: &CniArgs) -> Result<Requested, CniError> {
        let mut addresses: Vec<IpAddr> = self.runtime_config.ips.iter().map(|t| parse_ip(t)).collect::<Result<_, _>>()?;
        if addresses.is_empty() {
            addresses = args.ips.clone();
        }
        let mut requested = Requested::default();
        for address in addresses {
            let duplicate = match address {
                IpAddr::V4(v4) => requested.ipv4.replace(v4).is_some(),
                IpAddr::V6(v6) => requested.ipv6.replace(v6).is_some(),
            };
            if duplicate {
                return Err(CniError::config("ips lists two addresses of one IP version; cloison gives an endpoint one IPv4 and one IPv6 address at most"));
            }
        }
        if let Some(text) = &self.runtime_config.mac {
            let mac = text.parse().map_err(|e| CniError::config(format!("runtimeConfig.mac: {e}")))?;
            requested.mac = Some(mac);
        }
        Ok(requested)
    }
}

/// Checks `CNI_IFNAME` against the kernel's interface name rules.
pub(crate) fn check_ifname(ifname: &str) -> Result<(), CniError> {
    validate_ifname(ifname).map_err(|e| CniError::environment(format!("CNI_IFNAME: {e}")))
}

fn parse_ip(text: &str) -> Result<IpAddr, CniError> {
    let address = text.split_once('/').map_or(text, |(ip, _)| ip);
    address
        .parse()
        .map_err(|_| CniError::config(format!("runtimeConfig.ips entry {text:?} is not an address such as 10.0.0.5 or 10.0.0.5/24")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(extra: Value) -> Result<NetConf, CniError> {
        let mut base = serde_json::json!({
            "cniVersion": "1.1.0", "name": "web", "type": "cloison", "network": "front", "tenant": "acme"
        });
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        NetConf::from_value(base)
    }

    #[test]
    fn wrong_type_is_code_seven() {
        let err = conf(serde_json::json!({"type": "bridge"})).expect_err("wrong type");
        assert_eq!(err.code.number(), 7);
    }

    #[test]
    fn missing_network_and_tenant_named() {
        for key in ["network", "tenant"] {
            let mut value = serde_json::json!({
                "cniVersion": "1.1.0", "name": "web", "type": "cloison", "network": "front", "tenant": "acme"
            });
            if let Some(object) = value.as_object_mut() {
                object.remove(key);
            }
            let err = NetConf::from_value(value).expect_err(key);
            assert_eq!(err.code.number(), 7, "{key}");
            assert!(err.details.starts_with(&format!("{key} is missing")), "{key}: {}", err.details);
        }
    }

    #[test]
    fn invalid_network_name_rejected() {
        assert!(conf(serde_json::json!({"network": "Front"})).is_err());
    }

    #[test]
    fn capabilities_override_args() {
        let c = conf(serde_json::json!({"runtimeConfig": {"ips": ["10.0.0.9/24"], "mac": "02:00:00:00:00:09"}})).expect("valid");
        let args = CniArgs { ips: vec!["10.0.0.7".parse().expect("ip")] };
        let requested = c.requested(&args).expect("valid");
        assert_eq!(requested.ipv4, Some("10.0.0.9".parse().expect("ip")));
        assert_eq!(requested.mac.map(|m| m.to_string()), Some("02:00:00:00:00:09".to_string()));
    }

    #[test]
    fn mac_rejection_gives_reason() {
        let cases = [("01:00:00:00:00:01", "multicast"), ("00:00:00:00:00:00", "all zeros"), ("zz", "six hex bytes")];
        for (mac, reason) in cases {
            let c = conf(serde_json::json!({"runtimeConfig": {"mac": mac}})).expect("valid");
            let err = c.requested(&CniArgs::default()).expect_err(mac);
            assert_eq!(err.code.number(), 7, "{mac}");
            assert!(err.details.starts_with("runtimeConfig.mac: invalid MAC address"), "{mac}: {}", err.details);
            assert!(err.details.contains(reason), "{mac}: {}", err.details);
        }
    }

    #[test]
    fn two_ipv4_addresses_rejected() {
        let c = conf(serde_json::json!({"runtimeConfig": {"ips": ["10.0.0.9", "10.0.0.10"]}})).expect("valid");
        assert!(c.requested(&CniArgs::default()).is_err());
    }

    #[test]
    fn legacy_attachments_key_accepted() {
        let c = conf(serde_json::json!({"cni.dev/attachments": [{"containerID": "c1", "ifname": "eth0"}]})).expect("valid");
        assert_eq!(c.valid_attachments.map(|a| a.len()), Some(1));
    }

    #[test]
    fn version_missing_is_code_seven() {
        let err = parse_version(b"{}").expect_err("no version");
        assert_eq!(err.code.number(), 7);
        let err = parse_version(b"not json").expect_err("not json");
        assert_eq!(err.code.number(), 6);
    }
}
