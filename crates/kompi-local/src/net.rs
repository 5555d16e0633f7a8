//! The network: a bridge with the gateway address, and per node a network namespace joined to it by a
//! veth pair whose inside end is eth0 (as in a pod). Commands go to iproute2 in batches.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::LocalError;
use crate::plan::Plan;

/// Host-side commands: namespaces, bridge, veth pairs.
pub fn host_batch(plan: &Plan) -> String {
    let mut b = String::new();
    for n in &plan.nodes {
        b.push_str(&format!("netns add {}\n", n.name));
    }
    b.push_str(&format!("link add {} type bridge\n", plan.bridge));
    b.push_str(&format!("addr add {}/{} dev {}\n", plan.gateway, plan.subnet.prefix, plan.bridge));
    b.push_str(&format!("link set {} up\n", plan.bridge));
    for n in &plan.nodes {
        b.push_str(&format!("link add {} type veth peer name eth0 netns {}\n", n.host_veth, n.name));
        b.push_str(&format!("link set {} master {} up\n", n.host_veth, plan.bridge));
    }
    b
}

/// Commands inside one node's namespace: loopback, eth0 with its address, the default route.
pub fn node_batch(plan: &Plan, node: &str) -> String {
    let n = plan.node(node).expect("node of the plan");
    format!(
        "link set lo up\naddr add {}/{} dev eth0\nlink set eth0 up\nroute add default via {}\n",
        n.address, plan.subnet.prefix, plan.gateway
    )
}

pub fn create(plan: &Plan) -> Result<(), LocalError> {
    run_batch(&[], &host_batch(plan))?;
    for n in &plan.nodes {
        run_batch(&["-n", &n.name], &node_batch(plan, &n.name))?;
    }
    Ok(())
}

/// Removes what `create` made, as far as it exists; returns what was removed.
pub fn remove(plan: &Plan) -> Vec<String> {
    let mut removed = Vec::new();
    for n in &plan.nodes {
        if ip(&["link", "delete", &n.host_veth]).is_ok() {
            removed.push(format!("veth {}", n.host_veth));
        }
        if ip(&["netns", "delete", &n.name]).is_ok() {
            removed.push(format!("network namespace {}", n.name));
        }
    }
    if ip(&["link", "delete", &plan.bridge]).is_ok() {
        removed.push(format!("bridge {}", plan.bridge));
    }
    removed
}

/// Held while a cluster's network is chosen and created.
pub type Lock = nix::fcntl::Flock<std::fs::File>;

/// A machine-wide lock (`/run/kompi-local.lock`), so concurrent `up`s pick different networks.
pub fn lock() -> Result<Lock, LocalError> {
    let path = "/run/kompi-local.lock";
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|e| LocalError::io(format!("opening {path}"), e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| LocalError::io(format!("locking {path}"), e.into()))
}

pub fn namespace_path(node: &str) -> std::path::PathBuf {
    std::path::Path::new("/run/netns").join(node)
}

/// Interface names present on the host (to find a free bridge name).
pub fn host_links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net").into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

/// IPv4 networks routed on the host (`ip -4 route`), to keep clear of them.
pub fn host_routes() -> Vec<String> {
    Command::new("ip")
        .args(["-4", "route", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn ip(args: &[&str]) -> Result<(), LocalError> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(ip_missing)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LocalError::Network { command: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

fn run_batch(options: &[&str], batch: &str) -> Result<(), LocalError> {
    let mut child = Command::new("ip")
        .args(options)
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ip_missing)?;
    child.stdin.take().expect("piped").write_all(batch.as_bytes()).map_err(|e| LocalError::io("writing to ip -batch", e))?;
    let out = child.wait_with_output().map_err(|e| LocalError::io("running ip -batch", e))?;
    if out.status.success() {
        Ok(())
    } else {
        let command = format!("{}-batch (first command: {})", options.iter().map(|o| format!("{o} ")).collect::<String>(), batch.lines().next().unwrap_or(""));
        Err(LocalError::Network { command, stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

fn ip_missing(e: std::io::Error) -> LocalError {
    LocalError::io("running `ip` (install iproute2)", e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Subnet, plan};
    use kompi_spec::ClusterName;

    #[test]
    fn batches_wire_each_node_to_the_bridge() {
        let p = plan(&ClusterName::new("c").unwrap(), 1, Subnet::parse("10.9.0.0/24").unwrap(), "kb").unwrap();
        assert_eq!(
            host_batch(&p),
            "netns add c-master\nnetns add c-worker-0\nlink add kb type bridge\naddr add 10.9.0.1/24 dev kb\nlink set kb up\n\
             link add kb-0 type veth peer name eth0 netns c-master\nlink set kb-0 master kb up\n\
             link add kb-1 type veth peer name eth0 netns c-worker-0\nlink set kb-1 master kb up\n"
        );
        assert_eq!(
            node_batch(&p, "c-worker-0"),
            "link set lo up\naddr add 10.9.0.3/24 dev eth0\nlink set eth0 up\nroute add default via 10.9.0.1\n"
        );
    }
}
