//! Counts every replica shares, in Redis (`AUTHD_REDIS_URL`): the rate-limit
//! buckets and the login failure throttle, so that N replicas together admit
//! what one would.
//!
//! Each decision is one Lua script run atomically by Redis (`EVALSHA`, one
//! round trip), with Redis's own clock (`TIME`), so the replicas' clocks do
//! not matter. The buckets are GCRA, as `governor` is in process: a key holds
//! the bucket's theoretical arrival time in microseconds and expires when the
//! bucket is full again, so idle keys cost nothing. The algorithm is authd's
//! (a few lines of Lua); the client, connection handling and script caching
//! are the `redis` crate's.
//!
//! Keys are `PREFIX` + a kind + a keyed hash (HMAC-SHA256 under the audit
//! username key, which every replica shares through the database): a key
//! never holds an address, a client id, a username, a secret or a token in
//! clear. A username hashes exactly as in audit events, so a throttled name
//! in Redis can be matched with its audit trail.
//!
//! Every call is bounded by the configured timeout; any error, timeout or
//! reply of the wrong shape is `Trouble`, which the caller (`limiter.rs`)
//! answers with its in-process fallback. Nothing here panics on what Redis
//! says.
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script};
use secrecy::{ExposeSecret, SecretString};

use super::buckets::{Decision, Rate, ceil_secs};
use crate::crypto::Digester;

/// `AUTHD_REDIS_URL`, `AUTHD_REDIS_PREFIX`, `AUTHD_REDIS_TIMEOUT_MS`.
#[derive(Clone)]
pub struct RedisSettings {
    /// May hold a password: only [`RedisSettings::redacted`] is ever shown.
    pub url: SecretString,
    pub prefix: String,
    pub timeout: Duration,
    /// `AUTHD_REDIS_LEASES` (default on): busy buckets are taken from
    /// Redis in small batches (see `Lease`).
    pub leases: bool,
}

pub const DEFAULT_PREFIX: &str = "authd:";
/// A Redis on the same network answers in well under a millisecond; a
/// request never waits longer than this for one (then the in-process
/// fallback decides).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10);

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.redacted())
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("leases", &self.leases)
            .finish()
    }
}

impl RedisSettings {
    /// Parses and checks the settings; errors name the variable's problem
    /// without repeating the URL (it may hold a password).
    pub fn parse_with_leases(
        url: &str,
        prefix: Option<&str>,
        timeout_ms: Option<&str>,
        leases: Option<&str>,
    ) -> Result<Self, (&'static str, String)> {
        let mut settings = Self::parse(url, prefix, timeout_ms)?;
        settings.leases = match leases.map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err((
                    "AUTHD_REDIS_LEASES",
                    format!("expected on or off, got {other:?}"),
                ));
            }
        };
        Ok(settings)
    }

    pub fn parse(
        url: &str,
        prefix: Option<&str>,
        timeout_ms: Option<&str>,
    ) -> Result<Self, (&'static str, String)> {
        let parsed =
            url::Url::parse(url).map_err(|e| ("AUTHD_REDIS_URL", format!("not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err((
                "AUTHD_REDIS_URL",
                format!(
                    "the scheme must be redis:// or rediss://, not {:?}",
                    parsed.scheme()
                ),
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(("AUTHD_REDIS_URL", "names no host".into()));
        }
        if parsed.fragment().is_some() {
            return Err((
                "AUTHD_REDIS_URL",
                "a #fragment (such as #insecure) is not supported: certificates are always \
                 verified, against the system's CAs or SSL_CERT_FILE"
                    .into(),
            ));
        }
        // The crate's own reading must agree (database number, TLS flags).
        if let Err(error) = redis::Client::open(url) {
            return Err((
                "AUTHD_REDIS_URL",
                format!("not a Redis URL ({:?})", error.kind()),
            ));
        }
        let prefix = prefix.unwrap_or(DEFAULT_PREFIX).to_owned();
        if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err((
                "AUTHD_REDIS_PREFIX",
                "must be 1 to 64 printable ASCII characters without spaces".into(),
            ));
        }
        let timeout = match timeout_ms {
            None => DEFAULT_TIMEOUT,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(ms @ 1..=1000) => Duration::from_millis(ms),
                _ => {
                    return Err((
                        "AUTHD_REDIS_TIMEOUT_MS",
                        format!("expected milliseconds from 1 to 1000, got {text:?}"),
                    ));
                }
            },
        };
        Ok(Self {
            url: SecretString::from(url.to_owned()),
            prefix,
            timeout,
            leases: true,
        })
    }

    /// The URL without user, password, query or fragment: what logs show.
    pub fn redacted(&self) -> String {
        match url::Url::parse(self.url.expose_secret()) {
            Ok(url) => format!(
                "{}://{}:{}{}",
                url.scheme(),
                url.host_str().unwrap_or("?"),
                url.port().unwrap_or(6379),
                url.path()
            ),
            Err(_) => "(invalid)".into(),
        }
    }
}

