//! Configuration: YAML file, then `MSNGATE__SECTION__KEY` environment
//! overrides, then validation. Every refusal names the key's path.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub msn: MsnConfig,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    /// The Matrix bridge; absent means off.
    pub matrix: Option<MatrixConfig>,
    pub irc: IrcConfig,
    pub signin_limits: SigninLimitsConfig,
    /// Where msngate keeps files it makes itself: `tls/` (the local CA and
    /// the server certificate of `msngate tls init`). Relative paths are
    /// from the working directory, like the default SQLite path.
    pub data_dir: PathBuf,
}

/// `signin_limits`: growing delays after wrong passwords (MD5 and
/// Passport), per account and per source address. Only failures count; a
/// correct password resets its account's count.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigninLimitsConfig {
    /// Wrong passwords for one account before its attempts are delayed.
    pub account_free_failures: u32,
    /// Wrong passwords from one address before its attempts are delayed
    /// (higher: many users may share an address behind NAT).
    pub source_free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub first_delay_ms: u64,
    /// The longest delay.
    pub max_delay_secs: u64,
    /// A count is forgotten after this long without a failure.
    pub forget_after_secs: u64,
    /// Wrong passwords on one notification-server connection before it is closed.
    pub failures_per_connection: u32,
    /// Most accounts and addresses tracked at once (the oldest are dropped).
    pub max_tracked: usize,
}

