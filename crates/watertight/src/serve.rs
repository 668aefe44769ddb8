//! Running a proxy process: start, admin API, reload watcher, and drain on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use watertight_admin::{Admin, Handler};
use watertight_config::Loaded;
use watertight_proxy::{Proxy, reload};

/// How often the config file is checked for changes.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// Runs `future` on a runtime with one event loop per CPU the process may use:
/// `TOKIO_WORKER_THREADS` if set, else the standard library's count, which honours the
/// container's CPU quota (cgroup v1 and v2) and the affinity mask. With one CPU the calling
/// thread runs everything (tokio's current-thread scheduler, as nginx's single worker does):
/// no hand-off between threads, and about a tenth more requests per CPU-second than a
/// multi-threaded runtime with one worker.
pub fn block_on(future: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    let workers = worker_threads();
    tracing::debug!(workers, "async runtime");
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => {
            eprintln!("watertight: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The worker count: `TOKIO_WORKER_THREADS` (a positive number), else the CPUs available to
/// this process under its cgroup quota and affinity.
pub fn worker_threads() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Resolves on SIGTERM or SIGINT (never, if the handlers cannot be installed).
pub async fn terminated() {
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut terminate), Ok(mut interrupt)) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// Serves `loaded` until SIGTERM or SIGINT, then drains and returns.
pub async fn run(
    loaded: Loaded,
    watch: Option<PathBuf>,
    demo: Option<(&str, Handler)>,
) -> ExitCode {
    let admin_address = loaded.config.admin.address.clone();
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("watertight: cannot install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let proxy = match Proxy::start(loaded).await {
        Ok(proxy) => proxy,
        Err(error) => {
            eprintln!("watertight: {error}");
            return ExitCode::FAILURE;
        }
    };
    let admin_listener = match tokio::net::TcpListener::bind(&admin_address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("watertight: cannot listen on admin address {admin_address}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut admin = Admin::new(proxy.clone());
    if let Some((prefix, handler)) = demo {
        admin = admin.mount(prefix, handler);
    }
    if let Ok(address) = admin_listener.local_addr() {
        tracing::info!(%address, "admin API listening");
    }
    tokio::spawn(admin.serve(admin_listener));
    if let Some(path) = watch {
        tokio::spawn(reload::watch(proxy.clone(), path, CONFIG_POLL));
    }

    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: draining"),
        _ = interrupt.recv() => tracing::info!("SIGINT: draining"),
    }
    let timeout = proxy.drain_timeout();
    if proxy.shutdown(timeout).await {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!(
            ?timeout,
            "drain timeout reached; exiting with requests still in flight"
        );
    }
    ExitCode::SUCCESS
}
