//! Single-core RS256 signing rate of the primitive authd signs with: the
//! pre-parsed aws-lc-rs key pair that the token path uses, loaded through
//! the same key-ring code. Run by bench/run.sh (pinned to one core):
//! `cargo bench --bench sign_rate -- SECONDS`.
use std::sync::Arc;
use std::time::{Duration, Instant};

use authd::clock::SystemClock;
use authd::crypto::{MasterKey, Purpose, Sealer};
use authd::tokens::KeyRing;
use authd::tokens::keyring;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sealer = Arc::new(Sealer::new(
        &MasterKey::generate(),
        Purpose::SigningKeySealing,
    ));
    let record = runtime
        .block_on(keyring::generate(2048, sealer.clone(), &SystemClock))
        .expect("key generation");
    let ring = KeyRing::from_records(&[record], &sealer).expect("key ring");
    let pair = &ring.active.pair;
    let rng = SystemRandom::new();
    // A realistic signing input: header.payload of a client-credentials token.
    let input = "e".repeat(420);
    let mut signature = vec![0u8; pair.public_modulus_len()];
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut count = 0u64;
    while Instant::now() < deadline {
        pair.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
            .expect("sign");
        count += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "aws-lc-rs RS256 2048: {:.0} sign/s ({:.1} µs per signature, {count} in {elapsed:.2} s)",
        count as f64 / elapsed,
        elapsed * 1e6 / count as f64
    );
}
