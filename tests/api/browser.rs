//! End to end in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven through WebDriver by fantoccini): a person
//! signs in through the pages, and the application exchanges the code with
//! the `oauth2` crate.
//!
//! The application's callback is a loopback listener that records the
//! query it was sent to. Screenshots of every page land in
//! `target/screenshots/` (the ones in docs/ come from there).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use authd::clients::dynamic::RegistrationMode;
use authd::clients::registration::NewClient;
use authd::crypto::MasterKey;
use fantoccini::{Client, ClientBuilder, Locator};
use oauth2::{AuthorizationCode, ClientId, ClientSecret, PkceCodeVerifier, RedirectUrl, TokenUrl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::helpers::{
    Backend, PASSWORD, Pkce, TestApp, WebClient, authorize_query, on_both_backends, pkce,
    query_param, spawn_app, spawn_app_on, test_database,
};

/// Where chromedriver is, installing Debian's packages once when it is
/// missing and this process may (root with apt-get). `None` outside CI
/// when it cannot be had; in CI that is a failure.
fn chromedriver() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let find = || {
                std::env::var_os("CHROMEDRIVER")
                    .map(PathBuf::from)
                    .into_iter()
                    .chain(
                        ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
                            .map(PathBuf::from),
                    )
                    .find(|path| path.exists())
            };
            if let Some(path) = find() {
                return Some(path);
            }
            let is_root = Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|out| out.stdout.starts_with(b"0"));
            if is_root {
                eprintln!("browser tests: installing Debian's chromium and chromium-driver");
                let _ = Command::new("apt-get")
                    .args(["install", "-y", "-q", "chromium", "chromium-driver"])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .stdout(Stdio::null())
                    .status();
            }
            find()
        })
        .clone()
}

