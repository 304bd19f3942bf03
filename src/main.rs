use std::process::ExitCode;

use clap::Parser;

use authd::cli::{self, Cli};
use authd::config::Config;
use authd::telemetry;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        eprintln!("authd: .env: {error}");
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("authd: {error}");
            return ExitCode::from(2);
        }
    };
    // The server logs every request; a CLI command shows only what went wrong.
    let serving = matches!(cli.command, None | Some(cli::Command::Serve(_)));
    telemetry::init(config.log_format, if serving { "info" } else { "warn" });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("authd: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("authd: {error}");
            ExitCode::FAILURE
        }
    }
}
