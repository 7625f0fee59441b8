use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use cloison_model::{
    validate_ifname, validate_name, Endpoint, EndpointSpec, EndpointUpdate, MacAddr, Network, DEFAULT_IFNAME,
    NAME_MAX,
};
use cloison_store::{Compare, KeyValue, Op};

use crate::alloc::{Cursor, HeldValues, Values};
use crate::controller::{new_id, pause_before_retry, TXN_ATTEMPTS};
use crate::networks::compare_unchanged;
use crate::records::{decode_raw, encode, encode_raw, Owner};
use crate::{keys, Controller, ControllerError, EndpointFilter};

/// A new endpoint with its values picked, not yet written.
struct Prepared {
    endpoint: Endpoint,
    /// The endpoint's key, which must still be absent.
    key: String,
    /// The network as read, which must not change before the write.
    network_kv: KeyValue,
    /// Keeps the values from other creates until the write ended.
    _reservation: HeldValues,
}

/// Candidates an automatic pick checks one by one before it reads every allocation
/// of the network.
const POINT_READS: usize = 8;

impl Controller {
    /// Creates an endpoint on a registered host, allocating its addresses and MAC
    /// unless the request gives them.
    pub async fn create_endpoint(
        &self,
        tenant: &str,
        spec: EndpointSpec,
    ) -> Result<Endpoint, ControllerError> {
        check_spec(&spec)?;
        self.require_host(&spec.host).await?;
        self.require_groups(tenant, &spec.groups).await?;
        let (network, _) = self.read_network(tenant, &spec.network).await?;
        for attempt in 0..TXN_ATTEMPTS {
            pause_before_retry(attempt).await;
            let prepared = {
                // Only the picking holds the lock. The values stay held until the
                // write ends, so creates whose writes are in flight together pick
                // different ones, and the store commits them in one group.
                let mut cursor = self.locks.network(&network.id).await;
                self.prepare_endpoint(tenant, &spec, &mut cursor).await?
            };
            if let Some(endpoint) = self.commit_endpoint(prepared).await? {
                tracing::info!(
                    tenant.name = %tenant, endpoint.name = %endpoint.name, endpoint.id = %endpoint.id,
                    network.name = %endpoint.network, host.name = %endpoint.host,
                    endpoint.ipv4 = %endpoint.ipv4, "endpoint created"
                );
                return Ok(endpoint);
            }
        }
        Err(ControllerError::Contention {
            what: format!("creating an endpoint on network {} of tenant {tenant}", spec.network),
        })
    }

    /// Reads the network's allocations and picks values for a new endpoint, under
    /// the network's allocation lock.
    async fn prepare_endpoint(&self, tenant: &str, spec: &EndpointSpec, cursor: &mut Cursor) -> Result<Prepared, ControllerError> {
        let (network, network_kv) = self.read_network(tenant, &spec.network).await?;
        let id = new_id();
        let name = spec.name.clone().unwrap_or_else(|| default_name(&network.name, &id));
        let key = keys::endpoint(tenant, &name);
        if self.store.get(&key).await?.is_some() {
            return Err(ControllerError::AlreadyExists {
                kind: "endpoint",
                name: format!("{name} in tenant {tenant}"),
            });
        }
        let allocation = self.allocate(&network, spec, cursor).await?;
        let reservation = cursor.hold(allocation);
        let endpoint = Endpoint {
            id,
            tenant: tenant.to_string(),
            name,
            network: network.name.clone(),
            network_id: network.id.clone(),
            host: spec.host.clone(),
            mac: allocation.mac,
            ipv4: allocation.ipv4,
            ipv6: allocation.ipv6,
            ifname: spec.ifname.clone().unwrap_or_else(|| DEFAULT_IFNAME.to_string()),
            sandbox: spec.sandbox.clone(),
            groups: unique_groups(&spec.groups),
            labels: spec.labels.clone(),
            resource_version: 0,
        };
        Ok(Prepared { endpoint, key, network_kv, _reservation: reservation })
    }

