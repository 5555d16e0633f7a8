//! The network: a bridge with the gateway address, and per node a network namespace joined to it by a
//! veth pair whose inside end is eth0 (as in a pod). Commands go to iproute2 in batches.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::LocalError;
use crate::plan::Plan;

/// One thing `up` creates on the host, under a machine-wide name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetResource {
    Namespace(String),
    Bridge(String),
    Veth(String),
}

impl fmt::Display for NetResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetResource::Namespace(n) => write!(f, "network namespace {n}"),
            NetResource::Bridge(b) => write!(f, "bridge {b}"),
            NetResource::Veth(v) => write!(f, "veth {v}"),
        }
    }
}

/// Where clusters claim their names: one file per namespace or interface name, holding the state
/// directory of the cluster that owns it. A name is claimed (under the lock) before it is created
/// and released after it is removed, so a `down` after a crash anywhere in `up` knows exactly which
/// names are its own, and no two clusters, whatever their --state-dir, ever share one. Like
/// /run/netns itself it is gone after a reboot, with the namespaces and interfaces it names.
const CLAIMS: &str = "/run/kompi-local/claims";

impl NetResource {
    fn claim_file(&self) -> PathBuf {
        let (kind, name) = match self {
            NetResource::Namespace(n) => ("netns", n),
            NetResource::Bridge(n) | NetResource::Veth(n) => ("link", n),
        };
        Path::new(CLAIMS).join(format!("{kind}.{name}"))
    }

    /// The state directory of the cluster that claimed this name, if any.
    pub fn owner(&self) -> Option<PathBuf> {
        std::fs::read_to_string(self.claim_file()).ok().map(|t| PathBuf::from(t.trim_end_matches('\n')))
    }
}

/// Claims every name of the plan for the cluster whose state is `owner`; all or none. A claim left
/// by an `up` that crashed before making its state directory (its owner is `owner` itself, or a
/// directory that no longer exists) is taken over.
pub fn claim(plan: &Plan, owner: &Path) -> Result<(), LocalError> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(CLAIMS).map_err(|e| LocalError::io(format!("creating {CLAIMS}"), e))?;
    let mut claimed = Vec::new();
    for resource in plan.resources() {
        let file = resource.claim_file();
        let stale = resource.owner().is_some_and(|o| o == owner || !o.exists());
        if stale {
            release(&resource);
        }
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&file)
            .and_then(|mut f| writeln!(f, "{}", owner.display()));
        if let Err(e) = made {
            for r in &claimed {
                release(r);
            }
            return Err(match e.kind() {
                std::io::ErrorKind::AlreadyExists => LocalError::InUse(format!(
                    "the {resource} is taken by the local cluster whose state is in {}; nothing was changed",
                    resource.owner().map_or_else(|| "?".into(), |o| o.display().to_string())
                )),
                _ => LocalError::io(format!("claiming {resource} in {CLAIMS}"), e),
            });
        }
        claimed.push(resource);
    }
    Ok(())
}

fn release(resource: &NetResource) {
    let _ = std::fs::remove_file(resource.claim_file());
}