/// A chromedriver process for one test, killed on drop.
struct Driver {
    process: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver() -> Option<Driver> {
    let Some(path) = chromedriver() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromedriver is required in CI: install chromium and chromium-driver");
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: browser tests need chromium and chromium-driver (apt-get install chromium chromium-driver)"
        );
        return None;
    };
    let port = free_port();
    // Owned by `Driver` at once, so it is killed and reaped on every path.
    let driver = Driver {
        process: Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
        port,
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(driver);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

/// A headless Chromium session: a desktop window, or a phone (Chromium's
/// mobile emulation: 390×844 CSS pixels, touch, a phone user agent).
async fn chromium(driver: &Driver, phone: bool) -> Client {
    let mut options = serde_json::json!({
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
    });
    if phone {
        options["mobileEmulation"] = serde_json::json!({
            "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 2.0, "touch": true },
            "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36"
        });
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

/// The application's redirect URI: answers every request with a small page
/// and reports the URL it was called with.
struct Callback {
    address: SocketAddr,
    hits: mpsc::UnboundedReceiver<String>,
}

impl Callback {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (sender, hits) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = vec![0u8; 8192];
                let read = stream.read(&mut buffer).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..read]).into_owned();
                let target = request.split(' ').nth(1).unwrap_or_default().to_owned();
                if !target.starts_with("/favicon") {
                    let _ = sender.send(format!("http://{address}{target}"));
                }
                let body = "<!doctype html><title>App</title><p>Back in the application.</p>";
                let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        Self { address, hits }
    }

    fn redirect_uri(&self) -> String {
        format!("http://{}/cb", self.address)
    }

    /// The next URL the browser was sent to.
    async fn next(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.hits.recv())
            .await
            .expect("the browser reached the application")
            .expect("callback open")
    }
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn fill_login(browser: &Client, username: &str, password: &str) {
    browser
        .wait()
        .for_element(Locator::Css("#username"))
        .await
        .expect("the login page");
    let field = browser.find(Locator::Css("#username")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(username).await.unwrap();
    browser
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
}

async fn submit(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .expect("the button")
        .click()
        .await
        .unwrap();
}

/// Registers a loopback client that sends people to `callback`.
async fn register(app: &TestApp, callback: &Callback, public: bool) -> WebClient {
    app.web_client_with(NewClient {
        name: if public { "Photo SPA" } else { "Acme Billing" }.into(),
        public,
        redirect_uris: vec![callback.redirect_uri()],
        scopes: vec!["invoices:read".into()],
        post_logout_redirect_uris: vec![format!("http://{}/bye", callback.address)],
        ..Default::default()
    })
    .await
}

/// OIDC Core §3.1.3.3: the token response's `id_token`, which the plain
/// OAuth client type does not keep.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
struct IdTokenFields {
    id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenFields {}

type OidcClient = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::StandardTokenResponse<IdTokenFields, oauth2::basic::BasicTokenType>,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

/// The code exchange an application does, with the `oauth2` crate.
async fn exchange(app: &TestApp, client: &WebClient, code: &str, pkce: &Pkce) -> serde_json::Value {
    let mut oauth: OidcClient = oauth2::Client::new(ClientId::new(client.id.clone()))
        .set_token_uri(TokenUrl::new(app.url("/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(client.redirect_uri.clone()).unwrap());
    if let Some(secret) = &client.secret {
        oauth = oauth.set_client_secret(ClientSecret::new(secret.clone()));
    }
    let token = oauth
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce.verifier.clone()))
        .request_async(&app.http)
        .await
        .expect("the code is exchanged");
    serde_json::to_value(&token).unwrap()
}

/// Signs in through the pages in Chromium, allowing consent when asked.
async fn sign_in(
    browser: &Client,
    app: &TestApp,
    client: &WebClient,
    pkce: &Pkce,
    shots: Option<&str>,
) {
    let query = authorize_query(
        client,
        pkce,
        &[("scope", "openid profile email invoices:read")],
    );
    browser
        .goto(&app.url(&format!("/authorize?{query}")))
        .await
        .unwrap();
    fill_login(browser, "alice", PASSWORD).await;
    if let Some(prefix) = shots {
        screenshot(browser, &format!("{prefix}-login")).await;
    }
    submit(browser, "button[type=submit]").await;
    browser
        .wait()
        .for_element(Locator::Css("button[value=allow]"))
        .await
        .expect("the consent page");
    if let Some(prefix) = shots {
        screenshot(browser, &format!("{prefix}-consent")).await;
    }
    submit(browser, "button[value=allow]").await;
}

async fn confidential_and_public_clients_sign_in_through_the_pages(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let Some(driver) = start_driver().await else {
        return;
    };
    let user_id = app.user("alice").await;
    for public in [false, true] {
        let mut callback = Callback::start().await;
        let client = register(&app, &callback, public).await;
        let browser = chromium(&driver, false).await;
        let pkce = pkce();
        let shots = (backend == Backend::Sqlite && !public).then_some("desktop");
        sign_in(&browser, &app, &client, &pkce, shots).await;
        let back = callback.next().await;
        assert_eq!(query_param(&back, "state").as_deref(), Some("st4te"));
        assert_eq!(
            query_param(&back, "iss").as_deref(),
            Some(app.issuer.as_str())
        );
        let code = query_param(&back, "code").expect("a code");
        let token = exchange(&app, &client, &code, &pkce).await;
        assert_eq!(token["token_type"], "bearer");
        let id_token = token["id_token"].as_str().expect("an ID token");
        assert_eq!(id_token.split('.').count(), 3);
        let claims: serde_json::Value = app
            .http
            .get(app.url("/userinfo"))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(claims["sub"], user_id.as_str());
        assert_eq!(claims["email"], "alice@example.com");
        browser.close().await.unwrap();
    }
}

/// Issue 16: the consent page groups what can be granted by API, with the
/// APIs' names and their scopes' descriptions, and never lists a scope the
/// user cannot get (bob reads invoices through a role; writing them is
/// finance's). Screenshot for docs/.
async fn consent_page_lists_only_what_the_user_may_grant_by_api(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let Some(driver) = start_driver().await else {
        return;
    };
    app.user("bob").await;
    let runtime = authd::startup::Runtime::open(&app.config, false, &authd::clock::SystemClock)
        .await
        .unwrap();
    let store = runtime.store.as_ref();
    let clock = authd::clock::SystemClock;
    for (identifier, name, scopes, access) in [
        (
            "https://invoices.example",
            "Invoices",
            vec![
                "invoices:read=Read your invoices".to_owned(),
                "invoices:write=Create, change and delete invoices".to_owned(),
            ],
            "roles",
        ),
        (
            "https://calendar.example",
            "Calendar",
            vec!["calendar:read=See your calendar".to_owned()],
            "any",
        ),
    ] {
        authd::access::apis::create(
            store,
            &clock,
            authd::access::apis::ApiInput {
                identifier: identifier.into(),
                name: name.into(),
                scopes,
                user_access: Some(access.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    authd::access::roles::create(store, &clock, "invoice-reader", &["invoices:read".into()])
        .await
        .unwrap();
    authd::access::roles::set_user_role(store, "bob", "invoice-reader", true)
        .await
        .unwrap();
    runtime.store.close().await;

    let mut callback = Callback::start().await;
    let client = app
        .web_client_with(NewClient {
            name: "Acme Billing".into(),
            redirect_uris: vec![callback.redirect_uri()],
            scopes: vec![
                "invoices:read".into(),
                "invoices:write".into(),
                "calendar:read".into(),
            ],
            ..Default::default()
        })
        .await;
    let browser = chromium(&driver, false).await;
    let pkce = pkce();
    let query = authorize_query(
        &client,
        &pkce,
        &[(
            "scope",
            "openid profile invoices:read invoices:write calendar:read",
        )],
    );
    browser
        .goto(&app.url(&format!("/authorize?{query}")))
        .await
        .unwrap();
    fill_login(&browser, "bob", PASSWORD).await;
    submit(&browser, "button[type=submit]").await;
    browser
        .wait()
        .for_element(Locator::Css("button[value=allow]"))
        .await
        .expect("the consent page");
    if backend == Backend::Sqlite {
        screenshot(&browser, "desktop-consent-apis").await;
    }
    let titles: Vec<String> = {
        let mut titles = Vec::new();
        for element in browser
            .find_all(Locator::Css(".section-title"))
            .await
            .unwrap()
        {
            titles.push(element.text().await.unwrap());
        }
        titles
    };
    // CSS uppercases the titles on screen; WebDriver reads what is shown.
    let titles: Vec<String> = titles.iter().map(|t| t.to_lowercase()).collect();
    assert_eq!(titles, ["your account", "calendar", "invoices"]);
    let text = browser
        .find(Locator::Css("main, body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("Read your invoices"), "{text}");
    assert!(text.contains("See your calendar"), "{text}");
    assert!(!text.contains("invoices:write"), "{text}");
    assert!(
        !text.contains("Create, change and delete invoices"),
        "{text}"
    );
    submit(&browser, "button[value=allow]").await;
    let back = callback.next().await;
    let code = query_param(&back, "code").expect("a code");
    let token = exchange(&app, &client, &code, &pkce).await;
    assert_eq!(
        token["scope"], "calendar:read invoices:read openid profile",
        "{token}"
    );
    browser.close().await.unwrap();
}

async fn deny_sends_access_denied_back(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let Some(driver) = start_driver().await else {
        return;
    };
    app.user("alice").await;
    let mut callback = Callback::start().await;
    let client = register(&app, &callback, false).await;
    let browser = chromium(&driver, false).await;
    let pkce = pkce();
    let query = authorize_query(&client, &pkce, &[]);
    browser
        .goto(&app.url(&format!("/authorize?{query}")))
        .await
        .unwrap();
    fill_login(&browser, "alice", PASSWORD).await;
    submit(&browser, "button[type=submit]").await;
    browser
        .wait()
        .for_element(Locator::Css("button[value=deny]"))
        .await
        .unwrap();
    submit(&browser, "button[value=deny]").await;
    let back = callback.next().await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("st4te"));
    assert_eq!(
        query_param(&back, "iss").as_deref(),
        Some(app.issuer.as_str())
    );
    assert_eq!(query_param(&back, "code"), None);
    // An unregistered redirect URI: the error page, never a redirect.
    let query = authorize_query(
        &client,
        &pkce,
        &[("redirect_uri", "https://evil.example/cb")],
    );
    browser
        .goto(&app.url(&format!("/authorize?{query}")))
        .await
        .unwrap();
    assert!(
        browser
            .source()
            .await
            .unwrap()
            .contains("has not registered")
    );
    if backend == Backend::Sqlite {
        screenshot(&browser, "desktop-error").await;
    }
    browser.close().await.unwrap();
}

async fn remembered_consent_and_prompt_none_skip_the_pages(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let Some(driver) = start_driver().await else {
        return;
    };
    app.user("alice").await;
    let mut callback = Callback::start().await;
    let client = register(&app, &callback, false).await;
    let browser = chromium(&driver, false).await;

    // prompt=none before anyone signed in: login_required, no page shown.
    let query = authorize_query(&client, &pkce(), &[("prompt", "none")]);
    browser
        .goto(&app.url(&format!("/authorize?{query}")))
        .await
        .unwrap();
    let back = callback.next().await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("login_required")
    );

    sign_in(&browser, &app, &client, &pkce(), None).await;
    assert!(query_param(&callback.next().await, "code").is_some());

    // Same scopes again: straight back with a code, no login, no consent.
    let again = pkce();
    let query = authorize_query(
        &client,
        &again,
        &[("scope", "openid profile email invoices:read")],
    );
    browser
        .goto(&app.url(&format!("/authorize?{query}")))
        .await
        .unwrap();
    let back = callback.next().await;
    let code = query_param(&back, "code").expect("a code without any page");
    exchange(&app, &client, &code, &again).await;

    // prompt=none with the session: a code, silently.
    let query = authorize_query(&client, &pkce(), &[("prompt", "none"), ("scope", "openid")]);
    browser
        .goto(&app.url(&format!("/authorize?{query}")))
        .await
        .unwrap();
    assert!(query_param(&callback.next().await, "code").is_some());
    browser.close().await.unwrap();
}

async fn logout_ends_the_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let Some(driver) = start_driver().await else {
        return;
    };
    app.user("alice").await;
    let mut callback = Callback::start().await;
    let client = register(&app, &callback, false).await;
    let browser = chromium(&driver, false).await;
    sign_in(&browser, &app, &client, &pkce(), None).await;
    callback.next().await;

    let bye = format!("http://{}/bye", callback.address);
    let logout = format!(
        "/logout?client_id={}&post_logout_redirect_uri={}&state=see-you",
        client.id,
        urlencode(&bye)
    );
    browser.goto(&app.url(&logout)).await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css("form[action='/logout'] button"))
        .await
        .expect("the sign-out confirmation");
    if backend == Backend::Sqlite {
        screenshot(&browser, "desktop-logout").await;
    }
    submit(&browser, "form[action='/logout'] button").await;
    let back = callback.next().await;
    assert_eq!(back, format!("{bye}?state=see-you"));

    let query = authorize_query(&client, &pkce(), &[("prompt", "none")]);
    browser
        .goto(&app.url(&format!("/authorize?{query}")))
        .await
        .unwrap();
    let back = callback.next().await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("login_required")
    );
    browser.close().await.unwrap();
}

/// The pages at phone size, and the error page; screenshots for docs/.
async fn pages_render_on_a_phone_and_errors_show_the_request_id(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let Some(driver) = start_driver().await else {
        return;
    };
    app.user("alice").await;
    let mut callback = Callback::start().await;
    let client = register(&app, &callback, false).await;
    let browser = chromium(&driver, true).await;
    let shots = (backend == Backend::Sqlite).then_some("phone");
    sign_in(&browser, &app, &client, &pkce(), shots).await;
    // Let the navigation back to the application finish first.
    callback.next().await;

    let query = authorize_query(
        &client,
        &pkce(),
        &[("redirect_uri", "https://evil.example/cb")],
    );
    browser
        .goto(&app.url(&format!("/authorize?{query}")))
        .await
        .unwrap();
    let heading = browser
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "Sign-in cannot continue");
    let footer = browser
        .find(Locator::Css("footer code"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(footer.len(), 36, "a request id: {footer}");
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&app.url("/authorize"))
    );
    if backend == Backend::Sqlite {
        screenshot(&browser, "phone-error").await;
    }
    browser.close().await.unwrap();
}

/// Registers a client over HTTP as an application does in open mode (RFC
/// 7591 `POST /register`), sending people to `callback`; public, so no
/// secret.
async fn register_itself(app: &TestApp, callback: &Callback, name: &str) -> WebClient {
    let response = app
        .http
        .post(app.url("/register"))
        .json(&serde_json::json!({
            "client_name": name,
            "redirect_uris": [callback.redirect_uri()],
            "scope": "openid",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "registered");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body.get("client_secret").is_none(), "{body}");
    WebClient {
        id: body["client_id"].as_str().expect("a client_id").to_owned(),
        secret: None,
        redirect_uri: callback.redirect_uri(),
    }
}

/// A client that registered itself (open registration): its consent page
/// says the operator did not verify it and where it will return the person,
/// above what it asks for, on a desktop and a phone; allowing still sends a
/// code the client exchanges. An operator's client shows no such notice.
/// Screenshots for docs/.
async fn dynamically_registered_client_consent_says_it_is_unverified(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let app = spawn_app_on(Arc::new(database), MasterKey::generate(), |config| {
        config.registration.mode = RegistrationMode::Open;
    })
    .await
    .expect("app starts");
    let Some(driver) = start_driver().await else {
        return;
    };
    app.user("alice").await;
    let mut callback = Callback::start().await;
    let client = register_itself(&app, &callback, "Notes MCP client").await;
    let mut last = None;
    // A public client on loopback is asked about every time (RFC 8252 §8.6),
    // so the phone, a second sign-in, sees the consent page too.
    for phone in [false, true] {
        let browser = chromium(&driver, phone).await;
        let pkce = pkce();
        let query = authorize_query(&client, &pkce, &[("scope", "openid")]);
        browser
            .goto(&app.url(&format!("/authorize?{query}")))
            .await
            .unwrap();
        fill_login(&browser, "alice", PASSWORD).await;
        submit(&browser, "button[type=submit]").await;
        browser
            .wait()
            .for_element(Locator::Css("button[value=allow]"))
            .await
            .expect("the consent page");
        if backend == Backend::Sqlite {
            let size = if phone { "phone" } else { "desktop" };
            screenshot(&browser, &format!("{size}-consent-unverified")).await;
        }
        let notice = browser.find(Locator::Css(".notice")).await.unwrap();
        assert!(notice.is_displayed().await.unwrap());
        let said = notice.text().await.unwrap();
        assert!(said.starts_with("Not verified by the operator."), "{said}");
        assert!(
            said.contains("return you to an app on this device."),
            "{said}"
        );
        let lead = browser.find(Locator::Css(".lead")).await.unwrap();
        let asks = lead.text().await.unwrap();
        assert_eq!(asks, "Notes MCP client would like to:");
        // Read before what the client asks for, not after.
        let (_, notice_top, _, notice_height) = notice.rectangle().await.unwrap();
        let (_, lead_top, _, _) = lead.rectangle().await.unwrap();
        assert!(
            notice_top + notice_height <= lead_top,
            "the notice comes first"
        );
        submit(&browser, "button[value=allow]").await;
        let back = callback.next().await;
        assert_eq!(query_param(&back, "state").as_deref(), Some("st4te"));
        assert_eq!(
            query_param(&back, "iss").as_deref(),
            Some(app.issuer.as_str())
        );
        let code = query_param(&back, "code").expect("a code");
        let token = exchange(&app, &client, &code, &pkce).await;
        assert_eq!(token["token_type"], "bearer");
        assert_eq!(token["scope"], "openid", "{token}");
        if let Some(browser) = last.replace(browser) {
            browser.close().await.unwrap();
        }
    }

    // The same person, still signed in, asked by the operator's client.
    let browser = last.expect("a browser");
    let operators = register(&app, &callback, false).await;
    let query = authorize_query(&operators, &pkce(), &[("scope", "openid")]);
    browser
        .goto(&app.url(&format!("/authorize?{query}")))
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("button[value=allow]"))
        .await
        .expect("the consent page");
    let lead = browser.find(Locator::Css(".lead")).await.unwrap();
    assert_eq!(lead.text().await.unwrap(), "Acme Billing would like to:");
    assert!(
        browser
            .find_all(Locator::Css(".notice"))
            .await
            .unwrap()
            .is_empty(),
        "no notice for the operator's client"
    );
    browser.close().await.unwrap();
}

fn urlencode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

on_both_backends!(
    confidential_and_public_clients_sign_in_through_the_pages,
    consent_page_lists_only_what_the_user_may_grant_by_api,
    deny_sends_access_denied_back,
    remembered_consent_and_prompt_none_skip_the_pages,
    logout_ends_the_session,
    pages_render_on_a_phone_and_errors_show_the_request_id,
    dynamically_registered_client_consent_says_it_is_unverified,
);
