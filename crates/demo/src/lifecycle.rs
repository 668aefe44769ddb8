//! One run of a service, from bind to stop: every task that owns a socket holds a
//! [`RunToken`], and stopping waits until all of them have let go.
//!
//! Stopping is abrupt on purpose: a sample service that "goes away" must close its idle
//! keep-alive connections too, so that a proxy's pooled connections notice.

use tokio::sync::{mpsc, watch};

/// Held by the service while it runs; [`RunControl::stop`] ends the run.
pub(crate) struct RunControl {
    stop: watch::Sender<()>,
    closed: mpsc::Receiver<()>,
}

/// Held by each task that owns a socket (the listener, a connection, an upgraded stream).
#[derive(Clone)]
pub(crate) struct RunToken {
    stop: watch::Receiver<()>,
    open: mpsc::Sender<()>,
}

/// A token that does not keep the run open (held by request handlers, which may outlive
/// their connection on HTTP/2), upgraded by the handler that spawns a socket-owning task.
#[derive(Clone)]
pub(crate) struct WeakRunToken {
    stop: watch::Receiver<()>,
    open: mpsc::WeakSender<()>,
}

/// Starts a run: the control for its owner, the first token for its listener.
pub(crate) fn new_run() -> (RunControl, RunToken) {
    let (stop, stop_rx) = watch::channel(());
    // Nothing is ever sent: the channel only tells when every token has been dropped.
    let (open, closed) = mpsc::channel(1);
    (
        RunControl { stop, closed },
        RunToken {
            stop: stop_rx,
            open,
        },
    )
}

impl RunControl {
    /// Tells every task to drop its socket and waits until they all have.
    pub(crate) async fn stop(self) {
        let RunControl { stop, mut closed } = self;
        drop(stop);
        while closed.recv().await.is_some() {}
    }
}

impl RunToken {
    /// Resolves once the run is being stopped.
    pub(crate) async fn stop_requested(&mut self) {
        // The sender never sends: `changed` only returns, with an error, when it is dropped.
        let _ = self.stop.changed().await;
    }

    pub(crate) fn downgrade(&self) -> WeakRunToken {
        WeakRunToken {
            stop: self.stop.clone(),
            open: self.open.downgrade(),
        }
    }
}

impl WeakRunToken {
    /// A token for a new socket-owning task, or `None` if the run is already stopping.
    pub(crate) fn upgrade(&self) -> Option<RunToken> {
        let open = self.open.upgrade()?;
        let stop = self.stop.clone();
        if stop.has_changed().is_err() {
            return None;
        }
        Some(RunToken { stop, open })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn stop_waits_for_every_token_holder() {
        let (control, token) = new_run();
        let mut worker = token.clone();
        drop(token);
        let finished = tokio::spawn(async move {
            worker.stop_requested().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            tokio::time::Instant::now()
        });
        control.stop().await;
        let stopped_at = tokio::time::Instant::now();
        assert!(
            finished.await.unwrap() <= stopped_at,
            "stop returned before the worker let go"
        );
    }

    #[tokio::test]
    async fn weak_token_cannot_reopen_a_stopped_run() {
        let (control, token) = new_run();
        let weak = token.downgrade();
        assert!(weak.upgrade().is_some());
        drop(token);
        control.stop().await;
        assert!(weak.upgrade().is_none());
    }
}