/// Releases every name `owner` still claims (after its resources are gone, or when its state never
/// got as far as naming them).
pub fn release_all(owner: &Path) {
    for entry in std::fs::read_dir(CLAIMS).into_iter().flatten().flatten() {
        if std::fs::read_to_string(entry.path()).is_ok_and(|t| Path::new(t.trim_end_matches('\n')) == owner) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether a name is claimed by some local cluster.
pub fn is_claimed(resource: &NetResource) -> bool {
    std::fs::symlink_metadata(resource.claim_file()).is_ok()
}

/// The bridge's address and state, once it exists.
pub fn bridge_batch(plan: &Plan) -> String {
    format!("addr add {}/{} dev {b}\nlink set {b} up\n", plan.gateway, plan.subnet.prefix, b = plan.bridge)
}

/// Every host-side veth end joined to the bridge, once they exist.
pub fn attach_batch(plan: &Plan) -> String {
    plan.nodes.iter().map(|n| format!("link set {} master {} up\n", n.host_veth, plan.bridge)).collect()
}

/// Commands inside one node's namespace: loopback, eth0 with its address, the default route.
pub fn node_batch(plan: &Plan, node: &str) -> String {
    let n = plan.node(node).expect("node of the plan");
    format!(
        "link set lo up\naddr add {}/{} dev eth0\nlink set eth0 up\nroute add default via {}\n",
        n.address, plan.subnet.prefix, plan.gateway
    )
}

/// Creates the plan's namespaces, bridge and veth pairs one by one (their names claimed before),
/// recording each in `created` as soon as it exists; stops at the first failure.
pub fn create(plan: &Plan, created: &mut Vec<NetResource>) -> Result<(), LocalError> {
    for n in &plan.nodes {
        ip(&["netns", "add", &n.name])?;
        created.push(NetResource::Namespace(n.name.clone()));
    }
    ip(&["link", "add", &plan.bridge, "type", "bridge"])?;
    created.push(NetResource::Bridge(plan.bridge.clone()));
    run_batch(&[], &bridge_batch(plan))?;
    for n in &plan.nodes {
        ip(&["link", "add", &n.host_veth, "type", "veth", "peer", "name", "eth0", "netns", &n.name])?;
        created.push(NetResource::Veth(n.host_veth.clone()));
    }
    run_batch(&[], &attach_batch(plan))?;
    for n in &plan.nodes {
        run_batch(&["-n", &n.name], &node_batch(plan, &n.name))?;
    }
    Ok(())
}

/// Removes the plan's namespaces and interfaces that the cluster whose state is `owner` claimed
/// (`only`: just these, those a failing `up` made itself), newest first, and releases its claims;
/// returns what was removed. Interfaces are checked before they go: the bridge must be a bridge
/// with none but the plan's veths on it and no address but the plan's gateway, a veth a veth on
/// that bridge (or on none), so that a damaged state can never name eth0 or a bridge of the host.
pub fn remove(plan: &Plan, owner: &Path, only: Option<&[NetResource]>) -> Vec<String> {
    let mut removed = Vec::new();
    for resource in plan.resources().iter().rev().filter(|r| r.owner().as_deref() == Some(owner)) {
        if only.is_none_or(|made| made.contains(resource)) {
            let gone = match resource {
                NetResource::Namespace(name) => namespace_exists(name) && ip(&["netns", "delete", name]).is_ok(),
                NetResource::Bridge(name) => is_our_bridge(plan, name) && ip(&["link", "delete", name]).is_ok(),
                NetResource::Veth(name) => is_our_veth(plan, name) && ip(&["link", "delete", name]).is_ok(),
            };
            if gone {
                removed.push(resource.to_string());
            }
        }
        // Kept while it exists, so that `down` can try again; a failing `up` keeps no claim on a
        // name it did not make (someone else's, made meanwhile).
        if !exists(resource) || only.is_some_and(|made| !made.contains(resource)) {
            release(resource);
        }
    }
    removed
}

/// Whether a namespace or interface of that name exists on this machine.
pub fn exists(resource: &NetResource) -> bool {
    match resource {
        NetResource::Namespace(name) => namespace_exists(name),
        NetResource::Bridge(name) | NetResource::Veth(name) => std::fs::symlink_metadata(format!("/sys/class/net/{name}")).is_ok(),
    }
}

fn is_our_bridge(plan: &Plan, name: &str) -> bool {
    let Some(link) = link(name) else { return false };
    let ports = std::fs::read_dir(format!("/sys/class/net/{name}/brif")).into_iter().flatten().flatten();
    let foreign_port = ports.into_iter().any(|p| !plan.nodes.iter().any(|n| p.file_name() == n.host_veth.as_str()));
    let gateway = plan.gateway.to_string();
    let addresses = link["addr_info"].as_array().cloned().unwrap_or_default();
    let foreign_address = addresses.iter().any(|a| a["local"].as_str() != Some(gateway.as_str()) && a["family"] == "inet");
    link["linkinfo"]["info_kind"] == "bridge" && !foreign_port && !foreign_address
}

fn is_our_veth(plan: &Plan, name: &str) -> bool {
    let Some(link) = link(name) else { return false };
    let on_our_bridge = link["master"].as_str().is_none_or(|m| m == plan.bridge);
    link["linkinfo"]["info_kind"] == "veth" && on_our_bridge
}

/// A host interface as `ip -j -d addr show` describes it (kind, master, addresses); `None` if absent.
fn link(name: &str) -> Option<serde_json::Value> {
    let out = Command::new("ip").args(["-j", "-d", "addr", "show", "dev", name]).stdin(Stdio::null()).output().ok()?;
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    links.get(0).cloned()
}

fn namespace_exists(name: &str) -> bool {
    std::fs::symlink_metadata(namespace_path(name)).is_ok()
}

/// Names taken on this machine: network namespaces (in /run/netns, whichever state directory made them).
pub fn namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns").into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

/// Held for the whole of an `up` or a `down`.
pub type Lock = nix::fcntl::Flock<std::fs::File>;

const LOCK_FILE: &str = "/run/kompi-local.lock";

/// The machine-wide lock (`/run/kompi-local.lock`) every `up` and `down` holds from start to end,
/// whatever their state directory: network names are machine-wide, and an `up` must never see
/// another one's half-made cluster. Waits, saying so, while another holds it.
pub fn lock(progress: &mut dyn FnMut(&str)) -> Result<Lock, LocalError> {
    use nix::fcntl::{Flock, FlockArg};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(LOCK_FILE)
        .map_err(|e| LocalError::io(format!("opening {LOCK_FILE}"), e))?;
    let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => return Ok(lock),
        Err((file, nix::errno::Errno::EWOULDBLOCK)) => file,
        Err((_, e)) => return Err(LocalError::io(format!("locking {LOCK_FILE}"), e.into())),
    };
    progress(&format!("waiting for another `kompi local up` or `down` to finish (it holds {LOCK_FILE})"));
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| LocalError::io(format!("locking {LOCK_FILE}"), e.into()))
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

/// `ip`, ending with kompi: an `ip netns add` that outlived a killed `up` could finish a namespace
/// after `down` had looked for it.
fn ip_command() -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new("ip");
    // SAFETY: prctl(2) only, between fork and exec.
    unsafe {
        command.pre_exec(|| nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(Into::into));
    }
    command
}

fn ip(args: &[&str]) -> Result<(), LocalError> {
    let out = ip_command().args(args).stdin(Stdio::null()).output().map_err(ip_missing)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LocalError::Network { command: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

fn run_batch(options: &[&str], batch: &str) -> Result<(), LocalError> {
    let mut child = ip_command()
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
        assert_eq!(bridge_batch(&p), "addr add 10.9.0.1/24 dev kb\nlink set kb up\n");
        assert_eq!(attach_batch(&p), "link set kb-0 master kb up\nlink set kb-1 master kb up\n");
        assert_eq!(
            p.resources().iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["network namespace c-master", "network namespace c-worker-0", "bridge kb", "veth kb-0", "veth kb-1"]
        );
        assert_eq!(
            node_batch(&p, "c-worker-0"),
            "link set lo up\naddr add 10.9.0.3/24 dev eth0\nlink set eth0 up\nroute add default via 10.9.0.1\n"
        );
    }
}
