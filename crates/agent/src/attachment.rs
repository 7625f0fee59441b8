//! Bodies of the socket routes that container runtimes use through the CNI plugin:
//! an endpoint together with the network facts a runtime result needs.

use std::net::{Ipv4Addr, Ipv6Addr};

use cloison_dataplane::names;
use cloison_model::{Endpoint, Network};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::HostContext;

/// A local endpoint with its network's prefixes and gateways, its MTU on this
/// host and the name of its host-side veth. The endpoint's fields are inlined, so
/// a client that reads an [`Endpoint`] can decode this body too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalAttachment {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    pub mtu: u32,
    pub host_ifname: String,
}

impl LocalAttachment {
    pub fn new(ctx: &HostContext, network: &Network, endpoint: Endpoint) -> Self {
        LocalAttachment {
            subnet: network.subnet,
            gateway: network.gateway,
            subnet6: network.subnet6,
            gateway6: network.gateway6,
            mtu: ctx.overlay_mtu(network),
            host_ifname: names::endpoint_host(&endpoint.id),
            endpoint,
        }
    }
}

/// Query of `GET /v1/endpoints`: every field given narrows the list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndpointQuery {
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub network: Option<String>,
    /// One label as `KEY=VALUE`; the endpoint must carry it with that value.
    #[serde(default)]
    pub label: Option<String>,
}

impl EndpointQuery {
    /// Returns true when `endpoint` passes every filter.
    pub fn matches(&self, endpoint: &Endpoint) -> bool {
        let label_ok = match self.label.as_deref().map(|l| l.split_once('=').unwrap_or((l, ""))) {
            Some((key, value)) => endpoint.labels.get(key).is_some_and(|v| v == value),
            None => true,
        };
        label_ok
            && self.tenant.as_ref().is_none_or(|t| *t == endpoint.tenant)
            && self.network.as_ref().is_none_or(|n| *n == endpoint.network)
    }
}

/// Body of `POST /v1/check`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRequest {
    pub tenant: String,
    pub endpoint: String,
}
