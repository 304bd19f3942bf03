//! Access-token validation: `tokens::verify::verify_access_token`, the check
//! behind /userinfo (through `verify_access_token_reloading`, which only adds
//! a key-ring reload on an unknown `kid`), /introspect and /revoke; and
//! `verify_id_token_hint` (RP-initiated logout), on the same inputs.
//!
//! Set-up, once per process: a key ring made the way authd makes it
//! (`Keys::load_or_create` on a SQLite database under `fuzz/target/`, sealed
//! with a fixed master key, so later runs reuse the same RSA keys), a fixed
//! clock, and one access token issued by `TokenIssuer` with a fixed `jti`:
//! RS256 (PKCS#1 v1.5) is deterministic, so the valid token is the same in
//! every run against the same database.
//!
//! Input: one mode byte, then:
//! - 0: the rest is the token;
//! - 1: edits of the valid token, 3 bytes each (operation, position, byte):
//!   replace, insert, delete, or cut there;
//! - 2: one of the three segments (chosen by the next byte) replaced by the
//!   rest, as is;
//! - 3: the header or the payload (next byte) replaced by base64url(rest),
//!   the other segments kept: the fuzzer writes the JSON;
//! - 4: like 1, but the edits apply to the decoded header or payload JSON,
//!   which is then re-encoded, with the original signature kept.
//!
//! Asserts: never panics; `verify_access_token` accepts the unmodified valid
//! token (checked once at set-up) and nothing else: any other string
//! carrying a valid signature by one of the ring's keys would need a
//! forgery; `verify_id_token_hint` accepts none of them (no ID token was
//! issued).
#![no_main]

use std::sync::{Arc, OnceLock};

use authd::clock::MockClock;
use authd::crypto::{MasterKey, Purpose, Sealer};
use authd::domain::{Client, ClientId, ClientKind, ClientName, Scope};
use authd::store::{self, KeySchedule, PoolSettings};
use authd::tokens::verify::{verify_access_token, verify_id_token_hint};
use authd::tokens::{AccessTokenRequest, Keys, SigningPool, TokenIssuer, keyring};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "https://authd.fuzz.example";
/// 2030-03-17T17:46:40Z: the clock never moves.
const NOW: i64 = 1_900_000_000;

struct Fixture {
    keys: Arc<Keys>,
    clock: Arc<MockClock>,
    token: String,
    /// Keeps the database pool's runtime alive.
    _runtime: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let clock = Arc::new(MockClock::new(
            chrono::DateTime::from_timestamp(NOW, 0).expect("a time"),
        ));
        let dir = std::env::var_os("AUTHD_FUZZ_JWT_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/jwt-keyring")
            });
        std::fs::create_dir_all(&dir).expect("key-ring directory");
        let url = format!("sqlite://{}", dir.join("authd.db").display());
        let (keys, token) = runtime.block_on(async {
            let store = store::connect(
                &url,
                PoolSettings {
                    max_connections: 1,
                    acquire_timeout: std::time::Duration::from_secs(30),
                },
            )
            .await
            .expect("key-ring database");
            store.migrate().await.expect("migrations");
            let sealer = Arc::new(Sealer::new(
                &MasterKey::from_bytes([0x5a; 32]),
                Purpose::SigningKeySealing,
            ));
            let keys = Arc::new(
                Keys::load_or_create(
                    store,
                    sealer,
                    clock.as_ref(),
                    2048,
                    KeySchedule {
                        rotation_period: chrono::Duration::days(30),
                        prepublish: chrono::Duration::days(1),
                        retention: keyring::retention(),
                    },
                )
                .await
                .expect("key ring (delete fuzz/target/jwt-keyring if the master key changed)"),
            );
            let issuer = TokenIssuer::new(
                ISSUER.to_owned(),
                keys.clone(),
                SigningPool::start(1),
                clock.clone(),
            );
            let client = client();
            let scope: Scope = "openid profile orders:read".parse().expect("scope");
            let token = issuer
                .issue_access_token(AccessTokenRequest {
                    subject: "user-1",
                    client: &client,
                    scope: &scope,
                    jti: Some("fuzz-jti-1".into()),
                })
                .await
                .expect("a token")
                .token;
            (keys, token)
        });
        // The fixture is sound: the token is accepted, and is no ID token.
        let claims = verify_access_token(&keys, ISSUER, &token, clock.as_ref())
            .expect("the valid token verifies");
        assert_eq!(claims.sub, "user-1");
        assert!(verify_id_token_hint(&keys, ISSUER, &token).is_err());
        if std::env::var_os("AUTHD_FUZZ_PRINT_TOKEN").is_some() {
            eprintln!("valid token: {token}");
        }
        Fixture {
            keys,
            clock,
            token,
            _runtime: runtime,
        }
    })
}

