//! Probe traffic through the proxy at a steady rate, each probe bounded by a short timeout,
//! its outcome recorded by the time it was sent.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::admin::cause;

/// Longest a probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a TCP probe's connection must stay open to count: a proxy with nowhere to send a
/// session closes it at once.
const TCP_HOLD: Duration = Duration::from_millis(200);
/// Response body bytes a probe reads before giving up on reusing the connection.
const BODY_LIMIT: usize = 256 * 1024;
/// The proxy's header naming why it answered an error itself.
const REASON_HEADER: &str = "x-watertight-reason";

/// Where probes go: an HTTP URL through the proxy, or a TCP listener of the proxy.
#[derive(Clone, Debug)]
pub enum Target {
    /// `GET` this URL; any status below 500 passes.
    Http(Uri),
    /// Connect; passes if the connection stays open for a moment.
    Tcp(String),
}

impl Target {
    /// `http://…` or `tcp://host:port`.
    pub fn parse(text: &str) -> Result<Target, String> {
        if let Some(address) = text.strip_prefix("tcp://") {
            let address = address.trim_end_matches('/');
            if address
                .rsplit_once(':')
                .is_none_or(|(_, port)| port.parse::<u16>().is_err())
            {
                return Err(format!(
                    "--target {text:?}: a TCP target needs host:port, e.g. tcp://127.0.0.1:5432"
                ));
            }
            return Ok(Target::Tcp(address.to_owned()));
        }
        let uri: Uri = text
            .parse()
            .map_err(|e| format!("--target {text:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") if uri.authority().is_some() => Ok(Target::Http(uri)),
            Some("https") => Err(format!(
                "--target {text:?}: https is not supported; probe a plain http:// listener, or use tcp://host:port"
            )),
            _ => Err(format!(
                "--target {text:?}: give http://host:port/path or tcp://host:port"
            )),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Http(uri) => write!(f, "{uri}"),
            Target::Tcp(address) => write!(f, "tcp://{address}"),
        }
    }
}

/// One probe's result.
#[derive(Clone, Debug)]
pub struct ProbeResult {
    /// When it was sent.
    pub sent: Instant,
    /// `Ok`, or what went wrong (`503 no-healthy-endpoint`, `connection refused`, …).
    pub outcome: Result<(), String>,
}

impl ProbeResult {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// Probes being sent; their results arrive as they finish.
pub struct Traffic {
    results: mpsc::UnboundedReceiver<ProbeResult>,
    stop: Option<oneshot::Sender<()>>,
    ticker: JoinHandle<()>,
}

impl Traffic {
    /// Starts sending `rate` probes a second to `target`.
    pub fn start(target: Target, rate: u32) -> Traffic {
        let (sender, results) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let prober = Prober::new(target);
        let every = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let ticker = tokio::spawn(send_probes(prober, every, sender, stopped));
        Traffic {
            results,
            stop: Some(stop),
            ticker,
        }
    }

    /// Moves the results that arrived so far into `log`.
    pub fn collect(&mut self, log: &mut Vec<ProbeResult>) {
        while let Ok(result) = self.results.try_recv() {
            log.push(result);
        }
    }

    /// Stops sending, waits for the probes in flight (each is bounded by [`PROBE_TIMEOUT`])
    /// and moves every remaining result into `log`.
    pub async fn stop(mut self, log: &mut Vec<ProbeResult>) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.ticker).await;
        // Every probe task holds a sender: the channel ends when the last one finishes.
        let deadline = Instant::now() + PROBE_TIMEOUT * 2;
        while let Ok(Some(result)) = tokio::time::timeout_at(deadline, self.results.recv()).await {
            log.push(result);
        }
    }
}

async fn send_probes(
    prober: Prober,
    every: Duration,
    results: mpsc::UnboundedSender<ProbeResult>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = ticks.tick() => {}
        }
        let (prober, results) = (prober.clone(), results.clone());
        tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = match tokio::time::timeout(PROBE_TIMEOUT, prober.probe()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
            };
            let _ = results.send(ProbeResult { sent, outcome });
        });
    }
}

/// Sends one probe of either kind.
#[derive(Clone)]
struct Prober {
    target: Target,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Prober {
    fn new(target: Target) -> Prober {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(PROBE_TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Prober { target, client }
    }

    async fn probe(&self) -> Result<(), String> {
        match &self.target {
            Target::Http(uri) => self.http(uri.clone()).await,
            Target::Tcp(address) => tcp(address).await,
        }
    }

    /// A GET: any answer below 500 means the proxy found somewhere to send it.
    async fn http(&self, uri: Uri) -> Result<(), String> {
        let response = self.client.get(uri).await.map_err(|e| cause(&e))?;
        let status = response.status();
        let reason = response
            .headers()
            .get(REASON_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Read the body so the connection can carry the next probe.
        let mut body = response.into_body();
        let mut read = 0;
        while read < BODY_LIMIT {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                Some(Err(_)) if status.is_server_error() => break,
                Some(Err(e)) => return Err(format!("{} then {}", status.as_u16(), cause(&e))),
                None => break,
            }
        }
        if status.is_server_error() {
            return Err(match reason {
                Some(reason) => format!("{} {reason}", status.as_u16()),
                None => status.as_u16().to_string(),
            });
        }
        Ok(())
    }
}

/// A connection that the far side keeps open for [`TCP_HOLD`] (or that sends something) passes;
/// one refused, reset or closed at once fails.
async fn tcp(address: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut byte = [0u8; 1];
    match tokio::time::timeout(TCP_HOLD, stream.read(&mut byte)).await {
        Err(_) => Ok(()),
        Ok(Ok(0)) => Err("closed at once".to_owned()),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_http_urls_or_tcp_addresses() {
        assert!(matches!(
            Target::parse("http://127.0.0.1:8080/checkout"),
            Ok(Target::Http(_))
        ));
        assert!(matches!(
            Target::parse("tcp://127.0.0.1:5432"),
            Ok(Target::Tcp(a)) if a == "127.0.0.1:5432"
        ));
        assert!(Target::parse("tcp://127.0.0.1").is_err());
        assert!(
            Target::parse("https://example.com/")
                .unwrap_err()
                .contains("tcp://")
        );
        assert!(Target::parse("/checkout").is_err());
    }
}
