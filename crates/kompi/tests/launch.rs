//! `kompi launch --signals-from-stdin` as `kompi run` starts it in the master: the real binary with a real
//! pipe for stdin, held open by the client the whole time. (kompi-node's own tests drive the same code as a
//! library; this one needs the binary, which Cargo builds only for this crate's tests.)

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn launch(script: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kompi"))
        .args(["launch", "--signals-from-stdin", "--", "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The exit status, once the process has ended within `patience`.
fn ends_within(child: &mut Child, patience: Duration) -> Option<i32> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "kompi launch did not end within {patience:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_commands_status_comes_back_while_the_client_still_holds_stdin() {
    let mut launched = launch("echo out; exit 3");
    let _held = launched.stdin.take();
    assert_eq!(ends_within(&mut launched, Duration::from_secs(20)), Some(3));
    let mut out = String::new();
    std::io::Read::read_to_string(launched.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(out, "out\n");
}

#[test]
fn ctrl_c_from_the_client_interrupts_and_its_going_away_terminates() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let mut launched = launch(&format!("trap 'exit 7' INT; touch {}; while :; do sleep 0.1; done", ready.display()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    launched.stdin.as_mut().unwrap().write_all(&[0x03]).unwrap();
    assert_eq!(ends_within(&mut launched, Duration::from_secs(20)), Some(7));

    let mut launched = launch("while :; do sleep 0.1; done");
    drop(launched.stdin.take());
    assert_eq!(ends_within(&mut launched, Duration::from_secs(20)), Some(128 + 15));
}
