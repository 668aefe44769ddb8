//! `watertight demo`: the proxy, wired by an embedded config, in front of the demo crate's
//! sample services, with `/demo` on the admin API to see and break them.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use watertight_admin::{Handler, Reply};
use watertight_config::{self as config, Loaded};
use watertight_demo::{Control, DemoFleet, Faults};

use crate::serve;

/// The embedded config.
const CONFIG: &str = include_str!("demo.yaml");

/// Options of `watertight demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Print the embedded config and exit.
    #[arg(long)]
    print_config: bool,
    /// Where the proxy listens (default from the embedded config: 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<String>,
    /// Where the admin API listens (default 127.0.0.1:9901).
    #[arg(long)]
    admin_listen: Option<String>,
    /// Start the sample services on free ports the OS picks, instead of the embedded
    /// config's 91xx, and point the clusters at them: to run beside another demo, or in tests.
    #[arg(long)]
    free_sample_ports: bool,
}

/// Runs the demo until SIGTERM / SIGINT.
pub fn run(args: DemoArgs) -> ExitCode {
    if args.print_config {
        print!("{CONFIG}");
        return ExitCode::SUCCESS;
    }
    let loaded = match demo_config(args.listen.as_deref(), args.admin_listen.as_deref()) {
        Ok(loaded) => loaded,
        Err(message) => {
            eprintln!("watertight demo: {message}");
            return ExitCode::from(2);
        }
    };
    serve::block_on(async move {
        let layout = fleet_layout(&loaded.config, args.free_sample_ports);
        let fleet = match DemoFleet::start_at(&layout).await {
            Ok(fleet) => Arc::new(fleet),
            Err(error) => {
                eprintln!("watertight demo: cannot start the sample services: {error}");
                return ExitCode::FAILURE;
            }
        };
        let loaded = if args.free_sample_ports {
            match point_clusters_at(loaded.config, &fleet) {
                Ok(loaded) => loaded,
                Err(message) => {
                    eprintln!("watertight demo: {message}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            loaded
        };
        print_guide(&loaded.config, &fleet);
        serve::run(loaded, None, Some(("/demo", admin_handler(fleet)))).await
    })
}

/// The embedded config with the address overrides applied, validated like any other.
fn demo_config(listen: Option<&str>, admin: Option<&str>) -> Result<Loaded, String> {
    let mut loaded = config::load_str(CONFIG, "demo.yaml").map_err(|d| d.to_string())?;
    if let Some(listen) = listen {
        loaded.config.listeners[0].address = listen.to_owned();
    }
    if let Some(admin) = admin {
        loaded.config.admin.address = admin.to_owned();
    }
    Loaded::from_config(loaded.config).map_err(|problems| problems.to_string())
}

/// Each sample service's replica addresses, from the cluster of the same name (with port 0,
/// so the OS picks, when `free_ports`).
fn fleet_layout(config: &config::Config, free_ports: bool) -> Vec<(String, Vec<SocketAddr>)> {
    DemoFleet::service_names()
        .filter_map(|name| {
            let cluster = config.clusters.iter().find(|c| c.name == name)?;
            let addresses = cluster
                .endpoints
                .iter()
                .filter_map(|e| e.address.parse::<SocketAddr>().ok())
                .map(|a| {
                    if free_ports {
                        SocketAddr::new(a.ip(), 0)
                    } else {
                        a
                    }
                })
                .collect();
            Some((name.to_owned(), addresses))
        })
        .collect()
}

/// The config with each sample service's cluster pointing at the ports its replicas got,
/// endpoint by endpoint in order (priorities and the rest stay).
fn point_clusters_at(mut config: config::Config, fleet: &DemoFleet) -> Result<Loaded, String> {
    for (name, addresses) in fleet.services() {
        if let Some(cluster) = config.clusters.iter_mut().find(|c| c.name == name) {
            for (endpoint, address) in cluster.endpoints.iter_mut().zip(addresses) {
                endpoint.address = address.to_string();
            }
        }
    }
    Loaded::from_config(config).map_err(|problems| problems.to_string())
}

fn print_guide(config: &config::Config, fleet: &DemoFleet) {
    let proxy = &config.listeners[0].address;
    let admin = &config.admin.address;
    let services: String = fleet
        .services()
        .iter()
        .map(|(name, addresses)| {
            let list: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
            format!("    {name:<16} {}\n", list.join(", "))
        })
        .collect();
    let recommendations = fleet
        .services()
        .iter()
        .find(|(n, _)| n == "recommendations")
        .and_then(|(_, a)| a.first().copied())
        .map(|a| a.to_string())
        .unwrap_or_default();
    eprintln!(
        "watertight demo: proxy on http://{proxy}, admin API on http://{admin}\n\
         sample services:\n{services}\n\
         try:\n\
         \x20 curl http://{proxy}/catalog                        # spread over 3 replicas\n\
         \x20 curl http://{proxy}/catalog/echo                   # what the upstream received\n\
         \x20 curl -X POST http://{recommendations}/fault -d '{{\"latency_ms\":3000}}'  # slow it down\n\
         \x20 curl -i http://{proxy}/recommendations             # 504 after the route's 2 s timeout\n\
         \x20 curl -X POST http://{recommendations}/fault/reset\n\
         \x20 curl -X POST http://{admin}/demo/catalog/0/stop    # take a replica away\n\
         \x20 curl http://{admin}/demo                           # services and their knobs\n\
         \x20 curl http://{admin}/clusters                       # what the proxy sees\n\
         \x20 curl -X POST http://{admin}/demo/checkout/0/stop   # checkout fails over to its standby\n\
         \x20 curl -X POST http://{admin}/demo/checkout/0/start  # ... and back once checks pass\n\
         \x20 watertight drill --admin http://{admin} --cluster checkout --target http://{proxy}/checkout\n\
         access log (JSON lines) follows on stdout; Ctrl-C drains and exits.\n"
    );
}

/// `/demo` on the admin API: `GET /demo` describes the fleet; `POST
/// /demo/{service}/{replica}/{stop|start|reset|faults}` controls one replica (`faults` takes a
/// JSON body like `{"latency_ms":800,"error_rate":0.2}`).
fn admin_handler(fleet: Arc<DemoFleet>) -> Handler {
    Arc::new(move |method: Method, path: String, body: Bytes| {
        let fleet = fleet.clone();
        Box::pin(async move { answer(&fleet, method, &path, body).await })
    })
}

async fn answer(fleet: &DemoFleet, method: Method, path: &str, body: Bytes) -> Reply {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match (method, parts.as_slice()) {
        (Method::GET, []) => (StatusCode::OK, fleet.describe()),
        (Method::POST, [service, replica, action]) => {
            let Ok(replica) = replica.parse::<usize>() else {
                return bad(format!("replica {replica:?} is not a number"));
            };
            let control = match *action {
                "stop" => Control::Stop,
                "start" => Control::Start,
                "reset" => Control::ResetFaults,
                "faults" => match serde_json::from_slice::<Faults>(&body) {
                    Ok(faults) => Control::SetFaults(faults),
                    Err(error) => return bad(format!("faults body: {error}")),
                },
                other => {
                    return bad(format!(
                        "unknown action {other:?}: use stop, start, reset or faults"
                    ));
                }
            };
            match fleet.control(service, replica, control).await {
                Ok(()) => (
                    StatusCode::OK,
                    json!({ "ok": true, "demo": fleet.describe() }),
                ),
                Err(error) => bad(error),
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            Value::String(
                "GET /demo, or POST /demo/{service}/{replica}/{stop|start|reset|faults}\n".into(),
            ),
        ),
    }
}

fn bad(message: String) -> Reply {
    (
        StatusCode::BAD_REQUEST,
        Value::String(format!("{message}\n")),
    )
}
