//! `/metrics` (issue 7 item 6) after a scripted flow: every metric the
//! issue names is there, and the counters count exactly what the script did.
use std::sync::Arc;

use authd::clients::registration::NewClient;
use authd::crypto::MasterKey;

use crate::authorization_code::{sign_in_and_exchange, userinfo};
use crate::helpers::{Backend, on_both_backends, spawn_app_on, test_database};

/// The value of the sample `name` (with its labels, as written) or 0.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}

async fn metrics_count_a_scripted_flow(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let app = spawn_app_on(Arc::new(database), MasterKey::generate(), |config| {
        config.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
        config.rate_limits.introspect = "1/hour".parse().unwrap();
    })
    .await
    .unwrap();
    let metrics_url = format!(
        "http://127.0.0.1:{}/metrics",
        app.metrics_port.expect("metrics are served")
    );
    // The OAuth listener does not serve /metrics.
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);

    let (id, secret) = app.machine_client(&["orders:read"]).await;
    for _ in 0..3 {
        assert_eq!(app.client_credentials(&id, &secret).await.status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(app.client_credentials(&id, "wrong").await.status(), 401);
    }
    // JWT failures at /userinfo: malformed, and a client-credentials token
    // that is not on record for a user ("revoked" covers not on record).
    assert_eq!(userinfo(&app, "not-a-jwt").await.status(), 401);
    let web = app
        .web_client_with(NewClient {
            name: "Offline web app".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["orders:read".into()],
            ..Default::default()
        })
        .await;
    app.user("alice").await;
    // A failed sign-in, then a successful one with offline_access.
    let browser = app.browser();
    let pkce = crate::helpers::pkce();
    let started = browser
        .authorize(&crate::helpers::authorize_query(&web, &pkce, &[]))
        .await;
    let login = crate::helpers::location(&started);
    let failed = browser.log_in(&login, "alice", "wrong password").await;
    assert_eq!(failed.status(), 200, "the login page again, with an error");
    let tokens = sign_in_and_exchange(
        &app,
        &browser,
        &web,
        "alice",
        &[("scope", "openid offline_access orders:read")],
    )
    .await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String| {
        let (app, web) = (&app, &web);
        async move {
            app.http
                .post(app.url("/token"))
                .basic_auth(&web.id, web.secret.as_deref())
                .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(refresh(refresh_token.clone()).await, 200);
    // The same token again: reuse.
    assert_eq!(refresh(refresh_token).await, 400);
    // Introspection limited to 1/hour: the second is a 429.
    let introspect = || {
        let app = &app;
        let (id, secret) = (&id, &secret);
        async move {
            app.http
                .post(app.url("/introspect"))
                .basic_auth(id, Some(secret))
                .form(&[("token", "x")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(introspect().await, 200);
    assert_eq!(introspect().await, 429);

    let response = reqwest::get(&metrics_url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    eprintln!(
        "{}",
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.contains("_bucket"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        sample(&text, r#"tokens_issued_total{grant="client_credentials"}"#),
        3.0
    );
    assert_eq!(
        sample(&text, r#"tokens_issued_total{grant="authorization_code"}"#),
        1.0
    );
    assert_eq!(
        sample(&text, r#"tokens_issued_total{grant="refresh_token"}"#),
        1.0
    );
    assert_eq!(sample(&text, "client_auth_failures_total"), 2.0);
    assert_eq!(
        sample(
            &text,
            r#"jwt_validation_failures_total{reason="malformed"}"#
        ),
        1.0
    );
    assert_eq!(sample(&text, "refresh_token_reuse_total"), 1.0);
    assert_eq!(
        sample(&text, r#"rate_limit_hits_total{route="/introspect"}"#),
        1.0
    );
    assert_eq!(sample(&text, "login_failures_total"), 1.0);
    assert_eq!(sample(&text, r#"signing_keys{state="active"}"#), 1.0);
    assert_eq!(sample(&text, r#"signing_keys{state="next"}"#), 1.0);
    assert!(sample(&text, r#"signing_key_age_seconds{state="active"}"#) >= 0.0);
    assert!(text.contains(r#"signing_key_age_seconds{state="active"}"#));
    assert!(sample(&text, "db_pool_connections_max") >= 1.0);
    assert!(text.contains("db_pool_connections_idle"));
    assert_eq!(
        sample(
            &text,
            r#"http_request_duration_seconds_count{method="POST",route="/token",status="200"}"#
        ),
        5.0,
        "3 client credentials, 1 code exchange, 1 refresh"
    );
    assert_eq!(
        sample(
            &text,
            r#"http_request_duration_seconds_count{method="POST",route="/token",status="401"}"#
        ),
        2.0
    );
    // Secrets never appear in metrics.
    assert!(!text.contains(&secret));
    app.stop().await;
}

on_both_backends!(metrics_count_a_scripted_flow);
