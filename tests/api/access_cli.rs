//! The CLI contract of `authd apis|roles|groups` and `users
//! add-role|remove-role|permissions`, end to end: the real `authd` binary
//! against the test database, and a running server that picks up what it
//! changes.
use std::process::Output;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::authorization_code::jwt_part;
use crate::client_credentials::verify_access_token;
use crate::helpers::{
    Backend, TestApp, cc_token, json_ok, on_both_backends, run_authd, spawn_app, within_5_seconds,
};

const BILLING: &str = "https://billing.example/api";
const REPORTS: &str = "urn:example:reports";

/// `authd ARGS…`, which must succeed: its JSON.
fn ok(app: &TestApp, args: &[&str]) -> Value {
    json_ok(&run_authd(app, args))
}

/// Asserts a failure: a non-zero exit, nothing on stdout, `message` on stderr.
fn fails_with(output: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected a failure with {message:?}; stdout {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout when failing: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr.contains(message),
        "stderr {stderr:?} should contain {message:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `authd ARGS…` must fail with `message`.
fn refused(app: &TestApp, args: &[&str], message: &str) {
    fails_with(&run_authd(app, args), message);
}

/// An object's keys, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a timestamp: {value}"))
        .parse()
        .expect("an RFC 3339 timestamp")
}

/// The value without its timestamps (the store keeps them to the
/// microsecond on PostgreSQL).
fn untimed(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "created_at" && k.as_str() != "updated_at")
                .map(|(k, v)| (k.clone(), untimed(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(untimed).collect()),
        other => other.clone(),
    }
}

/// The `name` of each element of a JSON array.
fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("an array: {list}"))
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect()
}

fn api_keys() -> Vec<&'static str> {
    vec![
        "access_token_ttl",
        "created_at",
        "id",
        "identifier",
        "name",
        "scopes",
        "token_claims",
        "updated_at",
        "user_access",
    ]
}

