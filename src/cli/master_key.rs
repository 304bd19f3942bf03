//! `authd master-key …`: a thin layer over `secrets` (rotation, status).
use clap::Subcommand;
use serde_json::json;

use super::{CliError, print_json};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::startup::Runtime;

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Write a new random master key to a new file (mode 0600).
    Generate {
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// The database's master key versions and which ones this
    /// configuration holds.
    Status,
    /// Re-seal every sealed value under a new master key version, online
    /// and in batches. Every running replica must already hold the new key
    /// (AUTHD_MASTER_KEY_EXTRA_FILES). Safe to run again if interrupted.
    Rotate {
        /// The new key (from `authd master-key generate`).
        #[arg(long, value_name = "FILE")]
        new_key_file: std::path::PathBuf,
        /// Wait this long after registering the new version before
        /// re-sealing, so every replica seals under it first (default:
        /// three cache refresh intervals, at least 3 s).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        propagation_delay: Option<std::time::Duration>,
        /// Rows per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
        /// Rotate even though a replica seen in the last 90 s does not hold
        /// the new key (it stopped without saying so).
        #[arg(long)]
        force: bool,
    },
}

pub(super) async fn master_key(
    command: MasterKeyCommand,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    use crate::secrets;
    if let MasterKeyCommand::Generate { out } = &command {
        let key = crate::config::create_master_key_file(out)?;
        print_json(&json!({ "file": out, "key_id": key.short_id() }));
        eprintln!(
            "Wrote a new master key to {} (mode 0600). Back it up where the current key is kept.",
            out.display()
        );
        return Ok(());
    }
    // The new key is held from the start, so an interrupted rotation can
    // be resumed with the same command.
    let new_key = match &command {
        MasterKeyCommand::Rotate { new_key_file, .. } => Some(crate::config::read_master_key_file(
            "--new-key-file",
            new_key_file,
        )?),
        _ => None,
    };
    let more = new_key
        .as_ref()
        .map(|k| vec![MasterKey::from_bytes(k.to_bytes())])
        .unwrap_or_default();
    let runtime = Runtime::open_with(config, true, clock, more).await?;
    let store = runtime.store.as_ref();
    let result = match (command, new_key) {
        (
            MasterKeyCommand::Rotate {
                propagation_delay,
                batch,
                force,
                ..
            },
            Some(new_key),
        ) => {
            let propagation_delay = propagation_delay.unwrap_or_else(|| {
                (config.cache_refresh * 3).max(std::time::Duration::from_secs(3))
            });
            eprintln!(
                "Rotating to master key {} (propagation delay {} ms, batches of {batch}).",
                new_key.short_id(),
                propagation_delay.as_millis()
            );
            let options = secrets::RotationOptions {
                propagation_delay,
                batch,
                force,
            };
            secrets::rotate(store, &runtime.secrets.master_keys, new_key, clock, options)
                .await
                .map(|report| {
                    eprintln!("Done. Next: {}.", report.next_step);
                    print_json(&report);
                })
        }
        _ => secrets::status(store, &runtime.secrets.master_keys)
            .await
            .map(|versions| print_json(&versions)),
    };
    runtime.store.close().await;
    Ok(result?)
}
