//! The one front every limit goes through: the per-IP buckets, the
//! per-client `/token` tiers, client-authentication failures and the login
//! failure throttle. It decides where each count lives:
//!
//! - without `AUTHD_REDIS_URL`: in this process (`buckets`,
//!   `login_throttle`), each limit whole: one replica, one set of limits;
//! - with it: in Redis (`shared`), so that N replicas together admit what
//!   one would;
//! - while Redis is unreachable, slow or answering garbage: in this process
//!   again, at this replica's share of each limit (the limit ÷ the replicas
//!   alive in the `master_key_holders` heartbeat table, at least 1), until
//!   Redis answers a probe again. A request never fails because of Redis.
//!
//! Callers never know which: they get a `Decision` (or a wait) either way.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use super::buckets::{Decision, IpBucket, RateLimitHits, RateLimitSettings, RateLimits};
use super::client_ip::{ClientIp, IpKey};
use super::login_throttle::{self, LoginThrottle, throttle_keys};
use super::shared::{RedisSettings, SharedCounts};
use crate::crypto::Digester;

/// Where counts live right now (`authd_rate_limit_backend` in `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    Redis,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Redis => "redis",
        }
    }
}

/// Redis calls that failed in a row before this replica stops asking it
/// (each failed call is decided in process meanwhile).
const FAILURES_BEFORE_FALLBACK: u32 = 3;
/// How often a replica asks Redis whether it is there (`PING`).
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How often the number of live replicas is read for the fallback share.
const REPLICAS_INTERVAL: Duration = Duration::from_secs(5);

/// In-process counts, at `1 / share` of each limit.
struct Local {
    buckets: RateLimits,
    throttle: LoginThrottle,
    share: u32,
}

impl Local {
    fn new(settings: &RateLimitSettings, share: u32) -> Self {
        Self {
            buckets: RateLimits::new(&settings.divided(share)),
            throttle: LoginThrottle::with_share(share),
            share,
        }
    }
}

struct Shared {
    counts: SharedCounts,
    /// (IP, client_id) pairs this replica learnt are blocked, until when.
    blocked_seen: BlockedPairs,
    up: AtomicBool,
    failures_in_row: AtomicU32,
    /// Whether the current absence was logged: each change of state is
    /// logged once, by whichever path notices it first.
    announced_down: AtomicBool,
    redacted_url: String,
}

pub struct Limits {
    settings: RateLimitSettings,
    local: ArcSwap<Local>,
    shared: Option<Shared>,
    pub hits: RateLimitHits,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// In-process limits only (no Redis configured).
    pub fn local(settings: &RateLimitSettings) -> Self {
        Self {
            settings: settings.clone(),
            local: ArcSwap::from_pointee(Local::new(settings, 1)),
            shared: None,
            hits: RateLimitHits::default(),
        }
    }

    /// Limits shared through Redis when `redis` is set. Never waits for
    /// Redis: it starts on the in-process fallback (at a share of one
    /// replica until the heartbeat table is read) and [`Limits::watch`]
    /// switches to Redis once it answers.
    pub fn new(
        settings: &RateLimitSettings,
        redis: Option<&RedisSettings>,
        hasher: Digester,
    ) -> Self {
        let mut limits = Self::local(settings);
        if let Some(redis) = redis {
            match SharedCounts::new(redis, hasher) {
                Ok(counts) => {
                    limits.shared = Some(Shared {
                        counts,
                        blocked_seen: BlockedPairs::default(),
                        up: AtomicBool::new(false),
                        failures_in_row: AtomicU32::new(0),
                        announced_down: AtomicBool::new(false),
                        redacted_url: redis.redacted(),
                    });
                }
                // `RedisSettings::parse` accepted the URL; the crate
                // refusing it now would be a bug, not an operator's error.
                Err(_) => tracing::error!(
                    redis = %redis.redacted(),
                    "the Redis client refused AUTHD_REDIS_URL; limits stay in process"
                ),
            }
        }
        limits
    }

    pub fn backend(&self) -> Backend {
        match &self.shared {
            Some(shared) if shared.up.load(Ordering::Relaxed) => Backend::Redis,
            _ => Backend::Local,
        }
    }

    pub fn settings(&self) -> &RateLimitSettings {
        &self.settings
    }

