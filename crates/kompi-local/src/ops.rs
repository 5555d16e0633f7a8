//! The local cluster's life: up, run, exec, status, list, down.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kompi_render::hostfile;
use kompi_render::launcher::{self, mpiexec};
use kompi_render::worker::init_command;
use kompi_spec::sshkey::{KeyType, generate};
use kompi_spec::{ClusterName, Request, Source, SshKeyPair};
use serde::Serialize;

use crate::error::LocalError;
use crate::files;
use crate::net;
use crate::node::{self, Launch};
use crate::plan::{Plan, Subnet, plan};
use crate::proc::{self, ProcessId};
use crate::state::{ClusterState, PRIVATE_HOME_DIRS, StateDir, home_dir};

/// Where `kompi local` keeps state, and how progress reaches the user.
pub struct Context<'a> {
    /// The directory holding one subdirectory per cluster (`--state-dir`); `None` for the default.
    pub state_base: Option<PathBuf>,
    pub progress: &'a mut dyn FnMut(&str),
}

impl Context<'_> {
    fn base(&self) -> PathBuf {
        self.state_base.clone().unwrap_or_else(crate::state::default_base)
    }

    /// The state directory of `name`, after checking that the base and it are root's alone. Its
    /// path is absolute: it names the cluster in the machine-wide name claims.
    fn dir(&self, name: &ClusterName) -> Result<StateDir, LocalError> {
        let base = self.base();
        if !base.exists() {
            return Err(LocalError::NotFound { name: name.to_string(), dir: StateDir::new(&base, name).root });
        }
        files::check_root_only(&base)?;
        let base = std::fs::canonicalize(&base).map_err(|e| LocalError::io(format!("resolving {}", base.display()), e))?;
        let dir = StateDir::new(&base, name);
        if dir.exists() {
            files::check_root_only(&dir.root)?;
        }
        Ok(dir)
    }

    fn existing(&self, name: &ClusterName) -> Result<(StateDir, ClusterState), LocalError> {
        let dir = self.dir(name)?;
        if !dir.exists() {
            return Err(LocalError::NotFound { name: name.to_string(), dir: dir.root });
        }
        let state = dir.load(name)?;
        Ok((dir, state))
    }
}

/// NAME as a cluster name (the Kubernetes commands' rule), checked before any path is built from it.
pub fn cluster_name(name: &str) -> Result<ClusterName, LocalError> {
    ClusterName::new(name).map_err(|m| LocalError::Invalid(format!("invalid cluster name: {m}")))
}

pub struct UpOptions {
    pub name: String,
    /// Overrides `mpiWorkers.num` of the values.
    pub workers: Option<u32>,
    pub sources: Vec<Source>,
    pub subnet: Option<Subnet>,
    pub bridge: Option<String>,
    pub timeout: Duration,
    /// The kompi binary that runs as `kompi init` in each node.
    pub kompi: PathBuf,
}

pub fn require_root() -> Result<(), LocalError> {
    if nix::unistd::geteuid().is_root() { Ok(()) } else { Err(LocalError::NotRoot) }
}

