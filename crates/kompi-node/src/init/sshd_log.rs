//! sshd's log, passed on to the container's log without the lines every TCP readiness probe (and
//! kompi's own port check) makes sshd write once a second: a connection closed before the ssh banner.

use std::io::{BufRead, BufReader, PipeReader, Write};

use kompi_render::ssh::OpenSshVersion;

/// Copies sshd's stderr to ours, line by line, until sshd closes it.
pub fn forward(reader: PipeReader, openssh: Option<OpenSshVersion>) {
    std::thread::spawn(move || {
        let mut probe = ProbeFilter::for_release(openssh);
        let mut stderr = std::io::stderr();
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if !probe.is_noise(&line) {
                let _ = writeln!(stderr, "{line}");
            }
        }
    });
}

/// Recognises a probe. Up to OpenSSH 9.7: `kex_exchange_identification: Connection closed by remote
/// host` and the `Connection closed by <address> port <port>` sshd writes after it; each connection has
/// its own sshd process, so the lines of simultaneous probes interleave: count them. From 9.8 on
/// (`sshd-session`) a probe leaves the second line alone.
#[derive(Default)]
struct ProbeFilter {
    pending: u32,
    bare_close_is_probe: bool,
}

impl ProbeFilter {
    fn for_release(openssh: Option<OpenSshVersion>) -> Self {
        ProbeFilter { pending: 0, bare_close_is_probe: openssh.is_some_and(OpenSshVersion::has_sshd_session) }
    }

    fn is_noise(&mut self, line: &str) -> bool {
        if line.ends_with("kex_exchange_identification: Connection closed by remote host") {
            self.pending += 1;
            return true;
        }
        if self.bare_close_is_probe && is_bare_close(line) && !line.ends_with("[preauth]") {
            return true;
        }
        if self.pending > 0 && is_bare_close(line) {
            self.pending -= 1;
            return true;
        }
        false
    }
}

fn is_bare_close(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("Connection closed by ") else { return false };
    let rest = rest.strip_suffix(" [preauth]").unwrap_or(rest);
    let mut words = rest.split(' ');
    matches!((words.next(), words.next(), words.next(), words.next()), (Some(_), Some("port"), Some(port), None) if port.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_lines_go_and_everything_else_stays() {
        let mut f = ProbeFilter::for_release(OpenSshVersion::parse("OpenSSH_9.2p1"));
        let lines = [
            "Server listening on 0.0.0.0 port 2022.",
            "kex_exchange_identification: Connection closed by remote host",
            "Connection closed by 10.244.0.1 port 57698",
            "Accepted publickey for root from 10.244.0.7 port 40112 ssh2: ED25519 SHA256:x",
            "Connection closed by 10.244.0.9 port 1234",
            "kex_exchange_identification: Connection closed by remote host",
            "Connection closed by 127.0.0.1 port 40458 [preauth]",
            "Connection closed by authenticating user root 10.0.0.1 port 22 [preauth]",
            "kex_exchange_identification: Connection closed by remote host",
            "kex_exchange_identification: Connection closed by remote host",
            "Connection closed by 10.244.0.1 port 1",
            "Connection closed by 10.244.0.1 port 2",
        ];
        let kept: Vec<&str> = lines.iter().copied().filter(|l| !f.is_noise(l)).collect();
        assert_eq!(
            kept,
            [
                "Server listening on 0.0.0.0 port 2022.",
                "Accepted publickey for root from 10.244.0.7 port 40112 ssh2: ED25519 SHA256:x",
                "Connection closed by 10.244.0.9 port 1234",
                "Connection closed by authenticating user root 10.0.0.1 port 22 [preauth]",
            ]
        );
    }

    #[test]
    fn openssh_10_probes_leave_one_bare_line() {
        // As sshd 10.0p2 (Debian trixie) logged three TCP connects that closed at once.
        let mut f = ProbeFilter::for_release(OpenSshVersion::parse("OpenSSH_10.0p2 Debian-7"));
        let lines = [
            "Server listening on 0.0.0.0 port 2999.",
            "Connection closed by 127.0.0.1 port 47732",
            "Connection closed by 10.244.0.1 port 57698",
            "Accepted publickey for mpi from 10.244.0.7 port 40112 ssh2: ED25519 SHA256:x",
            "Connection closed by 10.244.0.9 port 1234 [preauth]",
            "Connection closed by authenticating user root 10.0.0.1 port 22 [preauth]",
        ];
        let kept: Vec<&str> = lines.iter().copied().filter(|l| !f.is_noise(l)).collect();
        assert_eq!(kept, [lines[0], lines[3], lines[4], lines[5]]);
    }
}
