//! One typed configuration, read from the environment (and `.env`) once at
//! start. A bad value stops start-up with one line naming the variable.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::crypto::MasterKey;
use crate::oauth::codes::{DEFAULT_CODE_TTL_SECONDS, MAX_CODE_TTL_SECONDS};
use crate::oauth::refresh::{
    DEFAULT_FAMILY_TTL_SECONDS, DEFAULT_REFRESH_TOKEN_TTL_SECONDS, MAX_REUSE_GRACE_SECONDS,
};
use crate::tokens::keyring::ALLOWED_BITS;

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Where the master key comes from.
#[derive(Clone)]
pub enum MasterKeySource {
    /// `AUTHD_MASTER_KEY`: base64 of 32 bytes.
    Inline(secrecy::SecretString),
    /// `AUTHD_MASTER_KEY_FILE`: a file holding the same; created when absent.
    File(PathBuf),
}

impl std::fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterKeySource::Inline(_) => f.write_str("Inline(..)"),
            MasterKeySource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `AUTHD_BIND`
    pub bind: SocketAddr,
    /// `AUTHD_ISSUER`; `None` means `http://` + the bound address.
    pub issuer: Option<String>,
    /// `DATABASE_URL`
    pub database_url: String,
    /// `AUTHD_DATABASE_MAX_CONNECTIONS`
    pub database_max_connections: u32,
    pub master_key: MasterKeySource,
    /// `AUTHD_MASTER_KEY_EXTRA_FILES`: comma-separated files of further
    /// master keys authd can open values with: the next key before a
    /// master-key rotation, the previous one until it has finished.
    pub extra_master_key_files: Vec<PathBuf>,
    /// `AUTHD_LOG_FORMAT`
    pub log_format: LogFormat,
    /// `AUTHD_SIGNING_KEY_BITS`
    pub signing_key_bits: usize,
    /// `AUTHD_WORKERS`: HTTP worker threads; also the signing threads.
    pub workers: usize,
    /// `AUTHD_CACHE_REFRESH_MS`: how often a replica checks for changed
    /// clients and keys.
    pub cache_refresh: Duration,
    /// `AUTHD_TEMPLATES_DIR`: page templates and assets that replace the
    /// built-in ones.
    pub templates_dir: Option<PathBuf>,
    /// `AUTHD_AUTHORIZATION_CODE_TTL`: seconds an authorization code lives.
    pub authorization_code_ttl: u64,
    /// `AUTHD_REFRESH_TOKEN_TTL`: seconds a refresh token lives.
    pub refresh_token_ttl: u64,
    /// `AUTHD_REFRESH_FAMILY_TTL`: seconds a refresh token family lives,
    /// however often it is rotated.
    pub refresh_family_ttl: u64,
    /// `AUTHD_REFRESH_REUSE_GRACE`: seconds during which a retry of the
    /// just-consumed refresh token counts as a lost response (0 = off).
    pub refresh_reuse_grace: u64,
    /// `AUTHD_KEY_ROTATION_PERIOD`: how long a signing key signs.
    pub key_rotation_period: Duration,
    /// `AUTHD_KEY_PREPUBLISH`: the least time a next key is published
    /// before it signs.
    pub key_prepublish: Duration,
    /// `AUTHD_KEY_CHECK_INTERVAL`: how often each replica runs the rotation
    /// schedule.
    pub key_check_interval: Duration,
    /// `AUTHD_METRICS_BIND`: where `/metrics` is served; `None`: not served.
    pub metrics_bind: Option<SocketAddr>,
    /// `AUTHD_ADMIN_BIND`: where the admin API (`/admin/v1`) is served;
    /// `None`: not served.
    pub admin_bind: Option<SocketAddr>,
    /// `AUTHD_SHUTDOWN_DRAIN`: after SIGTERM, how long `/readyz` says 503
    /// while authd still serves, so load balancers stop sending first.
    pub shutdown_drain: Duration,
    /// `AUTHD_SHUTDOWN_TIMEOUT`: then, how long in-flight requests may take.
    pub shutdown_timeout: Duration,
    /// `AUTHD_RATE_LIMIT_*` and `AUTHD_RATE_TIERS`.
    pub rate_limits: crate::limits::buckets::RateLimitSettings,
    /// `AUTHD_REDIS_URL` (with `AUTHD_REDIS_PREFIX`, `AUTHD_REDIS_TIMEOUT_MS`):
    /// rate limits and the login throttle shared by every replica; `None`:
    /// counted in this process.
    pub redis: Option<crate::limits::shared::RedisSettings>,
    /// `AUTHD_TRUSTED_PROXIES`: addresses or CIDR ranges whose client-IP
    /// header is believed (none by default).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `AUTHD_CLIENT_IP_HEADER`: the one header the proxy writes.
    pub client_ip_header: crate::limits::client_ip::ClientIpHeader,
    /// `AUTHD_IPV6_PREFIX`: IPv6 clients are limited per prefix of this length.
    pub ipv6_prefix: u8,
    /// `AUTHD_PASSWORD_CHECKS` and `AUTHD_PASSWORD_CHECK_WAIT`: how many
    /// argon2id checks run at once, and how long a login waits for one.
    pub password_checks: crate::signin::password::PasswordChecks,
    /// `AUTHD_REGISTRATION`, `AUTHD_REGISTRATION_SCOPES` and
    /// `AUTHD_REGISTRATION_UNUSED_TTL`: dynamic client registration.
    pub registration: crate::clients::dynamic::RegistrationSettings,
}

