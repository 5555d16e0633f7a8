//! The sshd_config and ssh client config that `kompi init` writes: public keys only, StrictModes on, every
//! file in a private directory of the running user.

/// Paths of the files `kompi init` keeps for sshd, all inside one 0700 directory of the running user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshdFiles {
    pub host_key: String,
    pub authorized_keys: String,
    pub pid_file: String,
}

pub struct SshdConfig<'a> {
    pub port: u16,
    pub files: &'a SshdFiles,
    pub running_as_root: bool,
}

pub fn sshd_config(c: &SshdConfig) -> String {
    let root = if c.running_as_root { "prohibit-password" } else { "no" };
    format!(
        "# written by kompi init; sshd runs with -f pointing here\n\
         Port {port}\n\
         HostKey {host_key}\n\
         PidFile {pid}\n\
         AuthorizedKeysFile {authorized}\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitEmptyPasswords no\n\
         PermitRootLogin {root}\n\
         StrictModes yes\n\
         UsePAM no\n\
         PermitUserEnvironment no\n\
         AllowAgentForwarding no\n\
         X11Forwarding no\n\
         PrintMotd no\n\
         UseDNS no\n\
         # mpiexec may open many connections at once\n\
         MaxStartups 100:30:300\n\
         Subsystem sftp internal-sftp\n",
        port = c.port,
        host_key = c.files.host_key,
        pid = c.files.pid_file,
        authorized = c.files.authorized_keys,
    )
}

/// The first line of the client config kompi writes; a file that starts otherwise is the user's and left alone.
pub const CLIENT_CONFIG_MARKER: &str = "# kompi:";

/// `~/.ssh/config` for the cluster's hosts only, so ssh to anything else (git, say) is untouched.
pub fn client_config(cluster: &str, port: u16, identity: &str) -> String {
    format!(
        "{CLIENT_CONFIG_MARKER} ssh settings for MPI cluster {cluster}, written by kompi init (remove this line to keep your own file)\n\
         Host {cluster}-master {cluster}-master.* {cluster}-worker-*\n\
         \x20   Port {port}\n\
         \x20   IdentityFile {identity}\n\
         \x20   IdentitiesOnly yes\n\
         \x20   BatchMode yes\n\
         \x20   StrictHostKeyChecking no\n\
         \x20   UserKnownHostsFile /dev/null\n\
         \x20   LogLevel ERROR\n\
         \x20   ConnectTimeout 10\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> SshdFiles {
        SshdFiles { host_key: "/h/.kompi/n/host".into(), authorized_keys: "/h/.kompi/authorized_keys".into(), pid_file: "/h/.kompi/n/pid".into() }
    }

    #[test]
    fn public_keys_only() {
        let text = sshd_config(&SshdConfig { port: 2022, files: &files(), running_as_root: true });
        for line in ["Port 2022", "PasswordAuthentication no", "PermitRootLogin prohibit-password", "StrictModes yes", "UsePAM no",
            "AuthorizedKeysFile /h/.kompi/authorized_keys", "PidFile /h/.kompi/n/pid", "HostKey /h/.kompi/n/host"] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.to_lowercase().contains("dsa"));
        let user = sshd_config(&SshdConfig { port: 2222, files: &files(), running_as_root: false });
        assert!(user.contains("PermitRootLogin no\n"));
    }

    #[test]
    fn client_config_is_scoped_to_the_cluster() {
        let text = client_config("mpi", 2022, "~/.kompi/id_cluster");
        assert!(text.starts_with(CLIENT_CONFIG_MARKER));
        assert!(text.contains("Host mpi-master mpi-master.* mpi-worker-*\n    Port 2022\n"));
        assert!(!text.contains("Host *\n"));
    }
}
