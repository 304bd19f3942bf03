//! Limits that hold across replicas (issue 17): three authd apps on one
//! PostgreSQL database and one Redis, requests spread round-robin, admit
//! what one would; a Redis that stops, or answers garbage, never fails a
//! request: each replica falls back to its share of each limit and returns
//! to Redis by itself.
use std::sync::Arc;
use std::time::{Duration, Instant};

use authd::clients::registration::NewClient;
use authd::config::Config;
use authd::crypto::MasterKey;
use authd::limits::buckets::RateLimitSettings;
use authd::limits::shared::RedisSettings;

use crate::helpers::{
    Backend, OwnRedis, TestApp, TestDatabase, authorize_query, form_value, location, pkce,
    spawn_app_on, test_database, test_redis,
};

const TIERS: &str = "standard=100000/sec,low=60/min";

/// `count` replicas on one database, counting in `redis`.
async fn replicas(
    database: &Arc<TestDatabase>,
    redis: Option<&RedisSettings>,
    count: usize,
    adjust: impl Fn(&mut Config),
) -> Vec<TestApp> {
    let key = MasterKey::generate();
    let mut apps = Vec::new();
    for _ in 0..count {
        let copy = MasterKey::from_base64(&key.to_base64()).unwrap();
        apps.push(
            spawn_app_on(database.clone(), copy, |config| {
                config.redis = redis.cloned();
                config.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
                config.rate_limits.tiers = RateLimitSettings::parse_tiers(TIERS).unwrap();
                adjust(config);
            })
            .await
            .expect("replica starts"),
        );
    }
    apps
}

async fn low_tier_client(app: &TestApp) -> (String, String) {
    let (id, secret) = app
        .register(NewClient {
            name: "Low tier".into(),
            scopes: vec!["orders:read".into()],
            rate_tier: Some("low".into()),
            ..Default::default()
        })
        .await;
    (id, secret.expect("a confidential client"))
}

fn header(response: &reqwest::Response, name: &str) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.parse().ok()
}

/// Waits until every replica's `/metrics` names `backend`.
async fn until_backend(apps: &[TestApp], backend: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for app in apps {
        while app.rate_limit_backend().await != backend {
            assert!(
                Instant::now() < deadline,
                "no replica fell back to {backend} in 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A client on a 60/min tier, asking three replicas in turn, gets the
/// tier's 60 (plus the one a second the bucket refills while the test
/// runs), not 3 × 60; the `X-RateLimit-Remaining` the replicas report
/// count down one shared bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_admit_one_tier_between_them() {
    let Some(redis) = test_redis().await else {
        return;
    };
    let Some(database) = test_database(Backend::Postgres).await else {
        return;
    };
    let database = Arc::new(database);
    let apps = replicas(&database, Some(&redis), 3, |_| {}).await;
    let (id, secret) = low_tier_client(&apps[0]).await;
    let started = Instant::now();
    let mut remaining = Vec::new();
    let mut refused = 0;
    for n in 0..120 {
        let response = apps[n % 3].client_credentials(&id, &secret).await;
        match response.status().as_u16() {
            200 => {
                assert_eq!(header(&response, "x-ratelimit-limit"), Some(60));
                remaining.push(header(&response, "x-ratelimit-remaining").unwrap());
            }
            429 => {
                refused += 1;
                assert_eq!(header(&response, "x-ratelimit-limit"), Some(60));
                assert_eq!(header(&response, "x-ratelimit-remaining"), Some(0));
                let wait = header(&response, "retry-after").unwrap();
                assert!((1..=1).contains(&wait), "one cell of 60/min: {wait}");
            }
            other => panic!("request {n}: {other}"),
        }
    }
    let elapsed = started.elapsed().as_secs();
    let admitted = remaining.len() as u64;
    assert!(
        (60..=61 + elapsed).contains(&admitted),
        "{admitted} admitted in {elapsed} s by three replicas (one bucket of 60, +1/s)"
    );
    assert_eq!(refused as u64, 120 - admitted);
    // One bucket: the first 60 answers, from whichever replica, count 59
    // down to 0 (a refill may repeat a number, never raise it).
    assert_eq!(remaining[0], 59);
    assert!(
        remaining.windows(2).take(59).all(|w| w[1] <= w[0]),
        "{remaining:?}"
    );
    for app in &apps {
        app.stop().await;
    }
}

/// A bucket large enough to be leased (1 % of 400/min = 4 requests per
/// lease): three replicas still admit no more than the bucket holds, and
/// leases left unused cost at most a lease per replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_buckets_never_admit_more_than_the_bucket() {
    let Some(redis) = test_redis().await else {
        return;
    };
    let Some(database) = test_database(Backend::Postgres).await else {
        return;
    };
    let database = Arc::new(database);
    let apps = replicas(&database, Some(&redis), 3, |config| {
        config.rate_limits.ip = "400/min".parse().unwrap();
    })
    .await;
    let started = Instant::now();
    let mut admitted = 0u64;
    for n in 0..480 {
        let response = apps[n % 3]
            .http
            .get(apps[n % 3].url("/userinfo"))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            401 => admitted += 1,
            429 => assert_eq!(header(&response, "x-ratelimit-limit"), Some(400)),
            other => panic!("{other}"),
        }
    }
    // 400/min refills one every 150 ms while the test runs.
    let refilled = (started.elapsed().as_millis() / 150) as u64 + 1;
    assert!(
        admitted <= 400 + refilled,
        "{admitted} admitted, the bucket holds 400 (+{refilled} refilled)"
    );
    assert!(
        admitted >= 400 - 3 * 3,
        "{admitted}: more lost to leases than 3 per replica"
    );
    for app in &apps {
        app.stop().await;
    }
}

/// Leases a replica did not use are handed back: a client asking each of
/// three replicas once a second (every lease lapses unused but for one
/// request) spends one request per request, not a lease per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_leases_are_handed_back() {
    let Some(redis) = test_redis().await else {
        return;
    };
    let Some(database) = test_database(Backend::Postgres).await else {
        return;
    };
    let database = Arc::new(database);
    // 12 a lease; the bucket refills one every 3 s, so barely in 5 s.
    let apps = replicas(&database, Some(&redis), 3, |config| {
        config.rate_limits.ip = "1200/hour".parse().unwrap();
    })
    .await;
    let mut last = 0;
    for n in 0..12 {
        let app = &apps[n % 3];
        let response = app.http.get(app.url("/userinfo")).send().await.unwrap();
        assert_eq!(response.status(), 401);
        last = header(&response, "x-ratelimit-remaining").unwrap();
        tokio::time::sleep(Duration::from_millis(370)).await;
    }
    // 12 used; at most one unused lease per replica outstanding (and a
    // reply reports its own lease as still available).
    assert!(
        last >= 1200 - 12 - 3 * 12,
        "{last} left: leases were spent, not handed back"
    );
    for app in &apps {
        app.stop().await;
    }
}