impl Config {
    /// How the client IP is found (see `limits::client_ip::client_ip`).
    pub fn client_ip(&self) -> crate::limits::client_ip::ClientIpSettings {
        crate::limits::client_ip::ClientIpSettings {
            trusted_proxies: self.trusted_proxies.clone(),
            header: self.client_ip_header,
            ipv6_prefix: self.ipv6_prefix,
        }
    }

    /// The signing-key schedule these settings describe.
    pub fn key_schedule(&self) -> crate::store::KeySchedule {
        let to_chrono =
            |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        crate::store::KeySchedule {
            rotation_period: to_chrono(self.key_rotation_period),
            prepublish: to_chrono(self.key_prepublish),
            retention: crate::tokens::keyring::retention(),
        }
    }
}

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/authd.db";
pub const DEFAULT_MASTER_KEY_FILE: &str = "keys/master.key";

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let bind_text = get("AUTHD_BIND").unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind: SocketAddr = bind_text.trim().parse().map_err(|_| {
            ConfigError::new(
                "AUTHD_BIND",
                format!("expected IP:PORT such as {DEFAULT_BIND}, got {bind_text:?}"),
            )
        })?;
        let issuer = get("AUTHD_ISSUER").map(|v| parse_issuer(&v)).transpose()?;
        let master_key = match (get("AUTHD_MASTER_KEY"), get("AUTHD_MASTER_KEY_FILE")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "AUTHD_MASTER_KEY",
                    "set either AUTHD_MASTER_KEY or AUTHD_MASTER_KEY_FILE, not both",
                ));
            }
            (Some(inline), None) => MasterKeySource::Inline(inline.into()),
            (None, file) => MasterKeySource::File(
                file.unwrap_or_else(|| DEFAULT_MASTER_KEY_FILE.to_owned())
                    .into(),
            ),
        };
        let extra_master_key_files = get("AUTHD_MASTER_KEY_EXTRA_FILES")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        let log_format = match get("AUTHD_LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "AUTHD_LOG_FORMAT",
                    format!("expected json or pretty, got {other:?}"),
                ));
            }
        };
        let signing_key_bits = number(&get, "AUTHD_SIGNING_KEY_BITS", 2048)?;
        if !ALLOWED_BITS.contains(&signing_key_bits) {
            return Err(ConfigError::new(
                "AUTHD_SIGNING_KEY_BITS",
                format!("expected 2048, 3072 or 4096, got {signing_key_bits}"),
            ));
        }
        let authorization_code_ttl = positive(
            &get,
            "AUTHD_AUTHORIZATION_CODE_TTL",
            DEFAULT_CODE_TTL_SECONDS,
        )?;
        if authorization_code_ttl > MAX_CODE_TTL_SECONDS {
            return Err(ConfigError::new(
                "AUTHD_AUTHORIZATION_CODE_TTL",
                format!(
                    "at most {MAX_CODE_TTL_SECONDS} seconds (RFC 6749 §4.1.2), got {authorization_code_ttl}"
                ),
            ));
        }
        let refresh_token_ttl = positive(
            &get,
            "AUTHD_REFRESH_TOKEN_TTL",
            DEFAULT_REFRESH_TOKEN_TTL_SECONDS,
        )?;
        let refresh_family_ttl =
            positive(&get, "AUTHD_REFRESH_FAMILY_TTL", DEFAULT_FAMILY_TTL_SECONDS)?;
        if refresh_family_ttl < refresh_token_ttl {
            return Err(ConfigError::new(
                "AUTHD_REFRESH_FAMILY_TTL",
                format!("must be at least AUTHD_REFRESH_TOKEN_TTL ({refresh_token_ttl} s)"),
            ));
        }
        let refresh_reuse_grace: u64 = number(&get, "AUTHD_REFRESH_REUSE_GRACE", 0)?;
        if refresh_reuse_grace > MAX_REUSE_GRACE_SECONDS {
            return Err(ConfigError::new(
                "AUTHD_REFRESH_REUSE_GRACE",
                format!("at most {MAX_REUSE_GRACE_SECONDS} seconds, got {refresh_reuse_grace}"),
            ));
        }
        let key_rotation_period = duration(&get, "AUTHD_KEY_ROTATION_PERIOD", "30days")?;
        let key_prepublish = duration(&get, "AUTHD_KEY_PREPUBLISH", "24h")?;
        if key_prepublish >= key_rotation_period {
            return Err(ConfigError::new(
                "AUTHD_KEY_PREPUBLISH",
                "must be shorter than AUTHD_KEY_ROTATION_PERIOD",
            ));
        }
        Ok(Self {
            bind,
            issuer,
            database_url: get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            database_max_connections: positive(&get, "AUTHD_DATABASE_MAX_CONNECTIONS", 10)?,
            master_key,
            extra_master_key_files,
            log_format,
            signing_key_bits,
            workers: positive(&get, "AUTHD_WORKERS", cores())?,
            cache_refresh: Duration::from_millis(positive(&get, "AUTHD_CACHE_REFRESH_MS", 1000)?),
            templates_dir: get("AUTHD_TEMPLATES_DIR").map(|dir| PathBuf::from(dir.trim())),
            authorization_code_ttl,
            refresh_token_ttl,
            refresh_family_ttl,
            refresh_reuse_grace,
            key_rotation_period,
            key_prepublish,
            key_check_interval: duration(&get, "AUTHD_KEY_CHECK_INTERVAL", "60s")?,
            metrics_bind: get("AUTHD_METRICS_BIND")
                .map(|text| {
                    text.trim().parse().map_err(|_| {
                        ConfigError::new(
                            "AUTHD_METRICS_BIND",
                            format!("expected IP:PORT such as 127.0.0.1:9464, got {text:?}"),
                        )
                    })
                })
                .transpose()?,
            admin_bind: get("AUTHD_ADMIN_BIND")
                .map(|text| {
                    text.trim().parse().map_err(|_| {
                        ConfigError::new(
                            "AUTHD_ADMIN_BIND",
                            format!("expected IP:PORT such as 127.0.0.1:9470, got {text:?}"),
                        )
                    })
                })
                .transpose()?,
            shutdown_drain: match get("AUTHD_SHUTDOWN_DRAIN").as_deref().map(str::trim) {
                Some("0") | Some("0s") => Duration::ZERO,
                _ => duration(&get, "AUTHD_SHUTDOWN_DRAIN", "5s")?,
            },
            shutdown_timeout: duration(&get, "AUTHD_SHUTDOWN_TIMEOUT", "30s")?,
            rate_limits: rate_limits(&get)?,
            redis: match get("AUTHD_REDIS_URL").map(|url| url.trim().to_owned()) {
                None => None,
                Some(url) if url.is_empty() => None,
                Some(url) => Some(
                    crate::limits::shared::RedisSettings::parse_with_leases(
                        &url,
                        get("AUTHD_REDIS_PREFIX").as_deref(),
                        get("AUTHD_REDIS_TIMEOUT_MS").as_deref(),
                        get("AUTHD_REDIS_LEASES").as_deref(),
                    )
                    .map_err(|(variable, problem)| ConfigError::new(variable, problem))?,
                ),
            },
            trusted_proxies: trusted_proxies(&get)?,
            client_ip_header: match get("AUTHD_CLIENT_IP_HEADER") {
                None => Default::default(),
                Some(text) => text
                    .parse()
                    .map_err(|problem| ConfigError::new("AUTHD_CLIENT_IP_HEADER", problem))?,
            },
            ipv6_prefix: {
                use crate::limits::client_ip::{DEFAULT_IPV6_PREFIX, IPV6_PREFIXES};
                let prefix = number(&get, "AUTHD_IPV6_PREFIX", DEFAULT_IPV6_PREFIX)?;
                if !IPV6_PREFIXES.contains(&prefix) {
                    return Err(ConfigError::new(
                        "AUTHD_IPV6_PREFIX",
                        format!(
                            "expected a prefix length from {} to {}, got {prefix}",
                            IPV6_PREFIXES.start(),
                            IPV6_PREFIXES.end()
                        ),
                    ));
                }
                prefix
            },
            password_checks: crate::signin::password::PasswordChecks {
                concurrent: positive(&get, "AUTHD_PASSWORD_CHECKS", cores())?,
                wait: duration(&get, "AUTHD_PASSWORD_CHECK_WAIT", "2s")?,
            },
            registration: registration(&get)?,
        })
    }
}