/// Creates the cluster and waits until every node's sshd answers. The machine-wide lock is held
/// throughout; on any failure exactly what this `up` made is removed again, so there is never a
/// half-made cluster and never a loss of someone else's.
pub fn up(ctx: &mut Context, opts: &UpOptions) -> Result<ClusterState, LocalError> {
    let name = cluster_name(&opts.name)?;
    let mut sources = opts.sources.clone();
    if let Some(n) = opts.workers {
        sources.push(Source::Set(format!("mpiWorkers.num={n}")));
    }
    let spec = kompi_spec::load(&Request { name: name.as_str(), namespace: "default", sources: &sources, require_ssh_key: false })?.spec;
    require_root()?;
    let base = ctx.base();
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&base).map_err(|e| LocalError::io(format!("creating {}", base.display()), e))?;
    let _lock = net::lock(ctx.progress)?;
    let dir = ctx.dir(&name)?;
    if dir.exists() {
        match dir.load(&name) {
            Ok(state) if state.plan.nodes.iter().any(|n| node_process(&state, &n.name).is_some()) => {
                return Err(LocalError::AlreadyUp { name: name.to_string() });
            }
            _ => {
                (ctx.progress)(&format!("removing the remains of an earlier {name} (state in {})", dir.root.display()));
                remove(ctx, &dir, &name)?;
            }
        }
    }
    let (subnet, bridge) = network_for(ctx, opts)?;
    let plan = plan(&spec.name, spec.workers.count, subnet, &bridge).map_err(LocalError::Invalid)?;
    check_names_free(&plan)?;
    net::claim(&plan, &dir.root)?;
    let mut state = ClusterState {
        plan,
        ssh_port: spec.ssh_port,
        mpi: spec.mpi,
        master_slots: spec.master.pod.slots,
        worker_slots: spec.workers.pod.slots,
        nodes: Vec::new(),
    };
    if let Err(e) = dir.create(&name) {
        net::release_all(&dir.root);
        return Err(e);
    }
    // From here on, a failure removes exactly what this `up` made: its processes, the namespaces and
    // interfaces it created (`made`), its state directory; and releases its names.
    let mut made = Vec::new();
    let result = prepare_state_dir(&dir, &state, spec.ssh_key.as_ref()).and_then(|()| start(ctx, &dir, &mut state, &mut made, &spec, opts));
    if let Err(e) = result {
        (ctx.progress)(&format!("{e}; removing what was created"));
        teardown(&dir, Some(&state), Some(&made));
        return Err(e);
    }
    Ok(state)
}

fn start(
    ctx: &mut Context,
    dir: &StateDir,
    state: &mut ClusterState,
    made: &mut Vec<net::NetResource>,
    spec: &kompi_spec::ClusterSpec,
    opts: &UpOptions,
) -> Result<(), LocalError> {
    let plan = state.plan.clone();
    (ctx.progress)(&format!(
        "creating {} nodes on bridge {} ({}): {}",
        plan.nodes.len(),
        plan.bridge,
        plan.subnet,
        plan.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(" ")
    ));
    net::create(&plan, made)?;
    let home = home_dir();
    for n in &plan.nodes {
        let mut init = init_command(spec, n.role());
        init.key_dir = dir.key_dir().display().to_string();
        init.hostfile = dir.hostfile().display().to_string();
        let mut binds = vec![(dir.hosts(), PathBuf::from("/etc/hosts"))];
        for sub in PRIVATE_HOME_DIRS {
            binds.push((dir.node_dir(&n.name).join(sub), home.join(sub)));
        }
        let process = node::launch(&Launch {
            netns: net::namespace_path(&n.name),
            hostname: n.name.clone(),
            binds,
            program: opts.kompi.clone(),
            args: init.to_args(),
            env: vec![("HOME".into(), OsString::from(&home))],
            log: dir.node_log(&n.name),
        })?;
        state.nodes.push((n.name.clone(), process));
        dir.save(state)?;
    }
    wait_for_sshd(ctx, dir, state, opts.timeout)?;
    write_hostfile(dir, state)?;
    Ok(())
}

/// The subnet and bridge: as given, or the first 10.250.<i>.0/24 and kompi<i> that no other local
/// cluster, route or interface uses.
fn network_for(ctx: &Context, opts: &UpOptions) -> Result<(Subnet, String), LocalError> {
    let others: Vec<ClusterState> = crate::state::list(&ctx.base()).into_iter().filter_map(|(_, d)| d.read().ok()).collect();
    let routes: Vec<Subnet> = net::host_routes().iter().filter_map(|r| Subnet::parse(r).ok()).collect();
    let links = net::host_links();
    let taken_subnet = |s: Subnet| others.iter().any(|o| o.plan.subnet.overlaps(s)) || routes.iter().any(|r| r.overlaps(s));
    // The bridge's name, or one of its veths' (<bridge>-<i>).
    let taken_bridge = |b: &str| {
        let is_veth_of = |l: &str| l.strip_prefix(b).and_then(|r| r.strip_prefix('-')).is_some_and(|i| i.bytes().all(|c| c.is_ascii_digit()));
        others.iter().any(|o| o.plan.bridge == b) || links.iter().any(|l| l == b || is_veth_of(l)) || net::is_claimed(&net::NetResource::Bridge(b.into()))
    };
    if let Some(s) = opts.subnet
        && taken_subnet(s)
    {
        return Err(LocalError::Invalid(format!("--subnet {s} overlaps a network already in use on this machine; choose another")));
    }
    if let Some(b) = &opts.bridge
        && taken_bridge(b)
    {
        return Err(LocalError::Invalid(format!("--bridge {b}: an interface of that name (or one named {b}-<i>) exists already")));
    }
    for i in 0..=255u8 {
        let subnet = opts.subnet.unwrap_or(Subnet { base: std::net::Ipv4Addr::new(10, 250, i, 0), prefix: 24 });
        let bridge = opts.bridge.clone().unwrap_or_else(|| format!("kompi{i}"));
        if (opts.subnet.is_some() || !taken_subnet(subnet)) && (opts.bridge.is_some() || !taken_bridge(&bridge)) {
            return Ok((subnet, bridge));
        }
    }
    Err(LocalError::Invalid("no free 10.250.<i>.0/24 network: pass --subnet and --bridge".into()))
}

