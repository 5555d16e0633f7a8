//! The local cluster's life: up, run, exec, status, list, down.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kompi_render::hostfile;
use kompi_render::launcher::{self, mpiexec};
use kompi_render::worker::init_command;
use kompi_spec::sshkey::{KeyType, generate};
use kompi_spec::{ClusterName, Request, Source, SshKeyPair};
use serde::Serialize;

use crate::error::LocalError;
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

    fn dir(&self, name: &str) -> StateDir {
        StateDir { root: self.base().join(name) }
    }

    fn existing(&self, name: &str) -> Result<(StateDir, ClusterState), LocalError> {
        let dir = self.dir(name);
        if !dir.exists() {
            return Err(LocalError::NotFound { name: name.into(), dir: dir.root });
        }
        let state = dir.load()?;
        Ok((dir, state))
    }
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

/// Creates the cluster and waits until every node's sshd answers; on any failure removes everything it
/// made, so there is never a half-made cluster.
pub fn up(ctx: &mut Context, opts: &UpOptions) -> Result<ClusterState, LocalError> {
    let mut sources = opts.sources.clone();
    if let Some(n) = opts.workers {
        sources.push(Source::Set(format!("mpiWorkers.num={n}")));
    }
    let spec = kompi_spec::load(&Request { name: &opts.name, namespace: "default", sources: &sources, require_ssh_key: false })?.spec;
    require_root()?;
    let dir = ctx.dir(&opts.name);
    if dir.exists() {
        match dir.load() {
            Ok(state) if state.nodes.iter().any(|(_, p)| p.alive()) => return Err(LocalError::AlreadyUp { name: opts.name.clone() }),
            _ => {
                (ctx.progress)(&format!("removing the remains of an earlier {} (state in {})", opts.name, dir.root.display()));
                down(ctx, &opts.name)?;
            }
        }
    }
    // Clusters started at the same time must not pick the same network: choose and create it under a
    // machine-wide lock.
    let lock = net::lock()?;
    let (subnet, bridge) = network_for(ctx, opts)?;
    let plan = plan(&spec.name, spec.workers.count, subnet, &bridge).map_err(LocalError::Invalid)?;
    let mut state = ClusterState {
        plan,
        ssh_port: spec.ssh_port,
        mpi: spec.mpi,
        master_slots: spec.master.pod.slots,
        worker_slots: spec.workers.pod.slots,
        nodes: Vec::new(),
    };
    prepare_state_dir(&dir, &state, spec.ssh_key.as_ref())?;
    let result = start(ctx, &dir, &mut state, &spec, opts, lock);
    if let Err(e) = result {
        (ctx.progress)(&format!("{e}; removing what was created"));
        let _ = down(ctx, &opts.name);
        return Err(e);
    }
    Ok(state)
}