fn registration(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<crate::clients::dynamic::RegistrationSettings, ConfigError> {
    let defaults = crate::clients::dynamic::RegistrationSettings::default();
    let mode = match get("AUTHD_REGISTRATION") {
        None => defaults.mode,
        Some(text) => text.trim().parse().map_err(|()| {
            ConfigError::new(
                "AUTHD_REGISTRATION",
                format!("expected off, token or open, got {text:?}"),
            )
        })?,
    };
    let scopes = match get("AUTHD_REGISTRATION_SCOPES") {
        None => defaults.scopes,
        Some(text) => {
            let scopes: Vec<String> = text.split_ascii_whitespace().map(str::to_owned).collect();
            let valid = crate::domain::Scope::from_tokens(&scopes).is_ok()
                && !scopes.iter().any(|s| crate::domain::api::is_admin_scope(s));
            if !valid {
                return Err(ConfigError::new(
                    "AUTHD_REGISTRATION_SCOPES",
                    format!(
                        "expected space-separated scopes (never the admin API's), got {text:?}"
                    ),
                ));
            }
            scopes
        }
    };
    // At least an hour: a client is removed while a person may still be
    // signing in with it otherwise.
    let unused_ttl = duration(get, "AUTHD_REGISTRATION_UNUSED_TTL", "24h")?;
    if unused_ttl < std::time::Duration::from_secs(3600) {
        return Err(ConfigError::new(
            "AUTHD_REGISTRATION_UNUSED_TTL",
            "must be at least 1h: clients are removed while people may be signing in with them otherwise",
        ));
    }
    Ok(crate::clients::dynamic::RegistrationSettings {
        mode,
        scopes,
        unused_ttl,
    })
}

fn number<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(variable) {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| {
            ConfigError::new(variable, format!("expected a whole number, got {text:?}"))
        }),
    }
}

