//! Load generator for `bench/soak.sh`: a bounded mixed load against two
//! authd replicas sharing one PostgreSQL database, for SOAK_SECONDS.
//!
//! - `cc` workers ask for client-credentials tokens (RFC 6749 §4.4),
//!   alternating replicas request by request;
//! - `flow` workers sign a user in through the browser pages over plain
//!   HTTP (RFC 6749 §4.1 with PKCE S256, RFC 7636), each step at the other
//!   replica than the one before (the session cookie, the pending request
//!   and the CSRF token must be honoured by both), exchange the code at the
//!   other replica, call `/userinfo` there, then rotate the refresh token
//!   (OIDC Core §11) a few times, alternating replicas.
//!
//! Every response that is not the one expected is an error. Each replica's
//! VmRSS is sampled every 10 s from `/proc/PID/status`. The exit status is
//! 0 only with zero errors and flat RSS.
//!
//! Environment (set by `bench/soak.sh`): SOAK_REPLICAS (comma-separated
//! base URLs), SOAK_PIDS (their process ids, same order), SOAK_ISSUER,
//! SOAK_CC_ID, SOAK_CC_SECRET, SOAK_WEB_ID, SOAK_WEB_SECRET,
//! SOAK_REDIRECT_URI, SOAK_USERS (comma-separated usernames),
//! SOAK_PASSWORD; optional SOAK_SECONDS (180), SOAK_CC_WORKERS (4),
//! SOAK_FLOW_WORKERS (2), SOAK_REFRESHES (5 per sign-in).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use serde_json::Value;
use sha2::Digest;

/// How often each replica's RSS is sampled.
const RSS_INTERVAL: Duration = Duration::from_secs(10);
/// Each sample is the lowest of this many readings, `RSS_READING_GAP`
/// apart: a password check in flight holds argon2id's 19 MiB for some tens
/// of milliseconds, which is not growth (VmHWM, printed at the end, shows it).
const RSS_READINGS: usize = 5;
const RSS_READING_GAP: Duration = Duration::from_millis(100);
/// RSS may grow this much (fraction of the first minute's peak) ...
const RSS_GROWTH_FRACTION: f64 = 0.10;
/// ... or this many KiB, whichever is larger, and still count as flat.
const RSS_GROWTH_SLACK_KIB: u64 = 4 * 1024;
/// How many error descriptions are kept for printing.
const ERRORS_KEPT: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ClientCredentials,
    Authorize,
    LoginPage,
    LoginPost,
    ConsentPage,
    ConsentPost,
    CodeExchange,
    Userinfo,
    Refresh,
}

const KINDS: [Kind; 9] = [
    Kind::ClientCredentials,
    Kind::Authorize,
    Kind::LoginPage,
    Kind::LoginPost,
    Kind::ConsentPage,
    Kind::ConsentPost,
    Kind::CodeExchange,
    Kind::Userinfo,
    Kind::Refresh,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ClientCredentials => "client_credentials",
            Kind::Authorize => "GET /authorize",
            Kind::LoginPage => "GET /login",
            Kind::LoginPost => "POST /login",
            Kind::ConsentPage => "GET /consent",
            Kind::ConsentPost => "POST /consent",
            Kind::CodeExchange => "code exchange",
            Kind::Userinfo => "/userinfo",
            Kind::Refresh => "refresh_token",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

struct Settings {
    replicas: Vec<String>,
    pids: Vec<u32>,
    issuer: String,
    seconds: u64,
    cc_workers: usize,
    flow_workers: usize,
    refreshes: usize,
    cc_id: String,
    cc_secret: String,
    web_id: String,
    web_secret: String,
    redirect_uri: String,
    users: Vec<String>,
    password: String,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set (run bench/soak.sh)"))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: not a number: {text:?}")),
        Err(_) => default,
    }
}

