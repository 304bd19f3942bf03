//! Load generator for `bench/login_storm.sh` (security review issue 14,
//! finding 2): a storm of failed logins against one authd, measuring its
//! memory and how fast it still answers `GET /.well-known/jwks.json`.
//!
//! 1. Prepares LOGIN_STORM_SESSIONS (200) independent browser sessions,
//!    each with its own cookie jar: `GET /authorize` (code flow, PKCE S256)
//!    → 303 to `/login?request=…` → `GET` that page → its hidden `csrf` and
//!    `request` fields.
//! 2. Baseline: authd's VmRSS, and JWKS latency for
//!    LOGIN_STORM_BASELINE_SECONDS (3) with nothing else running.
//! 3. The storm, for LOGIN_STORM_SECONDS (20): every session posts
//!    `/login` at the same moment (a barrier), and each posts again as soon
//!    as it has its answer, so LOGIN_STORM_SESSIONS attempts are in flight
//!    at all times (a closed loop, not waves). Every attempt has a wrong
//!    password, its own username (the known user for 4 attempts of the
//!    first burst, below the 5 free failures per username; `storm-N`,
//!    unknown, for the rest) and its own `X-Forwarded-For` address, taken in
//!    turn from 198.51.100.0/24 and 203.0.113.0/24: any 512 consecutive
//!    attempts (so all attempts in flight together) have distinct addresses
//!    and an address collects one failure per 512 attempts, far below the
//!    20 free failures per IP. So the login throttle never refuses and
//!    every attempt that gets a permit runs argon2id. When the time is up
//!    no new attempt starts; the storm ends when the last answer is in.
//! 4. Meanwhile a separate thread (its own runtime and connection) asks for
//!    the JWKS one request at a time, LOGIN_STORM_JWKS_INTERVAL_MS (20) ms
//!    apart, and a task samples VmRSS from `/proc/PID/status` every 100 ms;
//!    VmHWM (the kernel's peak) is read at the end.
//!
//! Login answers are counted by status: 200 = the password was checked and
//! refused (the login page again, with its form); 503 = refused by the bound
//! on password checks (must carry `Retry-After`); anything else, a page
//! without the form, a 503 without `Retry-After` or a transport error is
//! unexpected. The exit status is 1 when the peak RSS (VmHWM) is over
//! LOGIN_STORM_MAX_RSS_MIB (120), the JWKS p99 during the storm is over
//! LOGIN_STORM_MAX_JWKS_P99_MS (20), anything unexpected happened, no
//! attempt was checked, or the storm was stopped because authd's RSS went
//! over LOGIN_STORM_ABORT_RSS_MIB (4096; the script then kills authd).
//!
//! Environment (set by `bench/login_storm.sh`): LOGIN_STORM_BASE (authd's
//! URL), LOGIN_STORM_PID, LOGIN_STORM_CLIENT_ID, LOGIN_STORM_REDIRECT_URI,
//! LOGIN_STORM_KNOWN_USER; optional as above, plus
//! LOGIN_STORM_TIMEOUT_SECONDS (60, per request).
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, RETRY_AFTER};
use sha2::Digest;
use tokio::task::JoinSet;

/// How often authd's VmRSS is sampled during the storm.
const RSS_INTERVAL: Duration = Duration::from_millis(100);
/// How many sessions are prepared at once (cheap requests; authd is not
/// what is being measured yet).
const PREPARE_CONCURRENCY: usize = 8;
/// Attempts with the known username, all in the first burst (the throttle
/// allows 5 failures per username before it delays).
const KNOWN_USER_ATTEMPTS: u64 = 4;
/// Addresses the attempts take in turn (two /24 documentation ranges).
const ADDRESSES: u64 = 512;
/// The throttle's free failures per IP (`src/limits/login_throttle.rs`).
const FREE_FAILURES_PER_IP: u64 = 20;
/// How many unexpected answers are kept for printing.
const MESSAGES_KEPT: usize = 10;

struct Settings {
    base: String,
    pid: u32,
    client_id: String,
    redirect_uri: String,
    known_user: String,
    sessions: usize,
    seconds: u64,
    baseline_seconds: u64,
    jwks_interval: Duration,
    timeout: Duration,
    max_rss_mib: f64,
    max_jwks_p99_ms: f64,
    abort_rss_mib: f64,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set (run bench/login_storm.sh)"))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: not a number: {text:?}")),
        _ => default,
    }
}

