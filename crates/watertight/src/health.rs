//! `watertight health --admin URL`: exit 0 when the proxy's `/readyz` answers 200, 1 when it
//! does not (draining, waiting for first health checks, or unreachable). For container
//! health checks and exec probes in an image without curl.

use std::process::ExitCode;

use crate::drill::admin::AdminApi;

/// Options of `watertight health`.
#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// The admin API to ask, e.g. http://127.0.0.1:9901.
    #[arg(long, default_value = "http://127.0.0.1:9901")]
    admin: String,
}

/// Asks `/readyz` once; prints why on failure.
pub fn run(args: HealthArgs) -> ExitCode {
    let admin = match AdminApi::new(&args.admin) {
        Ok(admin) => admin,
        Err(message) => {
            eprintln!("watertight health: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("watertight health: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(admin.ready()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("watertight health: {}/readyz: {error}", admin.base());
            ExitCode::FAILURE
        }
    }
}
