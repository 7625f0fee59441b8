use cloison_model::{Endpoint, Network};

use super::Reconciler;
use crate::AgentError;

impl Reconciler {
    /// Compares a local endpoint's kernel objects with what its records say, without
    /// repairing anything, and fails with [`AgentError::Drift`] listing each difference.
    pub async fn verify(&self, network: &Network, endpoint: &Endpoint) -> Result<(), AgentError> {
        let plan = self.ctx.local_endpoint_plan(network, endpoint);
        let problems = self.dataplane.verify_local_endpoint(&plan).await?;
        if problems.is_empty() {
            return Ok(());
        }
        Err(AgentError::Drift {
            endpoint: endpoint.name.clone(),
            problems,
        })
    }
}
