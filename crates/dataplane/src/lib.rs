//! The dataplane: everything cloison does to the Linux kernel, behind the
//! [`Dataplane`] trait. [`NetlinkDataplane`] programs a real kernel over netlink;
//! [`FakeDataplane`] records requests and keeps an in-memory picture of the
//! kernel, for the agent's unit tests.
//!
//! Callers describe the desired state of one object at a time as a plan
//! ([`NetworkPlan`], [`LocalEndpointPlan`], ...). Every `ensure_*` call is
//! idempotent: it creates what is missing, adopts what cloison already owns,
//! repairs attributes that drifted, and fails instead of touching an object of
//! the same name that cloison does not own. Every `remove_*` call succeeds when
//! the object is already gone.

mod error;
mod fake;
mod fake_script;
mod listeners;
mod netlink;
pub mod names;
mod plan;

pub use error::DataplaneError;
pub use fake::{FakeDataplane, Recorded};
pub use listeners::{parse_proc_net, Listener};
pub use netlink::NetlinkDataplane;
pub use plan::{
    GatewayPlan, Inventory, LocalEndpointPlan, NetnsCookie, NetworkPlan, NftData, NftElement, NftElementsPlan, NftFamily, NftSetChange, NftablesPlan, OwnedEndpoint, OwnedNetwork,
    RemoteEndpointPlan, RouterPlan, TransitPlan,
};

use async_trait::async_trait;

/// Object counts of nftables tables, keyed `family table`, `family table set NAME`
/// (elements of a set or map) and `family table chain NAME` (rules). A table's own
/// key counts 1, so a deleted table changes the counts too.
pub type NftCounts = std::collections::BTreeMap<String, usize>;

/// Kernel operations the agent needs, one desired object at a time.
#[async_trait]
pub trait Dataplane: Send + Sync + std::fmt::Debug {
    /// Creates or adopts a tenant's router namespace and, when the plan has one, its
    /// transit link to the host.
    async fn ensure_router(&self, plan: &RouterPlan) -> Result<(), DataplaneError>;
    /// Removes a tenant's router namespace and everything in it.
    async fn remove_router(&self, plan: &RouterPlan) -> Result<(), DataplaneError>;

    /// Creates or repairs a network's bridge, VXLAN device and gateway port.
    async fn ensure_network(&self, plan: &NetworkPlan) -> Result<(), DataplaneError>;
    /// Removes a network's bridge, VXLAN device and gateway port.
    async fn remove_network(&self, plan: &NetworkPlan) -> Result<(), DataplaneError>;

    /// Creates or repairs a local endpoint: the veth pair, its container side
    /// configured inside the sandbox namespace, and a gratuitous ARP. `netns` is
    /// the namespace the endpoint was created in or adopted from before, when the
    /// caller knows it. Returns the cookie of the namespace that contains the
    /// container end, `None` for a handoff endpoint, whose container end stays in
    /// the host.
    ///
    /// Fails and changes nothing when the namespace at `plan.sandbox` is not `netns`
    /// ([`DataplaneError::NamespaceReplaced`]), or is the host's namespace or the
    /// process's own ([`DataplaneError::HostNamespace`]).
    async fn ensure_local_endpoint(&self, plan: &LocalEndpointPlan, netns: Option<NetnsCookie>) -> Result<Option<NetnsCookie>, DataplaneError>;
    /// Removes a local endpoint's veth pair (both ends go with the host end).
    async fn remove_local_endpoint(&self, host_ifname: &str) -> Result<(), DataplaneError>;
    /// Compares a local endpoint with the kernel without changing anything and
    /// returns each difference found, empty when the endpoint matches `plan`.
    async fn verify_local_endpoint(&self, plan: &LocalEndpointPlan) -> Result<Vec<String>, DataplaneError>;

    /// Installs the static FDB and neighbour entries of an endpoint on another host.
    async fn ensure_remote_endpoint(&self, plan: &RemoteEndpointPlan) -> Result<(), DataplaneError>;
    /// Removes the FDB and neighbour entries of an endpoint on another host.
    async fn remove_remote_endpoint(&self, plan: &RemoteEndpointPlan) -> Result<(), DataplaneError>;
    /// Announces a remote endpoint's addresses to the local ports of `bridge` (a
    /// gratuitous ARP, and an unsolicited neighbour advertisement for IPv6), so local
    /// containers drop a cached MAC the address no longer has.
    async fn announce_remote_endpoint(&self, bridge: &str, plan: &RemoteEndpointPlan) -> Result<(), DataplaneError>;

    /// Lists every kernel object on this host that carries cloison's mark.
    async fn inventory(&self) -> Result<Inventory, DataplaneError>;

    /// Applies an nftables script to the host or a router namespace in one
    /// transaction, then sets IP forwarding there when the plan asks.
    async fn apply_nftables(&self, plan: &NftablesPlan) -> Result<(), DataplaneError>;
    /// Adds and deletes set elements in the host or a router namespace in one
    /// transaction, over nftables netlink. Fails with the kernel's errno, such as
    /// `ENOENT` when a table or set is missing.
    async fn apply_nftables_elements(&self, plan: &NftElementsPlan) -> Result<(), DataplaneError>;
    /// Lists the nftables tables (`family name`) of the host (`None`) or of a router
    /// namespace, so the agent notices a flushed ruleset.
    async fn list_nftables(&self, namespace: Option<&std::path::Path>) -> Result<Vec<String>, DataplaneError>;
    /// Counts, as the kernel reports them, the elements of every set and map and
    /// the rules of every chain of `tables` (each `family name`) in the host
    /// (`None`) or a router namespace. A table that is absent has no entries.
    async fn nftables_counts(&self, namespace: Option<&std::path::Path>, tables: &[String]) -> Result<NftCounts, DataplaneError>;
    /// Removes the IPv4 UDP conntrack entries whose original destination port is one
    /// of `ports`, in the host (`None`) or a router namespace, so that running flows
    /// meet the current NAT rules with their next datagram. Returns how many went.
    async fn remove_udp_conntrack(&self, namespace: Option<&std::path::Path>, ports: &[u16]) -> Result<usize, DataplaneError>;
    /// Lists the host namespace's TCP listeners and bound UDP sockets, which a new
    /// publication must not take over.
    async fn host_listeners(&self) -> Result<Vec<Listener>, DataplaneError>;
    /// Inserts accepts for cloison's interfaces into the host's forward chains of
    /// other tables whose policy is drop (`iptables -P FORWARD DROP`), where they are
    /// missing. Returns the chains changed, as `family table chain`.
    async fn open_foreign_forward_chains(&self) -> Result<Vec<String>, DataplaneError>;
}
