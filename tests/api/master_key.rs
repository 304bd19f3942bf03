//! Master-key rotation (issue 6, docs/operations.md "Rotating the master
//! key"): `authd master-key rotate --new-key-file F` re-seals every sealed
//! value under a new version while a server keeps running, and afterwards
//! every flow works with the new key alone: client secrets, browser
//! sessions, codes issued before, refresh tokens issued before, signing.
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use authd::clients::registration::NewClient;
use authd::clock::SystemClock;
use authd::crypto::{MasterKey, Sealer};
use authd::secrets::SecretsError;
use authd::startup::{Runtime, StartupError};
use authd::store::SEALED_COLUMNS;
use serde_json::Value;

use crate::authorization_code::{code_for, sign_in_and_exchange, userinfo};
use crate::helpers::{
    Backend, TestApp, TestDatabase, WebClient, authd_command, authorize_query, exchange_code,
    json_ok, location, on_both_backends, pkce, query_param, spawn_app_on, test_database,
};

const OFFLINE_SCOPE: &str = "openid offline_access orders:read";

/// Writes `key` to a new 0600 file in `dir`, as `authd master-key generate`
/// would.
fn key_file(dir: &Path, name: &str, key: &MasterKey) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut file, key.to_base64().as_bytes()).unwrap();
    path
}

fn copy(key: &MasterKey) -> MasterKey {
    MasterKey::from_base64(&key.to_base64()).unwrap()
}

/// The authd binary with the database and `key` as AUTHD_MASTER_KEY.
fn authd(database: &TestDatabase, key: &MasterKey, args: &[&str]) -> Output {
    authd_with(database, key, &[], args)
}

fn authd_with(
    database: &TestDatabase,
    key: &MasterKey,
    env: &[(&str, &str)],
    args: &[&str],
) -> Output {
    authd_command(&database.url, key)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("authd binary runs")
}

