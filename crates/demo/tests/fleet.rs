//! The demo fleet: six replicas of three services on one IP, described and controlled by name.

mod support;

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr};

use http::StatusCode;
use support::get;
use tokio::net::TcpStream;
use watertight_demo::{Control, DemoFleet, Faults};

async fn fleet() -> DemoFleet {
    DemoFleet::start(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap()
}

#[tokio::test]
async fn fleet_starts_every_replica_in_a_stable_order() {
    let fleet = fleet().await;
    let services = fleet.services();
    let shape: Vec<(&str, usize)> = services
        .iter()
        .map(|(name, addrs)| (name.as_str(), addrs.len()))
        .collect();
    assert_eq!(
        shape,
        [("catalog", 3), ("recommendations", 1), ("checkout", 2)]
    );

    let addrs: Vec<_> = services
        .iter()
        .flat_map(|(_, addrs)| addrs.iter().copied())
        .collect();
    assert_eq!(
        addrs.iter().collect::<HashSet<_>>().len(),
        6,
        "every replica has its own port"
    );
    for (name, replica_addrs) in &services {
        for (replica, addr) in replica_addrs.iter().enumerate() {
            assert!(addr.ip().is_loopback());
            let reply = get(*addr, "/").await;
            assert_eq!(reply.header("x-demo-service"), name);
            assert_eq!(reply.header("x-demo-replica"), replica.to_string());
        }
    }
}

#[tokio::test]
async fn describe_lists_every_replica_with_its_state() {
    let fleet = fleet().await;
    let catalog_1 = fleet.service("catalog", 1).unwrap().local_addr();
    get(catalog_1, "/").await;

    let described = fleet.describe();
    let services = described["services"].as_array().unwrap();
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["catalog", "recommendations", "checkout"]);
    let replica = &services[0]["replicas"][1];
    assert_eq!(replica["replica"], 1);
    assert_eq!(replica["address"], catalog_1.to_string());
    assert_eq!(replica["running"], true);
    assert_eq!(replica["requests_served"], 1);
    assert_eq!(
        replica["faults"],
        serde_json::to_value(Faults::default()).unwrap()
    );
}

#[tokio::test]
async fn control_stops_and_starts_one_replica() {
    let fleet = fleet().await;
    let addr = fleet.service("recommendations", 0).unwrap().local_addr();

    fleet
        .control("recommendations", 0, Control::Stop)
        .await
        .unwrap();
    assert_eq!(
        TcpStream::connect(addr).await.unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    assert_eq!(
        fleet.describe()["services"][1]["replicas"][0]["running"],
        false
    );
    assert_eq!(
        get(fleet.service("checkout", 0).unwrap().local_addr(), "/")
            .await
            .status,
        StatusCode::OK
    );

    fleet
        .control("recommendations", 0, Control::Start)
        .await
        .unwrap();
    assert_eq!(get(addr, "/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn control_sets_and_resets_faults() {
    let fleet = fleet().await;
    let slow = Faults {
        latency_ms: 800,
        ..Faults::default()
    };
    fleet
        .control("recommendations", 0, Control::SetFaults(slow))
        .await
        .unwrap();
    assert_eq!(fleet.service("recommendations", 0).unwrap().faults(), slow);
    assert_eq!(
        fleet.describe()["services"][1]["replicas"][0]["faults"]["latency_ms"],
        800
    );

    fleet
        .control("recommendations", 0, Control::ResetFaults)
        .await
        .unwrap();
    assert_eq!(
        fleet.service("recommendations", 0).unwrap().faults(),
        Faults::default()
    );
}

#[tokio::test]
async fn control_errors_name_what_exists() {
    let fleet = fleet().await;
    let err = fleet
        .control("inventory", 0, Control::Stop)
        .await
        .unwrap_err();
    assert!(
        err.contains("inventory") && err.contains("catalog, recommendations, checkout"),
        "{err}"
    );
    let err = fleet
        .control("catalog", 3, Control::Stop)
        .await
        .unwrap_err();
    assert!(err.contains("0..=2"), "{err}");
    let bad = Faults {
        error_rate: 2.0,
        ..Faults::default()
    };
    let err = fleet
        .control("catalog", 0, Control::SetFaults(bad))
        .await
        .unwrap_err();
    assert!(err.contains("error_rate"), "{err}");
    assert!(fleet.service("catalog", 3).is_none());
}