impl Settings {
    fn from_env() -> Self {
        let settings = Self {
            base: env("LOGIN_STORM_BASE").trim_end_matches('/').to_owned(),
            pid: env("LOGIN_STORM_PID")
                .trim()
                .parse()
                .expect("LOGIN_STORM_PID: a process id"),
            client_id: env("LOGIN_STORM_CLIENT_ID"),
            redirect_uri: env("LOGIN_STORM_REDIRECT_URI"),
            known_user: env("LOGIN_STORM_KNOWN_USER"),
            sessions: env_or("LOGIN_STORM_SESSIONS", 200),
            seconds: env_or("LOGIN_STORM_SECONDS", 20),
            baseline_seconds: env_or("LOGIN_STORM_BASELINE_SECONDS", 3),
            jwks_interval: Duration::from_millis(env_or("LOGIN_STORM_JWKS_INTERVAL_MS", 20)),
            timeout: Duration::from_secs(env_or("LOGIN_STORM_TIMEOUT_SECONDS", 60)),
            max_rss_mib: env_or("LOGIN_STORM_MAX_RSS_MIB", 120.0),
            max_jwks_p99_ms: env_or("LOGIN_STORM_MAX_JWKS_P99_MS", 20.0),
            abort_rss_mib: env_or("LOGIN_STORM_ABORT_RSS_MIB", 4096.0),
        };
        assert!(
            settings.sessions > 0,
            "LOGIN_STORM_SESSIONS must be positive"
        );
        assert!(
            settings.sessions as u64 <= ADDRESSES,
            "LOGIN_STORM_SESSIONS: at most {ADDRESSES} (one address per attempt in flight)"
        );
        settings
    }
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// The value of a hidden form field `name` in a page.
fn form_value(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// One browser: its cookie jar and the login form it is on.
struct Session {
    browser: reqwest::Client,
    csrf: String,
    request: String,
}

fn browser(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .unwrap()
}

/// `/authorize` → 303 `/login?request=…` → the login page's form fields.
async fn prepare(settings: &Settings) -> Result<Session, String> {
    let browser = browser(settings.timeout);
    let verifier = random_token();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &settings.client_id)
        .append_pair("redirect_uri", &settings.redirect_uri)
        .append_pair("scope", "openid")
        .append_pair("state", &random_token())
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let response = browser
        .get(format!("{}/authorize?{query}", settings.base))
        .send()
        .await
        .map_err(|e| format!("GET /authorize: {e}"))?;
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let login = match location {
        Some(location) if status == StatusCode::SEE_OTHER && location.starts_with("/login") => {
            location
        }
        _ => {
            let body = response.text().await.unwrap_or_default();
            return Err(format!(
                "GET /authorize: {status}, Location {location:?}: {}",
                body.chars().take(300).collect::<String>()
            ));
        }
    };
    let response = browser
        .get(format!("{}{login}", settings.base))
        .send()
        .await
        .map_err(|e| format!("GET {login}: {e}"))?;
    let status = response.status();
    let page = response
        .text()
        .await
        .map_err(|e| format!("GET {login}: {e}"))?;
    match (form_value(&page, "csrf"), form_value(&page, "request")) {
        (Some(csrf), Some(request)) if status == StatusCode::OK => Ok(Session {
            browser,
            csrf,
            request,
        }),
        _ => Err(format!("GET {login}: {status} without the login form")),
    }
}

/// Counters shared by the storm's tasks.
#[derive(Default)]
struct Tally {
    /// Attempts started (also the next attempt's number).
    started: AtomicU64,
    inner: Mutex<TallyInner>,
}

#[derive(Default)]
struct TallyInner {
    /// Answers by status code.
    statuses: BTreeMap<u16, u64>,
    /// Latencies (µs) of 200 and 503 answers.
    checked_latencies: Vec<u32>,
    busy_latencies: Vec<u32>,
    /// Answers or failures that are not a 200 login page or a 503 with
    /// `Retry-After`.
    unexpected: u64,
    busy_without_retry_after: u64,
    transport_errors: u64,
    /// How often each kind of unexpected answer came.
    kinds: BTreeMap<String, u64>,
}

impl TallyInner {
    fn unexpected(&mut self, kind: String) {
        self.unexpected += 1;
        *self.kinds.entry(kind).or_default() += 1;
    }
}

/// A page's `<title>`, or the start of a body that has none.
fn gist(body: &str) -> String {
    let title = body
        .split_once("<title>")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .map(|(title, _)| title);
    let text = title.unwrap_or(body);
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(120).collect()
}

/// The storm's address for attempt `n`.
fn address(n: u64) -> String {
    let n = n % ADDRESSES;
    if n < 256 {
        format!("198.51.100.{n}")
    } else {
        format!("203.0.113.{}", n - 256)
    }
}

/// One session's attempts, back to back, until `deadline` (or until the
/// storm is stopped from outside).
async fn storm_worker(
    settings: Arc<Settings>,
    mut session: Session,
    tally: Arc<Tally>,
    barrier: Arc<tokio::sync::Barrier>,
    deadline: Instant,
) {
    barrier.wait().await;
    let url = format!("{}/login", settings.base);
    while Instant::now() < deadline {
        let n = tally.started.fetch_add(1, Ordering::Relaxed);
        let first_burst = settings.sessions as u64;
        let username =
            if n < first_burst && n.is_multiple_of(first_burst.div_ceil(KNOWN_USER_ATTEMPTS)) {
                settings.known_user.clone()
            } else {
                format!("storm-{n}")
            };
        let form = [
            ("csrf", session.csrf.as_str()),
            ("request", session.request.as_str()),
            ("username", username.as_str()),
            ("password", "not the password, storm"),
        ];
        let sent = Instant::now();
        let outcome = match session
            .browser
            .post(&url)
            .header("X-Forwarded-For", address(n))
            .form(&form)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status();
                let retry_after = response.headers().contains_key(RETRY_AFTER);
                match response.text().await {
                    Ok(body) => Ok((status, retry_after, body)),
                    Err(e) => Err(format!("reading the body: {e}")),
                }
            }
            Err(e) => Err(format!("transport: {e}")),
        };
        let micros = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
        let mut t = tally.inner.lock().unwrap();
        let (status, retry_after, body) = match outcome {
            Ok(answer) => answer,
            Err(message) => {
                t.transport_errors += 1;
                t.unexpected(message);
                continue;
            }
        };
        *t.statuses.entry(status.as_u16()).or_default() += 1;
        // The next attempt uses the form of the page just answered.
        let form = (form_value(&body, "csrf"), form_value(&body, "request"));
        if let (Some(csrf), Some(request)) = &form {
            session.csrf.clone_from(csrf);
            session.request.clone_from(request);
        }
        match status {
            StatusCode::OK if form.0.is_some() => t.checked_latencies.push(micros),
            // The bound's refusal is the login page again; any other 503
            // (a database pool that timed out, say) is unexpected.
            StatusCode::SERVICE_UNAVAILABLE if form.0.is_some() => {
                t.busy_latencies.push(micros);
                if !retry_after {
                    t.busy_without_retry_after += 1;
                    t.unexpected("503 login page without Retry-After".into());
                }
            }
            _ => {
                let form = if form.0.is_some() { "with" } else { "without" };
                t.unexpected(format!(
                    "{status} {form} the login form, \"{}\", Retry-After {}",
                    gist(&body),
                    if retry_after { "present" } else { "absent" }
                ));
            }
        }
    }
}

