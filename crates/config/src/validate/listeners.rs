//! Listeners and the admin API: at least one listener, valid addresses, no two sockets that
//! would fight over the same port, client timeouts that let a request in. Each listener's routes are checked in `routes`.

use std::net::SocketAddr;

use crate::path::Path;
use crate::{Config, parse_listen_address};

use super::{Finding, routes};

pub(super) fn check(config: &Config, found: &mut Vec<Finding>) {
    let root = Path::root();
    if config.listeners.is_empty() {
        found.push(
            Finding::new(
                root.key("listeners"),
                "no listeners are defined, so the proxy would accept no traffic",
            )
            .hint("add a listener with a name, an address such as \"0.0.0.0:8080\" and routes"),
        );
    }
    // Sockets bound so far: the address, who binds it, and where that is written.
    let mut bound: Vec<(SocketAddr, String, Path)> = Vec::new();
    let admin_path = root.key("admin").key("address");
    match parse_listen_address(&config.admin.address) {
        Ok(address) => bound.push((address, "the admin API".to_owned(), admin_path)),
        Err(e) => found.push(Finding::parse_error(admin_path, "admin API", &e)),
    }
    for (i, listener) in config.listeners.iter().enumerate() {
        let path = root.key("listeners").index(i);
        let address_path = path.key("address");
        let who = format!("listener {:?}", listener.name);
        match parse_listen_address(&listener.address) {
            Err(e) => found.push(Finding::parse_error(address_path, &who, &e)),
            Ok(address) => {
                // The proxy tells listeners apart by their configured address, so even two
                // "any free port" listeners on one IP would be taken for one.
                let same_listener = |b: &SocketAddr, who: &String| {
                    address.port() == 0 && *b == address && who.starts_with("listener")
                };
                if let Some((other, other_who, other_path)) = bound
                    .iter()
                    .find(|(b, who, _)| overlaps(*b, address) || same_listener(b, who))
                {
                    found.push(
                        Finding::new(
                            address_path.clone(),
                            format!(
                                "{who} cannot listen on {address}: {other_who} already listens on {other}"
                            ),
                        )
                        .hint("give each listener, and the admin API, its own port")
                        .related("defined", other_path.clone()),
                    );
                }
                bound.push((address, who.clone(), address_path));
            }
        }
        for (field, value) in [
            ("idle_timeout", listener.idle_timeout),
            ("header_read_timeout", listener.header_read_timeout),
        ] {
            if value.get().is_zero() {
                found.push(
                    Finding::new(
                        path.key(field),
                        format!("{who}: {field} is 0s, so every client connection would be closed at once"),
                    )
                    .hint("use a positive duration; leave it out for the default"),
                );
            }
        }
        super::failover::check_listener(config, listener, &path, found);
        routes::check(config, listener, &path, found);
    }
}

/// Whether binding both addresses would fail: same port, and the same IP or a wildcard of the
/// same family. Port 0 (any free port, as tests use) never clashes.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn same_port_on_the_same_or_a_wildcard_ip_overlaps() {
        assert!(overlaps(addr("127.0.0.1:80"), addr("127.0.0.1:80")));
        assert!(overlaps(addr("0.0.0.0:80"), addr("127.0.0.1:80")));
        assert!(overlaps(addr("[::1]:80"), addr("[::]:80")));
    }

    #[test]
    fn two_listeners_on_the_same_port_zero_address_are_rejected() {
        let yaml = "listeners:\n  - name: a\n    address: 127.0.0.1:0\n  - name: b\n    address: 127.0.0.1:0\n  - name: c\n    address: 127.0.0.2:0\n";
        let err = crate::load_str(yaml, "t.yaml").unwrap_err().to_string();
        assert!(
            err.contains("t.yaml:5:14: listener \"b\" cannot listen on 127.0.0.1:0"),
            "{err}"
        );
        assert!(!err.contains("listener \"c\""), "{err}");
    }

    #[test]
    fn different_ports_ips_or_port_zero_do_not_overlap() {
        assert!(!overlaps(addr("127.0.0.1:80"), addr("127.0.0.1:81")));
        assert!(!overlaps(addr("127.0.0.1:80"), addr("127.0.0.2:80")));
        assert!(!overlaps(addr("127.0.0.1:0"), addr("127.0.0.1:0")));
        assert!(!overlaps(addr("0.0.0.0:80"), addr("[::1]:80")));
    }
}
