//! Services: the headless Service that gives every pod a DNS name, and the optional NodePort ssh gateway.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kompi_spec::ClusterSpec;

use crate::labels::{Component, meta, selector_labels};

pub const SSH_PORT_NAME: &str = "ssh";

/// Headless Service NAME: `NAME-master.NAME` and `NAME-worker-<i>.NAME` resolve through it.
pub fn headless(spec: &ClusterSpec) -> Service {
    Service {
        metadata: meta(spec, spec.name.service(), None),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Names resolve as soon as a pod has an address, not only once it is Ready: the hostfile
            // lists a worker when it is Ready, and by then its name must already resolve (no DNS lag).
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(spec, None)),
            ports: Some(vec![ServicePort {
                name: Some(SSH_PORT_NAME.into()),
                // Server-side apply needs the whole key (port, protocol) of each entry on older servers.
                protocol: Some("TCP".into()),
                port: spec.ssh_port.into(),
                target_port: Some(IntOrString::String(SSH_PORT_NAME.into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// NodePort Service NAME-ssh-gateway: ssh from outside the cluster to the master.
pub fn ssh_gateway(spec: &ClusterSpec, node_port: u16) -> Service {
    Service {
        metadata: meta(spec, spec.name.ssh_gateway(), Some(Component::Master)),
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            selector: Some(selector_labels(spec, Some(Component::Master))),
            ports: Some(vec![ServicePort {
                name: Some(SSH_PORT_NAME.into()),
                protocol: Some("TCP".into()),
                port: 22,
                target_port: Some(IntOrString::String(SSH_PORT_NAME.into())),
                node_port: Some(node_port.into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