async fn cli_access_lifecycle(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert_eq!(ok(&app, &["apis", "list"]), json!([]));

    // An API with a described and an undescribed scope, and every option.
    let billing = ok(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            BILLING,
            "--name",
            "Billing",
            "--scope",
            "invoices:write=Create and change your invoices",
            "--scope",
            "invoices:read",
            "--user-access",
            "roles",
            "--token-claims",
            "roles,groups",
            "--access-token-ttl",
            "600",
        ],
    );
    assert_eq!(keys(&billing), api_keys(), "{billing}");
    let billing_id = billing["id"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&billing_id).expect("the id is a UUID");
    assert_eq!(billing["identifier"], BILLING);
    assert_eq!(billing["name"], "Billing");
    assert_eq!(
        billing["scopes"],
        json!([
            {"scope": "invoices:read", "description": "Read access to invoices"},
            {"scope": "invoices:write", "description": "Create and change your invoices"},
        ]),
        "sorted by scope; an undescribed one gets a description"
    );
    assert_eq!(billing["user_access"], "roles");
    assert_eq!(billing["token_claims"], json!(["roles", "groups"]));
    assert_eq!(billing["access_token_ttl"], 600);
    assert_eq!(billing["created_at"], billing["updated_at"]);

    // Only the required flags: the defaults.
    let reports = ok(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            REPORTS,
            "--name",
            "Reports",
            "--scope",
            "reports",
        ],
    );
    assert_eq!(keys(&reports), api_keys());
    assert_eq!(reports["identifier"], REPORTS);
    assert_eq!(
        reports["scopes"],
        json!([{"scope": "reports", "description": "Access \u{201c}reports\u{201d}"}])
    );
    assert_eq!(reports["user_access"], "roles", "the default");
    assert_eq!(reports["token_claims"], json!([]), "the default");
    assert_eq!(reports["access_token_ttl"], 900, "the default");

    let listed = ok(&app, &["apis", "list"]);
    assert_eq!(
        untimed(&listed),
        json!([untimed(&billing), untimed(&reports)]),
        "by identifier"
    );
    let shown = ok(&app, &["apis", "show", BILLING]);
    let mut expected = untimed(&billing);
    expected["used_by"] = json!({"clients": [], "roles": []});
    assert_eq!(untimed(&shown), expected);
    assert_eq!(time(&shown["created_at"]), time(&shown["updated_at"]));

    // Update: what is given changes, the rest stays.
    let updated = ok(
        &app,
        &[
            "apis",
            "update",
            BILLING,
            "--name",
            "Billing v2",
            "--access-token-ttl",
            "1200",
            "--token-claims",
            "permissions",
        ],
    );
    assert_eq!(keys(&updated), api_keys());
    assert_eq!(updated["id"], billing_id.as_str());
    assert_eq!(updated["identifier"], BILLING);
    assert_eq!(updated["name"], "Billing v2");
    assert_eq!(updated["access_token_ttl"], 1200);
    assert_eq!(updated["token_claims"], json!(["permissions"]));
    assert_eq!(updated["user_access"], "roles");
    assert_eq!(updated["scopes"], billing["scopes"]);
    assert_eq!(time(&updated["created_at"]), time(&shown["created_at"]));
    assert!(time(&updated["updated_at"]) > time(&updated["created_at"]));
    let updated = ok(
        &app,
        &[
            "apis",
            "update",
            BILLING,
            "--user-access",
            "any",
            "--token-claims",
            "none",
        ],
    );
    assert_eq!(updated["user_access"], "any");
    assert_eq!(updated["token_claims"], json!([]));
    assert_eq!(updated["name"], "Billing v2");
    assert_eq!(updated["access_token_ttl"], 1200);
    let shown = ok(&app, &["apis", "show", BILLING]);
    assert_eq!(shown["name"], "Billing v2");
    assert_eq!(shown["user_access"], "any");
    assert_eq!(shown["token_claims"], json!([]));
    assert_eq!(shown["access_token_ttl"], 1200);
    assert_eq!(shown["scopes"], billing["scopes"]);

    // `--scope` replaces the scopes, descriptions included.
    let reports = ok(
        &app,
        &[
            "apis",
            "update",
            REPORTS,
            "--scope",
            "reports",
            "--scope",
            "reports:export",
            "--scope",
            "reports:share=  Share your reports  ",
        ],
    );
    assert_eq!(
        reports["scopes"],
        json!([
            {"scope": "reports", "description": "Access \u{201c}reports\u{201d}"},
            {"scope": "reports:export", "description": "Export access to reports"},
            {"scope": "reports:share", "description": "Share your reports"},
        ])
    );
    assert_eq!(
        ok(&app, &["apis", "show", REPORTS])["scopes"],
        reports["scopes"]
    );

    // Roles.
    let reader = ok(
        &app,
        &[
            "roles",
            "create",
            "--name",
            "reader",
            "--scope",
            "reports",
            "--scope",
            "invoices:read",
        ],
    );
    assert_eq!(
        keys(&reader),
        ["created_at", "id", "name", "scopes", "updated_at"]
    );
    uuid::Uuid::parse_str(reader["id"].as_str().unwrap()).expect("a UUID");
    assert_eq!(reader["name"], "reader");
    assert_eq!(reader["scopes"], json!(["invoices:read", "reports"]));
    assert_eq!(reader["created_at"], reader["updated_at"]);
    let admin = ok(
        &app,
        &[
            "roles",
            "create",
            "--name",
            "billing.admin",
            "--scope",
            "invoices:read",
            "--scope",
            "invoices:write",
        ],
    );
    assert_eq!(admin["scopes"], json!(["invoices:read", "invoices:write"]));
    let roles = ok(&app, &["roles", "list"]);
    assert_eq!(names(&roles), ["billing.admin", "reader"], "by name");
    assert_eq!(untimed(&roles), json!([untimed(&admin), untimed(&reader)]));
    let reader = ok(
        &app,
        &[
            "roles",
            "update",
            "reader",
            "--scope",
            "invoices:read",
            "--scope",
            "reports",
            "--scope",
            "reports:export",
        ],
    );
    assert_eq!(
        reader["scopes"],
        json!(["invoices:read", "reports", "reports:export"])
    );
    assert!(time(&reader["updated_at"]) > time(&reader["created_at"]));
    let shown = ok(&app, &["roles", "show", "reader"]);
    assert_eq!(
        untimed(&shown),
        json!({
            "id": reader["id"],
            "name": "reader",
            "scopes": ["invoices:read", "reports", "reports:export"],
            "held_by": {"groups": [], "users": []},
        })
    );
    assert_eq!(
        ok(&app, &["apis", "show", BILLING])["used_by"],
        json!({"clients": [], "roles": ["billing.admin", "reader"]})
    );

    // Groups, members (by username and by id) and roles.
    let group = ok(&app, &["groups", "create", "--name", "accounting"]);
    assert_eq!(
        keys(&group),
        ["created_at", "id", "members", "name", "roles", "updated_at"]
    );
    assert_eq!(group["name"], "accounting");
    assert_eq!(group["roles"], json!([]));
    assert_eq!(group["members"], json!([]));
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    assert_eq!(
        ok(&app, &["groups", "add-member", "accounting", "alice"]),
        json!({"group": "accounting", "user_id": alice, "changed": true})
    );
    assert_eq!(
        ok(&app, &["groups", "add-member", "accounting", &bob]),
        json!({"group": "accounting", "user_id": bob, "changed": true})
    );
    assert_eq!(
        ok(&app, &["groups", "add-member", "accounting", &alice]),
        json!({"group": "accounting", "user_id": alice, "changed": false}),
        "already a member"
    );
    assert_eq!(
        ok(&app, &["groups", "add-role", "accounting", "reader"]),
        json!({"group": "accounting", "role": "reader", "changed": true})
    );
    assert_eq!(
        ok(&app, &["groups", "add-role", "accounting", "reader"]),
        json!({"group": "accounting", "role": "reader", "changed": false})
    );
    assert_eq!(
        ok(&app, &["users", "add-role", "alice", "billing.admin"]),
        json!({"user_id": alice, "role": "billing.admin", "changed": true})
    );
    assert_eq!(
        ok(&app, &["users", "add-role", &alice, "billing.admin"]),
        json!({"user_id": alice, "role": "billing.admin", "changed": false})
    );

    let shown = ok(&app, &["groups", "show", "accounting"]);
    let mut members = vec![alice.clone(), bob.clone()];
    members.sort();
    assert_eq!(
        untimed(&shown),
        json!({
            "id": group["id"],
            "name": "accounting",
            "roles": ["reader"],
            "members": members,
        })
    );
    assert_eq!(
        untimed(&ok(&app, &["groups", "list"])),
        json!([untimed(&shown)])
    );
    assert_eq!(
        ok(&app, &["roles", "show", "reader"])["held_by"],
        json!({"groups": ["accounting"], "users": []})
    );
    assert_eq!(
        ok(&app, &["roles", "show", "billing.admin"])["held_by"],
        json!({"groups": [], "users": [alice]})
    );

    // Each permission, with the role and the group it comes from.
    let via_group = json!({"role": "reader", "group": "accounting"});
    let direct = json!({"role": "billing.admin", "group": null});
    assert_eq!(
        ok(&app, &["users", "permissions", "alice"]),
        json!({
            "user_id": alice,
            "username": "alice",
            "permissions": [
                {"scope": "invoices:read", "api": BILLING, "granted_by": [direct, via_group]},
                {"scope": "invoices:write", "api": BILLING, "granted_by": [direct]},
                {"scope": "reports", "api": REPORTS, "granted_by": [via_group]},
                {"scope": "reports:export", "api": REPORTS, "granted_by": [via_group]},
            ],
            "roles": ["billing.admin", "reader"],
            "groups": ["accounting"],
        })
    );
    assert_eq!(
        ok(&app, &["users", "permissions", &bob]),
        json!({
            "user_id": bob,
            "username": "bob",
            "permissions": [
                {"scope": "invoices:read", "api": BILLING, "granted_by": [via_group]},
                {"scope": "reports", "api": REPORTS, "granted_by": [via_group]},
                {"scope": "reports:export", "api": REPORTS, "granted_by": [via_group]},
            ],
            "roles": ["reader"],
            "groups": ["accounting"],
        })
    );

    // Taking away: the permissions shrink.
    assert_eq!(
        ok(&app, &["groups", "remove-member", "accounting", "bob"]),
        json!({"group": "accounting", "user_id": bob, "changed": true})
    );
    assert_eq!(
        ok(&app, &["groups", "remove-member", "accounting", &bob]),
        json!({"group": "accounting", "user_id": bob, "changed": false})
    );
    assert_eq!(
        ok(&app, &["users", "permissions", "bob"]),
        json!({
            "user_id": bob,
            "username": "bob",
            "permissions": [],
            "roles": [],
            "groups": [],
        })
    );
    assert_eq!(
        ok(&app, &["groups", "remove-role", "accounting", "reader"]),
        json!({"group": "accounting", "role": "reader", "changed": true})
    );
    assert_eq!(
        ok(&app, &["groups", "remove-role", "accounting", "reader"]),
        json!({"group": "accounting", "role": "reader", "changed": false})
    );
    assert_eq!(
        ok(&app, &["users", "permissions", &alice]),
        json!({
            "user_id": alice,
            "username": "alice",
            "permissions": [
                {"scope": "invoices:read", "api": BILLING, "granted_by": [direct]},
                {"scope": "invoices:write", "api": BILLING, "granted_by": [direct]},
            ],
            "roles": ["billing.admin"],
            "groups": ["accounting"],
        })
    );
    assert_eq!(
        ok(&app, &["users", "remove-role", &alice, "billing.admin"]),
        json!({"user_id": alice, "role": "billing.admin", "changed": true})
    );
    assert_eq!(
        ok(&app, &["users", "remove-role", "alice", "billing.admin"]),
        json!({"user_id": alice, "role": "billing.admin", "changed": false})
    );
    assert_eq!(
        ok(&app, &["users", "permissions", "alice"]),
        json!({
            "user_id": alice,
            "username": "alice",
            "permissions": [],
            "roles": [],
            "groups": ["accounting"],
        })
    );
    assert_eq!(
        ok(&app, &["groups", "show", "accounting"])["members"],
        json!([alice])
    );
    assert_eq!(
        ok(&app, &["roles", "show", "billing.admin"])["held_by"],
        json!({"groups": [], "users": []})
    );

    // What nothing holds goes without --force.
    ok(&app, &["groups", "remove-member", "accounting", "alice"]);
    let deleted = ok(&app, &["groups", "delete", "accounting"]);
    assert_eq!(keys(&deleted), ["deleted"]);
    assert_eq!(deleted["deleted"]["name"], "accounting");
    assert_eq!(deleted["deleted"]["id"], group["id"]);
    assert_eq!(ok(&app, &["groups", "list"]), json!([]));
    let deleted = ok(&app, &["roles", "delete", "reader"]);
    assert_eq!(
        untimed(&deleted),
        json!({"deleted": {
            "id": reader["id"],
            "name": "reader",
            "scopes": ["invoices:read", "reports", "reports:export"],
            "held_by": {"groups": [], "users": []},
        }})
    );
    assert_eq!(names(&ok(&app, &["roles", "list"])), ["billing.admin"]);
    let deleted = ok(&app, &["apis", "delete", REPORTS]);
    assert_eq!(keys(&deleted), ["deleted"]);
    assert_eq!(deleted["deleted"]["identifier"], REPORTS);
    assert_eq!(
        deleted["deleted"]["used_by"],
        json!({"clients": [], "roles": []})
    );
    let listed = ok(&app, &["apis", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["identifier"], BILLING);
    refused(
        &app,
        &["apis", "show", REPORTS],
        &format!("no API with identifier {REPORTS}"),
    );
}