async fn offline_client(app: &TestApp) -> WebClient {
    app.web_client_with(NewClient {
        name: "Offline web app".into(),
        redirect_uris: vec!["https://app.example/cb".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scopes: vec!["orders:read".into()],
        ..Default::default()
    })
    .await
}

async fn refresh(app: &TestApp, client: &WebClient, token: &str) -> reqwest::Response {
    app.http
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap()
}

async fn json_200(response: reqwest::Response, case: &str) -> Value {
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{case}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn field(value: &Value, name: &str) -> String {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {value}"))
        .to_owned()
}

/// The master key version of every sealed value in the database, per table
/// (removed signing keys keep an empty value and are skipped).
async fn sealed_versions(runtime: &Runtime) -> Vec<(&'static str, u32)> {
    let mut versions = Vec::new();
    for column in SEALED_COLUMNS {
        let rows = runtime
            .store
            .sealed_values(column, "", 10_000)
            .await
            .unwrap();
        for (_, sealed) in rows.iter().filter(|(_, s)| !s.is_empty()) {
            let version = Sealer::version_of(sealed).expect("a sealed value");
            versions.push((column.as_str(), version));
        }
    }
    versions
}

/// `prompt=none` in `browser` answers a code at once: the session survived.
async fn signed_in_silently(browser: &crate::helpers::Browser, client: &WebClient) -> String {
    let pkce = pkce();
    let extra = [("prompt", "none"), ("scope", "openid orders:read")];
    let query = authorize_query(client, &pkce, &extra);
    let response = browser.authorize(&query).await;
    assert_eq!(response.status(), 303);
    let back = location(&response);
    query_param(&back, "code").unwrap_or_else(|| panic!("a code, not {back}"))
}

/// The issue's test: "master-key rotation on both databases leaves every
/// flow working". A server holding the old and the new key runs through
/// the rotation; then one holding only the new key serves what was issued
/// before it; one holding only the old key is refused.
async fn every_flow_works_after_a_master_key_rotation(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let database = Arc::new(database);
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (MasterKey::generate(), MasterKey::generate());
    let new_file = key_file(dir.path(), "master-2.key", &new);
    // Step 2 of the procedure: every replica holds the new key as an extra.
    let extra = vec![new_file.clone()];
    let app = spawn_app_on(database.clone(), copy(&old), |config| {
        config.extra_master_key_files = extra;
    })
    .await
    .expect("app starts with the extra key");

    // State made before the rotation, all of it sealed or digested.
    let (machine_id, machine_secret) = app.machine_client(&["orders:read"]).await;
    let web = offline_client(&app).await;
    let alice = app.user("alice").await;
    let browser = app.browser();
    let tokens =
        sign_in_and_exchange(&app, &browser, &web, "alice", &[("scope", OFFLINE_SCOPE)]).await;
    let refresh_before = field(&tokens, "refresh_token");
    // A code issued before and redeemed after.
    let pending_pkce = pkce();
    let pending_code = code_for(
        &browser,
        &web,
        &pending_pkce,
        "alice",
        &[("scope", OFFLINE_SCOPE)],
    )
    .await;
    let kids_before = app.get_json("/.well-known/jwks.json").await;
    {
        let runtime = Runtime::open(&app.config, false, &SystemClock)
            .await
            .unwrap();
        let versions = sealed_versions(&runtime).await;
        runtime.store.close().await;
        assert!(versions.iter().all(|(_, v)| *v == 1), "{versions:?}");
        for table in [
            "digest_keys",
            "signing_keys",
            "authorization_codes",
            "refresh_tokens",
        ] {
            assert!(
                versions.iter().any(|(t, _)| *t == table),
                "{table} holds sealed values before the rotation"
            );
        }
    }

    // Step 3: the operator's command, with the old key configured. Small
    // batches, so paging is exercised.
    let output = authd(
        &database,
        &old,
        &[
            "master-key",
            "rotate",
            "--new-key-file",
            new_file.to_str().unwrap(),
            "--propagation-delay",
            "500ms",
            "--batch",
            "2",
        ],
    );
    let report = json_ok(&output);
    eprintln!("rotation report: {report}");
    assert_eq!(report["version"], 2);
    assert_eq!(report["previous_version"], 1);
    assert_eq!(report["key_id"], new.short_id());
    // The digest keys and version 1's password pepper (version 2's was
    // stored under version 2).
    assert_eq!(
        report["resealed"]["digest_keys"],
        authd::crypto::DIGEST_PURPOSES.len() + 1
    );
    assert_eq!(report["resealed"]["signing_keys"], 2, "active and next key");
    assert!(report["resealed"]["authorization_codes"].as_u64().unwrap() >= 2);
    assert!(report["resealed"]["refresh_tokens"].as_u64().unwrap() >= 1);

    {
        let runtime = Runtime::open(&app.config, false, &SystemClock)
            .await
            .unwrap();
        let versions = sealed_versions(&runtime).await;
        runtime.store.close().await;
        assert!(
            versions.iter().all(|(_, v)| *v == 2),
            "nothing left under version 1: {versions:?}"
        );
    }

    // The running server follows: old credentials and grants work, and
    // what it seals now is under version 2.
    let cc = app.client_credentials(&machine_id, &machine_secret).await;
    json_200(cc, "client secret digested before the rotation").await;
    let after_first = json_200(
        refresh(&app, &web, &refresh_before).await,
        "refresh token from before",
    )
    .await;
    let refresh_after = field(&after_first, "refresh_token");
    let redeemed = exchange_code(&app, &web, &pending_code, &pending_pkce.verifier).await;
    json_200(redeemed, "code issued before the rotation").await;
    let silent = signed_in_silently(&browser, &web).await;
    assert!(!silent.is_empty(), "browser session from before");
    {
        let runtime = Runtime::open(&app.config, false, &SystemClock)
            .await
            .unwrap();
        let versions = sealed_versions(&runtime).await;
        runtime.store.close().await;
        assert!(
            versions.iter().all(|(_, v)| *v == 2),
            "new values sealed under version 2: {versions:?}"
        );
    }
    app.stop().await;

    // Step 4: the new key alone.
    let later = spawn_app_on(database.clone(), copy(&new), |_| {})
        .await
        .expect("starts with only the new key");
    assert_eq!(
        later.get_json("/.well-known/jwks.json").await,
        kids_before,
        "the same signing keys, opened under the new master key"
    );
    let cc = later.client_credentials(&machine_id, &machine_secret).await;
    let cc = json_200(cc, "client secret with the new key alone").await;
    assert!(cc["access_token"].is_string());
    let refreshed = json_200(
        refresh(&later, &web, &refresh_after).await,
        "refresh token re-sealed by the rotation",
    )
    .await;
    let access = field(&refreshed, "access_token");
    let claims = json_200(userinfo(&later, &access).await, "userinfo").await;
    assert_eq!(claims["sub"], alice.as_str());
    let browser = later.same_browser(&browser);
    let code = signed_in_silently(&browser, &web).await;
    assert!(!code.is_empty(), "the browser session outlives the old key");
    // alice's password hash is keyed with version 1's pepper, whose key is
    // gone: the pepper was kept sealed, so she signs in, and the sign-in
    // re-keys her hash under version 2.
    assert_eq!(password_key_version(&later, "alice").await, 1);
    let fresh = sign_in_and_exchange(
        &later,
        &later.browser(),
        &web,
        "alice",
        &[("scope", OFFLINE_SCOPE)],
    )
    .await;
    assert!(fresh["id_token"].is_string(), "a fresh sign-in");
    assert_eq!(password_key_version(&later, "alice").await, 2, "re-keyed");
    let again = sign_in_and_exchange(&later, &later.browser(), &web, "alice", &[]).await;
    assert!(
        again["id_token"].is_string(),
        "signs in with the re-keyed hash"
    );

    let status = json_ok(&authd(&database, &new, &["master-key", "status"]));
    let versions = status.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["key_id"], old.short_id());
    assert_eq!(versions[0]["configured"], false);
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[1]["current"], true);
    assert_eq!(versions[1]["configured"], true);
    assert!(versions[1]["resealed_at"].is_string());
    assert_eq!(versions[0]["password_hashes"], 0);
    assert_eq!(versions[1]["password_hashes"], 1);
    later.stop().await;

    // The old key alone cannot start a server any more.
    let refused = spawn_app_on(database, copy(&old), |_| {})
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            refused,
            StartupError::Secrets(SecretsError::WrongMasterKey { current: 2, .. })
        ),
        "{refused}"
    );
}

