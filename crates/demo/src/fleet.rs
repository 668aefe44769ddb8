//! [`DemoFleet`]: the sample services `watertight demo` puts behind the proxy, and the
//! control actions the admin API applies to them.

use std::io;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::faults::Faults;
use crate::service::SampleService;

/// The fleet: catalog is replicated, recommendations is the one to slow down, checkout sits
/// on the critical path with a primary (replica 0) and a standby (replica 1).
const FLEET: [(&str, usize); 3] = [("catalog", 3), ("recommendations", 1), ("checkout", 2)];

/// A control action from the admin API. As JSON: `{"action":"stop"}`, `{"action":"start"}`,
/// `{"action":"reset_faults"}`, `{"action":"set_faults","faults":{"latency_ms":800}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "faults", rename_all = "snake_case")]
pub enum Control {
    /// Close the port and every connection.
    Stop,
    /// Serve again on the same port.
    Start,
    /// Replace the knobs (validated).
    SetFaults(Faults),
    /// Back to no faults.
    ResetFaults,
}

/// The demo's fleet: catalog (3 replicas), recommendations (1), checkout (2: primary and
/// standby).
pub struct DemoFleet {
    services: Vec<(String, Vec<SampleService>)>,
}

impl DemoFleet {
    /// Starts every service on `ip` with OS-assigned ports.
    pub async fn start(ip: IpAddr) -> io::Result<DemoFleet> {
        let layout: Vec<(String, Vec<SocketAddr>)> = FLEET
            .iter()
            .map(|&(name, replicas)| (name.to_owned(), vec![SocketAddr::new(ip, 0); replicas]))
            .collect();
        Self::start_at(&layout).await
    }

    /// The names of the fleet's services, in order: catalog, recommendations, checkout.
    pub fn service_names() -> impl Iterator<Item = &'static str> {
        FLEET.iter().map(|&(name, _)| name)
    }

    /// Starts the named services, one replica per address (port 0 picks a free port).
    pub async fn start_at(layout: &[(String, Vec<SocketAddr>)]) -> io::Result<DemoFleet> {
        let mut services = Vec::with_capacity(layout.len());
        for (name, addresses) in layout {
            let mut started = Vec::with_capacity(addresses.len());
            for (replica, &address) in addresses.iter().enumerate() {
                let service = SampleService::start(name, replica, address)
                    .await
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("demo service {name} replica {replica} on {address}: {e}"),
                        )
                    })?;
                started.push(service);
            }
            services.push((name.clone(), started));
        }
        Ok(DemoFleet { services })
    }

    /// (service name, replica addresses) in a stable order: catalog, recommendations, checkout.
    pub fn services(&self) -> Vec<(String, Vec<SocketAddr>)> {
        self.services
            .iter()
            .map(|(name, replicas)| {
                (
                    name.clone(),
                    replicas.iter().map(SampleService::local_addr).collect(),
                )
            })
            .collect()
    }

    /// One replica of one service, if both exist.
    pub fn service(&self, name: &str, replica: usize) -> Option<&SampleService> {
        self.replicas(name)?.get(replica)
    }

    /// JSON for the admin API's `GET /demo`: each service, its replicas with address,
    /// running, requests served and current knobs.
    pub fn describe(&self) -> Value {
        let services: Vec<Value> = self
            .services
            .iter()
            .map(|(name, replicas)| {
                let replicas: Vec<Value> = replicas
                    .iter()
                    .map(|s| {
                        json!({
                            "replica": s.replica(),
                            "address": s.local_addr().to_string(),
                            "running": s.is_running(),
                            "requests_served": s.requests_served(),
                            "faults": s.faults(),
                        })
                    })
                    .collect();
                json!({ "name": name, "replicas": replicas })
            })
            .collect();
        json!({ "services": services })
    }

    /// Applies a control action from the admin API, e.g. `("recommendations", 0, Control::Stop)`.
    pub async fn control(
        &self,
        service: &str,
        replica: usize,
        action: Control,
    ) -> Result<(), String> {
        let target = self.find(service, replica)?;
        match action {
            Control::Stop => target.stop().await,
            Control::Start => target.start_again().await.map_err(|e| e.to_string())?,
            Control::SetFaults(faults) => {
                faults
                    .validate()
                    .map_err(|e| format!("{service}/{replica}: {e}"))?;
                target.set_faults(faults);
            }
            Control::ResetFaults => target.set_faults(Faults::default()),
        }
        Ok(())
    }

    fn replicas(&self, name: &str) -> Option<&[SampleService]> {
        self.services
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.as_slice())
    }

    fn find(&self, service: &str, replica: usize) -> Result<&SampleService, String> {
        let Some(replicas) = self.replicas(service) else {
            let known: Vec<&str> = self.services.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "no demo service {service:?} (services: {})",
                known.join(", ")
            ));
        };
        replicas.get(replica).ok_or_else(|| {
            format!(
                "demo service {service:?} has no replica {replica} (replicas: 0..={})",
                replicas.len().saturating_sub(1)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_json_shape_is_stable() {
        let action: Control =
            serde_json::from_str(r#"{"action":"set_faults","faults":{"latency_ms":800}}"#).unwrap();
        assert_eq!(
            action,
            Control::SetFaults(Faults {
                latency_ms: 800,
                ..Faults::default()
            })
        );
        let stop: Control = serde_json::from_str(r#"{"action":"stop"}"#).unwrap();
        assert_eq!(stop, Control::Stop);
        assert_eq!(
            serde_json::to_string(&Control::ResetFaults).unwrap(),
            r#"{"action":"reset_faults"}"#
        );
    }
}
