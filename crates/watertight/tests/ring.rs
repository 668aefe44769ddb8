//! `watertight ring simulate`: the report's fields and figures, and clear refusals.

mod support;

use std::process::Command;

use support::BIN;

fn simulate(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(["ring", "simulate"])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> serde_json::Value {
    let (code, stdout, stderr) = simulate(args);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn adding_a_node_to_a_ring_moves_about_one_in_n_plus_one() {
    let report = json(&[
        "--algorithm",
        "ring",
        "--nodes",
        "10",
        "--vnodes",
        "160",
        "--keys",
        "100000",
        "--add",
        "1",
        "--json",
    ]);
    for field in [
        "algorithm",
        "nodes",
        "keys",
        "max_over_avg",
        "stddev_over_avg",
        "moved_fraction",
        "ideal_moved_fraction",
        "lookup_ns",
    ] {
        assert!(report.get(field).is_some(), "{field} missing: {report}");
    }
    assert_eq!(report["algorithm"], "ring");
    assert_eq!(report["nodes"], 10);
    let ideal = report["ideal_moved_fraction"].as_f64().unwrap();
    let moved = report["moved_fraction"].as_f64().unwrap();
    assert!((ideal - 1.0 / 11.0).abs() < 1e-9);
    assert!((moved - ideal).abs() < 0.03, "{report}");
    assert!(report["max_over_avg"].as_f64().unwrap() < 1.3, "{report}");
}

#[test]
fn bounded_load_keeps_the_peak_under_one_plus_epsilon_with_hot_keys() {
    let args = [
        "--algorithm",
        "maglev",
        "--nodes",
        "8",
        "--keys",
        "50000",
        "--zipf",
        "1.2",
        "--json",
    ];
    let unbounded = json(&args);
    let mut bounded_args = args.to_vec();
    bounded_args.extend(["--bounded-load", "0.25"]);
    let bounded = json(&bounded_args);
    assert!(
        unbounded["max_over_avg"].as_f64().unwrap() > 1.5,
        "{unbounded}"
    );
    assert!(
        bounded["max_over_avg"].as_f64().unwrap() <= 1.25 + 0.01,
        "{bounded}"
    );
}

#[test]
fn removing_weighted_nodes_moves_their_share() {
    let report = json(&[
        "--algorithm",
        "rendezvous",
        "--weights",
        "1,1,2",
        "--keys",
        "40000",
        "--remove",
        "1",
        "--json",
    ]);
    // The last node (weight 2 of 4) leaves: half the keys move.
    assert!((report["ideal_moved_fraction"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert!(
        (report["moved_fraction"].as_f64().unwrap() - 0.5).abs() < 0.02,
        "{report}"
    );
}

#[test]
fn the_readable_table_names_each_figure() {
    let (code, stdout, _) = simulate(&["--nodes", "5", "--keys", "10000", "--add", "2"]);
    assert_eq!(code, 0);
    for label in ["algorithm", "peak / fair share", "moved", "ideal", "lookup"] {
        assert!(stdout.contains(label), "{label}: {stdout}");
    }
}

#[test]
fn impossible_simulations_are_refused_with_a_reason() {
    for (args, says) in [
        (vec!["--nodes", "3", "--remove", "3"], "would leave none"),
        (
            vec!["--algorithm", "maglev", "--table-size", "1000"],
            "not a prime",
        ),
        (vec!["--bounded-load", "0"], "--bounded-load"),
        (vec!["--weights", "0,0"], "every weight is 0"),
    ] {
        let (code, _, stderr) = simulate(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