    /// The shared counts, when Redis is configured and answering.
    fn redis(&self) -> Option<&Shared> {
        self.shared
            .as_ref()
            .filter(|shared| shared.up.load(Ordering::Relaxed))
    }

    /// Notes a Redis call's outcome: a success resets the run of failures;
    /// the third failure in a row falls back (logged once).
    fn outcome<T>(&self, shared: &Shared, result: Result<T, super::shared::Trouble>) -> Option<T> {
        match result {
            Ok(value) => {
                shared.failures_in_row.store(0, Ordering::Relaxed);
                Some(value)
            }
            Err(trouble) => {
                let failures = shared.failures_in_row.fetch_add(1, Ordering::Relaxed) + 1;
                if failures >= FAILURES_BEFORE_FALLBACK && shared.up.swap(false, Ordering::AcqRel) {
                    // A new connection next time: the old one may be dead
                    // without knowing it.
                    shared.counts.disconnect();
                    self.announce_down(shared, trouble);
                }
                None
            }
        }
    }

    /// The one warning of an absence of Redis, logged once until Redis
    /// answers again (by whichever path notices first).
    fn announce_down(&self, shared: &Shared, trouble: super::shared::Trouble) {
        if !shared.announced_down.swap(true, Ordering::AcqRel) {
            let share = self.local.load().share;
            tracing::warn!(
                redis = %shared.redacted_url,
                reason = ?trouble,
                share,
                "Redis does not answer: rate limits and the login throttle are counted in this process, at 1/{share} of each limit, until it does"
            );
        }
    }

    fn count_hit(&self, bucket: &'static str, decision: Decision) -> Decision {
        if !decision.allowed() {
            self.hits.hit(bucket);
        }
        decision
    }

    /// Takes one request from `bucket` for `ip`.
    pub async fn check_ip(&self, bucket: IpBucket, ip: IpKey) -> Decision {
        if let Some(shared) = self.redis() {
            let rate = self.settings.ip_rate(bucket);
            let result = shared
                .counts
                .take(bucket.as_str(), &ip.to_bytes(), rate)
                .await;
            if let Some(decision) = self.outcome(shared, result) {
                return self.count_hit(bucket.as_str(), decision);
            }
        }
        self.count_hit(
            bucket.as_str(),
            self.local.load().buckets.check_ip(bucket, ip),
        )
    }

    /// Takes one `/token` request from the client's tier bucket (an unknown
    /// tier name, e.g. removed from the configuration, counts as standard).
    pub async fn check_tier(&self, tier: &str, client_id: &str) -> Decision {
        if let Some(shared) = self.redis() {
            let (name, rate) = self.settings.tier(tier);
            let result = shared
                .counts
                .take(&format!("tier_{name}"), client_id.as_bytes(), rate)
                .await;
            if let Some(decision) = self.outcome(shared, result) {
                return self.count_hit("token_tier", decision);
            }
        }
        self.count_hit(
            "token_tier",
            self.local.load().buckets.check_tier(tier, client_id),
        )
    }

    /// Refuses a client that used up its failed authentications from this
    /// IP, before its credentials are even checked. With Redis this asks
    /// no one: it knows the pairs this replica saw blocked (a round trip on
    /// every `/token` would cost more than the rest of the limits
    /// together); a pair blocked on another replica is refused here at its
    /// next failure (`client_auth_failed`).
    pub async fn client_auth_blocked(&self, ip: IpKey, client_id: &str) -> Option<Decision> {
        if let Some(shared) = self.redis() {
            let wait = shared.blocked_seen.blocked(&pair(ip, client_id))?;
            return Some(self.count_hit("client_auth_failures", self.blocked_decision(wait)));
        }
        let decision = self
            .local
            .load()
            .buckets
            .client_auth_blocked(ip, client_id)?;
        Some(self.count_hit("client_auth_failures", decision))
    }

    fn blocked_decision(&self, wait: Duration) -> Decision {
        let rate = self.settings.client_auth_failures;
        Decision {
            limit: rate.count.get(),
            remaining: 0,
            reset: super::buckets::ceil_secs(rate.per),
            retry_after: Some(super::buckets::ceil_secs(wait).max(1)),
        }
    }