/// Why Redis could not decide. Carries no text from Redis or the URL (the
/// caller logs it once per change of state, never per call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// No answer within `AUTHD_REDIS_TIMEOUT_MS`.
    Timeout,
    /// No connection yet (the watcher makes one).
    NotConnected,
    /// Connecting failed (refused, TLS, authentication, unreachable).
    Connect,
    /// Redis answered with an error (`NOSCRIPT` is handled; `OOM`,
    /// `READONLY`, `NOPERM` and the like end here).
    Refused(redis::ErrorKind),
    /// A reply that is not what the script returns.
    Reply,
}

/// GCRA over one key, taking up to ARGV[3] requests at once (a lease),
/// after handing back ARGV[4] a lapsed lease did not use. KEYS[1]: the
/// bucket. ARGV: the interval between requests (µs), the burst, the most
/// to take, the number handed back. Returns {taken, remaining, wait µs}:
/// taken is 0 when not even one fits, and wait is then the time until one
/// does.
/// Numbers are written with `%d`: Lua's default number format would write
/// 1.8e+15 and lose the microseconds.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local given = tonumber(ARGV[4]) or 0
local tat = (tonumber(redis.call('GET', KEYS[1]) or 0) or 0) - given * interval
if tat < now then tat = now end
local free = math.floor((now + interval * burst - tat) / interval)
if free < 1 then
  return {0, 0, tat + interval - interval * burst - now}
end
local taken = math.min(want, free)
local new_tat = tat + taken * interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return {taken, free - taken, 0}
";

/// A failed client authentication. KEYS[1]: the failures bucket, KEYS[2]:
/// the block marker. The failure that empties the bucket blocks the pair
/// until the bucket admits one again (as `RateLimits::client_auth_failed`).
/// Returns {1, ms} when the pair was blocked already (nothing counted),
/// else {0, ms of the block this failure started, or 0}.
const FAIL: &str = r"
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then return {1, blocked} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tat < now then tat = now end
local new_tat = tat + interval
local wait = 0
if new_tat - now > interval * burst then
  wait = tat + interval - interval * burst - now
else
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
  if now + interval * burst - new_tat < interval then wait = interval end
end
if wait > 0 then
  local ms = math.max(1, math.ceil(wait / 1000))
  redis.call('SET', KEYS[2], '1', 'PX', ms)
  return {0, ms}
end
return {0, 0}
";

/// The login throttle (as `LoginThrottle`): KEYS are the username's and the
/// address's failure records, ARGV[1..n] their free failures, then the
/// forget period and the longest delay (ms), then 1 to count this attempt
/// (reserve) or 0 to only check. Returns the wait in ms (0: go ahead).
const LOGIN: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local forget = tonumber(ARGV[n + 1])
local max_delay = tonumber(ARGV[n + 2])
local count_it = ARGV[n + 3] == '1'
local wait = 0
for i = 1, n do
  local blocked = tonumber(redis.call('HGET', KEYS[i], 'until') or 0) or 0
  if blocked - now > wait then wait = blocked - now end
