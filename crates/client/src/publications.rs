//! Typed calls for the publication routes of the `/v1` API.

use cloison_model::{Publication, PublicationSpec};

use crate::api::segment;
use crate::{Client, ClientError};

impl Client {
    /// Publishes a port; fails with HTTP 409 `taken` when the host port is in use on
    /// the endpoint's host.
    pub async fn publish(&self, tenant: &str, spec: &PublicationSpec) -> Result<Publication, ClientError> {
        self.post(&format!("/v1/tenants/{}/publications", segment(tenant)), spec).await
    }

    /// Lists the publications of one tenant, or of every tenant.
    pub async fn list_publications(&self, tenant: Option<&str>) -> Result<Vec<Publication>, ClientError> {
        match tenant {
            Some(tenant) => self.get(&format!("/v1/tenants/{}/publications", segment(tenant))).await,
            None => self.get("/v1/publications").await,
        }
    }

    /// Removes a publication named by its id or its name: `ENDPOINT-HOSTPORT-PROTOCOL`, or
    /// `ENDPOINT-HOSTIP-HOSTPORT-PROTOCOL` when it is bound to one host address.
    pub async fn unpublish(&self, tenant: &str, publication: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v1/tenants/{}/publications/{}", segment(tenant), segment(publication))).await
    }
}
