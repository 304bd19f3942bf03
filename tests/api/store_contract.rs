//! The storage contract: every repository method, on both backends.
use std::sync::Arc;

use authd::crypto::{MasterKey, Purpose, Sealer};
use authd::domain::{
    Client, ClientId, ClientKind, ClientName, GrantType, KeyState, Kid, RedirectUri, Scope,
    SecretDigest, User, UserId, Username,
};
use authd::store::{self, CacheEpochs, PoolSettings, SigningKeyRecord, Store};
use chrono::{DurationRound, TimeDelta, Utc};

use crate::helpers::{Backend, TestDatabase, on_both_backends, test_database};

async fn open(backend: Backend) -> Option<(Arc<dyn Store>, TestDatabase)> {
    let database = test_database(backend).await?;
    let store = store::connect(
        &database.url,
        PoolSettings {
            max_connections: 4,
            acquire_timeout: std::time::Duration::from_secs(5),
        },
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    // Migrations are idempotent.
    store.migrate().await.unwrap();
    Some((store, database))
}

fn now() -> chrono::DateTime<Utc> {
    // Both backends keep microseconds.
    Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .unwrap()
}

fn client(kind: ClientKind) -> Client {
    Client {
        id: ClientId::generate(),
        name: ClientName::parse("Contract").unwrap(),
        kind,
        secret: (kind == ClientKind::Confidential).then(|| SecretDigest {
            digest: vec![7; 32],
            key_version: 1,
        }),
        redirect_uris: vec![RedirectUri::parse("https://a.example/cb").unwrap()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scope: "b a".parse().unwrap(),
        audiences: vec!["https://api.example".into()],
        post_logout_redirect_uris: vec![RedirectUri::parse("https://a.example/bye").unwrap()],
        skip_consent: kind == ClientKind::Confidential,
        created_at: now(),
        updated_at: now(),
    }
}

async fn clients_round_trip(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let epochs = store.cache_epochs().await.unwrap();
    let confidential = client(ClientKind::Confidential);
    let public = client(ClientKind::Public);
    store.insert_client(&confidential).await.unwrap();
    store.insert_client(&public).await.unwrap();
    assert!(matches!(
        store.insert_client(&public).await,
        Err(store::Error::Conflict(_))
    ));

    let found = store.find_client(&confidential.id).await.unwrap().unwrap();
    assert_eq!(found.id, confidential.id);
    assert_eq!(found.name, confidential.name);
    assert_eq!(found.kind, ClientKind::Confidential);
    assert_eq!(found.secret, confidential.secret);
    assert_eq!(found.redirect_uris, confidential.redirect_uris);
    assert_eq!(found.grant_types, confidential.grant_types);
    assert_eq!(found.scope, Scope::from_tokens(["a", "b"]).unwrap());
    assert_eq!(found.audiences, confidential.audiences);
    assert_eq!(found.created_at, confidential.created_at);
    assert!(
        store
            .find_client(&ClientId::generate())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_clients().await.unwrap().len(), 2);

    let new_secret = SecretDigest {
        digest: vec![9; 32],
        key_version: 1,
    };
    assert!(
        store
            .replace_client_secret(&confidential.id, &new_secret, now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .replace_client_secret(&public.id, &new_secret, now())
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .find_client(&confidential.id)
            .await
            .unwrap()
            .unwrap()
            .secret,
        Some(new_secret)
    );

    assert!(store.delete_client(&public.id).await.unwrap());
    assert!(!store.delete_client(&public.id).await.unwrap());
    assert_eq!(store.list_clients().await.unwrap().len(), 1);

    let after = store.cache_epochs().await.unwrap();
    assert!(
        after.clients >= epochs.clients + 5,
        "every change bumps the clients epoch"
    );
    assert_eq!(after.signing_keys, epochs.signing_keys);
}

async fn users_round_trip(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let user = User {
        id: UserId(uuid::Uuid::new_v4()),
        username: Username::parse("alice").unwrap(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        name: Some("Alice Example".into()),
        email: Some("alice@example.com".into()),
        email_verified: true,
        disabled: false,
        created_at: now(),
    };
    store.insert_user(&user).await.unwrap();
    let twin = User {
        id: UserId(uuid::Uuid::new_v4()),
        ..user.clone()
    };
    assert!(matches!(
        store.insert_user(&twin).await,
        Err(store::Error::Conflict("username"))
    ));
    let users = store.list_users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].id, user.id);
    assert_eq!(users[0].password_hash, user.password_hash);
    assert!(!users[0].disabled);
    assert!(store.disable_user(user.id).await.unwrap());
    assert!(store.list_users().await.unwrap()[0].disabled);
    assert!(
        !store
            .disable_user(UserId(uuid::Uuid::new_v4()))
            .await
            .unwrap()
    );
}

fn key_record(sealer: &Sealer, kid: &str) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: Kid(kid.into()),
        alg: "RS256".into(),
        state: KeyState::Active,
        public_n: "n".into(),
        public_e: "AQAB".into(),
        private_key_sealed: sealer.seal(kid, b"private key der"),
        created_at: now(),
        activated_at: Some(now()),
        retired_at: None,
    }
}