/// Network namespace names are machine-wide: one already in /run/netns that no local cluster
/// claims belongs to someone else and is never reused or removed (claimed names are refused by
/// `net::claim`, naming their cluster).
fn check_names_free(plan: &Plan) -> Result<(), LocalError> {
    let taken = net::namespaces();
    if let Some(n) = plan.nodes.iter().find(|n| taken.contains(&n.name) && !net::is_claimed(&net::NetResource::Namespace(n.name.clone()))) {
        return Err(LocalError::InUse(format!(
            "network namespace {} exists already and is not kompi's (see `ip netns list`); nothing was changed",
            n.name
        )));
    }
    Ok(())
}

fn prepare_state_dir(dir: &StateDir, state: &ClusterState, key: Option<&SshKeyPair>) -> Result<(), LocalError> {
    // The state's directory tree is new (made by `up` just now); the running user's dot-directories
    // are the bind mounts' targets and may exist.
    let mkdir = |path: &Path| {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(|e| LocalError::io(format!("creating {}", path.display()), e))
    };
    dir.save(state)?;
    files::create_dir(&dir.key_dir())?;
    for n in &state.plan.nodes {
        for sub in PRIVATE_HOME_DIRS {
            mkdir(&dir.node_dir(&n.name).join(sub))?;
        }
    }
    let home = home_dir();
    for sub in PRIVATE_HOME_DIRS {
        mkdir(&home.join(sub))?;
    }
    let generated;
    let (private, public) = match key {
        Some(k) => (k.private_key.as_str(), k.public_key.trim_end()),
        None => {
            generated = generate(KeyType::Ed25519, &format!("kompi-local-{}", state.plan.cluster), &mut ssh_key::rand_core::OsRng)
                .map_err(|e| LocalError::Invalid(format!("generating the cluster key: {e}")))?;
            (generated.private_openssh.as_str(), generated.public_openssh.as_str())
        }
    };
    let public = format!("{public}\n");
    for (file, text) in [("id_rsa", private), ("id_rsa.pub", public.as_str()), ("authorized_keys", public.as_str())] {
        files::replace(&dir.key_dir().join(file), text.as_bytes(), 0o600)?;
    }
    files::replace(&dir.hosts(), state.plan.hosts_file().as_bytes(), 0o644)
}

fn wait_for_sshd(ctx: &mut Context, dir: &StateDir, state: &ClusterState, timeout: Duration) -> Result<(), LocalError> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<&crate::plan::NodePlan> = state.plan.nodes.iter().collect();
    let total = pending.len();
    let mut last_report = Instant::now();
    while !pending.is_empty() {
        for n in &pending {
            let process = state.pid_of(&n.name).expect("every node was started");
            if !process.alive() {
                return Err(LocalError::NodeFailed { node: n.name.clone(), reason: format!("kompi init exited: {}", log_tail(&dir.node_log(&n.name))) });
            }
        }
        pending.retain(|n| TcpStream::connect_timeout(&SocketAddr::from((n.address, state.ssh_port)), Duration::from_millis(200)).is_err());
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let names: Vec<&str> = pending.iter().map(|n| n.name.as_str()).collect();
            return Err(LocalError::NodeFailed {
                node: names.join(", "),
                reason: format!("sshd did not answer on port {} within {}s (logs: {})", state.ssh_port, timeout.as_secs(), dir.root.join("nodes/*/init.log").display()),
            });
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            (ctx.progress)(&format!("waiting for sshd: {}/{total} nodes ready", total - pending.len()));
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Ok(())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    if lines.is_empty() { format!("nothing in {}", path.display()) } else { lines.into_iter().rev().collect::<Vec<_>>().join(" | ") }
}

