//! No secret, token or password ever reaches a log line: the real binary
//! runs with debug logging in JSON, every kind of request carries secrets,
//! and the captured log is searched for each of them. The audit events
//! (src/audit.rs) every flow leaves behind are there, and name nobody.
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::authorization_code::jwt_part;
use crate::helpers::{
    Backend, TestApp, WebClient, authorize_query, form_value, location, on_both_backends, pkce,
    query_param, spawn_app,
};

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

/// `authd args` (the real binary) on `app`'s database with debug logging
/// in JSON, its stderr appended to `log`.
fn authd(app: &TestApp, log: &File, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authd"));
    command
        .args(args)
        .env_clear()
        .env("DATABASE_URL", &app.database.url)
        .env("AUTHD_MASTER_KEY", app.master_key.to_base64())
        .env("AUTHD_BIND", "127.0.0.1:0")
        .env("AUTHD_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log.try_clone().unwrap());
    command
}

/// Runs a CLI command to the end, `stdin` written to it: its JSON output.
fn cli(app: &TestApp, log: &File, args: &[&str], stdin: Option<&str>) -> Value {
    let mut child = authd(app, log, args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "authd {args:?}: {:?}",
        output.status
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

/// The port of the server writing to `log_path` (it logs the address it
/// bound).
async fn listening_port(log_path: &Path) -> u16 {
    for _ in 0..100 {
        let text = std::fs::read_to_string(log_path).unwrap();
        let port = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["message"] == "authd is listening")
            .and_then(|line| line["address"].as_str()?.rsplit(':').next()?.parse().ok());
        if let Some(port) = port {
            return port;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not start");
}

/// The non-empty session cookie values a response sets.
fn session_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| {
            let (name, value) = value.split(';').next()?.split_once('=')?;
            (name.trim().ends_with("authd_session") && !value.is_empty()).then(|| value.to_owned())
        })
        .collect()
}

/// A string member of a JSON body.
fn field(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {body}"))
        .to_owned()
}

/// Issue 7 item 7: every flow runs against the real binary (the CLI
/// commands too), each with its secrets, and none of them is in the
/// captured log afterwards; the audit trail of those flows is.
async fn every_flow_leaves_no_secret_in_the_logs(backend: Backend) {
    // The in-process app migrates the database and publishes an active and
    // a next signing key (so `keys rotate` has a key to activate).
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("authd.log");
    let log = File::create(&log_path).unwrap();
    let first_password = "first-pw-Kq9vT2xL";
    let second_password = "second-pw-Rm4wZ8cJ";
    let wrong_password = "wrong-pw-Hd7sN3yB";
    let wrong_secret = "wrong-secret-Px5gF1uQ";
    let redirect_uri = "https://app.example/cb";

    // The CLI: three clients, a user, a rotated secret, a new password,
    // a rotated signing key.
    cli(
        &app,
        &log,
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
    let machine = cli(
        &app,
        &log,
        &[
            "clients",
            "create",
            "--name",
            "Machine",
            "--scope",
            "orders:read",
        ],
        None,
    );
    let (machine_id, machine_secret) = (
        field(&machine, "client_id"),
        field(&machine, "client_secret"),
    );
    let web = cli(
        &app,
        &log,
        &[
            "clients",
            "create",
            "--name",
            "Web app",
            "--redirect-uri",
            redirect_uri,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "orders:read",
        ],
        None,
    );
    let (web_id, web_old_secret) = (field(&web, "client_id"), field(&web, "client_secret"));
    let resource = cli(
        &app,
        &log,
        &["clients", "create", "--name", "Orders API", "--introspect"],
        None,
    );
    let (resource_id, resource_secret) = (
        field(&resource, "client_id"),
        field(&resource, "client_secret"),
    );
    let user_id = field(
        &cli(
            &app,
            &log,
            &["users", "create", "--username", "dora", "--password-stdin"],
            Some(first_password),
        ),
        "id",
    );
    let rotated = cli(&app, &log, &["clients", "rotate-secret", &web_id], None);
    assert_eq!(field(&rotated, "client_id"), web_id);
    let web_secret = field(&rotated, "client_secret");
    assert_ne!(web_secret, web_old_secret);
    let changed = cli(
        &app,
        &log,
        &["users", "set-password", &user_id, "--password-stdin"],
        Some(second_password),
    );
    assert_eq!(changed["password_changed"], user_id.as_str());
    let keys = cli(&app, &log, &["keys", "rotate"], None);
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|key| key["state"] == "retired"),
        "the previously active key retired: {keys}"
    );

    let mut server = authd(&app, &log, &["serve"]).spawn().unwrap();
    let base = format!("http://127.0.0.1:{}", listening_port(&log_path).await);
    let url = |path: &str| format!("{base}{path}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = |form: Vec<(&'static str, String)>, secret: &str| {
        http.post(url("/token"))
            .basic_auth(&web_id, Some(secret))
            .form(&form)
            .send()
    };

    // The sign-in (RFC 6749 §4.1.1, RFC 7636 S256): /authorize, the login
    // form with a wrong and then the right password, consent, the code.
    let client = WebClient {
        id: web_id.clone(),
        secret: Some(web_secret.clone()),
        redirect_uri: redirect_uri.into(),
    };
    let pkce = pkce();
    let query = authorize_query(
        &client,
        &pkce,
        &[("scope", "openid offline_access orders:read")],
    );
    let mut cookies = Vec::new();
    let mut csrfs = Vec::new();
    let response = browser
        .get(url(&format!("/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "authorize");
    cookies.extend(session_cookies(&response));
    let login = location(&response);
    assert!(login.starts_with("/login?"), "{login}");
    let page = browser.get(url(&login)).send().await.unwrap();
    assert_eq!(page.status(), 200, "login page");
    let html = page.text().await.unwrap();
    let csrf = form_value(&html, "csrf").expect("csrf field");
    let request = form_value(&html, "request").expect("request field");
    csrfs.push(csrf.clone());
    let login_form = |password: &'static str| {
        browser
            .post(url("/login"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("request", request.as_str()),
                ("username", "dora"),
                ("password", password),
            ])
            .send()
    };
    let failed = login_form(wrong_password).await.unwrap();
    assert_eq!(failed.status(), 200, "the login page again");
    cookies.extend(session_cookies(&failed));
    let html = failed.text().await.unwrap();
    assert!(html.contains("The username or password is not correct."));
    let signed_in = login_form(second_password).await.unwrap();
    assert_eq!(signed_in.status(), 303, "signed in");
    let set = session_cookies(&signed_in);
    assert!(
        !set.is_empty(),
        "the login response sets the session cookie"
    );
    cookies.extend(set);
    let consent = location(&signed_in);
    assert!(consent.starts_with("/consent?"), "{consent}");
    let page = browser.get(url(&consent)).send().await.unwrap();
    assert_eq!(page.status(), 200, "consent page");
    let html = page.text().await.unwrap();
    let consent_csrf = form_value(&html, "csrf").expect("csrf field");
    let request = form_value(&html, "request").expect("request field");
    csrfs.push(consent_csrf.clone());
    let allowed = browser
        .post(url("/consent"))
        .form(&[
            ("csrf", consent_csrf.as_str()),
            ("request", request.as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 303, "consent allowed");
    cookies.extend(session_cookies(&allowed));
    let back = location(&allowed);
    assert!(back.starts_with(&format!("{redirect_uri}?code=")), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("st4te"));
    let code = query_param(&back, "code").expect("a code");

    // RFC 6749 §4.1.3: the code exchanged with the rotated secret.
    let response = token(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("redirect_uri", redirect_uri.into()),
            ("code_verifier", pkce.verifier.clone()),
        ],
        &web_secret,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200, "code exchanged");
    let first: Value = response.json().await.unwrap();
    let mut access_tokens = vec![field(&first, "access_token")];
    let mut refresh_tokens = vec![field(&first, "refresh_token")];
    let mut id_tokens = vec![field(&first, "id_token")];

    // RFC 6749 §6, twice: each refresh rotates the refresh token.
    for round in 0..2 {
        let response = token(
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", refresh_tokens[round].clone()),
            ],
            &web_secret,
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 200, "refresh {round}");
        let body: Value = response.json().await.unwrap();
        access_tokens.push(field(&body, "access_token"));
        refresh_tokens.push(field(&body, "refresh_token"));
        if let Some(id_token) = body["id_token"].as_str() {
            id_tokens.push(id_token.to_owned());
        }
    }
    let latest = access_tokens.last().unwrap().clone();

    // OIDC Core §5.3: /userinfo with the latest access token.
    let response = http
        .get(url("/userinfo"))
        .bearer_auth(&latest)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "userinfo");
    let claims: Value = response.json().await.unwrap();
    assert_eq!(claims["sub"], user_id.as_str());

    // RFC 7662 §2.1: the resource server introspects it.
    let introspect = |token: String| {
        http.post(url("/introspect"))
            .basic_auth(&resource_id, Some(&resource_secret))
            .form(&[("token", token)])
            .send()
    };
    let response = introspect(latest.clone()).await.unwrap();
    assert_eq!(response.status(), 200, "introspect");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true, "{body}");

    // RFC 9700 §4.14.2: the first refresh token again is reuse; the family
    // is revoked, the latest access token with it.
    let response = token(
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", refresh_tokens[0].clone()),
        ],
        &web_secret,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 400, "reuse");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    let body: Value = introspect(latest.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["active"], false, "the family is revoked: {body}");

    // RFC 7009 §2.2: revocation answers 200 even for a revoked token.
    let response = http
        .post(url("/revoke"))
        .basic_auth(&web_id, Some(&web_secret))
        .form(&[
            ("token", refresh_tokens[2].as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "revoke");

    // RP-Initiated Logout §2: the ID token as hint ends the session.
    let mut logout = form_urlencoded::Serializer::new(String::new());
    logout.append_pair("id_token_hint", &id_tokens[0]);
    let response = browser
        .get(url(&format!("/logout?{}", logout.finish())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "logout");
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("You are signed out")
    );

    // RFC 6749 §5.2: a wrong secret, the secret from before the rotation.
    for (secret, case) in [
        (wrong_secret, "wrong secret"),
        (&web_old_secret, "old secret"),
    ] {
        let response = token(
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", "x".into()),
            ],
            secret,
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 401, "{case}");
    }
    // The machine client's client_credentials grant (RFC 6749 §4.4), and
    // its secret in the query string (RFC 6749 §2.3.1: never in the URI).
    let cc = [("grant_type", "client_credentials")];
    let response = http
        .post(url("/token"))
        .basic_auth(&machine_id, Some(&machine_secret))
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "client credentials");
    let body: Value = response.json().await.unwrap();
    access_tokens.push(field(&body, "access_token"));
    let response = http
        .post(url(&format!(
            "/token?client_id={machine_id}&client_secret={machine_secret}"
        )))
        .basic_auth(&machine_id, Some(&machine_secret))
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "secret in the query");

    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill().unwrap();
    server.wait().unwrap();

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let master = app.master_key.to_base64();
    let mut secrets: Vec<(String, String)> = vec![
        ("machine client secret".into(), machine_secret.clone()),
        ("web client secret before rotation".into(), web_old_secret),
        ("web client secret".into(), web_secret.clone()),
        ("resource server secret".into(), resource_secret.clone()),
        ("first password".into(), first_password.into()),
        ("second password".into(), second_password.into()),
        ("wrong password".into(), wrong_password.into()),
        ("wrong secret".into(), wrong_secret.into()),
        ("authorization code".into(), code),
        ("PKCE verifier".into(), pkce.verifier.clone()),
        ("master key".into(), master),
    ];
    for (i, token) in access_tokens.iter().enumerate() {
        secrets.push((format!("access token {i}"), token.clone()));
        let signature = token.rsplit('.').next().unwrap().to_owned();
        secrets.push((format!("access token {i} signature"), signature));
    }
    for (i, token) in id_tokens.iter().enumerate() {
        secrets.push((format!("ID token {i}"), token.clone()));
    }
    for (i, token) in refresh_tokens.iter().enumerate() {
        secrets.push((format!("refresh token {i}"), token.clone()));
    }
    for (i, cookie) in cookies.iter().enumerate() {
        secrets.push((format!("session cookie {i}"), cookie.clone()));
    }
    for (i, csrf) in csrfs.iter().enumerate() {
        secrets.push((format!("CSRF token {i}"), csrf.clone()));
    }
    for (what, value) in &secrets {
        assert!(value.len() >= 8, "the {what} is long enough to search for");
        if let Some(line) = logs.lines().find(|line| line.contains(value.as_str())) {
            panic!("the {what} appears in the logs: {line}");
        }
    }

    // The audit trail: one `audit` event per thing that happened.
    let audit: Vec<(&str, Value)> = logs
        .lines()
        .filter_map(|line| Some((line, serde_json::from_str::<Value>(line).ok()?)))
        .filter(|(_, event)| event["target"] == "audit")
        .collect();
    let events = |name: &str| -> Vec<&(&str, Value)> {
        audit
            .iter()
            .filter(|(_, event)| event["event"] == name)
            .collect()
    };
    for name in [
        "client_created",
        "client_secret_rotated",
        "user_created",
        "password_changed",
        "login_failed",
        "login_succeeded",
        "consent_granted",
        "token_issued",
        "refresh_token_reuse",
        "key_rotated",
    ] {
        assert!(!events(name).is_empty(), "no {name} audit event in\n{logs}");
    }
    let has = |name: &str, key: &str, value: &str| {
        events(name).iter().any(|(_, event)| event[key] == value)
    };
    for id in [&machine_id, &web_id, &resource_id] {
        assert!(
            has("client_created", "client_id", id),
            "client_created {id}"
        );
    }
    assert!(has("client_secret_rotated", "client_id", &web_id));
    assert!(has("user_created", "user_id", &user_id));
    assert!(has("password_changed", "user_id", &user_id));
    assert!(has("login_succeeded", "user_id", &user_id));
    assert!(has("consent_granted", "client_id", &web_id));
    assert!(has("refresh_token_reuse", "client_id", &web_id));
    // Each token_issued names the access token it issued by its `jti`.
    let jti = |token: &str| jwt_part(token, 1)["jti"].as_str().unwrap().to_owned();
    for (token, grant) in [
        (&access_tokens[0], "authorization_code"),
        (&access_tokens[1], "refresh_token"),
        (&access_tokens[2], "refresh_token"),
    ] {
        let jti = jti(token);
        assert!(
            events("token_issued").iter().any(|(_, event)| {
                event["jti"] == jti.as_str()
                    && event["grant"] == grant
                    && event["client_id"] == web_id.as_str()
                    && event["sub"] == user_id.as_str()
            }),
            "token_issued {grant} with jti {jti}"
        );
    }
    // The typed username is a keyed hash, never the name.
    for (line, event) in events("login_failed") {
        let hash = event["username_hash"].as_str().expect("a username_hash");
        assert_eq!(hash.len(), 16, "{line}");
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
        assert!(!line.contains("dora"), "the username is in {line}");
    }
}

on_both_backends!(every_flow_leaves_no_secret_in_the_logs);
