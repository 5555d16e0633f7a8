//! `kompi launch` with real processes: the command's status comes back, the client's Ctrl-C (an ETX byte
//! on the control channel) reaches it as SIGINT, and the client going away (the end of the channel) ends
//! its whole process group with SIGTERM. One test function on purpose: the launcher reaps with
//! waitpid(-1), which would take the children of other tests' processes in the same test process.

use std::path::Path;
use std::time::{Duration, Instant};

use kompi_node::launch::{INTERRUPT, launch};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

async fn appears(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_clients_signals_reach_the_command_and_its_status_comes_back() {
    let none: Option<tokio::io::Empty> = None;
    let exit = launch(&sh("exit 3"), none).await.unwrap();
    assert_eq!(exit.shell_status(), 3);
    let none: Option<tokio::io::Empty> = None;
    let missing = launch(&["/nonexistent/mpiexec".to_string()], none).await.unwrap_err();
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);

    let dir = tempfile::tempdir().unwrap();
    // Ctrl-C: the trap turns SIGINT into status 7, and other bytes on the channel are ignored.
    let ready = dir.path().join("ready");
    let script = format!("trap 'exit 7' INT; echo > {}; while :; do sleep 0.1; done", ready.display());
    let (mut client, control) = tokio::io::duplex(64);
    let running = tokio::spawn(async move { launch(&sh(&script), Some(control)).await });
    appears(&ready).await;
    client.write_all(b"x\n").await.unwrap();
    client.write_all(&[INTERRUPT]).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), running).await.expect("Ctrl-C ended the command").unwrap().unwrap();
    assert_eq!(exit.shell_status(), 7);

    // The client goes away: SIGTERM reaches the shell and the sleep it started in the background.
    let pid_file = dir.path().join("sleep.pid");
    let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let (client, control) = tokio::io::duplex(64);
    let running = tokio::spawn(async move { launch(&sh(&script), Some(control)).await });
    let sleep = Pid::from_raw(appears(&pid_file).await.trim().parse().unwrap());
    drop(client);
    let exit = tokio::time::timeout(Duration::from_secs(20), running).await.expect("the end of input ended the command").unwrap().unwrap();
    assert_eq!(exit.shell_status(), 128 + Signal::SIGTERM as i32);
    let deadline = Instant::now() + Duration::from_secs(20);
    while kill(sleep, None).is_ok() && std::fs::read_to_string(format!("/proc/{sleep}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(Instant::now() < deadline, "the background sleep (pid {sleep}) outlived its group's SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
