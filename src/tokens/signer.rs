//! A bounded pool of signing threads sized to the cores.
//!
//! RSA signing (~265 µs) is the cost of a token. Run on the HTTP workers it
//! would stall the cheap requests they also serve (JWKS, discovery, health);
//! run on tokio's blocking pool it would be unbounded. Here a fixed set of
//! threads takes jobs from a bounded queue and answers through a oneshot.
//! The threads run at a lower priority (nice 10), so an HTTP worker that
//! wakes up for a cheap request preempts a signature in progress.
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::sync::oneshot;

use super::keyring::ActiveKey;

/// Jobs waiting per signing thread before new work is refused.
const QUEUE_PER_THREAD: usize = 512;
const SIGNER_NICE: libc::c_int = 10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("signing queue is full")]
    Overloaded,
    #[error("signing failed")]
    Failed,
}

struct Job {
    key: Arc<ActiveKey>,
    signing_input: String,
    reply: oneshot::Sender<Result<String, SignError>>,
}

#[derive(Clone)]
pub struct SigningPool {
    jobs: crossbeam_channel::Sender<Job>,
}

impl SigningPool {
    /// Starts `threads` signing threads. They stop when the pool is dropped.
    pub fn start(threads: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(threads * QUEUE_PER_THREAD);
        for index in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("authd-signer-{index}"))
                .spawn(move || {
                    lower_priority();
                    let rng = SystemRandom::new();
                    for job in queue {
                        let token = sign_jws(&job.key, job.signing_input, &rng);
                        // The requester may have gone away; nothing to do then.
                        let _ = job.reply.send(token);
                    }
                })
                .expect("spawning a signing thread");
        }
        Self { jobs }
    }

    /// Signs `header.payload` with `key` and returns the compact JWS.
    pub async fn sign(
        &self,
        key: Arc<ActiveKey>,
        signing_input: String,
    ) -> Result<String, SignError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .try_send(Job {
                key,
                signing_input,
                reply,
            })
            .map_err(|_| SignError::Overloaded)?;
        answer.await.map_err(|_| SignError::Failed)?
    }
}

/// RFC 7515 §7.1 compact serialisation: input `.` base64url(signature).
fn sign_jws(
    key: &ActiveKey,
    mut signing_input: String,
    rng: &SystemRandom,
) -> Result<String, SignError> {
    let mut signature = vec![0u8; key.pair.public_modulus_len()];
    key.pair
        .sign(
            &RSA_PKCS1_SHA256,
            rng,
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| SignError::Failed)?;
    signing_input.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut signing_input);
    Ok(signing_input)
}

fn lower_priority() {
    // SAFETY: setpriority with PRIO_PROCESS and who = 0 changes only the
    // calling thread's nice value on Linux; no memory is involved.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, SIGNER_NICE) };
    if result != 0 {
        tracing::debug!("could not lower the signing thread's priority");
    }
}