async fn cli_refuses_to_take_what_is_in_use(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    ok(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            BILLING,
            "--name",
            "Billing",
            "--scope",
            "invoices:read",
            "--scope",
            "invoices:write",
            "--scope",
            "invoices:export",
        ],
    );
    let client = ok(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "Machine",
            "--scope",
            "invoices:read",
        ],
    )["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &app,
        &[
            "roles",
            "create",
            "--name",
            "reader",
            "--scope",
            "invoices:read",
        ],
    );
    ok(
        &app,
        &[
            "roles",
            "create",
            "--name",
            "writer",
            "--scope",
            "invoices:write",
            "--scope",
            "invoices:export",
        ],
    );
    assert_eq!(
        ok(&app, &["apis", "show", BILLING])["used_by"],
        json!({"clients": [client], "roles": ["reader", "writer"]})
    );

    // Deleting the API is refused, naming what holds its scopes.
    refused(
        &app,
        &["apis", "delete", BILLING],
        &format!(
            "API {BILLING} is in use by clients {client} and roles reader, writer; \
             pass --force to do it anyway"
        ),
    );
    // Removing a held scope is refused; adding one, or removing one nothing
    // holds, is not.
    refused(
        &app,
        &[
            "apis",
            "update",
            BILLING,
            "--scope",
            "invoices:read",
            "--scope",
            "invoices:export",
        ],
        "scopes invoices:write are held by roles writer; pass --force to do it anyway",
    );
    refused(
        &app,
        &[
            "apis",
            "update",
            BILLING,
            "--name",
            "Renamed",
            "--scope",
            "invoices:write",
            "--scope",
            "invoices:export",
        ],
        &format!(
            "scopes invoices:read are held by clients {client} and roles reader; \
             pass --force to do it anyway"
        ),
    );
    let shown = ok(&app, &["apis", "show", BILLING]);
    assert_eq!(shown["name"], "Billing", "a refused update changes nothing");
    assert_eq!(
        shown["scopes"].as_array().unwrap().len(),
        3,
        "{}",
        shown["scopes"]
    );
    let widened = ok(
        &app,
        &[
            "apis",
            "update",
            BILLING,
            "--scope",
            "invoices:read",
            "--scope",
            "invoices:write",
            "--scope",
            "invoices:export",
            "--scope",
            "invoices:void",
        ],
    );
    assert_eq!(widened["scopes"].as_array().unwrap().len(), 4);
    let narrowed = ok(
        &app,
        &[
            "apis",
            "update",
            BILLING,
            "--scope",
            "invoices:read",
            "--scope",
            "invoices:write",
            "--scope",
            "invoices:export",
        ],
    );
    assert_eq!(narrowed["scopes"].as_array().unwrap().len(), 3);
    // With --force the scope goes, and the role loses it.
    let forced = ok(
        &app,
        &[
            "apis",
            "update",
            BILLING,
            "--scope",
            "invoices:read",
            "--scope",
            "invoices:export",
            "--force",
        ],
    );
    assert_eq!(
        forced["scopes"],
        json!([
            {"scope": "invoices:export", "description": "Export access to invoices"},
            {"scope": "invoices:read", "description": "Read access to invoices"},
        ])
    );
    assert_eq!(
        ok(&app, &["roles", "show", "writer"])["scopes"],
        json!(["invoices:export"])
    );

    // Roles held by a group or a user.
    let carol = app.user("carol").await;
    ok(&app, &["groups", "create", "--name", "staff"]);
    ok(&app, &["groups", "add-role", "staff", "reader"]);
    ok(&app, &["groups", "add-member", "staff", "carol"]);
    ok(&app, &["users", "add-role", "carol", "reader"]);
    ok(&app, &["users", "add-role", "carol", "writer"]);
    refused(
        &app,
        &["roles", "delete", "reader"],
        &format!(
            "role reader is held by groups staff and users {carol}; pass --force to do it anyway"
        ),
    );
    refused(
        &app,
        &["roles", "delete", "writer"],
        &format!("role writer is held by users {carol}; pass --force to do it anyway"),
    );
    ok(&app, &["users", "remove-role", "carol", "reader"]);
    refused(
        &app,
        &["roles", "delete", "reader"],
        "role reader is held by groups staff; pass --force to do it anyway",
    );
    assert_eq!(
        names(&ok(&app, &["roles", "list"])),
        ["reader", "writer"],
        "refused deletes delete nothing"
    );
    let deleted = ok(&app, &["roles", "delete", "reader", "--force"]);
    assert_eq!(deleted["deleted"]["name"], "reader");
    assert_eq!(
        deleted["deleted"]["held_by"],
        json!({"groups": ["staff"], "users": []})
    );
    assert_eq!(names(&ok(&app, &["roles", "list"])), ["writer"]);
    assert_eq!(
        ok(&app, &["groups", "show", "staff"])["roles"],
        json!([]),
        "the group lost the role"
    );
    assert_eq!(
        ok(&app, &["users", "permissions", "carol"]),
        json!({
            "user_id": carol,
            "username": "carol",
            "permissions": [{
                "scope": "invoices:export",
                "api": BILLING,
                "granted_by": [{"role": "writer", "group": null}],
            }],
            "roles": ["writer"],
            "groups": ["staff"],
        })
    );

    // Groups with members or roles.
    refused(
        &app,
        &["groups", "delete", "staff"],
        "group staff has 1 member(s) and 0 role(s); pass --force to do it anyway",
    );
    ok(&app, &["groups", "create", "--name", "ops"]);
    ok(&app, &["groups", "add-role", "ops", "writer"]);
    refused(
        &app,
        &["groups", "delete", "ops"],
        "group ops has 0 member(s) and 1 role(s); pass --force to do it anyway",
    );
    assert_eq!(names(&ok(&app, &["groups", "list"])), ["ops", "staff"]);
    let deleted = ok(&app, &["groups", "delete", "staff", "--force"]);
    assert_eq!(deleted["deleted"]["name"], "staff");
    assert_eq!(deleted["deleted"]["members"], json!([carol]));
    let deleted = ok(&app, &["groups", "delete", "ops", "--force"]);
    assert_eq!(deleted["deleted"]["roles"], json!(["writer"]));
    assert_eq!(ok(&app, &["groups", "list"]), json!([]));
    assert_eq!(
        ok(&app, &["users", "permissions", &carol])["groups"],
        json!([]),
        "carol is in no group any more"
    );
    assert_eq!(
        ok(&app, &["roles", "show", "writer"])["held_by"],
        json!({"groups": [], "users": [carol]})
    );

    // The API still in use: refused; with --force it goes, and the role
    // loses its scopes; the client keeps them in its registration.
    refused(
        &app,
        &["apis", "delete", BILLING],
        &format!("API {BILLING} is in use by clients {client} and roles writer"),
    );
    let deleted = ok(&app, &["apis", "delete", BILLING, "--force"]);
    assert_eq!(keys(&deleted), ["deleted"]);
    assert_eq!(deleted["deleted"]["identifier"], BILLING);
    assert_eq!(
        deleted["deleted"]["used_by"],
        json!({"clients": [client], "roles": ["writer"]})
    );
    assert_eq!(ok(&app, &["apis", "list"]), json!([]));
    assert_eq!(
        ok(&app, &["roles", "show", "writer"])["scopes"],
        json!([]),
        "the role lost the API's scopes"
    );
    assert_eq!(
        ok(&app, &["users", "permissions", "carol"])["permissions"],
        json!([])
    );
    assert_eq!(
        ok(&app, &["clients", "show", &client])["scope"],
        "invoices:read"
    );
}