/// A (client IP, client_id) pair blocked through one replica gets 429, not
/// 401, at its next failure on another: guesses are counted for the
/// deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_blocked_on_one_replica_is_refused_on_another() {
    let Some(redis) = test_redis().await else {
        return;
    };
    let Some(database) = test_database(Backend::Postgres).await else {
        return;
    };
    let database = Arc::new(database);
    let apps = replicas(&database, Some(&redis), 2, |config| {
        config.rate_limits.client_auth_failures = "3/hour".parse().unwrap();
    })
    .await;
    let (id, _) = apps[0].machine_client(&["orders:read"]).await;
    let mut statuses = Vec::new();
    for n in 0..6 {
        statuses.push(
            apps[n % 2]
                .client_credentials(&id, "a wrong secret")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429], "{statuses:?}");
    for app in &apps {
        app.stop().await;
    }
}

/// Five wrong passwords for one username, spread over three replicas,
/// trigger the login throttle on the next attempt wherever it lands, as on
/// one replica (in-process counts would allow 3 × 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_spread_over_replicas_are_counted_together() {
    let Some(redis) = test_redis().await else {
        return;
    };
    let Some(database) = test_database(Backend::Postgres).await else {
        return;
    };
    let database = Arc::new(database);
    let apps = replicas(&database, Some(&redis), 3, |_| {}).await;
    apps[0].user("erin").await;
    let client = apps[0].web_client(false, &[]).await;
    let browser = apps[0].browser();
    let login = location(
        &browser
            .authorize(&authorize_query(&client, &pkce(), &[]))
            .await,
    );
    let html = browser.get(&login).await.text().await.unwrap();
    let csrf = form_value(&html, "csrf").unwrap();
    let request = form_value(&html, "request").unwrap();
    let mut statuses = Vec::new();
    for n in 0..6 {
        // The same browser (cookies are per host, not per port) posting
        // to replica n % 3.
        let response = browser
            .http
            .post(apps[n % 3].url("/login"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("request", request.as_str()),
                ("username", "erin"),
                ("password", "wrong password"),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        if status == 200 {
            assert!(
                body.contains("The username or password is not correct."),
                "{body}"
            );
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429], "{statuses:?}");
    for app in &apps {
        app.stop().await;
    }
}

/// Redis stopped mid-run: no request fails; after a few failed calls each
/// replica counts in process at its share of each limit (60/min ÷ 3
/// replicas = 20), says so in `/metrics`, and returns to Redis by itself
/// once Redis answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopping_falls_back_to_a_share_and_recovers() {
    let Some(mut own) = OwnRedis::start().await else {
        return;
    };
    let Some(database) = test_database(Backend::Postgres).await else {
        return;
    };
    let database = Arc::new(database);
    let settings = RedisSettings::parse(&own.url(), None, Some("20")).unwrap();
    let apps = replicas(&database, Some(&settings), 3, |_| {}).await;
    until_backend(&apps, "redis").await;
    let (standard, standard_secret) = apps[0].machine_client(&["orders:read"]).await;
    let (low, low_secret) = low_tier_client(&apps[0]).await;
    for app in &apps {
        assert_eq!(
            app.client_credentials(&standard, &standard_secret)
                .await
                .status(),
            200
        );
    }

    own.stop();
    // Requests go on while Redis is away: none fails.
    for n in 0..30 {
        let response = apps[n % 3]
            .client_credentials(&standard, &standard_secret)
            .await;
        assert_eq!(response.status(), 200, "request {n} while Redis is down");
    }
    until_backend(&apps, "local").await;
    // The share is read from the heartbeat table when Redis goes; give the
    // watcher its tick.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut admitted = 0;
    let mut limits = Vec::new();
    for _ in 0..30 {
        let response = apps[1].client_credentials(&low, &low_secret).await;
        match response.status().as_u16() {
            200 => admitted += 1,
            429 => {}
            other => panic!("{other} while Redis is down"),
        }
        limits.push(header(&response, "x-ratelimit-limit").unwrap());
    }
    assert!(
        (20..=21).contains(&admitted),
        "one replica of three admits 60/min ÷ 3: {admitted}"
    );
    assert!(limits.iter().all(|&l| l == 20), "{limits:?}");

    own.run().expect("Redis restarts");
    until_backend(&apps, "redis").await;
    // Counted in Redis again (its counts were lost with it): the whole tier.
    let response = apps[2].client_credentials(&low, &low_secret).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ratelimit-limit"), Some(60));
    assert_eq!(header(&response, "x-ratelimit-remaining"), Some(59));
    for app in &apps {
        app.stop().await;
    }
}

