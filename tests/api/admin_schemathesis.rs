//! The admin API against its own OpenAPI document (issue 18): Schemathesis
//! (from PyPI) drives a live authd on each database through every operation
//! the document lists, with data the schemas accept (positive) and data
//! they refuse (negative), and checks every response: never a 5xx, only
//! documented status codes, content types, headers and bodies that conform.
//!
//! `.ci/run` installs Schemathesis into a virtualenv at
//! `$HOME/.cache/authd-ci/schemathesis` with `scripts/schemathesis.sh` (run
//! it by hand to have this test run locally). The program is
//! `$SCHEMATHESIS`, else that virtualenv's `schemathesis`, else
//! `schemathesis` on `PATH`. Without one the test prints a notice and
//! passes, except in CI (`CI` set), where it fails.
//!
//! To look closer at a failure, `AUTHD_SCHEMATHESIS_ARGS` adds arguments:
//! `--output-sanitize false` shows what the report hides (headers, and
//! fields named like secrets); `--report har --report-dir DIR` keeps every
//! exchange.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authd::crypto::MasterKey;
use authd::domain::api::ADMIN_SCOPES;

use crate::helpers::{Backend, TestApp, on_both_backends, spawn_app_on, test_database};

/// Test cases per operation and phase: enough to reach every operation with
/// both kinds of data, few enough for well under two minutes per database.
const MAX_EXAMPLES: &str = "30";
/// Fixed, so a failure reproduces with the same command.
const SEED: &str = "18";
/// Each request's limit (a hung handler fails as a timeout, not a hang).
const REQUEST_TIMEOUT_SECONDS: &str = "10";
/// The whole run's; past it the process is killed and the test fails.
const RUN_DEADLINE: Duration = Duration::from_secs(300);

/// Where Schemathesis is: `$SCHEMATHESIS`, the virtualenv
/// `scripts/schemathesis.sh` makes, or `PATH`. (Its `schemathesis` program,
/// the same as `st`, a name other programs have too.)
fn schemathesis() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SCHEMATHESIS") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "SCHEMATHESIS={} does not exist",
            path.display()
        );
        return Some(path);
    }
    let venv = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/authd-ci/schemathesis/bin/schemathesis"))
        .filter(|path| path.is_file());
    venv.or_else(|| {
        let paths = std::env::var_os("PATH")?;
        std::env::split_paths(&paths)
            .map(|dir| dir.join("schemathesis"))
            .find(|path| path.is_file())
    })
}

/// Schemathesis, or `None` with a notice (once per run) outside CI; in CI
/// its absence fails.
fn schemathesis_or_skip() -> Option<PathBuf> {
    let found = schemathesis();
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "Schemathesis is required in CI: .ci/run installs it into \
                 $HOME/.cache/authd-ci/schemathesis (scripts/schemathesis.sh), \
                 or set SCHEMATHESIS to its program"
            );
        }
        // Written to the stderr handle: libtest captures `eprintln!`.
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the Schemathesis test needs Schemathesis: run scripts/schemathesis.sh \
                 or set SCHEMATHESIS (in CI this is a failure)"
            );
        });
    }
    found
}

async fn admin_app(backend: Backend) -> Option<TestApp> {
    let database = Arc::new(test_database(backend).await?);
    Some(
        spawn_app_on(database, MasterKey::generate(), |config| {
            config.admin_bind = Some("127.0.0.1:0".parse().unwrap());
        })
        .await
        .expect("app starts"),
    )
}

/// Schemathesis hooks (Python): the token, and two things this API does on
/// purpose.
///
/// The token: a client-credentials token of the test's admin client,
/// fetched again after a signing key is revoked (`POST /keys/{kid}/revoke`
/// ends every token that key signed, this run's included: that is the
/// point of it). Otherwise one token serves the whole run.
///
/// The caller's client: Schemathesis learns its id from `GET /clients`
/// like any other, and a `DELETE` of it (or a new secret) would leave the
/// run without credentials, every request after a 401 that tests nothing.
/// So a request naming the caller's id names a client that does not exist
/// instead (a 404, which is documented). Nothing else is changed.
///
/// `POST /clients` with an `Idempotency-Key` it has seen answers what the
/// first request did, for 24 hours (`Idempotent-Replayed: true`), even when
/// that client has been deleted since. Schemathesis reuses keys (`null`,
/// `0`) across unrelated creates, so it reads such a replay as a new client
/// and its `GET` 404 as "created resource not found" (ST302). That one
/// failure is dropped when the client was both deleted (a 204) and named by
/// a replay; every other ST302 stands.
const HOOKS: &str = r#"
import os
from urllib.parse import unquote, urlsplit

import requests
import schemathesis

CALLER = os.environ["AUTHD_ADMIN_CALLER"]
SECRET = os.environ["AUTHD_ADMIN_SECRET"]
TOKEN_URL = os.environ["AUTHD_TOKEN_URL"]
CLIENTS = "/admin/v1/clients/"
KEYS = "/admin/v1/keys/"
token = {"value": None}
deleted = set()
replayed = set()