/// What the JWKS prober saw.
struct Probe {
    /// Latencies (µs) of the 200 answers.
    latencies: Vec<u32>,
    failures: u64,
    messages: Vec<String>,
}

/// JWKS latencies, one request at a time, `interval` apart, until `stop`;
/// on its own thread and runtime so the storm's tasks cannot delay it.
fn jwks_prober(
    base: String,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Probe> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let url = format!("{base}/.well-known/jwks.json");
            let mut probe = Probe {
                latencies: Vec::new(),
                failures: 0,
                messages: Vec::new(),
            };
            // One request outside the figures opens the connection.
            let _ = http.get(&url).send().await;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let outcome = match http.get(&url).send().await {
                    Ok(response) => {
                        let status = response.status();
                        match response.bytes().await {
                            Ok(_) if status == StatusCode::OK => Ok(()),
                            Ok(_) => Err(format!("{status}")),
                            Err(e) => Err(format!("reading the body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("transport: {e}")),
                };
                let micros = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
                match outcome {
                    Ok(()) => probe.latencies.push(micros),
                    Err(message) => {
                        probe.failures += 1;
                        if probe.messages.len() < MESSAGES_KEPT {
                            probe.messages.push(format!(
                                "JWKS after {:.1} s: {message}",
                                micros as f64 / 1e6
                            ));
                        }
                    }
                }
                tokio::time::sleep(interval).await;
            }
            probe
        })
    })
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