/// A "Redis" that answers every command with an error, or with bytes that
/// are not RESP at all: authd starts, counts in process, and every request
/// is answered as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_answering_garbage_counts_as_unreachable() {
    for reply in [
        &b"-ERR not today\r\n"[..],
        &b"HTTP/1.1 200 OK\r\n\r\n\x00\xff"[..],
    ] {
        let Some(database) = test_database(Backend::Postgres).await else {
            return;
        };
        let database = Arc::new(database);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 || socket.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let settings =
            RedisSettings::parse(&format!("redis://127.0.0.1:{port}"), None, None).unwrap();
        let apps = replicas(&database, Some(&settings), 1, |config| {
            config.rate_limits.ip = "5/min".parse().unwrap();
        })
        .await;
        let app = &apps[0];
        assert_eq!(app.rate_limit_backend().await, "local");
        let (id, secret) = app.machine_client(&["orders:read"]).await;
        let statuses: Vec<u16> = {
            let mut statuses = Vec::new();
            for _ in 0..6 {
                statuses.push(app.client_credentials(&id, &secret).await.status().as_u16());
            }
            statuses
        };
        // The per-IP limit still holds, in process.
        assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
        app.stop().await;
        server.abort();
    }
}

/// `authd serve` as an operator runs it, with `env` added; its stderr.
fn serve(database_url: &str, env: &[(&str, &str)]) -> std::process::Child {
    let key = MasterKey::generate();
    let mut command = crate::helpers::authd_command(database_url, &key);
    command
        .arg("serve")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("authd runs")
}