fn start(
    ctx: &mut Context,
    dir: &StateDir,
    state: &mut ClusterState,
    spec: &kompi_spec::ClusterSpec,
    opts: &UpOptions,
    lock: net::Lock,
) -> Result<(), LocalError> {
    let plan = state.plan.clone();
    (ctx.progress)(&format!(
        "creating {} nodes on bridge {} ({}): {}",
        plan.nodes.len(),
        plan.bridge,
        plan.subnet,
        plan.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(" ")
    ));
    net::create(&plan)?;
    drop(lock);
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
    let others: Vec<ClusterState> = crate::state::list(&ctx.base()).into_iter().filter_map(|(_, d)| d.load().ok()).collect();
    let routes: Vec<Subnet> = net::host_routes().iter().filter_map(|r| Subnet::parse(r).ok()).collect();
    let links = net::host_links();
    let taken_subnet = |s: Subnet| others.iter().any(|o| o.plan.subnet.overlaps(s)) || routes.iter().any(|r| r.overlaps(s));
    let taken_bridge = |b: &str| others.iter().any(|o| o.plan.bridge == b) || links.iter().any(|l| l == b);
    if let Some(s) = opts.subnet
        && taken_subnet(s)
    {
        return Err(LocalError::Invalid(format!("--subnet {s} overlaps a network already in use on this machine; choose another")));
    }
    if let Some(b) = &opts.bridge
        && taken_bridge(b)
    {
        return Err(LocalError::Invalid(format!("--bridge {b}: an interface of that name exists already")));
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

fn prepare_state_dir(dir: &StateDir, state: &ClusterState, key: Option<&SshKeyPair>) -> Result<(), LocalError> {
    let mkdir = |path: &Path| {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(|e| LocalError::io(format!("creating {}", path.display()), e))
    };
    mkdir(&dir.root)?;
    mkdir(&dir.key_dir())?;
    for n in &state.plan.nodes {
        for sub in PRIVATE_HOME_DIRS {
            mkdir(&dir.node_dir(&n.name).join(sub))?;
        }
    }
    // Bind mounts need their targets: the running user's own dot-directories (created empty if absent).
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
        write_private(&dir.key_dir().join(file), text)?;
    }
    write_private(&dir.hosts(), &state.plan.hosts_file())?;
    std::fs::set_permissions(dir.hosts(), std::fs::Permissions::from_mode(0o644)).map_err(|e| LocalError::io("chmod hosts", e))?;
    dir.save(state)
}

fn write_private(path: &Path, text: &str) -> Result<(), LocalError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| LocalError::io(format!("writing {}", path.display()), e))?;
    f.write_all(text.as_bytes()).map_err(|e| LocalError::io(format!("writing {}", path.display()), e))
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
/// state. Safe to repeat, and after kompi itself crashed.
pub fn down(ctx: &mut Context, name: &str) -> Result<Vec<String>, LocalError> {
    require_root()?;
    let dir = ctx.dir(name);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    match dir.load() {
        Ok(state) => {
            for n in &state.plan.nodes {
                let mut stopped = 0;
                if let Some(p) = state.pid_of(&n.name).filter(|p| p.alive()) {
                    p.stop(Duration::from_secs(5));
                    stopped += 1;
                }
                if let Some(inode) = proc::namespace_inode(&net::namespace_path(&n.name)) {
                    for p in proc::in_network_namespace(inode) {
                        p.stop(Duration::from_secs(1));
                        stopped += 1;
                    }
                }
                if stopped > 0 {
                    removed.push(format!("{stopped} process(es) of node {}", n.name));
                }
            }
            removed.extend(net::remove(&state.plan));
        }
        Err(e) => (ctx.progress)(&format!("{e}: removing the state directory only")),
    }
    std::fs::remove_dir_all(&dir.root).map_err(|e| LocalError::io(format!("removing {}", dir.root.display()), e))?;
    removed.push(format!("state directory {}", dir.root.display()));
    Ok(removed)
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
    require_root()?;
    let (dir, state) = ctx.existing(&opts.name)?;
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
    require_root()?;
    let (_, state) = ctx.existing(name)?;
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
    state.nodes.iter().filter(|(_, p)| !p.alive()).map(|(n, _)| n.clone()).collect()
}

fn run_in_node(node: &str, state: &ClusterState, argv: &[String]) -> Result<i32, LocalError> {
    let (program, args) = argv.split_first().ok_or_else(|| LocalError::Invalid("no command given (put it after --)".into()))?;
    let process = state.pid_of(node).ok_or_else(|| LocalError::NodeDown { node: node.to_string() })?;
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
    let (dir, state) = ctx.existing(name)?;
    let nodes = state
        .plan
        .nodes
        .iter()
        .map(|n| {
            let process = state.pid_of(&n.name);
            NodeStatus {
                name: n.name.clone(),
                role: n.role().as_str(),
                address: n.address.to_string(),
                pid: process.map_or(0, |p| p.pid),
                running: process.is_some_and(ProcessId::alive),
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

pub fn list(ctx: &Context) -> Vec<ClusterSummary> {
    crate::state::list(&ctx.base())
        .into_iter()
        .map(|(name, dir)| match dir.load() {
            Ok(s) => ClusterSummary {
                name,
                nodes: s.plan.nodes.len(),
                running: s.nodes.iter().filter(|(_, p)| p.alive()).count(),
                subnet: s.plan.subnet.to_string(),
            },
            Err(_) => ClusterSummary { name, nodes: 0, running: 0, subnet: "?".into() },
        })
        .collect()
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
