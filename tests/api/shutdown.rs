//! Graceful shutdown of the real binary (`authd serve`): on SIGTERM
//! `/readyz` answers 503 at once, requests are still served for
//! `AUTHD_SHUTDOWN_DRAIN`, then the listener closes, in-flight requests
//! finish and the process exits 0. A client-credentials load that ignores
//! readiness runs through all of it and every request's outcome is
//! classified.
//!
//! No request that got a connection is lost (issue 7). At the end of the
//! drain delay authd first drops new SYNs on its listener, then waits for
//! actix to accept every connection the kernel already queued, then closes
//! the listener (`src/listener.rs`). A client that keeps sending sees its
//! next connection refused (after its SYN retry), never a reset: the test
//! asserts zero unanswered requests and that authd's request log agrees
//! with what the clients received.
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authd::crypto::MasterKey;
use serde_json::Value;

use crate::helpers::{Backend, on_both_backends, test_database};

/// Runs the `authd` binary against one database with one master key.
pub(crate) struct Binary {
    database_url: String,
    master_key: String,
}

impl Binary {
    pub(crate) fn new(database_url: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            master_key: MasterKey::generate().to_base64(),
        }
    }

    /// The binary with a clean environment: the database, the master key,
    /// JSON logs, and rate limits no single-IP load can reach.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_authd"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("AUTHD_MASTER_KEY", &self.master_key)
            .env("AUTHD_LOG_FORMAT", "json")
            .env("AUTHD_RATE_LIMIT_IP", "1000000/min")
            .env("AUTHD_RATE_LIMIT_LOGIN", "1000000/min")
            .env("AUTHD_RATE_TIERS", "standard=1000000/min")
            .env("AUTHD_RATE_LIMIT_CLIENT_AUTH_FAILURES", "1000000/min");
        command
    }

    /// Runs a CLI command that must succeed; its JSON output.
    pub(crate) fn run(&self, args: &[&str], stdin: Option<&str>) -> Value {
        let mut child = self
            .command(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("authd binary runs");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "authd {args:?}: exit {:?}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("stdout is JSON")
    }

    /// Starts `authd serve` on a port of its choosing (`AUTHD_BIND` port 0,
    /// read back from the "authd is listening" log line) with `extra`
    /// variables; returns once it listens.
    pub(crate) async fn serve(&self, extra: &[(&str, &str)]) -> Server {
        let mut command = self.command(&["serve"]);
        command
            .env("AUTHD_BIND", "127.0.0.1:0")
            .env("AUTHD_WORKERS", "2")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in extra {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("authd binary runs");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut server = Server {
            child,
            port: 0,
            lines,
            reader: Some(reader),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let address = server.log_lines().iter().find_map(|line| {
                let line: Value = serde_json::from_str(line).ok()?;
                (line["message"] == "authd is listening")
                    .then(|| line["address"].as_str().map(str::to_owned))?
            });
            if let Some(address) = address {
                server.port = address.rsplit(':').next().unwrap().parse().unwrap();
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("authd serve exited ({status}): {}", server.stderr());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "authd serve did not listen within 60 s: {}",
            server.stderr()
        );
    }
}

/// A running `authd serve`; killed when dropped (a failing test leaves no
/// process behind).
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Everything the server wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.log_lines().join("\n")
    }

    /// Asserts nothing panicked in the server.
    pub(crate) fn assert_no_panic(&self) {
        let stderr = self.stderr();
        assert!(!stderr.contains("panicked"), "authd panicked:\n{stderr}");
    }

    /// Sends `SIGTERM`, as an orchestrator stopping the pod does.
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub(crate) async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // All of stderr has been read once the pipe closes.
                if let Some(reader) = self.reader.take() {
                    reader.join().unwrap();
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Polls `/readyz` until it answers 200 (at most `limit`).
    pub(crate) async fn wait_ready(&self, limit: Duration) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(response) = http.get(self.url("/readyz")).send().await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "/readyz did not answer 200 within {limit:?}: {}",
            self.stderr()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What became of one `/token` request.
#[derive(Debug, Clone)]
enum Outcome {
    /// 200 with a complete token response.
    Token,
    /// Any other status (a 5xx above all).
    Status(u16),
    /// No connection: the listener is closed (reqwest `is_connect`).
    Refused,
    /// A connection, then no response at all: reset, or closed before the
    /// response began ("connection closed before message completed").
    Unanswered(String),
    /// A response that began and did not complete (a truncated body), or
    /// no answer within the client timeout.
    Broken(String),
}

#[derive(Debug, Clone)]
struct Attempt {
    /// When it was sent and when it ended, from the start of the load.
    sent: Duration,
    done: Duration,
    outcome: Outcome,
}

/// An error with its sources ("error sending request …: client error
/// (SendRequest): connection closed before message completed").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One `client_credentials` request (RFC 6749 §4.4.2), classified.
async fn token_request(http: &reqwest::Client, url: &str, id: &str, secret: &str) -> Outcome {
    let response = match http
        .post(url)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) if error.is_connect() => return Outcome::Refused,
        Err(error) if error.is_timeout() => return Outcome::Broken(describe(&error)),
        Err(error) => return Outcome::Unanswered(describe(&error)),
    };
    let status = response.status().as_u16();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => {
            return Outcome::Broken(format!("status {status}, body: {}", describe(&error)));
        }
    };
    if status != 200 {
        return Outcome::Status(status);
    }
    // RFC 6749 §5.1: a complete token response.
    match serde_json::from_slice::<Value>(&body) {
        Ok(json) if json["access_token"].is_string() && json["token_type"] == "Bearer" => {
            Outcome::Token
        }
        _ => Outcome::Broken(format!("a 200 with a broken body of {} bytes", body.len())),
    }
}

