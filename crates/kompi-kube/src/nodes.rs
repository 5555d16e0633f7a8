//! The nodes under a cluster's pods. When a node is lost (it stopped, crashed or was cut off), nothing
//! inside the pods notices: its processes answer nothing and no connection to them is ever reset, so
//! mpiexec waits forever. Kubernetes notices: after the node's grace period (the controller manager's
//! `--node-monitor-grace-period`, 40 s by default) the node's Ready condition turns Unknown and its pods
//! are marked not ready. This module reads that verdict.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;

use crate::client::Connection;
use crate::error::KubeError;

/// The node a pod was scheduled to.
pub fn of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// What is wrong with node `name` (`None` when it no longer exists): its Ready condition is not True.
/// A node that has not reported any condition yet is not a problem.
pub fn problem(name: &str, node: Option<&Node>) -> Option<String> {
    let Some(node) = node else {
        return Some(format!("node {name} no longer exists"));
    };
    let ready = node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    if ready.status == "True" {
        return None;
    }
    let state = if ready.status == "Unknown" { "unreachable" } else { "not ready" };
    let why: Vec<&str> = [ready.reason.as_deref(), ready.message.as_deref()].into_iter().flatten().map(str::trim).filter(|s| !s.is_empty()).collect();
    if why.is_empty() { Some(format!("node {name} is {state}")) } else { Some(format!("node {name} is {state} ({})", why.join(": "))) }
}

/// The problems of these nodes, by node name; nodes without one are left out. A client that may not
/// read nodes (a namespaced user) learns nothing here: that is not an error.
pub async fn problems(conn: &Connection, names: &BTreeSet<String>) -> Result<BTreeMap<String, String>, KubeError> {
    let api: Api<Node> = Api::all(conn.client.clone());
    let mut found = BTreeMap::new();
    for name in names {
        let node = match api.get_opt(name).await {
            Ok(node) => node,
            Err(kube::Error::Api(s)) if s.code == 403 => return Ok(BTreeMap::new()),
            Err(e) => return Err(conn.error(&format!("reading Node {name}"), e)),
        };
        if let Some(p) = problem(name, node.as_ref()) {
            found.insert(name.clone(), p);
        }
    }
    Ok(found)
}

/// The problems of the nodes these pods run on.
pub async fn problems_under<'a>(conn: &Connection, pods: impl IntoIterator<Item = &'a Pod>) -> Result<BTreeMap<String, String>, KubeError> {
    let names: BTreeSet<String> = pods.into_iter().filter_map(of).map(str::to_string).collect();
    problems(conn, &names).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"conditions": [ready]}})).unwrap()
    }

    #[test]
    fn a_node_is_a_problem_when_not_ready_or_gone() {
        assert_eq!(problem("n", Some(&node(json!({"type": "Ready", "status": "True", "reason": "KubeletReady"})))), None);
        let lost = node(json!({"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}));
        assert_eq!(problem("node3", Some(&lost)).unwrap(), "node node3 is unreachable (NodeStatusUnknown: Kubelet stopped posting node status.)");
        let down = node(json!({"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": ""}));
        assert_eq!(problem("node2", Some(&down)).unwrap(), "node node2 is not ready (KubeletNotReady)");
        assert_eq!(problem("node4", None).unwrap(), "node node4 no longer exists");
        let registering: Node = serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {}})).unwrap();
        assert_eq!(problem("n", Some(&registering)), None);
    }
}
