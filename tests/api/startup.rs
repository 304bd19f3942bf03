//! Starting, restarting and running several replicas on one database.
use std::sync::Arc;

use authd::crypto::MasterKey;
use authd::startup::StartupError;
use serde_json::Value;

use crate::client_credentials::verify_access_token;
use crate::helpers::{Backend, TestApp, cc_token, on_both_backends, spawn_app_on, test_database};

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn copy(key: &MasterKey) -> MasterKey {
    MasterKey::from_base64(&key.to_base64()).unwrap()
}

async fn restart_keeps_the_signing_key_and_clients(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let database = Arc::new(database);
    let key = MasterKey::generate();
    // Tokens name the issuer, so both runs use the same one.
    let issuer =
        |config: &mut authd::config::Config| config.issuer = Some("http://authd.test".into());
    let first = spawn_app_on(database.clone(), copy(&key), issuer)
        .await
        .unwrap();
    let (id, secret) = first.machine_client(&[]).await;
    let token = cc_token(&first, &id, &secret).await;
    let kids = jwks_kids(&first).await;
    first.stop().await;

    let second = spawn_app_on(database, key, issuer).await.unwrap();
    assert_eq!(
        jwks_kids(&second).await,
        kids,
        "same signing key after restart"
    );
    // A token from before the restart still verifies, and the client still works.
    let claims = verify_access_token(&second, &token, &first.issuer).await;
    assert_eq!(claims["sub"], id.as_str());
    cc_token(&second, &id, &secret).await;
}

async fn wrong_master_key_refuses_to_start(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let database = Arc::new(database);
    let first = spawn_app_on(database.clone(), MasterKey::generate(), |_| {})
        .await
        .unwrap();
    first.stop().await;
    let error = spawn_app_on(database, MasterKey::generate(), |_| {})
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            error,
            StartupError::Secrets(authd::secrets::SecretsError::WrongMasterKey { current: 1, .. })
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.starts_with("AUTHD_MASTER_KEY"), "{message}");
    assert!(!message.contains('\n'));
}

async fn replicas_starting_together_create_one_signing_key(backend: Backend) {
    let Some(fresh) = test_database(backend).await else {
        return;
    };
    let fresh = Arc::new(fresh);
    let key = MasterKey::generate();
    // Create the schema and fingerprint, but no key, then race two starts.
    let runtime = authd::startup::Runtime::open(
        &crate::helpers::test_config(&fresh.url, &key),
        true,
        &authd::clock::SystemClock,
    )
    .await
    .unwrap();
    runtime.store.close().await;
    let (a, b) = tokio::join!(
        spawn_app_on(fresh.clone(), copy(&key), |_| {}),
        spawn_app_on(fresh.clone(), copy(&key), |_| {})
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // Both settle on the one active and the one next key the database kept.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let kids = jwks_kids(&a).await;
    assert_eq!(kids.len(), 2, "active and next");
    assert_eq!(jwks_kids(&b).await, kids);
    let (id, secret) = a.machine_client(&[]).await;
    let token = cc_token(&b, &id, &secret).await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(
        header.kid.as_deref(),
        Some(kids[0].as_str()),
        "the active key is listed first"
    );
}

on_both_backends!(
    restart_keeps_the_signing_key_and_clients,
    wrong_master_key_refuses_to_start,
    replicas_starting_together_create_one_signing_key,
);

/// The mode bits of `path` (permissions only).
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Security review finding 6: the SQLite database holds usernames, emails,
/// consents and password hashes. `authd migrate` creates its directory
/// 0700 and the file 0600, and a running server's `-wal` and `-shm` files
/// are 0600 too; an existing database readable by others is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_private_to_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/nested/authd.db");
    let url = format!("sqlite://{}", path.display());
    let key = MasterKey::generate();
    let output = crate::helpers::authd_command(&url, &key)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    assert_eq!(mode(&dir.path().join("data/nested")), 0o700);
    assert_eq!(mode(&path), 0o600);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("readable by others"), "{stderr}");

    // A running server writes through the WAL.
    let config = crate::helpers::test_config(&url, &key);
    let app = authd::startup::Application::build(config, true)
        .await
        .expect("app starts");
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    for suffix in ["-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    handle.stop(true).await;

    // A database made looser by hand is reported (and left alone).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let output = crate::helpers::authd_command(&url, &key)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the database file is readable by others than its owner"),
        "{stderr}"
    );
    assert_eq!(mode(&path), 0o644);

    // An in-memory database leaves no file behind.
    let cwd = tempfile::tempdir().unwrap();
    let output = crate::helpers::authd_command("sqlite::memory:", &key)
        .arg("migrate")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
