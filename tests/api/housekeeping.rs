//! Housekeeping removes expired state in batches and nothing else.
use authd::clock::{MockClock, SystemClock};
use authd::oauth::housekeeping::prune_once;
use authd::oauth::registration::NewClient;
use authd::startup::Runtime;
use chrono::{Duration, Utc};
use sqlx::Connection;

use crate::helpers::{
    Backend, TestApp, authorize_query, exchange_code, on_both_backends, pkce, query_param,
    spawn_app,
};

const TABLES: [&str; 6] = [
    "browser_sessions",
    "authorization_requests",
    "authorization_codes",
    "access_tokens",
    "refresh_tokens",
    "refresh_token_families",
];

async fn count(app: &TestApp, backend: Backend, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    match backend {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(&app.database.url)
                .await
                .unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut connection)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&app.database.url)
                .await
                .unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut connection)
                .await
                .unwrap()
        }
    }
}

async fn counts(app: &TestApp, backend: Backend) -> Vec<i64> {
    let mut all = Vec::new();
    for table in TABLES {
        all.push(count(app, backend, table).await);
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

on_both_backends!(expired_state_is_pruned_and_live_state_kept);
