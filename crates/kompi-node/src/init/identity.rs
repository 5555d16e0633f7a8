//! Who `kompi init` runs as: root, or any uid the pod's securityContext picks.

use std::path::PathBuf;

use nix::unistd::{Uid, User};

use super::error::InitError;

#[derive(Clone, Debug)]
pub struct Identity {
    pub uid: Uid,
    /// The passwd name: the only account sshd lets in.
    pub user_name: String,
    /// Where kompi keeps its files: $HOME, else the passwd home.
    pub home: PathBuf,
    /// The home sshd and ssh know (from /etc/passwd); ssh reads `~/.ssh/config` there, not in $HOME.
    pub passwd_home: PathBuf,
    pub hostname: String,
}

impl Identity {
    pub fn current() -> Result<Self, InitError> {
        let uid = Uid::current();
        let user = User::from_uid(uid)
            .map_err(|e| InitError::file("look up the passwd entry of", format!("uid {uid}"), e.into()))?
            .ok_or(InitError::UnknownUser { uid: uid.as_raw() })?;
        let home = match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home),
            _ => user.dir.clone(),
        };
        // sshd wants absolute paths in its config.
        let home = std::path::absolute(&home).unwrap_or(home);
        let hostname = nix::unistd::gethostname()
            .map_err(|e| InitError::file("read", "the hostname", e.into()))?
            .to_string_lossy()
            .into_owned();
        Ok(Identity { uid, user_name: user.name, home, passwd_home: user.dir, hostname })
    }

    pub fn is_root(&self) -> bool {
        self.uid.is_root()
    }
}
