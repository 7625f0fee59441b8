//! [`NetlinkDataplane`]: the [`Dataplane`] trait on a real kernel, over rtnetlink.
//!
//! A netlink socket talks to the namespace it was created in. So every request
//! aimed at another namespace (a sandbox, a router) goes through a short-lived
//! connection opened by a thread that entered that namespace first. No process is spawned: an attach costs about ten netlink
//! messages and one raw frame or two.

mod announce;
mod conntrack;
mod endpoint;
mod fdb;
mod foreign_forward;
mod gateway;
mod handoff;
mod interface;
mod inventory;
mod links;
mod namespace;
mod network;
mod nft_elements;
mod nft_set_sizes;
mod nftables;
mod relay;
mod router;
mod transit;
mod underlay;
mod unlink;
mod verify;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rtnetlink::Handle;
use tokio::sync::OnceCell;

use crate::{
    Dataplane, DataplaneError, Inventory, LocalEndpointPlan, NetnsCookie, NetworkPlan, NftElementsPlan, NftablesPlan,
    RemoteEndpointPlan, RouterPlan,
};

/// The network namespace of this process.
const OWN_NAMESPACE: &str = "/proc/self/ns/net";

/// The dataplane of one host, programmed over netlink.
#[derive(Debug)]
pub struct NetlinkDataplane {
    /// Namespace that plays the host, or `None` for the calling process's own.
    host_netns: Option<PathBuf>,
    run_dir: PathBuf,
    /// Connection to the host namespace, opened on first use so that the
    /// constructors need no tokio runtime.
    host: OnceCell<Handle>,
    /// The nftables netlink socket of the host namespace, kept between batches.
    host_nft: nft_elements::KeptSocket,
    /// Cookies of the namespaces no endpoint may be created in, read on first use.
    host_cookies: OnceCell<Vec<NetnsCookie>>,
}

impl NetlinkDataplane {
    /// Creates a dataplane that treats the calling process's network namespace as the host.
    pub fn new(run_dir: PathBuf) -> Result<Self, DataplaneError> {
        Ok(Self {
            host_netns: None,
            run_dir,
            host: OnceCell::new(),
            host_nft: nft_elements::KeptSocket::default(),
            host_cookies: OnceCell::new(),
        })
    }

    /// Creates a dataplane that treats the namespace pinned at `host_netns` as the
    /// host, so tests and tools never touch the machine's own namespace.
    pub fn in_namespace(host_netns: PathBuf, run_dir: PathBuf) -> Result<Self, DataplaneError> {
        namespace::open(&host_netns)?;
        Ok(Self {
            host_netns: Some(host_netns),
            run_dir,
            host: OnceCell::new(),
            host_nft: nft_elements::KeptSocket::default(),
            host_cookies: OnceCell::new(),
        })
    }

    async fn host(&self) -> Result<&Handle, DataplaneError> {
        self.host.get_or_try_init(|| self.connect_host()).await
    }

    /// Returns the cookies of the namespace playing the host and of the process's
    /// own namespace, which is the machine's when another namespace plays the host.
    async fn host_cookies(&self) -> Result<&[NetnsCookie], DataplaneError> {
        let cookies = self
            .host_cookies
            .get_or_try_init(|| async {
                let own = namespace::cookie(&namespace::open(Path::new(OWN_NAMESPACE))?).await?;
                let mut cookies = vec![own];
                if let Some(path) = &self.host_netns {
                    cookies.push(namespace::cookie(&namespace::open(path)?).await?);
                }
                Ok::<_, DataplaneError>(cookies)
            })
            .await?;
        Ok(cookies)
    }

    /// Opens a new connection to the host namespace. Its task ends when the
    /// returned handle is dropped.
    async fn connect_host(&self) -> Result<Handle, DataplaneError> {
        match &self.host_netns {
            None => namespace::connect_here(),
            Some(path) => namespace::connect_in(&namespace::open(path)?).await,
        }
    }
}

#[async_trait]
impl Dataplane for NetlinkDataplane {
    async fn ensure_router(&self, plan: &RouterPlan) -> Result<(), DataplaneError> {
        router::ensure(plan).await?;
        match &plan.transit {
            Some(transit) => transit::ensure(self.host().await?, self.host_netns.as_deref(), plan, transit).await,
            None => Ok(()),
        }
    }

