//! The `CNI_*` environment variables of one invocation.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::CniError;

/// The operation a runtime requests through `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

/// The parameters of one invocation, read from the environment.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub command: Command,
    pub container_id: String,
    /// Path of the container's network namespace; DEL may come without one.
    pub netns: Option<String>,
    pub ifname: String,
    pub args: CniArgs,
}

/// The `CNI_ARGS` keys cloison understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// Addresses from `IP=a,b`; the `ips` capability takes precedence.
    pub ips: Vec<IpAddr>,
}

impl Invocation {
    /// Reads the invocation through `lookup`, which is `std::env::var` in the binary.
    /// Only the variables the command needs are required.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let command_text = lookup("CNI_COMMAND").unwrap_or_default();
        let command = parse_command(&command_text)?;
        let needs_container = matches!(command, Command::Add | Command::Del | Command::Check);
        let required = |name: &str| -> Result<String, CniError> {
            match lookup(name).filter(|v| !v.is_empty()) {
                Some(value) => Ok(value),
                None if needs_container => Err(CniError::environment(format!("{name} is missing or empty"))),
                None => Ok(String::new()),
            }
        };
        let container_id = required("CNI_CONTAINERID")?;
        let ifname = required("CNI_IFNAME")?;
        let netns = lookup("CNI_NETNS").filter(|v| !v.is_empty());
        if netns.is_none() && matches!(command, Command::Add | Command::Check) {
            return Err(CniError::environment("CNI_NETNS is missing or empty; ADD and CHECK need the container's namespace path"));
        }
        let args = parse_args(&lookup("CNI_ARGS").unwrap_or_default())?;
        Ok(Invocation { command, container_id, netns, ifname, args })
    }
}

fn parse_command(text: &str) -> Result<Command, CniError> {
    match text {
        "ADD" => Ok(Command::Add),
        "DEL" => Ok(Command::Del),
        "CHECK" => Ok(Command::Check),
        "VERSION" => Ok(Command::Version),
        "STATUS" => Ok(Command::Status),
        "GC" => Ok(Command::Gc),
        other => Err(CniError::environment(format!(
            "CNI_COMMAND {other:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"
        ))),
    }
}

/// Parses `CNI_ARGS` (`K=V;K=V`). Unknown keys are rejected unless `IgnoreUnknown`
/// is true, following the convention the reference plugins share.
pub fn parse_args(text: &str) -> Result<CniArgs, CniError> {
    let mut pairs = BTreeMap::new();
    for item in text.split(';').filter(|item| !item.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| CniError::environment(format!("CNI_ARGS item {item:?} is not KEY=VALUE")))?;
        pairs.insert(key.to_string(), value.to_string());
    }
    let ignore_unknown = pairs
        .remove("IgnoreUnknown")
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let mut args = CniArgs::default();
    if let Some(list) = pairs.remove("IP") {
        args.ips = parse_ips(&list)?;
    }
    // Runtimes pass these identity keys to every plugin; they carry nothing cloison uses.
    for key in ["K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID"] {
        pairs.remove(key);
    }
    if let Some(key) = pairs.keys().next().filter(|_| !ignore_unknown) {
        return Err(CniError::environment(format!(
            "CNI_ARGS key {key:?} is unknown; cloison reads IP and IgnoreUnknown"
        )));
    }
    Ok(args)
}

fn parse_ips(list: &str) -> Result<Vec<IpAddr>, CniError> {
    list.split(',')
        .map(|text| {
            text.trim().parse().map_err(|_| {
                CniError::environment(format!("CNI_ARGS IP value {text:?} is not an IPv4 or IPv6 address"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn add_needs_netns() {
        let vars = &[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")];
        let err = Invocation::from_lookup(lookup(vars)).expect_err("no netns");
        assert_eq!(err.code.number(), 4);
    }

    #[test]
    fn del_without_netns_is_valid() {
        let vars = &[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")];
        let inv = Invocation::from_lookup(lookup(vars)).expect("valid DEL");
        assert_eq!(inv.netns, None);
    }

    #[test]
    fn version_needs_no_container() {
        let inv = Invocation::from_lookup(lookup(&[("CNI_COMMAND", "VERSION")])).expect("valid");
        assert_eq!(inv.command, Command::Version);
    }

    #[test]
    fn unknown_command_is_code_four() {
        let err = Invocation::from_lookup(lookup(&[("CNI_COMMAND", "UP")])).expect_err("unknown");
        assert_eq!(err.code.number(), 4);
    }

    #[test]
    fn args_ip_and_ignore_unknown() {
        let args = parse_args("IgnoreUnknown=1;IP=10.0.0.7;FOO=bar").expect("valid");
        assert_eq!(args.ips, vec!["10.0.0.7".parse::<IpAddr>().expect("ip")]);
    }

    #[test]
    fn args_unknown_key_rejected() {
        let err = parse_args("FOO=bar").expect_err("unknown key");
        assert!(err.details.contains("FOO"), "{}", err.details);
    }

    #[test]
    fn args_bad_ip_rejected() {
        assert!(parse_args("IP=10.0.0.300").is_err());
    }
}
