//! The CLI contract, end to end: the real `authd` binary against the test
//! database, and a running server that picks up what it changes.
use std::io::Write;
use std::process::{Command, Output, Stdio};

use authd::clock::SystemClock;
use authd::domain::{ClientId, UserId};
use authd::startup::Runtime;
use serde_json::Value;

use crate::client_credentials::verify_access_token;
use crate::helpers::{
    Backend, PASSWORD, TestApp, WebClient, authorize_query, json_ok, location, on_both_backends,
    pkce, spawn_app,
};

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
        // A command refused before it reads stdin (a bad argument) closes
        // the pipe first.
        if let Err(error) = input.write_all(text.as_bytes()) {
            assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
        }
    }
    drop(input);
    child.wait_with_output().unwrap()
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
    json_ok(&authd(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            "https://billing.example",
            "--name",
            "Billing",
            "--scope",
            "invoices:read",
        ],
        None,
    ));
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

    // A started server has an active key and a pre-published next key.
    let keys = json_ok(&authd(&app, &["keys", "list"], None));
    let state_of = |keys: &Value, state: &str| -> String {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["state"] == state)
            .unwrap_or_else(|| panic!("a {state} key in {keys}"))["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let old_kid = state_of(&keys, "active");
    let next_kid = state_of(&keys, "next");
    assert!(!keys.to_string().contains("private"), "no private material");

    let (id, secret) = app.machine_client(&[]).await;
    // `keys rotate` activates the pre-published key and publishes a new next.
    let rotated = json_ok(&authd(&app, &["keys", "rotate"], None));
    assert_eq!(rotated.as_array().unwrap().len(), 3);
    assert_eq!(state_of(&rotated, "retired"), old_kid);
    let new_kid = state_of(&rotated, "active");
    assert_eq!(new_kid, next_kid, "the pre-published key signs");
    // The running server signs with it within the refresh interval, and
    // publishes active, next and retired keys.
    for _ in 0..50 {
        let (_, body) = token_status(&app, &id, &secret).await;
        let header = jsonwebtoken::decode_header(body["access_token"].as_str().unwrap()).unwrap();
        if header.kid.as_deref() == Some(new_kid.as_str()) {
            let jwks: Value = app.get_json("/.well-known/jwks.json").await;
            assert_eq!(jwks["keys"].as_array().unwrap().len(), 3);
            assert_eq!(jwks["keys"][0]["kid"], new_kid.as_str(), "active key first");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the server did not switch to the rotated key");
}

/// The OIDC profile of a user (OpenID Connect Core §5.1: `name`, `email`,
/// `email_verified`) is set at creation and shown by `users list`.
async fn cli_users_create_with_a_profile(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let created = json_ok(&authd(
        &app,
        &[
            "users",
            "create",
            "--username",
            "u",
            "--password-stdin",
            "--name",
            "U Example",
            "--email",
            "u@example.com",
            "--email-verified",
        ],
        Some(&format!("{PASSWORD}\n")),
    ));
    let id = created["id"].as_str().unwrap().to_owned();
    // Without a profile: no name, no email, not verified.
    let bare = json_ok(&authd(
        &app,
        &["users", "create", "--username", "v", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    ));
    let users = json_ok(&authd(&app, &["users", "list"], None));
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 2);
    let u = users.iter().find(|u| u["id"] == id.as_str()).unwrap();
    assert_eq!(u["username"], "u");
    assert_eq!(u["name"], "U Example");
    assert_eq!(u["email"], "u@example.com");
    assert_eq!(u["email_verified"], true);
    assert_eq!(u["disabled"], false);
    let v = users.iter().find(|u| u["id"] == bare["id"]).unwrap();
    assert_eq!(v["username"], "v");
    assert_eq!(v["name"], Value::Null);
    assert_eq!(v["email"], Value::Null);
    assert_eq!(v["email_verified"], false);
}

async fn cli_users_create_rejects_a_bad_profile(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let cases: [(&[&str], &str); 4] = [
        // clap `requires`: a verified flag needs an address to verify.
        (&["--email-verified"], "--email <EMAIL>"),
        (
            &["--email", "notanemail"],
            "--email must be an email address",
        ),
        (&["--email", ""], "--email must be 1 to 200 characters"),
        (
            &["--name", "U\u{7}Example"],
            "--name must be 1 to 200 characters",
        ),
    ];
    for (extra, message) in cases {
        let mut args = vec!["users", "create", "--username", "u", "--password-stdin"];
        args.extend_from_slice(extra);
        let output = authd(&app, &args, Some(&format!("{PASSWORD}\n")));
        fails_with(&output, message);
    }
    assert_eq!(
        json_ok(&authd(&app, &["users", "list"], None)),
        serde_json::json!([]),
        "no user was created"
    );
}

/// Signs in as `username` with `password` through the running server's
/// login page; returns whether the login was accepted (303 onwards).
async fn password_accepted(
    app: &TestApp,
    client: &WebClient,
    username: &str,
    password: &str,
) -> bool {
    let browser = app.browser();
    let response = browser
        .authorize(&authorize_query(client, &pkce(), &[]))
        .await;
    assert_eq!(response.status(), 303);
    let login = location(&response);
    assert!(login.starts_with("/login?request="), "{login}");
    let response = browser.log_in(&login, username, password).await;
    match response.status().as_u16() {
        303 => true,
        200 => {
            let html = response.text().await.unwrap();
            assert!(html.contains("The username or password is not correct."));
            false
        }
        status => panic!("login answered {status}"),
    }
}

async fn cli_users_set_password(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    let id = json_ok(&authd(
        &app,
        &["users", "create", "--username", "u", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    ))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let changed = json_ok(&authd(
        &app,
        &["users", "set-password", &id, "--password-stdin"],
        Some("a brand new passphrase\n"),
    ));
    assert_eq!(changed["password_changed"], id.as_str());
    // The running server checks the new password, not the old one.
    assert!(!password_accepted(&app, &client, "u", PASSWORD).await);
    assert!(password_accepted(&app, &client, "u", "a brand new passphrase").await);

    // NIST SP 800-63B §5.1.1.2: at least 8 characters; the old one stays.
    fails_with(
        &authd(
            &app,
            &["users", "set-password", &id, "--password-stdin"],
            Some("short\n"),
        ),
        "password must be 8 to 1024 characters long",
    );
    assert!(password_accepted(&app, &client, "u", "a brand new passphrase").await);

    let unknown = uuid::Uuid::new_v4().to_string();
    for id in [unknown.as_str(), "not-a-uuid"] {
        fails_with(
            &authd(
                &app,
                &["users", "set-password", id, "--password-stdin"],
                Some("a brand new passphrase\n"),
            ),
            &format!("no user with id {id}"),
        );
    }
    // `--password-stdin` is required: no password on the command line.
    let output = authd(&app, &["users", "set-password", &id], None);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--password-stdin"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn cli_users_consents_are_listed_and_revoked(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let user_id = json_ok(&authd(
        &app,
        &["users", "create", "--username", "u", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    ))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        json_ok(&authd(&app, &["users", "consents", &user_id], None)),
        serde_json::json!([])
    );
    let client_id = json_ok(&authd(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "Web",
            "--redirect-uri",
            "https://a.example/cb",
        ],
        None,
    ))["client_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .unwrap();
    let user = UserId(user_id.parse().unwrap());
    let client = ClientId::parse(&client_id).unwrap();
    runtime
        .store
        .save_consent(user, &client, "openid profile", chrono::Utc::now())
        .await
        .unwrap();

    let consents = json_ok(&authd(&app, &["users", "consents", &user_id], None));
    let consents = consents.as_array().unwrap();
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0]["client_id"], client_id.as_str());
    assert_eq!(consents[0]["scope"], "openid profile");
    assert!(consents[0]["granted_at"].is_string());
    assert!(consents[0]["updated_at"].is_string());

    let revoked = authd(
        &app,
        &["users", "consents", &user_id, "--revoke", &client_id],
        None,
    );
    assert_eq!(json_ok(&revoked), serde_json::json!([]));
    assert!(String::from_utf8_lossy(&revoked.stderr).contains("Consent revoked"));
    assert_eq!(
        runtime.store.find_consent(user, &client).await.unwrap(),
        None
    );
    assert_eq!(
        json_ok(&authd(&app, &["users", "consents", &user_id], None)),
        serde_json::json!([])
    );

    // Nothing to revoke: a failure, not a silent success.
    for missing in [client_id.as_str(), "no-such-client"] {
        fails_with(
            &authd(
                &app,
                &["users", "consents", &user_id, "--revoke", missing],
                None,
            ),
            &format!("no consent for client {missing}"),
        );
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    fails_with(
        &authd(&app, &["users", "consents", &unknown], None),
        &format!("no user with id {unknown}"),
    );
    runtime.store.close().await;
}

