//! The storage contract: every repository method, on both backends.
use std::sync::Arc;

use authd::crypto::{MasterKey, Purpose, Sealer};
use authd::domain::{
    Client, ClientId, ClientKind, ClientName, GrantType, KeyState, Kid, RedirectUri, Scope,
    SecretDigest, User, UserId, Username,
};
use authd::store::{
    self, CacheEpochs, CodeRecord, PendingRequestRecord, PoolSettings, Resealed, SealedColumn,
    SigningKeyRecord, Store,
};
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

/// A second store on the same database with a connection per concurrent
/// caller (more than the server's default of 10), so that contention is
/// decided by the database, not by waiting for the pool.
async fn wide_pool(database: &TestDatabase) -> Arc<dyn Store> {
    store::connect(
        &database.url,
        PoolSettings {
            max_connections: 20,
            acquire_timeout: std::time::Duration::from_secs(5),
        },
    )
    .await
    .unwrap()
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
        can_introspect: kind == ClientKind::Confidential,
        rate_tier: "standard".into(),
        allowed_origins: Vec::new(),
        dynamic: None,
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
    assert_eq!(
        found.post_logout_redirect_uris,
        confidential.post_logout_redirect_uris
    );
    assert!(found.skip_consent);
    assert_eq!(found.created_at, confidential.created_at);
    let found_public = store.find_client(&public.id).await.unwrap().unwrap();
    assert_eq!(found_public.kind, ClientKind::Public);
    assert_eq!(found_public.secret, None);
    assert_eq!(
        found_public.post_logout_redirect_uris,
        public.post_logout_redirect_uris
    );
    assert!(!found_public.skip_consent);
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
            .replace_client_secret(&confidential.id, &new_secret, now(), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .replace_client_secret(&public.id, &new_secret, now(), None)
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

    // Conditional: not while it is another version than expected.
    let stale = public.updated_at - chrono::Duration::seconds(1);
    assert!(
        !store
            .delete_client(&public.id, now(), Some(stale))
            .await
            .unwrap()
    );
    assert!(store.delete_client(&public.id, now(), None).await.unwrap());
    assert!(!store.delete_client(&public.id, now(), None).await.unwrap());
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
        password_key_version: 1,
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
    assert!(
        store
            .disable_user(user.id, chrono::Utc::now())
            .await
            .unwrap()
    );
    assert!(store.list_users().await.unwrap()[0].disabled);
    assert!(
        !store
            .disable_user(UserId(uuid::Uuid::new_v4()), chrono::Utc::now())
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
        activates_at: None,
        removed_at: None,
        revoked_at: None,
    }
}

fn schedule() -> store::KeySchedule {
    store::KeySchedule {
        rotation_period: TimeDelta::days(30),
        prepublish: TimeDelta::hours(24),
        retention: TimeDelta::minutes(16),
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
    assert_eq!(
        store
            .rotate_keys_now(now(), &schedule(), &key_record(&sealer, "k3"), true)
            .await
            .unwrap(),
        store::RotateOutcome::Forced {
            activated: Kid("k3".into())
        }
    );
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

/// The schedule, one pass at a time, with time passed in: next → active →
/// retired → removed, each transition once.
async fn key_schedule_walks_every_state_once(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let sealer = Sealer::new(&MasterKey::generate(), Purpose::SigningKeySealing);
    let t0 = now();
    let state = |keys: &[SigningKeyRecord]| -> Vec<(String, KeyState)> {
        keys.iter().map(|k| (k.kid.0.clone(), k.state)).collect()
    };
    assert!(
        store
            .insert_first_active_key(&key_record(&sealer, "a"))
            .await
            .unwrap()
    );
    // No next key: the schedule asks for a candidate, then publishes it.
    let asked = store
        .apply_key_schedule(t0, &schedule(), None)
        .await
        .unwrap();
    assert!(asked.needs_next && !asked.changed());
    let published = store
        .apply_key_schedule(t0, &schedule(), Some(&key_record(&sealer, "b")))
        .await
        .unwrap();
    assert_eq!(published.inserted_next, Some(Kid("b".into())));
    let keys = store.list_signing_keys().await.unwrap();
    let b = keys.iter().find(|k| k.kid.0 == "b").unwrap();
    assert_eq!(b.state, KeyState::Next);
    // Due a rotation period after the active key started.
    assert_eq!(
        b.activates_at,
        Some(keys[0].activated_at.unwrap() + TimeDelta::days(30))
    );
    // A second candidate is not used while a next key exists.
    let idle = store
        .apply_key_schedule(
            t0 + TimeDelta::days(29),
            &schedule(),
            Some(&key_record(&sealer, "x")),
        )
        .await
        .unwrap();
    assert!(!idle.changed(), "{idle:?}");

    // Day 30: b signs, a is retired; a new next key is asked for.
    let t30 = b.activates_at.unwrap();
    let rotated = store
        .apply_key_schedule(t30, &schedule(), None)
        .await
        .unwrap();
    assert_eq!(rotated.activated, Some(Kid("b".into())));
    assert_eq!(rotated.retired, Some(Kid("a".into())));
    assert!(rotated.needs_next);
    store
        .apply_key_schedule(t30, &schedule(), Some(&key_record(&sealer, "c")))
        .await
        .unwrap();
    assert_eq!(
        state(&store.list_signing_keys().await.unwrap()),
        [
            ("a".into(), KeyState::Retired),
            ("b".into(), KeyState::Active),
            ("c".into(), KeyState::Next)
        ]
    );
    // Again at the same instant (another replica): nothing happens twice.
    let again = store
        .apply_key_schedule(t30, &schedule(), Some(&key_record(&sealer, "y")))
        .await
        .unwrap();
    assert!(!again.changed(), "{again:?}");

    // The retired key stays published for the retention, then is removed
    // and loses its private half.
    let kept = store
        .apply_key_schedule(t30 + TimeDelta::minutes(15), &schedule(), None)
        .await
        .unwrap();
    assert!(kept.removed.is_empty());
    let removed = store
        .apply_key_schedule(t30 + TimeDelta::minutes(16), &schedule(), None)
        .await
        .unwrap();
    assert_eq!(removed.removed, [Kid("a".into())]);
    let keys = store.list_signing_keys().await.unwrap();
    let a = keys.iter().find(|k| k.kid.0 == "a").unwrap();
    assert_eq!(a.state, KeyState::Removed);
    assert!(a.private_key_sealed.is_empty(), "private half deleted");
}

/// `keys rotate` and `keys revoke`, at the store.
async fn manual_rotation_and_revocation(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let sealer = Sealer::new(&MasterKey::generate(), Purpose::SigningKeySealing);
    let t0 = now();
    store
        .insert_first_active_key(&key_record(&sealer, "a"))
        .await
        .unwrap();
    // No next key: refused without force, nothing changes.
    assert_eq!(
        store
            .rotate_keys_now(t0, &schedule(), &key_record(&sealer, "x"), false)
            .await
            .unwrap(),
        store::RotateOutcome::NoNextKey
    );
    store
        .apply_key_schedule(t0, &schedule(), Some(&key_record(&sealer, "b")))
        .await
        .unwrap();
    assert_eq!(
        store
            .rotate_keys_now(t0, &schedule(), &key_record(&sealer, "c"), false)
            .await
            .unwrap(),
        store::RotateOutcome::Rotated {
            activated: Kid("b".into()),
            next: Kid("c".into())
        }
    );
    // Revoking the active key: the next key signs at once, a new next appears.
    assert_eq!(
        store
            .revoke_key(&Kid("b".into()), t0, &schedule(), &key_record(&sealer, "d"))
            .await
            .unwrap(),
        store::RevokeOutcome::Revoked {
            activated: Some(Kid("c".into())),
            next: Some(Kid("d".into()))
        }
    );
    let keys = store.list_signing_keys().await.unwrap();
    let b = keys.iter().find(|k| k.kid.0 == "b").unwrap();
    assert_eq!(b.state, KeyState::Revoked);
    assert!(b.private_key_sealed.is_empty());
    assert_eq!(
        store
            .revoke_key(&Kid("b".into()), t0, &schedule(), &key_record(&sealer, "e"))
            .await
            .unwrap(),
        store::RevokeOutcome::AlreadyGone
    );
    assert_eq!(
        store
            .revoke_key(
                &Kid("nope".into()),
                t0,
                &schedule(),
                &key_record(&sealer, "f")
            )
            .await
            .unwrap(),
        store::RevokeOutcome::NotFound
    );
    let active: Vec<_> = store
        .list_signing_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.state == KeyState::Active)
        .map(|k| k.kid.0)
        .collect();
    assert_eq!(active, ["c"]);
}

/// Replicas reaching the rotation instant together: one transition.
async fn concurrent_schedule_passes_rotate_once(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let sealer = Sealer::new(&MasterKey::generate(), Purpose::SigningKeySealing);
    let t0 = now();
    store
        .insert_first_active_key(&key_record(&sealer, "a"))
        .await
        .unwrap();
    store
        .apply_key_schedule(t0, &schedule(), Some(&key_record(&sealer, "b")))
        .await
        .unwrap();
    let due = t0 + TimeDelta::days(31);
    let passes = (0..8).map(|i| {
        let store = store.clone();
        let candidate = key_record(&sealer, &format!("c{i}"));
        async move {
            store
                .apply_key_schedule(due, &schedule(), Some(&candidate))
                .await
                .unwrap()
        }
    });
    let outcomes = futures_util::future::join_all(passes).await;
    assert_eq!(
        outcomes.iter().filter(|o| o.activated.is_some()).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.inserted_next.is_some())
            .count(),
        1,
        "{outcomes:?}"
    );
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(
        keys.iter().filter(|k| k.state == KeyState::Active).count(),
        1
    );
    assert_eq!(keys.iter().filter(|k| k.state == KeyState::Next).count(), 1);
    assert_eq!(keys.len(), 3, "one new key, no double insert");
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
    // A fresh database starts every counter at zero.
    assert_eq!(
        store.cache_epochs().await.unwrap(),
        CacheEpochs {
            clients: 0,
            signing_keys: 0,
            master_keys: 0,
        }
    );

    // Registering version 2 starts a rotation (not re-sealed yet) and bumps
    // the master_keys epoch; the same version cannot be registered twice.
    assert!(store.register_master_key(2, b"two", now()).await.unwrap());
    assert!(!store.register_master_key(2, b"other", now()).await.unwrap());
    let versions = store.master_key_versions().await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.fingerprint.clone(), v.resealed_at.is_some()))
            .collect::<Vec<_>>(),
        vec![(1, b"first".to_vec(), true), (2, b"two".to_vec(), false)]
    );
    assert_eq!(store.cache_epochs().await.unwrap().master_keys, 2);
    store.finish_master_key_rotation(2, now()).await.unwrap();
    let versions = store.master_key_versions().await.unwrap();
    assert!(versions[1].resealed_at.is_some());
    assert_eq!(store.cache_epochs().await.unwrap().master_keys, 3);

    // Digest keys: insert-if-absent; sealed values page in id order and are
    // replaced only while they still hold the value that was read.
    store
        .insert_digest_key("b", b"sealed-b", now())
        .await
        .unwrap();
    store
        .insert_digest_key("a", b"sealed-a", now())
        .await
        .unwrap();
    store
        .insert_digest_key("a", b"ignored", now())
        .await
        .unwrap();
    let page = store
        .sealed_values(SealedColumn::DigestKeys, "", 1)
        .await
        .unwrap();
    assert_eq!(page, vec![("a".to_owned(), b"sealed-a".to_vec())]);
    let page = store
        .sealed_values(SealedColumn::DigestKeys, "a", 10)
        .await
        .unwrap();
    assert_eq!(page, vec![("b".to_owned(), b"sealed-b".to_vec())]);
    let replaced = store
        .replace_sealed_values(
            SealedColumn::DigestKeys,
            &[
                Resealed {
                    id: "a".into(),
                    old: b"sealed-a".to_vec(),
                    new: b"resealed-a".to_vec(),
                },
                Resealed {
                    id: "b".into(),
                    old: b"stale".to_vec(),
                    new: b"lost".to_vec(),
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(replaced, 1, "the stale read of b is not applied");
    assert_eq!(
        store.digest_keys().await.unwrap(),
        vec![
            ("a".to_owned(), b"resealed-a".to_vec()),
            ("b".to_owned(), b"sealed-b".to_vec())
        ]
    );
}

on_both_backends!(
    key_schedule_walks_every_state_once,
    manual_rotation_and_revocation,
    concurrent_schedule_passes_rotate_once,
);

on_both_backends!(
    clients_round_trip,
    users_round_trip,
    signing_keys_keep_one_active,
    master_key_fingerprint_is_claimed_once,
);

fn user(username: &str) -> User {
    User {
        id: UserId(uuid::Uuid::new_v4()),
        username: Username::parse(username).unwrap(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${username}"),
        password_key_version: 1,
        name: Some(format!("{username} Example")),
        email: Some(format!("{username}@example.com")),
        email_verified: true,
        disabled: false,
        created_at: now(),
    }
}

fn assert_same_user(found: &User, expected: &User) {
    assert_eq!(found.id, expected.id);
    assert_eq!(found.username, expected.username);
    assert_eq!(found.password_hash, expected.password_hash);
    assert_eq!(found.password_key_version, expected.password_key_version);
    assert_eq!(found.name, expected.name);
    assert_eq!(found.email, expected.email);
    assert_eq!(found.email_verified, expected.email_verified);
    assert_eq!(found.disabled, expected.disabled);
    assert_eq!(found.created_at, expected.created_at);
}

async fn users_are_found_by_id_and_by_username(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let alice = user("alice");
    // A user without a profile: the optional claims stay absent.
    let bob = User {
        name: None,
        email: None,
        email_verified: false,
        ..user("bob")
    };
    store.insert_user(&alice).await.unwrap();
    store.insert_user(&bob).await.unwrap();
    for expected in [&alice, &bob] {
        let by_id = store.find_user(expected.id).await.unwrap().unwrap();
        assert_same_user(&by_id, expected);
        let by_name = store
            .find_user_by_username(&expected.username)
            .await
            .unwrap()
            .unwrap();
        assert_same_user(&by_name, expected);
    }
    let listed = store.list_users().await.unwrap();
    assert_eq!(listed.len(), 2);
    let listed_alice = listed.iter().find(|u| u.id == alice.id).unwrap();
    assert_same_user(listed_alice, &alice);

    assert!(
        store
            .find_user(UserId(uuid::Uuid::new_v4()))
            .await
            .unwrap()
            .is_none()
    );
    // Usernames compare exactly (case-sensitive).
    for unknown in ["carol", "Alice", "alice "] {
        let Some(username) = Username::parse(unknown) else {
            continue;
        };
        assert!(
            store
                .find_user_by_username(&username)
                .await
                .unwrap()
                .is_none(),
            "{unknown:?}"
        );
    }
}

async fn set_password_replaces_the_hash_of_a_known_user_only(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let alice = user("alice");
    let bob = user("bob");
    store.insert_user(&alice).await.unwrap();
    store.insert_user(&bob).await.unwrap();
    let new_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3aGFzaA";
    assert!(
        store
            .set_password(alice.id, new_hash, 2, chrono::Utc::now())
            .await
            .unwrap()
    );
    let found = store.find_user(alice.id).await.unwrap().unwrap();
    assert_eq!(found.password_hash, new_hash);
    // Nothing else changes, and no other user.
    assert_same_user(
        &found,
        &User {
            password_hash: new_hash.into(),
            password_key_version: 2,
            ..alice.clone()
        },
    );
    assert_same_user(&store.find_user(bob.id).await.unwrap().unwrap(), &bob);
    assert!(
        !store
            .set_password(
                UserId(uuid::Uuid::new_v4()),
                new_hash,
                2,
                chrono::Utc::now()
            )
            .await
            .unwrap()
    );
}

/// Re-keying at sign-in (a hash under an earlier pepper version replaced
/// by the same password under the current one) never overwrites a
/// password changed meanwhile; the counts per version follow.
async fn rekey_password_replaces_only_the_hash_it_was_given(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let alice = User {
        password_key_version: 0,
        ..user("alice")
    };
    let bob = user("bob");
    store.insert_user(&alice).await.unwrap();
    store.insert_user(&bob).await.unwrap();
    assert_eq!(
        store.password_key_versions().await.unwrap(),
        vec![(0, 1), (1, 1)]
    );
    let unpeppered = store.unpeppered_password_hashes().await.unwrap();
    assert_eq!(unpeppered.len(), 1);
    assert_eq!(unpeppered[0].0, alice.id);
    assert_eq!(unpeppered[0].1, alice.password_hash);
    let rekeyed = "$argon2id$v=19$m=19456,t=2,p=1$cmVr$cmVrZXllZA";
    // A stale hash (the password changed since it was read) loses.
    assert!(
        !store
            .rekey_password(alice.id, "$argon2id$stale", rekeyed, 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .rekey_password(alice.id, &alice.password_hash, rekeyed, 2)
            .await
            .unwrap()
    );
    let found = store.find_user(alice.id).await.unwrap().unwrap();
    assert_eq!(found.password_hash, rekeyed);
    assert_eq!(found.password_key_version, 2);
    assert_same_user(&store.find_user(bob.id).await.unwrap().unwrap(), &bob);
    assert_eq!(
        store.password_key_versions().await.unwrap(),
        vec![(1, 1), (2, 1)]
    );
    assert!(store.unpeppered_password_hashes().await.unwrap().is_empty());
}

/// A disabled user is signed out everywhere: their browser sessions are
/// deleted with the same call; other users' sessions stay.
async fn disable_user_ends_that_users_sessions(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let alice = user("alice");
    let bob = user("bob");
    store.insert_user(&alice).await.unwrap();
    store.insert_user(&bob).await.unwrap();
    let t = now();
    let expires = t + TimeDelta::hours(1);
    for (id, digest, owner) in [
        ("s-alice-1", [1u8; 32], alice.id),
        ("s-alice-2", [2u8; 32], alice.id),
        ("s-bob", [3u8; 32], bob.id),
    ] {
        store
            .insert_session(id, &digest, owner, t, expires, None)
            .await
            .unwrap();
    }
    let client = client(ClientKind::Confidential);
    store.insert_client(&client).await.unwrap();
    for (request, session) in [("r-alice", "s-alice-1"), ("r-bob", "s-bob")] {
        store
            .insert_pending_request(&pending_request(request, session, &client.id), 16)
            .await
            .unwrap();
    }

    assert!(
        store
            .disable_user(alice.id, chrono::Utc::now())
            .await
            .unwrap()
    );
    assert!(store.find_user(alice.id).await.unwrap().unwrap().disabled);
    assert!(store.find_session(&[1u8; 32], t).await.unwrap().is_none());
    assert!(store.find_session(&[2u8; 32], t).await.unwrap().is_none());
    let bobs = store.find_session(&[3u8; 32], t).await.unwrap().unwrap();
    assert_eq!(bobs.user_id, Some(bob.id));
    // The ended sessions' pending requests went with them.
    let pending = |id: &'static str, session: &'static str| {
        let store = store.clone();
        async move {
            store
                .find_pending_request(id, session, t)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(!pending("r-alice", "s-alice-1").await);
    assert!(pending("r-bob", "s-bob").await);
    assert!(!store.find_user(bob.id).await.unwrap().unwrap().disabled);
}

async fn sessions_are_found_by_cookie_digest_until_they_expire(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    let created = now();
    // A whole second: SQLite stores it without a fraction, which must still
    // compare correctly against instants with one.
    let expires_at = created.duration_trunc(TimeDelta::seconds(1)).unwrap() + TimeDelta::hours(1);
    let digest = [0x5a; 32];
    store
        .insert_session(
            "session-1",
            &digest,
            alice.id,
            created,
            expires_at,
            Some("anonymous:a"),
        )
        .await
        .unwrap();

    let found = store.find_session(&digest, created).await.unwrap().unwrap();
    assert_eq!(found.id, "session-1");
    assert_eq!(found.user_id, Some(alice.id));
    assert_eq!(found.auth_time, Some(created));
    assert_eq!(found.expires_at, expires_at);
    assert_eq!(found.anonymous_id.as_deref(), Some("anonymous:a"));
    for (at, alive) in [
        (expires_at - TimeDelta::microseconds(1), true),
        (expires_at - TimeDelta::milliseconds(500), true),
        (expires_at, false),
        (expires_at + TimeDelta::microseconds(1), false),
        (expires_at + TimeDelta::milliseconds(500), false),
        (expires_at + TimeDelta::hours(1), false),
    ] {
        assert_eq!(
            store.find_session(&digest, at).await.unwrap().is_some(),
            alive,
            "at {at}"
        );
    }
    assert!(
        store
            .find_session(&[0x5b; 32], created)
            .await
            .unwrap()
            .is_none(),
        "another digest"
    );
    // The cookie digest is unique.
    assert!(
        store
            .insert_session("session-2", &digest, alice.id, created, expires_at, None)
            .await
            .is_err()
    );

    // Login again: a new cookie (no fixation), the user and auth_time.
    let new_digest = [0xa5; 32];
    let auth_time = now();
    let new_expiry = auth_time + TimeDelta::hours(8);
    assert!(
        store
            .sign_in_session("session-1", &new_digest, alice.id, auth_time, new_expiry)
            .await
            .unwrap()
    );
    assert!(
        store
            .find_session(&digest, auth_time)
            .await
            .unwrap()
            .is_none(),
        "the old cookie no longer opens the session"
    );
    let signed_in = store
        .find_session(&new_digest, auth_time)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(signed_in.id, "session-1");
    assert_eq!(signed_in.user_id, Some(alice.id));
    assert_eq!(signed_in.auth_time, Some(auth_time));
    assert_eq!(signed_in.expires_at, new_expiry);
    // The new expiry applies (later than the first one).
    assert!(
        store
            .find_session(&new_digest, expires_at + TimeDelta::minutes(1))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        !store
            .sign_in_session(
                "no-such-session",
                &[0x77; 32],
                alice.id,
                auth_time,
                new_expiry
            )
            .await
            .unwrap()
    );

    store.delete_session("session-1").await.unwrap();
    assert!(
        store
            .find_session(&new_digest, auth_time)
            .await
            .unwrap()
            .is_none()
    );
    // Deleting what is not there is not an error.
    store.delete_session("session-1").await.unwrap();
}

/// Signed-in sessions with these ids (of one new user), for pending
/// requests to belong to.
async fn sessions(store: &dyn Store, ids: &[&str]) {
    let owner = user(&format!("owner-{}", uuid::Uuid::new_v4().simple()));
    store.insert_user(&owner).await.unwrap();
    let t = now();
    for (n, id) in ids.iter().enumerate() {
        let digest = [&[0xd0, n as u8][..], id.as_bytes()].concat();
        store
            .insert_session(id, &digest, owner.id, t, t + TimeDelta::hours(1), None)
            .await
            .unwrap();
    }
}

fn pending_request(id: &str, session_id: &str, client_id: &ClientId) -> PendingRequestRecord {
    let created_at = now();
    PendingRequestRecord {
        id: id.into(),
        session_id: session_id.into(),
        client_id: client_id.clone(),
        request: r#"{"scope":"openid"}"#.into(),
        logged_in_at: None,
        created_at,
        expires_at: created_at + TimeDelta::minutes(10),
    }
}

async fn pending_requests_are_bound_to_their_session(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let client = client(ClientKind::Confidential);
    store.insert_client(&client).await.unwrap();
    let t = now();
    sessions(store.as_ref(), &["session-a", "session-b"]).await;
    let record = pending_request("request-1", "session-a", &client.id);
    assert!(store.insert_pending_request(&record, 16).await.unwrap());
    // A request is stored once: the same id again is refused.
    assert!(
        !store
            .insert_pending_request(&pending_request("request-1", "session-b", &client.id), 16)
            .await
            .unwrap()
    );

    let found = store
        .find_pending_request("request-1", "session-a", t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, record.id);
    assert_eq!(found.session_id, record.session_id);
    assert_eq!(found.client_id, client.id);
    assert_eq!(found.request, record.request);
    assert_eq!(found.logged_in_at, None);
    assert_eq!(found.created_at, record.created_at);
    assert_eq!(found.expires_at, record.expires_at);
    assert!(
        store
            .find_pending_request("request-1", "session-b", t)
            .await
            .unwrap()
            .is_none(),
        "another browser's session"
    );
    assert!(
        store
            .find_pending_request("request-2", "session-a", t)
            .await
            .unwrap()
            .is_none()
    );
    for (at, alive) in [
        (record.expires_at - TimeDelta::microseconds(1), true),
        (record.expires_at, false),
        (record.expires_at + TimeDelta::seconds(1), false),
    ] {
        assert_eq!(
            store
                .find_pending_request("request-1", "session-a", at)
                .await
                .unwrap()
                .is_some(),
            alive,
            "at {at}"
        );
    }

    let logged_in_at = now();
    store
        .mark_pending_request_logged_in("request-1", logged_in_at)
        .await
        .unwrap();
    let found = store
        .find_pending_request("request-1", "session-a", logged_in_at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.logged_in_at, Some(logged_in_at));

    // Only the session that made it can take it, and only once.
    assert!(
        !store
            .take_pending_request("request-1", "session-b")
            .await
            .unwrap()
    );
    assert!(
        store
            .take_pending_request("request-1", "session-a")
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_pending_request("request-1", "session-a")
            .await
            .unwrap()
    );
    assert!(
        store
            .find_pending_request("request-1", "session-a", logged_in_at)
            .await
            .unwrap()
            .is_none()
    );

    // Ending the session drops its pending requests.
    store
        .insert_pending_request(&pending_request("request-3", "session-b", &client.id), 16)
        .await
        .unwrap();
    store.delete_session("session-b").await.unwrap();
    assert!(
        !store
            .take_pending_request("request-3", "session-b")
            .await
            .unwrap()
    );
}

/// Security review finding 3: one session holds at most `keep` pending
/// requests; a new one evicts the oldest. Other sessions are untouched.
async fn pending_requests_per_browser_are_capped(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let client = client(ClientKind::Confidential);
    store.insert_client(&client).await.unwrap();
    sessions(store.as_ref(), &["session-busy", "session-other"]).await;
    let start = now();
    let other = pending_request("other-browser", "session-other", &client.id);
    store.insert_pending_request(&other, 4).await.unwrap();
    for n in 0..10 {
        let mut record = pending_request(&format!("r{n}"), "session-busy", &client.id);
        record.created_at = start + TimeDelta::milliseconds(n);
        store.insert_pending_request(&record, 4).await.unwrap();
    }
    let mut kept = Vec::new();
    for n in 0..10 {
        if store
            .find_pending_request(&format!("r{n}"), "session-busy", start)
            .await
            .unwrap()
            .is_some()
        {
            kept.push(n);
        }
    }
    assert_eq!(kept, vec![6, 7, 8, 9], "the newest four");
    assert!(
        store
            .find_pending_request("other-browser", "session-other", start)
            .await
            .unwrap()
            .is_some()
    );
}

/// An anonymous browser's sealed request is stored at its login once: the
/// same id moves to a newer session of the same anonymous browser (the form
/// posted again, another tab) until it is taken, and every session of that
/// browser finds and takes it; never another browser's session, and
/// never again once taken.
async fn sealed_requests_are_adopted_once_by_their_browser(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let client = client(ClientKind::Confidential);
    store.insert_client(&client).await.unwrap();
    let owner = user("owner");
    store.insert_user(&owner).await.unwrap();
    let t = now();
    for (id, anonymous) in [
        ("s1", "anonymous:a"),
        ("s2", "anonymous:a"),
        ("s3", "anonymous:b"),
    ] {
        store
            .insert_session(
                id,
                id.as_bytes(),
                owner.id,
                t,
                t + TimeDelta::hours(1),
                Some(anonymous),
            )
            .await
            .unwrap();
    }
    let in_session = |session: &'static str| pending_request("sealed-1", session, &client.id);
    let found = |session: &'static str| {
        let store = store.clone();
        async move {
            store
                .find_pending_request("sealed-1", session, t)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(
        store
            .adopt_sealed_request(&in_session("s1"), "anonymous:a", 16)
            .await
            .unwrap()
    );
    assert!(found("s1").await);
    // The same browser again (a second post, another tab): it moves.
    assert!(
        store
            .adopt_sealed_request(&in_session("s2"), "anonymous:a", 16)
            .await
            .unwrap()
    );
    // Both sessions of that browser see it (whichever cookie it kept).
    assert!(found("s2").await && found("s1").await);
    // Another browser's session never gets it.
    assert!(
        !store
            .adopt_sealed_request(&in_session("s3"), "anonymous:b", 16)
            .await
            .unwrap()
    );
    assert!(found("s2").await && !found("s3").await);
    assert!(!store.take_pending_request("sealed-1", "s3").await.unwrap());
    // Taken (through either session), it is finished: not stored, moved
    // or taken again.
    assert!(store.take_pending_request("sealed-1", "s1").await.unwrap());
    assert!(!store.take_pending_request("sealed-1", "s2").await.unwrap());
    for session in ["s1", "s2"] {
        assert!(
            !store
                .adopt_sealed_request(&in_session(session), "anonymous:a", 16)
                .await
                .unwrap(),
            "{session}"
        );
    }
    assert!(!found("s1").await && !found("s2").await);

    // Gone another way (its session ended), it is not stored again either.
    let second = pending_request("sealed-2", "s3", &client.id);
    assert!(
        store
            .adopt_sealed_request(&second, "anonymous:b", 16)
            .await
            .unwrap()
    );
    store.delete_session("s3").await.unwrap();
    let again = pending_request("sealed-2", "s2", &client.id);
    assert!(
        !store
            .adopt_sealed_request(&again, "anonymous:b", 16)
            .await
            .unwrap()
    );
    // Housekeeping forgets the records an hour after the sealed requests
    // expire (10 minutes), when no copy of them opens any more.
    let removed = store
        .prune_expired(
            store::Prunable::SealedRequests,
            t + TimeDelta::hours(1),
            500,
        )
        .await
        .unwrap();
    assert_eq!(removed, 2);
}

/// A consent form submitted many times at once finishes once: of 10
/// concurrent takes exactly one wins.
async fn concurrent_takes_of_a_pending_request_have_one_winner(backend: Backend) {
    let Some((store, db)) = open(backend).await else {
        return;
    };
    let client = client(ClientKind::Confidential);
    store.insert_client(&client).await.unwrap();
    sessions(store.as_ref(), &["session-a"]).await;
    store
        .insert_pending_request(&pending_request("request-1", "session-a", &client.id), 16)
        .await
        .unwrap();
    let contended = wide_pool(&db).await;
    let start = Arc::new(tokio::sync::Barrier::new(10));
    let takes: Vec<_> = (0..10)
        .map(|_| {
            let store = contended.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                store.take_pending_request("request-1", "session-a").await
            })
        })
        .collect();
    let mut wins = 0;
    for take in takes {
        match take.await.unwrap() {
            Ok(true) => wins += 1,
            Ok(false) => {}
            Err(error) => panic!("take_pending_request failed under contention: {error}"),
        }
    }
    assert_eq!(wins, 1);
    contended.close().await;
}

async fn consents_are_saved_replaced_listed_and_revoked(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let alice = user("alice");
    let bob = user("bob");
    store.insert_user(&alice).await.unwrap();
    store.insert_user(&bob).await.unwrap();
    let first = client(ClientKind::Confidential);
    let second = client(ClientKind::Public);
    store.insert_client(&first).await.unwrap();
    store.insert_client(&second).await.unwrap();

    assert_eq!(store.find_consent(alice.id, &first.id).await.unwrap(), None);
    assert!(store.list_consents(alice.id).await.unwrap().is_empty());

    let granted_at = now();
    store
        .save_consent(alice.id, &first.id, "openid profile", granted_at)
        .await
        .unwrap();
    assert_eq!(
        store
            .find_consent(alice.id, &first.id)
            .await
            .unwrap()
            .as_deref(),
        Some("openid profile")
    );
    assert_eq!(store.find_consent(bob.id, &first.id).await.unwrap(), None);
    assert_eq!(
        store.find_consent(alice.id, &second.id).await.unwrap(),
        None
    );

    // Saving again replaces the scope and keeps the time of the first grant.
    let updated_at = granted_at + TimeDelta::minutes(5);
    store
        .save_consent(alice.id, &first.id, "email openid profile", updated_at)
        .await
        .unwrap();
    assert_eq!(
        store
            .find_consent(alice.id, &first.id)
            .await
            .unwrap()
            .as_deref(),
        Some("email openid profile")
    );
    let later = granted_at + TimeDelta::minutes(1);
    store
        .save_consent(alice.id, &second.id, "openid", later)
        .await
        .unwrap();

    // Ordered by the time of the first grant.
    let listed = store.list_consents(alice.id).await.unwrap();
    let rows: Vec<_> = listed
        .iter()
        .map(|c| {
            (
                c.client_id.clone(),
                c.scope.as_str(),
                c.granted_at,
                c.updated_at,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                first.id.clone(),
                "email openid profile",
                granted_at,
                updated_at
            ),
            (second.id.clone(), "openid", later, later),
        ]
    );
    assert!(store.list_consents(bob.id).await.unwrap().is_empty());

    assert!(
        store
            .revoke_consent(alice.id, &first.id, now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_consent(alice.id, &first.id, now())
            .await
            .unwrap()
    );
    assert_eq!(store.find_consent(alice.id, &first.id).await.unwrap(), None);
    assert_eq!(store.list_consents(alice.id).await.unwrap().len(), 1);
    assert!(
        !store
            .revoke_consent(bob.id, &second.id, now())
            .await
            .unwrap()
    );

    // A consent needs an existing user and client (foreign keys hold on
    // both backends).
    assert!(
        store
            .save_consent(alice.id, &ClientId::generate(), "openid", now())
            .await
            .is_err()
    );
    assert!(
        store
            .save_consent(UserId(uuid::Uuid::new_v4()), &first.id, "openid", now())
            .await
            .is_err()
    );
    // Deleting the client removes the consents given to it.
    assert!(store.delete_client(&second.id, now(), None).await.unwrap());
    assert!(store.list_consents(alice.id).await.unwrap().is_empty());
}

fn code_record(client_id: &ClientId, digest: &[u8], ttl: TimeDelta) -> CodeRecord {
    let created_at = now();
    CodeRecord {
        id: uuid::Uuid::new_v4().to_string(),
        code_digest: digest.to_vec(),
        key_version: 1,
        client_id: client_id.clone(),
        user_id: UserId(uuid::Uuid::new_v4()),
        grant_sealed: [digest, b"sealed grant"].concat(),
        created_at,
        expires_at: created_at + ttl,
    }
}

/// RFC 6749 §4.1.2 and §4.1.3: an authorization code is used once, by the
/// client it was issued to, before it expires; a code used more than once
/// revokes the tokens already issued from it (§4.1.2, §10.5).
async fn codes_are_redeemed_once_by_their_client(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let mine = client(ClientKind::Confidential);
    let other = client(ClientKind::Public);
    store.insert_client(&mine).await.unwrap();
    store.insert_client(&other).await.unwrap();
    let record = code_record(&mine.id, &[0x11; 32], TimeDelta::minutes(1));
    store.insert_code(&record).await.unwrap();
    let t = now();
    let token_expires_at = t + TimeDelta::minutes(15);

    // Unredeemed: nothing to revoke.
    assert!(
        !store
            .revoke_replayed_code(&record.code_digest, &mine.id, t)
            .await
            .unwrap()
    );
    // Another client cannot redeem it, and records no token.
    assert!(
        store
            .redeem_code(
                &record.code_digest,
                &other.id,
                t,
                "jti-other",
                token_expires_at
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_access_token("jti-other")
            .await
            .unwrap()
            .is_none()
    );
    // An unknown code.
    assert!(
        store
            .redeem_code(&[0x99; 32], &mine.id, t, "jti-unknown", token_expires_at)
            .await
            .unwrap()
            .is_none()
    );

    let redeemed = store
        .redeem_code(&record.code_digest, &mine.id, t, "jti-1", token_expires_at)
        .await
        .unwrap()
        .expect("the right client redeems the code");
    assert_eq!(redeemed.id, record.id);
    assert_eq!(redeemed.grant_sealed, record.grant_sealed);
    let token = store.find_access_token("jti-1").await.unwrap().unwrap();
    assert_eq!(token.jti, "jti-1");
    assert_eq!(token.client_id, mine.id.as_str());
    assert_eq!(token.expires_at, token_expires_at);
    assert!(!token.revoked);

    // Single use.
    assert!(
        store
            .redeem_code(
                &record.code_digest,
                &mine.id,
                now(),
                "jti-2",
                token_expires_at
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.find_access_token("jti-2").await.unwrap().is_none());

    // The replay revokes the token issued from the code.
    assert!(
        !store
            .revoke_replayed_code(&record.code_digest, &other.id, now())
            .await
            .unwrap(),
        "another client's replay does not reach this code"
    );
    assert!(
        !store
            .find_access_token("jti-1")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        store
            .revoke_replayed_code(&record.code_digest, &mine.id, now())
            .await
            .unwrap()
    );
    assert!(
        store
            .find_access_token("jti-1")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    // Still reported as redeemed when presented yet again.
    assert!(
        store
            .revoke_replayed_code(&record.code_digest, &mine.id, now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_replayed_code(&[0x98; 32], &mine.id, now())
            .await
            .unwrap()
    );
    assert!(store.find_access_token("jti-none").await.unwrap().is_none());
}

/// Deleting a client ends what it holds in the same transaction: its
/// recorded access tokens are revoked and its codes are gone; another
/// client's are untouched.
async fn deleting_a_client_revokes_its_access_tokens(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let doomed = client(ClientKind::Confidential);
    let kept = client(ClientKind::Confidential);
    store.insert_client(&doomed).await.unwrap();
    store.insert_client(&kept).await.unwrap();
    let token_expires_at = now() + TimeDelta::minutes(15);
    for (owner, digest, jti) in [
        (&doomed, [0x51; 32], "jti-doomed"),
        (&kept, [0x52; 32], "jti-kept"),
    ] {
        store
            .insert_code(&code_record(&owner.id, &digest, TimeDelta::seconds(60)))
            .await
            .unwrap();
        assert!(
            store
                .redeem_code(&digest, &owner.id, now(), jti, token_expires_at)
                .await
                .unwrap()
                .is_some()
        );
    }
    let unredeemed = code_record(&doomed.id, &[0x53; 32], TimeDelta::seconds(60));
    store.insert_code(&unredeemed).await.unwrap();

    assert!(store.delete_client(&doomed.id, now(), None).await.unwrap());
    let revoked = |jti: &'static str| {
        let store = store.clone();
        async move { store.find_access_token(jti).await.unwrap().unwrap().revoked }
    };
    assert!(revoked("jti-doomed").await, "the deleted client's token");
    assert!(!revoked("jti-kept").await, "another client's token");
    assert!(
        store
            .redeem_code(&[0x53; 32], &doomed.id, now(), "jti-late", token_expires_at)
            .await
            .unwrap()
            .is_none(),
        "its codes went with it"
    );
    assert!(!store.delete_client(&doomed.id, now(), None).await.unwrap());
}

async fn codes_cannot_be_redeemed_after_they_expire(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let mine = client(ClientKind::Confidential);
    store.insert_client(&mine).await.unwrap();
    let record = code_record(&mine.id, &[0x22; 32], TimeDelta::seconds(60));
    store.insert_code(&record).await.unwrap();
    let token_expires_at = record.expires_at + TimeDelta::minutes(15);
    for at in [
        record.expires_at,
        record.expires_at + TimeDelta::microseconds(1),
        record.expires_at + TimeDelta::minutes(5),
    ] {
        assert!(
            store
                .redeem_code(
                    &record.code_digest,
                    &mine.id,
                    at,
                    "jti-late",
                    token_expires_at
                )
                .await
                .unwrap()
                .is_none(),
            "at {at}"
        );
    }
    assert!(store.find_access_token("jti-late").await.unwrap().is_none());
    // An expired code that was never redeemed is not a replay.
    assert!(
        !store
            .revoke_replayed_code(&record.code_digest, &mine.id, now())
            .await
            .unwrap()
    );
    // One microsecond before expiry it still works.
    assert!(
        store
            .redeem_code(
                &record.code_digest,
                &mine.id,
                record.expires_at - TimeDelta::microseconds(1),
                "jti-in-time",
                token_expires_at,
            )
            .await
            .unwrap()
            .is_some()
    );
}

/// DESIGN "single use": of 20 concurrent redemptions of one code exactly
/// one wins, and only the winner's access token is recorded. No caller may
/// fail with a database error ("database is locked" on SQLite).
async fn concurrent_redemptions_of_a_code_have_one_winner(backend: Backend) {
    let Some((store, db)) = open(backend).await else {
        return;
    };
    let mine = client(ClientKind::Confidential);
    store.insert_client(&mine).await.unwrap();
    let record = code_record(&mine.id, &[0x33; 32], TimeDelta::minutes(1));
    store.insert_code(&record).await.unwrap();
    let contended = wide_pool(&db).await;
    let start = Arc::new(tokio::sync::Barrier::new(20));
    let redemptions: Vec<_> = (0..20)
        .map(|i| {
            let store = contended.clone();
            let start = start.clone();
            let digest = record.code_digest.clone();
            let client_id = mine.id.clone();
            tokio::spawn(async move {
                start.wait().await;
                let t = now();
                let jti = format!("jti-{i}");
                let result = store
                    .redeem_code(&digest, &client_id, t, &jti, t + TimeDelta::minutes(15))
                    .await;
                (jti, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut errors = Vec::new();
    for redemption in redemptions {
        let (jti, result) = redemption.await.unwrap();
        match result {
            Ok(Some(redeemed)) => {
                assert_eq!(redeemed.grant_sealed, record.grant_sealed);
                winners.push(jti);
            }
            Ok(None) => {}
            Err(error) => errors.push(format!("{jti}: {error}")),
        }
    }
    assert!(errors.is_empty(), "redeem_code failed: {errors:#?}");
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    for i in 0..20 {
        let jti = format!("jti-{i}");
        assert_eq!(
            store.find_access_token(&jti).await.unwrap().is_some(),
            winners.contains(&jti),
            "{jti}"
        );
    }
    contended.close().await;
}

on_both_backends!(
    users_are_found_by_id_and_by_username,
    set_password_replaces_the_hash_of_a_known_user_only,
    rekey_password_replaces_only_the_hash_it_was_given,
    disable_user_ends_that_users_sessions,
    sessions_are_found_by_cookie_digest_until_they_expire,
    pending_requests_are_bound_to_their_session,
    pending_requests_per_browser_are_capped,
    sealed_requests_are_adopted_once_by_their_browser,
    concurrent_takes_of_a_pending_request_have_one_winner,
    consents_are_saved_replaced_listed_and_revoked,
    codes_are_redeemed_once_by_their_client,
    codes_cannot_be_redeemed_after_they_expire,
    deleting_a_client_revokes_its_access_tokens,
    concurrent_redemptions_of_a_code_have_one_winner,
);

/// DESIGN "Secrets at rest": a copy of the database alone yields no client
/// secret, signing key, password, authorization code or session cookie. The
/// whole SQLite file (and its WAL), or every row of every PostgreSQL table
/// as text, is searched for each secret value used, raw and as hex.
async fn database_dump_holds_no_usable_secret(backend: Backend) {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PrivateKeyParts;
    use secrecy::ExposeSecret;
    let Some(app) = crate::helpers::spawn_app(backend).await else {
        return;
    };
    let (_, secret) = app.machine_client(&["a"]).await;
    // A complete sign-in, plus a code that is never redeemed.
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let browser = app.browser();
    let pkce = crate::helpers::pkce();
    let query = crate::helpers::authorize_query(&client, &pkce, &[]);
    let first = browser.authorize(&query).await;
    let login = browser
        .log_in(
            &crate::helpers::location(&first),
            "alice",
            crate::helpers::PASSWORD,
        )
        .await;
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie_value = cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value.to_owned())
        .unwrap();
    let consent = browser
        .decide(&crate::helpers::location(&login), "allow")
        .await;
    let redeemed_code =
        crate::helpers::query_param(&crate::helpers::location(&consent), "code").unwrap();
    let exchanged =
        crate::helpers::exchange_code(&app, &client, &redeemed_code, &pkce.verifier).await;
    assert_eq!(exchanged.status(), 200);
    let pkce2 = crate::helpers::pkce();
    let back = browser
        .sign_in(
            &crate::helpers::authorize_query(&client, &pkce2, &[]),
            "alice",
        )
        .await;
    let unredeemed_code = crate::helpers::query_param(&back, "code").unwrap();

    let runtime = authd::startup::Runtime::open(&app.config, false, &authd::clock::SystemClock)
        .await
        .unwrap();
    let key = &runtime.store.list_signing_keys().await.unwrap()[0];
    let der = runtime
        .signing_key_sealer()
        .open(&key.kid.0, &key.private_key_sealed)
        .unwrap();
    let private = rsa::RsaPrivateKey::from_pkcs8_der(der.expose_secret()).unwrap();
    // Runs from the middle of the private exponent and of each prime: any
    // plaintext copy of the key contains them.
    let mut secrets: Vec<(&str, Vec<u8>)> = vec![
        ("client secret", secret.clone().into_bytes()),
        ("password", crate::helpers::PASSWORD.as_bytes().to_vec()),
        ("redeemed code", redeemed_code.into_bytes()),
        ("unredeemed code", unredeemed_code.into_bytes()),
        ("session cookie", cookie_value.into_bytes()),
        ("PKCE verifier", pkce.verifier.into_bytes()),
    ];
    let d = private.d().to_bytes_be();
    secrets.push((
        "private exponent",
        d[d.len() / 2..d.len() / 2 + 24].to_vec(),
    ));
    for (index, prime) in private.primes().iter().enumerate() {
        let p = prime.to_bytes_be();
        secrets.push((
            if index == 0 { "prime p" } else { "prime q" },
            p[p.len() / 2..p.len() / 2 + 24].to_vec(),
        ));
    }
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
            let tables: Vec<(String,)> = sqlx::query_as(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(&mut connection)
            .await
            .unwrap();
            assert!(tables.len() >= 10, "every table: {tables:?}");
            let mut text = String::new();
            for (table,) in tables {
                let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    r#"SELECT row_to_json(t)::text FROM "{table}" t"#
                )))
                .fetch_all(&mut connection)
                .await
                .unwrap();
                text.extend(rows.into_iter().map(|(row,)| row));
            }
            text.into_bytes()
        }
    };
    assert!(dump.len() > 1000, "the dump has content");
    assert!(
        dump.windows(4).any(|w| w == b"RS25"),
        "signing key rows are in the dump"
    );
    for (what, value) in &secrets {
        let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            !dump.windows(value.len()).any(|w| w == value.as_slice()),
            "{what} is in the dump"
        );
        assert!(
            !dump.windows(hex.len()).any(|w| w == hex.as_bytes()),
            "{what} is in the dump as hex"
        );
    }
    runtime.store.close().await;
}

on_both_backends!(database_dump_holds_no_usable_secret);

// Refresh token families (RefreshTokenRepository). The store sees digests
// and sealed grants only; the `build` callbacks here stand in for the
// sealing done above the store.

fn family_record(client: &ClientId, user: UserId, ttl: TimeDelta) -> store::FamilyRecord {
    let created_at = now();
    store::FamilyRecord {
        id: uuid::Uuid::new_v4().to_string(),
        client_id: client.clone(),
        user_id: user,
        created_at,
        expires_at: created_at + ttl,
    }
}

fn refresh_record(
    family: &store::FamilyRecord,
    parent_id: Option<&str>,
    digest: &[u8],
    created_at: chrono::DateTime<Utc>,
    ttl: TimeDelta,
) -> store::RefreshTokenRecord {
    store::RefreshTokenRecord {
        id: uuid::Uuid::new_v4().to_string(),
        token_digest: digest.to_vec(),
        key_version: 1,
        family_id: family.id.clone(),
        parent_id: parent_id.map(str::to_owned),
        client_id: family.client_id.clone(),
        grant_sealed: [digest, b"sealed refresh grant"].concat(),
        created_at,
        expires_at: created_at + ttl,
    }
}

/// The successor a rotation at `at` inserts: digest `digest`, access token
/// `jti`, in the consumed token's family.
fn successor(
    consumed: &store::ConsumedRefresh,
    client: &ClientId,
    digest: &[u8],
    jti: &str,
    at: chrono::DateTime<Utc>,
) -> store::Successor {
    store::Successor {
        token: store::RefreshTokenRecord {
            id: uuid::Uuid::new_v4().to_string(),
            token_digest: digest.to_vec(),
            key_version: 1,
            family_id: consumed.family_id.clone(),
            parent_id: Some(consumed.id.clone()),
            client_id: client.clone(),
            grant_sealed: [digest, b"sealed refresh grant"].concat(),
            created_at: at,
            expires_at: at + TimeDelta::hours(1),
        },
        jti: jti.to_owned(),
        access_expires_at: at + TimeDelta::minutes(15),
    }
}

/// Records access token `jti` for `client` as a code redemption does.
async fn recorded_access_token(store: &dyn Store, client: &ClientId, jti: &str) {
    let record = code_record(client, jti.as_bytes(), TimeDelta::minutes(1));
    store.insert_code(&record).await.unwrap();
    let t = now();
    store
        .redeem_code(
            &record.code_digest,
            client,
            t,
            jti,
            t + TimeDelta::minutes(15),
        )
        .await
        .unwrap()
        .expect("the code is redeemed");
}

/// Starts a family for `user` at `client` whose first token has `digest`
/// and whose first access token is `jti` (recorded first, as the code
/// redemption does).
async fn started_family(
    store: &dyn Store,
    client: &ClientId,
    user: UserId,
    digest: &[u8],
    jti: &str,
) -> (store::FamilyRecord, store::RefreshTokenRecord) {
    recorded_access_token(store, client, jti).await;
    let family = family_record(client, user, TimeDelta::days(30));
    let token = refresh_record(&family, None, digest, now(), TimeDelta::hours(24));
    store.create_family(&family, &token, jti).await.unwrap();
    (family, token)
}

async fn found_token(store: &dyn Store, digest: &[u8]) -> store::StoredRefreshToken {
    store
        .find_refresh_token(digest)
        .await
        .unwrap()
        .expect("the refresh token is found")
}

async fn access_token_revoked(store: &dyn Store, jti: &str) -> bool {
    store
        .find_access_token(jti)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{jti} is on record"))
        .revoked
}

/// A family starts with one token, found by digest with every field; the
/// access token issued with it is tagged with the family, so revoking the
/// family revokes it (once: the second revocation reports nothing alive).
async fn refresh_families_are_created_found_and_revoked(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let mine = client(ClientKind::Confidential);
    store.insert_client(&mine).await.unwrap();
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    let (family, token) =
        started_family(store.as_ref(), &mine.id, alice.id, &[0x40; 32], "jti-0").await;

    let found = found_token(store.as_ref(), &token.token_digest).await;
    assert_eq!(found.id, token.id);
    assert_eq!(found.family_id, family.id);
    assert_eq!(found.client_id, mine.id.as_str());
    assert_eq!(found.user_id, alice.id.to_string());
    assert_eq!(found.grant_sealed, token.grant_sealed);
    assert_eq!(found.created_at, token.created_at);
    assert_eq!(found.expires_at, token.expires_at);
    assert_eq!(found.consumed_at, None);
    assert_eq!(found.revoked_at, None);
    assert_eq!(found.family_expires_at, family.expires_at);
    assert!(!found.family_revoked);
    assert!(
        store
            .find_refresh_token(&[0x4f; 32])
            .await
            .unwrap()
            .is_none()
    );
    assert!(!access_token_revoked(store.as_ref(), "jti-0").await);

    let t = now();
    assert!(store.revoke_family(&family.id, t).await.unwrap());
    let revoked = found_token(store.as_ref(), &token.token_digest).await;
    assert_eq!(revoked.revoked_at, Some(t));
    assert!(revoked.family_revoked);
    assert!(
        access_token_revoked(store.as_ref(), "jti-0").await,
        "the access token issued with the family is revoked with it"
    );
    assert!(!store.revoke_family(&family.id, now()).await.unwrap());
    assert!(!store.revoke_family("no-such-family", now()).await.unwrap());
    // A revoked family's token does not rotate.
    let build = |c: &store::ConsumedRefresh| Ok(successor(c, &mine.id, &[0x41; 32], "jti-1", t));
    assert!(
        store
            .rotate_refresh_token(&token.token_digest, &mine.id, now(), &build)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.find_access_token("jti-1").await.unwrap().is_none());
}

/// RFC 6749 §6 with rotation (RFC 9700 §4.14.2): a refresh token is
/// consumed once, by its own client; a `build` that refuses (a wider scope)
/// leaves it unconsumed; the successor and its access token join the family.
async fn refresh_tokens_rotate_once_by_their_client(backend: Backend) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let mine = client(ClientKind::Confidential);
    let other = client(ClientKind::Public);
    store.insert_client(&mine).await.unwrap();
    store.insert_client(&other).await.unwrap();
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    let (family, r0) =
        started_family(store.as_ref(), &mine.id, alice.id, &[0x50; 32], "jti-0").await;
    let builds = AtomicUsize::new(0);
    let t1 = now();
    let build = |c: &store::ConsumedRefresh| {
        builds.fetch_add(1, Ordering::SeqCst);
        assert_eq!(c.family_id, family.id);
        Ok(successor(c, &mine.id, &[0x51; 32], "jti-1", t1))
    };

    // Another client's digest: nothing consumed, nothing built.
    assert!(
        store
            .rotate_refresh_token(&r0.token_digest, &other.id, t1, &build)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .rotate_refresh_token(&[0x5f; 32], &mine.id, t1, &build)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(builds.load(Ordering::SeqCst), 0);
    assert_eq!(
        found_token(store.as_ref(), &r0.token_digest)
            .await
            .consumed_at,
        None
    );

    // A refusing build: the error comes back and nothing changed.
    let refuse = |c: &store::ConsumedRefresh| {
        assert_eq!(c.id, r0.id);
        assert_eq!(c.grant_sealed, r0.grant_sealed);
        Err(store::Error::Refused("scope"))
    };
    assert!(matches!(
        store
            .rotate_refresh_token(&r0.token_digest, &mine.id, t1, &refuse)
            .await,
        Err(store::Error::Refused("scope"))
    ));
    assert_eq!(
        found_token(store.as_ref(), &r0.token_digest)
            .await
            .consumed_at,
        None
    );

    let rotated = store
        .rotate_refresh_token(&r0.token_digest, &mine.id, t1, &build)
        .await
        .unwrap()
        .expect("the owner rotates its token");
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    assert_eq!(rotated.jti, "jti-1");
    assert_eq!(rotated.token.parent_id.as_deref(), Some(r0.id.as_str()));
    assert_eq!(
        found_token(store.as_ref(), &r0.token_digest)
            .await
            .consumed_at,
        Some(t1)
    );
    let s1 = found_token(store.as_ref(), &[0x51; 32]).await;
    assert_eq!(s1.id, rotated.token.id);
    assert_eq!(s1.family_id, family.id);
    assert_eq!(s1.client_id, mine.id.as_str());
    assert_eq!(s1.user_id, alice.id.to_string());
    assert_eq!(s1.created_at, t1);
    assert_eq!(s1.expires_at, t1 + TimeDelta::hours(1));
    assert_eq!((s1.consumed_at, s1.revoked_at), (None, None));
    let access = store.find_access_token("jti-1").await.unwrap().unwrap();
    assert_eq!(access.client_id, mine.id.as_str());
    assert_eq!(access.expires_at, t1 + TimeDelta::minutes(15));
    assert!(!access.revoked);

    // Consumed: a second rotation gets nothing and builds nothing.
    assert!(
        store
            .rotate_refresh_token(&r0.token_digest, &mine.id, now(), &build)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(builds.load(Ordering::SeqCst), 1);

    // The chain goes on, and revoking the family reaches every link.
    let t2 = now();
    let next = |c: &store::ConsumedRefresh| Ok(successor(c, &mine.id, &[0x52; 32], "jti-2", t2));
    assert!(
        store
            .rotate_refresh_token(&[0x51; 32], &mine.id, t2, &next)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.revoke_family(&family.id, now()).await.unwrap());
    for digest in [&r0.token_digest[..], &[0x51; 32], &[0x52; 32]] {
        let token = found_token(store.as_ref(), digest).await;
        assert!(token.revoked_at.is_some() && token.family_revoked);
    }
    for jti in ["jti-0", "jti-1", "jti-2"] {
        assert!(access_token_revoked(store.as_ref(), jti).await, "{jti}");
    }
}

/// A token rotates strictly before its own `expires_at` and its family's.
async fn expired_refresh_tokens_and_families_do_not_rotate(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let mine = client(ClientKind::Confidential);
    store.insert_client(&mine).await.unwrap();
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();

    // The token expires first.
    let family = family_record(&mine.id, alice.id, TimeDelta::hours(1));
    let token = refresh_record(&family, None, &[0x60; 32], now(), TimeDelta::minutes(1));
    store
        .create_family(&family, &token, "jti-none")
        .await
        .unwrap();
    // The family expires first.
    let short = family_record(&mine.id, alice.id, TimeDelta::minutes(1));
    let long_lived = refresh_record(&short, None, &[0x61; 32], now(), TimeDelta::hours(1));
    store
        .create_family(&short, &long_lived, "jti-none")
        .await
        .unwrap();

    for (digest, end, case) in [
        (&token.token_digest, token.expires_at, "token expiry"),
        (&long_lived.token_digest, short.expires_at, "family expiry"),
    ] {
        for at in [
            end,
            end + TimeDelta::microseconds(1),
            end + TimeDelta::hours(2),
        ] {
            let build = |c: &store::ConsumedRefresh| {
                Ok(successor(c, &mine.id, &[0x6f; 32], "jti-late", at))
            };
            assert!(
                store
                    .rotate_refresh_token(digest, &mine.id, at, &build)
                    .await
                    .unwrap()
                    .is_none(),
                "{case} at {at}"
            );
        }
        assert_eq!(
            found_token(store.as_ref(), digest).await.consumed_at,
            None,
            "{case}"
        );
        let at = end - TimeDelta::microseconds(1);
        let fresh = [digest[0] + 8; 32];
        let jti = format!("jti-in-time-{}", digest[0]);
        let build = |c: &store::ConsumedRefresh| Ok(successor(c, &mine.id, &fresh, &jti, at));
        assert!(
            store
                .rotate_refresh_token(digest, &mine.id, at, &build)
                .await
                .unwrap()
                .is_some(),
            "{case}: a microsecond before"
        );
    }
    assert!(store.find_access_token("jti-late").await.unwrap().is_none());
}

/// The grace path: a retry of a token consumed after `consumed_since`,
/// while its successor is unused, revokes that successor (and its access
/// token) and inserts a new one; otherwise nothing changes.
async fn unused_successor_is_replaced_within_the_grace_window(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let mine = client(ClientKind::Confidential);
    store.insert_client(&mine).await.unwrap();
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    let (family, r0) =
        started_family(store.as_ref(), &mine.id, alice.id, &[0x70; 32], "jti-0").await;
    let t1 = now();
    let build = |c: &store::ConsumedRefresh| Ok(successor(c, &mine.id, &[0x71; 32], "jti-1", t1));
    store
        .rotate_refresh_token(&r0.token_digest, &mine.id, t1, &build)
        .await
        .unwrap()
        .expect("rotated");
    let t2 = now();
    let replace = |c: &store::ConsumedRefresh| {
        assert_eq!(c.id, r0.id);
        assert_eq!(c.family_id, family.id);
        assert_eq!(c.grant_sealed, r0.grant_sealed);
        Ok(successor(c, &mine.id, &[0x72; 32], "jti-1b", t2))
    };

    // Consumed at t1, not after t1: outside the window.
    assert!(
        store
            .replace_unused_successor(&r0.id, t1, t2, &replace)
            .await
            .unwrap()
            .is_none()
    );
    // A refusing build changes nothing.
    let refuse = |_: &store::ConsumedRefresh| Err(store::Error::Refused("scope"));
    assert!(matches!(
        store
            .replace_unused_successor(&r0.id, t1 - TimeDelta::seconds(2), t2, &refuse)
            .await,
        Err(store::Error::Refused("scope"))
    ));
    assert_eq!(
        found_token(store.as_ref(), &[0x71; 32]).await.revoked_at,
        None
    );
    assert!(!access_token_revoked(store.as_ref(), "jti-1").await);

    let replaced = store
        .replace_unused_successor(&r0.id, t1 - TimeDelta::seconds(2), t2, &replace)
        .await
        .unwrap()
        .expect("the unused successor is replaced within the window");
    assert_eq!(replaced.jti, "jti-1b");
    assert_eq!(replaced.token.parent_id.as_deref(), Some(r0.id.as_str()));
    let old = found_token(store.as_ref(), &[0x71; 32]).await;
    assert_eq!(old.revoked_at, Some(t2));
    assert!(!old.family_revoked, "the family lives on");
    assert!(access_token_revoked(store.as_ref(), "jti-1").await);
    let new = found_token(store.as_ref(), &[0x72; 32]).await;
    assert_eq!((new.consumed_at, new.revoked_at), (None, None));
    assert_eq!(new.family_id, family.id);
    assert!(!access_token_revoked(store.as_ref(), "jti-1b").await);
    assert!(!access_token_revoked(store.as_ref(), "jti-0").await);
    assert_eq!(
        found_token(store.as_ref(), &r0.token_digest)
            .await
            .consumed_at,
        Some(t1)
    );
    // The revoked successor no longer rotates.
    assert!(
        store
            .rotate_refresh_token(&[0x71; 32], &mine.id, now(), &build)
            .await
            .unwrap()
            .is_none()
    );

    // Once the successor is used, a retry is not replaced.
    let t3 = now();
    let next = |c: &store::ConsumedRefresh| Ok(successor(c, &mine.id, &[0x73; 32], "jti-2", t3));
    store
        .rotate_refresh_token(&[0x72; 32], &mine.id, t3, &next)
        .await
        .unwrap()
        .expect("the new successor rotates");
    let again = |c: &store::ConsumedRefresh| Ok(successor(c, &mine.id, &[0x74; 32], "jti-x", t3));
    assert!(
        store
            .replace_unused_successor(&r0.id, t1 - TimeDelta::seconds(2), now(), &again)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        found_token(store.as_ref(), &[0x73; 32]).await.revoked_at,
        None
    );
    // An unconsumed parent, an unknown parent: nothing.
    let latest = found_token(store.as_ref(), &[0x73; 32]).await;
    for parent in [latest.id.as_str(), "no-such-token"] {
        assert!(
            store
                .replace_unused_successor(parent, t1 - TimeDelta::days(1), now(), &again)
                .await
                .unwrap()
                .is_none(),
            "{parent}"
        );
    }
    assert!(
        store
            .find_refresh_token(&[0x74; 32])
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.find_access_token("jti-x").await.unwrap().is_none());
}

/// A withdrawn consent ends what it granted, in one transaction: every
/// live family of that user with that client and their access tokens, and
/// the user's access tokens from codes (no family); nothing of another
/// user or client.
async fn a_withdrawn_consent_revokes_what_it_granted(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let a = client(ClientKind::Confidential);
    let b = client(ClientKind::Public);
    store.insert_client(&a).await.unwrap();
    store.insert_client(&b).await.unwrap();
    let alice = user("alice");
    let bob = user("bob");
    store.insert_user(&alice).await.unwrap();
    store.insert_user(&bob).await.unwrap();
    let families = [
        (&a.id, alice.id, 0x80u8, "jti-a1", true),
        (&a.id, alice.id, 0x81, "jti-a2", true),
        (&b.id, alice.id, 0x82, "jti-b", false),
        (&a.id, bob.id, 0x83, "jti-bob", false),
    ];
    for (client_id, user_id, digest, jti, _) in families {
        started_family(store.as_ref(), client_id, user_id, &[digest; 32], jti).await;
    }
    // Access tokens from codes alone (no offline_access, no family).
    let codes = [
        (&a.id, alice.id, 0x90u8, "jti-code-a", true),
        (&b.id, alice.id, 0x91, "jti-code-b", false),
        (&a.id, bob.id, 0x92, "jti-code-bob", false),
    ];
    for (client_id, user_id, digest, jti, _) in codes {
        let record = CodeRecord {
            user_id,
            ..code_record(client_id, &[digest; 32], TimeDelta::seconds(60))
        };
        store.insert_code(&record).await.unwrap();
        store
            .redeem_code(
                &[digest; 32],
                client_id,
                now(),
                jti,
                now() + TimeDelta::minutes(15),
            )
            .await
            .unwrap()
            .expect("redeemed");
    }
    store
        .save_consent(alice.id, &a.id, "openid offline_access", now())
        .await
        .unwrap();

    assert!(store.revoke_consent(alice.id, &a.id, now()).await.unwrap());
    for (_, _, digest, jti, revoked) in families {
        assert_eq!(
            found_token(store.as_ref(), &[digest; 32])
                .await
                .family_revoked,
            revoked,
            "{jti}"
        );
        assert_eq!(
            access_token_revoked(store.as_ref(), jti).await,
            revoked,
            "{jti}"
        );
    }
    for (_, _, _, jti, revoked) in codes {
        assert_eq!(
            access_token_revoked(store.as_ref(), jti).await,
            revoked,
            "{jti}"
        );
    }
    assert!(!store.revoke_consent(alice.id, &a.id, now()).await.unwrap());
}

/// RFC 7009 §2.2: a revoked access token is denied until it expires — one
/// never recorded (a JWT is self-contained) is recorded revoked, a recorded
/// one is marked, and revoking twice is fine.
async fn revoke_access_token_records_unknown_and_marks_known(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let mine = client(ClientKind::Confidential);
    store.insert_client(&mine).await.unwrap();
    let t = now();
    let exp = t + TimeDelta::minutes(15);

    store
        .revoke_access_token("jti-unknown", &mine.id, exp, t)
        .await
        .unwrap();
    let record = store
        .find_access_token("jti-unknown")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.client_id, mine.id.as_str());
    assert_eq!(record.expires_at, exp);
    assert!(record.revoked);

    recorded_access_token(store.as_ref(), &mine.id, "jti-known").await;
    let recorded = store.find_access_token("jti-known").await.unwrap().unwrap();
    assert!(!recorded.revoked);
    for _ in 0..2 {
        store
            .revoke_access_token("jti-known", &mine.id, exp + TimeDelta::hours(1), now())
            .await
            .unwrap();
        let record = store.find_access_token("jti-known").await.unwrap().unwrap();
        assert!(record.revoked);
        assert_eq!(
            record.expires_at, recorded.expires_at,
            "the record keeps its expiry"
        );
    }
}

/// DESIGN "one rotation wins": of 20 concurrent rotations of one token
/// exactly one gets its successor inserted; none fails with a database
/// error ("database is locked" on SQLite, a serialization failure).
async fn concurrent_rotations_of_a_refresh_token_have_one_winner(backend: Backend) {
    let Some((store, db)) = open(backend).await else {
        return;
    };
    let mine = client(ClientKind::Confidential);
    store.insert_client(&mine).await.unwrap();
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    let (_, r0) = started_family(store.as_ref(), &mine.id, alice.id, &[0x90; 32], "jti-0").await;
    let contended = wide_pool(&db).await;
    let start = Arc::new(tokio::sync::Barrier::new(20));
    let rotations: Vec<_> = (0..20u8)
        .map(|i| {
            let store = contended.clone();
            let start = start.clone();
            let digest = r0.token_digest.clone();
            let client_id = mine.id.clone();
            tokio::spawn(async move {
                start.wait().await;
                let t = now();
                let jti = format!("race-{i}");
                let build = |c: &store::ConsumedRefresh| {
                    Ok(successor(c, &client_id, &[0xa0 + i; 32], &jti, t))
                };
                let result = store
                    .rotate_refresh_token(&digest, &client_id, t, &build)
                    .await;
                (i, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut errors = Vec::new();
    for rotation in rotations {
        let (i, result) = rotation.await.unwrap();
        match result {
            Ok(Some(successor)) => {
                assert_eq!(successor.jti, format!("race-{i}"));
                winners.push(i);
            }
            Ok(None) => {}
            Err(error) => errors.push(format!("rotation {i}: {error:?}")),
        }
    }
    assert!(
        errors.is_empty(),
        "rotate_refresh_token failed: {errors:#?}"
    );
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    for i in 0..20u8 {
        let won = winners.contains(&i);
        assert_eq!(
            store
                .find_refresh_token(&[0xa0 + i; 32])
                .await
                .unwrap()
                .is_some(),
            won,
            "successor {i}"
        );
        assert_eq!(
            store
                .find_access_token(&format!("race-{i}"))
                .await
                .unwrap()
                .is_some(),
            won,
            "race-{i}"
        );
    }
    contended.close().await;
}

/// A rotation and a revocation of the same family at the same time (a
/// client refreshing while its stolen copy is detected, or while the user
/// withdraws consent): neither may fail, and the family ends revoked with
/// everything in it — the rotation holds the family's lock from its first
/// statement, so the revocation waits for it and then revokes the
/// successor too. The rotation's `build` (which runs after the token is
/// consumed, before the successor is inserted) is held for 300 ms so that
/// the revocation starts inside it.
async fn rotation_racing_a_family_revocation_fails_neither(backend: Backend) {
    let Some((store, db)) = open(backend).await else {
        return;
    };
    let mine = client(ClientKind::Confidential);
    store.insert_client(&mine).await.unwrap();
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    let (family, r0) =
        started_family(store.as_ref(), &mine.id, alice.id, &[0xb0; 32], "jti-0").await;
    let contended = wide_pool(&db).await;
    let consumed = Arc::new(tokio::sync::Notify::new());

    // The rotation runs on a blocking thread: its held `build` must not
    // stall the runtime's workers that drive the revocation.
    let rotation = {
        let store = contended.clone();
        let consumed = consumed.clone();
        let client_id = mine.id.clone();
        let digest = r0.token_digest.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let t = now();
            let build = |c: &store::ConsumedRefresh| {
                consumed.notify_one();
                std::thread::sleep(std::time::Duration::from_millis(300));
                Ok(successor(c, &client_id, &[0xb1; 32], "jti-1", t))
            };
            handle.block_on(store.rotate_refresh_token(&digest, &client_id, t, &build))
        })
    };
    consumed.notified().await;
    let revoked = contended.revoke_family(&family.id, now()).await;
    let rotated = rotation.await.unwrap();
    let rotated = rotated.map(|s| s.is_some());
    let revoked_alive = revoked.as_ref().map(|alive| *alive);
    assert!(
        matches!((&rotated, &revoked_alive), (Ok(_), Ok(true))),
        "rotate_refresh_token: {rotated:?}; revoke_family: {revoked_alive:?}"
    );
    // Whatever the order, nothing in the family is left alive.
    assert!(
        found_token(store.as_ref(), &r0.token_digest)
            .await
            .family_revoked
    );
    if let Some(successor) = store.find_refresh_token(&[0xb1; 32]).await.unwrap() {
        assert!(successor.revoked_at.is_some(), "the successor is revoked");
        assert!(access_token_revoked(store.as_ref(), "jti-1").await);
    }
    assert!(access_token_revoked(store.as_ref(), "jti-0").await);
    contended.close().await;
}

/// RFC 6749 §10.4: every rotation hands `build` the family's user as they
/// are now, read in its transaction: the account, their consent for the
/// family's client, and their rights — the same as `user_access_rights`,
/// with roles held directly and through groups, a group without roles and
/// a role without scopes; none at all for a user without roles. The grace
/// path reads the same.
async fn rotations_read_the_family_user_as_they_are_now(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let mine = client(ClientKind::Confidential);
    store.insert_client(&mine).await.unwrap();
    let alice = user("alice");
    let bob = user("bob");
    store.insert_user(&alice).await.unwrap();
    store.insert_user(&bob).await.unwrap();
    let (_, r0) = started_family(store.as_ref(), &mine.id, alice.id, &[0xc0; 32], "jti-0").await;
    let seen: std::sync::Mutex<Option<store::FamilyUser>> = Default::default();
    let rotate = |digest: [u8; 32], next: u8, jti: &'static str| {
        let (store, mine, seen) = (store.clone(), mine.id.clone(), &seen);
        async move {
            let t = now();
            let build = |c: &store::ConsumedRefresh| {
                *seen.lock().unwrap() = Some(c.user.clone());
                Ok(successor(c, &mine, &[next; 32], jti, t))
            };
            store
                .rotate_refresh_token(&digest, &mine, t, &build)
                .await
                .unwrap()
                .expect("rotated");
            seen.lock().unwrap().take().expect("built")
        }
    };

    // No consent, no roles yet.
    let first = rotate(r0.token_digest.clone().try_into().unwrap(), 0xc1, "jti-1").await;
    assert_same_user(&first.account, &alice);
    assert_eq!(first.consent, None);
    assert_eq!(first.rights, Default::default());

    // A consent, a role held directly, a role through a group, a group
    // without roles and a role without scopes.
    store
        .save_consent(
            alice.id,
            &mine.id,
            "openid offline_access invoices:read",
            now(),
        )
        .await
        .unwrap();
    store
        .insert_api(&api(
            "https://invoices.example",
            &["invoices:read", "invoices:write"],
        ))
        .await
        .unwrap();
    let role = |name: &str, scope: &str| authd::domain::Role {
        id: uuid::Uuid::new_v4(),
        name: named(name),
        scope: scope.parse().unwrap_or_default(),
        created_at: now(),
        updated_at: now(),
    };
    let group = |name: &str| authd::domain::Group {
        id: uuid::Uuid::new_v4(),
        name: named(name),
        roles: Default::default(),
        members: Default::default(),
        created_at: now(),
        updated_at: now(),
    };
    let (reader, writer, bare) = (
        role("reader", "invoices:read"),
        role("writer", "invoices:read invoices:write"),
        role("bare", ""),
    );
    let (finance, empty) = (group("finance"), group("empty"));
    for role in [&reader, &writer, &bare] {
        store.insert_role(role).await.unwrap();
    }
    for group in [&finance, &empty] {
        store.insert_group(group).await.unwrap();
        store.add_group_member(group.id, alice.id).await.unwrap();
    }
    store.add_group_role(finance.id, writer.id).await.unwrap();
    store.grant_user_role(alice.id, reader.id).await.unwrap();
    store.grant_user_role(alice.id, bare.id).await.unwrap();
    let expected = store.user_access_rights(alice.id).await.unwrap();
    assert_eq!(
        expected.roles,
        [named("bare"), named("reader"), named("writer")].into()
    );
    assert_eq!(expected.groups, [named("empty"), named("finance")].into());
    let second = rotate([0xc1; 32], 0xc2, "jti-2").await;
    assert_same_user(&second.account, &alice);
    assert_eq!(
        second.consent.as_deref(),
        Some("openid offline_access invoices:read")
    );
    assert_eq!(second.rights, expected);

    // The grace path reads the same for the parent it re-uses.
    let parent = found_token(store.as_ref(), &[0xc1; 32]).await;
    let t = now();
    let replace = |c: &store::ConsumedRefresh| {
        *seen.lock().unwrap() = Some(c.user.clone());
        Ok(successor(c, &mine.id, &[0xc3; 32], "jti-2b", t))
    };
    store
        .replace_unused_successor(&parent.id, t - TimeDelta::minutes(1), t, &replace)
        .await
        .unwrap()
        .expect("replaced");
    let replaced = seen.lock().unwrap().take().expect("built");
    assert_same_user(&replaced.account, &alice);
    assert_eq!(replaced.consent, second.consent);
    assert_eq!(replaced.rights, expected);

    // Another user's family: their own account, no consent, no rights.
    let (_, b0) = started_family(store.as_ref(), &mine.id, bob.id, &[0xd0; 32], "jti-b0").await;
    let bobs = rotate(b0.token_digest.clone().try_into().unwrap(), 0xd1, "jti-b1").await;
    assert_same_user(&bobs.account, &bob);
    assert_eq!(bobs.consent, None);
    assert_eq!(bobs.rights, Default::default());
}

on_both_backends!(
    refresh_families_are_created_found_and_revoked,
    refresh_tokens_rotate_once_by_their_client,
    expired_refresh_tokens_and_families_do_not_rotate,
    unused_successor_is_replaced_within_the_grace_window,
    a_withdrawn_consent_revokes_what_it_granted,
    revoke_access_token_records_unknown_and_marks_known,
    concurrent_rotations_of_a_refresh_token_have_one_winner,
    rotation_racing_a_family_revocation_fails_neither,
    rotations_read_the_family_user_as_they_are_now,
);

fn api(identifier: &str, scopes: &[&str]) -> authd::domain::Api {
    authd::domain::Api {
        id: uuid::Uuid::new_v4(),
        identifier: authd::domain::ApiIdentifier::parse(identifier).unwrap(),
        name: authd::domain::ApiName::parse("An API").unwrap(),
        scopes: scopes
            .iter()
            .map(|s| authd::domain::ApiScope {
                name: (*s).to_owned(),
                description: format!("{s} described"),
            })
            .collect(),
        user_access: authd::domain::UserAccess::Roles,
        token_claims: [authd::domain::TokenClaim::Permissions].into(),
        access_token_ttl: 600,
        created_at: now(),
        updated_at: now(),
    }
}

fn named(name: &str) -> authd::domain::AccessName {
    authd::domain::AccessName::parse(name).unwrap()
}

/// APIs, roles, groups and the one rights query, on both backends.
async fn access_rights_come_from_roles_held_directly_or_through_groups(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let epochs = store.cache_epochs().await.unwrap();
    let invoices = api(
        "https://invoices.example",
        &["invoices:read", "invoices:write"],
    );
    store.insert_api(&invoices).await.unwrap();
    assert!(
        store.cache_epochs().await.unwrap().clients > epochs.clients,
        "API changes reach the client cache"
    );
    // One API per identifier, one API per scope.
    assert!(matches!(
        store
            .insert_api(&api("https://invoices.example", &["other"]))
            .await,
        Err(store::Error::Conflict("api"))
    ));
    assert!(matches!(
        store
            .insert_api(&api("https://other.example", &["invoices:read"]))
            .await,
        Err(store::Error::Conflict("scope"))
    ));
    let listed = store.list_apis().await.unwrap();
    assert_eq!(listed.len(), 1, "a refused insert leaves nothing behind");
    assert_eq!(listed[0].identifier, invoices.identifier);
    assert_eq!(listed[0].scopes, invoices.scopes);
    assert_eq!(listed[0].token_claims, invoices.token_claims);
    assert_eq!(listed[0].access_token_ttl, 600);
    assert_eq!(listed[0].created_at, invoices.created_at);

    let alice = user("alice");
    let bob = user("bob");
    store.insert_user(&alice).await.unwrap();
    store.insert_user(&bob).await.unwrap();
    let role = |name: &str, scope: &str| authd::domain::Role {
        id: uuid::Uuid::new_v4(),
        name: named(name),
        scope: scope.parse().unwrap(),
        created_at: now(),
        updated_at: now(),
    };
    let writer = role("writer", "invoices:read invoices:write");
    let reader = role("reader", "invoices:read");
    store.insert_role(&writer).await.unwrap();
    store.insert_role(&reader).await.unwrap();
    assert!(matches!(
        store.insert_role(&role("reader", "invoices:read")).await,
        Err(store::Error::Conflict("role"))
    ));
    assert!(matches!(
        store.insert_role(&role("ghost", "nobody:defines")).await,
        Err(store::Error::Refused(_))
    ));
    let names: Vec<String> = store
        .list_roles()
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{}={}", r.name, r.scope))
        .collect();
    assert_eq!(
        names,
        [
            "reader=invoices:read",
            "writer=invoices:read invoices:write"
        ]
    );

    let group = |name: &str| authd::domain::Group {
        id: uuid::Uuid::new_v4(),
        name: named(name),
        roles: Default::default(),
        members: Default::default(),
        created_at: now(),
        updated_at: now(),
    };
    let finance = group("finance");
    let empty = group("empty");
    store.insert_group(&finance).await.unwrap();
    store.insert_group(&empty).await.unwrap();
    assert!(store.add_group_role(finance.id, writer.id).await.unwrap());
    assert!(!store.add_group_role(finance.id, writer.id).await.unwrap());
    assert!(store.add_group_member(finance.id, alice.id).await.unwrap());
    assert!(!store.add_group_member(finance.id, alice.id).await.unwrap());
    assert!(store.add_group_member(empty.id, alice.id).await.unwrap());
    assert!(store.grant_user_role(alice.id, reader.id).await.unwrap());
    assert!(!store.grant_user_role(alice.id, reader.id).await.unwrap());

    let rights = store.user_access_rights(alice.id).await.unwrap();
    assert_eq!(
        rights.permissions.keys().collect::<Vec<_>>(),
        ["invoices:read", "invoices:write"]
    );
    let from = |scope: &str| -> Vec<(String, Option<String>)> {
        rights.permissions[scope]
            .iter()
            .map(|g| (g.role.to_string(), g.group.as_ref().map(|g| g.to_string())))
            .collect()
    };
    assert_eq!(
        from("invoices:read"),
        [
            ("reader".to_owned(), None),
            ("writer".to_owned(), Some("finance".to_owned()))
        ]
    );
    assert_eq!(rights.roles, [named("reader"), named("writer")].into());
    // A group without roles still counts as a group.
    assert_eq!(rights.groups, [named("empty"), named("finance")].into());
    assert_eq!(
        store.user_access_rights(bob.id).await.unwrap(),
        Default::default()
    );
    let holders = store.role_holders(writer.id).await.unwrap();
    assert_eq!(holders.groups, [named("finance")]);
    assert!(holders.users.is_empty());
    assert_eq!(
        store.role_holders(reader.id).await.unwrap().users,
        [alice.id]
    );
    let groups = store.list_groups().await.unwrap();
    assert_eq!(groups[1].name, named("finance"));
    assert_eq!(groups[1].roles, [named("writer")].into());
    assert_eq!(groups[1].members, [alice.id].into());

    // Narrowing a role, and an API losing a scope, shrink the rights.
    let mut narrowed = writer.clone();
    narrowed.scope = "invoices:write".parse().unwrap();
    // A change based on another version changes nothing.
    let stale = writer.updated_at - chrono::Duration::seconds(1);
    assert!(!store.update_role(&narrowed, stale).await.unwrap());
    assert!(
        store
            .update_role(&narrowed, writer.updated_at)
            .await
            .unwrap()
    );
    let mut smaller = invoices.clone();
    smaller.scopes.retain(|s| s.name == "invoices:read");
    assert!(!store.update_api(&smaller, stale).await.unwrap());
    assert!(
        store
            .update_api(&smaller, invoices.updated_at)
            .await
            .unwrap()
    );
    let rights = store.user_access_rights(alice.id).await.unwrap();
    assert_eq!(
        rights.permissions.keys().collect::<Vec<_>>(),
        ["invoices:read"]
    );
    assert_eq!(from_rights(&rights, "invoices:read"), [("reader", None)]);
    // Leaving the group and losing the role leave nothing.
    assert!(
        store
            .remove_group_member(finance.id, alice.id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_group_member(finance.id, alice.id)
            .await
            .unwrap()
    );
    assert!(store.revoke_user_role(alice.id, reader.id).await.unwrap());
    assert!(
        store
            .user_access_rights(alice.id)
            .await
            .unwrap()
            .permissions
            .is_empty()
    );
    // Deletions cascade.
    assert!(
        store
            .remove_group_role(finance.id, writer.id)
            .await
            .unwrap()
    );
    assert!(store.delete_role(writer.id).await.unwrap());
    assert!(!store.delete_role(writer.id).await.unwrap());
    assert!(store.delete_group(empty.id).await.unwrap());
    assert!(store.delete_api(invoices.id).await.unwrap());
    assert!(store.list_apis().await.unwrap().is_empty());
    assert!(store.list_roles().await.unwrap()[0].scope.is_empty());
}

fn from_rights(
    rights: &authd::domain::UserAccessRights,
    scope: &str,
) -> Vec<(&'static str, Option<String>)> {
    rights.permissions[scope]
        .iter()
        .map(|g| {
            let role: &'static str = if g.role.as_str() == "reader" {
                "reader"
            } else {
                "other"
            };
            (role, g.group.as_ref().map(|g| g.to_string()))
        })
        .collect()
}

/// The API for clients' earlier scopes is seeded once, however many
/// processes start.
async fn legacy_api_is_seeded_once(backend: Backend) {
    let Some((store, database)) = open(backend).await else {
        return;
    };
    // `open` only migrates: the seed is pending, as on the first start
    // after the upgrade.
    let mut old = client(ClientKind::Confidential);
    old.scope = "openid orders:read orders:write".parse().unwrap();
    store.insert_client(&old).await.unwrap();
    // An API made by a CLI command before the server's first start keeps
    // the scope it defines.
    let writes = api("https://writes.example", &["orders:write"]);
    store.insert_api(&writes).await.unwrap();
    let seed = || store::LegacyApiSeed {
        identifier: "https://auth.example",
        name: "Default API",
        identity_scopes: &authd::domain::scope::IDENTITY_SCOPES,
        describe: authd::domain::api::default_scope_description,
        ttl: 900,
        now: now(),
    };
    let other = wide_pool(&database).await;
    let (first, second) =
        tokio::join!(store.seed_legacy_api(seed()), other.seed_legacy_api(seed()));
    let seeded: Vec<_> = [first.unwrap(), second.unwrap()]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(seeded.len(), 1, "exactly one process seeds");
    let apis = store.list_apis().await.unwrap();
    assert_eq!(apis.len(), 2);
    assert_eq!(apis[0].identifier.as_str(), "https://auth.example");
    assert_eq!(apis[0].user_access, authd::domain::UserAccess::Any);
    assert_eq!(
        apis[0]
            .scopes
            .iter()
            .map(|s| (s.name.as_str(), s.description.as_str()))
            .collect::<Vec<_>>(),
        [("orders:read", "Read access to orders")]
    );
    assert_eq!(apis[1].scopes, writes.scopes);
    assert!(store.seed_legacy_api(seed()).await.unwrap().is_none());
}

on_both_backends!(
    access_rights_come_from_roles_held_directly_or_through_groups,
    legacy_api_is_seeded_once,
);
