//! Running the real `watertight` binary in tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub const BIN: &str = env!("CARGO_BIN_EXE_watertight");

/// A loopback port that was free a moment ago, for a process to bind later.
///
/// It comes from below the kernel's ephemeral range (32768 and up by default), which every
/// `bind(":0")` of the tests running alongside draws from: a port asked of the kernel here
/// and let go could be handed to one of them before the process under test binds it.
/// Callers in this process get distinct ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const RANGE: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Test binaries of one run start at different offsets (the process id), then step on.
    let start = std::process::id().wrapping_mul(7_919);
    for _ in 0..RANGE {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + start.wrapping_add(step.wrapping_mul(31)) % RANGE;
        let port = u16::try_from(port).expect("below 32768");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + RANGE);
}

/// A `watertight` process, killed when dropped.
pub struct Process {
    pub child: Child,
    pub stderr_path: PathBuf,
}

impl Process {
    /// Starts `watertight ARGS`, stderr to a file in `dir`, stdout to `dir/stdout`.
    pub fn start(dir: &Path, args: &[&str]) -> Process {
        let stderr_path = dir.join("stderr");
        let child = Command::new(BIN)
            .args(args)
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Process { child, stderr_path }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits for exit, up to `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `url`: (status, body text), or None if the connection failed.
pub async fn get(client: &TestClient, url: &str) -> Option<(u16, String)> {
    let response = client.get(url.parse().ok()?).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Polls the admin `/readyz` until it answers 200 or `limit` passes.
pub async fn wait_ready(admin: SocketAddr, limit: Duration) -> bool {
    let client = client();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some((200, _)) = get(&client, &format!("http://{admin}/readyz")).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// A config with one listener routing everything to one cluster of `endpoints`.
pub fn config_yaml(listen: SocketAddr, admin: SocketAddr, endpoints: &[SocketAddr]) -> String {
    let endpoints: String = endpoints
        .iter()
        .map(|e| format!("      - address: \"{e}\"\n"))
        .collect();
    format!(
        "admin:\n  address: \"{admin}\"\naccess_log: \"off\"\ndrain_timeout: 20s\nlisteners:\n  - name: main\n    address: \"{listen}\"\n    routes:\n      - name: all\n        cluster: app\nclusters:\n  - name: app\n    request_timeout: 0s\n    endpoints:\n{endpoints}"
    )
}