/// Every worker, once all answer on ssh: the same lines the sidecar writes for serving worker pods.
fn write_hostfile(dir: &StateDir, state: &ClusterState) -> Result<(), LocalError> {
    let cluster = ClusterName::new(&state.plan.cluster).map_err(LocalError::Invalid)?;
    let entries = hostfile::entries(&cluster, state.master_slots, state.worker_slots, state.plan.workers().map(|w| w.name.as_str()));
    kompi_node::hostfile::write_hostfile(&dir.hostfile(), &hostfile::hostfile(state.mpi, &entries))
        .map_err(|e| LocalError::io("writing the hostfile", e))
}

/// Stops every node (and anything else left in its network namespace), removes the network and the
/// state. Safe to repeat, and after kompi itself crashed, even half-way through `up`. Removes only
/// a state directory that is provably kompi's: its cluster.json names this cluster, or `up` marked it.
pub fn down(ctx: &mut Context, name: &str) -> Result<Vec<String>, LocalError> {
    let name = cluster_name(name)?;
    require_root()?;
    let base = ctx.base();
    if !base.exists() {
        return Ok(Vec::new());
    }
    let _lock = net::lock(ctx.progress)?;
    let dir = ctx.dir(&name)?;
    if !dir.exists() {
        return Ok(Vec::new());
    }
    remove(ctx, &dir, &name)
}

/// `down` under the lock.
fn remove(ctx: &mut Context, dir: &StateDir, name: &ClusterName) -> Result<Vec<String>, LocalError> {
    let state = match dir.read() {
        Ok(state) if state.plan.cluster == name.as_str() => {
            state.verify(name).map_err(|reason| LocalError::Corrupt { path: dir.file(), reason: format!("{reason}; nothing was removed") })?;
            Some(state)
        }
        Ok(state) => return Err(LocalError::NotOurs { dir: dir.root.clone(), reason: format!("its cluster.json names cluster {:?}, not {name}", state.plan.cluster) }),
        Err(e) if dir.is_marked(name) => {
            (ctx.progress)(&format!("{e}: removing the state directory only"));
            None
        }
        Err(_) => {
            return Err(LocalError::NotOurs {
                dir: dir.root.clone(),
                reason: format!("it holds neither a cluster.json of {name} nor the marker `kompi local up` writes"),
            });
        }
    };
    let mut removed = teardown(dir, state.as_ref(), None);
    let left: Vec<String> = state.iter().flat_map(|s| s.plan.resources()).filter(|r| r.owner().as_ref() == Some(&dir.root) && net::exists(r)).map(|r| r.to_string()).collect();
    if !left.is_empty() || dir.exists() {
        let what = if left.is_empty() { dir.root.display().to_string() } else { left.join(", ") };
        return Err(LocalError::InUse(format!("could not remove {what} (removed: {}); `kompi local down {name}` tries again", removed.join(", "))));
    }
    removed.push(format!("state directory {}", dir.root.display()));
    Ok(removed)
}