end
if wait > 0 or not count_it then return wait end
for i = 1, n do
  local count = redis.call('HINCRBY', KEYS[i], 'count', 1)
  local over = count - tonumber(ARGV[i])
  if over >= 0 then
    if over > 20 then over = 20 end
    local delay = math.min(2 ^ over * 1000, max_delay)
    redis.call('HSET', KEYS[i], 'until', string.format('%d', now + delay))
  end
  redis.call('PEXPIRE', KEYS[i], forget)
end
return 0
";

/// A successful login: forgets the username's failures, takes back the
/// attempt counted against the address.
const SUCCEEDED: &str = r"
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 and redis.call('HINCRBY', KEYS[2], 'count', -1) < 0 then
  redis.call('HSET', KEYS[2], 'count', 0)
end
return 0
";

/// Requests a replica took from a shared bucket ahead of time: most
/// requests of a busy key are then decided here, without a round trip.
/// A lease never admits more than the bucket held (its requests were taken
/// in Redis first); requests a replica leased but did not use within
/// `LEASE_LIFETIME` are lost, so other replicas may be refused slightly
/// early (at most one lease per replica and key).
struct Lease {
    left: u32,
    /// What Redis said was left besides this lease.
    remaining: u32,
    until: std::time::Instant,
    /// A request is fetching a lease for this key: others meanwhile take
    /// one request each instead of a lease each.
    fetching_until: Option<std::time::Instant>,
}

impl Lease {
    fn live(&self, now: std::time::Instant) -> bool {
        (self.left > 0 && self.until > now) || self.fetching_until.is_some_and(|t| t > now)
    }
}

enum Spend {
    Spent(u32),
    Miss {
        want: u32,
        give_back: u32,
        fetcher: bool,
    },
}

/// A lease is at most 1 % of the bucket (and at most 100 requests): a
/// bucket under 200 is taken one request at a time, exactly. What a lease
/// did not use is handed back with the next call for its key (the next
/// `TAKE`'s ARGV[4]), so slow traffic does not drain the bucket.
fn lease_size(rate: Rate) -> u32 {
    (rate.count.get() / 100).clamp(1, 100)
}
const LEASE_LIFETIME: Duration = Duration::from_secs(1);
/// Bound on the keys with a lease (a flood of addresses cannot grow it).
const MAX_LEASES: usize = 100_000;

pub(crate) struct SharedCounts {
    /// Off (`AUTHD_REDIS_LEASES=off`): every request asks Redis.
    leases_on: bool,
    /// Keyed by kind and identifier in clear (process memory only): a
    /// request served from a lease computes no HMAC.
    leases: std::sync::Mutex<std::collections::HashMap<Vec<u8>, Lease>>,
    client: redis::Client,
    /// Made on first use and by the health probe; the manager reconnects by
    /// itself after that.
    connection: ArcSwapOption<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    hasher: Digester,
    take: Script,
    fail: Script,
    login: Script,
    succeeded: Script,
}

impl std::fmt::Debug for SharedCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCounts")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// What a login attempt is throttled by, hashed for Redis.
pub(crate) struct LoginKeys {
    username: String,
    ip: String,
}

impl SharedCounts {
    pub fn new(settings: &RedisSettings, hasher: Digester) -> Result<Self, Trouble> {
        // rediss:// runs on rustls, which needs one process-wide crypto
        // provider: aws-lc-rs, authd's crypto already. An error means one
        // is installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client =
            redis::Client::open(settings.url.expose_secret()).map_err(|_| Trouble::Connect)?;
        Ok(Self {
            leases_on: settings.leases,
            leases: std::sync::Mutex::new(std::collections::HashMap::new()),
            client,
            connection: ArcSwapOption::empty(),
            prefix: settings.prefix.clone(),
            timeout: settings.timeout,
            hasher,
            take: Script::new(TAKE),
            fail: Script::new(FAIL),
            login: Script::new(LOGIN),
            succeeded: Script::new(SUCCEEDED),
        })
    }

    /// `PREFIX kind : hash(identifier)`.
    fn key(&self, kind: &str, identifier: &[u8]) -> String {
        format!(
            "{}{kind}:{}",
            self.prefix,
            short_hash(&self.hasher, identifier)
        )
    }