/// OpenID Connect RP-Initiated Logout 1.0 §2 (post_logout_redirect_uris) and
/// a pre-consented first-party client.
async fn cli_clients_with_logout_uris_and_skip_consent(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let created = json_ok(&authd(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "x",
            "--redirect-uri",
            "https://a.example/cb",
            "--post-logout-redirect-uri",
            "https://a.example/bye",
            "--skip-consent",
        ],
        None,
    ));
    let id = created["client_id"].as_str().unwrap();
    assert!(created["client_secret"].is_string(), "confidential");
    let shown = json_ok(&authd(&app, &["clients", "show", id], None));
    assert_eq!(shown["type"], "confidential");
    assert_eq!(
        shown["grant_types"],
        serde_json::json!(["authorization_code"])
    );
    assert_eq!(
        shown["redirect_uris"],
        serde_json::json!(["https://a.example/cb"])
    );
    assert_eq!(
        shown["post_logout_redirect_uris"],
        serde_json::json!(["https://a.example/bye"])
    );
    assert_eq!(shown["skip_consent"], true);

    // Without the flags: none, and consent is asked.
    let plain = json_ok(&authd(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "y",
            "--redirect-uri",
            "https://a.example/cb",
        ],
        None,
    ));
    let shown = json_ok(&authd(
        &app,
        &["clients", "show", plain["client_id"].as_str().unwrap()],
        None,
    ));
    assert_eq!(shown["post_logout_redirect_uris"], serde_json::json!([]));
    assert_eq!(shown["skip_consent"], false);
}