/// "p50 / p90 / p99 / max ms (count)" of latencies in µs.
fn summary(latencies: &mut [u32]) -> String {
    latencies.sort_unstable();
    format!(
        "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2} ms  ({} requests)",
        percentile(latencies, 0.50),
        percentile(latencies, 0.90),
        percentile(latencies, 0.99),
        percentile(latencies, 1.0),
        latencies.len()
    )
}

#[tokio::main]
async fn main() {
    let settings = Arc::new(Settings::from_env());
    let pid = settings.pid;
    let rss_at_start = status_kib(pid, "VmRSS:");

    // 1. Sessions.
    let prepared_at = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(PREPARE_CONCURRENCY));
    let mut preparing = JoinSet::new();
    for _ in 0..settings.sessions {
        let (settings, gate) = (settings.clone(), gate.clone());
        preparing.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            prepare(&settings).await
        });
    }
    let mut sessions = Vec::with_capacity(settings.sessions);
    while let Some(prepared) = preparing.join_next().await {
        match prepared.expect("a preparing task panicked") {
            Ok(session) => sessions.push(session),
            Err(problem) => {
                eprintln!("login_storm: preparing a session failed: {problem}");
                std::process::exit(1);
            }
        }
    }
    println!(
        "login_storm: {} sessions on their login page in {:.1} s",
        sessions.len(),
        prepared_at.elapsed().as_secs_f64()
    );

    // 2. Baseline.
    let rss_baseline = status_kib(pid, "VmRSS:");
    let hwm_baseline = status_kib(pid, "VmHWM:");
    let stop = Arc::new(AtomicBool::new(false));
    let prober = jwks_prober(settings.base.clone(), settings.jwks_interval, stop.clone());
    tokio::time::sleep(Duration::from_secs(settings.baseline_seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut baseline_probe = prober.join().expect("the JWKS prober");

    // 3. Storm, with the JWKS prober and the RSS sampler beside it.
    println!(
        "login_storm: {} failed logins in flight for {} s (X-Forwarded-For from 198.51.100.0/24 and 203.0.113.0/24)",
        settings.sessions, settings.seconds
    );
    let stop = Arc::new(AtomicBool::new(false));
    let prober = jwks_prober(settings.base.clone(), settings.jwks_interval, stop.clone());
    let tally = Arc::new(Tally::default());
    let barrier = Arc::new(tokio::sync::Barrier::new(settings.sessions));
    let begun = Instant::now();
    let deadline = begun + Duration::from_secs(settings.seconds);
    let mut storm = JoinSet::new();
    for session in sessions {
        storm.spawn(storm_worker(
            settings.clone(),
            session,
            tally.clone(),
            barrier.clone(),
            deadline,
        ));
    }
    let mut samples: Vec<(f64, Option<u64>)> = Vec::new();
    let mut ticker = tokio::time::interval(RSS_INTERVAL);
    let mut next_report = 1.0;
    let mut aborted = None;
    loop {
        tokio::select! {
            done = storm.join_next() => match done {
                Some(result) => result.expect("a storm task panicked"),
                None => break,
            },
            _ = ticker.tick() => {
                let at = begun.elapsed().as_secs_f64();
                let rss = status_kib(pid, "VmRSS:");
                samples.push((at, rss));
                if at >= next_report {
                    let t = tally.inner.lock().unwrap();
                    println!(
                        "t={at:>5.1} s  RSS {:>11}  answers {:?}  unexpected {}",
                        mib(rss), t.statuses, t.unexpected
                    );
                    next_report += 1.0;
                }
                match rss {
                    Some(kib) if kib as f64 / 1024.0 > settings.abort_rss_mib => {
                        aborted = Some(format!(
                            "authd's RSS reached {} (over LOGIN_STORM_ABORT_RSS_MIB = {:.0}) at {at:.1} s: storm stopped",
                            mib(rss), settings.abort_rss_mib
                        ));
                    }
                    None => aborted = Some(format!("authd (pid {pid}) is gone at {at:.1} s")),
                    _ => {}
                }
                if aborted.is_some() {
                    storm.abort_all();
                    while storm.join_next().await.is_some() {}
                    break;
                }
            }
        }
    }
    let storm_seconds = begun.elapsed().as_secs_f64();
    let hwm = status_kib(pid, "VmHWM:");
    let rss_end = status_kib(pid, "VmRSS:");
    stop.store(true, Ordering::Relaxed);
    let mut storm_probe = prober.join().expect("the JWKS prober");
    if aborted.is_none() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rss_after = status_kib(pid, "VmRSS:");

    // 4. Report.
    let started = tally.started.load(Ordering::Relaxed);
    let mut t = std::mem::take(&mut *tally.inner.lock().unwrap());
    let checked = t.checked_latencies.len() as u64;
    let busy = t.busy_latencies.len() as u64;
    let sampled_peak = samples.iter().filter_map(|(_, rss)| *rss).max();
    let peak = hwm.max(sampled_peak);
    let peak_mib = peak.map_or(f64::INFINITY, |k| k as f64 / 1024.0);
    let storm_p99 = {
        storm_probe.latencies.sort_unstable();
        percentile(&storm_probe.latencies, 0.99)
    };
    println!();
    println!(
        "storm: {started} attempts in {storm_seconds:.1} s ({} s of starting attempts, then the last answers), {} in flight",
        settings.seconds, settings.sessions
    );
    println!(
        "  answers by status: {}",
        t.statuses
            .iter()
            .map(|(status, count)| format!("{status}: {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  checked and refused (200 login page): {checked} = {:.1}/s; latency {}",
        checked as f64 / storm_seconds,
        summary(&mut t.checked_latencies)
    );
    println!(
        "  refused by the bound (503, the login page): {busy} = {:.1}/s, {} without Retry-After; latency {}",
        busy as f64 / storm_seconds,
        t.busy_without_retry_after,
        summary(&mut t.busy_latencies)
    );
    println!(
        "  unexpected: {} (transport errors {}); attempts per address at most {} (the throttle delays from the {FREE_FAILURES_PER_IP}th failure: a 429)",
        t.unexpected,
        t.transport_errors,
        started.div_ceil(ADDRESSES)
    );
    for (kind, count) in t.kinds.iter().take(MESSAGES_KEPT) {
        println!("    {count} × {kind}");
    }
    println!(
        "JWKS before the storm:  {}, {} failed",
        summary(&mut baseline_probe.latencies),
        baseline_probe.failures
    );
    println!(
        "JWKS during the storm:  {}, {} failed",
        summary(&mut storm_probe.latencies),
        storm_probe.failures
    );
    for message in baseline_probe.messages.iter().chain(&storm_probe.messages) {
        println!("    {message}");
    }
    println!(
        "authd RSS: at start {}, baseline (sessions ready) {} (VmHWM {}), peak during the storm {} (VmHWM {}, highest 100 ms sample {}), at the end {}, {} {}",
        mib(rss_at_start),
        mib(rss_baseline),
        mib(hwm_baseline),
        mib(peak),
        mib(hwm),
        mib(sampled_peak),
        mib(rss_end),
        if aborted.is_none() {
            "1 s later"
        } else {
            "now"
        },
        rss_after.map_or("gone".into(), |k| mib(Some(k)))
    );

    let mut failed = Vec::new();
    if let Some(reason) = &aborted {
        failed.push(reason.clone());
    }
    if peak_mib > settings.max_rss_mib {
        failed.push(format!(
            "peak RSS {peak_mib:.1} MiB > {:.0} MiB",
            settings.max_rss_mib
        ));
    }
    if storm_p99 > settings.max_jwks_p99_ms {
        failed.push(format!(
            "JWKS p99 during the storm {storm_p99:.2} ms > {:.0} ms",
            settings.max_jwks_p99_ms
        ));
    }
    if storm_probe.latencies.is_empty() || storm_probe.failures + baseline_probe.failures > 0 {
        failed.push(format!(
            "JWKS: {} answers during the storm, {} failures",
            storm_probe.latencies.len(),
            storm_probe.failures + baseline_probe.failures
        ));
    }
    if rss_after.is_none() {
        failed.push(format!("authd (pid {pid}) is gone after the storm"));
    }
    if t.unexpected > 0 {
        failed.push(format!("{} unexpected login answers", t.unexpected));
    }
    if checked == 0 {
        failed.push("no attempt was checked".into());
    }
    println!();
    if failed.is_empty() {
        println!(
            "verdict: PASS (peak RSS {peak_mib:.1} <= {:.0} MiB, JWKS p99 {storm_p99:.2} <= {:.0} ms, no unexpected answer)",
            settings.max_rss_mib, settings.max_jwks_p99_ms
        );
    } else {
        println!("verdict: FAIL: {}", failed.join("; "));
        std::process::exit(1);
    }
}
