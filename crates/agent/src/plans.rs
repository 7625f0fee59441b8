use std::net::IpAddr;
use std::path::PathBuf;

use cloison_dataplane::{
    names, GatewayPlan, LocalEndpointPlan, NetworkPlan, RemoteEndpointPlan, RouterPlan, TransitPlan,
};
use cloison_model::{Endpoint, Network};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::DesiredState;

/// Facts about this host that shape every plan.
#[derive(Debug, Clone)]
pub struct HostContext {
    pub host: String,
    pub underlay_ip: IpAddr,
    /// MTU of the host's route to its peers; the overlay MTU is derived from it.
    pub underlay_mtu: u32,
    pub vxlan_port: u16,
    /// Directory for the agent's runtime files (router namespace pins).
    pub run_dir: PathBuf,
}

impl HostContext {
    /// Returns the overlay MTU: the network's own setting, or the underlay MTU minus
    /// the VXLAN overhead (50 bytes over IPv4, 70 over IPv6).
    pub fn overlay_mtu(&self, network: &Network) -> u32 {
        if let Some(mtu) = network.mtu {
            return mtu;
        }
        let overhead = if self.underlay_ip.is_ipv4() { 50 } else { 70 };
        self.underlay_mtu.saturating_sub(overhead)
    }

    /// Returns the router namespace of a tenant with its transit link.
    pub fn router_plan(&self, tenant: &str, transit: Option<TransitPlan>) -> RouterPlan {
        RouterPlan {
            tenant_id: tenant.to_string(),
            netns_path: names::router_netns(&self.run_dir, tenant),
            transit,
        }
    }

    /// Returns the bridge, VXLAN device and gateway of a network on this host.
    pub fn network_plan(&self, network: &Network, state: &DesiredState) -> NetworkPlan {
        let vni = network.vni;
        NetworkPlan {
            network_id: network.id.clone(),
            vni,
            bridge: names::bridge(vni),
            vxlan: names::vxlan(vni),
            mtu: self.overlay_mtu(network),
            local_vtep: self.underlay_ip,
            vxlan_port: self.vxlan_port,
            flood_vteps: self.flood_vteps(network, state),
            gateway: GatewayPlan {
                host_port: names::gateway_host_port(vni),
                router_port: names::gateway_router_port(vni),
                router_netns: names::router_netns(&self.run_dir, &network.tenant),
                ipv4: with_prefix4(network.gateway, network.subnet),
                ipv6: network
                    .gateway6
                    .zip(network.subnet6)
                    .map(|(gw, net)| with_prefix6(gw, net)),
                mac: network.gateway_mac,
            },
        }
    }

    /// Returns the veth and container-side configuration of a local endpoint.
    pub fn local_endpoint_plan(&self, network: &Network, endpoint: &Endpoint) -> LocalEndpointPlan {
        LocalEndpointPlan {
            endpoint_id: endpoint.id.clone(),
            bridge: names::bridge(network.vni),
            host_ifname: names::endpoint_host(&endpoint.id),
            sandbox: PathBuf::from(&endpoint.sandbox),
            ifname: endpoint.ifname.clone(),
            mac: endpoint.mac,
            ipv4: with_prefix4(endpoint.ipv4, network.subnet),
            ipv6: endpoint
                .ipv6
                .zip(network.subnet6)
                .map(|(ip, net)| with_prefix6(ip, net)),
            gateway4: network.gateway,
            gateway6: network.gateway6,
            mtu: self.overlay_mtu(network),
        }
    }

    /// Returns the FDB and neighbour entries of an endpoint on another host, or None
    /// while that host's VTEP is unknown.
    pub fn remote_endpoint_plan(
        &self,
        network: &Network,
        endpoint: &Endpoint,
        state: &DesiredState,
    ) -> Option<RemoteEndpointPlan> {
        let host = state.hosts.get(&endpoint.host)?;
        Some(RemoteEndpointPlan {
            vxlan: names::vxlan(network.vni),
            mac: endpoint.mac,
            ipv4: endpoint.ipv4,
            ipv6: endpoint.ipv6,
            vtep: host.underlay_ip,
        })
    }

    /// Returns the VTEPs of the other hosts with endpoints in a flooding network.
    fn flood_vteps(&self, network: &Network, state: &DesiredState) -> Vec<IpAddr> {
        if !network.flood {
            return Vec::new();
        }
        let mut vteps: Vec<IpAddr> = state
            .endpoints_of(&network.id)
            .filter(|e| e.host != self.host)
            .filter_map(|e| state.hosts.get(&e.host))
            .map(|h| h.underlay_ip)
            .collect();
        vteps.sort();
        vteps.dedup();
        vteps
    }
}

fn with_prefix4(addr: std::net::Ipv4Addr, subnet: Ipv4Net) -> Ipv4Net {
    // The prefix length comes from a validated subnet, so it is always in range.
    Ipv4Net::new(addr, subnet.prefix_len()).unwrap_or(subnet)
}

fn with_prefix6(addr: std::net::Ipv6Addr, subnet: Ipv6Net) -> Ipv6Net {
    Ipv6Net::new(addr, subnet.prefix_len()).unwrap_or(subnet)
}
