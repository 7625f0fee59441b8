//! The CNI verbs. Each reads a validated configuration and invocation and returns
//! what goes to stdout on success.

use cloison_agent::AttachRequest;
use serde_json::{json, Value};

use crate::config::{check_ifname, Attachment};
use crate::naming::{self, LABEL_CONTAINER_ID, LABEL_IFNAME, LABEL_NETWORK};
use crate::version::{require, SUPPORTED};
use crate::{add_result, check_prev_result, Agent, CniError, Command, ErrorCode, Invocation, NetConf, SpecVersion};

/// Runs one invocation. VERSION needs no configuration beyond `cniVersion`.
pub fn run(invocation: &Invocation, version: SpecVersion, config: Value) -> Result<Option<Value>, CniError> {
    if invocation.command == Command::Version {
        return Ok(Some(version_reply(version)));
    }
    let conf = NetConf::from_value(config)?;
    let agent = Agent::new(&conf.agent_socket());
    match invocation.command {
        Command::Add => add(&agent, &conf, version, invocation).map(Some),
        Command::Del => del(&agent, &conf, invocation).map(|()| None),
        Command::Check => check(&agent, &conf, version, invocation).map(|()| None),
        Command::Status => status(&agent, version).map(|()| None),
        Command::Gc => gc(&agent, &conf, version).map(|()| None),
        Command::Version => Ok(Some(version_reply(version))),
    }
}

/// Returns the VERSION reply in the version the runtime asked about.
pub fn version_reply(version: SpecVersion) -> Value {
    json!({
        "cniVersion": version.as_str(),
        "supportedVersions": SUPPORTED.map(SpecVersion::as_str),
    })
}

fn add(agent: &Agent, conf: &NetConf, version: SpecVersion, inv: &Invocation) -> Result<Value, CniError> {
    check_ifname(&inv.ifname)?;
    let netns = inv.netns.clone().unwrap_or_default();
    let requested = conf.requested(&inv.args)?;
    // NOTE: portMappings are validated and left to `portmap` chained after cloison;
    // cloison's own publications do not read them yet.
    let request = AttachRequest {
        tenant: conf.tenant.clone(),
        network: conf.network.clone(),
        target: netns.clone(),
        name: Some(naming::endpoint_name(&conf.name, &inv.container_id, &inv.ifname)),
        ipv4: requested.ipv4,
        ipv6: requested.ipv6,
        mac: requested.mac,
        ifname: Some(inv.ifname.clone()),
        groups: Vec::new(),
        labels: naming::labels(&conf.name, &inv.container_id, &inv.ifname),
    };
    let attachment = agent.attach(&request)?;
    Ok(add_result(version, &attachment, &netns, conf.prev_result.as_ref()))
}

/// Removes the attachment's endpoint, which frees its addresses. Succeeds when the
/// endpoint, the namespace or the interface is gone already.
fn del(agent: &Agent, conf: &NetConf, inv: &Invocation) -> Result<(), CniError> {
    let name = naming::endpoint_name(&conf.name, &inv.container_id, &inv.ifname);
    agent.detach(&conf.tenant, &name).map(|_| ())
}

fn check(agent: &Agent, conf: &NetConf, version: SpecVersion, inv: &Invocation) -> Result<(), CniError> {
    require(version, SpecVersion::V0_4_0, "CHECK")?;
    let name = naming::endpoint_name(&conf.name, &inv.container_id, &inv.ifname);
    let attachment = agent.check(&conf.tenant, &name)?;
    let netns = inv.netns.clone().unwrap_or_default();
    if attachment.endpoint.sandbox != netns {
        return Err(CniError::new(
            ErrorCode::CheckFailed,
            "attachment drifted",
            format!("endpoint {name} is in {}, CNI_NETNS is {netns}", attachment.endpoint.sandbox),
        ));
    }
    check_prev_result(conf.prev_result.as_ref(), &attachment, &netns)
}

fn status(agent: &Agent, version: SpecVersion) -> Result<(), CniError> {
    require(version, SpecVersion::V1_1_0, "STATUS")?;
    agent
        .status()
        
        .map(|_| ())
        .map_err(|e| CniError::new(ErrorCode::NotAvailable, "cloison agent not available", e.details))
}

/// Removes every attachment of this CNI network on this host that the runtime does
/// not list as valid. Every stale one is tried; the first failure is returned.
fn gc(agent: &Agent, conf: &NetConf, version: SpecVersion) -> Result<(), CniError> {
    require(version, SpecVersion::V1_1_0, "GC")?;
    let Some(valid) = &conf.valid_attachments else {
        return Err(CniError::config("cni.dev/valid-attachments is missing; GC needs the list of attachments to keep"));
    };
    let label = format!("{LABEL_NETWORK}={}", conf.name);
    let mut first_error = None;
    for attachment in agent.list(&conf.tenant, &conf.network, &label)? {
        let endpoint = &attachment.endpoint;
        let key = Attachment {
            container_id: endpoint.labels.get(LABEL_CONTAINER_ID).cloned().unwrap_or_default(),
            ifname: endpoint.labels.get(LABEL_IFNAME).cloned().unwrap_or_default(),
        };
        if valid.contains(&key) {
            continue;
        }
        if let Err(e) = agent.detach(&conf.tenant, &endpoint.name) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}
