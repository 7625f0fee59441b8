//! Encoding of resources and allocation records in store values (JSON).

use std::fmt;

use cloison_model::{Endpoint, Host, Network, Publication, SecurityGroup, Tenant};
use cloison_store::KeyValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ControllerError;

/// A resource whose `resource_version` is the store's `mod_revision` of its record.
/// The stored value carries 0, so the field never disagrees with the store.
pub(crate) trait Versioned: Serialize + DeserializeOwned {
    fn set_resource_version(&mut self, revision: u64);
}

macro_rules! versioned {
    ($($ty:ty),*) => {$(
        impl Versioned for $ty {
            fn set_resource_version(&mut self, revision: u64) {
                self.resource_version = revision;
            }
        }
    )*};
}
versioned!(Tenant, Network, Endpoint, Host, SecurityGroup, Publication);

/// Decodes a resource record and sets its version from the store.
pub(crate) fn decode<T: Versioned>(kv: &KeyValue) -> Result<T, ControllerError> {
    let mut value: T = decode_raw(kv)?;
    value.set_resource_version(kv.mod_revision);
    Ok(value)
}

/// Decodes any JSON record, naming the key when it is corrupt.
pub(crate) fn decode_raw<T: DeserializeOwned>(kv: &KeyValue) -> Result<T, ControllerError> {
    serde_json::from_slice(&kv.value).map_err(|source| ControllerError::Corrupt {
        key: kv.key.clone(),
        source,
    })
}

/// Encodes a resource record with its version cleared.
pub(crate) fn encode<T: Versioned + Clone>(value: &T) -> Vec<u8> {
    let mut stored = value.clone();
    stored.set_resource_version(0);
    encode_raw(&stored)
}

/// Encodes any record. The records are structs with string keys and plain fields, for
/// which serde_json does not fail; a failure would store an empty value that
/// [`decode_raw`] reports as corrupt.
pub(crate) fn encode_raw<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// The resource an allocation record (VNI, address, MAC) belongs to, so a conflict
/// can name the resource that owns the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owner {
    pub(crate) kind: String,
    pub(crate) tenant: String,
    pub(crate) name: String,
    pub(crate) id: String,
}

impl Owner {
    pub(crate) fn network(network: &Network) -> Self {
        Owner {
            kind: "network".into(),
            tenant: network.tenant.clone(),
            name: network.name.clone(),
            id: network.id.clone(),
        }
    }

    pub(crate) fn publication(publication: &Publication) -> Self {
        Owner {
            kind: "publication".into(),
            tenant: publication.tenant.clone(),
            name: publication.name.clone(),
            id: publication.id.clone(),
        }
    }

    pub(crate) fn endpoint(endpoint: &Endpoint) -> Self {
        Owner {
            kind: "endpoint".into(),
            tenant: endpoint.tenant.clone(),
            name: endpoint.name.clone(),
            id: endpoint.id.clone(),
        }
    }
}

impl Owner {
    /// Describes the owner to a caller of `tenant`: by name within the tenant, and
    /// only by kind for another tenant, whose names the caller may not learn.
    pub(crate) fn described_to(&self, tenant: &str) -> String {
        if self.tenant == tenant {
            self.to_string()
        } else {
            format!("a {} of another tenant", self.kind)
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} of tenant {}", self.kind, self.name, self.tenant)
    }
}
