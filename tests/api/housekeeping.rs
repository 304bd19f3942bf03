//! Housekeeping removes expired state in batches and nothing else.
use authd::clients::registration::NewClient;
use authd::clock::{MockClock, SystemClock};
use authd::housekeeping::prune_once;
use authd::startup::Runtime;
use chrono::{Duration, Utc};

use crate::helpers::{
    Backend, TestApp, authorize_query, count_rows, exchange_code, on_both_backends, pkce,
    query_param, spawn_app,
};

const TABLES: [&str; 7] = [
    "browser_sessions",
    "authorization_requests",
    "sealed_requests",
    "authorization_codes",
    "access_tokens",
    "refresh_tokens",
    "refresh_token_families",
];

async fn counts(app: &TestApp, backend: Backend) -> Vec<i64> {
    let mut all = Vec::new();
    for table in TABLES {
        all.push(count_rows(app, backend, table).await);
    }
    all
}

async fn expired_state_is_pruned_and_live_state_kept(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app
        .web_client_with(NewClient {
            name: "App".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            ..Default::default()
        })
        .await;
    app.user("alice").await;
    let browser = app.browser();
    let pkce = pkce();
    let query = authorize_query(&client, &pkce, &[("scope", "openid offline_access")]);
    let back = browser.sign_in(&query, "alice").await;
    let code = query_param(&back, "code").unwrap();
    assert_eq!(
        exchange_code(&app, &client, &code, &pkce.verifier)
            .await
            .status(),
        200
    );
    // A pending request that is never finished.
    browser
        .authorize(&authorize_query(
            &client,
            &crate::helpers::pkce(),
            &[("prompt", "login")],
        ))
        .await;

    let before = counts(&app, backend).await;
    assert!(
        before.iter().all(|&n| n >= 1),
        "every kind of state exists: {before:?}"
    );

    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .unwrap();
    // Now: nothing has expired yet except what is already past (none).
    prune_once(runtime.store.as_ref(), &SystemClock)
        .await
        .unwrap();
    assert_eq!(counts(&app, backend).await, before, "live state is kept");

    // 31 days on, past every lifetime (the family's 30 days included).
    let later = MockClock::new(Utc::now() + Duration::days(31));
    let removed = prune_once(runtime.store.as_ref(), &later).await.unwrap();
    assert_eq!(removed, before.iter().sum::<i64>() as u64);
    assert_eq!(counts(&app, backend).await, vec![0; TABLES.len()]);
    runtime.store.close().await;
}

/// Security review finding 3: a backlog larger than one run's worth of
/// batches used to (20 × 500 rows per table) is drained in one run.
async fn a_backlog_is_drained_in_one_run(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    const BACKLOG: i64 = 12_345;
    let past = (Utc::now() - Duration::hours(1)).to_rfc3339();
    let (ts, digest) = match backend {
        Backend::Sqlite => (format!("'{past}'"), "X'00'"),
        Backend::Postgres => (format!("'{past}'::timestamptz"), "'\\x00'::bytea"),
    };
    // An expired session holding a backlog of expired pending requests.
    crate::helpers::execute_sql(
        &app,
        backend,
        &format!(
            "INSERT INTO browser_sessions (id, cookie_digest, created_at, expires_at) \
             VALUES ('flooded', {digest}, {ts}, {ts})"
        ),
    )
    .await;
    let insert = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BACKLOG}) \
         INSERT INTO authorization_requests (id, session_id, client_id, request, created_at, expires_at) \
         SELECT 'flood-' || i, 'flooded', '{}', '{{}}', {ts}, {ts} FROM n",
        client.id,
    );
    crate::helpers::execute_sql(&app, backend, &insert).await;
    assert_eq!(
        count_rows(&app, backend, "authorization_requests").await,
        BACKLOG
    );
    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .unwrap();
    let removed = prune_once(runtime.store.as_ref(), &SystemClock)
        .await
        .unwrap();
    runtime.store.close().await;
    assert_eq!(removed, BACKLOG as u64 + 1, "the requests and the session");
    assert_eq!(count_rows(&app, backend, "authorization_requests").await, 0);
}

on_both_backends!(
    expired_state_is_pruned_and_live_state_kept,
    a_backlog_is_drained_in_one_run,
);
