//! Commands in a pod through the API's exec subresource (websockets), their output streamed to the
//! writers the caller passes (the CLI passes its terminal's), with stdout and stderr kept apart.

use std::future::Future;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client::Connection;
use crate::error::KubeError;

/// Where a remote command's output goes (the CLI passes its terminal's).
pub type Output = Box<dyn AsyncWrite + Unpin + Send>;

/// Where a remote command's output goes, and where its input comes from.
pub struct Streams {
    pub stdout: Output,
    /// `None` with a terminal (`tty`), which merges stderr into stdout.
    pub stderr: Option<Output>,
    /// Copied to the command as it comes (`kompi exec -i`); `None`: stdin is not attached.
    pub stdin: Option<Box<dyn AsyncRead + Unpin + Send>>,
}

/// The remote command's stdin, held by the caller to send it bytes while the command runs.
pub type Control = Box<dyn AsyncWrite + Unpin + Send>;

async fn start(conn: &Connection, pod: &str, container: &str, argv: &[String], params: AttachParams) -> Result<AttachedProcess, KubeError> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    api.exec(pod, argv.to_vec(), &params.container(container))
        .await
        .map_err(|e| conn.error(&format!("running {} in {pod}/{container}", argv.first().map(String::as_str).unwrap_or("")), e))
}

pub struct Captured {
    pub code: i32,
    pub stdout: String,
}

/// Runs a command and collects its output.
pub async fn capture(conn: &Connection, pod: &str, container: &str, argv: &[String]) -> Result<Captured, KubeError> {
    let mut process = start(conn, pod, container, argv, AttachParams::default().stdout(true).stderr(true).stdin(false)).await?;
    let status = process.take_status().expect("status is taken once");
    let (mut out, mut err) = (process.stdout().expect("stdout requested"), process.stderr().expect("stderr requested"));
    let (mut stdout, mut ignored) = (String::new(), String::new());
    let _ = tokio::join!(out.read_to_string(&mut stdout), err.read_to_string(&mut ignored));
    let code = exit_code(status.await, pod, argv)?;
    Ok(Captured { code, stdout })
}

/// Runs a command with its output streamed to `streams`; returns its exit status.
pub async fn stream(conn: &Connection, pod: &str, container: &str, argv: &[String], streams: Streams) -> Result<i32, KubeError> {
    let Streams { stdout, stderr, stdin } = streams;
    let (finished, input) = attach(conn, pod, container, argv, stdout, stderr, stdin.is_some()).await?;
    if let (Some(mut reader), Some(mut input)) = (stdin, input) {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut reader, &mut input).await;
        });
    }
    finished.await
}

/// Starts a command with its output streamed to `stdout` and `stderr` and hands back its stdin, through
/// which the caller talks to it while it runs. The future ends with the command's exit status.
pub async fn start_controlled(
    conn: &Connection,
    pod: &str,
    container: &str,
    argv: &[String],
    stdout: Output,
    stderr: Output,
) -> Result<(impl Future<Output = Result<i32, KubeError>> + use<>, Control), KubeError> {
    let (finished, input) = attach(conn, pod, container, argv, stdout, Some(stderr), true).await?;
    Ok((finished, Box::new(input.expect("stdin requested")) as Control))
}

async fn attach(
    conn: &Connection,
    pod: &str,
    container: &str,
    argv: &[String],
    mut stdout: Output,
    stderr: Option<Output>,
    stdin: bool,
) -> Result<(impl Future<Output = Result<i32, KubeError>> + use<>, Option<impl AsyncWrite + Unpin + Send + use<>>), KubeError> {
    let tty = stderr.is_none();
    let params = AttachParams::default().stdout(true).stderr(!tty).stdin(stdin).tty(tty);
    let mut process = start(conn, pod, container, argv, params).await?;
    let status = process.take_status().expect("status is taken once");
    let mut out = process.stdout().expect("stdout requested");
    let copy_out = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut out, &mut stdout).await;
        let _ = stdout.flush().await;
    });
    let copy_err = match (process.stderr(), stderr) {
        (Some(mut err), Some(mut to)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut err, &mut to).await;
            let _ = to.flush().await;
        })),
        _ => None,
    };
    let input = process.stdin();
    let (pod, argv) = (pod.to_string(), argv.to_vec());
    let finished = async move {
        let status = status.await;
        let _ = copy_out.await;
        if let Some(copy) = copy_err {
            let _ = copy.await;
        }
        drop(process);
        exit_code(status, &pod, &argv)
    };
    Ok((finished, input))
}

/// The exit status the API reports: Success, or Failure with an ExitCode cause.
fn exit_code(status: Option<Status>, pod: &str, argv: &[String]) -> Result<i32, KubeError> {
    let Some(status) = status else {
        return Err(KubeError::Failed(format!("the connection to {pod} ended before the command reported its exit status")));
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let exit_cause = status.details.as_ref().and_then(|d| d.causes.as_ref()).and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")));
    if let Some(code) = exit_cause.and_then(|c| c.message.as_ref()?.parse().ok()) {
        return Ok(code);
    }
    let program = argv.first().cloned().unwrap_or_default();
    let message = status.message.unwrap_or_default();
    if message.contains("executable file not found") || message.contains("no such file or directory") {
        return Err(KubeError::CommandNotFound { program, pod: pod.to_string() });
    }
    Err(KubeError::Failed(format!("running {program} in {pod}: {message}")))
}
