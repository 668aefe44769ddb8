//! `watertight demo` (wired once the demo crate lands).

/// Options of `watertight demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Print the embedded config and exit.
    #[arg(long)]
    print_config: bool,
}

pub fn run(_args: DemoArgs) -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