/// A malformed `AUTHD_REDIS_URL` stops authd at start with one line naming
/// the variable, and never repeats the password the URL holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_redis_url_stops_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("authd.db").display());
    for (url, variable) in [
        ("http://cache.internal:6379", "AUTHD_REDIS_URL"),
        ("redis://user:hunter2-secret@", "AUTHD_REDIS_URL"),
        ("rediss//user:hunter2-secret@cache", "AUTHD_REDIS_URL"),
        ("redis://cache.internal/notadatabase", "AUTHD_REDIS_URL"),
        (
            "rediss://user:hunter2-secret@cache.internal#insecure",
            "AUTHD_REDIS_URL",
        ),
    ] {
        let output = serve(&database_url, &[("AUTHD_REDIS_URL", url)])
            .wait_with_output()
            .unwrap();
        assert!(!output.status.success(), "{url}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{url}: {stderr}");
        assert!(stderr.contains(variable), "{url}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{url}: {stderr}");
    }
    for (name, value) in [
        ("AUTHD_REDIS_PREFIX", "has spaces:"),
        ("AUTHD_REDIS_TIMEOUT_MS", "0"),
        ("AUTHD_REDIS_TIMEOUT_MS", "soon"),
    ] {
        let output = serve(
            &database_url,
            &[("AUTHD_REDIS_URL", "redis://127.0.0.1:6379"), (name, value)],
        )
        .wait_with_output()
        .unwrap();
        assert!(!output.status.success(), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
}

/// Redis behind TLS with a user and password (`rediss://user:pass@…`, the
/// CA from `SSL_CERT_FILE`): authd shares its limits through it, and the
/// password appears in no log line, neither when Redis answers nor when it
/// does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_with_a_password_works_and_the_password_is_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let openssl = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    std::fs::write(path("ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    let made = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=authd test CA",
    ]) && openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]) && openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
    if !made {
        assert!(std::env::var_os("CI").is_none(), "openssl is needed in CI");
        return;
    }
    const PASSWORD: &str = "s3cret-redis-pw";
    std::fs::write(
        path("users.acl"),
        format!("user default off\nuser authd on >{PASSWORD} ~* &* +@all\n"),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            &path("server.pem"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.pem"),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--aclfile",
            &path("users.acl"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(redis) = redis else {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is needed in CI"
        );
        return;
    };
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _redis = Killed(redis);
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let http = reqwest::Client::new();
    for (url, backend) in [
        (
            format!("rediss://authd:{PASSWORD}@localhost:{port}/0"),
            "redis",
        ),
        // Wrong password, and no Redis at all: limits stay in process.
        (
            format!("rediss://authd:{PASSWORD}-not@localhost:{port}/0"),
            "local",
        ),
        (
            format!("rediss://authd:{PASSWORD}@localhost:{}/0", free_port()),
            "local",
        ),
    ] {
        let (bind, metrics) = (free_port(), free_port());
        let database_url = format!("sqlite://{}", path(&format!("authd-{bind}.db")));
        let mut child = Killed(serve(
            &database_url,
            &[
                ("AUTHD_REDIS_URL", url.as_str()),
                ("SSL_CERT_FILE", path("ca.pem").as_str()),
                ("AUTHD_BIND", &format!("127.0.0.1:{bind}")),
                ("AUTHD_METRICS_BIND", &format!("127.0.0.1:{metrics}")),
                ("AUTHD_LOG_FORMAT", "json"),
                ("AUTHD_SHUTDOWN_DRAIN", "0"),
            ],
        ));
        let mut seen = String::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(response) = http
                .get(format!("http://127.0.0.1:{metrics}/metrics"))
                .send()
                .await
            {
                seen = response.text().await.unwrap();
                if seen.contains(&format!(
                    "authd_rate_limit_backend{{backend=\"{backend}\"}} 1"
                )) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            seen.contains(&format!(
                "authd_rate_limit_backend{{backend=\"{backend}\"}} 1"
            )),
            "{url}: {seen}"
        );
        // Requests are answered either way.
        let jwks = http
            .get(format!("http://127.0.0.1:{bind}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(jwks.status(), 200);
        assert_eq!(jwks.headers()["x-ratelimit-limit"], "12000");
        // The probe runs twice a second: let a few fail where Redis is away.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        unsafe {
            libc::kill(child.0.id() as i32, libc::SIGTERM);
        }
        let _ = child.0.wait();
        let mut logs = String::new();
        use std::io::Read;
        if let Some(mut stderr) = child.0.stderr.take() {
            stderr.read_to_string(&mut logs).unwrap();
        }
        if let Some(mut stdout) = child.0.stdout.take() {
            stdout.read_to_string(&mut logs).unwrap();
        }
        assert!(logs.contains("redis"), "{logs}");
        assert!(
            !logs.contains(PASSWORD),
            "the Redis password in a log line:\n{logs}"
        );
    }
}