    /// Records a failed client authentication: the failure that empties
    /// the bucket blocks the pair (N failures are answered 401, the next
    /// request 429). `Some` when the pair was blocked already (by another
    /// replica): the caller answers 429 instead of 401.
    pub async fn client_auth_failed(&self, ip: IpKey, client_id: &str) -> Option<Decision> {
        if let Some(shared) = self.redis() {
            let rate = self.settings.client_auth_failures;
            let pair = pair(ip, client_id);
            let result = shared.counts.client_auth_failed(&pair, rate).await;
            if let Some((was_blocked, blocked)) = self.outcome(shared, result) {
                if let Some(wait) = blocked {
                    shared.blocked_seen.remember(pair, wait);
                }
                return match (was_blocked, blocked) {
                    (true, Some(wait)) => {
                        Some(self.count_hit("client_auth_failures", self.blocked_decision(wait)))
                    }
                    _ => None,
                };
            }
        }
        self.local.load().buckets.client_auth_failed(ip, client_id);
        None
    }

    /// Whether the login throttle refuses this username or address now
    /// (counts nothing): `Some(seconds)` to wait.
    pub async fn login_blocked(
        &self,
        username: &str,
        ip: Option<ClientIp>,
        now: DateTime<Utc>,
    ) -> Option<u64> {
        self.login(username, ip, now, false).await.err()
    }

    /// Counts a login attempt as a failure before the password is checked
    /// (taken back by [`Limits::login_succeeded`]), unless the throttle
    /// refuses it: then `Err(seconds)`.
    pub async fn login_reserve(
        &self,
        username: &str,
        ip: Option<ClientIp>,
        now: DateTime<Utc>,
    ) -> Result<(), u64> {
        self.login(username, ip, now, true).await
    }

    async fn login(
        &self,
        username: &str,
        ip: Option<ClientIp>,
        now: DateTime<Utc>,
        count: bool,
    ) -> Result<(), u64> {
        let keys = throttle_keys(username, ip);
        if let Some(shared) = self.redis() {
            let redis_keys = shared_login_keys(shared, username, ip);
            let result = shared
                .counts
                .login(
                    &redis_keys,
                    login_throttle::FREE_FAILURES,
                    login_throttle::FORGET_AFTER,
                    login_throttle::MAX_DELAY,
                    count,
                )
                .await;
            if let Some(wait) = self.outcome(shared, result) {
                return match wait {
                    Some(seconds) => Err(seconds),
                    None => Ok(()),
                };
            }
        }
        let local = self.local.load();
        if count {
            local.throttle.reserve(&keys, now)
        } else {
            match local.throttle.blocked(&keys, now) {
                Some(seconds) => Err(seconds),
                None => Ok(()),
            }
        }
    }

    /// A correct password: the username's failures are forgotten and the
    /// attempt counted against the address is taken back.
    pub async fn login_succeeded(&self, username: &str, ip: Option<ClientIp>) {
        let keys = throttle_keys(username, ip);
        if let Some(shared) = self.redis() {
            let redis_keys = shared_login_keys(shared, username, ip);
            let result = shared.counts.login_succeeded(&redis_keys).await;
            if self.outcome(shared, result).is_some() {
                return;
            }
        }
        self.local.load().throttle.succeeded(&keys);
    }

    /// Drops in-process state of keys that went quiet (every minute).
    pub fn forget_idle(&self) {
        self.local.load().buckets.forget_idle();
        if let Some(shared) = &self.shared {
            shared.counts.forget_idle();
            shared.blocked_seen.forget_idle();
        }
    }

    /// Start-up: asks Redis once (bounded by the timeout, or 2 s to
    /// connect), so that the first requests are counted where all later
    /// ones are. A Redis that does not answer does not stop the start.
    pub async fn connect(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        if shared.counts.probe().await.is_ok() {
            shared.up.store(true, Ordering::Release);
            tracing::info!(
                redis = %shared.redacted_url,
                "rate limits and the login throttle are shared by every replica through Redis"
            );
        }
    }

