//! Address syntax shared by validation and the proxy, so both accept exactly the same text.

use std::net::SocketAddr;

/// Parses a listening address: an IP and a port (`0.0.0.0:8080`, `[::1]:9901`).
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>().map_err(|_| {
        format!("invalid listen address {text:?}: expected IP:port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"")
    })
}

/// Checks an upstream endpoint address, `host:port`, where host is an IP or a DNS name.
/// Returns the host and the port.
pub fn parse_endpoint_address(text: &str) -> Result<(String, u16), String> {
    let hint = "expected host:port, e.g. \"10.0.0.5:8080\" or \"catalog.internal:80\"";
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid endpoint address {text:?}: no port ({hint})"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid endpoint address {text:?}: bad port {port:?} ({hint})"))?;
    if port == 0 {
        return Err(format!(
            "invalid endpoint address {text:?}: port 0 ({hint})"
        ));
    }
    if !is_dns_name(host) {
        return Err(format!(
            "invalid endpoint address {text:?}: bad host {host:?} ({hint})"
        ));
    }
    Ok((host.to_owned(), port))
}

/// A DNS host name (RFC 1123): dot-separated labels of letters, digits and inner `-`.
/// Dotted IPv4 addresses pass too.
pub(crate) fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_needs_ip_and_port() {
        assert!(parse_listen_address("127.0.0.1:8080").is_ok());
        assert!(parse_listen_address("[::1]:8080").is_ok());
        assert!(parse_listen_address("localhost:8080").is_err());
        assert!(parse_listen_address("127.0.0.1").is_err());
    }

    #[test]
    fn endpoint_address_accepts_names_and_ips() {
        assert_eq!(
            parse_endpoint_address("127.0.0.1:80"),
            Ok(("127.0.0.1".into(), 80))
        );
        assert_eq!(parse_endpoint_address("[::1]:80"), Ok(("::1".into(), 80)));
        assert_eq!(
            parse_endpoint_address("db-1.internal:5432"),
            Ok(("db-1.internal".into(), 5432))
        );
        assert!(parse_endpoint_address("db:0").is_err());
        assert!(parse_endpoint_address("db").is_err());
        assert!(parse_endpoint_address("d b:80").is_err());
        assert!(parse_endpoint_address("db:99999").is_err());
    }
}