    /// The health probe: connects if there is no connection, then runs
    /// the bucket script on a key of its own (a huge bucket, so it never
    /// refuses). A plain `PING` would pass where every script fails (`OOM`
    /// under `maxmemory`, a read-only replica, an ACL without scripting).
    pub async fn probe(&self) -> Result<(), Trouble> {
        self.connection().await?;
        let mut invocation = self.take.prepare_invoke();
        invocation
            .key(format!("{}probe", self.prefix))
            .arg(1)
            .arg(1_000_000)
            .arg(1)
            .arg(0);
        let (taken, _, _): (i64, i64, i64) = self.run(invocation).await?;
        if taken == 1 {
            Ok(())
        } else {
            Err(Trouble::Reply)
        }
    }

    /// Forgets the connection, so the next probe makes a new one: a
    /// socket whose peer vanished without a reset would otherwise time out
    /// every call until the kernel gives up on it (many minutes).
    pub fn disconnect(&self) {
        self.connection.store(None);
    }

    async fn connection(&self) -> Result<ConnectionManager, Trouble> {
        if let Some(connection) = self.connection.load_full() {
            return Ok((*connection).clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout.max(Duration::from_millis(250)))
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1);
        let connection = tokio::time::timeout(
            Duration::from_secs(2),
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| Trouble::Connect)?
        .map_err(|_| Trouble::Connect)?;
        self.connection
            .store(Some(std::sync::Arc::new(connection.clone())));
        Ok(connection)
    }

