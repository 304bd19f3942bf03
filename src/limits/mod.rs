//! Rate limits: the per-IP buckets, the per-client `/token` tiers and
//! client-authentication failures. Holds counts in process memory only.
pub mod buckets;
pub mod client_ip;
pub mod login_throttle;
