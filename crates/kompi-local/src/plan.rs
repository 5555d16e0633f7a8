//! The shape of a local cluster, decided before anything is created: node names, addresses, the bridge
//! and veth names, the hosts file. Pure, so it is tested without root.

use std::net::Ipv4Addr;

use kompi_render::command::Role;
use kompi_spec::ClusterName;
use serde::{Deserialize, Serialize};

use crate::net::NetResource;

/// Linux interface names hold at most 15 bytes.
const IFNAMSIZ: usize = 15;

/// An IPv4 network for the pod-like nodes, e.g. 10.250.0.0/24.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("--subnet {text:?}: expected an IPv4 network such as 10.250.0.0/24");
        let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
        let base: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=29).contains(&prefix) {
            return Err(format!("--subnet {text:?}: the prefix must be between /8 and /29"));
        }
        let subnet = Subnet { base, prefix };
        if u32::from(base) & !subnet.mask() != 0 {
            return Err(format!("--subnet {text:?}: host bits are set; did you mean {}?", Subnet { base: subnet.network(), prefix }));
        }
        Ok(subnet)
    }

    fn mask(self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) & self.mask())
    }

    /// The n-th host address (1 is the bridge).
    pub fn host(self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - self.prefix);
        (u64::from(n) < size - 1).then(|| Ipv4Addr::from(u32::from(self.base) + n))
    }

    pub fn overlaps(self, other: Subnet) -> bool {
        // They overlap when they agree on the bits of the shorter prefix.
        let mask = self.mask() & other.mask();
        u32::from(self.base) & mask == u32::from(other.base) & mask
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    /// Hostname and network namespace name: NAME-master, NAME-worker-<i>.
    pub name: String,
    pub worker: bool,
    pub address: Ipv4Addr,
    /// The host end of the node's veth pair (the node's end is eth0).
    pub host_veth: String,
}

impl NodePlan {
    pub fn role(&self) -> Role {
        if self.worker { Role::Worker } else { Role::Master }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub cluster: String,
    pub subnet: Subnet,
    pub bridge: String,
    pub gateway: Ipv4Addr,
    /// The master first, then the workers by ordinal.
    pub nodes: Vec<NodePlan>,
}

pub fn plan(cluster: &ClusterName, workers: u32, subnet: Subnet, bridge: &str) -> Result<Plan, String> {
    if bridge.is_empty() || bridge.len() > IFNAMSIZ || bridge.contains(['/', ' ']) {
        return Err(format!("--bridge {bridge:?}: an interface name has 1 to {IFNAMSIZ} characters, no '/' or spaces"));
    }
    let last_veth = veth_name(bridge, workers as usize);
    if last_veth.len() > IFNAMSIZ {
        return Err(format!(
            "--bridge {bridge:?} is too long for {} nodes: veth names like {last_veth} must fit in {IFNAMSIZ} characters",
            workers + 1
        ));
    }
    let gateway = subnet.host(1).ok_or_else(|| format!("--subnet {subnet} has no room for a bridge address"))?;
    let mut nodes = Vec::with_capacity(workers as usize + 1);
    for i in 0..=workers {
        let address = subnet.host(i + 2).ok_or_else(|| {
            format!("--subnet {subnet} has room for {} nodes, not {}; choose a larger one (e.g. a /16)", nodes.len(), workers + 1)
        })?;
        let (name, worker) = if i == 0 { (cluster.master_pod(), false) } else { (cluster.worker_pod(i - 1), true) };
        nodes.push(NodePlan { name, worker, address, host_veth: veth_name(bridge, i as usize) });
    }
    Ok(Plan { cluster: cluster.to_string(), subnet, bridge: bridge.to_string(), gateway, nodes })
}

fn veth_name(bridge: &str, index: usize) -> String {
    format!("{bridge}-{index}")
}

impl Plan {
    pub fn master(&self) -> &NodePlan {
        &self.nodes[0]
    }

    pub fn workers(&self) -> impl Iterator<Item = &NodePlan> {
        self.nodes.iter().filter(|n| n.worker)
    }

    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Every namespace, veth and the bridge this plan makes, in the order they are created.
    pub fn resources(&self) -> Vec<NetResource> {
        let namespaces = self.nodes.iter().map(|n| NetResource::Namespace(n.name.clone()));
        let veths = self.nodes.iter().map(|n| NetResource::Veth(n.host_veth.clone()));
        namespaces.chain(std::iter::once(NetResource::Bridge(self.bridge.clone()))).chain(veths).collect()
    }

    /// /etc/hosts of every node: each node by its short name and by `<name>.<cluster>`, the names a
    /// Kubernetes headless Service gives, so hostfiles look the same in both places.
    pub fn hosts_file(&self) -> String {
        let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for n in &self.nodes {
            out.push_str(&format!("{}\t{}.{} {}\n", n.address, n.name, self.cluster, n.name));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> ClusterName {
        ClusterName::new("demo").unwrap()
    }

    #[test]
    fn nodes_addresses_and_names() {
        let p = plan(&name(), 2, Subnet::parse("10.250.3.0/24").unwrap(), "kompi3").unwrap();
        assert_eq!(p.gateway, Ipv4Addr::new(10, 250, 3, 1));
        let got: Vec<(&str, String, &str)> = p.nodes.iter().map(|n| (n.name.as_str(), n.address.to_string(), n.host_veth.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("demo-master", "10.250.3.2".into(), "kompi3-0"),
                ("demo-worker-0", "10.250.3.3".into(), "kompi3-1"),
                ("demo-worker-1", "10.250.3.4".into(), "kompi3-2"),
            ]
        );
        assert_eq!(p.workers().count(), 2);
        assert!(p.hosts_file().contains("10.250.3.4\tdemo-worker-1.demo demo-worker-1\n"));
    }

    #[test]
    fn limits_are_explained() {
        let small = Subnet::parse("10.0.0.0/29").unwrap();
        // .1 is the bridge, .7 the broadcast address: five nodes fit.
        assert!(plan(&name(), 4, small, "b").is_ok());
        assert!(plan(&name(), 5, small, "b").unwrap_err().contains("room for 5 nodes, not 6"));
        assert!(plan(&name(), 3, small, "a-very-long-bridge").unwrap_err().contains("1 to 15"));
        assert!(plan(&name(), 200, Subnet::parse("10.0.0.0/16").unwrap(), "kompi-bridge1").unwrap_err().contains("too long"));
        assert!(Subnet::parse("10.0.0.1/24").unwrap_err().contains("did you mean 10.0.0.0/24"));
        assert!(Subnet::parse("10.0.0.0").is_err());
        assert!(Subnet::parse("10.0.0.0/31").is_err());
    }

    #[test]
    fn overlap() {
        let a = Subnet::parse("10.250.0.0/24").unwrap();
        assert!(a.overlaps(Subnet::parse("10.250.0.0/16").unwrap()));
        assert!(a.overlaps(Subnet::parse("10.250.0.128/25").unwrap()));
        assert!(!a.overlaps(Subnet::parse("10.250.1.0/24").unwrap()));
    }
}