    async fn run<T: FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, Trouble> {
        let mut connection = match self.connection.load_full() {
            Some(connection) => (*connection).clone(),
            // Not connected yet: the probe connects; a request does not wait.
            None => return Err(Trouble::NotConnected),
        };
        match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection)).await {
            Err(_) => Err(Trouble::Timeout),
            Ok(Err(error)) if error.kind() == redis::ErrorKind::TypeError => Err(Trouble::Reply),
            Ok(Err(error)) => Err(Trouble::Refused(error.kind())),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// Takes one request from the shared bucket `kind` of `identifier`:
    /// from this replica's lease when it holds one, otherwise from Redis
    /// (leasing more of it when the bucket is large, and handing back
    /// what a lapsed lease did not use).
    pub async fn take(
        &self,
        kind: &str,
        identifier: &[u8],
        rate: Rate,
    ) -> Result<Decision, Trouble> {
        let size = if self.leases_on { lease_size(rate) } else { 1 };
        let lease_key = [kind.as_bytes(), &[0], identifier].concat();
        let (want, give_back, fetcher) = if size > 1 {
            match self.spend_lease(&lease_key, size) {
                Spend::Spent(remaining) => return Ok(decision(rate, remaining)),
                Spend::Miss {
                    want,
                    give_back,
                    fetcher,
                } => (want, give_back, fetcher),
            }
        } else {
            (1, 0, false)
        };
        let mut invocation = self.take.prepare_invoke();
        invocation
            .key(self.key(kind, identifier))
            .arg(rate.interval_micros())
            .arg(rate.count.get())
            .arg(want)
            .arg(give_back);
        let reply = self.run(invocation).await;
        if fetcher {
            self.fetched(&lease_key);
        }
        let (taken, remaining, wait) = reply?;
        let (decision, left) = interpret_take(rate, want, taken, remaining, wait)?;
        if left > 0 {
            self.keep_lease(lease_key, left, decision.remaining - left);
        }
        Ok(decision)
    }

    /// Spends one request of this replica's lease on `key`, or says what
    /// to ask Redis for: a whole lease (`fetcher`: no other request is
    /// fetching one for this key right now), or a single request while
    /// another is; and what of a lapsed lease to hand back.
    fn spend_lease(&self, key: &[u8], size: u32) -> Spend {
        let now = std::time::Instant::now();
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        if !leases.contains_key(key) && leases.len() >= MAX_LEASES {
            leases.retain(|_, lease| lease.live(now));
            if leases.len() >= MAX_LEASES {
                // Full of live leases: this key goes without one.
                return Spend::Miss {
                    want: 1,
                    give_back: 0,
                    fetcher: false,
                };
            }
        }
        let lease = leases.entry(key.to_owned()).or_insert(Lease {
            left: 0,
            remaining: 0,
            until: now,
            fetching_until: None,
        });
        if lease.left > 0 && lease.until > now {
            lease.left -= 1;
            return Spend::Spent(lease.remaining + lease.left);
        }
        let give_back = std::mem::take(&mut lease.left).min(size);
        if lease.fetching_until.is_some_and(|until| until > now) {
            return Spend::Miss {
                want: 1,
                give_back,
                fetcher: false,
            };
        }
        lease.fetching_until = Some(now + LEASE_LIFETIME);
        Spend::Miss {
            want: size,
            give_back,
            fetcher: true,
        }
    }

    fn fetched(&self, key: &[u8]) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lease) = leases.get_mut(key) {
            lease.fetching_until = None;
        }
    }

    fn keep_lease(&self, key: Vec<u8>, left: u32, remaining: u32) {
        let now = std::time::Instant::now();
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let Some(lease) = leases.get_mut(&key) else {
            // Evicted meanwhile (a full map): the requests are lost, as
            // with a lapsed lease.
            return;
        };
        lease.left = if lease.until > now {
            lease.left + left
        } else {
            left
        };
        lease.remaining = remaining;
        lease.until = now + LEASE_LIFETIME;
    }

    /// Drops expired leases (with the in-process sweep, every minute).
    pub fn forget_idle(&self) {
        let now = std::time::Instant::now();
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, lease| lease.live(now));
    }

    /// Records a failed client authentication of the pair: whether the
    /// pair was blocked already (then nothing was counted), and for how
    /// long it is blocked now, if it is.
    pub async fn client_auth_failed(
        &self,
        identifier: &[u8],
        rate: Rate,
    ) -> Result<(bool, Option<Duration>), Trouble> {
        let mut invocation = self.fail.prepare_invoke();
        invocation
            .key(self.key("client_auth_failures", identifier))
            .key(self.key("client_auth_blocked", identifier))
            .arg(rate.interval_micros())
            .arg(rate.count.get());
        let (was_blocked, ms): (i64, i64) = self.run(invocation).await?;
        let ms = u64::try_from(ms).map_err(|_| Trouble::Reply)?;
        let blocked = (ms > 0).then(|| Duration::from_millis(ms));
        match was_blocked {
            0 => Ok((false, blocked)),
            1 if blocked.is_some() => Ok((true, blocked)),
            _ => Err(Trouble::Reply),
        }
    }

    pub fn login_keys(&self, username: &str, ip: &[u8]) -> LoginKeys {
        LoginKeys {
            username: format!(
                "{}login_user:{}",
                self.prefix,
                short_hash(&self.hasher, username.as_bytes())
            ),
            ip: self.key("login_ip", ip),
        }
    }

    /// The login throttle: `count` = reserve (count this attempt unless a
    /// key is blocked), otherwise only check. `Some(seconds)` when blocked.
    pub async fn login(
        &self,
        keys: &LoginKeys,
        free: [u32; 2],
        forget: Duration,
        max_delay: Duration,
        count: bool,
    ) -> Result<Option<u64>, Trouble> {
        let mut invocation = self.login.prepare_invoke();
        invocation
            .key(&keys.username)
            .key(&keys.ip)
            .arg(free[0])
            .arg(free[1])
            .arg(forget.as_millis() as u64)
            .arg(max_delay.as_millis() as u64)
            .arg(if count { "1" } else { "0" });
        let ms: i64 = self.run(invocation).await?;
        Ok((ms > 0).then(|| ceil_secs(Duration::from_millis(ms as u64)).max(1)))
    }

    pub async fn login_succeeded(&self, keys: &LoginKeys) -> Result<(), Trouble> {
        let mut invocation = self.succeeded.prepare_invoke();
        invocation.key(&keys.username).key(&keys.ip);
        let _: i64 = self.run(invocation).await?;
        Ok(())
    }
}

