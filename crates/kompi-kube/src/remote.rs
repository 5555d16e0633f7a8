//! Commands in a pod through the API's exec subresource (websockets): captured, or streamed to this
//! terminal with stdout and stderr kept apart.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use tokio::io::AsyncReadExt;

use crate::client::Connection;
use crate::error::KubeError;

pub struct Captured {
    pub code: i32,
    pub stdout: String,
}

async fn start(conn: &Connection, pod: &str, container: &str, argv: &[String], params: AttachParams) -> Result<AttachedProcess, KubeError> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    api.exec(pod, argv.to_vec(), &params.container(container))
        .await
        .map_err(|e| conn.error(&format!("running {} in {pod}/{container}", argv.first().map(String::as_str).unwrap_or("")), e))
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

/// Runs a command with its output streamed here (and this terminal's stdin, if asked); returns its
/// exit status.
pub async fn stream(
    conn: &Connection,
    pod: &str,
    container: &str,
    argv: &[String],
    stdin: bool,
    tty: bool,
) -> Result<i32, KubeError> {
    let params = AttachParams::default().stdout(true).stderr(!tty).stdin(stdin).tty(tty);
    let mut process = start(conn, pod, container, argv, params).await?;
    let status = process.take_status().expect("status is taken once");
    let mut out = process.stdout().expect("stdout requested");
    let copy_out = tokio::spawn(async move { tokio::io::copy(&mut out, &mut tokio::io::stdout()).await });
    let copy_err = process.stderr().map(|mut err| tokio::spawn(async move { tokio::io::copy(&mut err, &mut tokio::io::stderr()).await }));
    if stdin && let Some(mut input) = process.stdin() {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut input).await;
        });
    }
    let status = status.await;
    let _ = copy_out.await;
    if let Some(e) = copy_err {
        let _ = e.await;
    }
    exit_code(status, pod, argv)
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