@schemathesis.auth(refresh_interval=None)
class AdminToken:
    def get(self, case, context):
        if token["value"] is None:
            response = requests.post(
                TOKEN_URL,
                data={"grant_type": "client_credentials"},
                auth=(CALLER, SECRET),
                timeout=10,
            )
            response.raise_for_status()
            token["value"] = response.json()["access_token"]
        return token["value"]

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def client_of(url):
    path = urlsplit(url).path
    if not path.startswith(CLIENTS):
        return None
    return unquote(path[len(CLIENTS):].split("/")[0])


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.path_parameters and CALLER in case.path_parameters.values():
        case.path_parameters = {
            name: "not-the-caller-" + CALLER if value == CALLER else value
            for name, value in case.path_parameters.items()
        }


@schemathesis.hook
def after_call(context, case, response):
    request = response.request
    path = urlsplit(request.url).path
    if request.method == "POST" and path.startswith(KEYS) and path.endswith("/revoke"):
        if response.status_code == 200:
            token["value"] = None
    elif request.method == "DELETE" and response.status_code == 204:
        deleted.add(client_of(request.url))
    elif (
        request.method == "POST"
        and response.status_code == 201
        and response.headers.get("idempotent-replayed") == ["true"]
    ):
        replayed.add(client_of("http://authd" + response.headers.get("location", [""])[0]))


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if failure.code != "ST302":
        return True
    client = client_of(response.request.url)
    return not (client in deleted and client in replayed)
"#;

/// Schemathesis's configuration: what the command line cannot say.
///
/// `positive_data_acceptance` expects a request whose data the schemas
/// accept to succeed (or be 401, 403, 404, 409 or 429). Two answers of this
/// API to such requests are deliberate and documented, and depend on state
/// no schema can describe, so they are added for the operations that give
/// them for that reason, and nowhere else:
/// - 400 from the lists: a `cursor` is opaque, one the previous page gave
///   (a well-formed string that is not one is refused, as a stale `ETag`
///   is; no schema can tell them apart).
/// - 412 from the operations that take `If-Match`: a well-formed string
///   that is not the resource's current `ETag` (Schemathesis cannot know
///   it; RFC 9110 §13.1.1 says 412). For the same reason a request with
///   bad data and such an `If-Match` gets 412 rather than 400 or 422: RFC
///   9110 §13.2.2 evaluates preconditions before the method, so
///   `negative_data_rejection` admits 412 for these operations.
/// - 422 from creating and changing clients, roles, APIs and users, and
///   from creating registration tokens:
///   scopes must be ones some API defines (and an API's may not be OpenID
///   Connect's own), a client's metadata must agree with its grant types
///   (redirect URIs, `post_logout_redirect_uris`, …), an API's identifier
///   must be an absolute URI, a user's email plausible and unique names
///   free, as the CLI checks. (A 422 for a rule of one field alone that a
///   schema can say, such as a group name's characters, gets no allowance:
///   the schema says it.)
///
/// The warnings that say this run went wrong (only 401s, only 405s, a
/// schema or a filter here Schemathesis could not use, 429s) fail it.
/// `missing_test_data` (operations that only ever found 404s) and
/// `validation_mismatch` (operations that mostly refused generated data)
/// are shown but do not fail it: they say what Schemathesis could not
/// reach, not that the API answered wrongly.
const CONFIG: &str = r#"
[warnings]
fail-on = [
    "missing_auth",
    "method_not_allowed",
    "unused_openapi_auth",
    "base_url_mismatch",
    "missing_deserializer",
    "unsupported_regex",
    "unresolvable_reference",
    "unmatched_filter",
    "rate_limited",
]

[[operations]]
include-operation-id = ["list_clients", "list_users", "list_apis", "list_roles", "list_groups"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-operation-id = ["delete_client"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]
checks.negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "406", "409", "412", "413", "415", "422", "428"]

