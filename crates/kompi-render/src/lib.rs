//! kompi's pure core, second half: a [`kompi_spec::ClusterSpec`] in, everything kompi writes out:
//! typed Kubernetes objects (one builder per resource), sshd and ssh configs, MPI defaults, hostfiles.
//! No I/O and no Kubernetes client.

pub mod command;
pub mod hostfile;
pub mod inject;
pub mod labels;
pub mod launcher;
pub mod master;
pub mod mca;
mod object;
pub mod pod;
pub mod policy;
pub mod rbac;
pub mod secret;
pub mod service;
pub mod ssh;
#[cfg(test)]
mod testing;
pub mod worker;

use kompi_spec::ClusterSpec;
pub use object::{ApiType, Kind, Object, Target, to_json_list, to_yaml, to_yaml_stream};

/// Every object of a cluster, in the order they are best applied (what pods need exists first). The
/// Secret is left out when the spec has no key (`kompi up` then makes one).
pub fn render(spec: &ClusterSpec) -> Vec<Object> {
    let mut objects = Vec::new();
    if let Some(key) = &spec.ssh_key {
        objects.push(Object::Secret(secret::ssh_key_secret(spec, key)));
    }
    objects.push(Object::ServiceAccount(rbac::service_account(spec)));
    objects.push(Object::Role(rbac::role(spec)));
    objects.push(Object::RoleBinding(rbac::role_binding(spec)));
    objects.push(Object::Service(service::headless(spec)));
    if let Some(node_port) = spec.ssh_gateway {
        objects.push(Object::Service(service::ssh_gateway(spec, node_port)));
    }
    if spec.network_policy {
        objects.extend(policy::network_policies(spec).into_iter().map(Object::NetworkPolicy));
    }
    if spec.workers.disruption_budget {
        objects.push(Object::PodDisruptionBudget(policy::disruption_budget(spec)));
    }
    objects.push(Object::StatefulSet(worker::stateful_set(spec)));
    objects.push(Object::Pod(master::master_pod(spec)));
    objects
}
