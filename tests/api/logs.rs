//! No secret, token or password ever reaches a log line: the real binary
//! runs with debug logging in JSON, every kind of request carries secrets,
//! and the captured log is searched for each of them.
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::helpers::{Backend, on_both_backends, spawn_app};

async fn secrets_never_reach_the_logs(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client(&["orders:read"]).await;
    app.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("authd.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let binary = env!("CARGO_BIN_EXE_authd");
    let run = |args: &[&str], stdin: Option<&str>, stderr: Stdio| {
        let mut child = Command::new(binary)
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &app.database.url)
            .env("AUTHD_MASTER_KEY", app.master_key.to_base64())
            .env("AUTHD_BIND", "127.0.0.1:0")
            .env("AUTHD_LOG_FORMAT", "json")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child
    };
    let password = "user-password-Zq81";
    run(
        &["users", "create", "--username", "carol", "--password-stdin"],
        Some(password),
        log.try_clone().unwrap().into(),
    )
    .wait()
    .unwrap();
    let mut server = run(&["serve"], None, log.try_clone().unwrap().into());

    // The server logs the address it bound.
    let mut port = None;
    for _ in 0..100 {
        let text = std::fs::read_to_string(&log_path).unwrap();
        port = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["message"] == "authd is listening")
            .and_then(|line| {
                line["address"]
                    .as_str()
                    .map(|a| a.rsplit(':').next().unwrap().to_owned())
            });
        if port.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("http://127.0.0.1:{}/token", port.expect("server started"));
    let http = reqwest::Client::new();
    let wrong_secret = "wrong-secret-Hx7Pq0";
    let cc = [("grant_type", "client_credentials")];

    let good: Value = http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .form(&cc)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = good["access_token"].as_str().expect("token").to_owned();
    let posted: Value = http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let posted_token = posted["access_token"].as_str().expect("token").to_owned();
    for response in [
        http.post(&url)
            .basic_auth(&id, Some(wrong_secret))
            .form(&cc)
            .send()
            .await
            .unwrap(),
        http.post(format!("{url}?client_secret={secret}"))
            .basic_auth(&id, Some(&secret))
            .form(&cc)
            .send()
            .await
            .unwrap(),
        http.post(&url)
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode(format!("{id}{wrong_secret}"))),
            )
            .form(&cc)
            .send()
            .await
            .unwrap(),
        http.post(&url)
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "password"), ("password", password)])
            .send()
            .await
            .unwrap(),
        http.post(&url)
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", wrong_secret),
            ])
            .send()
            .await
            .unwrap(),
    ] {
        assert!(response.status().is_client_error());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill().unwrap();
    server.wait().unwrap();

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.lines().count() > 10, "logs were captured");
    assert!(logs.contains(r#""status":401"#), "request lines are logged");
    let master = app.master_key.to_base64();
    for (what, value) in [
        ("client secret", secret.as_str()),
        ("wrong secret", wrong_secret),
        ("access token", token.as_str()),
        ("token signature", token.rsplit('.').next().unwrap()),
        ("posted token", posted_token.as_str()),
        ("password", password),
        ("master key", master.as_str()),
    ] {
        assert!(!logs.contains(value), "the {what} appears in the logs");
    }
}

on_both_backends!(secrets_never_reach_the_logs);