fn list(name: &str) -> Vec<String> {
    env(name)
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Settings {
    fn from_env() -> Self {
        let settings = Self {
            replicas: list("SOAK_REPLICAS"),
            pids: list("SOAK_PIDS")
                .iter()
                .map(|p| p.parse().expect("SOAK_PIDS: process ids"))
                .collect(),
            issuer: env("SOAK_ISSUER"),
            seconds: env_or("SOAK_SECONDS", 180),
            cc_workers: env_or("SOAK_CC_WORKERS", 4),
            flow_workers: env_or("SOAK_FLOW_WORKERS", 2),
            refreshes: env_or("SOAK_REFRESHES", 5),
            cc_id: env("SOAK_CC_ID"),
            cc_secret: env("SOAK_CC_SECRET"),
            web_id: env("SOAK_WEB_ID"),
            web_secret: env("SOAK_WEB_SECRET"),
            redirect_uri: env("SOAK_REDIRECT_URI"),
            users: list("SOAK_USERS"),
            password: env("SOAK_PASSWORD"),
        };
        assert!(!settings.replicas.is_empty(), "SOAK_REPLICAS is empty");
        assert_eq!(
            settings.replicas.len(),
            settings.pids.len(),
            "one pid per replica"
        );
        assert!(!settings.users.is_empty(), "SOAK_USERS is empty");
        settings
    }
}

/// Counters shared by every worker.
struct Shared {
    requests: [AtomicU64; KINDS.len()],
    errors: [AtomicU64; KINDS.len()],
    messages: Mutex<Vec<String>>,
    flows: AtomicU64,
}

impl Shared {
    fn new() -> Self {
        Self {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            messages: Mutex::new(Vec::new()),
            flows: AtomicU64::new(0),
        }
    }

    fn error(&self, kind: Kind, replica: usize, message: String) {
        self.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
        let mut messages = self.messages.lock().unwrap();
        if messages.len() < ERRORS_KEPT {
            messages.push(format!("{} at replica {replica}: {message}", kind.name()));
        }
    }

    fn total_requests(&self) -> u64 {
        self.requests
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    fn total_errors(&self) -> u64 {
        self.errors.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// One worker's view: the settings, the counters and its own latencies
/// (microseconds, per kind), merged at the end.
struct Worker {
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    latencies: Vec<Vec<u32>>,
}

/// A response read to the end.
struct Reply {
    headers: HeaderMap,
    body: String,
}

impl Worker {
    fn new(settings: Arc<Settings>, shared: Arc<Shared>) -> Self {
        Self {
            settings,
            shared,
            latencies: vec![Vec::new(); KINDS.len()],
        }
    }

    fn url(&self, replica: usize, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.settings.replicas[replica])
        }
    }

    /// Sends `request`, reads the body and records the latency; anything
    /// but `expected` (or a transport failure) counts as an error.
    async fn call(
        &mut self,
        kind: Kind,
        replica: usize,
        request: reqwest::RequestBuilder,
        expected: StatusCode,
    ) -> Option<Reply> {
        self.shared.requests[kind.index()].fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                match response.text().await {
                    Ok(body) => Ok((status, headers, body)),
                    Err(e) => Err(format!("reading the body: {e}")),
                }
            }
            Err(e) => Err(format!("transport: {e}")),
        };
        let elapsed = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
        self.latencies[kind.index()].push(elapsed);
        match outcome {
            Ok((status, headers, body)) if status == expected => Some(Reply { headers, body }),
            Ok((status, headers, body)) => {
                let location = headers
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(|l| format!(" Location: {l}"))
                    .unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                self.shared.error(
                    kind,
                    replica,
                    format!("{status} (expected {expected}){location} {body}"),
                );
                None
            }
            Err(message) => {
                self.shared.error(kind, replica, message);
                None
            }
        }
    }

    /// A successful reply's JSON object, or an error of `kind`.
    fn json(&self, kind: Kind, replica: usize, reply: &Reply, fields: &[&str]) -> Option<Value> {
        match serde_json::from_str::<Value>(&reply.body) {
            Ok(value) if fields.iter().all(|f| value[*f].is_string()) => Some(value),
            _ => {
                let body: String = reply.body.chars().take(300).collect();
                self.shared
                    .error(kind, replica, format!("200 without {fields:?}: {body}"));
                None
            }
        }
    }
}

