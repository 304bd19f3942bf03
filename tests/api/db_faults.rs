//! Database outages, against the real binary on a private PostgreSQL
//! cluster that the test stops and starts: what needs the database answers
//! 503 `temporarily_unavailable` with `Retry-After` (RFC 6749 §5.2; RFC 9110
//! §10.2.3) within a bounded time, pages answer a 503 page, `/readyz` says
//! 503, client-credentials tokens keep coming from the in-memory caches, and
//! authd recovers by itself when the database returns.
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

use crate::helpers::{
    PASSWORD, WebClient, assert_no_store, authorize_query, form_value, pkce, query_param,
};
use crate::shutdown::{Binary, Server};

/// The newest PostgreSQL server binaries installed the Debian way
/// (`/usr/lib/postgresql/<version>/bin`) with `initdb` and `pg_ctl`.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Says why the test passes without running (libtest captures `eprintln!`
/// of passing tests, so this goes to the stderr handle).
fn skip_notice(reason: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: db_faults passes without running: {reason}."
    );
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ok(output: Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {:?}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A PostgreSQL cluster of this test alone, in a temporary directory, on
/// 127.0.0.1:`port` (trust authentication, user `postgres`). Stopped
/// (`-m immediate`) and removed when dropped, also when the test panics.
struct Cluster {
    bin: PathBuf,
    /// Owned by `postgres` when the test runs as root: initdb refuses root.
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    /// `initdb` and `pg_ctl start`, or `None` (with a notice) when the
    /// PostgreSQL server binaries are not installed.
    fn create() -> Option<Cluster> {
        let Some(bin) = postgres_bin() else {
            skip_notice("no initdb/pg_ctl under /usr/lib/postgresql/*/bin");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            ok(
                Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(dir.path())
                    .output()
                    .unwrap(),
                "chown the cluster directory",
            );
        }
        let mut cluster = Cluster {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        let data = cluster.data();
        ok(
            cluster
                .tool("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
                .arg("--no-sync")
                .output()
                .unwrap(),
            "initdb",
        );
        // Another process may take the free port first: try a few.
        for attempt in 1..=3 {
            cluster.port = free_port();
            let output = cluster.pg_ctl_start();
            if output.status.success() {
                return Some(cluster);
            }
            assert!(
                attempt < 3,
                "pg_ctl start: {}\n{}",
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(cluster.log()).unwrap_or_default()
            );
        }
        unreachable!()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A PostgreSQL program, run as `postgres` when the test is root.
    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = self.tool("pg_ctl");
        command.arg("-D").arg(self.data()).args(args);
        command
    }

    /// `pg_ctl start -w`: returns once the server accepts connections. Its
    /// output goes to the log file (else the server would hold the pipe).
    fn pg_ctl_start(&self) -> Output {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.pg_ctl(&["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.log())
            .arg("start")
            .output()
            .unwrap()
    }

    fn start(&self) {
        ok(self.pg_ctl_start(), "pg_ctl start");
    }

    /// `pg_ctl stop -m fast`: sessions are cut, the server stops cleanly.
    fn stop(&self) {
        ok(
            self.pg_ctl(&["-w", "-m", "fast", "stop"]).output().unwrap(),
            "pg_ctl stop",
        );
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]).output();
    }
}

/// A browser without JavaScript (cookie jar, redirects not followed) at
/// the server under test.
struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(server: &Server) -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(REQUEST_LIMIT)
                .build()
                .unwrap(),
            base: server.url(""),
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// Opens the page at `path` (login or consent) and posts its form with
    /// its `csrf` and `request` fields plus `fields`.
    async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let page = self.get(path).await;
        assert_eq!(page.status(), 200, "{path}");
        let html = page.text().await.unwrap();
        let csrf = form_value(&html, "csrf").expect("csrf field");
        let request = form_value(&html, "request").expect("request field");
        let mut form = vec![("csrf", csrf.as_str()), ("request", request.as_str())];
        form.extend_from_slice(fields);
        let action = path.split('?').next().unwrap();
        self.http
            .post(format!("{}{action}", self.base))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Runs `/authorize?query` to the redirect back to the client as
    /// `username`, logging in and allowing consent when asked.
    async fn sign_in(&self, query: &str, username: &str) -> String {
        let mut response = self.get(&format!("/authorize?{query}")).await;
        for _ in 0..4 {
            assert_eq!(response.status(), 303, "every step answers 303");
            let next = response.headers()["location"].to_str().unwrap().to_owned();
            response = if next.starts_with("/login") {
                self.submit(&next, &[("username", username), ("password", PASSWORD)])
                    .await
            } else if next.starts_with("/consent") {
                self.submit(&next, &[("decision", "allow")]).await
            } else {
                return next;
            };
        }
        panic!("sign-in did not finish");
    }
}

/// No request may hang while the database is away: the pool gives up on
/// a connection after 5 s.
const REQUEST_LIMIT: Duration = Duration::from_secs(8);

/// `POST /token` with `client_secret_basic` (RFC 6749 §2.3.1).
async fn token(
    http: &reqwest::Client,
    server: &Server,
    (id, secret): (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    http.post(server.url("/token"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .expect("an answer within the client timeout")
}

/// A refresh (RFC 6749 §6).
async fn refresh(
    http: &reqwest::Client,
    server: &Server,
    client: &WebClient,
    refresh_token: &str,
) -> reqwest::Response {
    let secret = client.secret.as_deref().unwrap();
    token(
        http,
        server,
        (&client.id, secret),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// A client-credentials token request (RFC 6749 §4.4.2): the status and
/// whether the body is a token response.
async fn client_credentials(
    http: &reqwest::Client,
    server: &Server,
    machine: (&str, &str),
) -> (u16, Value) {
    let response = token(
        http,
        server,
        machine,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn field(json: &Value, name: &str) -> String {
    json[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {json}"))
        .to_owned()
}

/// Asserts the RFC 6749 §5.2 error of an outage: 503
/// `temporarily_unavailable`, `Retry-After`, a request id to quote.
async fn assert_temporarily_unavailable(response: reqwest::Response) {
    assert_eq!(response.status(), 503);
    assert_no_store(&response);
    let retry_after = response.headers()["retry-after"].to_str().unwrap();
    assert!(
        retry_after.parse::<u64>().is_ok_and(|s| s > 0),
        "Retry-After: {retry_after}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    assert!(
        body["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_and_recovery() {
    let Some(cluster) = Cluster::create() else {
        return;
    };
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("the private cluster answers");
    sqlx::query("CREATE DATABASE authd")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();

    let binary = Binary::new(&cluster.url("authd"));
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
            "--user-access",
            "any",
        ],
        None,
    );
    let machine = binary.run(
        &[
            "clients",
            "create",
            "--name",
            "machine",
            "--scope",
            "orders:read",
        ],
        None,
    );
    let machine_id = field(&machine, "client_id");
    let machine_secret = field(&machine, "client_secret");
    let machine = (machine_id.as_str(), machine_secret.as_str());
    let web = binary.run(
        &[
            "clients",
            "create",
            "--name",
            "web",
            "--redirect-uri",
            "https://app.example/cb",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "orders:read",
        ],
        None,
    );
    let web = WebClient {
        id: field(&web, "client_id"),
        secret: Some(field(&web, "client_secret")),
        redirect_uri: "https://app.example/cb".into(),
    };
    binary.run(
        &["users", "create", "--username", "alice", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let mut server = binary.serve(&[("AUTHD_SHUTDOWN_DRAIN", "0")]).await;
    server.wait_ready(Duration::from_secs(30)).await;

    // Before the outage: a sign-in with offline_access (OIDC Core §11)
    // yields a refresh token.
    let browser = Browser::new(&server);
    let pkce = pkce();
    let back = browser
        .sign_in(
            &authorize_query(
                &web,
                &pkce,
                &[("scope", "openid offline_access orders:read")],
            ),
            "alice",
        )
        .await;
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("a code in {back}"));
    let http = reqwest::Client::builder()
        .timeout(REQUEST_LIMIT)
        .build()
        .unwrap();
    let exchanged = token(
        &http,
        &server,
        (&web.id, web.secret.as_deref().unwrap()),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &web.redirect_uri),
            ("code_verifier", &pkce.verifier),
        ],
    )
    .await;
    assert_eq!(exchanged.status(), 200, "code exchanged");
    let exchanged: Value = exchanged.json().await.unwrap();
    let refresh_token = field(&exchanged, "refresh_token");
    let (status, body) = client_credentials(&http, &server, machine).await;
    assert_eq!(status, 200, "{body}");

    // The outage.
    cluster.stop();
    let timed = |started: Instant| started.elapsed();
    let started = Instant::now();
    let (readyz, refreshed, login, machine_token) = tokio::join!(
        async {
            let response = http.get(server.url("/readyz")).send().await.unwrap();
            (response, timed(started))
        },
        async {
            (
                refresh(&http, &server, &web, &refresh_token).await,
                timed(started),
            )
        },
        async { (browser.get("/login?request=x").await, timed(started)) },
        async {
            (
                client_credentials(&http, &server, machine).await,
                timed(started),
            )
        },
    );
    eprintln!(
        "db_faults: while the database is down, /readyz answered in {:?}, the refresh in \
         {:?}, the login page in {:?}, client_credentials in {:?}",
        readyz.1, refreshed.1, login.1, machine_token.1
    );

    let (readyz, _) = readyz;
    assert_eq!(readyz.status(), 503);
    assert_eq!(readyz.headers()["cache-control"], "no-store");
    let body: Value = readyz.json().await.unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("database")),
        "{body}"
    );

    assert_temporarily_unavailable(refreshed.0).await;

    // The login page of a pending request needs the session from the
    // database: a 503 page, not a 500.
    let (login, _) = login;
    assert_eq!(login.status(), 503);
    assert!(
        login.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        login.headers()
    );
    assert!(login.headers().contains_key("retry-after"));
    let html = login.text().await.unwrap();
    assert!(html.contains("Temporarily unavailable"), "{html}");

    // Clients and signing keys are cached: no database needed.
    let ((status, body), _) = machine_token;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string(), "{body}");
    server.assert_no_panic();

    // The database returns; authd reconnects by itself.
    cluster.start();
    let back = Instant::now();
    let mut ready_after = None;
    let mut refreshed_after = None;
    let mut refreshes_refused = 0;
    while back.elapsed() < Duration::from_secs(30) && refreshed_after.is_none() {
        if ready_after.is_none() {
            let response = http.get(server.url("/readyz")).send().await.unwrap();
            if response.status() == 200 {
                ready_after = Some(back.elapsed());
            }
        }
        let response = refresh(&http, &server, &web, &refresh_token).await;
        match response.status().as_u16() {
            // The refused refresh during the outage left the token usable.
            200 => {
                let body: Value = response.json().await.unwrap();
                assert!(body["refresh_token"].is_string(), "{body}");
                refreshed_after = Some(back.elapsed());
            }
            503 => {
                refreshes_refused += 1;
                assert_temporarily_unavailable(response).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            status => panic!(
                "refresh after the restart: {status} {}",
                response.text().await.unwrap()
            ),
        }
    }
    let refreshed_after = refreshed_after.expect("a refresh works within 30 s of the restart");
    if ready_after.is_none() {
        let response = http.get(server.url("/readyz")).send().await.unwrap();
        assert_eq!(response.status(), 200, "ready once a refresh works");
        ready_after = Some(back.elapsed());
    }
    eprintln!(
        "db_faults: recovery after pg_ctl start returned: /readyz 200 after {:?}, first \
         successful refresh after {refreshed_after:?} ({refreshes_refused} refused first)",
        ready_after.unwrap()
    );
    // Pages work again too: the signed-in session is still there.
    let page = browser.get("/login?request=x").await;
    assert_ne!(page.status(), 503);
    assert!(page.status().as_u16() < 500, "{}", page.status());

    server.terminate();
    let exit = server
        .wait_exit(Duration::from_secs(40))
        .await
        .unwrap_or_else(|| panic!("authd did not exit: {}", server.stderr()));
    assert_eq!(exit.code(), Some(0), "{}", server.stderr());
    server.assert_no_panic();
}
