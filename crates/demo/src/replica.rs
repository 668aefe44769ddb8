//! What one sample service is and what it knows across runs: its name, replica number,
//! knobs and request counter. Shared by the service handle and every connection.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::faults::Faults;

static X_DEMO_SERVICE: HeaderName = HeaderName::from_static("x-demo-service");
static X_DEMO_REPLICA: HeaderName = HeaderName::from_static("x-demo-replica");

pub(crate) struct Replica {
    name: String,
    index: usize,
    // Built once so that stamping a response costs two reference-count increments.
    service_header: HeaderValue,
    replica_header: HeaderValue,
    root_body: Bytes,
    // Read on every request, written rarely: a lock-free load keeps the fast path cheap.
    faults: ArcSwap<Faults>,
    served: AtomicU64,
    connections: AtomicU64,
}

impl Replica {
    pub(crate) fn new(name: &str, index: usize) -> io::Result<Replica> {
        let service_header = HeaderValue::from_str(name).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "sample service name {name:?} must be a valid HTTP header value (visible ASCII)"
                ),
            )
        })?;
        Ok(Replica {
            name: name.to_owned(),
            index,
            service_header,
            replica_header: HeaderValue::from(index),
            root_body: Bytes::from(format!("ok {name} {index}\n")),
            faults: ArcSwap::from_pointee(Faults::default()),
            served: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The body of `GET /`.
    pub(crate) fn root_body(&self) -> Bytes {
        self.root_body.clone()
    }

    pub(crate) fn faults(&self) -> Faults {
        **self.faults.load()
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        self.faults.store(std::sync::Arc::new(faults));
    }

    pub(crate) fn count_request(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connections_accepted(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub(crate) fn requests_served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Adds `x-demo-service` and `x-demo-replica`.
    pub(crate) fn stamp(&self, headers: &mut HeaderMap) {
        headers.insert(X_DEMO_SERVICE.clone(), self.service_header.clone());
        headers.insert(X_DEMO_REPLICA.clone(), self.replica_header.clone());
    }
}