    /// Writes a prepared endpoint and its allocations in one transaction. Returns
    /// `None` when the transaction lost a race.
    async fn commit_endpoint(&self, prepared: Prepared) -> Result<Option<Endpoint>, ControllerError> {
        let Prepared { mut endpoint, key, network_kv, _reservation } = prepared;
        let owner = encode_raw(&Owner::endpoint(&endpoint));
        let alloc_keys = allocation_keys(&endpoint);
        let mut compares = vec![
            Compare::Absent(key.clone()),
            Compare::ModRevision(network_kv.key.clone(), network_kv.mod_revision),
        ];
        compares.extend(alloc_keys.iter().cloned().map(Compare::Absent));
        let mut ops = vec![
            Op::Put { key, value: encode(&endpoint) },
            Op::Put { key: keys::network_guard(&endpoint.network_id), value: b"{}".to_vec() },
        ];
        ops.extend(alloc_keys.into_iter().map(|key| Op::Put { key, value: owner.clone() }));
        let response = self.store.txn(compares, ops).await?;
        if !response.succeeded {
            return Ok(None);
        }
        endpoint.resource_version = response.revision;
        Ok(Some(endpoint))
    }

    /// Picks the IPv4 address, IPv6 address (dual-stack networks only) and MAC.
    async fn allocate(
        &self,
        network: &Network,
        spec: &EndpointSpec,
        cursor: &Cursor,
    ) -> Result<Values, ControllerError> {
        let picked = cursor.picked();
        let ipv4 = self.pick_ipv4(network, spec.ipv4, cursor.ipv4, &picked.ipv4).await?;
        let ipv6 = match (network.subnet6, network.gateway6) {
            (Some(_), Some(_)) => Some(self.pick_ipv6(network, spec.ipv6, cursor.ipv6, &picked.ipv6).await?),
            _ if spec.ipv6.is_some() => {
                return Err(ControllerError::BadRequest(format!(
                    "network {} has no IPv6 subnet, so the endpoint cannot have an IPv6 address",
                    network.name
                )))
            }
            _ => None,
        };
        let mac = self.pick_mac(network, spec.mac, cursor.mac, &picked.macs).await?;
        Ok(Values { ipv4, ipv6, mac })
    }

    async fn pick_ipv4(
        &self,
        network: &Network,
        requested: Option<Ipv4Addr>,
        cursor: Option<Ipv4Addr>,
        picked: &BTreeSet<Ipv4Addr>,
    ) -> Result<Ipv4Addr, ControllerError> {
        if let Some(ip) = requested {
            cloison_ipam::check_requested_ipv4(network.subnet, network.gateway, ip)?;
            let what = format!("IPv4 address {ip}");
            require_unpicked(picked, &ip, &what)?;
            self.require_free(&keys::ipv4(&network.id, ip), what).await?;
            return Ok(ip);
        }
        let next = |used: &BTreeSet<Ipv4Addr>| cloison_ipam::next_free_ipv4(network.subnet, network.gateway, used, cursor).ok();
        if let Some(ip) = self.pick_by_point_reads(cursor.is_some(), picked, |ip| keys::ipv4(&network.id, *ip), next).await? {
            return Ok(ip);
        }
        let mut used: BTreeSet<Ipv4Addr> = self.allocated(&keys::ipv4_of(&network.id)).await?;
        used.extend(picked);
        Ok(cloison_ipam::next_free_ipv4(network.subnet, network.gateway, &used, cursor)?)
    }

    async fn pick_ipv6(
        &self,
        network: &Network,
        requested: Option<Ipv6Addr>,
        cursor: Option<Ipv6Addr>,
        picked: &BTreeSet<Ipv6Addr>,
    ) -> Result<Ipv6Addr, ControllerError> {
        let (Some(subnet), Some(gateway)) = (network.subnet6, network.gateway6) else {
            return Err(ControllerError::BadRequest(format!("network {} has no IPv6 subnet", network.name)));
        };
        if let Some(ip) = requested {
            cloison_ipam::check_requested_ipv6(subnet, gateway, ip)?;
            let what = format!("IPv6 address {ip}");
            require_unpicked(picked, &ip, &what)?;
            self.require_free(&keys::ipv6(&network.id, ip), what).await?;
            return Ok(ip);
        }
        let next = |used: &BTreeSet<Ipv6Addr>| cloison_ipam::next_free_ipv6(subnet, gateway, used, cursor).ok();
        if let Some(ip) = self.pick_by_point_reads(cursor.is_some(), picked, |ip| keys::ipv6(&network.id, *ip), next).await? {
            return Ok(ip);
        }
        let mut used: BTreeSet<Ipv6Addr> = self.allocated(&keys::ipv6_of(&network.id)).await?;
        used.extend(picked);
        Ok(cloison_ipam::next_free_ipv6(subnet, gateway, &used, cursor)?)
    }

