//! sshd's log, passed on to the container's log without the two lines every TCP readiness probe (and
//! kompi's own port check) makes sshd write once a second: a connection closed before the ssh banner.

use std::io::{BufRead, BufReader, PipeReader, Write};

/// Copies sshd's stderr to ours, line by line, until sshd closes it.
pub fn forward(reader: PipeReader) {
    std::thread::spawn(move || {
        let mut probe = ProbeFilter::default();
        let mut stderr = std::io::stderr();
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if !probe.is_noise(&line) {
                let _ = writeln!(stderr, "{line}");
            }
        }
    });
}

/// Recognises a probe: `kex_exchange_identification: Connection closed by remote host` and the
/// `Connection closed by <address> port <port>` sshd writes after it. Each connection has its own sshd
/// process, so the lines of simultaneous probes interleave: count them.
#[derive(Default)]
struct ProbeFilter {
    pending: u32,
}

impl ProbeFilter {
    fn is_noise(&mut self, line: &str) -> bool {
        if line.ends_with("kex_exchange_identification: Connection closed by remote host") {
            self.pending += 1;
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
        let mut f = ProbeFilter::default();
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
}