async fn signing_keys_keep_one_active(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let master = MasterKey::generate();
    let sealer = Sealer::new(&master, Purpose::SigningKeySealing);
    let before = store.cache_epochs().await.unwrap();
    assert!(
        store
            .insert_first_active_key(&key_record(&sealer, "k1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_first_active_key(&key_record(&sealer, "k2"))
            .await
            .unwrap(),
        "one active key only"
    );
    store
        .replace_active_key(&key_record(&sealer, "k3"), now())
        .await
        .unwrap();
    let keys = store.list_signing_keys().await.unwrap();
    let states: Vec<(&str, KeyState, bool)> = keys
        .iter()
        .map(|k| (k.kid.0.as_str(), k.state, k.retired_at.is_some()))
        .collect();
    assert_eq!(
        states,
        [
            ("k1", KeyState::Retired, true),
            ("k3", KeyState::Active, false)
        ]
    );
    assert_eq!(
        store.cache_epochs().await.unwrap().signing_keys,
        before.signing_keys + 2
    );

    // The sealed private key opens on its own row only.
    let k3 = &keys[1];
    assert!(sealer.open("k3", &k3.private_key_sealed).is_ok());
    assert!(sealer.open("k1", &k3.private_key_sealed).is_err());
}

async fn master_key_fingerprint_is_claimed_once(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let first = store
        .claim_master_key_fingerprint(1, b"first", now())
        .await
        .unwrap();
    assert_eq!(first, b"first");
    let second = store
        .claim_master_key_fingerprint(1, b"second", now())
        .await
        .unwrap();
    assert_eq!(second, b"first", "the first fingerprint stays");
    store.ping().await.unwrap();
    assert_ne!(
        store.cache_epochs().await.unwrap(),
        CacheEpochs {
            clients: -1,
            signing_keys: -1
        }
    );
}

on_both_backends!(
    clients_round_trip,
    users_round_trip,
    signing_keys_keep_one_active,
    master_key_fingerprint_is_claimed_once,
);

/// DESIGN "Secrets at rest": a copy of the database alone yields neither a
/// client secret nor a signing key. The whole SQLite file (and its WAL), or
/// every row of PostgreSQL's tables as text, is searched for the secret and
/// for the signing key's private DER.
async fn database_dump_holds_no_usable_secret(backend: Backend) {
    use secrecy::ExposeSecret;
    let Some(app) = crate::helpers::spawn_app(backend).await else {
        return;
    };
    let (_, secret) = app.machine_client(&["a"]).await;
    let runtime = authd::startup::Runtime::open(&app.config, false, &authd::clock::SystemClock)
        .await
        .unwrap();
    let key = &runtime.store.list_signing_keys().await.unwrap()[0];
    let der = runtime
        .signing_key_sealer()
        .open(&key.kid.0, &key.private_key_sealed)
        .unwrap();
    // A 32-byte run of the private key: any plaintext copy would contain it.
    let private_run = &der.expose_secret()[40..72];
    let dump: Vec<u8> = match backend {
        Backend::Sqlite => {
            let path = app.database.url.trim_start_matches("sqlite://").to_owned();
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
            bytes
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut connection = sqlx::PgConnection::connect(&app.database.url)
                .await
                .unwrap();
            let mut text = String::new();
            for table in [
                "clients",
                "signing_keys",
                "master_key_fingerprints",
                "users",
            ] {
                let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT row_to_json(t)::text FROM {table} t"
                )))
                .fetch_all(&mut connection)
                .await
                .unwrap();
                text.extend(rows.into_iter().map(|(row,)| row));
            }
            // bytea appears as hex in JSON; search for the hex of the run too.
            let hex: String = private_run.iter().map(|b| format!("{b:02x}")).collect();
            assert!(!text.contains(&hex), "private key in plaintext");
            text.into_bytes()
        }
    };
    assert!(dump.len() > 1000, "the dump has content");
    assert!(
        dump.windows(4).any(|w| w == b"RS25"),
        "signing key rows are in the dump"
    );
    assert!(
        !dump.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "client secret in the dump"
    );
    assert!(
        !dump.windows(private_run.len()).any(|w| w == private_run),
        "private key in plaintext"
    );
    runtime.store.close().await;
}

on_both_backends!(database_dump_holds_no_usable_secret);