/// Removes the cluster's processes, then the namespaces and interfaces it claimed (`only` those a
/// failing `up` made), then the directory.
fn teardown(dir: &StateDir, state: Option<&ClusterState>, only: Option<&[net::NetResource]>) -> Vec<String> {
    let mut removed = Vec::new();
    if let Some(state) = state {
        for n in &state.plan.nodes {
            if net::NetResource::Namespace(n.name.clone()).owner().as_deref() != Some(dir.root.as_path()) {
                continue;
            }
            let mut stopped = 0;
            if let Some(p) = node_process(state, &n.name) {
                p.stop(Duration::from_secs(5));
                stopped += 1;
            }
            if let Some(inode) = node_namespace(&n.name) {
                for p in proc::in_network_namespace(inode) {
                    p.stop(Duration::from_secs(1));
                    stopped += 1;
                }
            }
            if stopped > 0 {
                removed.push(format!("{stopped} process(es) of node {}", n.name));
            }
        }
        removed.extend(net::remove(&state.plan, &dir.root, only));
    }
    // The state directory names what is still claimed: it stays while anything claimed does.
    let still_claimed = state.is_some_and(|s| s.plan.resources().iter().any(|r| r.owner().as_ref() == Some(&dir.root)));
    if !still_claimed {
        net::release_all(&dir.root);
        // std's remove_dir_all does not follow symlinks inside the tree.
        let _ = std::fs::remove_dir_all(&dir.root);
    }
    removed
}

/// The inode of a node's network namespace, unless it is the host's (a namespace file bind-mounted
/// from the host would otherwise make `down` stop the host's processes).
fn node_namespace(node: &str) -> Option<u64> {
    proc::namespace_inode(&net::namespace_path(node)).filter(|inode| !proc::is_host_network_namespace(*inode))
}

/// A node's `kompi init`, trusted only while it runs in that node's own network namespace: a pid
/// read back from the state never leads to a process elsewhere.
fn node_process(state: &ClusterState, node: &str) -> Option<ProcessId> {
    let process = state.pid_of(node).filter(|p| p.alive())?;
    let netns = node_namespace(node)?;
    (process.network_namespace() == Some(netns)).then_some(process)
}

pub struct RunOptions {
    pub name: String,
    pub np: Option<u32>,
    pub npernode: Option<u32>,
    pub mca: Vec<(String, String)>,
    pub command: Vec<String>,
}

/// What came of a command run in the cluster.
pub struct Outcome {
    /// The command's exit status (128 + signal if a signal ended it).
    pub status: i32,
    /// Nodes found dead after a failure: the likely cause.
    pub dead_nodes: Vec<String>,
}

/// `mpiexec` on the master node with the cluster's hostfile; output streams through.
pub fn run(ctx: &mut Context, opts: &RunOptions) -> Result<Outcome, LocalError> {
    let name = cluster_name(&opts.name)?;
    require_root()?;
    let (dir, state) = ctx.existing(&name)?;
    check_nodes(&state)?;
    let launch = launcher::Launch { np: opts.np, npernode: opts.npernode, mca: &opts.mca, command: &opts.command };
    let args = mpiexec(state.mpi, &dir.hostfile().display().to_string(), &launch).map_err(LocalError::Invalid)?;
    let master = state.plan.master().name.clone();
    let status = run_in_node(&master, &state, &args)?;
    let dead_nodes = if status == 0 { Vec::new() } else { dead_nodes(&state) };
    Ok(Outcome { status, dead_nodes })
}

/// Any command on one node (the master by default).
pub fn exec(ctx: &mut Context, name: &str, node: Option<&str>, command: &[String]) -> Result<Outcome, LocalError> {
    let name = cluster_name(name)?;
    require_root()?;
    let (_, state) = ctx.existing(&name)?;
    let node = match node {
        None => state.plan.master().name.clone(),
        Some(n) => resolve_node(&state.plan, n)?,
    };
    let status = run_in_node(&node, &state, command)?;
    Ok(Outcome { status, dead_nodes: Vec::new() })
}

/// `master`, `worker-1`, `1` or the full node name.
fn resolve_node(plan: &Plan, wanted: &str) -> Result<String, LocalError> {
    let candidates = [wanted.to_string(), format!("{}-{wanted}", plan.cluster), format!("{}-worker-{wanted}", plan.cluster)];
    candidates.iter().find(|c| plan.node(c).is_some()).cloned().ok_or_else(|| {
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        LocalError::Invalid(format!("--node {wanted}: no such node; the nodes are {}", names.join(", ")))
    })
}

fn check_nodes(state: &ClusterState) -> Result<(), LocalError> {
    match dead_nodes(state).into_iter().next() {
        Some(node) => Err(LocalError::NodeDown { node }),
        None => Ok(()),
    }
}

