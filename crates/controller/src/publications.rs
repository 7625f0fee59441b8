//! Publications: a host port of an endpoint's host forwarded to the endpoint.
//!
//! Each publication takes the allocation key of (host, protocol, host port, host
//! address) in the same transaction that stores it, so two publications of one port
//! on one host cannot both succeed.

use cloison_model::{Endpoint, Publication, PublicationSpec, PublishProtocol};
use cloison_store::{Compare, KeyValue, Op};

use crate::controller::{new_id, pause_before_retry, TXN_ATTEMPTS};
use crate::networks::compare_unchanged;
use crate::records::{decode_raw, encode, encode_raw, Owner};
use crate::{keys, Controller, ControllerError};

impl Controller {
    /// Publishes a port of an existing endpoint on the endpoint's host.
    ///
    /// The checks against the port's other publications are reads before the
    /// transaction. The transaction rewrites the port's guard key and fails when
    /// another publication of the port rewrote it since, and the checks then run again.
    pub async fn publish(&self, tenant: &str, spec: PublicationSpec) -> Result<Publication, ControllerError> {
        let spec = spec.normalized();
        spec.validate()?;
        for attempt in 0..TXN_ATTEMPTS {
            pause_before_retry(attempt).await;
            if let Some(publication) = self.try_publish(tenant, &spec).await? {
                tracing::info!(tenant.name = %tenant, publication.name = %publication.name, host.name = %publication.host, "port published");
                return Ok(publication);
            }
        }
        Err(ControllerError::Contention { what: format!("publishing {} in tenant {tenant}", spec.name()) })
    }

    /// Reads the endpoint and the port's publications, checks them and writes the
    /// publication. Returns `None` when the transaction lost a race and must be retried.
    async fn try_publish(&self, tenant: &str, spec: &PublicationSpec) -> Result<Option<Publication>, ControllerError> {
        let endpoint_key = keys::endpoint(tenant, &spec.endpoint);
        let Some((endpoint, endpoint_kv)) = self.read::<Endpoint>(&endpoint_key).await? else {
            return Err(ControllerError::NotFound { kind: "endpoint", name: format!("{} in tenant {tenant}", spec.endpoint) });
        };
        let mut publication = Publication {
            id: new_id(),
            tenant: tenant.to_string(),
            name: spec.name(),
            endpoint: endpoint.name.clone(),
            endpoint_id: endpoint.id.clone(),
            host: endpoint.host.clone(),
            host_ip: spec.host_ip,
            host_port: spec.host_port,
            port: spec.port,
            protocol: spec.protocol,
            resource_version: 0,
        };
        // Read the guard before the checks, so a publication written after their reads
        // has rewritten it and fails the transaction below.
        let guard_key = keys::host_port_guard(&publication);
        let guard_kv = self.store.get(&guard_key).await?;
        self.check_not_vxlan(&publication).await?;
        self.check_port_free(&publication).await?;
        self.check_router_target(&publication).await?;
        let key = keys::publication(tenant, &publication.name);
        let port_key = keys::host_port(&publication);
        let compares = vec![
            Compare::Absent(key.clone()),
            Compare::Absent(port_key.clone()),
            Compare::ModRevision(endpoint_kv.key, endpoint_kv.mod_revision),
            compare_unchanged(&guard_key, guard_kv.as_ref()),
        ];
        let ops = vec![
            Op::Put { key, value: encode(&publication) },
            Op::Put { key: port_key, value: encode_raw(&Owner::publication(&publication)) },
            Op::Put { key: guard_key, value: b"{}".to_vec() },
            Op::Put { key: keys::endpoint_guard(&publication.endpoint_id), value: b"{}".to_vec() },
        ];
        let response = self.store.txn(compares, ops).await?;
        if !response.succeeded {
            return Ok(None);
        }
        publication.resource_version = response.revision;
        Ok(Some(publication))
    }

    /// Fails when the publication would take the UDP port its host's VXLAN tunnels
    /// use, which the kernel's VXLAN socket holds.
    async fn check_not_vxlan(&self, publication: &Publication) -> Result<(), ControllerError> {
        if publication.protocol != PublishProtocol::Udp {
            return Ok(());
        }
        let host = self.get_host(&publication.host).await?;
        if host.vxlan_port == publication.host_port {
            return Err(ControllerError::BadRequest(format!(
                "host port {}/udp is the VXLAN port of host {}, which carries the overlay; choose another host port",
                publication.host_port, publication.host
            )));
        }
        Ok(())
    }

