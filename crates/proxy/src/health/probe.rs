//! What one active health check does: an HTTP request, a TCP connect, or a question to a
//! PostgreSQL server about its role. The checker (checker.rs) times and counts them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use watertight_config::{self as config, PostgresRole};

/// Most response body an HTTP check reads looking for `body_contains`.
const BODY_LIMIT: usize = 64 * 1024;

/// A check ready to run against one endpoint.
pub(super) enum Probe {
    Http {
        target: String,
        check: config::HttpCheck,
    },
    Tcp {
        target: String,
    },
    Postgres {
        host: String,
        port: u16,
        check: config::PostgresCheck,
        timeout: Duration,
        /// The check session, kept open between checks; reopened after an error.
        session: Option<tokio_postgres::Client>,
    },
}

impl Probe {
    /// The probe `check` describes, aimed at `host:port`.
    pub(super) fn new(check: &config::HealthCheck, host: &str, port: u16) -> Self {
        let target = format!("{host}:{port}");
        if let Some(http) = &check.http {
            Probe::Http {
                target,
                check: http.clone(),
            }
        } else if let Some(pg) = &check.postgres {
            Probe::Postgres {
                host: host.trim_matches(['[', ']']).to_owned(),
                port,
                check: pg.clone(),
                timeout: check.timeout.get(),
                session: None,
            }
        } else {
            Probe::Tcp { target }
        }
    }

    /// Runs one check: `Ok(detail)` when it passes, `Err(why)` when it fails. The caller
    /// bounds it with the check timeout.
    pub(super) async fn run(&mut self) -> Result<String, String> {
        match self {
            Probe::Tcp { target } => TcpStream::connect(target.as_str())
                .await
                .map(|_| "connected".to_owned())
                .map_err(|e| format!("connect: {e}")),
            Probe::Http { target, check } => http(target, check).await,
            Probe::Postgres {
                host,
                port,
                check,
                timeout,
                session,
            } => {
                let result = postgres(host, *port, check, *timeout, session).await;
                if result.is_err() {
                    // Whatever broke, start the next check with a fresh session.
                    *session = None;
                }
                result
            }
        }
    }
}

async fn http(target: &str, check: &config::HttpCheck) -> Result<String, String> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::builder()
        .method(check.method.as_str())
        .uri(check.path.as_str())
        .header(http::header::HOST, check.host.as_deref().unwrap_or(target))
        .header(http::header::USER_AGENT, "watertight-health-check")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status().as_u16();
    if !config::status_expected(&check.expect_status, status) {
        return Err(format!("HTTP {status}"));
    }
    if let Some(needle) = &check.body_contains {
        let mut body = response.into_body();
        let mut seen = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("body: {e}"))?;
            if let Ok(data) = frame.into_data() {
                seen.extend_from_slice(&data);
            }
            if seen.len() >= BODY_LIMIT {
                seen.truncate(BODY_LIMIT);
                break;
            }
        }
        if !contains(&seen, needle.as_bytes()) {
            return Err(format!("HTTP {status}, body without {needle:?}"));
        }
    }
    Ok(format!("HTTP {status}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asks the server whether it is in recovery (and how far replay lags) on the kept session.
async fn postgres(
    host: &str,
    port: u16,
    check: &config::PostgresCheck,
    timeout: Duration,
    session: &mut Option<tokio_postgres::Client>,
) -> Result<String, String> {
    if session.as_ref().is_none_or(|s| s.is_closed()) {
        *session = Some(connect(host, port, check, timeout).await?);
    }
    let client = session.as_ref().expect("session set above");
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(), CASE WHEN NOT pg_is_in_recovery() \
               OR pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
               ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) \
             END::float8",
            &[],
        )
        .await
        .map_err(|e| format!("query: {e}"))?;
    let in_recovery: bool = row.try_get(0).map_err(|e| format!("query: {e}"))?;
    let lag: f64 = row.try_get(1).map_err(|e| format!("query: {e}"))?;
    let role = if in_recovery { "replica" } else { "primary" };
    match check.role {
        PostgresRole::Primary if in_recovery => Err("replica, not primary".to_owned()),
        PostgresRole::Replica if !in_recovery => Err("primary, not replica".to_owned()),
        PostgresRole::Replica => match check.max_lag {
            Some(max) if lag > max.get().as_secs_f64() => {
                Err(format!("replica lagging {lag:.1}s behind, more than {max}"))
            }
            _ => Ok(format!("replica, lag {lag:.1}s")),
        },
        _ => Ok(role.to_owned()),
    }
}

async fn connect(
    host: &str,
    port: u16,
    check: &config::PostgresCheck,
    timeout: Duration,
) -> Result<tokio_postgres::Client, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user(&check.user)
        .dbname(&check.database)
        .application_name("watertight-health-check")
        .connect_timeout(timeout);
    if let Some(password) = &check.password {
        config.password(password.as_str());
    } else if let Some(file) = &check.password_file {
        let text = tokio::fs::read_to_string(file)
            .await
            .map_err(|e| format!("password_file {file}: {e}"))?;
        config.password(text.lines().next().unwrap_or_default());
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_search_finds_the_needle_anywhere() {
        assert!(contains(b"status: ok\n", b"ok"));
        assert!(!contains(b"status: degraded", b"ok\n"));
        assert!(contains(b"", b""));
    }
}