async fn cli_apis_reject_bad_input(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    ok(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            BILLING,
            "--name",
            "Billing",
            "--scope",
            "invoices:read",
        ],
    );
    const IDENTIFIER: &str = "--identifier: must be an absolute URI without a fragment (RFC 8707 §2), at most 512 characters";
    const TTL: &str = "--access-token-ttl: must be 60 to 3600 seconds";
    let prefix = "https://long.example/";
    let longest = format!("{prefix}{}", "x".repeat(512 - prefix.len()));
    let too_long = format!("{longest}x");
    assert_eq!(too_long.len(), 513);
    let mut cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["--identifier", "billing"], IDENTIFIER.into()),
        (vec!["--identifier", "/billing"], IDENTIFIER.into()),
        (
            vec!["--identifier", "https://other.example/api#v1"],
            IDENTIFIER.into(),
        ),
        (vec!["--identifier", &too_long], IDENTIFIER.into()),
        (
            vec!["--identifier", BILLING],
            format!("an API with identifier {BILLING} exists"),
        ),
        (
            vec!["--scope", "invoices:read"],
            format!("scope invoices:read belongs to API {BILLING}"),
        ),
        (
            vec!["--scope", "invoices:read=Read your invoices"],
            format!("scope invoices:read belongs to API {BILLING}"),
        ),
        (
            vec!["--scope", "bad\"scope"],
            r#"--scope: "bad\"scope" is not a scope token (RFC 6749 §3.3)"#.into(),
        ),
        (
            vec!["--scope", "two words"],
            r#"--scope: "two words" is not a scope token (RFC 6749 §3.3)"#.into(),
        ),
        (
            vec!["--scope", "=No name"],
            r#"--scope: "" is not a scope token (RFC 6749 §3.3)"#.into(),
        ),
        (
            vec!["--scope", "orders:read=Read\u{7} orders"],
            "--scope: the description of orders:read must be 1 to 200 characters without control characters".into(),
        ),
        (
            vec!["--scope", "orders:read="],
            "--scope: the description of orders:read must be 1 to 200 characters".into(),
        ),
        (
            vec!["--scope", "orders:read", "--scope", "orders:read=Again"],
            "--scope: orders:read is given twice".into(),
        ),
        (
            vec!["--scope", "orders:read", "--user-access", "maybe"],
            "--user-access: must be roles or any".into(),
        ),
        (
            vec!["--scope", "orders:read", "--token-claims", "scopes"],
            r#"--token-claims: "scopes" is not one of roles, groups, permissions, none"#.into(),
        ),
        (
            vec!["--scope", "orders:read", "--token-claims", "roles,scopes"],
            r#"--token-claims: "scopes" is not one of roles, groups, permissions, none"#.into(),
        ),
        (
            vec!["--scope", "orders:read", "--access-token-ttl", "59"],
            TTL.into(),
        ),
        (
            vec!["--scope", "orders:read", "--access-token-ttl", "3601"],
            TTL.into(),
        ),
        (
            vec!["--scope", "orders:read", "--access-token-ttl", "0"],
            TTL.into(),
        ),
        (
            vec!["--scope", "orders:read", "--access-token-ttl=-1"],
            "invalid value '-1' for '--access-token-ttl <SECS>'".into(),
        ),
        (
            vec!["--scope", "orders:read", "--name", ""],
            "--name: must be 1 to 100 characters without control characters".into(),
        ),
        (
            vec!["--scope", "orders:read", "--name", "Bad\u{1b}name"],
            "--name: must be 1 to 100 characters without control characters".into(),
        ),
    ];
    for scope in ["openid", "profile", "email", "groups", "offline_access"] {
        cases.push((
            vec!["--scope", "orders:read", "--scope", scope],
            format!("--scope: {scope} is OpenID Connect's own scope and cannot belong to an API"),
        ));
    }
    for (extra, message) in &cases {
        // The defaults, unless the case gives them.
        let mut args = vec!["apis", "create"];
        if !extra.contains(&"--identifier") {
            args.extend(["--identifier", "https://orders.example/api"]);
        }
        if !extra.contains(&"--name") {
            args.extend(["--name", "Orders"]);
        }
        if !extra.contains(&"--scope") {
            args.extend(["--scope", "orders:read"]);
        }
        args.extend(extra.iter().copied());
        refused(&app, &args, message);
    }
    // clap: an API defines at least one scope.
    refused(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            "https://orders.example/api",
            "--name",
            "Orders",
        ],
        "--scope <SCOPE[=DESCRIPTION]>",
    );
    let listed = ok(&app, &["apis", "list"]);
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "nothing was created: {listed}"
    );
    let before = ok(&app, &["apis", "show", BILLING]);

    // The limits themselves are accepted.
    let edge = ok(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            &longest,
            "--name",
            &"N".repeat(100),
            "--scope",
            &format!("edge:a={}", "d".repeat(200)),
            "--access-token-ttl",
            "60",
        ],
    );
    assert_eq!(edge["identifier"], longest.as_str());
    assert_eq!(edge["access_token_ttl"], 60);
    let edge = ok(
        &app,
        &["apis", "update", &longest, "--access-token-ttl", "3600"],
    );
    assert_eq!(edge["access_token_ttl"], 3600);
    refused(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            "https://orders.example/api",
            "--name",
            &"N".repeat(101),
            "--scope",
            "orders:read",
        ],
        "--name: must be 1 to 100 characters",
    );
    refused(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            "https://orders.example/api",
            "--name",
            "Orders",
            "--scope",
            &format!("orders:read={}", "d".repeat(201)),
        ],
        "--scope: the description of orders:read must be 1 to 200 characters",
    );

    // `apis update` checks the same.
    let update_cases: [(&[&str], String); 12] = [
        (&["--name", ""], "--name: must be 1 to 100 characters".into()),
        (
            &[],
            "apis update: nothing to change: give --name, --scope, --user-access, \
             --token-claims or --access-token-ttl"
                .into(),
        ),
        (
            &["--token-claims", "roles,none"],
            "--token-claims: none stands alone: it means no claim".into(),
        ),
        (
            &["--user-access", "maybe"],
            "--user-access: must be roles or any".into(),
        ),
        (
            &["--token-claims", "scopes"],
            r#"--token-claims: "scopes" is not one of roles, groups, permissions, none"#.into(),
        ),
        (&["--access-token-ttl", "59"], TTL.into()),
        (&["--access-token-ttl", "3601"], TTL.into()),
        (
            &["--scope", "edge:a"],
            format!("scope edge:a belongs to API {longest}"),
        ),
        (
            &["--scope", "invoices:read", "--scope", "openid"],
            "--scope: openid is OpenID Connect's own scope and cannot belong to an API".into(),
        ),
        (
            &["--scope", "bad\"scope"],
            r#"--scope: "bad\"scope" is not a scope token (RFC 6749 §3.3)"#.into(),
        ),
        (
            &["--scope", "invoices:read=\u{7}"],
            "--scope: the description of invoices:read must be 1 to 200 characters without control characters".into(),
        ),
        (
            &["--scope", "invoices:read", "--scope", "invoices:read"],
            "--scope: invoices:read is given twice".into(),
        ),
    ];
    for (extra, message) in &update_cases {
        let mut args = vec!["apis", "update", BILLING];
        args.extend_from_slice(extra);
        refused(&app, &args, message);
    }
    let after = ok(&app, &["apis", "show", BILLING]);
    assert_eq!(after, before, "refused updates change nothing");

    // A client may only be registered for scopes an API defines.
    refused(
        &app,
        &["clients", "create", "--name", "M", "--scope", "orders:read"],
        "--scope orders:read: no API defines this scope; define it first \
         (authd apis create --identifier URI --name NAME --scope orders:read)",
    );
    assert_eq!(ok(&app, &["clients", "list"]), json!([]));
}

