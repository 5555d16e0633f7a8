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
    /// The one account that may log in: the MPI user sshd runs as.
    pub user: &'a str,
    /// The sshd that reads the config (`None`: not known, only options every supported release has).
    pub openssh: Option<OpenSshVersion>,
}

/// An OpenSSH release, as `sshd -V` names it: `OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OpenSshVersion {
    pub major: u32,
    pub minor: u32,
}

impl OpenSshVersion {
    /// The first `OpenSSH_X.Y` in `text` (sshd prints it with `-V`, or in its usage when it lacks `-V`).
    pub fn parse(text: &str) -> Option<Self> {
        let rest = &text[text.find("OpenSSH_")? + "OpenSSH_".len()..];
        let (major, rest) = rest.split_once('.')?;
        let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some(OpenSshVersion { major: major.parse().ok()?, minor: minor.parse().ok()? })
    }

    /// 9.8 split the session off into `sshd-session` and brought per-source penalties, on by default.
    pub fn has_sshd_session(self) -> bool {
        self >= OpenSshVersion { major: 9, minor: 8 }
    }
}

impl std::fmt::Display for OpenSshVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenSSH {}.{}", self.major, self.minor)
    }
}

pub fn sshd_config(c: &SshdConfig) -> String {
    let root = if c.running_as_root { "prohibit-password" } else { "no" };
    let mut text = format!(
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
         AllowUsers {user}\n\
         StrictModes yes\n\
         UsePAM no\n\
         PermitUserEnvironment no\n\
         # no TCP, socket, agent or X11 tunnels into the pod network through the ssh gateway\n\
         DisableForwarding yes\n\
         PermitTunnel no\n\
         PrintMotd no\n\
         UseDNS no\n\
         # mpiexec may open many connections at once\n\
         MaxStartups 100:30:300\n\
         Subsystem sftp internal-sftp\n",
        port = c.port,
        host_key = c.files.host_key,
        pid = c.files.pid_file,
        authorized = c.files.authorized_keys,
        user = c.user,
    );
    if c.openssh.is_some_and(OpenSshVersion::has_sshd_session) {
        // Readiness probes (the kubelet's, kompi's worker checks) connect and close without
        // authenticating; each would add a second of penalty to its source, and a few dozen lock the
        // node or the master out for up to 10 minutes. Failed authentications stay penalised.
        text.push_str("PerSourcePenalties noauth:0\n");
    }
    text
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
        let text = sshd_config(&SshdConfig { port: 2022, files: &files(), running_as_root: true, user: "root", openssh: None });
        for line in ["Port 2022", "PasswordAuthentication no", "PermitRootLogin prohibit-password", "StrictModes yes", "UsePAM no",
            "AuthorizedKeysFile /h/.kompi/authorized_keys", "PidFile /h/.kompi/n/pid", "HostKey /h/.kompi/n/host",
            "AllowUsers root", "DisableForwarding yes", "PermitTunnel no"] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.to_lowercase().contains("dsa"));
        let user = sshd_config(&SshdConfig { port: 2222, files: &files(), running_as_root: false, user: "mpi", openssh: None });
        assert!(user.contains("PermitRootLogin no\n") && user.contains("AllowUsers mpi\n"));
    }

    #[test]
    fn versions_as_sshd_prints_them() {
        let v = |major, minor| Some(OpenSshVersion { major, minor });
        assert_eq!(OpenSshVersion::parse("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024"), v(9, 2));
        assert_eq!(OpenSshVersion::parse("OpenSSH_9.2, OpenSSL 3.0.22 25 Aug 2026"), v(9, 2));
        assert_eq!(OpenSshVersion::parse("OpenSSH_10.0p2 Debian-7+deb13u4, OpenSSL 3.5.9"), v(10, 0));
        assert_eq!(OpenSshVersion::parse("unknown option -- V\nOpenSSH_8.9p1 Ubuntu-3ubuntu0.10, OpenSSL 3.0.2\nusage: sshd"), v(8, 9));
        assert_eq!(OpenSshVersion::parse("sshd: command not found"), None);
        assert!(v(9, 8).unwrap().has_sshd_session() && v(10, 0).unwrap().has_sshd_session());
        assert!(!v(9, 2).unwrap().has_sshd_session() && !v(8, 9).unwrap().has_sshd_session());
    }

    #[test]
    fn probes_do_not_lock_out_their_source_where_sshd_penalises() {
        let config = |openssh| sshd_config(&SshdConfig { port: 2022, files: &files(), running_as_root: true, user: "root", openssh });
        let penalties = |text: &str| text.lines().filter(|l| l.starts_with("PerSourcePenalties")).map(str::to_string).collect::<Vec<_>>();
        assert_eq!(penalties(&config(OpenSshVersion::parse("OpenSSH_10.0p2"))), ["PerSourcePenalties noauth:0"]);
        // Older sshd refuses to start on an option it does not know.
        assert!(penalties(&config(OpenSshVersion::parse("OpenSSH_9.2p1"))).is_empty());
        assert!(penalties(&config(None)).is_empty());
    }

    #[test]
    fn client_config_is_scoped_to_the_cluster() {
        let text = client_config("mpi", 2022, "~/.kompi/id_cluster");
        assert!(text.starts_with(CLIENT_CONFIG_MARKER));
        assert!(text.contains("Host mpi-master mpi-master.* mpi-worker-*\n    Port 2022\n"));
        assert!(!text.contains("Host *\n"));
    }
}
