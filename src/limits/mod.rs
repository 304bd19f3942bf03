//! Limits: which address a request comes from (`client_ip`), the per-IP
//! buckets, the per-client `/token` tiers and client-authentication
//! failures (`buckets`), and the login failure throttle (`login_throttle`).
//! Counts live in process memory. Uses nothing of ours.
pub mod buckets;
pub mod client_ip;
pub mod login_throttle;
