//! The operator's HTTP endpoints, for the kubelet's probes and Prometheus: `/healthz` (the process
//! answers), `/readyz` (its watches have listed everything) and `/metrics`. Three GET routes need no
//! web framework: one request per connection, answered and closed.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use crate::metrics::CONTENT_TYPE;

/// A request larger than this (headers included) is refused: probes and scrapers send a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// A client that has not sent its request by then is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoints report.
pub trait Endpoints: Send + Sync + 'static {
    fn ready(&self) -> bool;
    fn metrics(&self) -> String;
}

/// Answers connections until the listener fails.
pub async fn serve(listener: TcpListener, endpoints: Arc<dyn Endpoints>) {
    while let Ok((stream, _)) = listener.accept().await {
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &*endpoints).await {
                debug!(error = %e, "an HTTP request was not answered");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, endpoints: &dyn Endpoints) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let head_read = tokio::time::timeout(READ_TIMEOUT, async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await?;
            if n == 0 || request.len() + n > MAX_REQUEST {
                return Ok(false);
            }
            request.extend_from_slice(&chunk[..n]);
        }
        Ok::<bool, std::io::Error>(true)
    })
    .await;
    let response = match head_read {
        Ok(Ok(true)) => route(&request, endpoints),
        Ok(Ok(false)) => Response::text(400, "Bad Request", "bad request\n"),
        Ok(Err(e)) => return Err(e),
        Err(_) => Response::text(408, "Request Timeout", "request timeout\n"),
    };
    stream.write_all(&response.bytes()).await?;
    stream.shutdown().await
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
    head_only: bool,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: &str) -> Response {
        Response { status, reason, content_type: "text/plain; charset=utf-8", body: body.into(), head_only: false }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

fn route(request: &[u8], endpoints: &dyn Endpoints) -> Response {
    let line = request.split(|b| *b == b'\r').next().map(String::from_utf8_lossy).unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Response::text(400, "Bad Request", "bad request\n");
    }
    if method != "GET" && method != "HEAD" {
        return Response::text(405, "Method Not Allowed", "only GET and HEAD\n");
    }
    let path = target.split('?').next().unwrap_or_default();
    let mut response = match path {
        "/healthz" | "/livez" => Response::text(200, "OK", "ok\n"),
        "/readyz" if endpoints.ready() => Response::text(200, "OK", "ok\n"),
        "/readyz" => Response::text(503, "Service Unavailable", "the watches have not listed everything yet\n"),
        "/metrics" => Response { content_type: CONTENT_TYPE, ..Response::text(200, "OK", &endpoints.metrics()) },
        _ => Response::text(404, "Not Found", "not found: try /metrics, /healthz or /readyz\n"),
    };
    response.head_only = method == "HEAD";
    response
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct Fake {
        ready: AtomicBool,
    }

    impl Endpoints for Fake {
        fn ready(&self) -> bool {
            self.ready.load(Ordering::Relaxed)
        }
        fn metrics(&self) -> String {
            "# TYPE x counter\nx 1\n".into()
        }
    }

    async fn get(port: u16, request: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn probes_and_metrics_answer_over_real_tcp() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = Arc::new(Fake { ready: AtomicBool::new(false) });
        tokio::spawn(serve(listener, fake.clone()));

        let healthz = get(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(healthz.starts_with("HTTP/1.1 200 OK\r\n") && healthz.ends_with("\r\n\r\nok\n"), "{healthz}");
        let unready = get(port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(unready.starts_with("HTTP/1.1 503 "), "{unready}");
        fake.ready.store(true, Ordering::Relaxed);
        let ready = get(port, "GET /readyz?verbose HTTP/1.1\r\n\r\n").await;
        assert!(ready.starts_with("HTTP/1.1 200 "), "{ready}");

        let metrics = get(port, "GET /metrics HTTP/1.1\r\nAccept: text/plain\r\n\r\n").await;
        assert!(metrics.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{metrics}");
        assert!(metrics.contains("Content-Length: 21\r\n") && metrics.ends_with("\r\n\r\n# TYPE x counter\nx 1\n"), "{metrics}");
        let head = get(port, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 ") && head.ends_with("\r\n\r\n"), "{head}");

        assert!(get(port, "GET /nope HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 404 "));
        assert!(get(port, "POST /metrics HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 405 "));
        assert!(get(port, "nonsense\r\n\r\n").await.starts_with("HTTP/1.1 400 "));
    }
}
