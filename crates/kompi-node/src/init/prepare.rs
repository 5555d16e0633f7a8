//! Everything `kompi init` does before any long-running process starts, in order, stopping at the first
//! problem: nothing is started half-configured. This runs before the reaper exists, so it is the only place
//! allowed to wait for a child directly (`sshd -V`, `sshd -t`, `ompi_info --version`).

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use kompi_render::mca::{MpiDefaults, home_files};
use kompi_render::ssh::{SshdConfig, sshd_config};
use kompi_spec::MpiImplementation;
use kompi_spec::contract::POD_INTERFACE;
use tracing::{info, warn};

use super::error::InitError;
use super::identity::Identity;
use super::layout::Layout;
use super::sshd::{self, Sshd};
use super::open_mpi::{self, Installed};
use super::{InitArgs, home_files as home, keys, strict_modes};
use crate::atomic_file::write_atomically;

/// Open MPI series whose defaults are written when the version cannot be asked (kube-openmpi's images carry 4.x).
const ASSUMED_OPEN_MPI_MAJOR: u32 = 4;

/// Returns the sshd to start, checked (none for a launcher that does not serve ssh).
pub fn prepare(args: &InitArgs) -> Result<Option<Sshd>, InitError> {
    let me = Identity::current()?;
    let serve_ssh = !args.no_sshd;
    let sshd_binary = if serve_ssh { Some(sshd::locate(args.sshd.as_deref(), sshd::USUAL_SSHD_PATHS)?) } else { None };
    become_subreaper();
    let layout = Layout::new(&me.home, &me.hostname);
    if !me.home.is_dir() {
        return Err(InitError::HomeMissing { home: me.home.clone(), uid: me.uid.as_raw() });
    }
    private_dir(&layout.private_dir, &me).map_err(|e| match e {
        InitError::File { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            InitError::HomeNotWritable { home: me.home.clone(), uid: me.uid.as_raw() }
        }
        other => other,
    })?;
    if serve_ssh {
        strict_modes::check(&layout.authorized_keys, &me.passwd_home, me.uid.as_raw())?;
    }

    let key = keys::read(&args.key_dir, me.uid.as_raw())?;
    keys::validate(&key, &args.key_dir)?;
    keys::install(&key, &layout)?;

    let openssh = sshd_binary.as_deref().and_then(sshd::version);
    if serve_ssh {
        private_dir(&layout.node_dir, &me)?;
        let host_key = keys::generate_host_key(&me.hostname)?;
        write_atomically(&layout.host_key, host_key.as_bytes(), 0o600).map_err(|e| InitError::file("write", &layout.host_key, e))?;
        let config = sshd_config(&SshdConfig {
            port: args.ssh_port,
            files: &layout.sshd_files(),
            running_as_root: me.is_root(),
            user: &me.user_name,
            openssh,
        });
        write_atomically(&layout.sshd_config, config.as_bytes(), 0o600).map_err(|e| InitError::file("write", &layout.sshd_config, e))?;
    }

    home::write_ssh_config(&layout, args.cluster.as_str(), args.ssh_port)?;
    warn_if_ssh_reads_another_home(&me);
    home::write_mpi_defaults(&me.home, &home_files(&mpi_defaults(args)?))?;

    let Some(binary) = sshd_binary else {
        info!(home = %me.home.display(), uid = me.uid.as_raw(), "ssh client ready (this launcher runs no sshd)");
        return Ok(None);
    };
    let sshd = Sshd { binary, config: layout.sshd_config.clone(), port: args.ssh_port, openssh };
    sshd.check_port_free()?;
    sshd.check_config(me.is_root())?;
    info!(home = %me.home.display(), uid = me.uid.as_raw(), port = args.ssh_port, "ready to start sshd");
    Ok(Some(sshd))
}

/// A 0700 directory owned by the running user (made if absent, tightened if present).
fn private_dir(path: &Path, me: &Identity) -> Result<(), InitError> {
    DirBuilder::new().mode(0o700).recursive(true).create(path).map_err(|e| InitError::file("create directory", path, e))?;
    let meta = std::fs::metadata(path).map_err(|e| InitError::file("inspect", path, e))?;
    if meta.uid() != me.uid.as_raw() {
        return Err(InitError::ForeignOwner { path: path.to_path_buf(), owner: meta.uid(), uid: me.uid.as_raw() });
    }
    if meta.mode() & 0o777 != 0o700 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(|e| InitError::file("chmod 0700", path, e))?;
    }
    Ok(())
}

/// Orphans outside a container (the local backend, tests) are reparented to us too, so we reap them.
fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        warn!(error = %e, "cannot become a child subreaper; orphaned processes go to the system's init");
    }
}

fn mpi_defaults(args: &InitArgs) -> Result<MpiDefaults<'_>, InitError> {
    let hostfile = args.hostfile.to_str().ok_or_else(|| {
        InitError::Usage(format!("--hostfile {} is not valid UTF-8; use a plain path", args.hostfile.display()))
    })?;
    Ok(MpiDefaults { mpi: args.mpi, open_mpi_major: open_mpi_major(args.mpi), interface: POD_INTERFACE, hostfile, extra: &args.mca })
}

/// The Open MPI series whose defaults to write (0 for the Hydra MPIs); says when the image's MPI is not
/// the one the values name, whose hostfile syntax and launcher settings would not fit it.
fn open_mpi_major(mpi: MpiImplementation) -> u32 {
    let installed = open_mpi::detect();
    let wrong = |found: &str, fix: &str| {
        warn!("the cluster is set up for {} but the image's MPI is {found}: set mpi.implementation: {fix}", mpi.as_str());
    };
    match (mpi, installed) {
        (MpiImplementation::OpenMpi, Some(Installed::OpenMpi { major })) => major,
        (MpiImplementation::OpenMpi, found) => {
            match found {
                Some(Installed::Hydra) => wrong("Hydra's (MPICH or Intel MPI)", "mpich (or intel)"),
                _ => warn!("cannot tell the Open MPI version (neither ompi_info, mpirun nor mpiexec on PATH answered)"),
            }
            warn!("writing the defaults of Open MPI {ASSUMED_OPEN_MPI_MAJOR}");
            ASSUMED_OPEN_MPI_MAJOR
        }
        (_, Some(Installed::OpenMpi { major })) => {
            wrong(&format!("Open MPI {major}"), "openmpi");
            0
        }
        (_, _) => 0,
    }
}

/// ssh (and so mpiexec) reads `~/.ssh/config` in the passwd home; say so when $HOME points elsewhere.
fn warn_if_ssh_reads_another_home(me: &Identity) {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    if canonical(&me.home) != canonical(&me.passwd_home) {
        warn!(
            home = %me.home.display(),
            passwd_home = %me.passwd_home.display(),
            "HOME differs from the passwd home, where ssh looks for ~/.ssh/config: pass `-F {}/.ssh/config` to ssh, or align them",
            me.home.display()
        );
    }
}
