//! Everything that stops `kompi init` before sshd starts: each message names the file, directory, port or
//! binary at fault and says what to do.

use std::io;
use std::path::PathBuf;

use kompi_spec::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0}")]
    Usage(String),

    #[error(
        "uid {uid} has no entry in /etc/passwd, so sshd cannot log it in: add the user to the image \
         (useradd -u {uid} -m NAME) or set the pod's runAsUser to a user the image has"
    )]
    UnknownUser { uid: u32 },

    #[error("home directory {} does not exist: set HOME to an existing directory that uid {uid} can write", home.display())]
    HomeMissing { home: PathBuf, uid: u32 },

    #[error(
        "home directory {} is not writable by uid {uid}: give the user a home in the image (useradd -m) or set HOME \
         to a directory it can write",
        home.display()
    )]
    HomeNotWritable { home: PathBuf, uid: u32 },

    #[error("cannot read {}: {reason}; {fix}", path.display())]
    KeyUnreadable { path: PathBuf, reason: String, fix: String },

    #[error("the cluster key in {} is unusable: {problem}", dir.display())]
    KeyRejected { dir: PathBuf, problem: String },

    #[error("{} is unusable: {problem}", path.display())]
    AuthorizedKeysRejected { path: PathBuf, problem: String },

    #[error("cannot {action} {}: {source}", path.display())]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{} belongs to uid {owner}, not to the running uid {uid}: remove it (kompi init recreates it)", path.display())]
    ForeignOwner { path: PathBuf, owner: u32, uid: u32 },

    #[error(
        "sshd would refuse the cluster key: directory {} {problem} (StrictModes wants every directory above {} \
         owned by root or uid {uid} and not writable by group or others): {fix}",
        dir.display(),
        authorized_keys.display()
    )]
    StrictModes { dir: PathBuf, problem: String, authorized_keys: PathBuf, uid: u32, fix: String },

    #[error("cannot make the ephemeral host key: {0}")]
    HostKey(#[source] ssh_key::Error),

    #[error("sshd not found at {}: install openssh-server in the image (or pass --sshd PATH)", path.display())]
    SshdMissing { path: PathBuf },

    #[error("no sshd in this image (looked at {looked}): install openssh-server in the image, or pass --sshd PATH")]
    SshdNotFound { looked: String },

    #[error("--sshd {} is not an absolute path, which sshd needs to re-execute itself: pass one such as /usr/sbin/sshd", path.display())]
    SshdRelative { path: PathBuf },

    #[error("port {port} is already in use: stop whatever listens there or choose another ssh port (values key ssh.port)")]
    PortInUse { port: u16 },

    #[error("cannot listen on port {port} ({source}): ports below 1024 need root; use another ssh port such as 2022")]
    PortUnavailable {
        port: u16,
        #[source]
        source: io::Error,
    },

    #[error("sshd rejects the generated config {}: {detail}", config.display())]
    SshdConfigRejected { config: PathBuf, detail: String },

    #[error("cannot run {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] io::Error),
}

impl InitError {
    pub fn file(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        InitError::File { action, path: path.into(), source }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            InitError::Usage(_) => ErrorKind::InvalidInput,
            _ => ErrorKind::Failed,
        }
    }
}