async fn cli_roles_and_groups_reject_bad_input(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    ok(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            BILLING,
            "--name",
            "Billing",
            "--scope",
            "invoices:read",
        ],
    );
    const NAME: &str = "--name: must be 1 to 64 letters, digits, '.', '_', '-' or ':'";
    let longest = "r".repeat(64);
    let too_long = "r".repeat(65);
    for name in [
        "has space",
        "",
        too_long.as_str(),
        "caf\u{e9}",
        "a/b",
        "a\"b",
    ] {
        refused(
            &app,
            &[
                "roles",
                "create",
                "--name",
                name,
                "--scope",
                "invoices:read",
            ],
            NAME,
        );
        refused(&app, &["groups", "create", "--name", name], NAME);
    }
    refused(
        &app,
        &["roles", "create", "--name", "r", "--scope", "orders:read"],
        "--scope: no API defines orders:read (authd apis create … --scope orders:read)",
    );
    refused(
        &app,
        &[
            "roles",
            "create",
            "--name",
            "r",
            "--scope",
            "invoices:read",
            "--scope",
            "orders:read",
        ],
        "--scope: no API defines orders:read",
    );
    refused(
        &app,
        &["roles", "create", "--name", "r", "--scope", "openid"],
        "--scope: openid is OpenID Connect's own scope: roles hold API scopes",
    );
    refused(
        &app,
        &["roles", "create", "--name", "r", "--scope", "bad\"scope"],
        "--scope: must be scope tokens (RFC 6749 §3.3)",
    );
    let output = run_authd(&app, &["roles", "create", "--name", "r"]);
    fails_with(&output, "--scope <SCOPE>");
    assert_eq!(
        ok(&app, &["roles", "list"]),
        json!([]),
        "no role was created"
    );
    assert_eq!(
        ok(&app, &["groups", "list"]),
        json!([]),
        "no group was created"
    );

    // The limits are accepted; names are unique.
    let role = ok(
        &app,
        &[
            "roles",
            "create",
            "--name",
            &longest,
            "--scope",
            "invoices:read",
        ],
    );
    assert_eq!(role["name"], longest.as_str());
    ok(
        &app,
        &[
            "roles",
            "create",
            "--name",
            "Billing.Reader_1-x:y",
            "--scope",
            "invoices:read",
        ],
    );
    refused(
        &app,
        &[
            "roles",
            "create",
            "--name",
            &longest,
            "--scope",
            "invoices:read",
        ],
        &format!("a role named {longest} exists"),
    );
    let group = ok(&app, &["groups", "create", "--name", &longest]);
    assert_eq!(group["name"], longest.as_str());
    refused(
        &app,
        &["groups", "create", "--name", &longest],
        &format!("a group named {longest} exists"),
    );
    assert_eq!(
        names(&ok(&app, &["roles", "list"])),
        ["Billing.Reader_1-x:y", longest.as_str()]
    );
    assert_eq!(names(&ok(&app, &["groups", "list"])), [longest.as_str()]);

    // `roles update` checks its scopes and changes nothing when refused.
    for (scope, message) in [
        ("orders:read", "--scope: no API defines orders:read"),
        (
            "bad\"scope",
            "--scope: must be scope tokens (RFC 6749 §3.3)",
        ),
    ] {
        refused(
            &app,
            &["roles", "update", &longest, "--scope", scope],
            message,
        );
    }
    refused(&app, &["roles", "update", &longest], "--scope <SCOPE>");
    assert_eq!(
        ok(&app, &["roles", "show", &longest])["scopes"],
        json!(["invoices:read"])
    );
}