    async fn remove_router(&self, plan: &RouterPlan) -> Result<(), DataplaneError> {
        router::remove(plan)
    }

    async fn ensure_network(&self, plan: &NetworkPlan) -> Result<(), DataplaneError> {
        network::ensure(self.host().await?, plan).await
    }

    async fn remove_network(&self, plan: &NetworkPlan) -> Result<(), DataplaneError> {
        network::remove(self.host().await?, plan).await
    }

    async fn ensure_local_endpoint(&self, plan: &LocalEndpointPlan, netns: Option<NetnsCookie>) -> Result<Option<NetnsCookie>, DataplaneError> {
        if plan.is_handoff() {
            handoff::ensure(self.host().await?, plan).await?;
            return Ok(None);
        }
        endpoint::ensure(self.host().await?, self.host_cookies().await?, plan, netns).await.map(Some)
    }

    async fn remove_local_endpoint(&self, host_ifname: &str) -> Result<(), DataplaneError> {
        endpoint::remove(self.host().await?, self.host_netns.as_deref(), host_ifname).await
    }

    async fn verify_local_endpoint(&self, plan: &LocalEndpointPlan) -> Result<Vec<String>, DataplaneError> {
        verify::local_endpoint(self.host().await?, plan).await
    }

    async fn ensure_remote_endpoint(&self, plan: &RemoteEndpointPlan) -> Result<(), DataplaneError> {
        fdb::ensure_remote(self.host().await?, plan).await
    }

    async fn remove_remote_endpoint(&self, plan: &RemoteEndpointPlan) -> Result<(), DataplaneError> {
        fdb::remove_remote(self.host().await?, plan).await
    }

    async fn announce_remote_endpoint(&self, bridge: &str, plan: &RemoteEndpointPlan) -> Result<(), DataplaneError> {
        self.relay_announcement(bridge, plan).await
    }

    async fn inventory(&self) -> Result<Inventory, DataplaneError> {
        // A dump of thousands of FDB and neighbour entries grows the connection's
        // response queue, which never shrinks. A connection of its own takes that
        // memory away with it once the dump is read.
        let connection = self.connect_host().await?;
        inventory::collect(&connection, &self.run_dir).await
    }

    async fn apply_nftables(&self, plan: &NftablesPlan) -> Result<(), DataplaneError> {
        nftables::apply(self.host_netns.as_deref(), plan).await
    }

    async fn apply_nftables_elements(&self, plan: &NftElementsPlan) -> Result<(), DataplaneError> {
        nft_elements::apply(self.host_netns.as_deref(), &self.host_nft, plan).await
    }

    async fn list_nftables(&self, namespace: Option<&std::path::Path>) -> Result<Vec<String>, DataplaneError> {
        nftables::list(namespace.or(self.host_netns.as_deref())).await
    }

    async fn nftables_counts(&self, namespace: Option<&std::path::Path>, tables: &[String]) -> Result<crate::NftCounts, DataplaneError> {
        nftables::counts(namespace.or(self.host_netns.as_deref()), tables).await
    }

    async fn remove_udp_conntrack(&self, namespace: Option<&std::path::Path>, ports: &[u16]) -> Result<usize, DataplaneError> {
        conntrack::remove_udp(namespace.or(self.host_netns.as_deref()), ports.to_vec()).await
    }

    async fn host_listeners(&self) -> Result<Vec<crate::Listener>, DataplaneError> {
        let read = || {
            let mut listeners = Vec::new();
            for (table, udp) in [("tcp", false), ("tcp6", false), ("udp", true), ("udp6", true)] {
                // A kernel without IPv6 has no tcp6 or udp6 table.
                if let Ok(text) = std::fs::read_to_string(format!("/proc/thread-self/net/{table}")) {
                    listeners.extend(crate::parse_proc_net(&text, udp));
                }
            }
            listeners
        };
        match &self.host_netns {
            Some(path) => namespace::run_in(&namespace::open(path)?, read).await,
            None => Ok(read()),
        }
    }

    async fn open_foreign_forward_chains(&self) -> Result<Vec<String>, DataplaneError> {
        foreign_forward::open(self.host_netns.as_deref()).await
    }
}