fn rate_limits(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<crate::limits::buckets::RateLimitSettings, ConfigError> {
    use crate::limits::buckets::{Rate, RateLimitSettings};
    let mut settings = RateLimitSettings::default();
    let rate = |variable: &'static str, default: Rate| match get(variable) {
        None => Ok(default),
        Some(text) => text
            .parse::<Rate>()
            .map_err(|problem| ConfigError::new(variable, problem)),
    };
    settings.ip = rate("AUTHD_RATE_LIMIT_IP", settings.ip)?;
    settings.well_known = rate("AUTHD_RATE_LIMIT_WELL_KNOWN", settings.well_known)?;
    settings.login = rate("AUTHD_RATE_LIMIT_LOGIN", settings.login)?;
    settings.introspect = rate("AUTHD_RATE_LIMIT_INTROSPECT", settings.introspect)?;
    settings.register = rate("AUTHD_RATE_LIMIT_REGISTER", settings.register)?;
    settings.client_auth_failures = rate(
        "AUTHD_RATE_LIMIT_CLIENT_AUTH_FAILURES",
        settings.client_auth_failures,
    )?;
    if let Some(text) = get("AUTHD_RATE_TIERS") {
        settings.tiers = RateLimitSettings::parse_tiers(&text)
            .map_err(|problem| ConfigError::new("AUTHD_RATE_TIERS", problem))?;
    }
    Ok(settings)
}