fn dead_nodes(state: &ClusterState) -> Vec<String> {
    state.plan.nodes.iter().filter(|n| node_process(state, &n.name).is_none()).map(|n| n.name.clone()).collect()
}

fn run_in_node(node: &str, state: &ClusterState, argv: &[String]) -> Result<i32, LocalError> {
    let (program, args) = argv.split_first().ok_or_else(|| LocalError::Invalid("no command given (put it after --)".into()))?;
    let process = node_process(state, node).ok_or_else(|| LocalError::NodeDown { node: node.to_string() })?;
    node::enter(node, process)?;
    crate::signals::run_forwarding(program, args).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LocalError::CommandNotFound { program: program.clone(), node: node.to_string() },
        _ => LocalError::io(format!("running {program} on node {node}"), e),
    })
}

#[derive(Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub role: &'static str,
    pub address: String,
    pub pid: i32,
    pub running: bool,
    pub ssh_ready: bool,
}

#[derive(Serialize)]
pub struct ClusterStatus {
    pub name: String,
    pub state_dir: String,
    pub subnet: String,
    pub bridge: String,
    pub ssh_port: u16,
    pub nodes: Vec<NodeStatus>,
    pub hostfile: String,
}

pub fn status(ctx: &mut Context, name: &str) -> Result<ClusterStatus, LocalError> {
    let name = cluster_name(name)?;
    let (dir, state) = ctx.existing(&name)?;
    let nodes = state
        .plan
        .nodes
        .iter()
        .map(|n| {
            let process = node_process(&state, &n.name);
            NodeStatus {
                name: n.name.clone(),
                role: n.role().as_str(),
                address: n.address.to_string(),
                pid: process.map_or(0, |p| p.pid),
                running: process.is_some(),
                ssh_ready: TcpStream::connect_timeout(&SocketAddr::from((n.address, state.ssh_port)), Duration::from_millis(300)).is_ok(),
            }
        })
        .collect();
    Ok(ClusterStatus {
        name: name.to_string(),
        state_dir: dir.root.display().to_string(),
        subnet: state.plan.subnet.to_string(),
        bridge: state.plan.bridge.clone(),
        ssh_port: state.ssh_port,
        nodes,
        hostfile: std::fs::read_to_string(dir.hostfile()).unwrap_or_default(),
    })
}

#[derive(Serialize)]
pub struct ClusterSummary {
    pub name: String,
    pub nodes: usize,
    pub running: usize,
    pub subnet: String,
}

/// The clusters under the state base; one whose state is unsafe or damaged shows "?" as its subnet.
pub fn list(ctx: &Context) -> Result<Vec<ClusterSummary>, LocalError> {
    let base = ctx.base();
    if !base.exists() {
        return Ok(Vec::new());
    }
    files::check_root_only(&base)?;
    Ok(crate::state::list(&base)
        .into_iter()
        .map(|(name, dir)| match files::check_root_only(&dir.root).and_then(|()| dir.load(&name)) {
            Ok(s) => ClusterSummary {
                name: name.to_string(),
                nodes: s.plan.nodes.len(),
                running: s.plan.nodes.iter().filter(|n| node_process(&s, &n.name).is_some()).count(),
                subnet: s.plan.subnet.to_string(),
            },
            Err(_) => ClusterSummary { name: name.to_string(), nodes: 0, running: 0, subnet: "?".into() },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_by_short_names() {
        let p = plan(&ClusterName::new("c").unwrap(), 2, Subnet::parse("10.1.0.0/24").unwrap(), "b").unwrap();
        assert_eq!(resolve_node(&p, "master").unwrap(), "c-master");
        assert_eq!(resolve_node(&p, "1").unwrap(), "c-worker-1");
        assert_eq!(resolve_node(&p, "worker-0").unwrap(), "c-worker-0");
        assert_eq!(resolve_node(&p, "c-worker-1").unwrap(), "c-worker-1");
        assert!(resolve_node(&p, "7").unwrap_err().to_string().contains("c-master, c-worker-0, c-worker-1"));
    }
}
