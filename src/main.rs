use std::process::ExitCode;

use clap::Parser;

use authd::cli::{self, Cli};
use authd::config::Config;
use authd::telemetry;

/// Each password check (argon2id, m = 19 MiB) allocates a 19 MiB block on a
/// blocking thread. glibc raises its mmap threshold after the first such
/// block is freed, so later ones come from per-thread arenas and stay
/// resident: a few sign-ins held 200–300 MB per process in the soak
/// (bench/README.md). A fixed threshold keeps large blocks mmapped, so they
/// go back to the system when freed (RSS ~15 MB under the same load).
fn limit_allocator_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called first thing
    // in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

fn main() -> ExitCode {
    limit_allocator_retention();
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