async fn cli_rejects_bad_logout_uris_and_skip_consent(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let cases: [(&[&str], &str); 6] = [
        // RFC 8252 §8.6: a public client's identity cannot be verified.
        (
            &[
                "--public",
                "--redirect-uri",
                "https://a.example/cb",
                "--skip-consent",
            ],
            "RFC 8252 §8.6",
        ),
        // A machine client signs nobody in: nobody to skip consent for.
        (&["--skip-consent"], "--skip-consent is only for"),
        (
            &["--post-logout-redirect-uri", "https://a.example/bye"],
            "--post-logout-redirect-uri is only used by clients that sign users in",
        ),
        (
            &[
                "--redirect-uri",
                "https://a.example/cb",
                "--post-logout-redirect-uri",
                "http://example.com",
            ],
            "--post-logout-redirect-uri http://example.com: must use https",
        ),
        (
            &[
                "--redirect-uri",
                "https://a.example/cb",
                "--post-logout-redirect-uri",
                "https://a.example/bye#x",
            ],
            "--post-logout-redirect-uri https://a.example/bye#x: must not contain a fragment",
        ),
        (
            &[
                "--redirect-uri",
                "https://a.example/cb",
                "--post-logout-redirect-uri",
                "/bye",
            ],
            "--post-logout-redirect-uri /bye: is not an absolute URI",
        ),
    ];
    for (extra, message) in cases {
        let mut args = vec!["clients", "create", "--name", "x"];
        args.extend_from_slice(extra);
        fails_with(&authd(&app, &args, None), message);
    }
    assert_eq!(
        json_ok(&authd(&app, &["clients", "list"], None)),
        serde_json::json!([]),
        "nothing was registered"
    );
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
        stderr.contains("not the master key of this database"),
        "{stderr}"
    );
}

