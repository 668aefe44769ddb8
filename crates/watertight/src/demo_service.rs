//! `watertight demo-service --name NAME --listen ADDR`: one of the demo's sample services on
//! its own, so containers (and other hosts) can run the services behind a proxy.

use std::net::SocketAddr;
use std::process::ExitCode;

use watertight_demo::SampleService;

use crate::serve;

/// Options of `watertight demo-service`.
#[derive(clap::Args, Debug)]
pub struct DemoServiceArgs {
    /// The service's name (it answers with it, and strips `/NAME` from paths).
    #[arg(long)]
    name: String,
    /// Where it listens, e.g. 0.0.0.0:9000.
    #[arg(long)]
    listen: SocketAddr,
    /// Its replica number (it answers with it).
    #[arg(long, default_value_t = 0)]
    replica: usize,
}

/// Serves until SIGTERM or SIGINT.
pub fn run(args: DemoServiceArgs) -> ExitCode {
    serve::block_on(async move {
        let service = match SampleService::start(&args.name, args.replica, args.listen).await {
            Ok(service) => service,
            Err(error) => {
                eprintln!(
                    "watertight demo-service: cannot listen on {}: {error}",
                    args.listen
                );
                return ExitCode::FAILURE;
            }
        };
        eprintln!(
            "watertight demo-service: {} replica {} on {}",
            args.name,
            args.replica,
            service.local_addr()
        );
        serve::terminated().await;
        service.stop().await;
        ExitCode::SUCCESS
    })
}