async fn cli_unknown_names_are_refused_everywhere(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    ok(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            BILLING,
            "--name",
            "Billing",
            "--scope",
            "invoices:read",
        ],
    );
    ok(
        &app,
        &[
            "roles",
            "create",
            "--name",
            "reader",
            "--scope",
            "invoices:read",
        ],
    );
    ok(&app, &["groups", "create", "--name", "staff"]);
    let alice = app.user("alice").await;
    let stranger = uuid::Uuid::new_v4().to_string();
    let no_api = "no API with identifier https://nowhere.example/api";
    let no_role = "no role named nobody";
    let no_group = "no group named nowhere";
    let no_user = |user: &str| format!("no user with id or username {user}");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["apis", "show", "https://nowhere.example/api"],
            no_api.into(),
        ),
        (
            vec![
                "apis",
                "update",
                "https://nowhere.example/api",
                "--name",
                "X",
            ],
            no_api.into(),
        ),
        (
            vec!["apis", "delete", "https://nowhere.example/api"],
            no_api.into(),
        ),
        (
            vec!["apis", "delete", "https://nowhere.example/api", "--force"],
            no_api.into(),
        ),
        (vec!["roles", "show", "nobody"], no_role.into()),
        (
            vec!["roles", "update", "nobody", "--scope", "invoices:read"],
            no_role.into(),
        ),
        (vec!["roles", "delete", "nobody"], no_role.into()),
        (vec!["roles", "delete", "nobody", "--force"], no_role.into()),
        (vec!["groups", "show", "nowhere"], no_group.into()),
        (vec!["groups", "delete", "nowhere"], no_group.into()),
        (
            vec!["groups", "delete", "nowhere", "--force"],
            no_group.into(),
        ),
        (
            vec!["groups", "add-member", "nowhere", "alice"],
            no_group.into(),
        ),
        (
            vec!["groups", "remove-member", "nowhere", "alice"],
            no_group.into(),
        ),
        (
            vec!["groups", "add-role", "nowhere", "reader"],
            no_group.into(),
        ),
        (
            vec!["groups", "remove-role", "nowhere", "reader"],
            no_group.into(),
        ),
        (
            vec!["groups", "add-member", "staff", "mallory"],
            no_user("mallory"),
        ),
        (
            vec!["groups", "add-member", "staff", &stranger],
            no_user(&stranger),
        ),
        (
            vec!["groups", "add-member", "staff", "not a name"],
            no_user("not a name"),
        ),
        (
            vec!["groups", "remove-member", "staff", "mallory"],
            no_user("mallory"),
        ),
        (
            vec!["groups", "remove-member", "staff", &stranger],
            no_user(&stranger),
        ),
        (
            vec!["groups", "add-role", "staff", "nobody"],
            no_role.into(),
        ),
        (
            vec!["groups", "remove-role", "staff", "nobody"],
            no_role.into(),
        ),
        (
            vec!["users", "add-role", "mallory", "reader"],
            no_user("mallory"),
        ),
        (
            vec!["users", "add-role", &stranger, "reader"],
            no_user(&stranger),
        ),
        (vec!["users", "add-role", "alice", "nobody"], no_role.into()),
        (vec!["users", "add-role", &alice, "nobody"], no_role.into()),
        (
            vec!["users", "remove-role", "mallory", "reader"],
            no_user("mallory"),
        ),
        (
            vec!["users", "remove-role", "alice", "nobody"],
            no_role.into(),
        ),
        (vec!["users", "permissions", "mallory"], no_user("mallory")),
        (vec!["users", "permissions", &stranger], no_user(&stranger)),
        (vec!["users", "permissions", ""], no_user("")),
    ];
    for (args, message) in &cases {
        refused(&app, args, message);
    }
    // Nothing changed on the way.
    assert_eq!(
        ok(&app, &["users", "permissions", "alice"]),
        json!({
            "user_id": alice,
            "username": "alice",
            "permissions": [],
            "roles": [],
            "groups": [],
        })
    );
    let staff = ok(&app, &["groups", "show", "staff"]);
    assert_eq!(staff["roles"], json!([]));
    assert_eq!(staff["members"], json!([]));
    assert_eq!(
        ok(&app, &["roles", "show", "reader"])["held_by"],
        json!({"groups": [], "users": []})
    );
}

