//! Limits: which address a request comes from (`client_ip`), the per-IP
//! buckets, the per-client `/token` tiers and client-authentication
//! failures (`buckets`), and the login failure throttle (`login_throttle`),
//! counted in process memory or, with `AUTHD_REDIS_URL`, in Redis for every
//! replica at once (`shared`). `limiter::Limits` is the one front that
//! chooses, and falls back to process memory while Redis is away. Uses
//! nothing of ours but the keyed digest (`crypto`).
pub mod buckets;
pub mod client_ip;
pub mod limiter;
pub mod login_throttle;
pub mod shared;
