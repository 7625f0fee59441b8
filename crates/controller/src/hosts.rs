use std::time::{SystemTime, UNIX_EPOCH};

use cloison_model::{validate_name, Host, HostSpec};
use cloison_store::Op;

use crate::records::encode;
use crate::{keys, Controller, ControllerError};

/// Smallest underlay MTU that still leaves an overlay MTU of at least 576 bytes after
/// the 70 bytes of VXLAN over IPv6.
const UNDERLAY_MTU_MIN: u32 = 646;
/// Largest underlay MTU accepted: the common jumbo-frame size.
const UNDERLAY_MTU_MAX: u32 = 9216;

impl Controller {
    /// Registers a host or refreshes its heartbeat; a later call replaces the record.
    pub async fn register_host(&self, spec: HostSpec) -> Result<Host, ControllerError> {
        check_spec(&spec)?;
        let mut host = Host {
            name: spec.name,
            underlay_ip: spec.underlay_ip,
            underlay_mtu: spec.underlay_mtu,
            vxlan_port: spec.vxlan_port,
            last_heartbeat: unix_seconds(),
            resource_version: 0,
        };
        let put = Op::Put { key: keys::host(&host.name), value: encode(&host) };
        let response = self.store.txn(Vec::new(), vec![put]).await?;
        host.resource_version = response.revision;
        tracing::debug!(host.name = %host.name, host.underlay_ip = %host.underlay_ip, "host heartbeat");
        Ok(host)
    }

    pub async fn list_hosts(&self) -> Result<Vec<Host>, ControllerError> {
        self.list(keys::HOSTS).await
    }

    pub async fn get_host(&self, name: &str) -> Result<Host, ControllerError> {
        match self.read(&keys::host(name)).await? {
            Some((host, _)) => Ok(host),
            None => Err(ControllerError::NotFound { kind: "host", name: name.to_string() }),
        }
    }
}

fn check_spec(spec: &HostSpec) -> Result<(), ControllerError> {
    validate_name("host", &spec.name)?;
    if !(UNDERLAY_MTU_MIN..=UNDERLAY_MTU_MAX).contains(&spec.underlay_mtu) {
        return Err(ControllerError::BadRequest(format!(
            "invalid underlay MTU {}: accepted values are {UNDERLAY_MTU_MIN} to {UNDERLAY_MTU_MAX}",
            spec.underlay_mtu
        )));
    }
    if spec.vxlan_port == 0 {
        return Err(ControllerError::BadRequest(
            "invalid VXLAN port 0: use 4789, the IANA-assigned port, or another UDP port".into(),
        ));
    }
    if spec.underlay_ip.is_unspecified() || spec.underlay_ip.is_multicast() {
        return Err(ControllerError::BadRequest(format!(
            "invalid underlay address {}: give the unicast address this host's VTEP sends from",
            spec.underlay_ip
        )));
    }
    Ok(())
}

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