    /// Fails with the holder's name when the publication's host port is taken on its
    /// host: by the same address, or by an unbound publication, or, for an unbound
    /// request, by any address.
    async fn check_port_free(&self, publication: &Publication) -> Result<(), ControllerError> {
        let (kvs, _) = self.store.range(&keys::host_ports_of(publication)).await?;
        let wanted = keys::host_port(publication);
        for kv in kvs {
            let unbound = keys::last_segment(&kv.key) == keys::ANY_ADDRESS;
            if kv.key == wanted || unbound || publication.host_ip.is_none() {
                let owner: Owner = decode_raw(&kv)?;
                let address = publication.host_ip.map_or_else(|| "every address".to_string(), |ip| ip.to_string());
                return Err(ControllerError::Taken {
                    what: format!("{}/{} on host {} ({address})", publication.host_port, publication.protocol, publication.host),
                    owner: owner.described_to(&publication.tenant),
                });
            }
        }
        Ok(())
    }

    /// Fails when another publication of the tenant forwards the same host port of the
    /// same host, on another address, to another endpoint or port. The tenant's router
    /// receives both on its transit address and finds the target by protocol and host
    /// port alone, so its port map cannot hold two targets for them.
    async fn check_router_target(&self, publication: &Publication) -> Result<(), ControllerError> {
        let publications: Vec<Publication> = self.list(&keys::publications_of(&publication.tenant)).await?;
        let other_target = publications.iter().find(|p| {
            p.host == publication.host
                && p.host_port == publication.host_port
                && p.protocol == publication.protocol
                && (p.endpoint_id != publication.endpoint_id || p.port != publication.port)
        });
        match other_target {
            Some(holder) => Err(ControllerError::PortTarget {
                host_port: publication.host_port,
                protocol: publication.protocol.to_string(),
                host: publication.host.clone(),
                target: format!("{}:{}", holder.endpoint, holder.port),
                holder: holder.name.clone(),
            }),
            None => Ok(()),
        }
    }

    pub async fn list_publications(&self, tenant: Option<&str>) -> Result<Vec<Publication>, ControllerError> {
        match tenant {
            Some(tenant) => self.list(&keys::publications_of(tenant)).await,
            None => self.list(keys::PUBLICATIONS).await,
        }
    }

    /// Removes a publication named by its id or its name.
    pub async fn unpublish(&self, tenant: &str, id_or_name: &str) -> Result<(), ControllerError> {
        let (kvs, _) = self.store.range(&keys::publications_of(tenant)).await?;
        let found = kvs.iter().find_map(|kv| {
            let publication: Publication = decode_raw(kv).ok()?;
            (publication.id == id_or_name || publication.name == id_or_name).then_some((publication, kv))
        });
        let Some((publication, kv)) = found else {
            return Err(ControllerError::NotFound { kind: "publication", name: format!("{id_or_name} in tenant {tenant}") });
        };
        self.delete_publication_record(&publication, kv).await?;
        tracing::info!(tenant.name = %tenant, publication.name = %publication.name, "port unpublished");
        Ok(())
    }

    async fn delete_publication_record(&self, publication: &Publication, kv: &KeyValue) -> Result<(), ControllerError> {
        let compares = vec![Compare::ModRevision(kv.key.clone(), kv.mod_revision)];
        let ops = publication_deletes(publication);
        if !self.store.txn(compares, ops).await?.succeeded {
            return Err(ControllerError::Contention { what: format!("deleting publication {}", publication.name) });
        }
        Ok(())
    }

    /// Returns the operations that delete every publication of an endpoint, for the
    /// endpoint's own delete transaction.
    pub(crate) async fn publication_deletes_of(&self, endpoint: &Endpoint) -> Result<Vec<Op>, ControllerError> {
        let publications: Vec<Publication> = self.list(&keys::publications_of(&endpoint.tenant)).await?;
        Ok(publications.iter().filter(|p| p.endpoint_id == endpoint.id).flat_map(publication_deletes).collect())
    }
}

fn publication_deletes(publication: &Publication) -> Vec<Op> {
    vec![
        Op::Delete { key: keys::publication(&publication.tenant, &publication.name) },
        Op::Delete { key: keys::host_port(publication) },
    ]
}
