//! Reload triggers: SIGHUP, and the config file changing on disk (polled, which also catches
//! the symlink swaps Kubernetes uses for mounted ConfigMaps, where file events often do not).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::proxy::Proxy;

/// What identifies a version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    // `metadata` follows symlinks, so a swapped link target shows up as a change.
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// Watches `path` and reloads `proxy` when it changes or on SIGHUP, until the proxy drains.
/// A file that fails validation is reported with the same text `watertight check` prints and
/// leaves the running config in place.
pub async fn watch(proxy: Proxy, path: PathBuf, poll: Duration) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reloads follow file changes only");
            None
        }
    };
    let mut last = stamp(&path);
    let mut last_text = std::fs::read_to_string(&path).ok();
    loop {
        let forced = tokio::select! {
            _ = tokio::time::sleep(poll) => false,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        if !proxy.is_ready() {
            return;
        }
        let now = stamp(&path);
        if !forced && now == last {
            continue;
        }
        last = now;
        let text = std::fs::read_to_string(&path).ok();
        if !forced && text == last_text {
            continue;
        }
        last_text = text;
        reload_from(&proxy, &path).await;
    }
}

/// Loads `path` and applies it; logs the outcome either way.
pub async fn reload_from(proxy: &Proxy, path: &Path) -> bool {
    match watertight_config::load_file(path) {
        Err(diagnostics) => {
            proxy.note_rejected_reload();
            tracing::error!("config reload rejected, keeping the running config:\n{diagnostics}");
            false
        }
        Ok(loaded) => {
            let running_admin = proxy.current().config.admin.address.clone();
            if loaded.config.admin.address != running_admin {
                tracing::warn!(
                    running = %running_admin,
                    configured = %loaded.config.admin.address,
                    "admin.address changed: the admin API moves on the next restart, not on reload"
                );
            }
            apply(proxy, loaded).await
        }
    }
}

async fn apply(proxy: &Proxy, loaded: watertight_config::Loaded) -> bool {
    match proxy.reload(loaded).await {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(%error, "config reload rejected, keeping the running config");
            false
        }
    }
}
