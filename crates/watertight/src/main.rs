//! The `watertight` binary: command-line parsing and wiring only. The work happens in the
//! library crates (`watertight-proxy`, `-config`, `-admin`, `-demo`).

mod demo;
mod demo_service;
mod drill;
mod health;
mod quick;
mod ring;
mod serve;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc (v3): every allocation on the request path comes from a per-thread free list,
/// whatever its size (glibc's per-thread cache stops at 1032 bytes, and a request's boxed
/// futures are larger). About 15 % less user CPU per proxied request than glibc's malloc,
/// with the same idle footprint; see `bench/README.md`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One binary between services and cascading failures.
#[derive(Parser, Debug)]
#[command(name = "watertight", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the reverse proxy from a config file, or in quick mode from --listen/--to.
    Proxy(ProxyArgs),
    /// Validate a config file: exit 0, or print every problem as FILE:LINE:COL and exit 1.
    Check {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Config format tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run the proxy with built-in sample services on loopback, ready to poke.
    Demo(demo::DemoArgs),
    /// Fail a cluster over to its standby group and back through the admin API, measuring
    /// detection, failover and failback times and the failed probes on the way.
    Drill(drill::DrillArgs),
    /// Exit 0 if the proxy's admin API says it is ready (`/readyz` 200), else 1: for
    /// container health checks and exec probes.
    Health(health::HealthArgs),
    /// Run one of the demo's sample services on its own (for containers).
    DemoService(demo_service::DemoServiceArgs),
    /// Consistent-hashing tools.
    Ring {
        #[command(subcommand)]
        command: ring::RingCommand,
    },
}

#[derive(clap::Args, Debug)]
struct ProxyArgs {
    /// The config file (reloaded on SIGHUP and when it changes).
    #[arg(long, short, conflicts_with_all = ["listen", "to"])]
    config: Option<PathBuf>,
    /// Quick mode: the address to listen on, e.g. 127.0.0.1:8002.
    #[arg(long, requires = "to")]
    listen: Option<String>,
    /// Quick mode: an upstream URL, e.g. http://127.0.0.1:8000 (repeat for several).
    #[arg(long, requires = "listen")]
    to: Vec<String>,
    /// Quick mode: the admin API address.
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: String,
    /// Quick mode: where the access log goes (stdout, stderr, off or a file).
    #[arg(long, default_value = "stdout")]
    access_log: String,
    /// Quick mode: cache responses (RFC 9111, a memory store of 256 MiB).
    #[arg(long, requires = "listen")]
    cache: bool,
    /// Quick mode: cache responses, with a disk tier (4 GiB) in this directory as well.
    #[arg(long, requires = "listen")]
    cache_dir: Option<String>,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the JSON Schema of the config file format.
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Config {
            command: ConfigCommand::Schema,
        } => {
            let schema = watertight_config::json_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Proxy(args) => proxy(args),
        Command::Demo(args) => demo::run(args),
        Command::Drill(args) => drill::run(args),
        Command::Ring { command } => ring::run(command),
        Command::Health(args) => health::run(args),
        Command::DemoService(args) => demo_service::run(args),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match watertight_config::load_file(path) {
        Ok(loaded) => {
            println!("{}: ok (version {})", path.display(), loaded.version);
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            println!("{diagnostics}");
            ExitCode::FAILURE
        }
    }
}

fn proxy(args: ProxyArgs) -> ExitCode {
    let (loaded, watch) = match (&args.config, &args.listen) {
        (Some(path), _) => match watertight_config::load_file(path) {
            Ok(loaded) => (loaded, Some(path.clone())),
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                return ExitCode::FAILURE;
            }
        },
        (None, Some(listen)) => {
            match quick::config(
                listen,
                &args.to,
                &args.admin,
                &args.access_log,
                quick::Caching::from_flags(args.cache, args.cache_dir.as_deref()),
            ) {
                Ok(loaded) => (loaded, None),
                Err(message) => {
                    eprintln!("watertight proxy: {message}");
                    return ExitCode::from(2);
                }
            }
        }
        (None, None) => {
            eprintln!(
                "watertight proxy: give --config FILE, or --listen ADDR --to URL for quick mode"
            );
            return ExitCode::from(2);
        }
    };
    serve::block_on(serve::run(loaded, watch, None))
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("WATERTIGHT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