/// What the admin API does the CLI does too: `clients update`, users
/// without a password, `users show|enable|end-sessions`, `admin bootstrap`.
async fn cli_covers_what_the_admin_api_does(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.define_scopes(&["orders:read".into()]).await;
    let (id, secret) = app.machine_client(&[]).await;
    let updated = json_ok(&authd(
        &app,
        &[
            "clients",
            "update",
            &id,
            "--name",
            "Renamed",
            "--scope",
            "orders:read",
        ],
        None,
    ));
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(updated["scope"], "orders:read");
    fails_with(
        &authd(
            &app,
            &["clients", "update", &id, "--scope", "nobody:defines"],
            None,
        ),
        "no API defines this scope",
    );
    fails_with(
        &authd(
            &app,
            &[
                "clients",
                "update",
                &id,
                "--redirect-uri",
                "https://a.example/cb",
            ],
            None,
        ),
        "--redirect-uri is only used by authorization_code",
    );
    eventually_status(&app, &id, &secret, 200).await;

    let user = json_ok(&authd(
        &app,
        &["users", "create", "--username", "nopass", "--no-password"],
        None,
    ));
    let user_id = user["id"].as_str().unwrap().to_owned();
    let shown = json_ok(&authd(&app, &["users", "show", &user_id], None));
    assert_eq!(shown["has_password"], false);
    fails_with(
        &authd(
            &app,
            &[
                "users",
                "create",
                "--username",
                "both",
                "--no-password",
                "--password-stdin",
            ],
            Some("correct horse battery\n"),
        ),
        "cannot be used with",
    );
    json_ok(&authd(&app, &["users", "disable", &user_id], None));
    json_ok(&authd(&app, &["users", "enable", &user_id], None));
    assert_eq!(
        json_ok(&authd(&app, &["users", "show", &user_id], None))["disabled"],
        false
    );
    json_ok(&authd(&app, &["users", "end-sessions", &user_id], None));
    fails_with(
        &authd(
            &app,
            &["users", "show", "00000000-0000-4000-8000-000000000000"],
            None,
        ),
        "no user with id",
    );

    let admin = json_ok(&authd(&app, &["admin", "bootstrap"], None));
    let (status, body) = token_status(
        &app,
        admin["client_id"].as_str().unwrap(),
        admin["client_secret"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body["scope"]
            .as_str()
            .unwrap()
            .contains("admin:clients:write")
    );
}

/// `authd registration-tokens`: made (printed once), listed without the
/// token, used by `POST /register` on the running server, revoked; bad
/// limits refused with one line.
async fn cli_registration_tokens(backend: Backend) {
    let database = std::sync::Arc::new(match crate::helpers::test_database(backend).await {
        Some(database) => database,
        None => return,
    });
    let app = crate::helpers::spawn_app_on(database, authd::crypto::MasterKey::generate(), |c| {
        c.registration.mode = authd::clients::dynamic::RegistrationMode::Token;
    })
    .await
    .expect("app starts");
    let made = json_ok(&authd(
        &app,
        &[
            "registration-tokens",
            "create",
            "--max-uses",
            "1",
            "--expires-in",
            "1h",
            "--scope",
            "openid",
        ],
        None,
    ));
    let token = made["token"].as_str().unwrap().to_owned();
    assert_eq!(made["max_uses"], 1);
    assert_eq!(made["scope"], "openid");
    let listed = json_ok(&authd(&app, &["registration-tokens", "list"], None));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("token").is_none());
    assert!(!listed.to_string().contains(&token));
    let response = app
        .http
        .post(app.url("/register"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"redirect_uris": ["https://app.example/cb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let listed = json_ok(&authd(&app, &["registration-tokens", "list"], None));
    assert_eq!(listed[0]["uses"], 1);
    let clients = json_ok(&authd(&app, &["clients", "list"], None));
    assert_eq!(clients[0]["registered_via"], "token");
    let id = made["id"].as_str().unwrap();
    json_ok(&authd(&app, &["registration-tokens", "revoke", id], None));
    fails_with(
        &authd(&app, &["registration-tokens", "revoke", id], None),
        "no registration token",
    );
    fails_with(
        &authd(
            &app,
            &[
                "registration-tokens",
                "create",
                "--scope",
                "admin:keys:write",
            ],
            None,
        ),
        "never given to a registered client",
    );
    fails_with(
        &authd(
            &app,
            &["registration-tokens", "create", "--scope", "nobody:defines"],
            None,
        ),
        "no API defines this scope",
    );
    fails_with(
        &authd(
            &app,
            &["registration-tokens", "create", "--max-uses", "0"],
            None,
        ),
        "--max-uses",
    );
}

on_both_backends!(
    cli_registration_tokens,
    cli_covers_what_the_admin_api_does,
    cli_clients_lifecycle_reaches_the_running_server,
    cli_rejects_bad_registrations,
    cli_users_and_keys,
    bad_configuration_exits_with_one_line,
    cli_users_create_with_a_profile,
    cli_users_create_rejects_a_bad_profile,
    cli_users_set_password,
    cli_users_consents_are_listed_and_revoked,
    cli_clients_with_logout_uris_and_skip_consent,
    cli_rejects_bad_logout_uris_and_skip_consent,
);
