//! Typed calls for the security group routes of the `/v1` API.

use cloison_model::{Rule, SecurityGroup, SecurityGroupSpec};
use hyper::Method;

use crate::api::segment;
use crate::{Client, ClientError};

impl Client {
    pub async fn create_group(&self, tenant: &str, spec: &SecurityGroupSpec) -> Result<SecurityGroup, ClientError> {
        self.post(&format!("/v1/tenants/{}/groups", segment(tenant)), spec).await
    }

    pub async fn list_groups(&self, tenant: &str) -> Result<Vec<SecurityGroup>, ClientError> {
        self.get(&format!("/v1/tenants/{}/groups", segment(tenant))).await
    }

    pub async fn get_group(&self, tenant: &str, group: &str) -> Result<SecurityGroup, ClientError> {
        self.get(&group_path(tenant, group)).await
    }

    /// Deletes a group; fails with HTTP 409 `in_use` while an endpoint lists it.
    pub async fn delete_group(&self, tenant: &str, group: &str) -> Result<(), ClientError> {
        self.delete(&group_path(tenant, group)).await
    }

    pub async fn add_rule(&self, tenant: &str, group: &str, rule: &Rule) -> Result<SecurityGroup, ClientError> {
        self.post(&format!("{}/rules", group_path(tenant, group)), rule).await
    }

    /// Removes the rule equal to `rule`; fails with HTTP 404 when the group has none.
    pub async fn remove_rule(&self, tenant: &str, group: &str, rule: &Rule) -> Result<SecurityGroup, ClientError> {
        self.call(Method::DELETE, &format!("{}/rules", group_path(tenant, group)), Some(rule)).await
    }
}

fn group_path(tenant: &str, group: &str) -> String {
    format!("/v1/tenants/{}/groups/{}", segment(tenant), segment(group))
}