fn trusted_proxies(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let Some(text) = get("AUTHD_TRUSTED_PROXIES") else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(unmapped)
                .map_err(|_| {
                    ConfigError::new(
                        "AUTHD_TRUSTED_PROXIES",
                        format!("expected IP addresses or CIDR ranges, got {entry:?}"),
                    )
                })
        })
        .collect()
}

/// An IPv4-mapped range (`::ffff:10.0.0.0/104`) as the IPv4 range it maps:
/// the client-IP function compares unmapped addresses.
fn unmapped(net: ipnet::IpNet) -> ipnet::IpNet {
    match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(ipnet::IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

/// A duration such as `30days`, `24h`, `90s` (humantime), greater than zero.
fn duration(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = get(variable).unwrap_or_else(|| default.to_owned());
    match humantime::parse_duration(text.trim()) {
        Ok(value) if !value.is_zero() => Ok(value),
        _ => Err(ConfigError::new(
            variable,
            format!("expected a duration such as 30days, 24h or 90s, got {text:?}"),
        )),
    }
}

fn positive<T>(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default,
{
    let value = number(get, variable, default)?;
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError::new(variable, "must be greater than zero"))
    }
}

/// RFC 8414 §2: the issuer is an https (here also http, for development)
/// URL with no query or fragment (and here no path). It is kept byte for byte.
fn parse_issuer(value: &str) -> Result<String, ConfigError> {
    let invalid = |why: &str| {
        ConfigError::new(
            "AUTHD_ISSUER",
            format!(
                "must be an absolute http(s) URL without query or fragment ({why}), got {value:?}"
            ),
        )
    };
    if value.contains('?') {
        return Err(invalid("has a query"));
    }
    if value.contains('#') {
        return Err(invalid("has a fragment"));
    }
    let url = url::Url::parse(value).map_err(|_| invalid("not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("scheme must be http or https"));
    }
    // authd serves its endpoints, pages and assets at the root of its
    // origin; an issuer with a path would advertise URLs nobody answers.
    if url.path() != "/" {
        return Err(invalid(
            "has a path; authd serves its endpoints at the root of its origin, so give it its own host name",
        ));
    }
    Ok(value.to_owned())
}

impl MasterKeySource {
    /// Loads the master key. A missing key file is created (mode 0600) with a
    /// fresh key, and a warning says it is a development key.
    pub fn load(&self) -> Result<MasterKey, ConfigError> {
        match self {
            MasterKeySource::Inline(text) => {
                use secrecy::ExposeSecret;
                MasterKey::from_base64(text.expose_secret())
                    .map_err(|e| ConfigError::new("AUTHD_MASTER_KEY", e.to_string()))
            }
            MasterKeySource::File(path) => load_or_create_key_file(path),
        }
    }
}

/// Reads one of `AUTHD_MASTER_KEY_EXTRA_FILES` or a `--new-key-file`: it
/// must exist (never created here).
pub fn read_master_key_file(variable: &'static str, path: &Path) -> Result<MasterKey, ConfigError> {
    match read_key_file(path) {
        Ok(key) => {
            key.map_err(|e| ConfigError::new(variable, format!("{}: content {e}", path.display())))
        }
        Err(e) => Err(ConfigError::new(
            variable,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// Writes a new key to `path` (mode 0600); refuses to replace a file.
pub fn create_master_key_file(path: &Path) -> Result<MasterKey, ConfigError> {
    let key = MasterKey::generate();
    write_new_key_file(path, &key)
        .map_err(|e| ConfigError::new("--out", format!("cannot create {}: {e}", path.display())))?;
    Ok(key)
}

impl Config {
    /// The configured key first, then the extra ones.
    pub fn load_master_keys(&self) -> Result<Vec<MasterKey>, ConfigError> {
        let mut keys = vec![self.master_key.load()?];
        for path in &self.extra_master_key_files {
            keys.push(read_master_key_file("AUTHD_MASTER_KEY_EXTRA_FILES", path)?);
        }
        Ok(keys)
    }
}

fn load_or_create_key_file(path: &Path) -> Result<MasterKey, ConfigError> {
    let fail = |what: String| ConfigError::new("AUTHD_MASTER_KEY_FILE", what);
    match read_key_file(path) {
        Ok(key) => return key.map_err(|e| fail(format!("{}: content {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(format!("cannot read {}: {e}", path.display()))),
    }
    let key = MasterKey::generate();
    match write_new_key_file(path, &key) {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                "created a new master key: fine for development; in production set \
                 AUTHD_MASTER_KEY or AUTHD_MASTER_KEY_FILE and back the key up"
            );
            Ok(key)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?
            .map_err(|e| fail(format!("{}: content {e}", path.display()))),
        Err(e) => Err(fail(format!("cannot create {}: {e}", path.display()))),
    }
}

/// Reads a key file, warning when others than its owner may read it.
fn read_key_file(path: &Path) -> std::io::Result<Result<MasterKey, crate::crypto::MasterKeyError>> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path)?;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the master key file is readable by others than its owner; chmod 600 it"
        );
    }
    Ok(MasterKey::from_base64(&text))
}

/// Writes the key to a private temporary file, syncs it, then links it into
/// place: the key file appears complete or not at all, and of two processes
/// creating it at once exactly one wins (`AlreadyExists` for the other).
fn write_new_key_file(path: &Path, key: &MasterKey) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let temporary = dir.join(format!(".master.key.{}", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        writeln!(file, "{}", key.to_base64())?;
        file.sync_all()?;
        std::fs::hard_link(&temporary, path)
    })();
    let _ = std::fs::remove_file(&temporary);
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let config = config(&[]).unwrap();
        assert_eq!(config.bind.to_string(), DEFAULT_BIND);
        assert_eq!(config.issuer, None);
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.signing_key_bits, 2048);
        let schedule = config.key_schedule();
        assert_eq!(schedule.rotation_period, chrono::Duration::days(30));
        assert_eq!(schedule.prepublish, chrono::Duration::hours(24));
        assert_eq!(schedule.retention, chrono::Duration::seconds(3_660));
        assert!(
            matches!(config.master_key, MasterKeySource::File(ref p) if p == Path::new(DEFAULT_MASTER_KEY_FILE))
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let cases = [
            ("AUTHD_BIND", "nonsense"),
            ("AUTHD_ISSUER", "https://id.example.com/?x=1"),
            ("AUTHD_ISSUER", "https://id.example.com/#f"),
            ("AUTHD_ISSUER", "id.example.com"),
            ("AUTHD_ISSUER", "ftp://id.example.com"),
            ("AUTHD_ISSUER", "https://id.example.com/tenant"),
            ("AUTHD_LOG_FORMAT", "xml"),
            ("AUTHD_SIGNING_KEY_BITS", "1024"),
            ("AUTHD_WORKERS", "0"),
            ("AUTHD_AUTHORIZATION_CODE_TTL", "601"),
            ("AUTHD_AUTHORIZATION_CODE_TTL", "0"),
            ("AUTHD_REFRESH_REUSE_GRACE", "61"),
            ("AUTHD_REFRESH_TOKEN_TTL", "0"),
            ("AUTHD_REFRESH_FAMILY_TTL", "60"),
            ("AUTHD_KEY_ROTATION_PERIOD", "soon"),
            ("AUTHD_KEY_ROTATION_PERIOD", "0s"),
            ("AUTHD_KEY_PREPUBLISH", "31days"),
            ("AUTHD_KEY_CHECK_INTERVAL", "-1"),
            ("AUTHD_CLIENT_IP_HEADER", "x-client-ip"),
            ("AUTHD_IPV6_PREFIX", "16"),
            ("AUTHD_IPV6_PREFIX", "129"),
            ("AUTHD_IPV6_PREFIX", "/64"),
            ("AUTHD_PASSWORD_CHECKS", "0"),
            ("AUTHD_PASSWORD_CHECK_WAIT", "forever"),
            ("AUTHD_REGISTRATION", "maybe"),
            ("AUTHD_REGISTRATION_SCOPES", "openid admin:keys:read"),
            ("AUTHD_REGISTRATION_SCOPES", "openid \"quoted\""),
            ("AUTHD_REGISTRATION_UNUSED_TTL", "10min"),
            ("AUTHD_RATE_LIMIT_REGISTER", "often"),
        ];
        for (variable, value) in cases {
            let error = config(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{value}");
            assert!(error.to_string().starts_with(&format!("{variable}: ")));
        }
    }

    #[test]
    fn ipv4_mapped_trusted_proxies_are_ipv4() {
        let config = config(&[(
            "AUTHD_TRUSTED_PROXIES",
            "::ffff:10.0.0.0/104, ::ffff:192.0.2.7, 2001:db8::/32",
        )])
        .unwrap();
        let nets: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
    }

    #[test]
    fn issuer_is_kept_byte_for_byte() {
        let config = config(&[("AUTHD_ISSUER", "https://ID.example.com:8443")]).unwrap();
        assert_eq!(
            config.issuer.as_deref(),
            Some("https://ID.example.com:8443")
        );
    }

    #[test]
    fn key_file_is_created_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let source = MasterKeySource::File(path.clone());
        let first = source.load().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(source.load().unwrap().fingerprint(), first.fingerprint());
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["master.key"], "no temporary file is left");
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let fingerprints: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let path = path.clone();
                    scope.spawn(move || MasterKeySource::File(path).load().unwrap().fingerprint())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(fingerprints.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn bad_inline_key_is_refused_without_echoing_it() {
        let error = MasterKeySource::Inline("c2VjcmV0".to_owned().into())
            .load()
            .unwrap_err();
        assert_eq!(error.variable, "AUTHD_MASTER_KEY");
        assert!(!error.to_string().contains("c2VjcmV0"));
    }
}
