//! The CLI contract, end to end: the real `authd` binary against the test
//! database, and a running server that picks up what it changes.
use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::client_credentials::verify_access_token;
use crate::helpers::{Backend, TestApp, on_both_backends, spawn_app};

fn authd(app: &TestApp, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authd"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.database.url)
        .env("AUTHD_MASTER_KEY", app.master_key.to_base64())
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
    child.wait_with_output().unwrap()
}

fn json_ok(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

fn fails_with(output: &Output, message: &str) {
    assert!(!output.status.success(), "expected failure");
    assert!(output.stdout.is_empty(), "nothing on stdout when failing");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(message),
        "stderr {stderr:?} should contain {message:?}"
    );
}

async fn token_status(app: &TestApp, id: &str, secret: &str) -> (u16, Value) {
    let response = app.client_credentials(id, secret).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Waits for the running server to see a CLI change (cache refresh).
async fn eventually_status(app: &TestApp, id: &str, secret: &str, status: u16) {
    for _ in 0..50 {
        if token_status(app, id, secret).await.0 == status {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the server did not answer {status} within 5 s");
}

async fn cli_clients_lifecycle_reaches_the_running_server(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let created = json_ok(&authd(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "Billing",
            "--scope",
            "invoices:read",
            "--audience",
            "https://billing.example",
        ],
        None,
    ));
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43, "≥ 256 bits");

    // The new client works at once on the running server.
    let (status, body) = token_status(&app, &id, &secret).await;
    assert_eq!(status, 200, "{body}");
    let claims = verify_access_token(
        &app,
        body["access_token"].as_str().unwrap(),
        "https://billing.example",
    )
    .await;
    assert_eq!(claims["scope"], "invoices:read");

    let shown = json_ok(&authd(&app, &["clients", "show", &id], None));
    assert_eq!(shown["client_id"], id.as_str());
    assert_eq!(shown["type"], "confidential");
    assert_eq!(
        shown["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert!(shown.get("client_secret").is_none());
    let listed = json_ok(&authd(&app, &["clients", "list"], None));
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let rotated = json_ok(&authd(&app, &["clients", "rotate-secret", &id], None));
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    eventually_status(&app, &id, &secret, 401).await;
    assert_eq!(token_status(&app, &id, &new_secret).await.0, 200);

    json_ok(&authd(&app, &["clients", "delete", &id], None));
    eventually_status(&app, &id, &new_secret, 401).await;
    fails_with(
        &authd(&app, &["clients", "show", &id], None),
        "no client with id",
    );
}

async fn cli_rejects_bad_registrations(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let cases: [(&[&str], &str); 7] = [
        (
            &["--redirect-uri", "JavaScript:alert(1)"],
            "--redirect-uri JavaScript:alert(1)",
        ),
        (&["--redirect-uri", "https://a.example/cb#x"], "fragment"),
        (&["--redirect-uri", "https://*.example/cb"], "wildcard"),
        (&["--redirect-uri", "http://app.example/cb"], "https"),
        (
            &["--public", "--grant-type", "client_credentials"],
            "public client cannot use client_credentials",
        ),
        (&["--grant-type", "password"], "--grant-type password"),
        (&["--scope", "bad\"scope"], "--scope"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["clients", "create", "--name", "x"];
        args.extend_from_slice(extra);
        fails_with(&authd(&app, &args, None), message);
    }
    // A public browser client registers without a secret.
    let public = json_ok(&authd(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "SPA",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1:3000/cb",
        ],
        None,
    ));
    assert!(public.get("client_secret").is_none());
}

async fn cli_users_and_keys(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let user = json_ok(&authd(
        &app,
        &["users", "create", "--username", "alice", "--password-stdin"],
        Some("correct horse battery\n"),
    ));
    let user_id = user["id"].as_str().unwrap().to_owned();
    fails_with(
        &authd(
            &app,
            &["users", "create", "--username", "alice", "--password-stdin"],
            Some("another password\n"),
        ),
        "taken",
    );
    fails_with(
        &authd(
            &app,
            &["users", "create", "--username", "bob", "--password-stdin"],
            Some("short\n"),
        ),
        "password must be",
    );
    let users = json_ok(&authd(&app, &["users", "list"], None));
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["disabled"], false);
    assert!(
        !users.to_string().contains("argon2"),
        "no password hash in output"
    );
    json_ok(&authd(&app, &["users", "disable", &user_id], None));
    assert_eq!(
        json_ok(&authd(&app, &["users", "list"], None))[0]["disabled"],
        true
    );

    let keys = json_ok(&authd(&app, &["keys", "list"], None));
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["state"], "active");
    let old_kid = keys[0]["kid"].as_str().unwrap().to_owned();
    assert!(!keys.to_string().contains("private"), "no private material");

    let (id, secret) = app.machine_client(&[]).await;
    let rotated = json_ok(&authd(&app, &["keys", "rotate"], None));
    let states: Vec<(&str, &str)> = rotated
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states.len(), 2);
    assert!(states.contains(&(old_kid.as_str(), "retired")));
    let new_kid = states
        .iter()
        .find(|(_, s)| *s == "active")
        .unwrap()
        .0
        .to_owned();
    // The running server signs with the new key within the refresh interval,
    // and still publishes the old one.
    for _ in 0..50 {
        let (_, body) = token_status(&app, &id, &secret).await;
        let header = jsonwebtoken::decode_header(body["access_token"].as_str().unwrap()).unwrap();
        if header.kid.as_deref() == Some(new_kid.as_str()) {
            let jwks: Value = app.get_json("/.well-known/jwks.json").await;
            assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
            assert_eq!(jwks["keys"][0]["kid"], new_kid.as_str(), "active key first");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the server did not switch to the rotated key");
}

async fn bad_configuration_exits_with_one_line(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for (variable, value) in [
        ("AUTHD_ISSUER", "https://id.example.com/?q=1"),
        ("AUTHD_BIND", "not-an-address"),
        ("AUTHD_MASTER_KEY", "dG9vIHNob3J0"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_authd"))
            .args(["keys", "list"])
            .env_clear()
            .env("DATABASE_URL", &app.database.url)
            .env("AUTHD_MASTER_KEY", app.master_key.to_base64())
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(variable), "{stderr}");
        assert!(!stderr.contains("panicked"));
    }
    // The binary refuses another master key for this database.
    let output = Command::new(env!("CARGO_BIN_EXE_authd"))
        .args(["serve"])
        .env_clear()
        .env("DATABASE_URL", &app.database.url)
        .env(
            "AUTHD_MASTER_KEY",
            authd::crypto::MasterKey::generate().to_base64(),
        )
        .env("AUTHD_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not the master key this database was created with"),
        "{stderr}"
    );
}

on_both_backends!(
    cli_clients_lifecycle_reaches_the_running_server,
    cli_rejects_bad_registrations,
    cli_users_and_keys,
    bad_configuration_exits_with_one_line,
);