    async fn pick_mac(
        &self,
        network: &Network,
        requested: Option<MacAddr>,
        cursor: Option<MacAddr>,
        picked: &BTreeSet<MacAddr>,
    ) -> Result<MacAddr, ControllerError> {
        if let Some(mac) = requested {
            check_requested_mac(mac, network.gateway_mac)?;
            let what = format!("MAC address {mac}");
            require_unpicked(picked, &mac, &what)?;
            self.require_free(&keys::mac(&network.id, mac), what).await?;
            return Ok(mac);
        }
        let seed = cursor.map_or(1, |mac| mac.low_bits() + 1);
        let next = |used: &BTreeSet<MacAddr>| Some(cloison_ipam::next_free_mac(used, seed));
        if let Some(mac) = self.pick_by_point_reads(cursor.is_some(), picked, |mac| keys::mac(&network.id, *mac), next).await? {
            return Ok(mac);
        }
        let mut used: BTreeSet<MacAddr> = self.allocated(&keys::mac_of(&network.id)).await?;
        used.extend(picked);
        Ok(cloison_ipam::next_free_mac(&used, seed))
    }

    /// Picks a value with `next` from the values in flight alone, and checks each
    /// candidate with one point read. The cursor moves past every pick, so the
    /// value after it is mostly free. Reading every allocation of the network
    /// instead costs time that grows with its endpoints. Returns `None` without a
    /// cursor, or after [`POINT_READS`] candidates in use, so the caller reads every
    /// allocation.
    async fn pick_by_point_reads<T: Ord + Clone>(
        &self,
        has_cursor: bool,
        picked: &BTreeSet<T>,
        key: impl Fn(&T) -> String,
        next: impl Fn(&BTreeSet<T>) -> Option<T>,
    ) -> Result<Option<T>, ControllerError> {
        if !has_cursor {
            return Ok(None);
        }
        let mut used = picked.clone();
        for _ in 0..POINT_READS {
            let Some(candidate) = next(&used) else { return Ok(None) };
            if self.store.get(&key(&candidate)).await?.is_none() {
                return Ok(Some(candidate));
            }
            used.insert(candidate);
        }
        Ok(None)
    }

    /// Reads the values allocated under an `/alloc/` prefix.
    async fn allocated<T: FromStr + Ord>(&self, prefix: &str) -> Result<BTreeSet<T>, ControllerError> {
        let (kvs, _) = self.store.range(prefix).await?;
        Ok(kvs
            .iter()
            .filter_map(|kv| keys::last_segment(&kv.key).parse().ok())
            .collect())
    }

    /// Fails with the owner's name when an allocation key is already written.
    async fn require_free(&self, key: &str, what: String) -> Result<(), ControllerError> {
        match self.store.get(key).await? {
            None => Ok(()),
            Some(kv) => {
                let owner: Owner = decode_raw(&kv)?;
                Err(ControllerError::Taken { what, owner: owner.to_string() })
            }
        }
    }

    async fn require_host(&self, host: &str) -> Result<(), ControllerError> {
        if self.store.get(&keys::host(host)).await?.is_some() {
            return Ok(());
        }
        Err(ControllerError::BadRequest(format!(
            "host {host} is not registered: start its agent, or register it with PUT /v1/hosts/{host}"
        )))
    }

