//! A node is a `kompi init` process in its own network, UTS and mount namespaces: its own eth0, its own
//! hostname, its own /etc/hosts and private home directories. Entering a node joins those namespaces.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};

use crate::error::LocalError;
use crate::proc::ProcessId;

pub struct Launch {
    /// The node's network namespace (a file under /run/netns).
    pub netns: PathBuf,
    pub hostname: String,
    /// (source, target) bind mounts made inside the node's mount namespace.
    pub binds: Vec<(PathBuf, PathBuf)>,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, OsString)>,
    pub log: PathBuf,
}

/// Starts the node's process in a new session, detached from the caller, and returns it.
///
/// The namespaces are set up between fork and exec; the caller must be single-threaded (kompi's
/// local commands are).
pub fn launch(l: &Launch) -> Result<ProcessId, LocalError> {
    let netns = File::open(&l.netns).map_err(|e| LocalError::io(format!("opening {}", l.netns.display()), e))?;
    let log = crate::files::create_new(&l.log, 0o600)?;
    let log_err = log.try_clone().map_err(|e| LocalError::io("duplicating the log file", e))?;
    let hostname = l.hostname.clone();
    let binds = l.binds.clone();
    let mut command = Command::new(&l.program);
    command.args(&l.args).envs(l.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).stdout(log).stderr(log_err);
    // SAFETY: the closure runs in the forked child before exec; the parent is single-threaded, so
    // the calls below (system calls and small allocations) cannot deadlock on a lock held elsewhere.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid()?;
            setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)?;
            unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)?;
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)?;
            for (source, target) in &binds {
                mount(Some(source.as_path()), target.as_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
            }
            nix::unistd::sethostname(&hostname)?;
            // Orphans of ssh sessions and MPI daemons are reparented to kompi init, as to PID 1 in a pod.
            nix::sys::prctl::set_child_subreaper(true)?;
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| LocalError::NodeFailed { node: l.hostname.clone(), reason: format!("cannot start {}: {e}", l.program.display()) })?;
    let pid = child.id() as i32;
    // The child is a session leader that outlives us; its exit is noticed through its pid.
    drop(child);
    ProcessId::of(pid).ok_or_else(|| LocalError::NodeFailed { node: l.hostname.clone(), reason: format!("exited at once; see {}", l.log.display()) })
}

/// Joins the network, UTS and mount namespaces of a node's process, for the rest of this process's
/// life; the working directory is kept by path. The caller must be single-threaded.
pub fn enter(node: &str, process: ProcessId) -> Result<(), LocalError> {
    if !process.alive() {
        return Err(LocalError::NodeDown { node: node.to_string() });
    }
    let cwd = std::env::current_dir().ok();
    let open = |kind: &str| {
        let path = format!("/proc/{}/ns/{kind}", process.pid);
        File::open(&path).map_err(|e| LocalError::io(format!("opening {path}"), e))
    };
    let (net, uts, mnt) = (open("net")?, open("uts")?, open("mnt")?);
    let join = |file: &File, kind: CloneFlags| setns(file.as_fd(), kind).map_err(|e| LocalError::io(format!("joining the namespaces of node {node}"), e.into()));
    join(&net, CloneFlags::CLONE_NEWNET)?;
    join(&uts, CloneFlags::CLONE_NEWUTS)?;
    join(&mnt, CloneFlags::CLONE_NEWNS)?;
    let _ = std::env::set_current_dir(cwd.as_deref().unwrap_or(Path::new("/")));
    Ok(())
}