/// How the load's HTTP clients hold connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connections {
    /// reqwest's default pool: idle connections are reused.
    KeepAlive,
    /// `pool_max_idle_per_host(0)`: a fresh connection per request.
    Fresh,
}

const TASKS: usize = 8;
const DRAIN: Duration = Duration::from_secs(1);

/// The `/token` requests authd answered 200, from its request log lines.
fn tokens_logged(stderr: &str) -> usize {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["message"] == "request" && line["path"] == "/token" && line["status"] == 200
        })
        .count()
}

async fn sigterm_under_load(backend: Backend, connections: Connections) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let binary = Binary::new(&database.url);
    binary.run(
        &[
            "apis",
            "create",
            "--identifier",
            "https://orders.example",
            "--name",
            "Orders",
            "--scope",
            "orders:read",
        ],
        None,
    );
    let created = binary.run(
        &[
            "clients",
            "create",
            "--name",
            "load",
            "--scope",
            "orders:read",
        ],
        None,
    );
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let mut server = binary.serve(&[("AUTHD_SHUTDOWN_DRAIN", "1s")]).await;
    server.wait_ready(Duration::from_secs(30)).await;

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let token_url = server.url("/token");
    let load: Vec<_> = (0..TASKS)
        .map(|_| {
            let (url, id, secret, stop) =
                (token_url.clone(), id.clone(), secret.clone(), stop.clone());
            tokio::spawn(async move {
                let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(15));
                if connections == Connections::Fresh {
                    builder = builder.pool_max_idle_per_host(0);
                }
                let http = builder.build().unwrap();
                let mut attempts = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let sent = start.elapsed();
                    let outcome = token_request(&http, &url, &id, &secret).await;
                    let refused = matches!(outcome, Outcome::Refused);
                    attempts.push(Attempt {
                        sent,
                        done: start.elapsed(),
                        outcome,
                    });
                    if refused {
                        // Nothing listens: do not spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                attempts
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    // A fresh connection per probe: what a load balancer's health check does.
    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let ready = probe.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready under load before SIGTERM");

    let term = start.elapsed();
    server.terminate();

    // Readiness turns at once, so load balancers stop sending.
    let mut not_ready = None;
    while start.elapsed() < term + Duration::from_secs(2) {
        let response = probe.get(server.url("/readyz")).send().await.unwrap();
        if response.status() == 503 {
            assert_eq!(response.headers()["cache-control"], "no-store");
            let body: Value = response.json().await.unwrap();
            not_ready = Some((start.elapsed() - term, body));
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (readyz_after, body) = not_ready.expect("/readyz answers 503 after SIGTERM");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["reason"], "shutting down");
    assert!(
        readyz_after <= Duration::from_millis(200),
        "/readyz said 503 only {readyz_after:?} after SIGTERM"
    );

    let exit = server.wait_exit(DRAIN + Duration::from_secs(10)).await;
    let exited_after = start.elapsed() - term;
    // The load keeps knocking on the closed port for a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut attempts = Vec::new();
    for task in load {
        attempts.extend(task.await.unwrap());
    }
    let stderr = server.stderr();

    let count = |keep: &dyn Fn(&Attempt) -> bool| attempts.iter().filter(|a| keep(a)).count();
    let is_token = |a: &Attempt| matches!(a.outcome, Outcome::Token);
    let tokens = count(&is_token);
    let served_before = count(&|a| a.sent < term && is_token(a));
    let served_after = count(&|a| a.sent >= term && is_token(a));
    // Sent after readiness turned, answered before the drain delay ended.
    let served_draining =
        count(&|a| a.sent >= term + readyz_after && a.done < term + DRAIN && is_token(a));
    let refused = count(&|a| matches!(a.outcome, Outcome::Refused));
    let since_term = |t: Duration| t.saturating_sub(term);
    let last_token = attempts
        .iter()
        .filter(|a| is_token(a))
        .map(|a| since_term(a.done))
        .max()
        .unwrap();
    let first_refused = attempts
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Refused))
        // When the refusal was seen: the listener closed before that.
        .map(|a| a.done)
        .min();
    let listed = |pick: &dyn Fn(&Outcome) -> Option<String>| -> Vec<String> {
        attempts
            .iter()
            .filter_map(|a| {
                pick(&a.outcome).map(|what| {
                    format!(
                        "sent {:?}, failed {:?} after SIGTERM: {what}",
                        since_term(a.sent),
                        since_term(a.done)
                    )
                })
            })
            .collect()
    };
    let statuses = listed(&|o| match o {
        Outcome::Status(status) => Some(format!("status {status}")),
        _ => None,
    });
    let broken = listed(&|o| match o {
        Outcome::Broken(why) => Some(why.clone()),
        _ => None,
    });
    let unanswered = listed(&|o| match o {
        Outcome::Unanswered(why) => Some(why.clone()),
        _ => None,
    });
    let logged = tokens_logged(&stderr);
    eprintln!(
        "shutdown ({backend:?}, {connections:?} connections, {TASKS} tasks, drain {DRAIN:?}): \
         {} requests; {served_before} tokens sent before SIGTERM, {served_after} after \
         ({served_draining} sent after /readyz turned and answered within the drain); \
         /readyz 503 {readyz_after:?} after SIGTERM; last token {last_token:?} after SIGTERM; \
         first refused connection {:?} after SIGTERM; {refused} refused; {} other statuses; \
         {} broken; {} unanswered (lost); authd logged {logged} tokens, clients got {tokens}; \
         exit {:?} {exited_after:?} after SIGTERM",
        attempts.len(),
        first_refused.map(since_term),
        statuses.len(),
        broken.len(),
        unanswered.len(),
        exit.map(|status| status.code()),
    );
    for line in &unanswered {
        eprintln!("  unanswered: {line}");
    }

    assert!(served_before > 0, "the load ran before SIGTERM");
    assert!(
        served_draining > 0,
        "tokens are still issued during the drain delay"
    );
    let first_refused = first_refused.expect("the listener closed while the load ran");
    assert!(
        first_refused >= term + DRAIN,
        "a connection was refused {:?} after SIGTERM, before the drain delay ended",
        first_refused - term
    );
    // Never a 5xx, never a truncated response or a hang.
    assert!(statuses.is_empty(), "{statuses:#?}");
    assert!(broken.is_empty(), "{broken:#?}");
    // Every token authd issued reached its client.
    assert_eq!(logged, tokens, "tokens issued by authd vs received");
    // No request that got a connection went unanswered: every request
    // either got its token or was refused a connection.
    assert!(unanswered.is_empty(), "lost requests: {unanswered:#?}");
    assert_eq!(
        tokens + refused,
        attempts.len(),
        "every request accounted for"
    );
    let status = exit.unwrap_or_else(|| panic!("authd did not exit: {stderr}"));
    assert_eq!(status.code(), Some(0), "exit status: {stderr}");
    assert!(
        exited_after <= DRAIN + Duration::from_secs(5),
        "exited {exited_after:?} after SIGTERM"
    );
    assert!(!stderr.contains("panicked"), "authd panicked:\n{stderr}");
    assert!(stderr.contains("SIGTERM"), "the shutdown is logged");
}

async fn sigterm_drains_a_keep_alive_load(backend: Backend) {
    sigterm_under_load(backend, Connections::KeepAlive).await
}

async fn sigterm_drains_a_fresh_connection_load(backend: Backend) {
    sigterm_under_load(backend, Connections::Fresh).await
}

on_both_backends!(
    sigterm_drains_a_keep_alive_load,
    sigterm_drains_a_fresh_connection_load
);

/// After the drain delay, while an in-flight request still runs, a new
/// connection is refused at once (not left waiting on a socket that still
/// listens but drops its SYNs): the listener is really closed. The request
/// in flight is a POST whose body stalls; authd answers it 408 when the
/// body deadline (10 s) passes, and only then exits 0.
async fn new_connections_are_refused_while_in_flight_requests_finish(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(database) = test_database(backend).await else {
        return;
    };
    let binary = Binary::new(&database.url);
    let mut server = binary.serve(&[("AUTHD_SHUTDOWN_DRAIN", "1s")]).await;
    server.wait_ready(Duration::from_secs(30)).await;
    let address = format!("127.0.0.1:{}", server.port);
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(
            b"POST /token HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\ngrant_type",
        )
        .await
        .unwrap();
    // Let the request reach its handler before the signal.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let term = Instant::now();
    server.terminate();

    // Connections are served through the drain delay, then refused. A
    // socket that still listened (while dropping SYNs) would leave every
    // attempt hanging until authd exits.
    let mut refused_after = None;
    let mut dropped = 0;
    while term.elapsed() < Duration::from_secs(5) {
        let attempt = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(&address),
        )
        .await;
        match attempt {
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused_after = Some(term.elapsed());
                break;
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("connect failed with {error}"),
            // Its SYN was dropped: it came while the gate was closing
            // (new SYNs are dropped until the queue is empty, ~100 ms).
            Err(_) => dropped += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused_after = refused_after.unwrap_or_else(|| {
        panic!("no connection refused within 5 s of SIGTERM ({dropped} attempts hung)")
    });
    assert!(dropped <= 1, "{dropped} attempts hung");
    assert!(
        refused_after >= DRAIN,
        "refused {refused_after:?} after SIGTERM, within the drain delay"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "authd still runs: the stalled request is in flight"
    );

    // The request in flight gets its answer, then authd exits 0.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stalled.read_to_end(&mut answer))
        .await
        .expect("the stalled request is answered or closed within 15 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "the stalled body is cut off with 408: {answer}"
    );
    let exit = server.wait_exit(Duration::from_secs(10)).await;
    let stderr = server.stderr();
    eprintln!(
        "in-flight shutdown ({backend:?}): refused {refused_after:?} after SIGTERM \
         ({dropped} attempt dropped during the gate); \
         exit {:?} {:?} after SIGTERM",
        exit.map(|status| status.code()),
        term.elapsed()
    );
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{stderr}");
    server.assert_no_panic();
}

on_both_backends!(new_connections_are_refused_while_in_flight_requests_finish);

/// `AUTHD_SHUTDOWN_DRAIN=0`: no drain delay; an idle server exits 0 at once
/// on SIGINT (Ctrl-C) as on SIGTERM.
async fn sigint_without_drain_exits_zero(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let binary = Binary::new(&database.url);
    let mut server = binary.serve(&[("AUTHD_SHUTDOWN_DRAIN", "0")]).await;
    server.wait_ready(Duration::from_secs(30)).await;
    let status = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server
        .wait_exit(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("authd did not exit on SIGINT: {}", server.stderr()));
    assert_eq!(exit.code(), Some(0), "{}", server.stderr());
    assert!(
        reqwest::get(server.url("/healthz"))
            .await
            .is_err_and(|e| e.is_connect()),
        "the port is closed"
    );
    server.assert_no_panic();
    assert!(server.stderr().contains("SIGINT"), "the shutdown is logged");
}

on_both_backends!(sigint_without_drain_exits_zero);