    /// Returns how many IPv4 addresses of a network are still free for endpoints.
    pub async fn free_ipv4_count(&self, tenant: &str, network: &str) -> Result<u64, ControllerError> {
        let (network, _) = self.read_network(tenant, network).await?;
        let used: BTreeSet<Ipv4Addr> = self.allocated(&keys::ipv4_of(&network.id)).await?;
        Ok(cloison_ipam::free_ipv4_count(network.subnet, network.gateway, &used))
    }

    /// Lists endpoints, of one tenant or all, narrowed by network name and host.
    pub async fn list_endpoints(&self, filter: &EndpointFilter) -> Result<Vec<Endpoint>, ControllerError> {
        let prefix = match &filter.tenant {
            Some(tenant) => keys::endpoints_of(tenant),
            None => keys::ENDPOINTS.to_string(),
        };
        let endpoints: Vec<Endpoint> = self.list(&prefix).await?;
        Ok(endpoints
            .into_iter()
            .filter(|e| filter.network.as_ref().is_none_or(|n| *n == e.network))
            .filter(|e| filter.host.as_ref().is_none_or(|h| *h == e.host))
            .collect())
    }

    pub async fn get_endpoint(&self, tenant: &str, name: &str) -> Result<Endpoint, ControllerError> {
        Ok(self.read_endpoint(tenant, name).await?.0)
    }

    async fn read_endpoint(&self, tenant: &str, name: &str) -> Result<(Endpoint, KeyValue), ControllerError> {
        self.read(&keys::endpoint(tenant, name))
            .await?
            .ok_or_else(|| ControllerError::NotFound {
                kind: "endpoint",
                name: format!("{name} in tenant {tenant}"),
            })
    }

    /// Deletes an endpoint and releases its addresses and MAC in the same transaction.
    /// With `id`, only the endpoint of that id is deleted. When the name now refers to
    /// another endpoint, the one meant is gone and the call fails with NotFound.
    pub async fn delete_endpoint(&self, tenant: &str, name: &str, id: Option<&str>) -> Result<(), ControllerError> {
        for attempt in 0..TXN_ATTEMPTS {
            pause_before_retry(attempt).await;
            let (endpoint, kv) = self.read_endpoint(tenant, name).await?;
            if id.is_some_and(|id| id != endpoint.id) {
                return Err(ControllerError::NotFound {
                    kind: "endpoint",
                    name: format!("{name} with id {} in tenant {tenant} (the name refers to another endpoint now)", id.unwrap_or_default()),
                });
            }
            // Read the guard before the publications, so a publication written after
            // their read has rewritten it and fails the transaction below.
            let guard_key = keys::endpoint_guard(&endpoint.id);
            let guard_kv = self.store.get(&guard_key).await?;
            let mut ops = vec![
                Op::Delete { key: kv.key.clone() },
                Op::Put { key: keys::network_guard(&endpoint.network_id), value: b"{}".to_vec() },
                Op::Delete { key: guard_key.clone() },
            ];
            ops.extend(allocation_keys(&endpoint).into_iter().map(|key| Op::Delete { key }));
            // The endpoint's publications go with it, so their host ports are free again.
            ops.extend(self.publication_deletes_of(&endpoint).await?);
            let compares = vec![
                Compare::ModRevision(kv.key, kv.mod_revision),
                compare_unchanged(&guard_key, guard_kv.as_ref()),
            ];
            if self.store.txn(compares, ops).await?.succeeded {
                tracing::info!(tenant.name = %tenant, endpoint.name = %name, endpoint.id = %endpoint.id, "endpoint deleted");
                return Ok(());
            }
        }
        Err(ControllerError::Contention {
            what: format!("deleting endpoint {name} in tenant {tenant}"),
        })
    }

