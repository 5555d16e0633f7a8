//! Processes by pid and start time, so a reused pid is never mistaken for one of ours.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    /// Field 22 of /proc/<pid>/stat: clock ticks after boot.
    pub start_time: u64,
}

impl ProcessId {
    pub fn of(pid: i32) -> Option<Self> {
        Some(ProcessId { pid, start_time: start_time(pid)? })
    }

    /// Running (not a zombie) and still the same process.
    pub fn alive(self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }

    /// The inode of its network namespace.
    pub fn network_namespace(self) -> Option<u64> {
        namespace_inode(Path::new(&format!("/proc/{}/ns/net", self.pid)))
    }

    /// SIGTERM, then SIGKILL after `grace`; returns once it is gone.
    pub fn stop(self, grace: Duration) {
        if !self.alive() {
            return;
        }
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.alive() {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            while self.alive() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// None for a process that does not exist or is a zombie.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The namespace inode a /proc/<pid>/ns/* link or a bind-mounted namespace file refers to.
pub fn namespace_inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Whether a network namespace is the one kompi itself or PID 1 runs in: the host's, whose
/// processes a local cluster's `down` must never touch.
pub fn is_host_network_namespace(inode: u64) -> bool {
    ["/proc/self/ns/net", "/proc/1/ns/net"].iter().any(|p| namespace_inode(Path::new(p)) == Some(inode))
}

/// Every process whose network namespace is the given one.
pub fn in_network_namespace(inode: u64) -> Vec<ProcessId> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| namespace_inode(Path::new(&format!("/proc/{pid}/ns/net"))) == Some(inode))
        .filter_map(ProcessId::of)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_different_start_time_is_not() {
        let me = ProcessId::of(std::process::id() as i32).unwrap();
        assert!(me.alive());
        assert!(!ProcessId { start_time: me.start_time + 1, ..me }.alive());
    }

    #[test]
    fn stop_ends_a_child() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let id = ProcessId::of(child.id() as i32).unwrap();
        // Reap in the background so the stopped child does not linger as a zombie of this test.
        let waiter = std::thread::spawn(move || child.wait());
        id.stop(Duration::from_secs(2));
        assert!(!id.alive());
        waiter.join().unwrap().unwrap();
    }
}