impl Default for SigninLimitsConfig {
    fn default() -> Self {
        SigninLimitsConfig {
            account_free_failures: 5,
            source_free_failures: 20,
            first_delay_ms: 500,
            max_delay_secs: 30,
            forget_after_secs: 900,
            failures_per_connection: 3,
            max_tracked: 100_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// Client-server API base URL of the homeserver, e.g. `http://127.0.0.1:8008`.
    pub homeserver_url: String,
    /// The homeserver's name: the part after `:` in its user IDs.
    pub server_name: String,
    /// Where `msngate matrix registration` writes the appservice registration
    /// (and where the bridge reads its tokens from).
    pub registration: PathBuf,
    /// The appservice API listener the homeserver calls.
    #[serde(default = "MatrixConfig::default_listen")]
    pub listen: SocketAddr,
    /// URL the homeserver uses to reach `listen`; default `http://<listen>`.
    #[serde(default)]
    pub appservice_url: Option<String>,
    /// Localpart of each MSN user's ghost; `{handle}` is the MSN handle with
    /// `@` written `=40`, e.g. `_msn_alice=40example.com`.
    #[serde(default = "MatrixConfig::default_ghost_template")]
    pub ghost_localpart_template: String,
    /// Localpart of the bridge's own bot user.
    #[serde(default = "MatrixConfig::default_bot")]
    pub bot_localpart: String,
    /// What the appservice listener accepts from a connection.
    #[serde(default)]
    pub appservice_limits: AppserviceLimitsConfig,
}

/// `matrix.appservice_limits`: bounds on what the homeserver (or anyone
/// reaching the appservice port) may make the listener hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppserviceLimitsConfig {
    /// Largest transaction body accepted (413 above). Synapse sends at most
    /// 100 events and 100 ephemeral events per transaction, well under the
    /// 8 MiB default even with large state events.
    pub max_body_bytes: usize,
    /// Seconds a connection may take to send a request's headers, and to
    /// send its first request at all.
    pub header_timeout_secs: u64,
}

impl Default for AppserviceLimitsConfig {
    fn default() -> Self {
        AppserviceLimitsConfig {
            max_body_bytes: 8 * 1024 * 1024,
            header_timeout_secs: 30,
        }
    }
}

impl MatrixConfig {
    fn default_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 29320))
    }
    fn default_ghost_template() -> String {
        "_msn_{handle}".into()
    }
    fn default_bot() -> String {
        "_msn_bot".into()
    }
    pub fn appservice_url(&self) -> String {
        self.appservice_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IrcConfig {
    pub networks: Vec<IrcNetworkConfig>,
    /// Seconds between presence polls of watched nicks (ISON/USERHOST).
    pub presence_interval_secs: u64,
    /// Lines a connection may send at once before pacing starts.
    pub send_burst: u32,
    /// Milliseconds between paced lines (flood protection).
    pub send_interval_ms: u64,
    /// IRC registrations in progress at once, over all users and networks.
    pub max_concurrent_connects: usize,
    /// How long lines to a nick that is not on IRC wait for it to return
    /// before the MSN sender is told they were not delivered.
    pub hold_absent_secs: u64,
}

impl Default for IrcConfig {
    fn default() -> Self {
        IrcConfig {
            networks: Vec::new(),
            presence_interval_secs: 30,
            send_burst: 5,
            send_interval_ms: 2000,
            max_concurrent_connects: 4,
            hold_absent_secs: 3 * 24 * 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcNetworkConfig {
    /// Short name; IRC users appear to MSN as `nick@<name>.irc`.
    pub name: String,
    pub server: String,
    #[serde(default = "IrcNetworkConfig::default_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: bool,
    /// PEM file of certificates to trust besides the public roots (a
    /// private CA, or the server's self-signed certificate).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Nick of each MSN user's IRC connection; `{local}` is the part of the
    /// MSN handle before `@`.
    #[serde(default = "IrcNetworkConfig::default_nick_template")]
    pub nick_template: String,
    /// Channels offered to MSN users as contact-like entries.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Keep a user's IRC connection while they are signed out of MSN.
    #[serde(default)]
    pub stay_connected: bool,
}

impl IrcNetworkConfig {
    fn default_port() -> u16 {
        6667
    }
    fn default_nick_template() -> String {
        "{local}|msn".into()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MsnConfig {
    /// Dispatch + notification listener.
    pub listen: SocketAddr,
    /// Switchboard listener.
    pub switchboard_listen: SocketAddr,
    /// Host (name or address) that XFR and RNG advertise.
    pub public_host: String,
    /// `host:port` of the switchboard as clients must dial it; defaults to
    /// `public_host` with the port of `switchboard_listen`.
    pub switchboard_public: Option<String>,
    /// Whether the dispatch role answers `USR … I` with `XFR NS` and closes,
    /// as the original dispatch servers did. Off: the same connection carries on.
    pub dispatch_redirect: bool,
    /// Separate notification listener, required when `dispatch_redirect` is on
    /// (the dispatch role on `listen` then only redirects here).
    pub notification_listen: Option<SocketAddr>,
    /// `host:port` that `XFR NS` names; defaults to `public_host` with the
    /// port of `notification_listen` (or `listen`).
    pub notification_public: Option<String>,
    /// Most client connections open at once over every MSN listener; past it
    /// new clients wait in the kernel's accept backlog until one closes.
    /// Keep it below the process's open-file limit (`ulimit -n`).
    pub max_connections: usize,
    /// Seconds a connection may take to sign in before it is closed.
    pub login_timeout_secs: u64,
    /// Seconds of client silence (no PNG, no command) after which a signed-in
    /// notification session is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a switchboard connection may stay without USR/ANS.
    pub switchboard_auth_timeout_secs: u64,
    /// Seconds of no messages after which a switchboard participant is removed.
    pub switchboard_idle_timeout_secs: u64,
    /// Seconds an XFR SB / RNG cookie stays valid.
    pub cookie_lifetime_secs: u64,
    /// Send CHL challenges (MSNP6+) after sign-in and check the QRY answers.
    pub challenges: bool,
    /// Seconds a client has to answer a CHL.
    pub challenge_timeout_secs: u64,
    /// Largest switchboard MSG payload accepted (official clients never exceed 1664).
    pub max_message_bytes: usize,
    /// Most list/property/status changes per session within `rate_window_secs`
    /// before the server answers 800 instead of acting.
    pub rate_limit_changes: u32,
    pub rate_window_secs: u64,
    /// Most entries on a forward list.
    pub max_contacts: usize,
    /// Most participants in one switchboard session.
    pub max_participants: usize,
    /// Events queued for one client that is not reading before its connection
    /// is closed (and the sender told, where there is one).
    pub max_queued_events: usize,
    /// Bytes queued for one client connection (notification or switchboard)
    /// and not yet written to its socket, before it is closed as not
    /// reading (switchboard senders get `NAK` for what it did not get).
    pub max_queued_bytes: usize,
    /// Seconds a client connection may accept no byte of pending output
    /// before it is closed as not reading.
    pub write_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Passport (nexus, login, RST) and operations listener.
    pub listen: SocketAddr,
    /// Base URL the nexus advertises as `DALogin` (scheme, host and optional port).
    pub public_url: String,
    /// HTTPS on `listen`; absent means plain HTTP there.
    pub tls: Option<TlsConfig>,
    /// A second, plain-HTTP listener with the same routes as `listen`, for
    /// patched clients, for hosts clients dial with `http://` (the WLM
    /// configuration host) and for a TLS-terminating front end, while
    /// `listen` serves HTTPS.
    pub plain_listen: Option<SocketAddr>,
}

/// `http.tls`: the operator's certificate and key, or neither (`tls: {}`):
/// then msngate serves the ones `msngate tls init` makes in `data_dir`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: the chain, server certificate first.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// PEM (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    /// Also accept TLS 1.0/1.1 with Windows XP's suites (RSA key exchange,
    /// 3DES, RC4) from clients that offer nothing newer; needs an RSA key.
    #[serde(default = "default_legacy_clients")]
    pub legacy_clients: bool,
}

fn default_legacy_clients() -> bool {
    true
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificate: None,
            private_key: None,
            legacy_clients: default_legacy_clients(),
        }
    }
}

impl TlsConfig {
    /// Neither file named: msngate's own certificate is served.
    pub fn uses_generated(&self) -> bool {
        self.certificate.is_none() && self.private_key.is_none()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            msn: MsnConfig::default(),
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            matrix: None,
            irc: IrcConfig::default(),
            signin_limits: SigninLimitsConfig::default(),
            data_dir: PathBuf::from("data"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://user:pass@host/db`.
    pub url: String,
    pub max_connections: u32,
    /// How SQLite keeps its journal (ignored on PostgreSQL).
    pub sqlite_journal: SqliteJournal,
}

/// SQLite's journal: see `docs/database.md` for what each costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SqliteJournal {
    /// A rollback journal (`-journal`): nothing is memory-mapped, so every
    /// storage fault is an error msngate can answer and log.
    #[default]
    Rollback,
    /// Write-ahead log: readers never wait for a commit, but a `-shm` file
    /// truncated under the running server kills it with SIGBUS.
    Wal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Keep an MD5 password-equivalent so MSN 1.0–4.7 (MSNP2–7) can sign in.
    pub legacy_md5_login: bool,
    /// Seconds a Passport ticket stays valid.
    pub ticket_lifetime_secs: u64,
    /// argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id passes.
    pub argon2_iterations: u32,
    /// Most password hashes computed at once; the rest wait their turn.
    pub max_concurrent_hashes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// tracing filter, e.g. `info` or `msngate=debug`.
    pub level: String,
    /// `text` (colour only when standard error is a terminal) or `json`
    /// (one object a line, for log shippers).
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for MsnConfig {
    fn default() -> Self {
        MsnConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 1863)),
            switchboard_listen: SocketAddr::from(([0, 0, 0, 0], 1864)),
            public_host: "127.0.0.1".into(),
            switchboard_public: None,
            dispatch_redirect: false,
            notification_listen: None,
            notification_public: None,
            max_connections: 10_000,
            login_timeout_secs: 60,
            idle_timeout_secs: 180,
            switchboard_auth_timeout_secs: 60,
            switchboard_idle_timeout_secs: 900,
            cookie_lifetime_secs: 120,
            challenges: true,
            challenge_timeout_secs: 60,
            max_message_bytes: msnp::codec::MAX_SWITCHBOARD_PAYLOAD,
            rate_limit_changes: 60,
            rate_window_secs: 10,
            max_contacts: 1000,
            max_participants: 20,
            max_queued_events: 50_000,
            max_queued_bytes: 256 * 1024,
            write_timeout_secs: 60,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            tls: None,
            plain_listen: None,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://data/msngate.db".into(),
            max_connections: 8,
            sqlite_journal: SqliteJournal::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            legacy_md5_login: true,
            ticket_lifetime_secs: 300,
            // 16 MiB, 2 passes: above OWASP's 19 MiB/2 minimum in time-memory
            // product terms is not the aim; bounded memory under a storm is.
            // With max_concurrent_hashes = 2 a storm costs at most 32 MiB.
            argon2_memory_kib: 16 * 1024,
            argon2_iterations: 2,
            max_concurrent_hashes: 2,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// A configuration refused at start, with the path of the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: invalid YAML: {message}")]
    Yaml { path: String, message: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

const ENV_PREFIX: &str = "MSNGATE__";

impl Config {
    /// Loads `file` (or the built-in defaults when `None`), applies the
    /// environment overrides from `env` and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                let value: yaml_serde::Value =
                    yaml_serde::from_str(&text).map_err(|e| ConfigError::Yaml {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })?;
                if value.is_null() {
                    yaml_serde::Value::Mapping(Default::default())
                } else {
                    value
                }
            }
            None => yaml_serde::Value::Mapping(Default::default()),
        };
        let mut overrides = EnvOverrides::default();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            set_path(&mut tree, &path, &value).map_err(|reason| ConfigError::Invalid {
                key: name.clone(),
                reason,
            })?;
            overrides.0.push((path.join("."), name));
        }
        let config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." {
                "(top level)".to_string()
            } else {
                key
            };
            ConfigError::Invalid {
                key: overrides.name(key),
                reason: e.into_inner().to_string(),
            }
        })?;
        config.validate().map_err(|e| match e {
            ConfigError::Invalid { key, reason } => ConfigError::Invalid {
                key: overrides.name(key),
                reason,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// A warning for `serve` when clients on other machines can sign in but
    /// not chat: the listeners accept them, yet XFR SB and RNG send them to a
    /// loopback switchboard address, which on their side is themselves.
    pub fn public_host_warning(&self) -> Option<String> {
        let switchboard = self.switchboard_address();
        let host = switchboard.rsplit_once(':').map_or("", |(host, _)| host);
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let reachable = [self.msn.listen, self.msn.switchboard_listen]
            .into_iter()
            .find(|a| !a.ip().is_loopback())?;
        loopback.then(|| {
            format!(
                "msn.public_host is {} while the MSN listeners accept other machines ({reachable}): \
                 remote clients will sign in but fail to open chats, because the switchboard \
                 address they are sent is {switchboard}. Set msn.public_host \
                 (MSNGATE__MSN__PUBLIC_HOST) to a name or address those clients can reach.",
                self.msn.public_host
            )
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                reason: reason.into(),
            })
        };
        if is_unspecified_address(&self.msn.public_host) {
            return invalid(
                "msn.public_host",
                "is the any-address, which clients cannot dial: give this server's name or \
                 an address clients reach it at",
            );
        }
        if self.msn.public_host.is_empty() || self.msn.public_host.contains([' ', ':', '/']) {
            return invalid(
                "msn.public_host",
                "must be a bare host name or IPv4 address",
            );
        }
        for (key, value) in [
            ("msn.switchboard_public", &self.msn.switchboard_public),
            ("msn.notification_public", &self.msn.notification_public),
        ] {
            if let Some(v) = value {
                if !is_host_port(v) {
                    return invalid(key, "must be host:port");
                }
                if v.rsplit_once(':')
                    .is_some_and(|(host, _)| is_unspecified_address(host))
                {
                    return invalid(key, "names the any-address, which clients cannot dial");
                }
            }
        }
        if self.msn.dispatch_redirect && self.msn.notification_listen.is_none() {
            return invalid(
                "msn.notification_listen",
                "required when msn.dispatch_redirect is true",
            );
        }
        if !(self.http.public_url.starts_with("http://")
            || self.http.public_url.starts_with("https://"))
        {
            return invalid("http.public_url", "must start with http:// or https://");
        }
        if let Some(tls) = &self.http.tls {
            match (&tls.certificate, &tls.private_key) {
                (Some(_), None) => {
                    return invalid(
                        "http.tls.private_key",
                        "required with http.tls.certificate (or leave both out to serve \
                         the certificate of `msngate tls init`)",
                    );
                }
                (None, Some(_)) => {
                    return invalid(
                        "http.tls.certificate",
                        "required with http.tls.private_key (or leave both out to serve \
                         the certificate of `msngate tls init`)",
                    );
                }
                _ => {}
            }
        }
        if self.http.plain_listen == Some(self.http.listen) {
            return invalid("http.plain_listen", "must differ from http.listen");
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if !(self.database.url.starts_with("sqlite:")
            || self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            return invalid("database.url", "must be sqlite://… or postgres://…");
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if self.auth.max_concurrent_hashes == 0 {
            return invalid("auth.max_concurrent_hashes", "must be at least 1");
        }
        if self.auth.argon2_memory_kib < 1024 {
            return invalid("auth.argon2_memory_kib", "must be at least 1024 (1 MiB)");
        }
        if self.auth.argon2_iterations == 0 {
            return invalid("auth.argon2_iterations", "must be at least 1");
        }
        if self.auth.ticket_lifetime_secs == 0 {
            return invalid("auth.ticket_lifetime_secs", "must be at least 1");
        }
        if self.msn.max_message_bytes < 256 || self.msn.max_message_bytes > 1 << 20 {
            return invalid("msn.max_message_bytes", "must be between 256 and 1048576");
        }
        if self.msn.max_participants < 2 {
            return invalid("msn.max_participants", "must be at least 2");
        }
        if self.msn.max_queued_events < 100 {
            return invalid("msn.max_queued_events", "must be at least 100");
        }
        // Room for several of the largest messages and notices at once.
        let smallest_queue = (8 * self.msn.max_message_bytes).max(64 * 1024);
        if self.msn.max_queued_bytes < smallest_queue {
            return invalid(
                "msn.max_queued_bytes",
                "must be at least 65536 and at least 8 times msn.max_message_bytes",
            );
        }
        if self.msn.write_timeout_secs == 0 {
            return invalid("msn.write_timeout_secs", "must be at least 1");
        }
        if self.msn.rate_window_secs == 0 {
            return invalid("msn.rate_window_secs", "must be at least 1");
        }
        if let Some(m) = &self.matrix {
            if !(m.homeserver_url.starts_with("http://")
                || m.homeserver_url.starts_with("https://"))
            {
                return invalid(
                    "matrix.homeserver_url",
                    "must start with http:// or https://",
                );
            }
            if m.server_name.is_empty() || m.server_name.contains(['/', ' ', '@']) {
                return invalid(
                    "matrix.server_name",
                    "must be a server name such as example.org",
                );
            }
            if !m.ghost_localpart_template.contains("{handle}") {
                return invalid("matrix.ghost_localpart_template", "must contain {handle}");
            }
            if m.bot_localpart.is_empty() || m.bot_localpart.contains([':', '@', ' ']) {
                return invalid("matrix.bot_localpart", "must be a bare localpart");
            }
        }
        if self.irc.presence_interval_secs == 0 {
            return invalid("irc.presence_interval_secs", "must be at least 1");
        }
        if self.msn.max_connections == 0 {
            return invalid("msn.max_connections", "must be at least 1");
        }
        if self.irc.send_burst == 0 {
            return invalid("irc.send_burst", "must be at least 1");
        }
        if self.irc.max_concurrent_connects == 0 {
            return invalid("irc.max_concurrent_connects", "must be at least 1");
        }
        for (i, n) in self.irc.networks.iter().enumerate() {
            let key = |field: &str| format!("irc.networks[{i}].{field}");
            if n.name.is_empty()
                || !n
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(ConfigError::Invalid {
                    key: key("name"),
                    reason: "letters, digits and '-' only".into(),
                });
            }
            if n.server.is_empty() {
                return Err(ConfigError::Invalid {
                    key: key("server"),
                    reason: "must not be empty".into(),
                });
            }
            if !n.nick_template.contains("{local}") {
                return Err(ConfigError::Invalid {
                    key: key("nick_template"),
                    reason: "must contain {local}".into(),
                });
            }
            if self.irc.networks[..i].iter().any(|o| o.name == n.name) {
                return Err(ConfigError::Invalid {
                    key: key("name"),
                    reason: "duplicate network name".into(),
                });
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return invalid("log.level", &e.to_string());
        }
        Ok(())
    }

    /// `host:port` that XFR SB and RNG hand out.
    pub fn switchboard_address(&self) -> String {
        self.msn.switchboard_public.clone().unwrap_or_else(|| {
            format!(
                "{}:{}",
                self.msn.public_host,
                self.msn.switchboard_listen.port()
            )
        })
    }

    /// `host:port` that XFR NS hands out.
    pub fn notification_address(&self) -> String {
        self.msn.notification_public.clone().unwrap_or_else(|| {
            let port = self
                .msn
                .notification_listen
                .unwrap_or(self.msn.listen)
                .port();
            format!("{}:{}", self.msn.public_host, port)
        })
    }
}

/// The environment variable behind each overridden key (`msn.listen` →
/// `MSNGATE__MSN__LISTEN`), so a refusal names what the operator wrote.
#[derive(Default)]
struct EnvOverrides(Vec<(String, String)>);

impl EnvOverrides {
    /// `key`, or `VARIABLE (key)` when the value came from the environment.
    fn name(&self, key: String) -> String {
        let from_env = self.0.iter().rev().find(|(path, _)| {
            key == *path
                || key
                    .strip_prefix(path.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        });
        match from_env {
            Some((_, variable)) => format!("{variable} ({key})"),
            None => key,
        }
    }
}

/// `0.0.0.0`, `::` and the like (brackets allowed): fine to listen on,
/// meaningless as an address handed to clients.
fn is_unspecified_address(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
}

fn is_host_port(v: &str) -> bool {
    match v.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains(' ') && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

/// Sets `path` in the YAML tree to `raw`, parsed as a YAML scalar so that
/// numbers and booleans keep their type.
fn set_path(tree: &mut yaml_serde::Value, path: &[String], raw: &str) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".into());
    };
    if path.iter().any(String::is_empty) {
        return Err("empty path segment".into());
    }
    let mut node = tree;
    for key in parents {
        let map = node
            .as_mapping_mut()
            .ok_or_else(|| format!("{key}: parent is not a mapping"))?;
        node = map
            .entry(yaml_serde::Value::String(key.clone()))
            .or_insert_with(|| yaml_serde::Value::Mapping(Default::default()));
    }
    let map = node
        .as_mapping_mut()
        .ok_or_else(|| format!("{last}: parent is not a mapping"))?;
    let value = match yaml_serde::from_str::<yaml_serde::Value>(raw) {
        Ok(
            v @ (yaml_serde::Value::Bool(_)
            | yaml_serde::Value::Number(_)
            | yaml_serde::Value::Null),
        ) => v,
        _ => yaml_serde::Value::String(raw.to_string()),
    };
    map.insert(yaml_serde::Value::String(last.clone()), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(yaml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        Config::load(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.msn.listen.to_string(), "0.0.0.0:1863");
        assert_eq!(c.msn.switchboard_listen.port(), 1864);
        assert_eq!(c.http.listen.port(), 8080);
        assert!(c.database.url.starts_with("sqlite:"));
        assert_eq!(c.switchboard_address(), "127.0.0.1:1864");
    }

    #[test]
    fn legacy_tls_is_on_unless_switched_off() {
        let tls = "http:\n  tls:\n    certificate: c.pem\n    private_key: k.pem\n";
        let c = load_str(tls, &[]).unwrap();
        assert!(c.http.tls.unwrap().legacy_clients);
        let c = load_str(&format!("{tls}    legacy_clients: false\n"), &[]).unwrap();
        assert!(!c.http.tls.unwrap().legacy_clients);
        let c = load_str(tls, &[("MSNGATE__HTTP__TLS__LEGACY_CLIENTS", "false")]).unwrap();
        assert!(!c.http.tls.unwrap().legacy_clients);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let err = load_str("msn:\n  lisen: 1.2.3.4:1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("msn"), "{err}");
        assert!(err.contains("lisen"), "{err}");
        let err = load_str("bogus: 1\n", &[]).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_their_path() {
        let err = load_str("msn:\n  listen: not-an-address\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("msn.listen:"), "{err}");
        let err = load_str("database:\n  url: mysql://x\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("database.url:"), "{err}");
        let err = load_str("msn:\n  switchboard_public: nohost\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("msn.switchboard_public:"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load_str(
            "msn:\n  listen: 127.0.0.1:1000\n",
            &[
                ("MSNGATE__MSN__LISTEN", "127.0.0.1:1863"),
                ("MSNGATE__MSN__DISPATCH_REDIRECT", "true"),
                ("MSNGATE__MSN__NOTIFICATION_LISTEN", "127.0.0.1:1865"),
                ("MSNGATE__DATABASE__URL", "sqlite://x.db"),
                ("UNRELATED", "1"),
            ],
        )
        .unwrap();
        assert_eq!(c.msn.listen.to_string(), "127.0.0.1:1863");
        assert!(c.msn.dispatch_redirect);
        assert_eq!(c.notification_address(), "127.0.0.1:1865");
        assert_eq!(c.database.url, "sqlite://x.db");
        let err = load_str("", &[("MSNGATE__MSN__NOPE", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }
}

#[cfg(test)]
mod operator_checks {
    use super::*;

    fn load_env(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    fn with_msn(edit: impl FnOnce(&mut MsnConfig)) -> Config {
        let mut c = Config::default();
        edit(&mut c.msn);
        c
    }

    #[test]
    fn unspecified_public_addresses_are_refused_with_the_key() {
        for host in ["0.0.0.0", "::", "[::]", "0:0::0"] {
            let err = with_msn(|m| m.public_host = host.into())
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("msn.public_host: is the any-address"),
                "{host}: {err}"
            );
        }
        let err = with_msn(|m| m.switchboard_public = Some("0.0.0.0:1864".into()))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("msn.switchboard_public: names the any-address"),
            "{err}"
        );
        // A real address and a name still pass.
        with_msn(|m| m.public_host = "192.0.2.7".into())
            .validate()
            .unwrap();
        with_msn(|m| m.public_host = "msn.example.org".into())
            .validate()
            .unwrap();
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let err = load_env(&[("MSNGATE__MSN__LISTEN", "not-an-address")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("MSNGATE__MSN__LISTEN (msn.listen): "),
            "{err}"
        );
        let err = load_env(&[("MSNGATE__MSN__PUBLIC_HOST", "0.0.0.0")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("MSNGATE__MSN__PUBLIC_HOST (msn.public_host): is the any-address"),
            "{err}"
        );
        let err = load_env(&[("MSNGATE__AUTH__TICKET_LIFETIME_SECS", "0")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("MSNGATE__AUTH__TICKET_LIFETIME_SECS (auth.ticket_lifetime_secs): "),
            "{err}"
        );
        // A bad value from the file keeps the plain key.
        let names = EnvOverrides(vec![("msn.listen".into(), "MSNGATE__MSN__LISTEN".into())]);
        assert_eq!(names.name("msn.listen_x".into()), "msn.listen_x");
        assert_eq!(names.name("http.listen".into()), "http.listen");
    }

    #[test]
    fn loopback_public_host_with_open_listeners_warns_once() {
        let warning = Config::default().public_host_warning().expect("a warning");
        assert!(
            warning.starts_with("msn.public_host is 127.0.0.1 while the MSN listeners accept other machines (0.0.0.0:1863)"),
            "{warning}"
        );
        assert!(warning.contains("Set msn.public_host"), "{warning}");
        assert!(!warning.contains('\n'), "{warning}");
        let loopback = SocketAddr::from(([127, 0, 0, 1], 1863));
        let quiet = [
            with_msn(|m| m.public_host = "msn.example.org".into()),
            with_msn(|m| m.switchboard_public = Some("192.0.2.7:1864".into())),
            with_msn(|m| {
                m.listen = loopback;
                m.switchboard_listen = loopback;
            }),
        ];
        for c in quiet {
            assert_eq!(c.public_host_warning(), None, "{:?}", c.msn);
        }
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The documented example must load as is, and set every key to its default.
    #[test]
    fn config_example_yaml_is_valid_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml");
        let loaded = Config::load(Some(&path), Vec::new()).expect("config.example.yaml loads");
        assert_eq!(format!("{loaded:?}"), format!("{:?}", Config::default()));
    }
}
