//! `watertight ring simulate`: place keys on a consistent-hash table, change its membership,
//! and report balance, movement and lookup cost, for capacity planning and for checking the
//! algorithms (`watertight_balance::hashing::simulate` does the work).

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use watertight_balance::hashing::simulate::{self, Algorithm, Report, Simulation};
use watertight_balance::hashing::{DEFAULT_POINTS_PER_WEIGHT, DEFAULT_TABLE_SIZE, is_prime};

/// `watertight ring …`.
#[derive(Subcommand, Debug)]
pub enum RingCommand {
    /// Simulate a table: balance of keys over nodes, keys moved by a membership change, lookup
    /// time.
    Simulate(SimulateArgs),
}

/// Options of `watertight ring simulate`.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// The table.
    #[arg(long, value_enum, default_value = "ring")]
    algorithm: AlgorithmArg,
    /// Nodes (of weight 1 unless --weights says otherwise).
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Ring points per unit of weight.
    #[arg(long, default_value_t = DEFAULT_POINTS_PER_WEIGHT)]
    vnodes: u32,
    /// Maglev table size (a prime above the node count).
    #[arg(long, default_value_t = DEFAULT_TABLE_SIZE)]
    table_size: usize,
    /// Distinct keys (with --zipf, also the number of requests).
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Nodes that join after the first placement.
    #[arg(long, default_value_t = 0, conflicts_with = "remove")]
    add: usize,
    /// Nodes (the last ones) that leave after the first placement.
    #[arg(long, default_value_t = 0)]
    remove: usize,
    /// Node weights, comma-separated (their count replaces --nodes).
    #[arg(long, value_delimiter = ',')]
    weights: Vec<u32>,
    /// Bounded load ε: no node above ⌈(1+ε) × its fair share⌉ of the requests.
    #[arg(long)]
    bounded_load: Option<f64>,
    /// Zipf exponent of key popularity (hot keys); loads then count requests.
    #[arg(long)]
    zipf: Option<f64>,
    /// Seed of the keys and of the request draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AlgorithmArg {
    Ring,
    Maglev,
    Rendezvous,
}

/// Runs a `watertight ring` command.
pub fn run(command: RingCommand) -> ExitCode {
    let RingCommand::Simulate(args) = command;
    let simulation = match simulation(&args) {
        Ok(simulation) => simulation,
        Err(message) => {
            eprintln!("watertight ring simulate: {message}");
            return ExitCode::from(2);
        }
    };
    let report = simulate::run(&simulation);
    if args.json {
        println!("{}", to_json(&simulation, &report));
    } else {
        print_table(&simulation, &report);
    }
    ExitCode::SUCCESS
}

fn simulation(args: &SimulateArgs) -> Result<Simulation, String> {
    let weights = if args.weights.is_empty() {
        vec![1; args.nodes]
    } else {
        args.weights.clone()
    };
    if weights.is_empty() {
        return Err("there must be at least one node".into());
    }
    if weights.iter().all(|&w| w == 0) {
        return Err("every weight is 0: no node could own a key".into());
    }
    if args.remove >= weights.len() {
        return Err(format!(
            "--remove {} would leave none of the {} nodes",
            args.remove,
            weights.len()
        ));
    }
    if args.keys == 0 {
        return Err("--keys must be at least 1".into());
    }
    let algorithm = match args.algorithm {
        AlgorithmArg::Ring => Algorithm::Ring,
        AlgorithmArg::Maglev => Algorithm::Maglev,
        AlgorithmArg::Rendezvous => Algorithm::Rendezvous,
    };
    if args.vnodes == 0 && algorithm == Algorithm::Ring {
        return Err("--vnodes must be at least 1".into());
    }
    let largest = weights.len() + args.add;
    if algorithm == Algorithm::Maglev && !(is_prime(args.table_size) && args.table_size > largest) {
        return Err(format!(
            "--table-size {} is not a prime above the node count ({largest}); try 65537 or 655373",
            args.table_size
        ));
    }
    if let Some(epsilon) = args.bounded_load
        && !(epsilon > 0.0 && epsilon <= 10.0)
    {
        return Err(format!(
            "--bounded-load {epsilon} is not above 0 and at most 10 (0.25: no node above 1.25 × its share)"
        ));
    }
    if let Some(s) = args.zipf
        && !(s > 0.0 && s <= 10.0)
    {
        return Err(format!(
            "--zipf {s} is not above 0 and at most 10 (1.0 is a classic skew)"
        ));
    }
    Ok(Simulation {
        algorithm,
        weights,
        points_per_weight: args.vnodes,
        table_size: args.table_size,
        keys: args.keys,
        add: args.add,
        remove: args.remove,
        bounded_load: args.bounded_load,
        zipf: args.zipf,
        seed: args.seed,
    })
}

fn to_json(simulation: &Simulation, report: &Report) -> serde_json::Value {
    json!({
        "algorithm": simulation.algorithm.name(),
        "nodes": simulation.weights.len(),
        "weights": simulation.weights,
        "vnodes": (simulation.algorithm == Algorithm::Ring).then_some(simulation.points_per_weight),
        "table_size": (simulation.algorithm == Algorithm::Maglev).then_some(simulation.table_size),
        "keys": simulation.keys,
        "add": simulation.add,
        "remove": simulation.remove,
        "bounded_load": simulation.bounded_load,
        "zipf": simulation.zipf,
        "seed": simulation.seed,
        "max_over_avg": report.max_over_avg,
        "stddev_over_avg": report.stddev_over_avg,
        "max_over_avg_after": report.max_over_avg_after,
        "moved_fraction": report.moved_fraction,
        "ideal_moved_fraction": report.ideal_moved_fraction,
        "lookup_ns": report.lookup_ns,
    })
}

fn print_table(simulation: &Simulation, report: &Report) {
    let change = match (simulation.add, simulation.remove) {
        (0, 0) => "none".to_owned(),
        (add, 0) => format!("+{add} node(s)"),
        (_, remove) => format!("-{remove} node(s)"),
    };
    let load = if simulation.zipf.is_some() {
        "requests"
    } else {
        "keys"
    };
    println!("algorithm            {}", simulation.algorithm.name());
    println!("nodes                {}", simulation.weights.len());
    println!("{load:<20} {}", simulation.keys);
    println!("peak / fair share    {:.3}", report.max_over_avg);
    println!("stddev / fair share  {:.3}", report.stddev_over_avg);
    println!("membership change    {change}");
    if simulation.add + simulation.remove > 0 {
        println!(
            "moved                {:.4} (ideal {:.4})",
            report.moved_fraction, report.ideal_moved_fraction
        );
        println!("peak after change    {:.3}", report.max_over_avg_after);
    }
    println!("lookup               {:.1} ns", report.lookup_ns);
}