/// `username` as stored.
async fn stored_user(app: &TestApp, username: &str) -> authd::domain::User {
    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .unwrap();
    let user = runtime
        .store
        .find_user_by_username(&authd::domain::Username::parse(username).unwrap())
        .await
        .unwrap()
        .expect("the user exists");
    runtime.store.close().await;
    user
}

/// The password key version stored with `username`'s hash.
async fn password_key_version(app: &TestApp, username: &str) -> u32 {
    stored_user(app, username).await.password_key_version
}

/// Whether a PHC string verifies `password` with argon2id alone, as an
/// attacker holding a database copy (and no master key) would check it.
fn verifies_offline(phc: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let phc = phc.strip_prefix("$authd-hmac").unwrap_or(phc);
    PasswordHash::new(phc).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Security review finding 6: password hashes are keyed with a pepper
/// derived from the master key (argon2id's secret input), so a database
/// copy alone cannot test a guess, not even the right password. Hashes from
/// before peppers are keyed at start without the password (HMAC of their
/// output under the pepper), still sign their user in, and become ordinary
/// peppered hashes at that sign-in; a failed sign-in, or a disabled user's
/// right password, changes nothing.
async fn password_hashes_need_the_master_key_and_old_ones_are_rekeyed(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let app = spawn_app_on(Arc::new(database), MasterKey::generate(), |_| {})
        .await
        .expect("app starts");
    let web = offline_client(&app).await;
    app.user("alice").await;
    let password = crate::helpers::PASSWORD;
    let alice = stored_user(&app, "alice").await;
    assert_eq!(alice.password_key_version, 1);
    assert!(
        !verifies_offline(&alice.password_hash, password),
        "a database copy alone cannot check a password"
    );

    // Users whose hashes predate peppers, as `authd migrate` found them.
    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .unwrap();
    let peppers = runtime.secrets.peppers.clone();
    for (username, disabled) in [("legacy", false), ("dormant", true)] {
        let legacy = authd::crypto::password::hash(
            &password.to_owned().into(),
            &peppers.get(authd::crypto::password::UNPEPPERED).unwrap(),
        )
        .unwrap();
        assert!(verifies_offline(&legacy.phc, password), "unpeppered");
        runtime
            .store
            .insert_user(&authd::domain::User {
                id: authd::domain::UserId(uuid::Uuid::new_v4()),
                username: authd::domain::Username::parse(username).unwrap(),
                password_hash: legacy.phc,
                password_key_version: legacy.key_version,
                name: None,
                email: None,
                email_verified: false,
                disabled,
                created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }
    runtime.store.close().await;
    // The next start (any `authd` command, or a server) keys them.
    let status = json_ok(&authd(
        &app.database,
        &app.master_key,
        &["master-key", "status"],
    ));
    assert_eq!(status[0]["password_hashes"], 3);
    let wrapped = stored_user(&app, "legacy").await;
    assert_eq!(wrapped.password_key_version, 1);
    assert!(wrapped.password_hash.starts_with("$authd-hmac$argon2id$"));
    assert!(!verifies_offline(&wrapped.password_hash, password));

    // A wrong password changes nothing.
    let browser = app.browser();
    let login = location(
        &browser
            .authorize(&authorize_query(&web, &pkce(), &[]))
            .await,
    );
    let refused = browser.log_in(&login, "legacy", "not the password").await;
    assert_eq!(refused.status(), 200, "the login page again");
    assert_eq!(
        stored_user(&app, "legacy").await.password_hash,
        wrapped.password_hash
    );
    // A disabled user's right password changes nothing either.
    let dormant = stored_user(&app, "dormant").await;
    let refused = browser.log_in(&login, "dormant", password).await;
    assert_eq!(refused.status(), 200, "disabled users cannot sign in");
    assert_eq!(
        stored_user(&app, "dormant").await.password_hash,
        dormant.password_hash
    );
    // The right one signs in and makes it an ordinary peppered hash.
    let signed_in = sign_in_and_exchange(&app, &app.browser(), &web, "legacy", &[]).await;
    assert!(signed_in["access_token"].is_string());
    let rekeyed = stored_user(&app, "legacy").await;
    assert_eq!(rekeyed.password_key_version, 1);
    assert!(rekeyed.password_hash.starts_with("$argon2id$"), "re-keyed");
    assert!(!verifies_offline(&rekeyed.password_hash, password));
    let again = sign_in_and_exchange(&app, &app.browser(), &web, "legacy", &[]).await;
    assert!(again["access_token"].is_string(), "the re-keyed hash works");
}

/// A rotation stopped after registering the new version: the old key may
/// not be dropped yet, no other rotation may start, the old key cannot be
/// rotated to again, and running the command again finishes it.
async fn an_interrupted_rotation_resumes_and_guards_the_old_key(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let database = Arc::new(database);
    let dir = tempfile::tempdir().unwrap();
    let (old, new, third) = (
        MasterKey::generate(),
        MasterKey::generate(),
        MasterKey::generate(),
    );
    let new_file = key_file(dir.path(), "master-2.key", &new);
    let third_file = key_file(dir.path(), "master-3.key", &third);
    let old_file = key_file(dir.path(), "master-1.key", &old);
    let extra = vec![new_file.clone()];
    let app = spawn_app_on(database.clone(), copy(&old), |config| {
        config.extra_master_key_files = extra;
    })
    .await
    .unwrap();
    let (machine_id, machine_secret) = app.machine_client(&["orders:read"]).await;
    // The crash: version 2 registered, nothing re-sealed.
    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .unwrap();
    assert!(
        runtime
            .store
            .register_master_key(2, &new.fingerprint(), chrono::Utc::now())
            .await
            .unwrap()
    );
    runtime.store.close().await;

    let refused = Runtime::open(
        &crate::helpers::test_config(&database.url, &new),
        false,
        &SystemClock,
    )
    .await
    .err()
    .expect("the old key is still needed");
    assert!(
        matches!(
            refused,
            StartupError::Secrets(SecretsError::RotationUnfinished {
                version: 2,
                previous: 1
            })
        ),
        "{refused}"
    );
    // The operator's configuration during the rotation holds both keys.
    let both = [(
        "AUTHD_MASTER_KEY_EXTRA_FILES",
        new_file.to_str().unwrap().to_owned(),
    )];
    let rotate = |with: &Path, env: &[(&str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        authd_with(
            &database,
            &old,
            &env,
            &[
                "master-key",
                "rotate",
                "--new-key-file",
                with.to_str().unwrap(),
                "--propagation-delay",
                "300ms",
            ],
        )
    };
    let output = rotate(&third_file, &both);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has not finished"), "{stderr}");

    // The running server still answers while the rotation is pending.
    let cc = app.client_credentials(&machine_id, &machine_secret).await;
    json_200(cc, "during the rotation").await;

    // Resumed with the command alone: its --new-key-file is held too.
    let report = json_ok(&rotate(&new_file, &[]));
    assert_eq!(report["version"], 2, "resumed, not a version 3");
    let output = rotate(&old_file, &both);
    assert!(
        !output.status.success(),
        "an old key is not rotated to again"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("which version 2 replaced"), "{stderr}");
    app.stop().await;

    let later = spawn_app_on(database, copy(&new), |_| {}).await.unwrap();
    let cc = later.client_credentials(&machine_id, &machine_secret).await;
    json_200(cc, "after resuming, with the new key alone").await;
    later.stop().await;
}

/// Step 2 of the procedure is checked: while a running replica lacks the
/// new key (it could not open what gets re-sealed), the rotation is
/// refused and changes nothing; a replica that stops forgets its record.
async fn rotation_waits_for_every_running_replica_to_hold_the_new_key(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let database = Arc::new(database);
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (MasterKey::generate(), MasterKey::generate());
    let new_file = key_file(dir.path(), "master-2.key", &new);
    let unprepared = spawn_app_on(database.clone(), copy(&old), |_| {})
        .await
        .unwrap();
    let (machine_id, machine_secret) = unprepared.machine_client(&["orders:read"]).await;
    let rotate = || {
        authd(
            &database,
            &old,
            &[
                "master-key",
                "rotate",
                "--new-key-file",
                new_file.to_str().unwrap(),
                "--propagation-delay",
                "300ms",
            ],
        )
    };
    let output = rotate();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("do not hold the new key {}", new.short_id()))
            && stderr.contains("/pid-"),
        "names the replica: {stderr}"
    );
    let status = json_ok(&authd(&database, &old, &["master-key", "status"]));
    assert_eq!(status.as_array().unwrap().len(), 1, "nothing registered");
    let cc = unprepared
        .client_credentials(&machine_id, &machine_secret)
        .await;
    json_200(cc, "the replica is unaffected").await;

    // The rolling restart of step 2.
    unprepared.stop().await;
    let extra = vec![new_file.clone()];
    let prepared = spawn_app_on(database.clone(), copy(&old), |config| {
        config.extra_master_key_files = extra;
    })
    .await
    .unwrap();
    // The stopped replica's record goes with it (asynchronously).
    let mut report = None;
    for _ in 0..50 {
        let output = rotate();
        if output.status.success() {
            report = Some(json_ok(&output));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let report = report.expect("rotation accepted once every replica holds the key");
    assert_eq!(report["version"], 2);
    let cc = prepared
        .client_credentials(&machine_id, &machine_secret)
        .await;
    json_200(cc, "after the rotation").await;
    prepared.stop().await;
}

/// `authd master-key generate --out F` writes a key the server accepts, with
/// mode 0600, and never overwrites a file.
async fn generate_writes_a_private_key_file_once(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let Some(database) = test_database(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("next.key");
    let key = MasterKey::generate();
    let printed = json_ok(&authd(
        &database,
        &key,
        &["master-key", "generate", "--out", out.to_str().unwrap()],
    ));
    let written = MasterKey::from_base64(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(printed["key_id"], written.short_id());
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = authd(
        &database,
        &key,
        &["master-key", "generate", "--out", out.to_str().unwrap()],
    );
    assert!(!again.status.success(), "an existing file is kept");
    let kept = MasterKey::from_base64(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(kept.short_id(), written.short_id());
    let stdout = String::from_utf8_lossy(&again.stdout);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !stdout.contains(&written.to_base64()) && !stderr.contains(&written.to_base64()),
        "the key is never printed"
    );
}

on_both_backends!(
    every_flow_works_after_a_master_key_rotation,
    an_interrupted_rotation_resumes_and_guards_the_old_key,
    rotation_waits_for_every_running_replica_to_hold_the_new_key,
    generate_writes_a_private_key_file_once,
    password_hashes_need_the_master_key_and_old_ones_are_rekeyed,
);
