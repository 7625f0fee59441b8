//! Typed calls for the controller's `/v1` API.

use cloison_model::{
    Endpoint, EndpointSpec, EndpointUpdate, Host, HostSpec, Network, NetworkSpec, Status, Tenant,
    TenantSpec,
};

use crate::{Client, ClientError};

impl Client {
    pub async fn create_tenant(&self, spec: &TenantSpec) -> Result<Tenant, ClientError> {
        self.post("/v1/tenants", spec).await
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, ClientError> {
        self.get("/v1/tenants").await
    }

    pub async fn get_tenant(&self, tenant: &str) -> Result<Tenant, ClientError> {
        self.get(&format!("/v1/tenants/{}", segment(tenant))).await
    }

    pub async fn delete_tenant(&self, tenant: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v1/tenants/{}", segment(tenant))).await
    }

    /// Creates a network; the controller creates the tenant too if it does not exist.
    pub async fn create_network(&self, tenant: &str, spec: &NetworkSpec) -> Result<Network, ClientError> {
        self.post(&format!("/v1/tenants/{}/networks", segment(tenant)), spec).await
    }

    /// Lists the networks of one tenant, or of all tenants.
    pub async fn list_networks(&self, tenant: Option<&str>) -> Result<Vec<Network>, ClientError> {
        match tenant {
            Some(tenant) => self.get(&format!("/v1/tenants/{}/networks", segment(tenant))).await,
            None => self.get("/v1/networks").await,
        }
    }

    pub async fn get_network(&self, tenant: &str, network: &str) -> Result<Network, ClientError> {
        self.get(&format!("/v1/tenants/{}/networks/{}", segment(tenant), segment(network))).await
    }

    pub async fn delete_network(&self, tenant: &str, network: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v1/tenants/{}/networks/{}", segment(tenant), segment(network))).await
    }

    pub async fn create_endpoint(&self, tenant: &str, spec: &EndpointSpec) -> Result<Endpoint, ClientError> {
        self.post(&format!("/v1/tenants/{}/endpoints", segment(tenant)), spec).await
    }

    /// Lists endpoints; each `Some` narrows the result.
    pub async fn list_endpoints(
        &self,
        tenant: Option<&str>,
        network: Option<&str>,
        host: Option<&str>,
    ) -> Result<Vec<Endpoint>, ClientError> {
        let base = match tenant {
            Some(tenant) => format!("/v1/tenants/{}/endpoints", segment(tenant)),
            None => "/v1/endpoints".to_string(),
        };
        let query: Vec<String> = [("network", network), ("host", host)]
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| format!("{name}={}", segment(v))))
            .collect();
        if query.is_empty() {
            self.get(&base).await
        } else {
            self.get(&format!("{base}?{}", query.join("&"))).await
        }
    }

    pub async fn get_endpoint(&self, tenant: &str, endpoint: &str) -> Result<Endpoint, ClientError> {
        self.get(&format!("/v1/tenants/{}/endpoints/{}", segment(tenant), segment(endpoint))).await
    }

    /// Changes groups or labels; fails with HTTP 409 `stale_version` when
    /// `update.resource_version` is not the endpoint's current one.
    pub async fn update_endpoint(
        &self,
        tenant: &str,
        endpoint: &str,
        update: &EndpointUpdate,
    ) -> Result<Endpoint, ClientError> {
        self.patch(&format!("/v1/tenants/{}/endpoints/{}", segment(tenant), segment(endpoint)), update).await
    }

    /// Deletes an endpoint by name; with `id`, only if the name still refers to
    /// the endpoint of that id (404 otherwise).
    pub async fn delete_endpoint(&self, tenant: &str, endpoint: &str, id: Option<&str>) -> Result<(), ClientError> {
        let mut path = format!("/v1/tenants/{}/endpoints/{}", segment(tenant), segment(endpoint));
        if let Some(id) = id {
            path.push_str(&format!("?id={}", segment(id)));
        }
        self.delete(&path).await
    }

    /// Registers the host or refreshes its heartbeat.
    pub async fn register_host(&self, spec: &HostSpec) -> Result<Host, ClientError> {
        self.put(&format!("/v1/hosts/{}", segment(&spec.name)), spec).await
    }

    pub async fn list_hosts(&self) -> Result<Vec<Host>, ClientError> {
        self.get("/v1/hosts").await
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get("/v1/status").await
    }
}

/// Percent-encodes a path segment or query value. Valid names need no encoding; this
/// keeps an invalid one from changing the path, so the server can reject it by name.
pub(crate) fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn segment_encodes_reserved_bytes() {
        assert_eq!(segment("web-1"), "web-1");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