fn client() -> Client {
    let now = chrono::DateTime::from_timestamp(NOW, 0).expect("a time");
    Client {
        id: ClientId::parse("fuzz-client").expect("client id"),
        name: ClientName::parse("fuzz client").expect("client name"),
        kind: ClientKind::Confidential,
        secret: None,
        redirect_uris: Vec::new(),
        grant_types: Vec::new(),
        scope: Scope::default(),
        audiences: vec!["https://api.fuzz.example".into()],
        post_logout_redirect_uris: Vec::new(),
        skip_consent: false,
        can_introspect: false,
        rate_tier: "default".into(),
        allowed_origins: Vec::new(),
        created_at: now,
        updated_at: now,
    }
}

/// Applies (operation, position, byte) edits to `bytes`.
fn edit(mut bytes: Vec<u8>, edits: &[u8]) -> Vec<u8> {
    for op in edits.chunks_exact(3) {
        let (kind, position, byte) = (op[0], op[1] as usize, op[2]);
        // Positions reach the whole token: the high bits of the kind byte
        // choose which 256-byte window.
        let position = (usize::from(kind >> 2) * 256 + position) % (bytes.len() + 1);
        match kind & 3 {
            0 if position < bytes.len() => bytes[position] = byte,
            1 => bytes.insert(position, byte),
            2 if position < bytes.len() => {
                bytes.remove(position);
            }
            3 => bytes.truncate(position),
            _ => {}
        }
    }
    bytes
}

fn segments(token: &str) -> [&str; 3] {
    let mut parts = token.split('.');
    let header = parts.next().expect("header");
    let payload = parts.next().expect("payload");
    let signature = parts.next().expect("signature");
    [header, payload, signature]
}

fn candidate(fixture: &Fixture, data: &[u8]) -> Option<String> {
    let (&mode, rest) = data.split_first()?;
    let valid = fixture.token.as_str();
    let token = match mode % 5 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => String::from_utf8_lossy(&edit(valid.as_bytes().to_vec(), rest)).into_owned(),
        2 => {
            let (&which, replacement) = rest.split_first()?;
            let mut parts = segments(valid).map(str::to_owned);
            parts[usize::from(which % 3)] = String::from_utf8_lossy(replacement).into_owned();
            parts.join(".")
        }
        3 => {
            let (&which, json) = rest.split_first()?;
            let mut parts = segments(valid).map(str::to_owned);
            parts[usize::from(which % 2)] = URL_SAFE_NO_PAD.encode(json);
            parts.join(".")
        }
        _ => {
            let (&which, edits) = rest.split_first()?;
            let mut parts = segments(valid).map(str::to_owned);
            let which = usize::from(which % 2);
            let json = URL_SAFE_NO_PAD.decode(&parts[which]).expect("own segment");
            parts[which] = URL_SAFE_NO_PAD.encode(edit(json, edits));
            parts.join(".")
        }
    };
    Some(token)
}

fuzz_target!(
    // Before the first input: on a fresh checkout the set-up generates RSA
    // keys, which under the address sanitizer takes longer than the
    // per-input timeout.
    init: {
        fixture();
    },
    |data: &[u8]| {
        let fixture = fixture();
        let Some(token) = candidate(fixture, data) else {
            return;
        };
        let accepted = verify_access_token(&fixture.keys, ISSUER, &token, fixture.clock.as_ref());
        if token == fixture.token {
            assert!(accepted.is_ok(), "the valid token was refused");
        } else {
            assert!(
                accepted.is_err(),
                "a token other than the one issued was accepted: {token:?} ({:?})",
                accepted.map(|claims| claims.jti)
            );
        }
        assert!(
            verify_id_token_hint(&fixture.keys, ISSUER, &token).is_err(),
            "an ID token hint was accepted though none was issued: {token:?}"
        );
    }
);