    /// Runs until aborted, when Redis is configured: connects, probes
    /// Redis while it is away and returns to it when it answers, and keeps
    /// the fallback share equal to the replicas alive. `replicas` reads the
    /// heartbeat table (`None` when the database does not answer: the last
    /// share stays).
    pub async fn watch<F, Fut>(self: Arc<Self>, replicas: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Option<u32>>,
    {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut last_count: Option<tokio::time::Instant> = None;
        // Back after two good probes in a row (a second), not one: a
        // Redis that answers one call in three does not flip the replica.
        let mut good_probes = 0;
        let mut was_up = shared.up.load(Ordering::Relaxed);
        let mut ticker = tokio::time::interval(PROBE_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let up = shared.up.load(Ordering::Relaxed);
            // Counted every 5 s, and at once when Redis has just gone:
            // the share the fallback starts with is then current.
            let fell = was_up && !up;
            was_up = up;
            if fell || last_count.is_none_or(|at| at.elapsed() >= REPLICAS_INTERVAL) {
                last_count = Some(tokio::time::Instant::now());
                let count = tokio::time::timeout(Duration::from_secs(1), replicas())
                    .await
                    .ok()
                    .flatten();
                // The share changes while the in-process buckets are idle
                // (Redis up) or just taken over; not later in an outage:
                // new buckets would forget what the old ones counted.
                if let Some(count) = count.filter(|_| up || fell) {
                    let share = count.max(1);
                    if share != self.local.load().share {
                        tracing::info!(
                            replicas = share,
                            "the in-process fallback now allows 1/{share} of each limit"
                        );
                        self.local
                            .store(Arc::new(Local::new(&self.settings, share)));
                    }
                }
            }
            if up {
                // Also while up: a replica without traffic notices Redis
                // going (and says so in /metrics) as one with traffic does.
                let result = shared.counts.probe().await;
                self.outcome(shared, result);
                continue;
            }
            match shared.counts.probe().await {
                Ok(()) if good_probes == 0 => good_probes = 1,
                Ok(()) => {
                    good_probes = 0;
                    shared.failures_in_row.store(0, Ordering::Relaxed);
                    shared.announced_down.store(false, Ordering::Release);
                    shared.up.store(true, Ordering::Release);
                    was_up = true;
                    tracing::info!(
                        redis = %shared.redacted_url,
                        "Redis answers: rate limits and the login throttle are shared by every replica"
                    );
                }
                Err(trouble) => {
                    good_probes = 0;
                    shared.counts.disconnect();
                    // Away from the start (a fall from "up" was logged
                    // where it was noticed).
                    self.announce_down(shared, trouble);
                }
            }
        }
    }
}

/// Pairs known to be blocked in Redis, kept by the replica that learnt it
/// (bounded: a flood of failing pairs cannot grow it for good).
#[derive(Default)]
struct BlockedPairs(std::sync::Mutex<std::collections::HashMap<Vec<u8>, std::time::Instant>>);

const MAX_BLOCKED_PAIRS: usize = 100_000;

impl BlockedPairs {
    fn blocked(&self, pair: &[u8]) -> Option<Duration> {
        let now = std::time::Instant::now();
        let mut pairs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let until = *pairs.get(pair)?;
        if until <= now {
            pairs.remove(pair);
            return None;
        }
        Some(until - now)
    }

    fn remember(&self, pair: Vec<u8>, wait: Duration) {
        let now = std::time::Instant::now();
        let mut pairs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if pairs.len() >= MAX_BLOCKED_PAIRS {
            pairs.retain(|_, until| *until > now);
            if pairs.len() >= MAX_BLOCKED_PAIRS {
                // Still refused at its next failure, through Redis.
                return;
            }
        }
        pairs.insert(pair, now + wait);
    }

    fn forget_idle(&self) {
        let now = std::time::Instant::now();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, until| *until > now);
    }
}

/// The identifier of a (client IP, client_id) pair.
fn pair(ip: IpKey, client_id: &str) -> Vec<u8> {
    let mut bytes = ip.to_bytes().to_vec();
    bytes.push(0);
    bytes.extend_from_slice(client_id.as_bytes());
    bytes
}

fn shared_login_keys(
    shared: &Shared,
    username: &str,
    ip: Option<ClientIp>,
) -> super::shared::LoginKeys {
    let ip = match ip {
        Some(ip) => ip.key.to_bytes().to_vec(),
        // No believed address: every such attempt shares one record, as
        // in process. The whole username is hashed (a hash is bounded
        // whatever was typed), exactly as audit events hash it.
        None => Vec::new(),
    };
    shared.counts.login_keys(username, &ip)
}
