//! The running proxy: its listeners, the current config snapshot, reload and drain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use watertight_config::{self as config, Loaded};
use watertight_telemetry::Metrics;

use crate::drain::Drain;
use crate::runtime::Runtime;
use crate::saturation::Saturation;
use crate::server;

/// A handle to a running proxy; cheap to clone. When the last handle is dropped the listeners
/// stop accepting (connections already open finish on their own).
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Arc<ArcSwap<Runtime>>,
    listeners: Mutex<HashMap<SocketAddr, ListenerHandle>>,
    /// Connections and tunnels of the whole proxy.
    drain: Drain,
    reloads_ok: AtomicU64,
    reloads_rejected: AtomicU64,
    metrics: Arc<Metrics>,
}

struct ListenerHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// How config reloads have gone so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadCounts {
    /// Reloads that took effect.
    pub applied: u64,
    /// Reloads refused (invalid file, unbindable address); the old config stayed.
    pub rejected: u64,
}

impl Proxy {
    /// Compiles `loaded`, binds every listener and starts serving.
    pub async fn start(loaded: Loaded) -> Result<Proxy, String> {
        let drain = Drain::new();
        let mut metrics = Metrics::new();
        let current = Arc::new(OnceLock::new());
        metrics.register_collector(Box::new(Saturation {
            runtime: current.clone(),
            drain: drain.clone(),
        }));
        let metrics = Arc::new(metrics);
        let runtime = Runtime::compile(loaded, None, &drain, &metrics).await?;
        let runtime = Arc::new(ArcSwap::from_pointee(runtime));
        let _ = current.set(runtime.clone());
        let proxy = Proxy {
            inner: Arc::new(Inner {
                runtime,
                listeners: Mutex::new(HashMap::new()),
                drain,
                reloads_ok: AtomicU64::new(0),
                reloads_rejected: AtomicU64::new(0),
                metrics,
            }),
        };
        let addresses: Vec<SocketAddr> = proxy.current().listeners.keys().copied().collect();
        let mut handles = proxy.inner.listeners.lock().await;
        for address in addresses {
            let handle = proxy.listen(address)?;
            handles.insert(address, handle);
        }
        drop(handles);
        Ok(proxy)
    }

    fn listen(&self, address: SocketAddr) -> Result<ListenerHandle, String> {
        let listener =
            server::bind(address).map_err(|e| format!("cannot listen on {address}: {e}"))?;
        let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server::accept_loop(
            listener,
            address,
            self.inner.runtime.clone(),
            self.inner.drain.clone(),
            stopped,
        ));
        tracing::info!(address = %local_addr, "listening");
        Ok(ListenerHandle {
            local_addr,
            stop,
            task,
        })
    }

    /// The config snapshot requests are served with now.
    pub fn current(&self) -> Arc<Runtime> {
        self.inner.runtime.load_full()
    }

    /// Swaps in a new config. New listeners are bound first; if any cannot be, nothing
    /// changes. In-flight requests finish on the snapshot they started with; listeners no
    /// longer configured stop accepting and their connections finish their requests.
    pub async fn reload(&self, loaded: Loaded) -> Result<(), String> {
        let result = self.try_reload(loaded).await;
        match &result {
            Ok(()) => {
                self.inner.reloads_ok.fetch_add(1, Ordering::Relaxed);
                self.inner.metrics.config_reload("applied");
            }
            Err(_) => self.note_rejected_reload(),
        }
        result
    }

    async fn try_reload(&self, loaded: Loaded) -> Result<(), String> {
        let mut handles = self.inner.listeners.lock().await;
        // Checked under the lock: a shutdown may have emptied the listeners, and this reload
        // must not bind them again.
        if self.inner.drain.is_draining() {
            return Err("the proxy is shutting down".to_owned());
        }
        let previous = self.current();
        let next = Runtime::compile(
            loaded,
            Some(&previous),
            &self.inner.drain,
            &self.inner.metrics,
        )
        .await?;

        let mut added = HashMap::new();
        for &address in next.listeners.keys() {
            if !handles.contains_key(&address) {
                // On failure, stop whatever this reload bound so far.
                let handle = self.listen(address).inspect_err(|_| {
                    for handle in added.values() {
                        stop_listener(handle);
                    }
                })?;
                added.insert(address, handle);
            }
        }
        let version = next.version.clone();
        let removed: Vec<SocketAddr> = handles
            .keys()
            .filter(|a| !next.listeners.contains_key(a))
            .copied()
            .collect();
        self.inner.runtime.store(Arc::new(next));
        for address in removed {
            if let Some(handle) = handles.remove(&address) {
                stop_listener(&handle);
                tracing::info!(address = %handle.local_addr, "listener removed");
            }
        }
        handles.extend(added);
        tracing::info!(%version, "config reloaded");
        Ok(())
    }

    /// The address each listener is bound to, by configured address (useful with port 0).
    pub async fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        let runtime = self.current();
        let handles = self.inner.listeners.lock().await;
        let mut out: Vec<(String, SocketAddr)> = handles
            .iter()
            .filter_map(|(key, handle)| {
                runtime
                    .listeners
                    .get(key)
                    .map(|l| (l.name().to_string(), handle.local_addr))
            })
            .collect();
        out.sort();
        out
    }

    /// Whether the proxy takes new traffic: not draining, and every actively checked
    /// endpoint has had its first check (so traffic is not refused for want of a verdict).
    pub fn is_ready(&self) -> bool {
        !self.is_draining()
            && self
                .current()
                .clusters
                .iter()
                .flat_map(|c| c.endpoints())
                .all(|e| e.health.checked().is_some())
    }

    /// Whether a graceful shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.inner.drain.is_draining()
    }

    /// Client connections and tunnels open now.
    pub fn open_connections(&self) -> usize {
        self.inner.drain.open()
    }

    /// Reload outcomes so far.
    pub fn reload_counts(&self) -> ReloadCounts {
        ReloadCounts {
            applied: self.inner.reloads_ok.load(Ordering::Relaxed),
            rejected: self.inner.reloads_rejected.load(Ordering::Relaxed),
        }
    }

    /// Records a reload refused before it reached the proxy (the file did not validate).
    pub fn note_rejected_reload(&self) {
        self.inner.reloads_rejected.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.config_reload("rejected");
    }

    /// The proxy's metrics (what `/metrics` exposes).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish (idle keep-alive
    /// connections close at once, HTTP/2 clients get GOAWAY), and wait up to `timeout`.
    /// Returns true if everything finished in time.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        self.inner.drain.begin();
        let handles: Vec<ListenerHandle> = self
            .inner
            .listeners
            .lock()
            .await
            .drain()
            .map(|(_, h)| h)
            .collect();
        for handle in &handles {
            stop_listener(handle);
        }
        for handle in handles {
            let _ = handle.task.await;
        }
        let finished = self.inner.drain.wait(timeout).await;
        // Spans of the last requests are still queued: give the collector a moment for them.
        if let Some(tracer) = &self.current().tracer {
            tracer.flush(Duration::from_secs(2)).await;
        }
        if !finished {
            tracing::warn!(
                open = self.inner.drain.open(),
                "drain timeout reached with connections still open"
            );
        }
        finished
    }

    /// The drain timeout the running config asks for.
    pub fn drain_timeout(&self) -> Duration {
        self.current().config.drain_timeout.get()
    }

    /// The running config and its version.
    pub fn config(&self) -> (config::Config, String) {
        let runtime = self.current();
        (runtime.config.clone(), runtime.version.clone())
    }
}

fn stop_listener(handle: &ListenerHandle) {
    handle.stop.send_replace(true);
}
