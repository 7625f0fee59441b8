//! Security groups of endpoints, as created and as updated.

mod common;

use cloison_model::{EndpointSpec, EndpointUpdate, SecurityGroupSpec};
use common::{controller, endpoint_spec, network_spec};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|name| name.to_string()).collect()
}

#[tokio::test]
async fn repeated_groups_stored_once() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    for group in ["db", "web"] {
        let spec = SecurityGroupSpec { name: group.into(), ..Default::default() };
        ctl.create_group("t1", spec).await.expect("group");
    }

    let spec = EndpointSpec { groups: names(&["db", "web", "db"]), ..endpoint_spec("web", "h1") };
    let created = ctl.create_endpoint("t1", spec).await.expect("endpoint");
    assert_eq!(created.groups, names(&["db", "web"]));

    let update = EndpointUpdate {
        resource_version: created.resource_version,
        groups: Some(names(&["web", "web", "db", "web"])),
        labels: None,
    };
    let updated = ctl.update_endpoint("t1", &created.name, update).await.expect("update");
    assert_eq!(updated.groups, names(&["web", "db"]));

    let stored = ctl.get_endpoint("t1", &created.name).await.expect("read back");
    assert_eq!(stored.groups, names(&["web", "db"]));
}
