//! The JSON-lines access log: one line per exchange, written off the request path.
//!
//! Request handling only formats the line and hands it to a bounded channel; a writer task
//! does the I/O and flushes whenever it catches up. If the writer falls behind by more than the
//! channel holds, lines are dropped and counted rather than slowing requests down.

use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use watertight_telemetry::metrics::Counter;

/// Lines buffered between requests and the writer before dropping.
const QUEUE: usize = 16 * 1024;

/// One exchange, as logged.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Entry {
    /// When the request arrived (RFC 3339, UTC, milliseconds).
    pub timestamp: String,
    /// Listener name.
    pub listener: Arc<str>,
    /// Client address.
    pub client: String,
    /// Request method.
    pub method: String,
    /// Host the request was for.
    pub authority: String,
    /// Request path, without the query string.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub protocol: &'static str,
    /// Status sent to the client.
    pub status: u16,
    /// From request arrival to the last response byte, in milliseconds.
    pub duration_ms: f64,
    /// The endpoint that served the request, if one was tried.
    pub upstream: Option<Arc<str>>,
    /// Request body bytes received from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// The route taken, if any matched.
    pub route: Option<Arc<str>>,
    /// The cluster of that route.
    pub cluster: Option<Arc<str>>,
    /// Why the proxy answered itself or the exchange broke, if it did.
    pub reason: Option<&'static str>,
    /// The request's trace id, when tracing is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// This proxy's server span id in that trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
}

/// Formats a wall-clock time as the log's timestamp.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// Where access log lines go.
#[derive(Debug)]
pub struct AccessLog {
    target: String,
    sender: Option<mpsc::Sender<String>>,
    dropped: Counter,
}

impl AccessLog {
    /// Opens the log for a config's `access_log` value: `stdout`, `stderr`, `off` or a file
    /// path (appended to, created if missing). Lines dropped are counted in `dropped`. Must
    /// be called inside a tokio runtime.
    pub async fn open(target: &str, dropped: Counter) -> io::Result<Arc<AccessLog>> {
        let writer: Box<dyn AsyncWrite + Send + Unpin> = match target {
            "off" => {
                return Ok(Arc::new(AccessLog {
                    target: target.to_owned(),
                    sender: None,
                    dropped,
                }));
            }
            "stdout" => Box::new(tokio::io::stdout()),
            "stderr" => Box::new(tokio::io::stderr()),
            path => Box::new(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("access log {path}: {e}")))?,
            ),
        };
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_lines(receiver, BufWriter::new(writer)));
        Ok(Arc::new(AccessLog {
            target: target.to_owned(),
            sender: Some(sender),
            dropped,
        }))
    }

    /// The config value this log was opened for.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Queues one entry; never waits.
    pub fn record(&self, entry: &Entry) {
        let Some(sender) = &self.sender else { return };
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        line.push('\n');
        if sender.try_send(line).is_err() {
            self.dropped.inc();
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

async fn write_lines(
    mut receiver: mpsc::Receiver<String>,
    mut out: BufWriter<Box<dyn AsyncWrite + Send + Unpin>>,
) {
    while let Some(line) = receiver.recv().await {
        if out.write_all(line.as_bytes()).await.is_err() {
            break;
        }
        // Write everything already queued, then flush once.
        while let Ok(line) = receiver.try_recv() {
            if out.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
        if out.flush().await.is_err() {
            break;
        }
    }
    let _ = out.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_land_in_the_file_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(path.to_str().unwrap(), Counter::default())
            .await
            .unwrap();
        for status in [200, 503] {
            log.record(&Entry {
                method: "GET".into(),
                path: "/x".into(),
                status,
                ..Entry::default()
            });
        }
        let mut text = String::new();
        for _ in 0..200 {
            text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let statuses: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["status"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(statuses, vec![200, 503]);
    }

    #[tokio::test]
    async fn off_writes_nothing() {
        let log = AccessLog::open("off", Counter::default()).await.unwrap();
        assert!(!log.enabled());
        log.record(&Entry::default());
        assert_eq!(log.dropped(), 0);
    }
}