/// The token's `aud` as a list (RFC 9068 §2.2: one string or an array).
fn audience(claims: &Value) -> Vec<String> {
    match &claims["aud"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect(),
        other => panic!("aud {other}"),
    }
}

fn lifetime(claims: &Value) -> i64 {
    claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()
}

async fn cli_apis_reach_the_running_server(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    ok(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            BILLING,
            "--name",
            "Billing",
            "--scope",
            "invoices:read",
            "--scope",
            "invoices:write",
            "--user-access",
            "any",
            "--access-token-ttl",
            "300",
            "--token-claims",
            "permissions",
        ],
    );
    let created = ok(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "Machine",
            "--scope",
            "invoices:read",
        ],
    );
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();

    let token = cc_token(&app, &id, &secret).await;
    let claims = jwt_part(&token, 1);
    assert_eq!(audience(&claims), [BILLING], "{claims}");
    assert_eq!(claims["scope"], "invoices:read");
    assert_eq!(lifetime(&claims), 300, "the API's lifetime");
    assert_eq!(claims["permissions"], json!(["invoices:read"]), "{claims}");
    assert!(claims.get("roles").is_none(), "{claims}");
    // The signature and claims verify for that audience.
    let verified = verify_access_token(&app, &token, BILLING).await;
    assert_eq!(verified["client_id"], id.as_str());

    // A change reaches the running server.
    ok(
        &app,
        &[
            "apis",
            "update",
            BILLING,
            "--access-token-ttl",
            "120",
            "--token-claims",
            "none",
        ],
    );
    within_5_seconds("the new lifetime", || async {
        let claims = jwt_part(&cc_token(&app, &id, &secret).await, 1);
        lifetime(&claims) == 120 && claims.get("permissions").is_none()
    })
    .await;

    // Deleted with --force: the client's scope is granted no more.
    ok(&app, &["apis", "delete", BILLING, "--force"]);
    within_5_seconds("the API's deletion", || async {
        app.client_credentials(&id, &secret).await.status() == 400
    })
    .await;
    let response = app.client_credentials(&id, &secret).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope", "{body}");
}

on_both_backends!(
    cli_access_lifecycle,
    cli_refuses_to_take_what_is_in_use,
    cli_apis_reject_bad_input,
    cli_roles_and_groups_reject_bad_input,
    cli_unknown_names_are_refused_everywhere,
    cli_apis_reach_the_running_server,
);