fn location(reply: &Reply) -> Option<String> {
    reply
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The value of a hidden form field `name` in a page.
fn form_value(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The unverified payload of a JWS.
fn jwt_payload(token: &str) -> Option<Value> {
    let part = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

async fn client_credentials_worker(
    mut worker: Worker,
    http: reqwest::Client,
    index: usize,
    deadline: Instant,
) -> Worker {
    let settings = worker.settings.clone();
    let mut replica = index % settings.replicas.len();
    while Instant::now() < deadline {
        let request = http
            .post(worker.url(replica, "/token"))
            .basic_auth(&settings.cc_id, Some(&settings.cc_secret))
            .form(&[("grant_type", "client_credentials")]);
        let kind = Kind::ClientCredentials;
        if let Some(reply) = worker.call(kind, replica, request, StatusCode::OK).await {
            worker.json(kind, replica, &reply, &["access_token"]);
        }
        replica = (replica + 1) % settings.replicas.len();
    }
    worker
}

/// One sign-in, code exchange, `/userinfo` and `refreshes` rotations.
/// `fresh_browser`: a new cookie jar (so a login); otherwise `browser`'s
/// session is reused and `/authorize` answers at once.
async fn flow(
    worker: &mut Worker,
    http: &reqwest::Client,
    browser: &reqwest::Client,
    user: &str,
    start: usize,
    force_consent: bool,
) {
    let settings = worker.settings.clone();
    let replicas = settings.replicas.len();
    let mut replica = start;
    let verifier = random_token();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let state = random_token();
    let nonce = random_token();
    let path = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &settings.web_id)
            .append_pair("redirect_uri", &settings.redirect_uri)
            .append_pair("scope", "openid profile offline_access orders:read")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if force_consent {
            query.append_pair("prompt", "consent");
        }
        format!("/authorize?{}", query.finish())
    };
    let Some(mut reply) = worker
        .call(
            Kind::Authorize,
            replica,
            browser.get(worker.url(replica, &path)),
            StatusCode::SEE_OTHER,
        )
        .await
    else {
        return;
    };
    // Follow the browser through login and consent, each page at the
    // replica after the one that sent it there.
    let mut back = None;
    for _ in 0..6 {
        let Some(next) = location(&reply) else {
            worker
                .shared
                .error(Kind::Authorize, replica, "303 without Location".into());
            return;
        };
        if next.starts_with(&settings.redirect_uri) {
            back = Some(next);
            break;
        }
        let (page_kind, post_kind, post_path) = if next.starts_with("/login") {
            (Kind::LoginPage, Kind::LoginPost, "/login")
        } else if next.starts_with("/consent") {
            (Kind::ConsentPage, Kind::ConsentPost, "/consent")
        } else {
            worker.shared.error(
                Kind::Authorize,
                replica,
                format!("unexpected Location {next}"),
            );
            return;
        };
        replica = (replica + 1) % replicas;
        let Some(page) = worker
            .call(
                page_kind,
                replica,
                browser.get(worker.url(replica, &next)),
                StatusCode::OK,
            )
            .await
        else {
            return;
        };
        let (Some(csrf), Some(request)) = (
            form_value(&page.body, "csrf"),
            form_value(&page.body, "request"),
        ) else {
            worker.shared.error(
                page_kind,
                replica,
                "page without csrf/request fields".into(),
            );
            return;
        };
        let mut form = vec![("csrf", csrf.as_str()), ("request", request.as_str())];
        if post_kind == Kind::LoginPost {
            form.extend([("username", user), ("password", settings.password.as_str())]);
        } else {
            form.push(("decision", "allow"));
        }
        replica = (replica + 1) % replicas;
        let post = browser.post(worker.url(replica, post_path)).form(&form);
        let Some(answer) = worker
            .call(post_kind, replica, post, StatusCode::SEE_OTHER)
            .await
        else {
            return;
        };
        reply = answer;
    }
    let Some(back) = back else {
        worker
            .shared
            .error(Kind::Authorize, replica, "sign-in did not finish".into());
        return;
    };
    // RFC 6749 §4.1.2: code and state; RFC 9207: iss.
    let (code, returned_state, iss) = (
        query_param(&back, "code"),
        query_param(&back, "state"),
        query_param(&back, "iss"),
    );
    let Some(code) = code.filter(|_| {
        returned_state.as_deref() == Some(state.as_str())
            && iss.as_deref() == Some(&settings.issuer)
    }) else {
        worker.shared.error(
            Kind::Authorize,
            replica,
            format!("bad redirect back: {back}"),
        );
        return;
    };

    // RFC 6749 §4.1.3 at the other replica.
    replica = (replica + 1) % replicas;
    let exchange = http
        .post(worker.url(replica, "/token"))
        .basic_auth(&settings.web_id, Some(&settings.web_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", settings.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
        ]);
    let kind = Kind::CodeExchange;
    let Some(reply) = worker.call(kind, replica, exchange, StatusCode::OK).await else {
        return;
    };
    let Some(tokens) = worker.json(
        kind,
        replica,
        &reply,
        &["access_token", "refresh_token", "id_token"],
    ) else {
        return;
    };
    if jwt_payload(tokens["id_token"].as_str().unwrap())
        .is_none_or(|claims| claims["nonce"] != nonce.as_str())
    {
        worker
            .shared
            .error(kind, replica, "ID token without our nonce".into());
    }
    worker.shared.flows.fetch_add(1, Ordering::Relaxed);

    // OIDC Core §5.3 at the replica that did not issue the token.
    replica = (replica + 1) % replicas;
    let access = tokens["access_token"].as_str().unwrap();
    let request = http
        .get(worker.url(replica, "/userinfo"))
        .bearer_auth(access);
    if let Some(reply) = worker
        .call(Kind::Userinfo, replica, request, StatusCode::OK)
        .await
    {
        worker.json(Kind::Userinfo, replica, &reply, &["sub"]);
    }

    // Rotations, alternating replicas: each answer's refresh token is the
    // next request's (one request at a time per family, as README asks).
    let mut refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..settings.refreshes {
        let request = http
            .post(worker.url(replica, "/token"))
            .basic_auth(&settings.web_id, Some(&settings.web_secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
            ]);
        let kind = Kind::Refresh;
        let Some(reply) = worker.call(kind, replica, request, StatusCode::OK).await else {
            return;
        };
        let Some(tokens) = worker.json(kind, replica, &reply, &["access_token", "refresh_token"])
        else {
            return;
        };
        let next = tokens["refresh_token"].as_str().unwrap();
        if next == refresh {
            worker
                .shared
                .error(kind, replica, "refresh token not rotated".into());
            return;
        }
        refresh = next.to_owned();
        replica = (replica + 1) % replicas;
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn flow_worker(
    mut worker: Worker,
    http: reqwest::Client,
    index: usize,
    deadline: Instant,
) -> Worker {
    let settings = worker.settings.clone();
    let mut session = browser();
    let mut n = 0usize;
    while Instant::now() < deadline {
        // Every other sign-in starts in a new browser (a login with
        // argon2id); the others reuse its session. Every fourth asks for
        // consent again (prompt=consent).
        if n.is_multiple_of(2) {
            session = browser();
        }
        let user = &settings.users[(index + n / 2) % settings.users.len()];
        let start = (index + n) % settings.replicas.len();
        flow(&mut worker, &http, &session, user, start, n % 4 == 3).await;
        n += 1;
    }
    worker
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Each replica's settled VmRSS: the lowest of [`RSS_READINGS`] readings.
async fn settled_rss(pids: &[u32]) -> Vec<Option<u64>> {
    let mut lowest: Vec<Option<u64>> = vec![Some(u64::MAX); pids.len()];
    for reading in 0..RSS_READINGS {
        if reading > 0 {
            tokio::time::sleep(RSS_READING_GAP).await;
        }
        for (low, &pid) in lowest.iter_mut().zip(pids) {
            *low = match (*low, status_kib(pid, "VmRSS:")) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            };
        }
    }
    lowest
}

/// Before the load: a client-credentials token from each replica carries
/// the shared issuer (tokens from one must be good at the other).
async fn preflight(settings: &Settings, http: &reqwest::Client) -> Result<(), String> {
    for base in &settings.replicas {
        let response = http
            .post(format!("{base}/token"))
            .basic_auth(&settings.cc_id, Some(&settings.cc_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| format!("{base}: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| format!("{base}: {e}"))?;
        let iss = body["access_token"]
            .as_str()
            .and_then(jwt_payload)
            .map(|claims| claims["iss"].clone());
        if status != StatusCode::OK
            || iss.as_ref().and_then(Value::as_str) != Some(&settings.issuer)
        {
            return Err(format!("{base}: {status}, iss {iss:?}: {body}"));
        }
    }
    Ok(())
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let settings = Arc::new(Settings::from_env());
    let shared = Arc::new(Shared::new());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    if let Err(problem) = preflight(&settings, &http).await {
        eprintln!("soak: preflight failed: {problem}");
        std::process::exit(1);
    }
    println!(
        "soak: {} s against {} ({} client-credentials workers, {} sign-in workers, {} refreshes per sign-in)",
        settings.seconds,
        settings.replicas.join(" and "),
        settings.cc_workers,
        settings.flow_workers,
        settings.refreshes
    );

    let begun = Instant::now();
    let deadline = begun + Duration::from_secs(settings.seconds);
    let mut tasks = Vec::new();
    for i in 0..settings.cc_workers {
        let worker = Worker::new(settings.clone(), shared.clone());
        tasks.push(tokio::spawn(client_credentials_worker(
            worker,
            http.clone(),
            i,
            deadline,
        )));
    }
    for i in 0..settings.flow_workers {
        let worker = Worker::new(settings.clone(), shared.clone());
        tasks.push(tokio::spawn(flow_worker(worker, http.clone(), i, deadline)));
    }

    // RSS samples (seconds since start, KiB per replica) until every
    // worker is done, then one last sample.
    let mut samples: Vec<(f64, Vec<Option<u64>>)> = Vec::new();
    let mut last_requests = 0;
    let mut last_at = 0.0;
    let all_done = futures_util::future::join_all(tasks);
    tokio::pin!(all_done);
    let mut ticker = tokio::time::interval(RSS_INTERVAL);
    let workers = loop {
        tokio::select! {
            workers = &mut all_done => break workers,
            _ = ticker.tick() => {
                let at = begun.elapsed().as_secs_f64();
                let rss = settled_rss(&settings.pids).await;
                let requests = shared.total_requests();
                let rate = if at - last_at >= 1.0 {
                    format!("{:>6.0}/s", (requests - last_requests) as f64 / (at - last_at))
                } else {
                    format!("{:>8}", "-")
                };
                println!(
                    "t={at:>5.0} s  requests {requests:>8} ({rate})  errors {:>3}  RSS {}",
                    shared.total_errors(),
                    rss.iter().map(|r| r.map_or("gone".into(), |k| format!("{:.1} MB", k as f64 / 1024.0))).collect::<Vec<_>>().join(" / "),
                );
                samples.push((at, rss));
                (last_requests, last_at) = (requests, at);
            }
        }
    };
    let elapsed = begun.elapsed().as_secs_f64();
    samples.push((elapsed, settled_rss(&settings.pids).await));
    let peaks: Vec<Option<u64>> = settings
        .pids
        .iter()
        .map(|&p| status_kib(p, "VmHWM:"))
        .collect();

    let mut latencies: Vec<Vec<u32>> = vec![Vec::new(); KINDS.len()];
    for worker in workers {
        let worker = worker.expect("a worker panicked");
        for (all, mine) in latencies.iter_mut().zip(worker.latencies) {
            all.extend(mine);
        }
    }

    println!();
    println!(
        "{:<20} {:>9} {:>8} {:>7} {:>9} {:>9} {:>9}",
        "kind", "requests", "per s", "errors", "p50 ms", "p99 ms", "max ms"
    );
    for kind in KINDS {
        let l = &mut latencies[kind.index()];
        l.sort_unstable();
        println!(
            "{:<20} {:>9} {:>8.1} {:>7} {:>9.2} {:>9.2} {:>9.2}",
            kind.name(),
            shared.requests[kind.index()].load(Ordering::Relaxed),
            l.len() as f64 / elapsed,
            shared.errors[kind.index()].load(Ordering::Relaxed),
            percentile(l, 0.50),
            percentile(l, 0.99),
            percentile(l, 1.0),
        );
    }
    let requests = shared.total_requests();
    let errors = shared.total_errors();
    let flows = shared.flows.load(Ordering::Relaxed);
    println!(
        "{:<20} {:>9} {:>8.1} {:>7}",
        "total",
        requests,
        requests as f64 / elapsed,
        errors
    );
    println!(
        "complete sign-ins (code exchanged): {flows} ({:.1}/s) in {elapsed:.1} s",
        flows as f64 / elapsed
    );
    for message in shared.messages.lock().unwrap().iter() {
        println!("error: {message}");
    }

    // RSS: the first minute's peak against the last minute's peak.
    println!();
    let first_end = 60.0_f64.min(elapsed / 2.0);
    let last_start = (elapsed - 60.0).max(elapsed / 2.0);
    let mut rss_flat = true;
    for (i, pid) in settings.pids.iter().enumerate() {
        let peak = |from: f64, to: f64| {
            samples
                .iter()
                .filter(|(at, _)| *at >= from && *at <= to)
                .filter_map(|(_, rss)| rss[i])
                .max()
        };
        let series: Vec<String> = samples
            .iter()
            .map(|(_, rss)| rss[i].map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)))
            .collect();
        println!(
            "replica {i} (pid {pid}) RSS MB every {} s: {}; VmHWM {}",
            RSS_INTERVAL.as_secs(),
            series.join(" "),
            peaks[i].map_or("-".into(), |k| format!("{:.1} MB", k as f64 / 1024.0))
        );
        // One second of slack at each end: the sample at 60 s is the
        // first minute's.
        match (
            peak(0.0, first_end + 1.0),
            peak(last_start - 1.0, elapsed + 1.0),
        ) {
            (Some(first), Some(last)) => {
                let growth = last as i64 - first as i64;
                let allowed =
                    ((first as f64 * RSS_GROWTH_FRACTION) as u64).max(RSS_GROWTH_SLACK_KIB);
                let flat = growth <= allowed as i64;
                rss_flat &= flat;
                println!(
                    "  peak in the first minute {:.1} MB, in the last minute {:.1} MB: {:+.1} MB ({:+.1} %), allowed +{:.1} MB: {}",
                    first as f64 / 1024.0,
                    last as f64 / 1024.0,
                    growth as f64 / 1024.0,
                    growth as f64 * 100.0 / first as f64,
                    allowed as f64 / 1024.0,
                    if flat { "flat" } else { "GROWING" }
                );
            }
            _ => {
                rss_flat = false;
                println!("  no RSS samples: the process is gone");
            }
        }
    }
    let passed = errors == 0 && rss_flat && requests > 0;
    println!();
    println!(
        "verdict: {} ({errors} errors, RSS {})",
        if passed { "PASS" } else { "FAIL" },
        if rss_flat { "flat" } else { "not flat" }
    );
    if !passed {
        std::process::exit(1);
    }
}