[[operations]]
include-operation-id = ["create_client", "create_role", "create_api", "create_user", "create_registration_token"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = ["update_client", "update_role", "update_api", "update_user"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429", "5xx"]
checks.negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "406", "409", "412", "413", "415", "422", "428"]
"#;

/// The command line (printed on failure as it ran).
fn arguments(config: &str, schema_url: &str) -> Vec<String> {
    [
        "--config-file",
        config,
        "run",
        schema_url,
        // Every check, none excluded: 5xx (`not_a_server_error`), status
        // codes, content types, headers and bodies as documented, positive
        // data accepted and negative data refused (with the allowances in
        // `CONFIG`), required headers, other methods answered 405 with
        // `Allow`, 401 without the token (`ignored_auth`), and over the
        // links Schemathesis infers from `Location` and the ids in
        // responses: a created resource can be read (`ensure_resource_
        // availability`, see `HOOKS`) and a deleted one answers 404
        // (`use_after_free`: what this API does). `object_level_
        // authorization` needs a second caller and does not apply.
        "--checks",
        "all",
        // Positive and negative data.
        "--mode",
        "all",
        // Every phase: the document's examples, the coverage phase (edges of
        // each schema, missing and malformed parameters, other methods), random
        // fuzzing, and stateful sequences (create, then read, change, delete).
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        "--request-timeout",
        REQUEST_TIMEOUT_SECONDS,
        // One worker: the results follow from the seed, and the 2-core CI
        // machine runs the app in the same process as this test.
        "--workers",
        "1",
        // Nothing is kept between runs (no example database in the repo).
        "--generation-database",
        "none",
        // Every failure, not just the first of each operation.
        "--continue-on-failure",
        "--no-color",
        // Whole responses in the report.
        "--output-truncate",
        "false",
    ]
    .map(str::to_owned)
    .into()
}

/// `AUTHD_SCHEMATHESIS_ARGS`, split at spaces (see the top of this file).
fn extra_arguments() -> Vec<String> {
    std::env::var("AUTHD_SCHEMATHESIS_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

async fn admin_api_conforms_to_its_document(backend: Backend) {
    let Some(st) = schemathesis_or_skip() else {
        return;
    };
    let Some(app) = admin_app(backend).await else {
        return;
    };
    let scopes: Vec<&str> = ADMIN_SCOPES.iter().map(|(scope, _)| *scope).collect();
    let (id, secret) = app.machine_client(&scopes).await;
    let schema_url = format!(
        "http://127.0.0.1:{}/admin/v1/openapi.json",
        app.admin_port.expect("the admin API is served")
    );

    // Output to a file (a full pipe would stall the process); run from a
    // scratch directory so nothing lands in the work tree.
    let scratch = tempfile::tempdir().expect("temp dir");
    let hooks = scratch.path().join("authd_hooks.py");
    std::fs::write(&hooks, HOOKS).expect("hooks file");
    let config = scratch.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).expect("config file");
    let arguments = arguments(config.to_str().expect("a UTF-8 path"), &schema_url);
    let log_path = scratch.path().join("schemathesis.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let started = Instant::now();
    let mut child = Command::new(&st)
        .args(&arguments)
        .args(extra_arguments())
        .current_dir(scratch.path())
        .env("SCHEMATHESIS_HOOKS", &hooks)
        .env("AUTHD_ADMIN_CALLER", &id)
        .env("AUTHD_ADMIN_SECRET", &secret)
        .env("AUTHD_TOKEN_URL", app.url("/token"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|error| panic!("{} does not start: {error}", st.display()));
    // Polled, not waited on: the app answers on this runtime meanwhile.
    let status = loop {
        if let Some(status) = child.try_wait().expect("schemathesis runs") {
            break Some(status);
        }
        if started.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = started.elapsed();
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let command = format!(
        "SCHEMATHESIS_HOOKS=authd_hooks.py (HOOKS) AUTHD_ADMIN_CALLER={id} \
         AUTHD_ADMIN_SECRET=… AUTHD_TOKEN_URL={} {} {} {}",
        app.url("/token"),
        st.display(),
        arguments.join(" "),
        extra_arguments().join(" ")
    );
    // The caller must have stayed itself to the end (see `HOOKS`).
    let lost = format!(
        "{backend:?}: the run lost its own credentials on the way, so the requests after that \
         tested nothing but 401s:\n{command}\n\n{output}"
    );
    let response = app.client_credentials(&id, &secret).await;
    assert_eq!(response.status(), 200, "{lost}");
    let body: serde_json::Value = response.json().await.expect("a token response");
    let token = body["access_token"].as_str().expect("an access token");
    let still = app
        .http
        .get(format!(
            "http://127.0.0.1:{}/admin/v1/clients/{id}",
            app.admin_port.unwrap()
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("the admin API answers");
    assert_eq!(still.status(), 200, "{lost}");
    match status {
        Some(status) if status.success() => {
            // Every operation of the document was tested.
            let count = |label: &str| {
                output
                    .lines()
                    .find_map(|line| line.trim().strip_prefix(label))
                    .map(|rest| rest.trim().to_owned())
            };
            let selected = count("Selected:").and_then(|s| Some(s.split_once('/')?.1.to_owned()));
            let tested = count("Tested:");
            assert!(
                selected.is_some() && selected == tested,
                "{backend:?}: Schemathesis did not test every operation \
                 (tested {tested:?} of {selected:?}):\n{command}\n\n{output}"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "admin_schemathesis {backend:?}: passed in {:.1}s",
                took.as_secs_f64()
            );
        }
        Some(status) => panic!(
            "{backend:?}: Schemathesis found failures ({status}, after {:.1}s):\n\
             {command}\n\n{output}",
            took.as_secs_f64()
        ),
        None => panic!(
            "{backend:?}: Schemathesis did not finish within {RUN_DEADLINE:?}:\n\
             {command}\n\n{output}"
        ),
    }
    app.stop().await;
}

on_both_backends!(admin_api_conforms_to_its_document);