    /// Replaces an endpoint's security groups and/or labels. The update must carry the
    /// endpoint's current resource_version, else it fails with
    /// [`ControllerError::StaleVersion`] (HTTP 409).
    pub async fn update_endpoint(
        &self,
        tenant: &str,
        name: &str,
        update: EndpointUpdate,
    ) -> Result<Endpoint, ControllerError> {
        let (mut endpoint, kv) = self.read_endpoint(tenant, name).await?;
        let stale = || ControllerError::StaleVersion {
            kind: "endpoint",
            name: name.to_string(),
            requested: update.resource_version,
            current: kv.mod_revision,
        };
        if update.resource_version != kv.mod_revision {
            return Err(stale());
        }
        if let Some(groups) = &update.groups {
            self.require_groups(tenant, groups).await?;
            endpoint.groups = unique_groups(groups);
        }
        if let Some(labels) = &update.labels {
            endpoint.labels = labels.clone();
        }
        let compares = vec![Compare::ModRevision(kv.key.clone(), kv.mod_revision)];
        let ops = vec![Op::Put { key: kv.key.clone(), value: encode(&endpoint) }];
        let response = self.store.txn(compares, ops).await?;
        if !response.succeeded {
            // Another writer got in between the read and the write.
            let current = self.store.get(&kv.key).await?.map_or(0, |kv| kv.mod_revision);
            return Err(ControllerError::StaleVersion {
                kind: "endpoint",
                name: name.to_string(),
                requested: update.resource_version,
                current,
            });
        }
        endpoint.resource_version = response.revision;
        Ok(endpoint)
    }
}

/// Fails when a create running at the same moment picked `value` already.
fn require_unpicked<T: Ord>(picked: &BTreeSet<T>, value: &T, what: &str) -> Result<(), ControllerError> {
    if picked.contains(value) {
        return Err(ControllerError::Taken { what: what.to_string(), owner: "an endpoint being created at the same moment".into() });
    }
    Ok(())
}

/// Checks a requested MAC: unicast, and not the network's gateway MAC, which every
/// host uses for its distributed gateway.
fn check_requested_mac(mac: MacAddr, gateway_mac: MacAddr) -> Result<(), ControllerError> {
    cloison_ipam::check_requested_mac(mac)?;
    if mac == gateway_mac {
        return Err(ControllerError::BadRequest(format!(
            "MAC address {mac} cannot be used: it is the gateway MAC of the network; request another MAC or let cloison allocate one"
        )));
    }
    Ok(())
}

/// Checks what can be checked without the store.
fn check_spec(spec: &EndpointSpec) -> Result<(), ControllerError> {
    if let Some(name) = &spec.name {
        validate_name("endpoint", name)?;
    }
    validate_name("network", &spec.network)?;
    validate_name("host", &spec.host)?;
    validate_ifname(spec.ifname.as_deref().unwrap_or(DEFAULT_IFNAME))?;
    if spec.sandbox.is_empty() {
        return Err(ControllerError::BadRequest(
            "sandbox is empty: give the path of the container's network namespace, such as /var/run/netns/web1".into(),
        ));
    }
    check_groups(&spec.groups)
}

/// Drops repeated group names, keeping the first of each, so that
/// `--group db --group db` stores the endpoint in db once.
fn unique_groups(groups: &[String]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    groups.iter().filter(|group| seen.insert(group.as_str())).cloned().collect()
}

fn check_groups(groups: &[String]) -> Result<(), ControllerError> {
    for group in groups {
        validate_name("security group", group)?;
    }
    Ok(())
}

/// Returns `<network>-<first 8 hex digits of the id>`, shortening the network part so
/// the result stays a valid name.
fn default_name(network: &str, id: &str) -> String {
    let suffix: String = id.chars().filter(char::is_ascii_hexdigit).take(8).collect();
    let room = NAME_MAX - suffix.len() - 1;
    let prefix = &network[..network.len().min(room)];
    format!("{prefix}-{suffix}")
}

/// Returns the allocation keys an endpoint owns.
fn allocation_keys(endpoint: &Endpoint) -> Vec<String> {
    let mut keys = vec![
        keys::ipv4(&endpoint.network_id, endpoint.ipv4),
        keys::mac(&endpoint.network_id, endpoint.mac),
    ];
    if let Some(ipv6) = endpoint.ipv6 {
        keys.push(keys::ipv6(&endpoint.network_id, ipv6));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_name_fits_name_limit() {
        let name = default_name(&"n".repeat(63), "0123abcd-ffff");
        assert_eq!(name.len(), NAME_MAX);
        assert!(name.ends_with("-0123abcd"));
        assert!(validate_name("endpoint", &name).is_ok());
    }
}