/// What a `TAKE` reply means for a request that asked for `want`: the
/// decision, and how many of the taken requests are left for a lease.
/// Any reply outside what the script returns is `Trouble::Reply`.
fn interpret_take(
    rate: Rate,
    want: u32,
    taken: i64,
    remaining: i64,
    wait: i64,
) -> Result<(Decision, u32), Trouble> {
    let limit = rate.count.get();
    let taken = u32::try_from(taken).map_err(|_| Trouble::Reply)?;
    let remaining = u32::try_from(remaining).map_err(|_| Trouble::Reply)?;
    let wait = u64::try_from(wait).map_err(|_| Trouble::Reply)?;
    if taken > want || remaining > limit {
        return Err(Trouble::Reply);
    }
    if taken == 0 {
        let interval = Duration::from_micros(rate.interval_micros());
        let decision = Decision {
            limit,
            remaining: 0,
            reset: ceil_secs(interval * limit),
            retry_after: Some(ceil_secs(Duration::from_micros(wait)).max(1)),
        };
        return Ok((decision, 0));
    }
    let left = taken - 1;
    Ok((decision(rate, remaining + left), left))
}

/// An admitted request's numbers, `remaining` after it.
fn decision(rate: Rate, remaining: u32) -> Decision {
    let limit = rate.count.get();
    let remaining = remaining.min(limit);
    let interval = Duration::from_micros(rate.interval_micros());
    Decision {
        limit,
        remaining,
        reset: ceil_secs(interval * (limit - remaining)),
        retry_after: None,
    }
}

/// The first 8 bytes of the keyed digest, in hex: the form audit events
/// use for usernames (`audit::username_hash`).
pub(crate) fn short_hash(digester: &Digester, bytes: &[u8]) -> String {
    use std::fmt::Write;
    digester
        .digest(bytes)
        .iter()
        .take(8)
        .fold(String::with_capacity(16), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Rate {
        text.parse().unwrap()
    }

    #[test]
    fn take_replies_outside_the_scripts_range_are_trouble() {
        let rate = rate("600/min");
        // Admitted, two of three taken left for a lease.
        let (decision, left) = interpret_take(rate, 3, 3, 100, 0).unwrap();
        assert_eq!((decision.remaining, left), (102, 2));
        assert!(decision.allowed());
        // Refused: the wait is reported in whole seconds, at least 1.
        let (decision, left) = interpret_take(rate, 1, 0, 0, 2_500_000).unwrap();
        assert_eq!((decision.retry_after, left), (Some(3), 0));
        let (decision, _) = interpret_take(rate, 1, 0, 0, 10).unwrap();
        assert_eq!(decision.retry_after, Some(1));
        for (want, taken, remaining, wait) in [
            (1, 2, 0, 0),        // more than asked for
            (1, -1, 0, 0),       // negative
            (1, 1, -5, 0),       // negative
            (1, 0, 0, -1),       // negative wait
            (1, 1, 601, 0),      // more left than the bucket holds
            (1, i64::MAX, 0, 0), // huge
            (1, 1, i64::MAX, 0), // huge
        ] {
            assert_eq!(
                interpret_take(rate, want, taken, remaining, wait).map(|_| ()),
                Err(Trouble::Reply),
                "{taken} {remaining} {wait}"
            );
        }
    }

    #[test]
    fn leases_are_one_percent_and_exact_below_two_hundred() {
        assert_eq!(lease_size(rate("60/min")), 1);
        assert_eq!(lease_size(rate("199/min")), 1);
        assert_eq!(lease_size(rate("600/min")), 6);
        assert_eq!(lease_size(rate("1000000/sec")), 100);
    }

    #[test]
    fn settings_never_show_the_password() {
        let settings =
            RedisSettings::parse("rediss://user:hunter2@cache:6380/1", None, None).unwrap();
        assert_eq!(settings.redacted(), "rediss://cache:6380/1");
        assert!(!format!("{settings:?}").contains("hunter2"));
        for bad in [
            "http://cache",
            "redis://",
            "rediss://cache#insecure",
            "not a url",
        ] {
            let (variable, problem) = RedisSettings::parse(bad, None, None).unwrap_err();
            assert_eq!(variable, "AUTHD_REDIS_URL");
            assert!(!problem.contains("hunter2"));
        }
    }
}
